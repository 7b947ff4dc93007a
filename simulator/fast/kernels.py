"""Compiled queue kernels: FCFS G/G/c by the Kiefer–Wolfowitz recursion, and dynamic batching.

State of the queue
------------------
``W`` holds the time each of the c replicas is next free. FCFS start times never decrease (an arrival or
a batch starts at ``max(t, min W)`` and the replaced minimum only grows), so a new service starts
at ``max(t, min W)`` on the replica that frees first, and the replicas busy at that instant are those
with ``W > start``: that is the contention count (itself included), without an event list. For up to
``HEAP_MIN`` replicas ``W`` is kept sorted, so ``min W`` is ``W[0]`` and putting the new free time in
its place is c independent min/max (no search, no branch); beyond, ``W`` is a binary min-heap. Either
way the kernels keep ``W[0]`` in a register from one service to the next, so the loop-carried chain
of a request is max, add, min. Without batching and for up to ``REG_MAX`` = 8 replicas, the whole
sorted ``W`` lives in registers (:func:`_run_plain_regs`), so no free time goes through memory.
Measured at c = 8, ρ = 0.9 (kernel alone, results into reused arrays): 12.0 ns/request with the former
linear argmin scan (c compares chained through memory), 4.9 ns sorted in memory, 3.2 ns in registers;
sorted insertion beats the heap up to c ≈ 900.

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
Its T = 0 case is the former greedy kernel's rule. It writes out the start of a batch rather than
calling an inlined helper with the arrays, and takes the service model's mode as a compile-time
constant: numba reference-counted the arrays of those calls inside the loop (atomic operations that
LLVM could not pair up), which made it 3-5x slower (at c = 4..8, B = 4..8: 24-54 ns per request
against 7.5-10 now).

Ties (an arrival at the very instant a replica frees or a batch deadline falls due) resolve as:
departures and deadlines first, then the batches they start, then the arrival (so the queue-limit count
excludes a batch starting at that instant, and the arrival does not join it). They have probability
zero with continuous variates. SimPy orders simultaneous events by when they were scheduled instead, so
with exactly coinciding times (deterministic services on a grid-aligned trace) the engines may decide a
drop, a batch membership or a contention count differently.

Each kernel works on one chunk and can stop with requests still waiting (``final=False``): it returns
the local index from which requests may still wait, and the caller carries that tail into the next
chunk (with the batching state: head, waiting count, ready time), so chunked and one-shot runs are
identical. Results go to per-request arrays ``out`` = (latency, batch size, batch wait, queue wait,
service): every request's latency is written (nan when dropped), the other fields only for requests
served by the model, and the batch wait only with batching (without, it is 0), so the caller passes
those zeroed. Streaming then folds the finished part of each chunk into sums and a latency histogram
(:func:`fold`); without batching the kernel folds each request itself instead (``hist`` given and
``out`` None: see :func:`_acc_load`). A run-time "keep or fold" flag inside the kernels cost 4x: the
branch kept LLVM from holding the loop state in registers; the fold is chosen at compile time instead.
"""

from __future__ import annotations

import numba
import numpy as np

from ..service import environment_factor, service_time
from .sketch import bucket

REG_MAX = 8  # replicas up to which the plain kernel keeps the free times in registers
HEAP_MIN = 900  # replicas above which W is a heap rather than kept sorted (measured crossover 900-1000)

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
def _replace_first(W, value, use_heap):
    """The replica that frees first (``W[0]``) is next free at ``value``; returns the new ``W[0]``.

    Sorted mode: putting ``value`` (>= W[0]) in place of ``W[0]`` is c independent min/max, with no
    search and no branch: new ``W[k]`` = max(W[k], min(W[k+1], value)). The min of the next request is
    then a register away (the caller keeps the returned ``W[0]``), so the loop-carried chain is max,
    add, min instead of a c-long compare chain through memory. Heap mode: replace the root, sift down.
    """
    n = W.size
    if not use_heap:
        if n == 1:
            W[0] = value
            return value
        prev = W[1]
        first = prev if prev < value else value
        W[0] = first
        for k in range(1, n - 1):
            nxt = W[k + 1]
            lo = nxt if nxt < value else value
            W[k] = prev if prev > lo else lo
            prev = nxt
        W[n - 1] = prev if prev > value else value
        return first
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
    return W[0]


