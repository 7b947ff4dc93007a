"""A model server with one *process* per replica, as Python model servers deploy replicas.

A Python model has a GIL: worker threads of one interpreter serialise on its Python parts, and a
Keras model called eagerly is mostly Python dispatch, so two threads on two cores barely beat one.
Servers that want C replicas of a Python model (gunicorn/uvicorn workers, TorchServe workers, Triton's
Python backend instances, Ray Serve replicas) run C processes. This server does that:

* the front end (this process) puts ``(id, index, enqueue time)`` on one request queue
  (``multiprocessing.SimpleQueue``, a pipe) and a collector thread hands finished batches to the
  completion callback (LoadGen's ``QuerySamplesComplete``);
* each worker process loads the model and the same sample store (same seed), takes the oldest request
  (FCFS across workers), forms a batch (one worker at a time, as in :mod:`.server`), runs the model
  and sends back the batch's ids with its timestamps.

Timestamps are ``time.perf_counter`` (CLOCK_MONOTONIC on Linux: one clock for all processes). ``done``
is when the worker is free again (its response is on the way back); the return trip and the collector
are client-side overhead, as the issue path is.
"""

from __future__ import annotations

import os
import threading
import time
from multiprocessing import get_context

import numpy as np

from ..errors import InputError
from ..validation import check_integer, check_nonnegative
from .server import Completion, RecordLog, Request, ServerRecords

__all__ = ["ProcessModelServer"]


def _take_batch(requests, form_lock, max_batch: int, timeout_s: float) -> list | None:
    with form_lock:
        first = requests.get()
        if first is None:
            return None
        batch = [first]
        if max_batch == 1:
            return batch
        deadline = first[2] + timeout_s
        while len(batch) < max_batch:
            if not requests.empty():
                item = requests.get()
                if item is None:
                    requests.put(None)  # another worker's stop signal
                    break
                batch.append(item)
            elif time.perf_counter() < deadline:
                time.sleep(0.0001)
            else:
                break
        return batch


