"""Throughput of the SimPy engine on a plain M/M/c against a minimal idiomatic SimPy M/M/c.

The baseline is the textbook model (a ``simpy.Resource`` with c slots and one generator process per
customer) fed the same pre-drawn arrival times and service times, so both simulate the same requests.
Prints both rates (requests per second of wall time), the ratio, and checks the two agree request by
request. Usage: ``python benchmarks/bench_simpy.py [--requests N] [--servers C] [--rho R] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from simulator.des import run_replication
from simulator.scenario import Arrivals, Run, Scenario, Service
from simulator.service import ServiceModel
from simulator.variates import draw_variates, replication_seeds, streams


def baseline_mmc(arrivals: list[float], services: list[float], servers: int) -> list[float]:
    """Minimal idiomatic SimPy M/M/c: a Resource and one process per customer; returns latencies."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=servers)
    latency = [0.0] * len(arrivals)

    def customer(i: int, arrived: float, service: float):
        with server.request() as req:
            yield req
            yield env.timeout(service)
        latency[i] = env.now - arrived

    def source():
        for i, (t, s) in enumerate(zip(arrivals, services)):
            yield env.timeout(t - env.now)
            env.process(customer(i, env.now, s))

    env.process(source())
    env.run()
    return latency


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--rho", type=float, default=0.8)
    ap.add_argument("--repeat", type=int, default=3, help="best of K timings of each")
    args = ap.parse_args(argv)
    mean_s = 0.01
    rate = args.rho * args.servers / mean_s
    sc = Scenario(arrivals=Arrivals(rate=rate), service=Service(mean_s=mean_s), replicas=args.servers,
                  run=Run(requests=args.requests, replications=1))
    model = ServiceModel.parametric(mean_s, 1.0, "exponential")
    rngs = streams(replication_seeds(1, 1)[0])
    v = draw_variates(sc, model, args.requests, rngs)
    arrivals = v.arrival_times.tolist()
    services = (mean_s * v.service).tolist()

    t_des, t_base = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = run_replication(sc, model, v, rngs)
        t_des.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base = baseline_mmc(arrivals, services, args.servers)
        t_base.append(time.perf_counter() - t0)
    diff = float(np.max(np.abs(out.latency - np.asarray(base))))
    r_des = args.requests / min(t_des)
    r_base = args.requests / min(t_base)
    print(f"M/M/{args.servers} rho={args.rho:g}, {args.requests} requests, best of {args.repeat}")
    print(f"simulator.des      : {r_des:12,.0f} requests/s")
    print(f"idiomatic SimPy    : {r_base:12,.0f} requests/s")
    print(f"ratio des/baseline : {r_des / r_base:.2f}x   (max latency difference {diff:.2e} s)")


if __name__ == "__main__":
    main()