@numba.njit(cache=True, inline="always")
def _busy(W, s):
    """Replicas busy at a service start s, the starting one included."""
    k = 1
    for m in range(W.size):
        k += np.int64(W[m] > s)  # branch-free (vectorised): the comparison is a coin toss
    return k


# Streaming folds each outcome of the plain kernel at once (``hist`` given, ``out`` None) into the
# sums, counts, min/max and latency histogram that :func:`fold` computes from the per-request arrays
# (``out`` given, ``hist`` None), with the same additions in the same order: that saves writing and
# re-reading 36 bytes per request (4.2 ns per request for kernel and fold together against 5.4 ns, at
# c = 8). The kernel tests ``hist is not None`` and ``out is not None``: numba prunes a branch on an
# argument that is None at compile time, so each kind of call compiles its own loop with no run-time
# flag, and the sums travel through the loop as a tuple of locals (registers), not through ``fs``.

@numba.njit(cache=True, inline="always")
def _acc_load(fs):
    """The running sums and counts of :func:`fold`, as a tuple of locals (written back by _acc_store)."""
    return (fs[F_LAT_ALL], fs[F_LAT], fs[F_LAT2], fs[F_HITLAT], fs[F_BWAIT], fs[F_QWAIT], fs[F_SVC],
            fs[F_LMIN], fs[F_LMAX], 0, 0, 0)


@numba.njit(cache=True, inline="always")
def _acc_store(acc, fs, ist):
    s_all, s_lat, s_lat2, s_hit, s_bw, s_qw, s_sv, lmin, lmax, n_drop, n_hit, n_model = acc
    fs[F_LAT_ALL] = s_all
    fs[F_LAT] = s_lat
    fs[F_LAT2] = s_lat2
    fs[F_HITLAT] = s_hit
    fs[F_BWAIT] = s_bw
    fs[F_QWAIT] = s_qw
    fs[F_SVC] = s_sv
    fs[F_LMIN] = lmin
    fs[F_LMAX] = lmax
    ist[I_DROP] += n_drop
    ist[I_HIT] += n_hit
    ist[I_MODEL] += n_model
    ist[I_DONE] += n_hit + n_model


@numba.njit(cache=True, inline="always")
def _fold_one(acc, x, hit, bw, qw, sv, obs):
    """Fold one answered request (latency x; a cache hit, or served with batch wait bw, queue wait qw
    and service sv) into the sums as :func:`fold` does; the caller counts x in the histogram. Scalars
    only: an array passed to an inlined function costs an atomic reference count increment and
    decrement per call where numba cannot prune them (36 ns per request instead of 4.2)."""
    s_all, s_lat, s_lat2, s_hit, s_bw, s_qw, s_sv, lmin, lmax, n_drop, n_hit, n_model = acc
    s_all += x
    if obs:
        s_lat += x
        s_lat2 += x * x
        if hit:
            s_hit += x
            n_hit += 1
        else:
            s_bw += bw
            s_qw += qw
            s_sv += sv
            n_model += 1
        lmin = x if x < lmin else lmin
        lmax = x if x > lmax else lmax
    return (s_all, s_lat, s_lat2, s_hit, s_bw, s_qw, s_sv, lmin, lmax, n_drop, n_hit, n_model)


@numba.njit(cache=True, inline="always")
def _fold_drop(acc, obs):
    s_all, s_lat, s_lat2, s_hit, s_bw, s_qw, s_sv, lmin, lmax, n_drop, n_hit, n_model = acc
    if obs:
        n_drop += 1
    return (s_all, s_lat, s_lat2, s_hit, s_bw, s_qw, s_sv, lmin, lmax, n_drop, n_hit, n_model)


@numba.njit(cache=True, inline="always")
def _ring_forget(ring, r_head, r_count, r_wait, a, cap):
    """Forget the queue-limit ring's waiting requests started by ``a``; returns the ring's new state."""
    while r_count > 0 and ring[0, r_head] <= a:
        r_wait -= np.int64(ring[1, r_head])
        r_head = r_head + 1 if r_head + 1 < cap else 0
        r_count -= 1
    return r_head, r_count, r_wait


@numba.njit(cache=True, inline="always")
def _ring_push(ring, r_head, r_count, r_wait, s, cap):
    """A request that waits: its start ``s`` joins the ring; returns the new (count, waiting)."""
    k = r_head + r_count
    k = k - cap if k >= cap else k
    ring[0, k] = s
    ring[1, k] = 1.0
    return r_count + 1, r_wait + 1


