"""Throughput of the compiled engine against the SimPy engine, Ciw and the cost of the variates alone.

One scenario for every figure: M/G/8, lognormal service with mean 10 ms and CV 1.5, Poisson arrivals at
ρ = 0.9 (λ = 720 requests/s). Every rate is requests simulated per second of wall time, end to end:
drawing the variates (arrival times, service variates) is included, as a user would run it.

* fast (latencies kept): draw_variates + simulator.fast.run_replication (per-request arrays)
* fast (streaming): simulator.fast.run_streaming (default chunks of 2^16, sums + quantile sketch)
* SimPy engine: draw_variates + simulator.des.run_replication on the same scenario (and the engine
  alone, given the variates, against the fast kernel alone)
* minimal SimPy: the textbook M/G/c (a Resource, one process per customer) on the same variates
* Ciw 3: the same M/G/8 (Ciw draws its own variates), run for the same simulated time per request
* variates alone: drawing exactly what the engine consumes, as the streaming engine draws it (exponential
  gaps summed in place into arrival times, lognormal services by simulator.service.VariateStream, into
  chunk buffers reused from chunk to chunk); and, for reference, the plain numpy way of drawing the same
  laws (fresh arrays: exponential gaps + np.cumsum, Generator.lognormal)
* 1 → 2 cores: simulator.fast.run_replications, workers=1 then workers=2 (4 streaming replications
  of 2·10^6 requests; 16 replications of 2.5·10^5 with latencies kept)

Each figure is the best of ``--repeat`` runs (the machine is shared; the load average is printed), as
wall-clock rates and, less sensitive to other processes, as rates per second of this process's CPU
time (single-threaded figures only; the 1 → 2 core scaling is wall clock by nature).
Usage: ``python benchmarks/bench_fast.py [--repeat K] [--quick] [--scaling-only]``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import ciw
import numpy as np
import simpy

from simulator import des, fast
from simulator.scenario import Arrivals, Scenario, Service
from simulator.service import ServiceModel, VariateStream
from simulator.variates import draw_variates, renewal_times, replication_seeds, streams

MEAN, CV, SERVERS, RHO = 0.010, 1.5, 8, 0.9
RATE = RHO * SERVERS / MEAN


def scenario() -> tuple[Scenario, ServiceModel]:
    sc = Scenario(arrivals=Arrivals(rate=RATE), service=Service(mean_s=MEAN, cv=CV, dist="lognormal"),
                  replicas=SERVERS)
    return sc, ServiceModel.parametric(MEAN, CV, "lognormal")


CPU: dict[int, float] = {}  # id of a measured callable -> its shortest CPU time (s)


def best(fn, repeat: int) -> float:
    """Shortest wall time of ``repeat`` calls (s); the shortest CPU time is kept in ``CPU``."""
    walls, cpus = [], []
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU[id(fn)] = min(cpus)
    return min(walls)


def fast_exact(sc, model, n, seed):
    rngs = streams(seed)
    return fast.run_replication(sc, model, draw_variates(sc, model, n, rngs), rngs)


def simpy_engine(sc, model, n, seed):
    rngs = streams(seed)
    return des.run_replication(sc, model, draw_variates(sc, model, n, rngs), rngs)


def minimal_simpy(arrivals: np.ndarray, services: np.ndarray) -> list[float]:
    """The textbook SimPy M/G/c: a Resource with c slots and one process per customer."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=SERVERS)
    latency = [0.0] * len(arrivals)

    def customer(i, arrived, service):
        with server.request() as req:
            yield req
            yield env.timeout(service)
        latency[i] = env.now - arrived

    def source():
        for i, (t, s) in enumerate(zip(arrivals.tolist(), services.tolist())):
            yield env.timeout(t - env.now)
            env.process(customer(i, env.now, s))

    env.process(source())
    env.run()
    return latency


def ciw_run(n: int, seed: int) -> int:
    s2 = math.log1p(CV * CV)
    ciw.seed(seed)
    net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(RATE)],
                             service_distributions=[ciw.dists.Lognormal(math.log(MEAN) - s2 / 2, math.sqrt(s2))],
                             number_of_servers=[SERVERS])
    sim = ciw.Simulation(net)
    sim.simulate_until_max_time(n / RATE)
    return len(sim.get_all_records())


