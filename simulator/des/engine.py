"""One replication of the SimPy model of a serving system.

The process graph is built from the features the scenario uses, nothing more::

    arrival ──hit──> answered after the cache's hit latency (no stage, no queue)
       └──miss──> pre-stages ──> model ──> post-stages ──> response
                                  │
                                  ├─ one replica group (FCFSStation, or BatchStation with batching)
                                  ├─ pools behind a router (round-robin / join-shortest-queue / random)
                                  └─ fork-join: k groups, the request leaves with its last shard

Every random input comes from the replication's pre-drawn :class:`~simulator.variates.Variates`
(arrival times, keys, per-request service variates — the same the compiled engine reads) or, for the
features only this engine has, from the replication's named streams: ``"stages"`` (stage times),
``"forks"`` (shards 1..k-1; shard 0 uses the request's own service variate), ``"routing"`` (random
routing) and ``"service"`` (service variates of pools after the first). All of them are drawn per
request before the run, so a request's randomness never depends on the state of the queue.

Cache hits are known before the run (:func:`simulator.cachesim.hit_mask`: the cache is updated at
arrival, in arrival order) and take no part in the queueing: a hit's latency is the cache's hit
latency, and it skips the stages (the cached response is the final one); a miss pays no lookup time.

Fork-join: every shard joins its own group at the same instant; the request is done when its last
shard is, and its batch/queue/service figures are those of that last shard. If any shard is turned
away (queue limit) or reneges (request timeout) the request counts as dropped; its other shards still
run. Contention counts the busy replicas of one group (one pool, one fork branch).
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from ..cachesim import hit_mask
from ..errors import InputError
from ..replication import ReplicationOutput
from ..scenario import Scenario, Stage
from ..service import ServiceModel, draw_unit_variates
from ..variates import Variates
from .routing import get_router
from .stations import BatchStation, FCFSStation, fixed_service_times

__all__ = ["run_replication"]


def run_replication(scenario: Scenario, model: ServiceModel, variates: Variates,
                    rngs: dict[str, np.random.Generator], *,
                    pool_models: list[ServiceModel] | None = None) -> ReplicationOutput:
    """Simulate one replication; per-request outcomes in arrival order (seconds).

    Parameters
    ----------
    scenario : Scenario
        The serving system and workload.
    model : ServiceModel
        Service law of the replicas (of the first pool when ``scenario.pools`` is set), with contention
        already applied or removed (:func:`simulator.simulate.make_service_model`).
    variates : Variates
        Arrival times, keys and service variates of the replication's requests.
    rngs : dict of numpy.random.Generator
        The replication's streams (:func:`simulator.variates.streams`) for DES-only randomness.
    pool_models : list of ServiceModel, optional
        One model per pool (default: built from each pool's service).
    """
    n = variates.n
    arrivals = np.asarray(variates.arrival_times, dtype=np.float64)
    env = simpy.Environment()
    nan = math.nan
    join_t = [nan] * n
    close_t = [nan] * n
    start_t = [nan] * n
    svc_t = [0.0] * n
    batch_l = [0] * n
    done_t = [nan] * n
    dropped = [False] * n

    hits = None
    if scenario.cache.enabled:
        if variates.keys is None:
            raise InputError("a cache needs request keys (variates.keys is None)")
        hits = hit_mask(scenario.cache.policy, scenario.cache.capacity, variates.keys)

    stage_times = _draw_stage_times(scenario, n, rngs)
    has_post = bool(scenario.post_stages)

    def finish(i: int) -> None:
        done_t[i] = env.now

    tail = finish
    for st, times in reversed(list(zip(scenario.post_stages, stage_times[len(scenario.pre_stages):]))):
        tail = _stage(env, st, times, tail)

    if has_post:
        def model_done(i, close, start, s, b):
            close_t[i] = close
            start_t[i] = start
            svc_t[i] = s
            batch_l[i] = b
            tail(i)
    else:
        def model_done(i, close, start, s, b):
            close_t[i] = close
            start_t[i] = start
            svc_t[i] = s
            batch_l[i] = b
            done_t[i] = env.now

    # one host environment per replication (the same key in every engine, see simulator.service)
    model = model.for_replication(variates.env_key)
    if pool_models is not None:
        pool_models = [m.for_replication(variates.env_key) for m in pool_models]
    stations, model_join = _build_model(env, scenario, model, variates, rngs, model_done, join_t, dropped,
                                        pool_models)
    head = model_join
    for st, times in reversed(list(zip(scenario.pre_stages, stage_times))):
        head = _stage(env, st, times, head)

    env.process(_source(env, arrivals.tolist(), None if hits is None else hits.tolist(), head))
    env.run()

    out = ReplicationOutput.empty(n, sum(s.servers for s in stations))
    out.arrival = arrivals.copy()
    done = np.array(done_t)
    join = np.array(join_t)
    close = np.array(close_t)
    start = np.array(start_t)
    svc = np.array(svc_t)
    out.dropped = np.array(dropped, dtype=bool)
    served = ~np.isnan(done) & ~out.dropped
    out.latency = np.where(served, done - arrivals, nan)
    out.batch_size = np.where(served, np.array(batch_l, dtype=np.int32), 0).astype(np.int32)
    out.batch_wait = np.where(served, close - join, 0.0)
    out.queue_wait = np.where(served, start - close, 0.0)
    out.service = np.where(served, svc, 0.0)
    if scenario.pre_stages or has_post:
        out.stage_time = np.where(served, (join - arrivals) + (done - (start + svc)), 0.0)
    end = float(np.max(done[served])) if served.any() else 0.0
    if hits is not None:
        out.cache_hit = hits
        out.latency[hits] = scenario.cache.hit_latency_s
        if hits.any():
            end = max(end, float(arrivals[hits].max()) + scenario.cache.hit_latency_s)
    out.end_time = end
    out.busy_time = float(sum(s.busy_time for s in stations))
    out.n_batches = int(sum(s.n_batches for s in stations))
    return out


def _source(env: simpy.Environment, times: list[float], hits: list[bool] | None, head):
    """Feed requests in arrival order; absolute times (no drift from summed gaps)."""
    timeout = env.timeout
    if hits is None:
        for i, t in enumerate(times):
            yield timeout(t - env.now)
            head(i)
    else:
        for i, t in enumerate(times):
            if hits[i]:
                continue
            yield timeout(t - env.now)
            head(i)


def _build_model(env, scenario: Scenario, model: ServiceModel, variates: Variates, rngs, model_done,
                 join_t, dropped, pool_models):
    """The replica groups and the callable a request enters the model through."""
    n = variates.n

    def station(m: ServiceModel, servers: int, v: np.ndarray, done):
        kw = dict(queue_limit=scenario.queue_limit, timeout=scenario.request_timeout_s, model=m,
                  variates=v.tolist())
        if scenario.batching.enabled:
            if m.max_batch < scenario.batching.max_batch_size:
                raise InputError(f"the service model covers batches up to {m.max_batch}, "
                                 f"but batch_size is {scenario.batching.max_batch_size}")
            return BatchStation(env, servers, done, join_t, dropped,
                                max_batch=scenario.batching.max_batch_size,
                                batch_timeout=scenario.batching.timeout_s, **kw)
        return FCFSStation(env, servers, done, join_t, dropped, fixed=fixed_service_times(m, v), **kw)

    if scenario.pools:
        if scenario.fork_branches > 1:
            raise InputError("fork_branches > 1 with pools is not supported: give one replica group")
        if pool_models is None:
            from ..simulate import make_service_model
            pool_models = [model] + [make_service_model(scenario, p.service).for_replication(variates.env_key)
                                     for p in scenario.pools[1:]]
        if len(pool_models) != len(scenario.pools):
            raise InputError(f"pool_models has {len(pool_models)} models for {len(scenario.pools)} pools")
        groups = []
        for k, (pool, m) in enumerate(zip(scenario.pools, pool_models)):
            v = variates.service if k == 0 else m.draw(rngs["service"], n)
            groups.append(station(m, pool.replicas, v, model_done))
        router = get_router(scenario.routing)(groups, rngs["routing"], n)
        joins = [g.join for g in groups]
        choose = router.choose

        def route(i: int) -> None:
            joins[choose(i)](i)
        return groups, route

    k = scenario.fork_branches
    if k == 1:
        g = station(model, scenario.replicas, variates.service, model_done)
        return [g], g.join

    remaining = [k] * n

    def shard_done(i, close, start, s, b):
        remaining[i] -= 1
        if remaining[i] == 0:  # the last shard decides the request's latency
            model_done(i, close, start, s, b)

    shard_v = [variates.service] + [model.draw(rngs["forks"], n) for _ in range(k - 1)]
    groups = [station(model, scenario.replicas, v, shard_done) for v in shard_v]
    joins = [g.join for g in groups]

    def fork(i: int) -> None:
        for j in joins:
            j(i)
    return groups, fork


def _draw_stage_times(scenario: Scenario, n: int, rngs) -> list[list[float]]:
    """Times of every request at every stage (pre then post), from ``rngs["stages"]`` in that order."""
    out = []
    for st in (*scenario.pre_stages, *scenario.post_stages):
        if st.dist in ("lognormal", "gamma") and st.cv <= 0:
            raise InputError(f"stage {st.name!r}: the {st.dist} distribution needs cv > 0, got {st.cv}")
        out.append((st.mean_s * draw_unit_variates(rngs["stages"], st.dist, st.cv, n)).tolist())
    return out


class _Delay:
    """A stage with unlimited workers: every request is delayed by its own stage time."""

    def __init__(self, env: simpy.Environment, times: list[float], nxt):
        self.env, self.times, self.next = env, times, nxt

    def join(self, i: int) -> None:
        ev = self.env.timeout(self.times[i], value=i)
        ev.callbacks.append(self._fire)

    def _fire(self, ev) -> None:
        self.next(ev.value)


def _stage(env: simpy.Environment, st: Stage, times: list[float], nxt):
    if st.servers is None:
        return _Delay(env, times, nxt).join
    n = len(times)

    def leave(i, close, start, s, b):
        nxt(i)
    return FCFSStation(env, st.servers, leave, [math.nan] * n, [False] * n, fixed=times).join
