"""TensorFlow / Keras / TFLite backend: load a model, build its variants, make runners.

TensorFlow is imported here and only here (and in :mod:`.variants`, which calls into this module), so
``import simulator`` works on machines without it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .zoo import ZOO_PREFIX, InputSpec, ZooEntry, get_entry, weights_sha256

__all__ = ["ModelSource", "configure_threads", "import_tf", "load_source", "tflite_factory"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def import_tf() -> Any:
    """Import TensorFlow quietly (its C++ INFO/WARNING lines are not the user's business)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise InputError("profiling Keras/TFLite models needs TensorFlow: pip install 'serving-simulator[tf]' "
                         f"({exc})") from None
    return tf


def configure_threads(intra_op: int | None, inter_op: int | None) -> dict:
    """Set TensorFlow's thread pools; must run before TensorFlow executes its first op.

    Returns the settings in force (0 means TensorFlow's default: one thread per core).
    """
    tf = import_tf()
    try:
        if intra_op is not None:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op is not None:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:
        raise RuntimeError("TensorFlow thread pools can only be set before the first op runs") from exc
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@dataclass
class ModelSource:
    """A loaded model and what is known about it.

    ``format`` is one of ``zoo``, ``keras`` (.keras), ``h5``, ``savedmodel``, ``tflite``. Exactly one of
    ``keras_model``, ``saved_model`` and ``tflite_bytes`` is set.
    """

    name: str
    format: str
    input: InputSpec
    classifier: bool
    path: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    keras_model: Any = None
    saved_model: Any = None
    tflite_bytes: bytes | None = None
    zoo_entry: ZooEntry | None = None
    seed: int = 0

    @property
    def framework(self) -> str:
        return "tflite" if self.format == "tflite" else "keras" if self.keras_model is not None else "tensorflow"

    def describe(self) -> dict:
        d = {"name": self.name, "framework": self.framework, "format": self.format,
             "input_shape": list(self.input.shape), "input_dtype": self.input.dtype}
        if self.zoo_entry is not None:
            d.update({"zoo": ZOO_PREFIX + self.zoo_entry.name, "description": self.zoo_entry.description,
                      "weights": f"random (seed {self.seed}); architecture built in code",
                      "weights_sha256": self.sha256})
        else:
            d.update({"file": self.path, "file_sha256": self.sha256})
        return d

    # -- the fp32 reference ------------------------------------------------------------------------
    def reference(self) -> Callable[[np.ndarray], np.ndarray]:
        """The unmodified model as a function numpy → numpy (the fp32 variant's runner)."""
        if self.keras_model is not None:
            model = self.keras_model
            return lambda x: _to_numpy(model(x, training=False))
        if self.saved_model is not None:
            fn, name = _signature(self.saved_model)
            tf = import_tf()
            return lambda x: _to_numpy(fn(**{name: tf.constant(x)}))
        return tflite_factory(self.tflite_bytes, self.input, threads=None)()

    def tf_callable(self) -> Callable[[Any], Any]:
        """A TensorFlow-traceable call of the model (for XLA and for TFLite conversion)."""
        if self.keras_model is not None:
            model = self.keras_model
            return lambda t: model(t, training=False)
        if self.saved_model is not None:
            fn, name = _signature(self.saved_model)
            return lambda t: _first(fn(**{name: t}))
        raise InputError(f"{self.path}: a .tflite file can only be profiled as it is (variant fp32)")


def _first(out: Any) -> Any:
    if isinstance(out, dict):
        return out[sorted(out)[0]]
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def _to_numpy(out: Any) -> np.ndarray:
    out = _first(out)
    return out.numpy() if hasattr(out, "numpy") else np.asarray(out)


def _signature(saved: Any) -> tuple[Any, str]:
    fn = saved.signatures["serving_default"]
    names = sorted(fn.structured_input_signature[1])
    return fn, names[0]


def _spec_from_shape(shape: Any, dtype: Any, where: str, override: tuple[int, ...] | None) -> InputSpec:
    dims = list(shape)[1:]
    if override is not None:
        dims = list(override)
    if any(d is None or int(d) < 1 for d in dims):
        raise InputError(f"{where}: input shape {[None, *dims]} has unknown dimensions; "
                         "give --input-shape, e.g. --input-shape 224,224,3")
    name = np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).name
    return InputSpec(tuple(int(d) for d in dims), name, 100 if np.issubdtype(np.dtype(name), np.integer) else 2)


