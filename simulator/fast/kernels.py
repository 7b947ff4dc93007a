"""Compiled queue kernels: FCFS G/G/c by the Kiefer–Wolfowitz recursion, and dynamic batching.

State of the queue
------------------
``W`` holds the time each of the c replicas is next free. FCFS start times never decrease (an arrival or
a batch starts at ``max(t, min W)`` and the replaced minimum only grows), so a new service starts
at ``max(t, min W)`` on the replica that frees first, and the replicas busy at that instant are those
with ``W > start``: that is the contention count (itself included), without an event list. For up to
``HEAP_MIN`` replicas ``min W`` is a linear scan; beyond, ``W`` is kept as a binary min-heap.

Every request has a status: 0 served by the model (or still waiting), 1 cache hit, 2 dropped.

The two kernels (same semantics as :mod:`simulator.des.stations`):

* :func:`run_plain` — no batching. A queue limit K drops an arrival that finds every replica busy and
  K requests waiting; the waiting ones are those accepted whose start lies after the arrival, kept as a
  ring of start times.
* :func:`run_batching` — TF-Serving's ``SharedBatchScheduler``, batch timeout T >= 0 (T = 0: greedy).
  Requests wait in one FIFO queue; a *free* replica starts a batch as soon as B requests wait or the
  oldest has waited T, and takes the oldest min(waiting, B). While every replica is busy nothing is
  closed and the queue keeps filling. So with q requests waiting from ``head``, the next batch starts
  at s = max(min W, ready), ready = min(arrival of the B-th waiting request, oldest's arrival + T),
  unless an arrival comes first (it joins, and may make the batch full); its members are the oldest
  min(q, B). That is a KW-style recursion over batches, with the waiting requests a contiguous index
  range from ``head`` (hits and drops inside it are skipped). A queue limit K drops an arrival that
  finds K requests waiting, unless it starts service at its own arrival instant (a free replica, and
  with it the queue becomes ready: T = 0, or it is the B-th waiting): then it needs no waiting place.
  Breakdown: the batch was ready at r = min(B-th member's arrival if it is full, oldest's arrival + T),
  capped at s; member i has batch wait max(0, r - a_i) and queue wait s - max(r, a_i). With T = 0 all
  of a request's wait is queueing.

A batch runs with the variate of its oldest request; its service time is shared by its members and
counted once in the busy time. Replicas are identical, so when several are free at a batch's start
it does not matter which one takes it (the kernels take the first to have freed; the others stay
free). The plain kernel's queue-limit ring starts small; when it finds the ring full it stops and
returns where, and the caller grows the ring and resumes (no allocation inside the loop). The batching
kernel needs no ring: it visits events in time order, so the waiting count is exact at each arrival.
Its T = 0 case is the former greedy kernel's rule, at the same speed (measured 16-30 M requests/s for
c = 1..16, within noise of it).

Ties (an arrival at the very instant a replica frees or a batch deadline falls due) resolve as:
departures and deadlines first, then the batches they start, then the arrival (so the queue-limit count
excludes a batch starting at that instant, and the arrival does not join it). They have probability
zero with continuous variates. SimPy orders simultaneous events by when they were scheduled instead, so
with exactly coinciding times (deterministic services on a grid-aligned trace) the engines may decide a
drop, a batch membership or a contention count differently.

Each kernel works on one chunk and can stop with requests still waiting (``final=False``): it returns
the local index from which requests may still wait, and the caller carries that tail into the next
chunk (with the batching state: head, waiting count, ready time), so chunked and one-shot runs are
identical. Results always go to per-request arrays ``out`` = (latency, batch size, batch wait, queue
wait, service); streaming then folds the finished part of each chunk into sums and a latency histogram
(:func:`fold`). A run-time "keep or fold" flag inside the kernels cost 4x: the branch kept LLVM from
holding the loop state in registers.
"""

from __future__ import annotations

import numba
import numpy as np

from ..service import service_time
from .sketch import hist_add

