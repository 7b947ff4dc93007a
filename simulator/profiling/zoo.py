"""Built-in model zoo: architectures built in code with seeded random weights (nothing is downloaded).

Each entry builds the same architecture for Keras 3 (``keras``, used for timing fp32/XLA and for TFLite
conversion) and for Keras 2 (``tf_keras``, which TensorFlow Model Optimization needs for pruning). The
Keras 2 copy receives the Keras 3 weights, so every variant starts from identical parameters.

Classifiers output logits (no final softmax): a random network's softmax over 1000 classes is flat at
~1e-3, so differences between variants would vanish in it; logits keep them visible. Random weights time
the same as trained ones (same FLOPs, same kernels), but a random classifier's logits lie close together,
so top-1 agreement between variants is a pessimistic figure for a trained model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["ZOO", "InputSpec", "ZooEntry", "get_entry", "make_inputs", "weights_sha256"]

ZOO_PREFIX = "zoo:"


@dataclass(frozen=True)
class InputSpec:
    """One model input, without the batch dimension.

    Parameters
    ----------
    shape : tuple of int
        Per-example shape, e.g. ``(224, 224, 3)``.
    dtype : str
        numpy dtype name: ``"float32"`` or an integer type for token ids.
    int_high : int
        Exclusive upper bound of random integer inputs (vocabulary size); unused for floats.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    int_high: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}


def make_inputs(spec: InputSpec, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Random inputs of ``batch_size`` examples: uniform [0, 1) floats or uniform token ids."""
    shape = (batch_size, *spec.shape)
    if np.issubdtype(np.dtype(spec.dtype), np.integer):
        return rng.integers(0, spec.int_high, size=shape).astype(spec.dtype)
    return rng.random(shape, dtype=np.float32).astype(spec.dtype, copy=False)


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: how to build it and what it takes."""

    name: str
    description: str
    input: InputSpec
    builder: Callable[[ModuleType], Any] = field(repr=False)
    classifier: bool = True

    def build(self, framework: str = "keras", seed: int = 0) -> Any:
        """Build the model with weights drawn from ``seed``.

        ``framework`` is ``"keras"`` (Keras 3) or ``"tf_keras"`` (Keras 2, for pruning).
        """
        import keras

        keras.utils.set_random_seed(seed)
        model = self.builder(keras)
        _calibrate_batch_norm(model, self.input, seed)
        if framework == "keras":
            return model
        if framework != "tf_keras":
            raise InputError(f"framework must be one of keras, tf_keras; got {framework!r}")
        import tf_keras

        legacy = self.builder(tf_keras)
        legacy.set_weights(model.get_weights())
        return legacy


def _calibrate_batch_norm(model: Any, spec: InputSpec, seed: int, examples: int = 16) -> None:
    """Set every BatchNormalization layer's moving statistics to those of random inputs.

    Freshly initialised moving statistics (mean 0, variance 1) do not match the activations of a random
    network, and through 50 layers the activations of MobileNetV2 shrink to ~1e-6 (ResNet50's grow): far
    from what a trained model computes, and tiny values risk denormal arithmetic, which is much slower on
    CPUs. One training-mode pass with momentum 0 makes each layer's moving statistics its batch statistics,
    as training would, so activations stay of order 1.
    """
    import keras

    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(make_inputs(spec, examples, np.random.default_rng([seed, 7])), training=True)
    for layer, momentum in zip(layers, saved, strict=True):
        layer.momentum = momentum


def weights_sha256(model: Any) -> str:
    """sha256 of a model's weight arrays in order: identifies random-weight zoo models exactly."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def _tiny_cnn(k: ModuleType) -> Any:
    layers = k.layers
    inputs = k.Input(shape=(32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, name="logits")(x)
    return k.Model(inputs, outputs, name="tiny_cnn")


def _mobilenet_v2(k: ModuleType) -> Any:
    return k.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000,
                                      classifier_activation=None)


def _resnet50(k: ModuleType) -> Any:
    return k.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=1000,
                                   classifier_activation=None)


_SEQ_LEN = 128
_VOCAB = 8000


def _transformer_small(k: ModuleType) -> Any:
    """Two post-norm encoder blocks (d_model 128, 4 heads, FFN 512) over 128 tokens, 4-way classifier.

    Positions are added as a learned embedding of a constant index vector, built from stock layers
    so that the model saves and converts without custom objects.
    """
    layers = k.layers
    d_model, heads, ffn, blocks = 128, 4, 512, 2
    tokens = k.Input(shape=(_SEQ_LEN,), dtype="int32", name="tokens")
    x = layers.Embedding(_VOCAB, d_model, name="token_embedding")(tokens)
    positions = layers.Embedding(_SEQ_LEN, d_model, name="position_embedding")(
        layers.Lambda(lambda t: t * 0 + np.arange(_SEQ_LEN, dtype="int32"), name="positions")(tokens))
    x = layers.Add()([x, positions])
    for i in range(blocks):
        attn = layers.MultiHeadAttention(heads, d_model // heads, name=f"mha_{i}")(x, x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"ln_attn_{i}")(layers.Add()([x, attn]))
        h = layers.Dense(ffn, activation="relu", name=f"ffn_in_{i}")(x)
        h = layers.Dense(d_model, name=f"ffn_out_{i}")(h)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"ln_ffn_{i}")(layers.Add()([x, h]))
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(4, name="logits")(x)
    return k.Model(tokens, outputs, name="transformer_small")


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("tiny_cnn", "2-conv CNN on 32x32x3, 10 classes (fast tests)", InputSpec((32, 32, 3)), _tiny_cnn),
        ZooEntry("mobilenet_v2", "MobileNetV2 224x224x3, 1000 classes", InputSpec((224, 224, 3)), _mobilenet_v2),
        ZooEntry("resnet50", "ResNet50 224x224x3, 1000 classes", InputSpec((224, 224, 3)), _resnet50),
        ZooEntry("transformer_small", "2-layer Transformer encoder, 128 tokens, vocab 8000, 4 classes",
                 InputSpec((_SEQ_LEN,), "int32", _VOCAB), _transformer_small),
    )
}


def get_entry(name: str) -> ZooEntry:
    """Look up a zoo model by name (with or without the ``zoo:`` prefix); unknown names list the known ones."""
    key = name[len(ZOO_PREFIX):] if name.startswith(ZOO_PREFIX) else name
    if key not in ZOO:
        raise InputError(f"unknown zoo model {name!r}; known: {', '.join('zoo:' + n for n in ZOO)}")
    return ZOO[key]
