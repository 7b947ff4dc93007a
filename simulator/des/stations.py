"""Replica groups: c replicas behind one FCFS queue, with or without a dynamic batcher.

A station receives requests through :meth:`join` and hands each finished request to ``done(i, close,
start, service, batch)``: when its batch was ready for it (its own join time without batching), when
its service started, the batch's service time (s) and its size. Replicas are SimPy processes that sleep on an event while there is nothing to do, so
a request costs one timeout event for its service and at most one wake-up.

Semantics shared with the compiled engine:

* Queue limit: ``queue_limit`` waiting places, not counting requests in service. An arrival that finds
  them all taken is dropped (``dropped[i] = True``; ``done`` is never called), unless it starts service
  at its own arrival instant (a free replica, and with it the queue becomes ready to batch: greedy, or
  it is the B-th waiting request). Ties: the count is taken after the batches that start at that
  instant because of earlier events (a replica freeing, a deadline falling due) have left the queue,
  and the arrival does not join those batches. (SimPy runs simultaneous events in the order they were
  scheduled, so with exactly coinciding times the engines may differ: see simulator.fast.kernels.)
* Request timeout (reneging): a request whose service has not started ``timeout`` seconds after it
  joined is dropped; it leaves the waiting room at that instant (a service starting exactly then is too
  late). Deadlines are join time + a constant, so the expired requests are always the oldest waiting
  ones: they are purged as a prefix at each join, dispatch and batch timer, which is exact.
* Contention: a service that starts while k replicas of this station are busy (itself included) takes
  ``slowdown[k]`` times longer (:func:`simulator.service.service_time`).
* Batching (TF-Serving's ``SharedBatchScheduler``): requests wait in one FIFO queue. A *free* replica
  starts a batch as soon as (a) ``max_batch`` (B) requests wait, or (b) the oldest waiting request has
  waited ``batch_timeout`` (T; T = 0 is greedy: as soon as anything waits); it takes the oldest
  min(waiting, B). While every replica is busy nothing is closed: the queue keeps growing, and a
  replica that frees applies the rule at once (B or more waiting: B at once; the oldest past its
  deadline: min(waiting, B); else it waits for the earlier of the B-th arrival and the oldest's
  deadline). This is ``Queue::ScheduleBatch`` / ``IsOpenBatchSchedulable``: the open batch becomes
  schedulable when full or timed out but is closed only by a free batch thread, so under load batches
  fill up. Several free replicas take batches one at a time, the one that went idle last first
  (replicas are identical, so which one never changes a request's outcome). A batch runs with
  the service variate of its oldest request.
* Breakdown of a batch started at s: it was *ready* at r = min(arrival of its B-th member if it is
  full, oldest's join + T), capped at s; member i reports ``close = max(r, join_i)`` (batch wait
  close - join, queue wait s - close). With T = 0 nobody waits for a batch to form: the whole wait
  is queueing.
"""

from __future__ import annotations

from collections import deque

import numba
import numpy as np
import simpy

from ..service import ServiceModel, environment_factor, service_time

__all__ = ["BatchStation", "FCFSStation"]


class _Station:
    """What both station kinds share: replicas, queue-limit and timeout bookkeeping, accounting.

    Parameters
    ----------
    env : simpy.Environment
    servers : int
        Replicas c.
    done : callable
        ``done(i, close, start, service, batch)`` when request i's service ends.
    join_t, dropped : list
        Per-request join times (s) and drop flags, shared with the engine (and across fork shards).
    model, variates : ServiceModel, list of float
        Service law and per-request variates, for service times computed at dispatch.
    fixed : list of float, optional
        Per-request service times (s) when they depend on nothing but the request.
    queue_limit : int, optional
        Waiting places, not counting requests in service.
    timeout : float, optional
        Longest wait before service (s); a request still waiting then is dropped.
    """

    def __init__(self, env: simpy.Environment, servers: int, done, join_t: list, dropped: list, *,
                 model: ServiceModel | None = None, variates=None, fixed=None,
                 queue_limit: int | None = None, timeout: float | None = None):
        self.env = env
        self.servers = servers
        self.done = done
        self.join_t = join_t
        self.dropped = dropped
        self.queue_limit = queue_limit
        self.timeout = timeout
        # Idle replicas in the order they went idle: an arrival wakes the one idle the longest (the
        # earliest free, as the compiled engine's sorted free times do), which matters when service
        # depends on the idle time (warm-up).
        self.idle: deque[simpy.Event] = deque()
        self.busy = 0
        self.busy_time = 0.0
        self.n_batches = 0
        # Service: a per-request table when it cannot depend on batch size or contention (`fixed`),
        # else computed at dispatch from the model and the request's variate.
        self.fixed = fixed
        self.variates = variates
        self._env = None
        if model is not None:
            self._args = (model.mode, model.means, model.emp_values, model.emp_start, model.emp_len,
                          model.emp_scale, model.slowdown, model.warm_idle_s, model.warm_factor)
            self._env = model.environment()
        for _ in range(servers):
            env.process(self._replica())

    def _wake(self) -> None:
        if self.idle:
            self.idle.popleft().succeed()

    def _replica(self):
        """One replica's life, a SimPy process (each station kind defines it)."""
        raise NotImplementedError