HEAP_MIN = 14  # replicas above which W is a heap rather than scanned (measured crossover ~15)

# fstat: float accumulators. F_LAT..F_HITLAT and the counters cover observed (post warm-up) requests.
# F_LAT_ALL sums every answered request's latency, warm-up included (for Little's L).
F_LAT, F_BWAIT, F_QWAIT, F_SVC, F_HITLAT, F_BUSY_OBS, F_BUSY, F_END, F_LMIN, F_LMAX, F_LAT2, F_LAT_ALL = range(12)
N_FSTAT = 12
# istat: integer counters.
I_DONE, I_DROP, I_HIT, I_BATCH_OBS, I_BATCHED_OBS, I_BATCH, I_MODEL = range(7)
N_ISTAT = 7


def new_stats(nbuckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fs = np.zeros(N_FSTAT)
    fs[F_LMIN] = np.inf
    fs[F_LMAX] = -np.inf
    return fs, np.zeros(N_ISTAT, np.int64), np.zeros(nbuckets, np.int64)


@numba.njit(cache=True, inline="always")
def _argmin(W, use_heap):
    if use_heap:
        return 0
    # Branch-free scan: a data-dependent branch here mispredicts about every other request.
    j = 0
    w = W[0]
    for m in range(1, W.size):
        x = W[m]
        b = x < w
        j = m if b else j
        w = x if b else w
    return j


@numba.njit(cache=True, inline="always")
def _assign(W, j, value, use_heap):
    """Replica j is next free at ``value`` (with a heap, j is the root: replace it and sift down)."""
    if not use_heap:
        W[j] = value
        return
    n = W.size
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        m = left
        if left + 1 < n and W[left + 1] < W[left]:
            m = left + 1
        if W[m] < value:
            W[i] = W[m]
            i = m
        else:
            break
    W[i] = value


@numba.njit(cache=True, inline="always")
def _busy(W, s):
    """Replicas busy at a service start s, the starting one included."""
    k = 1
    for m in range(W.size):
        if W[m] > s:
            k += 1
    return k


@numba.njit(cache=True, inline="always")
def _rec_model(i, a, close, s, d, sv, size, out):
    """Request i (arrived a) in a batch ready for it at ``close``, started s, done d, service sv."""
    out[0][i] = d - a
    out[1][i] = size
    out[2][i] = close - a
    out[3][i] = s - close
    out[4][i] = sv


@numba.njit(cache=True, inline="always")
def _ring_push(ring, rs, t, size):
    """Append (start t, size) to the ring (rows: start, size); rs = [head, count, ...]. Room is checked
    by the caller (the kernels stop and let Python grow the ring)."""
    k = (rs[0] + rs[1]) % ring.shape[1]
    ring[0, k] = t
    ring[1, k] = size
    rs[1] += 1


@numba.njit(cache=True, inline="always")
def _ring_pop_started(ring, rs, a):
    """Forget the entries whose start is <= a; return the number of requests they held."""
    cap = ring.shape[1]
    freed = 0
    while rs[1] > 0 and ring[0, rs[0]] <= a:
        freed += np.int64(ring[1, rs[0]])
        rs[0] = (rs[0] + 1) % cap
        rs[1] -= 1
    return freed


def grow_ring(ring: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """A ring twice as long holding the same entries from index 0 (rs[0] is reset)."""
    cap = ring.shape[1]
    idx = (rs[0] + np.arange(rs[1])) % cap
    bigger = np.zeros((2, 2 * cap))
    bigger[:, :rs[1]] = ring[:, idx]
    rs[0] = 0
    return bigger


@numba.njit(cache=True, inline="always")
def _add_batch(fs, ist, busy, nb, end, busy_obs, nb_obs, batched_obs):
    fs[F_BUSY] += busy
    fs[F_BUSY_OBS] += busy_obs
    if end > fs[F_END]:
        fs[F_END] = end
    ist[I_BATCH] += nb
    ist[I_BATCH_OBS] += nb_obs
    ist[I_BATCHED_OBS] += batched_obs


@numba.njit(cache=True, nogil=True)
def run_plain(arr, var, status, n0, c_limit, W, ring, rs, m, hit_lat, out, g0, warm, fs, ist):
    """FCFS G/G/c, one request per service, from local index n0 on.

    ``c_limit`` is the queue limit K (-1: none); ``rs`` = [ring head, ring count, waiting count].
    Returns the index where it stopped: ``arr.size``, or earlier when the ring needs to grow.
    """
    mode, means, ev, es, el, esc, slow = m
    use_heap = W.size > HEAP_MIN
    contention = slow.size > 2
    has_limit = c_limit >= 0
    cap = ring.shape[1]
    busy_all = 0.0
    busy_obs = 0.0
    end = 0.0
    nb = 0
    nb_obs = 0
    stop = arr.size
    for i in range(n0, arr.size):
        a = arr[i]
        if status[i] == 1:
            out[0][i] = hit_lat
            end = max(end, a + hit_lat)
            continue
        j = _argmin(W, use_heap)
        wj = W[j]
        if has_limit:
            if rs[1] >= cap:
                stop = i
                break
            rs[2] -= _ring_pop_started(ring, rs, a)
            if wj > a and rs[2] >= c_limit:
                status[i] = 2
                continue
        s = max(a, wj)
        busy = _busy(W, s) if contention else 1
        sv = service_time(mode, means, ev, es, el, esc, slow, 1, var[i], busy)
        d = s + sv
        _assign(W, j, d, use_heap)
        if has_limit and s > a:
            _ring_push(ring, rs, s, 1.0)
            rs[2] += 1
        _rec_model(i, a, a, s, d, sv, 1, out)
        busy_all += sv
        nb += 1
        end = max(end, d)
        if g0 + i >= warm:
            busy_obs += sv
            nb_obs += 1
    _add_batch(fs, ist, busy_all, nb, end, busy_obs, nb_obs, nb_obs)
    return stop


@numba.njit(cache=True, inline="always")
def _start_batch(arr, var, status, head, q, B, timeout, s, j, W, use_heap, contention, m, out):
    """Replica j starts a batch of the oldest min(q, B) waiting requests (from ``head``) at time s.

    The batch was ready at r = min(B-th member's arrival if full, oldest's arrival + timeout), capped
    at s; member p records close = max(r, a_p). Returns (index after the last member, first member,
    batch size, service time).
    """
    mode, means, ev, es, el, esc, slow = m
    take = q if q < B else B
    while status[head] != 0:
        head += 1
    first = head
    last = head
    k = 0
    p = head
    while k < take:
        if status[p] == 0:
            k += 1
            last = p
        p += 1
    r = arr[first] + timeout
    if take == B and arr[last] < r:
        r = arr[last]
    if s < r:
        r = s
    busy = _busy(W, s) if contention else 1
    sv = service_time(mode, means, ev, es, el, esc, slow, take, var[first], busy)
    d = s + sv
    _assign(W, j, d, use_heap)
    for p in range(first, last + 1):
        if status[p] == 0:
            a = arr[p]
            _rec_model(p, a, r if r > a else a, s, d, sv, take, out)
    return last + 1, first, take, sv


@numba.njit(cache=True)
def _full_ready(arr, status, head, B, ready):
    """min(ready, arrival of the B-th waiting request from ``head``): at least B wait after a batch.

    Rare (a backlog of B or more with a timeout), so kept out of line: inlined, its loop slowed the
    common path by ~7 %.
    """
    k = 0
    p = head
    while True:
        if status[p] == 0:
            k += 1
            if k == B:
                break
        p += 1
    return arr[p] if arr[p] < ready else ready


@numba.njit(cache=True, nogil=True)
def run_batching(arr, var, status, n0, final, B, timeout, c_limit, W, ts, m, hit_lat, out, g0, warm, fs, ist):
    """Dynamic batching (TF-Serving), timeout >= 0, from local index n0 on (see the module notes).

    A recursion over batches: with q requests waiting from ``head`` and ``ready`` the earlier of the
    oldest's deadline and the B-th's arrival, the next batch starts at s = max(min W, ready) unless an
    arrival comes first (strictly before s: it joins, which may make the queue full and s earlier).
    ts = [head (local index), waiting count q, ready time]. Returns the local index from which
    requests may still wait (``arr.size`` when none do).
    """
    use_heap = W.size > HEAP_MIN
    contention = m[6].size > 2
    has_limit = c_limit >= 0
    greedy = timeout == 0.0
    head = np.int64(ts[0])
    q = np.int64(ts[1])
    ready = ts[2]
    busy_all = 0.0
    busy_obs = 0.0
    end = 0.0
    nb = 0
    nb_obs = 0
    batched_obs = 0
    n = arr.size
    i = n0
    while True:
        j = _argmin(W, use_heap)
        wmin = W[j]
        s = wmin if wmin > ready else ready
        if q > 0 and not (i < n and arr[i] < s):
            if i >= n and not final:
                break  # an arrival of the next chunk may still come before s
        elif i < n:
            a = arr[i]
            if status[i] == 1:
                out[0][i] = hit_lat
                end = max(end, a + hit_lat)
                i += 1
                continue
            # A request that starts at its own arrival (a free replica, and it makes the queue ready)
            # needs no waiting place.
            if has_limit and q >= c_limit and not (wmin <= a and (greedy or q + 1 >= B)):
                status[i] = 2
                i += 1
                continue
            if q == 0:
                head = i
                ready = a + timeout
            q += 1
            if q == B and a < ready:
                ready = a
            i += 1
            if wmin > a or ready > a:
                continue
            s = a  # it made the queue ready at a free replica (W unchanged: j is still the first free)
        else:
            break
        head, first, size, sv = _start_batch(arr, var, status, head, q, B, timeout, s, j, W, use_heap,
                                             contention, m, out)
        q -= size
        if q > 0:  # the next batch: ready at the new oldest's deadline, or the B-th's arrival if earlier
            while status[head] != 0:
                head += 1
            ready = arr[head] + timeout
            if q >= B and timeout > 0.0:
                ready = _full_ready(arr, status, head, B, ready)
        busy_all += sv
        nb += 1
        end = max(end, s + sv)
        if g0 + first >= warm:
            busy_obs += sv
            nb_obs += 1
            batched_obs += size
    _add_batch(fs, ist, busy_all, nb, end, busy_obs, nb_obs, batched_obs)
    ts[0] = head
    ts[1] = q
    ts[2] = ready
    return head if q > 0 else n


@numba.njit(cache=True, nogil=True)
def fold(out, status, lo, hi, hit_lat, g0, warm, fs, ist, hist):
    """Add the finished requests lo..hi-1 (local) to the streaming sums, counts and latency histogram.

    Requests before global index ``warm`` count only towards ``F_LAT_ALL`` (Little's L over the run).
    """
    lat, _, bw, qw, sv = out
    scratch = np.empty(1)
    for i in range(lo, hi):
        st = status[i]
        obs = g0 + i >= warm
        if st == 2:
            if obs:
                ist[I_DROP] += 1
            continue
        x = hit_lat if st == 1 else lat[i]
        fs[F_LAT_ALL] += x
        if not obs:
            continue
        fs[F_LAT] += x
        fs[F_LAT2] += x * x
        if st == 1:
            fs[F_HITLAT] += x
            ist[I_HIT] += 1
        else:
            fs[F_BWAIT] += bw[i]
            fs[F_QWAIT] += qw[i]
            fs[F_SVC] += sv[i]
            ist[I_MODEL] += 1
        ist[I_DONE] += 1
        if x < fs[F_LMIN]:
            fs[F_LMIN] = x
        if x > fs[F_LMAX]:
            fs[F_LMAX] = x
        hist_add(hist, scratch, x)
