"""Variants of one model, produced here: the same network compiled, quantised or pruned differently.

========================  =====================================================================
name (aliases)            what it is
========================  =====================================================================
fp32                      the model as given, called eagerly (``model(x)``; a .tflite file as is)
xla                       ``tf.function(jit_compile=True)`` around the model (XLA-compiled)
tflite-fp32 (tflite)      TFLite conversion, no optimisation: the baseline of the TFLite runtime
fp16 (tflite-fp16)        TFLite, weights stored as float16 (dequantised at load on CPU)
int8-dynamic (tflite-…)   TFLite dynamic-range quantisation: int8 weights, activations quantised on the fly
int8-full (tflite-…)      TFLite full-integer quantisation calibrated on random inputs; int8 kernels where
                          TFLite has them (strict int8 tried first, float fallback recorded if needed)
pruned                    50% magnitude pruning (TF Model Optimization, tf-keras), stripped, then TFLite fp32
========================  =====================================================================

Calibration and pruning use random inputs: the network has random weights too, so there is no data
distribution to respect. On a trained model calibrate with real inputs.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .tf_backend import ModelSource, import_tf, saved_keras_size, tflite_factory
from .zoo import make_inputs

__all__ = ["VARIANTS", "BuiltVariant", "build_variant", "canonical_variant"]

VARIANTS = ("fp32", "xla", "tflite-fp32", "fp16", "int8-dynamic", "int8-full", "pruned")
_ALIASES = {"tflite": "tflite-fp32", "tflite-fp16": "fp16", "float16": "fp16",
            "tflite-int8-dynamic": "int8-dynamic", "dynamic-range": "int8-dynamic",
            "tflite-int8-full": "int8-full", "full-int8": "int8-full", "jit": "xla"}

PRUNE_SPARSITY = 0.5
CALIBRATION_SAMPLES = 32


def canonical_variant(name: str) -> str:
    """The canonical variant name for ``name`` or an alias; unknown names list the known ones."""
    key = _ALIASES.get(name, name)
    if key not in VARIANTS:
        known = ", ".join(VARIANTS) + "; aliases: " + ", ".join(f"{a}={b}" for a, b in _ALIASES.items())
        raise InputError(f"variant must be one of {known}; got {name!r}")
    return key


@dataclass
class BuiltVariant:
    """A variant ready to time.

    ``factory(threads)`` returns a runner factory (one runner per worker thread); ``threads`` is the
    TFLite ``num_threads`` and is ignored by TensorFlow runtimes, whose pools are set per process.
    """

    name: str
    runtime: str
    factory: Callable[[int | None], Callable[[], Callable[[np.ndarray], np.ndarray]]] = field(repr=False)
    size_bytes: int
    info: dict = field(default_factory=dict)


def build_variant(source: ModelSource, variant: str, *, seed: int = 0) -> BuiltVariant:
    """Build ``variant`` of ``source``."""
    name = canonical_variant(variant)
    if source.format == "tflite":
        if name != "fp32":
            raise InputError(f"{source.path}: a .tflite file can only be profiled as it is (variant fp32); "
                             f"convert the original Keras/SavedModel file to get {name!r}")
        data = source.tflite_bytes
        return BuiltVariant(name, "tflite", lambda t: tflite_factory(data, source.input, t), len(data),
                            {"gzip_bytes": len(zlib.compress(data, 6))})
    if name == "fp32":
        ref = source.reference()
        size = source.size_bytes if source.size_bytes is not None else saved_keras_size(source.keras_model)
        runtime = "keras-eager" if source.keras_model is not None else "tensorflow-savedmodel"
        return BuiltVariant(name, runtime, lambda t: (lambda: ref), size)
    if name == "xla":
        tf = import_tf()
        fn = tf.function(source.tf_callable(), jit_compile=True)

        def run(x: np.ndarray) -> np.ndarray:
            out = fn(tf.constant(x))
            return out.numpy()

        size = source.size_bytes if source.size_bytes is not None else saved_keras_size(source.keras_model)
        return BuiltVariant(name, "keras-xla", lambda t: (lambda: run), size,
                            {"note": "compiled per batch shape during warm-up"})
    if name == "pruned":
        data, info = _pruned_tflite(source, seed)
    else:
        data, info = _convert(source, name, seed)
    info["gzip_bytes"] = len(zlib.compress(data, 6))
    return BuiltVariant(name, "tflite", lambda t: tflite_factory(data, source.input, t), len(data), info)


def _convert(source: ModelSource, name: str, seed: int, call: Callable[[Any], Any] | None = None,
             trackable: Any = None) -> tuple[bytes, dict]:
    """Convert to TFLite with the optimisation of variant ``name``.

    ``call``/``trackable`` override the model (the pruned one); by default the source model is used.
    """
    tf = import_tf()
    if call is None and source.saved_model is not None:
        def converter() -> Any:
            return tf.lite.TFLiteConverter.from_saved_model(source.path)
    else:
        if call is None:
            call = source.tf_callable()
            # The converter freezes the variables it finds on ``trackable``; Keras 3 variables are not
            # TensorFlow trackables themselves, their ``.value`` is.
            trackable = tf.Module()
            trackable.variables_ = [w.value for w in source.keras_model.weights]
        spec = tf.TensorSpec([None, *source.input.shape], tf.dtypes.as_dtype(source.input.dtype))
        concrete = tf.function(call, input_signature=[spec]).get_concrete_function()

        def converter() -> Any:
            return tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)

    info: dict = {}
    conv = converter()
    if name == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        info["quantization"] = "float16 weights"
    elif name == "int8-dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        info["quantization"] = "dynamic range: int8 weights, float activations quantised per call"
    elif name == "int8-full":
        rng = np.random.default_rng(seed + 1)
        calib = [make_inputs(source.input, 1, rng) for _ in range(CALIBRATION_SAMPLES)]

        def representative() -> Any:
            for x in calib:
                yield [x]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        info["calibration"] = f"{CALIBRATION_SAMPLES} random inputs (seed {seed + 1})"
        try:
            return _run_converter(conv), {**info, "quantization": "full integer (int8 ops only), float I/O"}
        except Exception as exc:  # the converter raises ConverterError or RuntimeError for unsupported ops
            conv = converter()
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            info["quantization"] = "full integer with float fallback for ops without int8 kernels"
            info["strict_int8_error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return _run_converter(conv), info


def _run_converter(conv: Any) -> bytes:
    import logging

    # The converter logs MLIR pass statistics at WARNING; they are noise to a user of this tool.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return conv.convert()


def _tf_keras_model(source: ModelSource) -> Any:
    if source.zoo_entry is not None:
        return source.zoo_entry.build("tf_keras", seed=source.seed)
    if source.format == "h5":
        import tf_keras

        try:
            return tf_keras.models.load_model(source.path, compile=False)
        except Exception as exc:  # tf-keras raises TypeError/ValueError for Keras-3-written files
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{source.path}: the pruned variant needs a model tf-keras (Keras 2) can load, and "
                             f"this .h5 file cannot be ({first}); it was probably written by Keras 3. Save it "
                             "with tf-keras, or profile a zoo model") from None
    raise InputError(f"{source.path}: the pruned variant needs a model tf-keras can load (a .h5 file or a "
                     f"zoo model); this is a {source.format!r} model")


def _import_tfmot() -> Any:
    # tfmot sets TF_USE_LEGACY_KERAS=1 process-wide on import; restore the caller's setting.
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise InputError(f"the pruned variant needs tensorflow-model-optimization ({exc})") from None
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


def _pruned_tflite(source: ModelSource, seed: int) -> tuple[bytes, dict]:
    """Magnitude-prune Conv/Dense kernels to PRUNE_SPARSITY, strip the wrappers, convert to TFLite fp32.

    The masks are applied by one training step at learning rate 0 with batch normalisation frozen, so the
    surviving weights are exactly the fp32 ones: the output difference measures pruning and nothing else.
    """
    import_tf()
    tfmot = _import_tfmot()
    import tf_keras

    base = _tf_keras_model(source)
    schedule = tfmot.sparsity.keras.ConstantSparsity(PRUNE_SPARSITY, begin_step=0, frequency=1)
    prunable = (tf_keras.layers.Conv2D, tf_keras.layers.Dense)

    def wrap(layer: Any) -> Any:
        if isinstance(layer, prunable):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    # Returning the original layers (and wrapping them) shares their weights with ``base``: no copy needed.
    wrapped = tf_keras.models.clone_model(base, clone_function=wrap)
    for layer in wrapped.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    wrapped.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    rng = np.random.default_rng(seed + 2)
    x = make_inputs(source.input, 2, rng)
    y = np.zeros((2, *wrapped.output_shape[1:]), dtype="float32")
    wrapped.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    kernels = [layer.kernel.numpy() for layer in stripped.layers if isinstance(layer, prunable)]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    total = sum(k.size for k in kernels)
    all_weights = sum(int(np.size(w)) for w in stripped.get_weights())
    data, _ = _convert(source, "tflite-fp32", seed, call=lambda t: stripped(t, training=False), trackable=stripped)
    return data, {"pruning": f"magnitude, constant sparsity {PRUNE_SPARSITY} on Conv2D/Dense kernels "
                             "(tensorflow-model-optimization, tf-keras), strip_pruning, TFLite fp32",
                  "sparsity_of_pruned_kernels": zeros / total if total else 0.0,
                  "pruned_fraction_of_all_weights": zeros / all_weights if all_weights else 0.0,
                  "note": "dense TFLite kernels: pruning shrinks the compressed size, not the compute"}

