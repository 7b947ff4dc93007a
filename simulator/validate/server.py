"""A real model server, as a user's Python server runs one: a request queue, worker threads, batching.

Requests go on one FCFS ``queue.Queue``; each of ``workers`` threads owns a runner (the model), takes the
oldest request, forms a batch (dynamic batching when ``max_batch_size > 1``), runs the model, and hands
the batch to a completion callback (LoadGen's ``QuerySamplesComplete``). Threads, not processes: this is
what a Python server in front of TensorFlow does, and TensorFlow releases the GIL inside its kernels.

Batching follows TF-Serving's rule, which the simulator models: a batch starts when ``max_batch_size``
requests wait or the oldest has waited ``batch_timeout_s``, and only when a worker is free. One worker at
a time forms a batch (a lock), so two free workers never split one batch's requests between them.

For every request the server records ``perf_counter`` timestamps (seconds)::

    enqueued  -- the client (LoadGen's issue callback) put it on the queue
    started   -- a worker has its batch and starts stacking the inputs and calling the model
    finished  -- the model call returned
    done      -- the completion callback returned; the worker is free again

``done - started`` of a batch is the time a worker is busy with it: the service time of a queue model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..validation import check_integer, check_nonnegative

__all__ = ["ModelServer", "Request", "ServerRecords"]

_STOP = object()

Runner = Callable[[np.ndarray], np.ndarray]
Completion = Callable[[list["Request"]], None]


@dataclass(slots=True)
class Request:
    """One request: the client's id, the index of its input in the server's sample store, and when
    it was enqueued (``perf_counter`` seconds)."""

    id: int
    index: int
    enqueued: float


@dataclass
class ServerRecords:
    """Per-request timestamps of one measurement window (seconds, ``perf_counter`` clock).

    Arrays are in completion order. ``busy`` is the number of workers busy with a batch when this
    request's batch started, itself included (what the simulator's contention model keys on).
    """

    enqueued: np.ndarray
    started: np.ndarray
    finished: np.ndarray
    done: np.ndarray
    batch_size: np.ndarray
    busy: np.ndarray
    worker: np.ndarray

    @property
    def n(self) -> int:
        return int(self.enqueued.size)

    @property
    def service_s(self) -> np.ndarray:
        """Worker busy time of each request's batch: model start → completion callback returned (s)."""
        return self.done - self.started

    @property
    def model_s(self) -> np.ndarray:
        """The model call alone (s)."""
        return self.finished - self.started

    @property
    def sojourn_s(self) -> np.ndarray:
        """Enqueue → completion callback returned (s)."""
        return self.done - self.enqueued

    @classmethod
    def empty(cls) -> ServerRecords:
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls(f, f, f, f, i, i, i)


class ModelServer:
    """Request queue → ``workers`` model threads (with an optional dynamic batcher) → completion callback.

    Parameters
    ----------
    factory : callable
        ``factory() -> runner``; called once in each worker thread (a runner maps a batch array to outputs).
    samples : sequence of ndarray
        The sample store: request ``index`` refers to ``samples[index]`` (one example, no batch axis).
    complete : callable
        ``complete(requests)`` is called by the worker with each finished batch's requests.
    workers : int
        Worker threads (model replicas).
    max_batch_size : int
        Largest batch; 1 disables batching.
    batch_timeout_s : float
        Longest the oldest request waits for its batch to fill (seconds); 0 = take what is queued.
    warmup_calls : int
        Unrecorded model calls per worker and batch size before the server accepts requests (the first
        calls of a TensorFlow model trace and allocate).
    """

    def __init__(self, factory: Callable[[], Runner], samples: Sequence[np.ndarray], complete: Completion, *,
                 workers: int = 1, max_batch_size: int = 1, batch_timeout_s: float = 0.0,
                 warmup_calls: int = 20):
        self._factory = factory
        self._samples = list(samples)
        self._complete = complete
        self.workers = check_integer("replicas", workers, minimum=1, maximum=256)
        self.max_batch_size = check_integer("batch_size", max_batch_size, minimum=1, maximum=4096)
        self.batch_timeout_s = check_nonnegative("batch_timeout", batch_timeout_s)
        self.warmup_calls = check_integer("warmup_calls", warmup_calls, minimum=0)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._form_lock = threading.Lock()
        self._busy_lock = threading.Lock()
        self._busy = 0
        self._ready = threading.Semaphore(0)
        self._errors: list[BaseException] = []
        self._log: list[tuple] = []
        self._recording = False
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True, name=f"model-worker-{i}")
                         for i in range(self.workers)]

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> ModelServer:
        for t in self._threads:
            t.start()
        for _ in self._threads:
            self._ready.acquire()
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
        if self._errors:
            raise self._errors[0]

    # -- client side -------------------------------------------------------------------------------
    def submit(self, request_id: int, index: int) -> None:
        """Enqueue one request for the input ``samples[index]``."""
        self._queue.put(Request(request_id, index, time.perf_counter()))

    def start_recording(self) -> None:
        """Forget earlier timestamps and record from now on."""
        self._log = []
        self._recording = True

    def stop_recording(self) -> ServerRecords:
        """Stop recording and return what was recorded since :meth:`start_recording`."""
        self._recording = False
        log, self._log = self._log, []
        if not log:
            return ServerRecords.empty()
        cols = list(zip(*log))
        f = [np.asarray(c, dtype=float) for c in cols[:4]]
        i = [np.asarray(c, dtype=np.int64) for c in cols[4:]]
        return ServerRecords(*f, *i)

    # -- worker side -------------------------------------------------------------------------------
    def _take_batch(self) -> list | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        if self.max_batch_size == 1:
            return batch
        deadline = first.enqueued + self.batch_timeout_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # not ours to consume: another worker's stop signal
                break
            batch.append(item)
        return batch

    def _work(self, worker: int) -> None:
        samples = self._samples
        try:
            runner = self._factory()
            for b in range(1, self.max_batch_size + 1):
                x = np.stack([samples[i % len(samples)] for i in range(b)])
                for _ in range(self.warmup_calls):
                    runner(x)
        except BaseException as exc:
            self._errors.append(exc)
            self._ready.release()
            return
        self._ready.release()
        while True:
            if self.max_batch_size == 1:
                batch = self._take_batch()
            else:
                with self._form_lock:
                    batch = self._take_batch()
            if batch is None:
                return
            with self._busy_lock:
                self._busy += 1
                busy = self._busy
            try:
                started = time.perf_counter()
                runner(np.stack([samples[r.index] for r in batch]))
                finished = time.perf_counter()
                self._complete(batch)
                done = time.perf_counter()
            except BaseException as exc:  # a broken model must stop the test, not hang it
                self._errors.append(exc)
                raise
            finally:
                with self._busy_lock:
                    self._busy -= 1
            if self._recording:
                n = len(batch)
                for r in batch:
                    self._log.append((r.enqueued, started, finished, done, n, busy, worker))
