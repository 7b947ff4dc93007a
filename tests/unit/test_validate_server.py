"""The thread server's queue, batcher and timestamps, with a fake model (no TensorFlow)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from simulator.validate.calibration import busy_fraction, effective_batches
from simulator.validate.harness import replica_service_mean, replica_threads
from simulator.validate.server import ModelServer
from tests.conftest import make_profile_dict


def _fake_factory(seconds: float = 0.002):
    def factory():
        def run(x: np.ndarray) -> np.ndarray:
            time.sleep(seconds)
            return x.sum(axis=tuple(range(1, x.ndim)))
        return run
    return factory


def _serve(workers: int, max_batch: int, timeout_s: float, arrivals: list[float]):
    done, lock = [], threading.Lock()
    finished = threading.Semaphore(0)

    def complete(batch):
        with lock:
            done.append([r.id for r in batch])
        for _ in batch:
            finished.release()

    samples = [np.full(3, i, dtype=np.float32) for i in range(4)]
    with ModelServer(_fake_factory(), samples, complete, workers=workers, max_batch_size=max_batch,
                     batch_timeout_s=timeout_s, warmup_calls=1) as server:
        server.start_recording()
        t0 = time.perf_counter()
        for i, at in enumerate(arrivals):
            time.sleep(max(0.0, at - (time.perf_counter() - t0)))
            server.submit(i, i % 4)
        for _ in arrivals:
            assert finished.acquire(timeout=10)
        records = server.stop_recording()
    return done, records


def test_every_request_completes_once_with_ordered_timestamps():
    done, rec = _serve(workers=2, max_batch=1, timeout_s=0.0, arrivals=[0.001 * i for i in range(40)])
    assert sorted(i for b in done for i in b) == list(range(40))
    assert rec.n == 40
    assert np.all(rec.enqueued <= rec.started) and np.all(rec.started < rec.finished)
    assert np.all(rec.finished <= rec.done)
    assert set(rec.worker.tolist()) <= {0, 1} and rec.busy.max() <= 2
    assert np.all(rec.service_s >= 0.002 * 0.9)
    rho = busy_fraction(rec, 2)
    assert 0 < rho <= 1.0 + 1e-9


def test_batcher_fills_batches_from_a_backlog():
    # 12 requests at once, batches of up to 4, one worker: three full batches, FCFS
    done, rec = _serve(workers=1, max_batch=4, timeout_s=0.05, arrivals=[0.0] * 12)
    assert [len(b) for b in done] == [4, 4, 4]
    assert done[0] == [0, 1, 2, 3]
    eff = effective_batches(rec, batch_timeout_s=0.05)
    assert eff["batch_size"].tolist() == [4, 4, 4]


def test_batch_timeout_bounds_the_wait_for_a_full_batch():
    done, rec = _serve(workers=1, max_batch=8, timeout_s=0.01, arrivals=[0.0])
    assert done == [[0]]
    assert rec.started[0] - rec.enqueued[0] >= 0.01 * 0.9


def test_nominal_service_mean_and_threads():
    from simulator.profiles import Profile

    prof = Profile.from_dict(make_profile_dict({1: np.full(10, 0.002)}, concurrency={2: np.full(10, 0.003)}))
    assert replica_service_mean(prof, 1) == pytest.approx(0.002)
    assert replica_service_mean(prof, 2) == pytest.approx(0.003)
    assert replica_service_mean(prof, 8) == pytest.approx(0.003)  # nearest measured level below
    assert replica_threads(1) >= 1 and replica_threads(10_000) == 1


class _DeadWorker:
    """A worker process that exited before reporting (what a spawn without a ``__main__`` guard does)."""

    exitcode = 1

    def join(self, timeout=None):
        return None

    def is_alive(self):
        return False


class _Queue:
    def __init__(self, items=()):
        self.items = list(items)

    def empty(self):
        return not self.items

    def get(self):
        return self.items.pop(0)

    def put(self, item):
        self.items.append(item)


def test_process_server_start_fails_when_a_worker_dies_before_it_is_ready():
    """The front end must not wait forever for a start-up report that will never come."""
    from simulator.validate.process_server import ProcessModelServer

    server = object.__new__(ProcessModelServer)
    server._procs = [_DeadWorker(), _DeadWorker()]
    server._ready = _Queue([(0, False, None)])  # worker 0 reported, then exited; worker 1 never did
    server._requests = _Queue()
    with pytest.raises(RuntimeError, match="worker process 1 exited with status 1 before it was ready"):
        server._wait_ready(poll_s=0.001)
