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

from ..profiling.serving import STOP, WorkerThreads
from ..profiling.timing import Runner
from ..validation import check_integer, check_nonnegative

__all__ = ["ModelServer", "RecordLog", "Request", "ServerRecords"]

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


class RecordLog:
    """The rows of :class:`ServerRecords` a server records between :meth:`start` and :meth:`stop`.

    Workers (threads, or the collector of worker processes) :meth:`add` a row per request of each finished
    batch; rows are kept only while recording.
    """

    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._recording = False

    def start(self) -> None:
        """Forget earlier rows and record from now on."""
        self._rows = []
        self._recording = True

    def stop(self) -> ServerRecords:
        """Stop recording and return what was recorded since :meth:`start`."""
        self._recording = False
        rows, self._rows = self._rows, []
        if not rows:
            return ServerRecords.empty()
        cols = list(zip(*rows))
        f = [np.asarray(c, dtype=float) for c in cols[:4]]
        i = [np.asarray(c, dtype=np.int64) for c in cols[4:]]
        return ServerRecords(*f, *i)

    def add(self, enqueued: Sequence[float], started: float, finished: float, done: float, busy: int,
            worker: int) -> None:
        """Record one batch: its requests' enqueue times and the batch's timestamps, busy count and worker."""
        if self._recording:
            n = len(enqueued)
            for e in enqueued:
                self._rows.append((e, started, finished, done, n, busy, worker))


class ModelServer(WorkerThreads):
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
        self._form_lock = threading.Lock()
        self._busy_lock = threading.Lock()
        self._busy = 0
        self._records = RecordLog()
        super().__init__(queue.SimpleQueue(), self.workers, "model-worker")

    # -- client side -------------------------------------------------------------------------------
    def submit(self, request_id: int, index: int) -> None:
        """Enqueue one request for the input ``samples[index]``."""
        self._queue.put(Request(request_id, index, time.perf_counter()))

    def start_recording(self) -> None:
        """Forget earlier timestamps and record from now on."""
        self._records.start()

    def stop_recording(self) -> ServerRecords:
        """Stop recording and return what was recorded since :meth:`start_recording`."""
        return self._records.stop()

    # -- worker side -------------------------------------------------------------------------------
    def _take_batch(self) -> list | None:
        first = self._queue.get()
        if first is STOP:
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
            if item is STOP:
                self._queue.put(STOP)  # not ours to consume: another worker's stop signal
                break
            batch.append(item)
        return batch

    def _start(self, worker: int) -> Runner:
        samples = self._samples
        runner = self._factory()
        for b in range(1, self.max_batch_size + 1):
            x = np.stack([samples[i % len(samples)] for i in range(b)])
            for _ in range(self.warmup_calls):
                runner(x)
        return runner

    def _serve(self, runner: Runner, worker: int) -> None:
        samples = self._samples
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
            self._records.add([r.enqueued for r in batch], started, finished, done, busy, worker)
