"""Replica groups: c replicas behind one FCFS queue, with or without a dynamic batcher.

A station receives requests through :meth:`join` and hands each finished request to ``done(i, close,
start, service, batch)``: when its batch closed, when its service started, the batch's service time
(s) and its size. Replicas are SimPy processes that sleep on an event while there is nothing to do, so
a request costs one timeout event for its service and at most one wake-up.

Semantics shared with the compiled engine:

* Queue limit: ``queue_limit`` waiting places, not counting requests in service. An arrival that finds
  them all taken is dropped (``dropped[i] = True``; ``done`` is never called).
* Request timeout (reneging): a request whose service has not started ``timeout`` seconds after it
  joined is dropped; it leaves the waiting room at that instant (a service starting exactly then is too
  late). Deadlines are join time + a constant, so the expired requests are always the oldest waiting
  ones: they are purged as a prefix at each join, dispatch and batch timer, which is exact.
* Contention: a service that starts while k replicas of this station are busy (itself included) takes
  ``slowdown[k]`` times longer (:func:`simulator.service.service_time`).
* Batching (TF-Serving): requests join the open batch; it closes when it holds ``max_batch`` requests
  or when its oldest has waited ``batch_timeout``; closed batches queue FIFO for the replicas. With
  ``batch_timeout = 0`` (greedy) nothing waits for a batch to fill: a free replica takes the first
  closed batch, else the whole open batch (so it takes min(waiting, max_batch) requests at once).
  Requests that join while a closed batch waits for a replica start a new open batch. A batch runs with
  the service variate of its oldest request.
"""

from __future__ import annotations

from collections import deque

import numba
import numpy as np
import simpy

from ..service import ServiceModel, service_time

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
        self.idle: list[simpy.Event] = []
        self.busy = 0
        self.busy_time = 0.0
        self.n_batches = 0
        # Service: a per-request table when it cannot depend on batch size or contention (`fixed`),
        # else computed at dispatch from the model and the request's variate.
        self.fixed = fixed
        self.variates = variates
        if model is not None:
            self._args = (model.mode, model.means, model.emp_values, model.emp_start, model.emp_len,
                          model.emp_scale, model.slowdown)
        for _ in range(servers):
            env.process(self._replica())

    def _wake(self) -> None:
        if self.idle:
            self.idle.pop().succeed()

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
            self.idle.pop().succeed()

    def _purge(self, now: float) -> None:
        queue, join_t, limit = self.queue, self.join_t, self.timeout
        while queue and join_t[queue[0]] + limit <= now:
            self.dropped[queue.popleft()] = True

    def _replica(self):
        env, queue, idle, done, join_t = self.env, self.queue, self.idle, self.done, self.join_t
        fixed, variates, timeout = self.fixed, self.variates, self.timeout
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
                s = service_time(*self._args, 1, variates[i], self.busy)
            self.n_batches += 1
            yield env.timeout(s)
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
        self.open: list[int] = []
        self.closed: deque[tuple[list[int], float]] = deque()
        self.waiting = 0
        self.timer_owner = -1        # request whose batch timer is pending (-1: none)
        self.batch_sizes_sum = 0
        self._in_service = 0
        super().__init__(env, servers, done, join_t, dropped, **kwargs)

    @property
    def in_system(self) -> int:
        return self.waiting + self._in_service

    def join(self, i: int) -> None:
        env = self.env
        now = env.now
        if self.timeout is not None:
            self._purge(now)
        if (self.queue_limit is not None and self.waiting >= self.queue_limit
                and not (self.greedy and self.idle)):
            self.dropped[i] = True
            return
        self.join_t[i] = now
        self.open.append(i)
        self.waiting += 1
        if len(self.open) >= self.max_batch:
            self._close(now)
        elif self.greedy:
            self._wake()
        elif len(self.open) == 1:
            self._arm(i, self.batch_timeout)

    def _arm(self, owner: int, delay: float) -> None:
        self.timer_owner = owner
        ev = self.env.timeout(delay, value=owner)
        ev.callbacks.append(self._on_timer)

    def _on_timer(self, ev) -> None:
        owner = ev.value
        if owner != self.timer_owner:
            return  # stale: that batch closed (full) or its owner left
        self.timer_owner = -1
        now = self.env.now
        if self.timeout is not None:
            self._purge(now)
        if not self.open:
            return
        if self.open[0] == owner:
            self._close(now)
        else:  # the oldest reneged first: the batch now waits for its new oldest's deadline
            first = self.open[0]
            self._arm(first, max(self.join_t[first] + self.batch_timeout - now, 0.0))

    def _close(self, now: float) -> None:
        self.closed.append((self.open, now))
        self.open = []
        self.timer_owner = -1
        self._wake()

    def _purge(self, now: float) -> None:
        join_t, limit, dropped = self.join_t, self.timeout, self.dropped
        closed = self.closed
        while closed:
            batch = closed[0][0]
            k = 0
            while k < len(batch) and join_t[batch[k]] + limit <= now:
                dropped[batch[k]] = True
                k += 1
            if k:
                del batch[:k]
                self.waiting -= k
            if batch:
                return
            closed.popleft()
        batch = self.open
        k = 0
        while k < len(batch) and join_t[batch[k]] + limit <= now:
            dropped[batch[k]] = True
            k += 1
        if k:
            del batch[:k]
            self.waiting -= k

    def _replica(self):
        env, idle, closed, done = self.env, self.idle, self.closed, self.done
        variates, timeout = self.variates, self.timeout
        while True:
            now = env.now
            if timeout is not None:
                self._purge(now)
            if closed:
                batch, close = closed.popleft()
            elif self.greedy and self.open:
                batch, close = self.open, now
                self.open = []
            else:
                ev = env.event()
                idle.append(ev)
                yield ev
                continue
            b = len(batch)
            self.waiting -= b
            self._in_service += b
            self.busy += 1
            s = service_time(*self._args, b, variates[batch[0]], self.busy)
            self.n_batches += 1
            self.batch_sizes_sum += b
            yield env.timeout(s)
            self.busy -= 1
            self._in_service -= b
            self.busy_time += s
            for i in batch:
                done(i, close, now, s, b)


def fixed_service_times(model: ServiceModel, variates: np.ndarray) -> list[float] | None:
    """Per-request service times when they depend on nothing but the request (batch 1, no contention).

    Computed by the shared compiled :func:`~simulator.service.service_time`, so identical to what the
    station would compute at dispatch; returns None when contention makes them load-dependent.
    """
    if np.any(model.slowdown != 1.0):
        return None
    return _fixed(model.mode, model.means, model.emp_values, model.emp_start, model.emp_len, model.emp_scale,
                  model.slowdown, np.asarray(variates, dtype=np.float64)).tolist()


@numba.njit(cache=True)
def _fixed(mode, means, emp_values, emp_start, emp_len, emp_scale, slowdown, v):
    out = np.empty(v.size)
    for j in range(v.size):
        out[j] = service_time(mode, means, emp_values, emp_start, emp_len, emp_scale, slowdown, 1, v[j], 1)
    return out
