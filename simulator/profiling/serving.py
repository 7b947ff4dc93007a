"""A real serving loop to time requests the way a server handles them.

Clients put requests on a ``queue.Queue``; worker threads take one, stack its examples into a batch,
run the model, split the output into per-example responses and complete the request's
``concurrent.futures.Future``. Per request we record

* the **service time**: worker dequeues the request → response ready (just before the future is
  completed). This is the time a server is busy with the request, i.e. what a queue model needs;
* the **hand-off overhead**: the rest of the end-to-end time, (enqueue → client has the response) minus
  the service time: queue hand-off, thread wake-ups and the response delivery. It adds to latency but does
  not occupy the worker.

Each of ``concurrency`` closed-loop clients keeps one request in flight, and there are as many workers,
so the queue is never the bottleneck and the wait measured is the hand-off itself.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..validation import check_integer
from .timing import LoadSampler, Measurement, RunnerFactory, StoppingRule, stop_outcome

__all__ = ["Request", "ServingLoop", "measure_serving"]

_STOP = object()


@dataclass
class Request:
    """One request: its examples, its future and the worker's timestamps (``perf_counter`` seconds)."""

    examples: list[np.ndarray]
    future: Future = field(default_factory=Future)
    dequeued_at: float = 0.0
    ready_at: float = 0.0


class ServingLoop:
    """Request queue → worker threads → response futures.

    Parameters
    ----------
    factory : callable
        ``factory() -> runner``; called once in each worker thread.
    workers : int
        Number of worker threads.
    """

    def __init__(self, factory: RunnerFactory, workers: int = 1):
        self._queue: queue.Queue = queue.Queue()
        self._factory = factory
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"serving-worker-{i}")
                         for i in range(check_integer("workers", workers, minimum=1))]
        self._started = threading.Semaphore(0)
        self._errors: list[BaseException] = []

    def __enter__(self) -> ServingLoop:
        for t in self._threads:
            t.start()
        for _ in self._threads:
            self._started.acquire()
        if self._errors:
            self.close()
            raise self._errors[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            if t.is_alive():
                t.join()

    def submit(self, examples: list[np.ndarray]) -> Request:
        """Enqueue one request of ``len(examples)`` examples; its ``future`` yields a list of outputs."""
        req = Request(examples)
        self._queue.put(req)
        return req

    def _work(self) -> None:
        try:
            runner = self._factory()
        except BaseException as exc:
            self._errors.append(exc)
            self._started.release()
            return
        self._started.release()
        while True:
            req = self._queue.get()
            if req is _STOP:
                return
            req.dequeued_at = time.perf_counter()
            try:
                batch = np.stack(req.examples)
                out = runner(batch)
                responses = list(out)
            except BaseException as exc:
                req.ready_at = time.perf_counter()
                req.future.set_exception(exc)
                continue
            req.ready_at = time.perf_counter()
            req.future.set_result(responses)


def measure_serving(factory: RunnerFactory, make_input: Callable[[int], np.ndarray], concurrency: int,
                    rule: StoppingRule) -> Measurement:
    """Time requests through :class:`ServingLoop` with ``concurrency`` closed-loop clients and workers.

    ``make_input(i)`` returns client ``i``'s batch (first axis = examples); each request carries it as a
    list of examples, so stacking and splitting are part of the measured service.
    """
    concurrency = check_integer("concurrency", concurrency, minimum=1)
    service: list[list[float]] = [[] for _ in range(concurrency)]
    handoff: list[list[float]] = [[] for _ in range(concurrency)]
    warm_counts = [0] * concurrency
    errors: list[BaseException] = []
    stop = threading.Event()
    ready = threading.Barrier(concurrency + 1)

    with ServingLoop(factory, workers=concurrency) as loop:
        def client(i: int) -> None:
            examples = list(make_input(i))

            def one() -> tuple[float, float]:
                t_enq = time.perf_counter()
                req = loop.submit(examples)
                req.future.result()
                t_resp = time.perf_counter()
                s = req.ready_at - req.dequeued_at
                return s, (t_resp - t_enq) - s

            try:
                begin = time.perf_counter()
                while (warm_counts[i] < rule.warmup_calls
                       or (time.perf_counter() - begin < rule.warmup_seconds
                           and warm_counts[i] < max(10 * rule.warmup_calls, 1))):
                    one()
                    warm_counts[i] += 1
            except BaseException as exc:
                errors.append(exc)
                ready.abort()
                return
            try:
                ready.wait()
            except threading.BrokenBarrierError:
                return
            try:
                while not stop.is_set():
                    s, h = one()
                    service[i].append(s)
                    handoff[i].append(h)
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
        for t in clients:
            t.start()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            for t in clients:
                t.join()
            raise errors[0] from None
        load = LoadSampler()
        start = time.perf_counter()
        outcome = None
        while outcome is None and not stop.is_set():
            time.sleep(0.05 if concurrency == 1 else 0.2)
            pooled = np.concatenate([np.asarray(w) for w in service])
            outcome = stop_outcome(pooled, rule, time.perf_counter() - start)
            load.poll()
        stop.set()
        for t in clients:
            t.join()
        if errors:
            raise errors[0]
        wall = time.perf_counter() - start
    samples = np.concatenate([np.asarray(s) for s in service])
    handoffs = np.concatenate([np.asarray(h) for h in handoff])
    return Measurement(samples, outcome, wall, min(warm_counts), handoff_s=handoffs,
                       loadavg=load.record())
