"""Zoo registry, inputs, variant names and machine metadata: all without importing TensorFlow."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.profiling.environment import device_info, short_device_name, utc_now
from simulator.profiling.profiler import ProfileConfig
from simulator.profiling.variants import VARIANTS, canonical_variant
from simulator.profiling.zoo import ZOO, InputSpec, get_entry, make_inputs


def test_zoo_has_the_promised_models():
    assert {"tiny_cnn", "mobilenet_v2", "resnet50", "transformer_small"} <= set(ZOO)
    assert get_entry("zoo:mobilenet_v2").input.shape == (224, 224, 3)
    assert get_entry("resnet50") is get_entry("zoo:resnet50")


def test_unknown_zoo_name_lists_known():
    with pytest.raises(InputError, match=r"unknown zoo model 'zoo:vgg'; known: zoo:tiny_cnn, zoo:mobilenet_v2"):
        get_entry("zoo:vgg")


def test_make_inputs_float_and_token_ids():
    rng = np.random.default_rng(0)
    x = make_inputs(InputSpec((4, 4, 3)), 2, rng)
    assert x.shape == (2, 4, 4, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    ids = make_inputs(InputSpec((16,), "int32", 50), 3, rng)
    assert ids.shape == (3, 16) and ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 50


@pytest.mark.parametrize("alias, name", [("fp32", "fp32"), ("tflite-fp16", "fp16"), ("fp16", "fp16"),
                                         ("tflite-int8-dynamic", "int8-dynamic"), ("tflite-int8-full", "int8-full"),
                                         ("int8-full", "int8-full"), ("pruned", "pruned"), ("xla", "xla"),
                                         ("tflite", "tflite-fp32")])
def test_variant_aliases(alias, name):
    assert canonical_variant(alias) == name
    assert name in VARIANTS


def test_unknown_variant_lists_known():
    with pytest.raises(InputError, match="variant must be one of fp32, xla, tflite-fp32, fp16"):
        canonical_variant("int4")


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_sizes": ()}, "batch_sizes"), ({"batch_sizes": (0,)}, "batch_size"),
    ({"concurrency": (1, 100)}, "concurrency"), ({"threads": (0,)}, "threads"),
    ({"backend": "jax"}, "backend must be one of auto, tensorflow, torch")])
def test_profile_config_validates(kwargs, match):
    with pytest.raises(InputError, match=match):
        ProfileConfig("zoo:tiny_cnn", **kwargs)


def test_profile_config_sorts_and_dedups():
    c = ProfileConfig("zoo:tiny_cnn", batch_sizes=(8, 1, 2, 2), concurrency=(2, 1))
    assert c.batch_sizes == (1, 2, 8) and c.concurrency == (1, 2)


def test_short_device_name():
    assert short_device_name("cpu", "AMD EPYC", 2) == "cpu-amd-epyc-2c"
    assert short_device_name("cpu", "Intel(R) Xeon(R) CPU @ 2.20GHz", 4) == "cpu-intel-xeon-4c"
    assert short_device_name("gpu", "NVIDIA H100 80GB HBM3") == "gpu-nvidia-h100-80gb-hbm3"


def test_device_info_and_time():
    info = device_info()
    assert info["kind"] == "cpu" and info["cores"] >= 1 and info["name"]
    assert "numpy" in info["framework_versions"]
    assert device_info(gpu_name="NVIDIA T4")["kind"] == "gpu"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())
