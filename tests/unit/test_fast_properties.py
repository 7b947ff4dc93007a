"""Random small systems: the compiled engine equals the brute-force event simulation on every request."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import fast
from simulator.scenario import Cache

from .test_fast_engine import SLOWDOWN, make, reference_run, variates_for

systems = st.fixed_dictionaries({
    "c": st.integers(1, 5),
    "B": st.integers(1, 5),
    "T": st.sampled_from([0.0, 0.001, 0.004, 0.02]),
    "K": st.one_of(st.none(), st.integers(0, 6)),
    "cache": st.sampled_from([None, Cache("lru", 5, 1.0, 30, 0.0), Cache("lfu", 8, 0.8, 40, 0.002),
                              Cache("fifo", 3, 1.2, 20, 0.0005)]),
    "slowdown": st.sampled_from([None, SLOWDOWN]),
    "rho": st.floats(0.3, 1.6),
    "arrivals": st.sampled_from(["poisson", "gamma"]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=systems, seed=st.integers(0, 10**6))
def test_engine_equals_event_simulation(system, seed):
    if system["B"] == 1:
        system["T"] = 0.0
    sc, model = make(**system)
    v = variates_for(sc, model, 150, seed)
    out = fast.run_replication(sc, model, v)
    ref = reference_run(sc, model, v)
    np.testing.assert_array_equal(out.dropped, ref["dropped"])
    np.testing.assert_allclose(out.latency, ref["latency"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.batch_size, ref["batch_size"])
    np.testing.assert_allclose(out.batch_wait, ref["batch_wait"], rtol=0, atol=1e-12)