def variates_alone(n: int, seed, chunk: int = 2**16) -> float:
    """Draw what the engine consumes as the streaming engine draws it (same generator calls, same
    numbers), into reused chunk buffers; returns the last arrival time."""
    rngs = streams(seed)
    a = rngs["arrivals"]
    service = VariateStream(ServiceModel.parametric(MEAN, CV, "lognormal"), rngs["service"])
    times, var = np.empty(chunk), np.empty(chunk)
    t = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        t = float(renewal_times(a.standard_exponential(m, out=times[:m]), RATE, t)[m - 1])
        service.next(m, out=var[:m])
    return t


def variates_numpy(n: int, seed, chunk: int = 2**20) -> float:
    """The plain numpy way of drawing the same laws (fresh arrays, Generator.lognormal), for reference."""
    rngs = streams(seed)
    a, s = rngs["arrivals"], rngs["service"]
    s2 = math.log1p(CV * CV)
    t = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        t = (t + np.cumsum(a.standard_exponential(m) / RATE))[-1]
        s.lognormal(-s2 / 2, math.sqrt(s2), m)
    return float(t)


def scaling(n: int, repeat: int) -> tuple[float, float]:
    """Wall-time speed-up with 2 worker threads over 1: streaming 4 replications of n requests, and
    latencies kept for 16 replications of n/8. "CPUs busy" (CPU seconds per wall second with 2 workers)
    tells whether both cores were really ours: below ~1.8 another process held one."""
    sc, model = scenario()
    fast.run_replications(sc, model, replication_seeds(7, 2), 10_000, workers=2, streaming=True)
    out, busy = [], []
    for streaming, reps, size in ((True, replication_seeds(7, 4), n), (False, replication_seeds(7, 16), n // 8)):
        def job(workers, s=streaming, r=reps, k=size):
            return fast.run_replications(sc, model, r, k, workers=workers, streaming=s, reduce=lambda o: None)

        def serial_in_a_worker():  # the serial run on a worker thread too, as the parallel ones run
            with ThreadPoolExecutor(1) as pool:
                pool.submit(job, 1).result()
        t1 = best(serial_in_a_worker, repeat)
        f2 = lambda: job(2)  # noqa: E731
        t2 = best(f2, repeat)
        out.append(t1 / t2)
        busy.append(CPU[id(f2)] / t2)
    load = os.getloadavg()
    print(f"1 -> 2 cores: streaming (4 x {n} requests) {out[0]:.2f}x, latencies kept (16 x {n // 8}) "
          f"{out[1]:.2f}x; CPUs busy with 2 workers {busy[0]:.2f}, {busy[1]:.2f}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the harness)")
    p.add_argument("--scaling-only", action="store_true", help="only the 1 -> 2 core scaling")
    args = p.parse_args()
    if args.scaling_only:
        scaling(2_000_000 // (10 if args.quick else 1), args.repeat)
        return
    k = 10 if args.quick else 1
    n_exact, n_stream, n_simpy, n_ciw, n_gen = 2_000_000 // k, 20_000_000 // k, 100_000 // k, 30_000 // k, \
        20_000_000 // k
    sc, model = scenario()
    seed = replication_seeds(2026, 1)[0]
    load0 = os.getloadavg()

    # compile (or load the cached machine code) before timing
    fast_exact(sc, model, 10_000, seed)
    fast.run_streaming(sc, model, 10_000, seed, chunk=4096)

    cpu = {}

    def measure(name, fn, n, repeat):
        wall = best(fn, repeat)
        cpu[name] = n / CPU[id(fn)]
        return wall

    t_exact = measure("fast, latencies kept", lambda: fast_exact(sc, model, n_exact, seed), n_exact, args.repeat)
    v_big = draw_variates(sc, model, n_exact, streams(seed))
    t_kernel = measure("fast kernel alone (variates given)", lambda: fast.run_replication(sc, model, v_big),
                       n_exact, args.repeat)
    v_big = None
    t_stream = measure("fast, streaming", lambda: fast.run_streaming(sc, model, n_stream, seed), n_stream,
                       args.repeat)
    t_gen = measure("variates alone (as the engine draws)", lambda: variates_alone(n_gen, seed), n_gen,
                    args.repeat)
    t_gen_np = measure("variates, plain numpy (reference)", lambda: variates_numpy(n_gen, seed), n_gen,
                       args.repeat)
    few = max(1, args.repeat - 1)
    t_simpy = measure("SimPy engine (simulator.des)", lambda: simpy_engine(sc, model, n_simpy, seed), n_simpy,
                      few)
    v_small = draw_variates(sc, model, n_simpy, streams(seed))
    t_simpy_engine = measure("SimPy engine alone (variates given)",
                             lambda: des.run_replication(sc, model, v_small, streams(seed)), n_simpy, few)
    services = MEAN * v_small.service
    t_minimal = measure("minimal SimPy M/G/c (variates given)",
                        lambda: minimal_simpy(v_small.arrival_times, services), n_simpy, few)
    t_ciw = measure("Ciw", lambda: ciw_run(n_ciw, 7), n_ciw, 1)

    s_stream, s_kept = scaling(n_exact, args.repeat)
    load1 = os.getloadavg()

    r = {
        "fast, latencies kept": n_exact / t_exact,
        "fast, streaming": n_stream / t_stream,
        "fast kernel alone (variates given)": n_exact / t_kernel,
        "SimPy engine (simulator.des)": n_simpy / t_simpy,
        "SimPy engine alone (variates given)": n_simpy / t_simpy_engine,
        "minimal SimPy M/G/c (variates given)": n_simpy / t_minimal,
        "Ciw": n_ciw / t_ciw,
        "variates alone (as the engine draws)": n_gen / t_gen,
        "variates, plain numpy (reference)": n_gen / t_gen_np,
    }
    print(f"M/G/{SERVERS}: lognormal service mean {MEAN * 1e3:g} ms cv {CV}, Poisson arrivals "
          f"λ = {RATE:g}/s, ρ = {RHO}; best of {args.repeat}; cores {os.cpu_count()}")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print()
    print(f"  {'':38s} {'wall clock':>24s}   {'CPU time (load-robust)':>24s}")
    for name, rate in r.items():
        print(f"  {name:38s} {rate / 1e6:9.3f} M req/s {1e9 / rate:7.1f} ns"
              f"   {cpu[name] / 1e6:9.3f} M req/s {1e9 / cpu[name]:7.1f} ns")
    simpy_rate = r["SimPy engine (simulator.des)"]
    gen_rate = r["variates alone (as the engine draws)"]
    print()
    print(f"  fast (latencies kept) / SimPy engine   {r['fast, latencies kept'] / simpy_rate:9.0f}x   (target >= 200x)")
    print(f"  fast (streaming) / SimPy engine        {r['fast, streaming'] / simpy_rate:9.0f}x   (target >= 400x)")
    print(f"  engines alone: fast kernel / SimPy engine {r['fast kernel alone (variates given)'] / r['SimPy engine alone (variates given)']:6.0f}x")
    print(f"  fast (latencies kept) / minimal SimPy  {r['fast, latencies kept'] / r['minimal SimPy M/G/c (variates given)']:9.0f}x")
    print(f"  fast (streaming) / minimal SimPy       {r['fast, streaming'] / r['minimal SimPy M/G/c (variates given)']:9.0f}x")
    print(f"  fast (latencies kept) / Ciw            {r['fast, latencies kept'] / r['Ciw']:9.0f}x")
    print(f"  fast (streaming) / Ciw                 {r['fast, streaming'] / r['Ciw']:9.0f}x")
    print(f"  SimPy engine / Ciw                     {simpy_rate / r['Ciw']:9.2f}x")
    print(f"  time of fast streaming / variates      {gen_rate / r['fast, streaming']:9.2f}x   (target <= 3x)")
    print(f"  time of fast kept / variates           {gen_rate / r['fast, latencies kept']:9.2f}x")
    print(f"  time of fast streaming / plain numpy variates "
          f"{r['variates, plain numpy (reference)'] / r['fast, streaming']:5.2f}x")
    c = cpu
    print(f"  by CPU time: kept / SimPy engine {c['fast, latencies kept'] / c['SimPy engine (simulator.des)']:.0f}x, "
          f"streaming / SimPy engine {c['fast, streaming'] / c['SimPy engine (simulator.des)']:.0f}x, "
          f"kernel / SimPy engine alone {c['fast kernel alone (variates given)'] / c['SimPy engine alone (variates given)']:.0f}x, "
          f"streaming time / variates {c['variates alone (as the engine draws)'] / c['fast, streaming']:.2f}x")
    print(f"  1 -> 2 cores, streaming replications  {s_stream:9.2f}x   (target >= 1.8x)")
    print(f"  1 -> 2 cores, kept replications       {s_kept:9.2f}x")


if __name__ == "__main__":
    main()
