"""A bounded-memory latency sketch with a guaranteed relative error: a log-linear histogram.

Like DDSketch it bounds the *relative* error of every quantile, but its buckets come from the bits of
the float itself (as in HdrHistogram), so adding a value is one shift and one increment, no logarithm:
for a positive double the 11 exponent bits followed by the top ``SUB_BITS`` = 8 mantissa bits form an
integer that increases with the value. Each binary octave [2^e, 2^(e+1)) is thus cut into 256 equal
buckets [lo, hi) with hi/lo ≤ 1 + 2^-8.

Quantile q is the ⌊q·(n − 1)⌋-th smallest value (numpy's ``method="lower"``). It is estimated inside
its bucket by linear interpolation on its rank among the bucket's values, so the estimate and the true
value share [lo, hi): relative error ≤ (hi − lo)/lo ≤ 2^-8 ≈ 0.39 % (``RELATIVE_ERROR``). Interpolating
(rather than reporting one fixed point per bucket) keeps estimates continuous in the data, so two
replications whose quantiles differ by less than a bucket width do not report identical values, which
would make a confidence interval across replications collapse to a point.

Range: [2^-40, 2^40) s ≈ [0.9 ps, 35 000 years], 20 482 buckets (160 KiB) whatever the number of
values. Smaller values (a zero cache-hit latency) fall in an underflow bucket reported as the exact
minimum; larger ones in an overflow bucket reported as the exact maximum.
"""

from __future__ import annotations

import numba
import numpy as np

SUB_BITS = 8
_SHIFT = 52 - SUB_BITS
_EXP_LO, _EXP_HI = 1023 - 40, 1023 + 40
IDX_LO = _EXP_LO << SUB_BITS
NBUCKETS = ((_EXP_HI - _EXP_LO) << SUB_BITS) + 2
RELATIVE_ERROR = 2.0**-SUB_BITS  # (hi - lo)/lo, the widest bucket's relative width

__all__ = ["NBUCKETS", "RELATIVE_ERROR", "LatencySketch", "bucket", "hist_add"]


@numba.njit(cache=True, inline="always")
def bucket(bits, nbuckets):
    """The bucket of x >= 0 given the bits of x as an int64 (``x`` viewed as ``np.int64``)."""
    b = (bits >> _SHIFT) - IDX_LO + 1
    b = 0 if b < 0 else b
    return nbuckets - 1 if b >= nbuckets else b


@numba.njit(cache=True, inline="always")
def hist_add(hist, scratch, x):
    """Count x >= 0 in ``hist``; ``scratch`` is a float64 array of length 1 (for the bit view)."""
    scratch[0] = x
    hist[bucket(scratch.view(np.int64)[0], hist.size)] += 1


@numba.njit(cache=True, nogil=True)
def _add_many(hist, xs):
    scratch = np.empty(1)
    lo = np.inf
    hi = -np.inf
    for x in xs:
        if x == x:  # skip nan (dropped requests)
            hist_add(hist, scratch, x)
            lo = min(lo, x)
            hi = max(hi, x)
    return lo, hi


def _bucket_bounds() -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(IDX_LO, IDX_LO + NBUCKETS - 2, dtype=np.int64)
    lo = (idx << _SHIFT).view(np.float64)
    hi = ((idx + 1) << _SHIFT).view(np.float64)
    return lo, hi


_LO, _HI = _bucket_bounds()


class LatencySketch:
    """Streaming quantiles of non-negative values (seconds) within relative error ``RELATIVE_ERROR``.

    Parameters
    ----------
    counts : ndarray of int64, shape (NBUCKETS,), optional
        Bucket counts (as filled by the compiled kernels); zeros if omitted.
    minimum, maximum : float
        Exact smallest and largest value seen.
    """

    relative_error = RELATIVE_ERROR

    def __init__(self, counts: np.ndarray | None = None, minimum: float = np.inf, maximum: float = -np.inf):
        self.counts = np.zeros(NBUCKETS, np.int64) if counts is None else counts
        self.min = float(minimum)
        self.max = float(maximum)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Add values (seconds); nan (a dropped request) is ignored."""
        lo, hi = _add_many(self.counts, np.ascontiguousarray(values, dtype=np.float64))
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def merge(self, other: LatencySketch) -> LatencySketch:
        """The sketch of both value sets (exact: histograms add)."""
        return LatencySketch(self.counts + other.counts, min(self.min, other.min), max(self.max, other.max))

    def quantile(self, q: float) -> float:
        """The ⌊q·(n−1)⌋-th smallest value within relative error ``RELATIVE_ERROR`` (nan if empty)."""
        n = self.count
        if n == 0:
            return float("nan")
        rank = int(np.floor(q * (n - 1)))
        if rank == 0:
            return self.min
        if rank == n - 1:
            return self.max
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, rank, side="right"))
        if b == 0:
            return self.min
        if b == NBUCKETS - 1:
            return self.max
        within = (rank - (cum[b - 1])) + 0.5  # rank among the bucket's values, mid-rank
        lo, hi = _LO[b - 1], _HI[b - 1]
        est = lo + (hi - lo) * within / self.counts[b]
        return float(min(max(est, self.min), self.max))
