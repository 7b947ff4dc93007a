"""Service-time models fitted to measured samples.

* Parametric distributions by maximum likelihood (``scipy.stats``): lognormal and gamma (location fixed
  at 0) and the shifted exponential (location = minimum, MLE). Each fit carries its goodness of fit: the
  Kolmogorov–Smirnov statistic and p-value and the Anderson–Darling statistic A², computed against the
  fitted distribution. Both p-values are optimistic because the parameters were estimated from the same
  data (Lilliefors); compare fits by the statistic, as :func:`best_fit` does with KS.
* The batch-time curve: a batch of n takes a + b·n seconds, fitted by least squares to the mean per
  batch size, with R², to interpolate batch sizes that were not measured.

The simulator's default service model is empirical resampling of the raw samples; these fits are for
analytic models, smoothing and extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .errors import InputError

__all__ = ["FAMILIES", "BatchCurve", "DistributionFit", "best_fit", "fit_batch_curve", "fit_distribution",
           "fit_profile_batch_curve", "plot_qq"]

FAMILIES = ("lognormal", "gamma", "shifted_exponential")


def _check_samples(samples: object, name: str = "samples") -> np.ndarray:
    x = np.asarray(samples, dtype=float).ravel()
    if x.size < 3:
        raise InputError(f"{name} must hold at least 3 service times, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} must be finite; found {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    if np.any(x <= 0):
        raise InputError(f"{name} must be > 0 seconds; min is {x.min()}")
    if np.ptp(x) == 0:
        raise InputError(f"{name} are all equal ({x[0]}); a deterministic service time needs no fit")
    return x


@dataclass(frozen=True)
class DistributionFit:
    """A fitted service-time distribution (seconds) and its goodness of fit.

    Attributes
    ----------
    family : str
        ``lognormal``, ``gamma`` or ``shifted_exponential``.
    params : dict
        Named parameters: lognormal ``sigma, mu`` (log-scale), gamma ``shape, scale``, shifted
        exponential ``shift, scale`` (mean = shift + scale).
    dist : scipy frozen distribution
    ks_statistic, ks_pvalue : float
        Kolmogorov–Smirnov distance to the samples and its (optimistic) p-value.
    ad_statistic : float
        Anderson–Darling A² against the fitted distribution.
    n : int
        Number of samples fitted.
    """

    family: str
    params: dict
    dist: Any = field(repr=False)
    ks_statistic: float
    ks_pvalue: float
    ad_statistic: float
    n: int

    @property
    def mean(self) -> float:
        return float(self.dist.mean())

    @property
    def cv(self) -> float:
        return float(self.dist.std() / self.dist.mean())

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` service times with ``rng``."""
        return self.dist.rvs(size=size, random_state=rng)

    def to_dict(self) -> dict:
        return {"family": self.family, "params": self.params, "mean_s": self.mean, "cv": self.cv,
                "ks_statistic": self.ks_statistic, "ks_pvalue": self.ks_pvalue,
                "ad_statistic": self.ad_statistic, "n": self.n}


def _anderson_darling(x_sorted: np.ndarray, cdf: Any) -> float:
    n = x_sorted.size
    f = np.clip(cdf(x_sorted), 1e-300, 1 - 1e-16)
    i = np.arange(1, n + 1)
    return float(-n - np.mean((2 * i - 1) * (np.log(f) + np.log1p(-f[::-1]))))


def fit_distribution(samples: object, family: str) -> DistributionFit:
    """Fit ``family`` to service-time samples (seconds) by maximum likelihood."""
    x = _check_samples(samples)
    if family == "lognormal":
        s, _, scale = stats.lognorm.fit(x, floc=0)
        dist = stats.lognorm(s, loc=0, scale=scale)
        params = {"sigma": float(s), "mu": float(math.log(scale))}
    elif family == "gamma":
        a, _, scale = stats.gamma.fit(x, floc=0)
        dist = stats.gamma(a, loc=0, scale=scale)
        params = {"shape": float(a), "scale": float(scale)}
    elif family == "shifted_exponential":
        loc, scale = stats.expon.fit(x)
        dist = stats.expon(loc=loc, scale=scale)
        params = {"shift": float(loc), "scale": float(scale)}
    else:
        raise InputError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    ks = stats.kstest(x, dist.cdf)
    return DistributionFit(family, params, dist, float(ks.statistic), float(ks.pvalue),
                           _anderson_darling(np.sort(x), dist.cdf), int(x.size))