def _worker_main(wid: int, model: str, seed: int, threads: int | None, sample_count: int, max_batch: int,
                 timeout_s: float, warmup_calls: int, requests, responses, ready, busy, form_lock) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from ..profiling.profiler import ProfileConfig, prepare
        from ..profiling.zoo import make_inputs

        prepared = prepare(ProfileConfig(model, seed=seed, threads=(threads,) if threads else None), threads)
        runner = prepared.factory(None)()
        samples = make_inputs(prepared.input, sample_count, np.random.default_rng([seed, 11]))
        for b in range(1, max_batch + 1):
            x = samples[np.arange(b) % sample_count]
            for _ in range(warmup_calls):
                runner(x)
    except BaseException as exc:  # reported to the front end, which raises it
        ready.put((wid, isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"))
        return
    ready.put((wid, False, None))
    while True:
        batch = _take_batch(requests, form_lock, max_batch, timeout_s)
        if batch is None:
            return
        with busy.get_lock():
            busy.value += 1
            k = busy.value
        started = time.perf_counter()
        runner(samples[[r[1] for r in batch]])
        finished = time.perf_counter()
        with busy.get_lock():
            busy.value -= 1
        responses.put(([r[0] for r in batch], [r[2] for r in batch], started, finished, time.perf_counter(), k,
                       wid))


class ProcessModelServer:
    """Request queue → ``workers`` model processes (optional dynamic batcher) → completion callback.

    Parameters
    ----------
    model : str
        ``zoo:<name>`` or a model file; each worker process loads it (zoo weights from ``seed``).
    seed : int
        Seed of zoo weights and of the sample store (request ``index`` → the index-th random input).
    sample_count : int
        Inputs in the sample store.
    complete : callable
        ``complete(requests)`` is called with each finished batch's requests, in the front end.
    workers, max_batch_size, batch_timeout_s, warmup_calls
        As for :class:`~simulator.validate.server.ModelServer`.
    threads : int or None
        TensorFlow intra-op threads of each worker process (TFLite ``num_threads``); None: the runtime's
        default (one per core, in every process).
    """

    def __init__(self, model: str, seed: int, sample_count: int, complete: Completion, *, workers: int = 1,
                 max_batch_size: int = 1, batch_timeout_s: float = 0.0, warmup_calls: int = 20,
                 threads: int | None = None):
        self.workers = check_integer("replicas", workers, minimum=1, maximum=256)
        self.max_batch_size = check_integer("batch_size", max_batch_size, minimum=1, maximum=4096)
        self.batch_timeout_s = check_nonnegative("batch_timeout", batch_timeout_s)
        check_integer("warmup_calls", warmup_calls, minimum=0)
        self._complete = complete
        ctx = get_context("spawn")
        self._requests = ctx.SimpleQueue()
        self._responses = ctx.SimpleQueue()
        self._ready = ctx.SimpleQueue()
        self._busy = ctx.Value("i", 0)
        self._form_lock = ctx.Lock()
        self._procs = [ctx.Process(target=_worker_main, name=f"model-worker-{i}", daemon=True,
                                   args=(i, model, seed, threads, sample_count, self.max_batch_size,
                                         self.batch_timeout_s,
                                         warmup_calls, self._requests, self._responses, self._ready, self._busy,
                                         self._form_lock))
                       for i in range(self.workers)]
        self._collector = threading.Thread(target=self._collect, daemon=True, name="response-collector")
        self._records = RecordLog()
        self._errors: list[BaseException] = []

    def __enter__(self) -> ProcessModelServer:
        for p in self._procs:
            p.start()
        failures = [(user, msg) for _, user, msg in self._wait_ready() if msg]
        if failures:
            self._stop_workers()
            user, msg = failures[0]
            raise (InputError if user else RuntimeError)(f"a model worker process failed to start: {msg}")
        self._collector.start()
        return self

    def _wait_ready(self, poll_s: float = 0.05) -> list[tuple[int, bool, str | None]]:
        """Every worker's start-up report. A worker that dies before reporting (killed, or a start-up
        that never reached its own error handler, e.g. a script without a ``__main__`` guard under
        spawn) fails the start instead of leaving the front end waiting forever."""
        reports: dict[int, tuple[int, bool, str | None]] = {}
        while len(reports) < len(self._procs):
            if not self._ready.empty():
                report = self._ready.get()
                reports[report[0]] = report
                continue
            dead = [(i, p.exitcode) for i, p in enumerate(self._procs) if i not in reports and p.exitcode is not None]
            if dead:
                i, code = dead[0]
                if self._ready.empty():  # it may have reported just before exiting
                    self._stop_workers()
                    raise RuntimeError(f"model worker process {i} exited with status {code} before it was "
                                       "ready (if this runs from a script, guard its entry point with "
                                       "`if __name__ == \"__main__\":`)")
                continue
            time.sleep(poll_s)
        return list(reports.values())

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop_workers(self) -> None:
        for _ in self._procs:
            self._requests.put(None)
        for p in self._procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()

    def close(self) -> None:
        self._stop_workers()
        if self._collector.is_alive():
            self._responses.put(None)
            self._collector.join()
        if self._errors:
            raise self._errors[0]

    def submit(self, request_id: int, index: int) -> None:
        """Enqueue one request for the input ``index`` of the workers' sample store."""
        self._requests.put((request_id, index, time.perf_counter()))

    def start_recording(self) -> None:
        """Forget earlier timestamps and record from now on."""
        self._records.start()

    def stop_recording(self) -> ServerRecords:
        """Stop recording and return what was recorded since :meth:`start_recording`."""
        return self._records.stop()

    def _collect(self) -> None:
        while True:
            msg = self._responses.get()
            if msg is None:
                return
            ids, enqs, started, finished, done, k, wid = msg
            try:
                self._complete([Request(i, -1, e) for i, e in zip(ids, enqs)])
            except BaseException as exc:  # a failing callback must stop the test, not hang it
                self._errors.append(exc)
                raise
            self._records.add(enqs, started, finished, done, k, wid)