class FCFSStation(_Station):
    """c replicas, one FCFS queue, one request per service (no batching)."""

    def __init__(self, *args, **kwargs):
        self.queue: deque[int] = deque()
        super().__init__(*args, **kwargs)

    @property
    def in_system(self) -> int:
        return len(self.queue) + self.busy

    def join(self, i: int) -> None:
        now = self.env.now
        queue = self.queue
        if self.timeout is not None:
            self._purge(now)
        if self.queue_limit is not None and not self.idle and len(queue) >= self.queue_limit:
            self.dropped[i] = True
            return
        self.join_t[i] = now
        queue.append(i)
        if self.idle:
            self.idle.popleft().succeed()

    def _purge(self, now: float) -> None:
        queue, join_t, limit = self.queue, self.join_t, self.timeout
        while queue and join_t[queue[0]] + limit <= now:
            self.dropped[queue.popleft()] = True

    def _replica(self):
        env, queue, idle, done, join_t = self.env, self.queue, self.idle, self.done, self.join_t
        fixed, variates, timeout = self.fixed, self.variates, self.timeout
        free_at = 0.0  # when this replica last finished (the simulation starts with it idle)
        while True:
            if timeout is not None and queue:
                self._purge(env.now)
            if not queue:
                ev = env.event()
                idle.append(ev)
                yield ev
                continue
            i = queue.popleft()
            start = env.now
            self.busy += 1
            if fixed is not None:
                s = fixed[i]
            else:
                s = service_time(*self._args, 1, variates[i], self.busy, join_t[i] - free_at)
                if self._env is not None:
                    s *= environment_factor(*self._env, start)
            self.n_batches += 1
            yield env.timeout(s)
            free_at = env.now
            self.busy -= 1
            self.busy_time += s
            done(i, join_t[i], start, s, 1)