def best_fit(samples: object, families: Sequence[str] = FAMILIES) -> tuple[DistributionFit, list[DistributionFit]]:
    """Fit every family and return (the one with the smallest KS statistic, all fits best first)."""
    fits = sorted((fit_distribution(samples, f) for f in families), key=lambda f: f.ks_statistic)
    return fits[0], fits


@dataclass(frozen=True)
class BatchCurve:
    """Batch service time t(n) = a + b·n seconds, fitted by least squares.

    Attributes
    ----------
    a : float
        Fixed cost per batch in seconds.
    b : float
        Cost per example in seconds.
    r2 : float
        Coefficient of determination of the fit on the batch means.
    batch_sizes : tuple of int
        Batch sizes the fit used; predictions outside their range are extrapolations.
    """

    a: float
    b: float
    r2: float
    batch_sizes: tuple[int, ...]

    def predict(self, n: object) -> np.ndarray | float:
        """Mean service time (seconds) of a batch of ``n`` (scalar or array of batch sizes ≥ 1)."""
        arr = np.asarray(n, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr < 1):
            raise InputError(f"batch size must be a finite number >= 1, got {n!r}")
        out = self.a + self.b * arr
        return float(out) if out.ndim == 0 else out

    def to_tuple(self) -> tuple[float, float]:
        """``(a, b)`` as :func:`simulator.analytic.batching` takes it."""
        return (self.a, self.b)


def fit_batch_curve(batch_sizes: Sequence[int], mean_times: Sequence[float],
                    weights: Sequence[float] | None = None) -> BatchCurve:
    """Least-squares fit of mean batch time = a + b·n.

    Parameters
    ----------
    batch_sizes : sequence of int
        At least two distinct batch sizes.
    mean_times : sequence of float
        Mean service time (seconds) at each batch size.
    weights : sequence of float, optional
        Weights per point (e.g. 1/variance of each mean); unweighted by default.
    """
    n = np.asarray(batch_sizes, dtype=float)
    t = np.asarray(mean_times, dtype=float)
    if n.shape != t.shape or n.ndim != 1:
        raise InputError(f"batch_sizes and mean_times must be equal-length lists, got {n.shape} and {t.shape}")
    if np.unique(n).size < 2:
        raise InputError(f"a batch-time curve needs at least 2 distinct batch sizes, got {sorted(set(n.tolist()))}")
    if not (np.all(np.isfinite(n)) and np.all(n >= 1)):
        raise InputError(f"batch_sizes must be finite and >= 1, got {n.tolist()}")
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        raise InputError(f"mean_times must be finite and > 0 seconds, got {t.tolist()}")
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != t.shape or not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise InputError("weights must be finite, > 0 and one per batch size")
    sw = np.sqrt(w)
    design = np.column_stack([np.ones_like(n), n])
    (a, b), *_ = np.linalg.lstsq(design * sw[:, None], t * sw, rcond=None)
    fitted = a + b * n
    tbar = np.average(t, weights=w)
    ss_tot = float(np.sum(w * (t - tbar) ** 2))
    ss_res = float(np.sum(w * (t - fitted) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return BatchCurve(float(a), float(b), float(r2), tuple(int(v) for v in n))


def fit_profile_batch_curve(profile: Any, concurrency: int = 1) -> BatchCurve:
    """Fit a + b·n to a :class:`~simulator.profiles.Profile`'s batch means at ``concurrency``."""
    sizes = [b for b in profile.batch_sizes if (b, concurrency) in {(p.batch_size, p.concurrency)
                                                                    for p in profile.points}]
    return fit_batch_curve(sizes, [profile.mean(b, concurrency) for b in sizes])


def plot_qq(fit: DistributionFit, samples: object, ax: Any) -> None:
    """QQ plot of ``samples`` against ``fit`` (milliseconds) on a matplotlib axis."""
    x = np.sort(_check_samples(samples))
    probs = (np.arange(1, x.size + 1) - 0.5) / x.size
    theo = fit.dist.ppf(probs)
    ax.plot(theo * 1e3, x * 1e3, ".", ms=3, label=f"{fit.family} (KS {fit.ks_statistic:.3f})")
    lo, hi = min(theo.min(), x.min()) * 1e3, max(theo.max(), x.max()) * 1e3
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("fitted quantile (ms)")
    ax.set_ylabel("measured quantile (ms)")
