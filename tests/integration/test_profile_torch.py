"""The PyTorch backend (for GPU machines without TensorFlow), exercised on CPU when torch is installed."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.profiling.profiler import ProfileConfig, run_profile
from simulator.profiling.timing import StoppingRule

torch = pytest.importorskip("torch", reason="PyTorch not installed; the torch backend is optional")

RULE = StoppingRule(min_samples=30, max_seconds=0.5, rel_ci=0.05, warmup_seconds=0.05)


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_torch_tiny_cnn_profile(variant):
    p = run_profile(ProfileConfig("zoo:tiny_cnn", variant=variant, batch_sizes=(1, 2), backend="torch",
                                  rule=RULE, accuracy_examples=8))
    assert p.batch_sizes == [1, 2]
    assert p.model["framework"] == "torch" and p.model["input_shape"] == [3, 32, 32]
    assert p.model["runtime"] == ("torch-cuda" if torch.cuda.is_available() else "torch-cpu")
    assert "torch" in p.device["framework_versions"]
    diff = p.model["output_difference"]
    if variant == "fp32":
        assert diff["max_abs_diff"] == 0.0
    else:
        # fp16 rounding: about 2^-11 relative per op; 1e-2 of the largest logit is far above it.
        assert 0.0 < diff["max_rel_diff"] < 1e-2 and diff["top1_agreement"] >= 0.75
    assert all(pt.n >= 2 for pt in p.points)


def test_torch_models_build_with_expected_outputs():
    from simulator.profiling.torch_backend import TORCH_INPUTS, build_torch_model

    for name, classes in (("mobilenet_v2", 1000), ("transformer_small", 4)):
        model = build_torch_model(name, seed=0)
        spec = TORCH_INPUTS[name]
        rng = np.random.default_rng(0)
        x = (rng.integers(0, spec.int_high, (2, *spec.shape)) if spec.dtype.startswith("int")
             else rng.random((2, *spec.shape), dtype=np.float32))
        with torch.inference_mode():
            assert tuple(model(torch.from_numpy(x)).shape) == (2, classes)


def test_torch_seeded_weights_are_reproducible_and_leave_global_rng_alone():
    from simulator.profiling.torch_backend import build_torch_model

    state = torch.random.get_rng_state()
    a, b = build_torch_model("tiny_cnn", seed=3), build_torch_model("tiny_cnn", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_torch_unknown_variant():
    with pytest.raises(InputError, match="fp32, fp16"):
        run_profile(ProfileConfig("zoo:tiny_cnn", variant="int8-full", backend="torch", rule=RULE))


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the graph variants run")
def test_cuda_graph_variants_need_a_gpu():
    with pytest.raises(InputError, match="'fp16-cudagraph' needs a CUDA device"):
        run_profile(ProfileConfig("zoo:tiny_cnn", variant="fp16-cudagraph", backend="torch", rule=RULE))


def test_torchscript_file(tmp_path):
    from simulator.profiling.torch_backend import build_torch_model

    path = tmp_path / "tiny.pt"
    torch.jit.script(build_torch_model("tiny_cnn", seed=1)).save(str(path))
    p = run_profile(ProfileConfig(str(path), batch_sizes=(1,), backend="torch", rule=RULE, accuracy_examples=4,
                                  input_shape=(3, 32, 32)))
    assert p.model["format"] == "torchscript" and len(p.model["file_sha256"]) == 64
    assert p.model["input_shape"] == [3, 32, 32]
    with pytest.raises(InputError, match="--input-shape"):
        run_profile(ProfileConfig(str(path), backend="torch", rule=RULE))


def test_random_mobilenet_has_calibrated_batch_norm_so_fp16_is_comparable():
    """Without calibrated batch-norm statistics a random MobileNetV2's logits decay to ~1e-9, below fp16's
    range (an H100 profile showed fp16 answering all zeros); with them they are O(1) and fp16 agrees."""
    from simulator.profiling.torch_backend import build_torch_model

    x = torch.from_numpy(np.random.default_rng(1).random((4, 3, 224, 224), dtype=np.float32))
    with torch.inference_mode():
        y = build_torch_model("mobilenet_v2")(x)
        yh = build_torch_model("mobilenet_v2").half()(x.half()).float()
    assert y.abs().max() > 0.1
    # fp16 keeps ~3 decimal digits per op; over 50 layers a few percent of the largest logit
    assert ((yh - y).abs().max() / y.abs().max()) < 0.1
    assert bool((yh.argmax(1) == y.argmax(1)).all())