@numba.njit(cache=True, inline="always")
def _tally(busy_all, nb, end, busy_obs, nb_obs, sv, d, obs):
    """Count one service of length ``sv`` ending at ``d`` in the busy time, batches and end time."""
    busy_all += sv
    nb += 1
    end = max(end, d)
    if obs:
        busy_obs += sv
        nb_obs += 1
    return busy_all, nb, end, busy_obs, nb_obs


@numba.njit(cache=True, inline="always")
def _out_served(out, i, x, qw, sv):
    """Batch size 1; the batch wait (0) is left as the caller passes it, zeroed."""
    out[0][i] = x
    out[1][i] = 1
    out[3][i] = qw
    out[4][i] = sv


@numba.njit(cache=True, inline="always")
def _hist_add(hist, scratch, bits, x):
    scratch[0] = x
    hist[bucket(bits[0], hist.size)] += 1


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
def run_plain(arr, var, status, n0, c_limit, W, use_heap, ring, rs, m, env, hit_lat, out, g0, warm, fs, ist, hist):
    """FCFS G/G/c, one request per service, from local index n0 on.

    ``c_limit`` is the queue limit K (-1: none); ``rs`` = [ring head, ring count, waiting count].
    Returns the index where it stopped: ``arr.size``, or earlier when the ring needs to grow.
    Outcomes go to the arrays ``out`` (``hist`` None), or are folded into ``fs``, ``ist`` and the
    latency histogram ``hist`` (``out`` None) as :func:`fold` would. Up to ``REG_MAX`` replicas the
    sorted free times live in registers (:func:`_run_plain_regs`).
    """
    if not use_heap and W.size <= REG_MAX:
        return _run_plain_regs(arr, var, status, n0, c_limit, W, ring, rs, m, env, hit_lat, out, g0, warm, fs,
                               ist, hist)
    return _run_plain_array(arr, var, status, n0, c_limit, W, use_heap, ring, rs, m, env, hit_lat, out, g0, warm,
                            fs, ist, hist)


@numba.njit(cache=True, nogil=True)
def _run_plain_array(arr, var, status, n0, c_limit, W, use_heap, ring, rs, m, env, hit_lat, out, g0, warm, fs, ist,
                     hist):
    """:func:`run_plain` with the free times in ``W`` (sorted, or a heap)."""
    mode, means, ev, es, el, esc, slow, wx, wf = m
    contention = slow.size > 2
    has_limit = c_limit >= 0
    cap = ring.shape[1]
    # the queue-limit ring's state in locals (head, entries, requests waiting), stored back at the end:
    # through ``rs`` every request chained loads and stores, and ``% cap`` cost a division
    r_head = rs[0]
    r_count = rs[1]
    r_wait = rs[2]
    busy_all = 0.0
    busy_obs = 0.0
    end = 0.0
    nb = 0
    nb_obs = 0
    stop = arr.size
    if hist is not None:  # fold (see _acc_load)
        acc = _acc_load(fs)
        scratch = np.empty(1)
        bits = scratch.view(np.int64)
        scratch[0] = hit_lat
        b_hit = bucket(bits[0], hist.size)
    wj = W[0]  # the first replica to free (kept in a register: _replace_first returns the new one)
    for i in range(n0, arr.size):
        a = arr[i]
        obs = g0 + i >= warm
        if status[i] == 1:
            if hist is not None:
                acc = _fold_one(acc, hit_lat, True, 0.0, 0.0, 0.0, obs)
                if obs:
                    hist[b_hit] += 1
            if out is not None:
                out[0][i] = hit_lat
            end = max(end, a + hit_lat)
            continue
        if has_limit:
            if r_count >= cap:
                stop = i
                break
            r_head, r_count, r_wait = _ring_forget(ring, r_head, r_count, r_wait, a, cap)
            if wj > a and r_wait >= c_limit:
                status[i] = 2
                if hist is not None:
                    acc = _fold_drop(acc, obs)
                if out is not None:
                    out[0][i] = np.nan
                continue
        s = max(a, wj)
        busy = _busy(W, s) if contention else 1
        sv = service_time(mode, means, ev, es, el, esc, slow, wx, wf, 1, var[i], busy, a - wj)
        if env is not None:  # pruned at compile time for models without drift
            sv *= environment_factor(env[0], env[1], env[2], s)
        d = s + sv
        wj = _replace_first(W, d, use_heap)
        if has_limit and s > a:  # it waits: its start joins the ring
            r_count, r_wait = _ring_push(ring, r_head, r_count, r_wait, s, cap)
        if hist is not None:
            x = d - a
            acc = _fold_one(acc, x, False, 0.0, s - a, sv, obs)
            if obs:
                _hist_add(hist, scratch, bits, x)
        if out is not None:
            _out_served(out, i, d - a, s - a, sv)
        busy_all, nb, end, busy_obs, nb_obs = _tally(busy_all, nb, end, busy_obs, nb_obs, sv, d, obs)
    if has_limit:
        rs[0] = r_head
        rs[1] = r_count
        rs[2] = r_wait
    if hist is not None:
        _acc_store(acc, fs, ist)
    _add_batch(fs, ist, busy_all, nb, end, busy_obs, nb_obs, nb_obs)
    return stop


