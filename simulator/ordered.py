"""Service times in their measured order: a block bootstrap that keeps their autocorrelation.

Under load on a shared CPU, service times are not independent: a slow stretch (the load generator's
thread, the response path and the replicas competing for the cores, the host's other tenants) slows many
consecutive requests, and such a stretch builds a queue that i.i.d. resampling never builds. Measured
lag-1 autocorrelations of effective service times on the 2-core validation host are 0.2-0.6.

The simulator's empirical service model maps each request's uniform variate ``u`` to the
``floor(u·n)``-th of the n sorted samples. So the *order* of service times can be carried entirely by the
variates: the i-th measured service (in start order) has rank ``r_i`` among the samples, and the variate
``(r_i + 0.5)/n`` reproduces it exactly. :class:`ServiceOrder` keeps those levels and draws variates by a
circular block bootstrap of them (blocks of consecutive levels from random starts), which keeps the
correlation within a block and the marginal distribution exactly. Engines are unchanged; only the
service variates differ.

A profile may carry its samples in measured order (``under_load.service_order``,
:mod:`simulator.under_load`): ``simulate`` and ``plan`` then draw them this way by themselves.
``simulate(scenario, service_order=order)`` draws the service stream from ``order`` (an empirical, i.e.
profile, service model only); everything else (arrivals, engines, constant delays such as a profile's
client-side overhead, the Result) is :func:`simulator.simulate`'s own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .errors import InputError
from .service import EMPIRICAL, ServiceModel
from .validation import check_integer

__all__ = ["ServiceOrder", "block_length", "is_ordered", "ordered_model", "profile_order"]


def block_length(series: np.ndarray, minimum: int = 10) -> int:
    """Block length of the bootstrap: twice the first lag at which the autocorrelation of ``series`` is no
    longer significant (|acf| < 2/√n), at least ``minimum``, at most a third of the series."""
    x = np.asarray(series, dtype=float)
    n = x.size
    if n < 3 * minimum:
        return max(1, n // 3)
    x = x - x.mean()
    denom = float(np.dot(x, x))
    if denom == 0:
        return minimum
    bound = 2.0 / math.sqrt(n)
    lag = 1
    while lag < n // 3:
        if abs(float(np.dot(x[:-lag], x[lag:])) / denom) < bound:
            break
        lag += 1
    return int(min(max(2 * lag, minimum), n // 3))


@dataclass(frozen=True)
class ServiceOrder:
    """Quantile levels of measured service times in start order, and the bootstrap block length.

    Parameters
    ----------
    levels : ndarray
        ``(rank + 0.5) / n`` of each measured service time among the samples it is drawn from.
    block : int
        Consecutive levels per bootstrap block.
    """

    levels: np.ndarray
    block: int

    def __post_init__(self) -> None:
        lv = np.asarray(self.levels, dtype=float)
        if lv.ndim != 1 or lv.size == 0 or np.any((lv <= 0) | (lv >= 1)):
            raise ValueError("levels must be a non-empty 1-d array in (0, 1)")
        object.__setattr__(self, "levels", lv)
        check_integer("block", self.block, minimum=1)

    @classmethod
    def from_series(cls, series: np.ndarray, block: int | None = None) -> ServiceOrder:
        """Levels of ``series`` (service times in start order) among its own values."""
        x = np.asarray(series, dtype=float)
        ranks = np.empty(x.size, dtype=float)
        ranks[np.argsort(x, kind="stable")] = np.arange(x.size)
        return cls((ranks + 0.5) / x.size, block if block is not None else block_length(x))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n variates: circular blocks of ``block`` consecutive levels from uniformly random starts."""
        m = self.levels.size
        blocks = -(-n // self.block)
        starts = rng.integers(0, m, size=blocks)
        idx = (starts[:, None] + np.arange(self.block)[None, :]) % m
        return self.levels[idx.ravel()[:n]]


@dataclass(frozen=True)
class _OrderedModel(ServiceModel):
    """A service model whose variates come from a :class:`ServiceOrder` (engines read the same arrays)."""

    order: ServiceOrder | None = None

    def draw(self, rng: np.random.Generator, n: int, out: np.ndarray | None = None) -> np.ndarray:
        v = self.order.draw(rng, n)
        if out is None:
            return v
        out[:] = v
        return out


def ordered_model(model: ServiceModel, order: ServiceOrder) -> ServiceModel:
    """``model`` with its service variates drawn from ``order`` (an empirical model: the levels are
    quantiles of its samples)."""
    if model.mode != EMPIRICAL:
        raise InputError("a service order needs an empirical (profile) service model, got "
                         f"{model.source!r}")
    note = (f"service times in measured order: circular blocks of {order.block} of {order.levels.size} measured "
            "samples from random starts")
    values = {f.name: getattr(model, f.name) for f in fields(ServiceModel)}
    values["notes"] = (*model.notes, note)
    return _OrderedModel(**values, order=order)


def is_ordered(model: ServiceModel) -> bool:
    """Whether ``model`` draws its service variates from a measured order."""
    return isinstance(model, _OrderedModel)


def profile_order(profile, block: int) -> ServiceOrder:
    """The order of a profile's smallest batch size's samples at concurrency 1, as stored (measured order)."""
    samples = np.asarray(profile.samples(profile.batch_sizes[0], 1), dtype=float)
    return ServiceOrder.from_series(samples, block=min(block, samples.size))
