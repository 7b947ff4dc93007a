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
from typing import Any, Self

import numpy as np

from ..validation import check_integer
from .timing import Measurement, Runner, RunnerFactory, StoppingRule, sample_concurrently

__all__ = ["STOP", "Request", "ServingLoop", "WorkerThreads", "measure_serving"]

STOP = object()
"""The item that tells the worker thread that takes it to return."""


@dataclass
class Request:
    """One request: its examples, its future and the worker's timestamps (``perf_counter`` seconds)."""

    examples: list[np.ndarray]
    future: Future = field(default_factory=Future)
    dequeued_at: float = 0.0
    ready_at: float = 0.0


class WorkerThreads:
    """Worker threads serving one request queue: the life cycle that every thread server here shares.

    Each thread first runs ``_start(worker) -> state`` (make its runner, warm it up), then
    ``_serve(state, worker)``, which takes requests from ``self._queue`` until it takes :data:`STOP`.
    Entering the context starts the threads and waits until each has started; the first start-up error
    is raised there. :meth:`close` puts one :data:`STOP` a thread on the queue, joins the threads and raises
    the first error in ``self._errors``.

    Parameters
    ----------
    requests : queue
        The request queue (``queue.Queue`` or ``queue.SimpleQueue``).
    workers : int
        Number of worker threads (already validated).
    name : str
        Thread name prefix: thread ``i`` is ``f"{name}-{i}"``.
    """

    def __init__(self, requests: queue.Queue | queue.SimpleQueue, workers: int, name: str):
        self._queue = requests
        self._errors: list[BaseException] = []
        self._started = threading.Semaphore(0)
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True, name=f"{name}-{i}")
                         for i in range(workers)]

    def __enter__(self) -> Self:
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
            self._queue.put(STOP)
        for t in self._threads:
            if t.is_alive():
                t.join()
        if self._errors:
            raise self._errors[0]

    def _run(self, worker: int) -> None:
        try:
            state = self._start(worker)
        except BaseException as exc:
            self._errors.append(exc)
            self._started.release()
            return
        self._started.release()
        self._serve(state, worker)

    def _start(self, worker: int) -> Any:
        raise NotImplementedError

    def _serve(self, state: Any, worker: int) -> None:
        raise NotImplementedError


class ServingLoop(WorkerThreads):
    """Request queue → worker threads → response futures.

    Parameters
    ----------
    factory : callable
        ``factory() -> runner``; called once in each worker thread.
    workers : int
        Number of worker threads.
    """

    def __init__(self, factory: RunnerFactory, workers: int = 1):
        self._factory = factory
        super().__init__(queue.Queue(), check_integer("workers", workers, minimum=1), "serving-worker")

    def submit(self, examples: list[np.ndarray]) -> Request:
        """Enqueue one request of ``len(examples)`` examples; its ``future`` yields a list of outputs."""
        req = Request(examples)
        self._queue.put(req)
        return req

    def _start(self, worker: int) -> Runner:
        return self._factory()

    def _serve(self, runner: Runner, worker: int) -> None:
        while True:
            req = self._queue.get()
            if req is STOP:
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
    with ServingLoop(factory, workers=concurrency) as loop:
        def start_client(i: int) -> Callable[[], tuple[float, float]]:
            examples = list(make_input(i))

            def one_sample() -> tuple[float, float]:
                t_enq = time.perf_counter()
                req = loop.submit(examples)
                req.future.result()
                t_resp = time.perf_counter()
                s = req.ready_at - req.dequeued_at
                return s, (t_resp - t_enq) - s

            return one_sample

        return sample_concurrently(start_client, concurrency, rule, handoff=True)