@numba.njit(cache=True, inline="always")
def _lo(x, y):
    return x if x < y else y


@numba.njit(cache=True, inline="always")
def _hi(x, y):
    return x if x > y else y


@numba.njit(cache=True, inline="always")
def _above(w0, w1, w2, w3, w4, w5, w6, w7, s):
    """How many of the eight are > s."""
    return (np.int64(w0 > s) + np.int64(w1 > s) + np.int64(w2 > s) + np.int64(w3 > s) + np.int64(w4 > s)
            + np.int64(w5 > s) + np.int64(w6 > s) + np.int64(w7 > s))


@numba.njit(cache=True, nogil=True)
def _run_plain_regs(arr, var, status, n0, c_limit, W, ring, rs, m, env, hit_lat, out, g0, warm, fs, ist, hist):
    """:func:`run_plain` for c <= 8 replicas, the sorted free times held in eight locals w0 <= ... <= w7
    (+inf beyond c), which LLVM keeps in registers: replacing w0 by d is eight independent min/max
    with no load or store, and the loop-carried chain is w0 -> start -> d -> min(w1, d). Measured
    3.2 ns per request at c = 8 against 5.9 ns with ``W`` in memory (each store of a new free time
    was loaded back, through store forwarding, by the next request)."""
    mode, means, ev, es, el, esc, slow, wx, wf = m
    contention = slow.size > 2
    has_limit = c_limit >= 0
    cap = ring.shape[1]
    # the queue-limit ring's state in locals (head, entries, requests waiting), stored back at the end:
    # through ``rs`` every request chained loads and stores, and ``% cap`` cost a division
    r_head = rs[0]
    r_count = rs[1]
    r_wait = rs[2]
    c = W.size
    pad = REG_MAX - c  # the +inf entries, counted as "> s" by _above
    inf = np.inf
    w0 = W[0]
    w1 = W[1] if c > 1 else inf
    w2 = W[2] if c > 2 else inf
    w3 = W[3] if c > 3 else inf
    w4 = W[4] if c > 4 else inf
    w5 = W[5] if c > 5 else inf
    w6 = W[6] if c > 6 else inf
    w7 = W[7] if c > 7 else inf
    busy_all = 0.0
    busy_obs = 0.0
    end = 0.0
    nb = 0
    nb_obs = 0
    stop = arr.size
    if hist is not None:  # fold (see _acc_load)
        acc = _acc_load(fs)
        scratch = np.empty(1)
        bits = scratch.view(np.int64)
        scratch[0] = hit_lat
        b_hit = bucket(bits[0], hist.size)
    for i in range(n0, arr.size):
        a = arr[i]
        obs = g0 + i >= warm
        if status[i] == 1:
            if hist is not None:
                acc = _fold_one(acc, hit_lat, True, 0.0, 0.0, 0.0, obs)
                if obs:
                    hist[b_hit] += 1
            if out is not None:
                out[0][i] = hit_lat
            end = max(end, a + hit_lat)
            continue
        if has_limit:
            if r_count >= cap:
                stop = i
                break
            r_head, r_count, r_wait = _ring_forget(ring, r_head, r_count, r_wait, a, cap)
            if w0 > a and r_wait >= c_limit:
                status[i] = 2
                if hist is not None:
                    acc = _fold_drop(acc, obs)
                if out is not None:
                    out[0][i] = np.nan
                continue
        s = max(a, w0)
        busy = _above(w0, w1, w2, w3, w4, w5, w6, w7, s) - pad + 1 if contention else 1
        sv = service_time(mode, means, ev, es, el, esc, slow, wx, wf, 1, var[i], busy, a - w0)
        if env is not None:  # pruned at compile time for models without drift
            sv *= environment_factor(env[0], env[1], env[2], s)
        d = s + sv
        # w0 leaves, d (>= w0) comes in: new w_k = max(w_k, min(w_k+1, d)), all from the old values
        w0, w1, w2, w3, w4, w5, w6, w7 = (_lo(w1, d), _hi(w1, _lo(w2, d)), _hi(w2, _lo(w3, d)),
                                          _hi(w3, _lo(w4, d)), _hi(w4, _lo(w5, d)), _hi(w5, _lo(w6, d)),
                                          _hi(w6, _lo(w7, d)), _hi(w7, d))
        if has_limit and s > a:  # it waits: its start joins the ring
            r_count, r_wait = _ring_push(ring, r_head, r_count, r_wait, s, cap)
        if hist is not None:
            x = d - a
            acc = _fold_one(acc, x, False, 0.0, s - a, sv, obs)
            if obs:
                _hist_add(hist, scratch, bits, x)
        if out is not None:
            _out_served(out, i, d - a, s - a, sv)
        busy_all, nb, end, busy_obs, nb_obs = _tally(busy_all, nb, end, busy_obs, nb_obs, sv, d, obs)
    W[0] = w0
    if c > 1:
        W[1] = w1
    if c > 2:
        W[2] = w2
    if c > 3:
        W[3] = w3
    if c > 4:
        W[4] = w4
    if c > 5:
        W[5] = w5
    if c > 6:
        W[6] = w6
    if c > 7:
        W[7] = w7
    if has_limit:
        rs[0] = r_head
        rs[1] = r_count
        rs[2] = r_wait
    if hist is not None:
        _acc_store(acc, fs, ist)
    _add_batch(fs, ist, busy_all, nb, end, busy_obs, nb_obs, nb_obs)
    return stop


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
def run_batching(arr, var, status, n0, final, B, timeout, c_limit, W, use_heap, ts, m, env, hit_lat, out, g0, warm,
                 fs, ist, empirical):
    """Dynamic batching (TF-Serving), timeout >= 0, from local index n0 on (see the module notes).

    A recursion over batches: with q requests waiting from ``head`` and ``ready`` the earlier of the
    oldest's deadline and the B-th's arrival, the next batch starts at s = max(min W, ready) unless an
    arrival comes first (strictly before s: it joins, which may make the queue full and s earlier).
    ts = [head (local index), waiting count q, ready time]. Returns the local index from which
    requests may still wait (``arr.size`` when none do). ``empirical``: None for a parametric service
    model (``m[0]`` = 1), True for an empirical one (``m[0]`` = 0), so that each compiles its own loop.
    """
    _, means, ev, es, el, esc, slow, wx, wf = m
    lat, bsize, bwait, qwait, svc = out
    contention = slow.size > 2
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
    wmin = W[0]  # the first replica to free (kept in a register: _replace_first returns the new one)
    while True:
        s = wmin if wmin > ready else ready
        if q > 0 and not (i < n and arr[i] < s):
            if i >= n and not final:
                break  # an arrival of the next chunk may still come before s
        elif i < n:
            a = arr[i]
            if status[i] == 1:
                lat[i] = hit_lat
                end = max(end, a + hit_lat)
                i += 1
                continue
            # A request that starts at its own arrival (a free replica, and it makes the queue ready)
            # needs no waiting place.
            if has_limit and q >= c_limit and not (wmin <= a and (greedy or q + 1 >= B)):
                status[i] = 2
                lat[i] = np.nan
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
            s = a  # it made the queue ready at a free replica (W unchanged: W[0] is still the first free)
        else:
            break
        # The first replica to free starts a batch of the oldest min(q, B) waiting requests (from head)
        # at s. It was ready at r = min(B-th member's arrival if full, oldest's arrival + timeout),
        # capped at s; member p records close = max(r, a_p). (Written out here rather than in an
        # inlined helper: numba's inlining of a function taking arrays left ~14 atomic reference count
        # increments and decrements per batch inside this loop, ~100 ns per batch.)
        size = q if q < B else B
        while status[head] != 0:
            head += 1
        first = head
        last = head
        k = 0
        p = head
        while k < size:
            if status[p] == 0:
                k += 1
                last = p
            p += 1
        r = arr[first] + timeout
        if size == B and arr[last] < r:
            r = arr[last]
        if s < r:
            r = s
        busy = _busy(W, s) if contention else 1
        # The service model's mode as a compile-time constant (``empirical`` None: parametric): one
        # call site with service_time's own branch folded away lets LLVM drop the reference counting
        # of its array arguments, which costs ~10-20 ns per batch otherwise.
        if empirical is None:
            sv = service_time(1, means, ev, es, el, esc, slow, wx, wf, size, var[first], busy, arr[first] - wmin)
        else:
            sv = service_time(0, means, ev, es, el, esc, slow, wx, wf, size, var[first], busy, arr[first] - wmin)
        if env is not None:  # pruned at compile time for models without drift
            sv *= environment_factor(env[0], env[1], env[2], s)
        d = s + sv
        if use_heap:
            wmin = _replace_first(W, d, True)
        else:  # _replace_first's sorted insertion, written out (an inlined call costs W's refcounting)
            c = W.size
            wmin = d
            if c > 1:
                prev = W[1]
                wmin = prev if prev < d else d
                for j in range(1, c - 1):
                    nxt = W[j + 1]
                    lo = nxt if nxt < d else d
                    W[j] = prev if prev > lo else lo
                    prev = nxt
                W[c - 1] = prev if prev > d else d
            W[0] = wmin
        for p in range(first, last + 1):
            if status[p] == 0:
                a = arr[p]
                close = r if r > a else a
                lat[p] = d - a
                bsize[p] = size
                bwait[p] = close - a
                qwait[p] = s - close
                svc[p] = sv
        head = last + 1
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
    The sums are carried in locals, with the same additions in the same order as on ``fs`` itself (so
    the figures do not depend on the chunking): accumulating into ``fs[...]`` made every sum a chain
    through memory, and with the warm-up split off and the hit bucket computed once this loop takes
    1.9 ns per request against 3.0 before. ``out[0]`` must be contiguous (its bits are read as int64).
    """
    lat, _, bw, qw, sv = out
    bits = lat.view(np.int64)
    nbuckets = hist.size
    scratch = np.empty(1)
    scratch[0] = hit_lat
    b_hit = bucket(scratch.view(np.int64)[0], nbuckets)
    s_all = fs[F_LAT_ALL]
    s_lat = fs[F_LAT]
    s_lat2 = fs[F_LAT2]
    s_hit = fs[F_HITLAT]
    s_bw = fs[F_BWAIT]
    s_qw = fs[F_QWAIT]
    s_sv = fs[F_SVC]
    lmin = fs[F_LMIN]
    lmax = fs[F_LMAX]
    n_drop = 0
    n_hit = 0
    n_model = 0
    i_obs = min(max(lo, warm - g0), hi)
    for i in range(lo, i_obs):  # warm-up: only the run-long latency sum
        st = status[i]
        if st != 2:
            s_all += hit_lat if st == 1 else lat[i]
    for i in range(i_obs, hi):
        st = status[i]
        if st == 0:
            x = lat[i]
            s_bw += bw[i]
            s_qw += qw[i]
            s_sv += sv[i]
            n_model += 1
            b = bucket(bits[i], nbuckets)
        elif st == 1:
            x = hit_lat
            s_hit += x
            n_hit += 1
            b = b_hit
        else:
            n_drop += 1
            continue
        s_all += x
        s_lat += x
        s_lat2 += x * x
        lmin = x if x < lmin else lmin
        lmax = x if x > lmax else lmax
        hist[b] += 1
    fs[F_LAT_ALL] = s_all
    fs[F_LAT] = s_lat
    fs[F_LAT2] = s_lat2
    fs[F_HITLAT] = s_hit
    fs[F_BWAIT] = s_bw
    fs[F_QWAIT] = s_qw
    fs[F_SVC] = s_sv
    fs[F_LMIN] = lmin
    fs[F_LMAX] = lmax
    ist[I_DROP] += n_drop
    ist[I_HIT] += n_hit
    ist[I_MODEL] += n_model
    ist[I_DONE] += n_hit + n_model