class BatchStation(_Station):
    """c replicas fed by a TF-Serving dynamic batcher (see the module notes)."""

    def __init__(self, env, servers, done, join_t, dropped, *, max_batch: int, batch_timeout: float,
                 **kwargs):
        self.max_batch = max_batch
        self.batch_timeout = batch_timeout
        self.greedy = batch_timeout == 0
        self.queue: deque[int] = deque()
        self.timer_owner = -1        # request whose batch deadline is pending (-1: none)
        self.batch_sizes_sum = 0
        self._in_service = 0
        super().__init__(env, servers, done, join_t, dropped, **kwargs)

    @property
    def in_system(self) -> int:
        return len(self.queue) + self._in_service

    def _ready(self, now: float) -> bool:
        """A free replica would start a batch now: B requests wait, or the oldest reached its deadline."""
        queue = self.queue
        return bool(queue) and (len(queue) >= self.max_batch
                                or self.join_t[queue[0]] + self.batch_timeout <= now)

    def join(self, i: int) -> None:
        now = self.env.now
        queue = self.queue
        if self.timeout is not None:
            self._purge(now)
        q = len(queue)
        # A request that starts service at its arrival instant (a free replica, and the queue becomes
        # ready with it) needs no waiting place, as in FCFSStation.
        if (self.queue_limit is not None and q >= self.queue_limit
                and not (self.idle and (self.greedy or q + 1 >= self.max_batch))):
            self.dropped[i] = True
            return
        self.join_t[i] = now
        queue.append(i)
        if self.idle:
            if self.greedy or q + 1 >= self.max_batch:
                self._wake()
            elif q == 0:
                self._arm(i, self.batch_timeout)

    def _arm(self, owner: int, delay: float) -> None:
        self.timer_owner = owner
        ev = self.env.timeout(delay, value=owner)
        ev.callbacks.append(self._on_timer)

    def _on_timer(self, ev) -> None:
        """The deadline of the oldest waiting request: wake an idle replica (set only while one idles)."""
        owner = ev.value
        if owner != self.timer_owner:
            return  # stale: a replica took that request's batch, or it reneged and a newer timer runs
        self.timer_owner = -1
        now = self.env.now
        if self.timeout is not None:
            self._purge(now)
        queue = self.queue
        if not queue or not self.idle:
            return
        deadline = self.join_t[queue[0]] + self.batch_timeout
        if deadline > now:
            # the owner reneged (or now + delay rounded below its deadline): wait for the new oldest's
            self._arm(queue[0], deadline - now)
        else:
            self._wake()

    def _purge(self, now: float) -> None:
        queue, join_t, limit = self.queue, self.join_t, self.timeout
        while queue and join_t[queue[0]] + limit <= now:
            self.dropped[queue.popleft()] = True

    def _replica(self):
        env, idle, queue, done, join_t = self.env, self.idle, self.queue, self.done, self.join_t
        variates, timeout, big_b, t_out = self.variates, self.timeout, self.max_batch, self.batch_timeout
        free_at = 0.0  # when this replica last finished (the simulation starts with it idle)
        while True:
            now = env.now
            if timeout is not None:
                self._purge(now)
            if not self._ready(now):
                if queue and self.timer_owner != queue[0]:
                    self._arm(queue[0], join_t[queue[0]] + t_out - now)
                ev = env.event()
                idle.append(ev)
                yield ev
                continue
            b = min(len(queue), big_b)
            batch = [queue.popleft() for _ in range(b)]
            # Ready time: the B-th member's arrival (full batch) or the oldest's deadline, if earlier.
            ready = join_t[batch[0]] + t_out
            if b == big_b:
                ready = min(ready, join_t[batch[-1]])
            ready = min(ready, now)
            if idle and queue:  # another idle replica may have to take the rest, now or at its deadline
                if self._ready(now):
                    self._wake()
                elif self.timer_owner != queue[0]:
                    self._arm(queue[0], join_t[queue[0]] + t_out - now)
            self._in_service += b
            self.busy += 1
            s = service_time(*self._args, b, variates[batch[0]], self.busy, join_t[batch[0]] - free_at)
            if self._env is not None:
                s *= environment_factor(*self._env, now)
            self.n_batches += 1
            self.batch_sizes_sum += b
            yield env.timeout(s)
            free_at = env.now
            self.busy -= 1
            self._in_service -= b
            self.busy_time += s
            for i in batch:
                done(i, max(ready, join_t[i]), now, s, b)


def fixed_service_times(model: ServiceModel, variates: np.ndarray) -> list[float] | None:
    """Per-request service times when they depend on nothing but the request (batch 1, no contention,
    no warm-up, no host environment).

    Computed by the shared compiled :func:`~simulator.service.service_time`, so identical to what the
    station would compute at dispatch; returns None when contention makes them load-dependent.
    """
    if np.any(model.slowdown != 1.0) or model.has_warmup or model.has_environment:
        return None
    return _fixed(model.mode, model.means, model.emp_values, model.emp_start, model.emp_len, model.emp_scale,
                  model.slowdown, model.warm_idle_s, model.warm_factor,
                  np.asarray(variates, dtype=np.float64)).tolist()


@numba.njit(cache=True)
def _fixed(mode, means, emp_values, emp_start, emp_len, emp_scale, slowdown, warm_idle_s, warm_factor, v):
    out = np.empty(v.size)
    for j in range(v.size):
        out[j] = service_time(mode, means, emp_values, emp_start, emp_len, emp_scale, slowdown, warm_idle_s,
                              warm_factor, 1, v[j], 1, 0.0)
    return out