def load_source(model: str, *, seed: int = 0, input_shape: tuple[int, ...] | None = None) -> ModelSource:
    """Load ``model``: ``zoo:<name>``, a .keras/.h5 file, a SavedModel directory or a .tflite file."""
    if model.startswith(ZOO_PREFIX):
        entry = get_entry(model)
        import_tf()
        km = entry.build("keras", seed=seed)
        return ModelSource(entry.name, "zoo", entry.input, entry.classifier, sha256=weights_sha256(km),
                           keras_model=km, zoo_entry=entry, seed=seed)
    path = Path(model)
    if not path.exists():
        raise InputError(f"model file {model!r} does not exist (or give a zoo model: "
                         f"{', '.join('zoo:' + n for n in _zoo_names())})")
    digest, size = file_sha256(path), disk_size(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(f"model directory {model!r} is not a SavedModel (no saved_model.pb)")
        tf = import_tf()
        try:
            saved = tf.saved_model.load(str(path))
            fn, name = _signature(saved)
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"SavedModel {model!r} cannot be loaded or has no serving_default signature: "
                             f"{exc}") from None
        spec = fn.structured_input_signature[1][name]
        ispec = _spec_from_shape(spec.shape, spec.dtype, model, input_shape)
        out = fn(**{name: tf.zeros((1, *ispec.shape), dtype=spec.dtype)})
        return ModelSource(path.name, "savedmodel", ispec, _is_classifier(_to_numpy(out)), str(path), digest, size,
                           saved_model=saved)
    if suffix == ".tflite":
        data = path.read_bytes()
        tf = import_tf()
        try:
            interp = _interpreter(tf, data, None)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{model!r} is not a valid TFLite model: {exc}") from None
        det = interp.get_input_details()[0]
        shape = det["shape_signature"] if len(det["shape_signature"]) else det["shape"]
        ispec = _spec_from_shape([None, *shape[1:]], det["dtype"], model, input_shape)
        out_shape = interp.get_output_details()[0]["shape"]
        classifier = bool(len(out_shape) == 2 and out_shape[-1] > 1)
        return ModelSource(path.stem, "tflite", ispec, classifier, str(path), digest, size, tflite_bytes=data)
    if suffix in KERAS_SUFFIXES:
        import_tf()
        import keras

        try:
            km = keras.models.load_model(str(path), compile=False)
        except Exception as exc:  # Keras raises many types for a bad file; all are the user's file
            raise InputError(f"Keras model {model!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
        inp = km.inputs[0]
        ispec = _spec_from_shape(inp.shape, inp.dtype, model, input_shape)
        classifier = len(km.outputs[0].shape) == 2 and (km.outputs[0].shape[-1] or 0) > 1
        return ModelSource(path.stem, "h5" if suffix != ".keras" else "keras", ispec, classifier, str(path),
                           digest, size, keras_model=km)
    raise InputError(f"model file {model!r} has an unknown type; expected .keras, .h5, .tflite, "
                     "a SavedModel directory or zoo:<name>")


def _zoo_names() -> list[str]:
    from .zoo import ZOO

    return list(ZOO)


def _is_classifier(out: np.ndarray) -> bool:
    return out.ndim == 2 and out.shape[-1] > 1


def _interpreter(tf: Any, data: bytes, threads: int | None) -> Any:
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works in TF 2.21.
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=data, num_threads=threads)


def tflite_factory(data: bytes, spec: InputSpec, threads: int | None,
                   batch_size: int | None = None) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    """Factory of TFLite runners: each call builds its own interpreter (interpreters are not thread-safe).

    The interpreter is resized to the first batch it sees (or ``batch_size``) and again whenever the batch
    size changes; resizing happens outside timed calls when warm-up runs first.
    """
    tf = import_tf()

    def factory() -> Callable[[np.ndarray], np.ndarray]:
        interp = _interpreter(tf, data, threads)
        inp = interp.get_input_details()[0]
        out_index = interp.get_output_details()[0]["index"]
        state = {"batch": None}

        def resize(b: int) -> None:
            try:
                interp.resize_tensor_input(inp["index"], [b, *spec.shape], strict=False)
                interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise InputError(f"TFLite model cannot run batch size {b}: {exc}") from None
            state["batch"] = b

        if batch_size is not None:
            resize(batch_size)

        def run(x: np.ndarray) -> np.ndarray:
            if state["batch"] != x.shape[0]:
                resize(x.shape[0])
            interp.set_tensor(inp["index"], x.astype(inp["dtype"], copy=False))
            interp.invoke()
            return interp.get_tensor(out_index)

        return run

    return factory


def saved_keras_size(model: Any) -> int:
    """Bytes of a Keras model saved as .keras (its size on disk)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.keras"
        model.save(target)
        return target.stat().st_size
