"""Profile a model: build the variant, check its outputs against fp32, time every sweep point.

The result is a :class:`simulator.profiles.Profile` holding raw service-time samples (seconds) per
(batch size, concurrency) point, with the measurement method, the machine, its load, the variant's size
and its output difference from fp32 written beside the timings.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..profiles import SCHEMA_VERSION, Profile
from ..validation import check_choice, check_integer
from .environment import device_info, loadavg, usable_cores, utc_now
from .serving import measure_serving
from .timing import Measurement, StoppingRule, measure_concurrent
from .zoo import ZOO, InputSpec, get_entry, make_inputs

__all__ = ["BACKENDS", "Prepared", "ProfileConfig", "output_difference", "run_profile"]

BACKENDS = ("auto", "tensorflow", "torch")
MAX_BATCH = 1024
MAX_CONCURRENCY = 64
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProfileConfig:
    """What to measure and how long.

    Parameters
    ----------
    model : str
        ``zoo:<name>``, a .keras/.h5 file, a SavedModel directory or a .tflite file.
    variant : str
        Variant name (see :mod:`simulator.profiling.variants`).
    batch_sizes : tuple of int
        Batch sizes, each measured at concurrency 1.
    concurrency : tuple of int
        Requests in flight (one worker thread each); levels above 1 run at the smallest batch size.
    threads : tuple of int or None
        TensorFlow intra-op threads (fp32/xla) or TFLite ``num_threads``; the first value is used for the
        main points, the others form a thread sweep. None: the runtime's default (all cores).
    inter_op_threads : int or None
        TensorFlow inter-op threads (TensorFlow runtimes only).
    serving_path : bool
        Time requests through a real serving loop instead of bare calls.
    rule : StoppingRule
        Per-point stopping rule and warm-up.
    seed : int
        Seed of random weights (zoo) and random inputs.
    input_shape : tuple of int or None
        Per-example input shape for models whose shape has unknown dimensions.
    accuracy_examples : int
        Random examples on which the variant's outputs are compared with fp32.
    backend : str
        ``auto`` (TensorFlow if installed, else PyTorch), ``tensorflow`` or ``torch``.
    """

    model: str
    variant: str = "fp32"
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    concurrency: tuple[int, ...] = (1,)
    threads: tuple[int, ...] | None = None
    inter_op_threads: int | None = None
    serving_path: bool = False
    rule: StoppingRule = field(default_factory=StoppingRule)
    seed: int = 0
    input_shape: tuple[int, ...] | None = None
    accuracy_examples: int = 64
    backend: str = "auto"

    def __post_init__(self) -> None:
        if not self.batch_sizes:
            raise InputError("batch_sizes must list at least one batch size")
        for b in self.batch_sizes:
            check_integer("batch_size", b, minimum=1, maximum=MAX_BATCH)
        if not self.concurrency:
            raise InputError("concurrency must list at least one level")
        for c in self.concurrency:
            check_integer("concurrency", c, minimum=1, maximum=MAX_CONCURRENCY)
        for t in self.threads or ():
            check_integer("threads", t, minimum=1, maximum=1024)
        if self.inter_op_threads is not None:
            check_integer("inter_op_threads", self.inter_op_threads, minimum=1, maximum=1024)
        check_integer("accuracy_examples", self.accuracy_examples, minimum=1)
        check_choice("backend", self.backend, BACKENDS)
        object.__setattr__(self, "batch_sizes", tuple(sorted(set(self.batch_sizes))))
        object.__setattr__(self, "concurrency", tuple(sorted(set(self.concurrency))))


@dataclass
class Prepared:
    """A backend's answer: one variant of one model, ready to time.

    ``factory(threads)`` returns a runner factory; ``reference`` is the fp32 model as numpy → numpy.
    """

    model: dict
    variant: str
    runtime: str
    input: InputSpec
    classifier: bool
    size_bytes: int
    factory: Callable[[int | None], Callable[[], Callable[[np.ndarray], np.ndarray]]]
    reference: Callable[[np.ndarray], np.ndarray]
    variant_info: dict = field(default_factory=dict)
    frameworks: tuple[str, ...] = ()
    gpu_name: str | None = None
    thread_settings: dict = field(default_factory=dict)
    threads_in_process: bool = True


def resolve_backend(backend: str, model: str) -> str:
    if backend != "auto":
        return backend
    if importlib.util.find_spec("tensorflow") is not None:
        return "tensorflow"
    if importlib.util.find_spec("torch") is not None and model.startswith("zoo:"):
        return "torch"
    raise InputError("profiling needs TensorFlow (pip install 'serving-simulator[tf]') or, for zoo models, "
                     "PyTorch; neither is installed")


def _prepare_tensorflow(config: ProfileConfig, threads: int | None) -> Prepared:
    from .tf_backend import configure_threads, load_source
    from .variants import build_variant, canonical_variant

    variant = canonical_variant(config.variant)
    # Unknown zoo names and missing files fail here, before the seconds TensorFlow takes to import.
    if config.model.startswith("zoo:"):
        get_entry(config.model)
    elif not Path(config.model).exists():
        raise InputError(f"model file {config.model!r} does not exist (or give a zoo model: "
                         f"{', '.join('zoo:' + n for n in ZOO)})")
    tf_runtime = variant in ("fp32", "xla") and not config.model.lower().endswith(".tflite")
    settings: dict = {}
    in_process = True
    if tf_runtime:
        try:
            settings = configure_threads(threads, config.inter_op_threads)
        except RuntimeError:
            # TensorFlow already ran an op in this process (a second profile in one session): the pools
            # are fixed, so record the settings in force rather than pretend.
            in_process = False
            from .tf_backend import import_tf

            tf = import_tf()
            settings = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
        settings = {"runtime": "tensorflow", **settings, "note": "0 = TensorFlow default (one per core)"}
    else:
        # An explicit default: TFLite's own ("implementation-dependent") would leave the record vague.
        settings = {"runtime": "tflite", "num_threads": threads or usable_cores()}
    source = load_source(config.model, seed=config.seed, input_shape=config.input_shape)
    built = build_variant(source, variant, seed=config.seed)
    frameworks = ("tensorflow", "keras", "tf_keras") + (("tensorflow-model-optimization",)
                                                        if variant == "pruned" else ())
    model = source.describe()
    model["size_bytes_source"] = source.size_bytes
    return Prepared(model, variant, built.runtime, source.input, source.classifier, built.size_bytes,
                    built.factory, source.reference(), built.info, frameworks,
                    _tf_gpu_name() if tf_runtime else None, settings, in_process)


def _tf_gpu_name() -> str | None:
    """Name of the GPU TensorFlow runs on, if it sees one (TensorFlow places ops on GPU 0 by default)."""
    from .tf_backend import import_tf

    tf = import_tf()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def prepare(config: ProfileConfig, threads: int | None) -> Prepared:
    """Load the model and build the variant with the chosen backend."""
    backend = resolve_backend(config.backend, config.model)
    if backend == "torch":
        from .torch_backend import prepare_torch

        return prepare_torch(config, threads)
    return _prepare_tensorflow(config, threads)


def output_difference(reference: Callable[[np.ndarray], np.ndarray], runner: Callable[[np.ndarray], np.ndarray],
                      spec: InputSpec, classifier: bool, examples: int, seed: int, chunk: int = 8) -> dict:
    """Compare a variant's outputs with the fp32 reference on the same random inputs.

    Returns max and mean absolute difference, the reference's largest magnitude, the max difference
    relative to it and, for classifiers, the top-1 agreement rate (argmax of the outputs).
    """
    rng = np.random.default_rng([seed, 3])
    refs, outs = [], []
    for start in range(0, examples, chunk):
        x = make_inputs(spec, min(chunk, examples - start), rng)
        refs.append(np.asarray(reference(x), dtype=np.float64).reshape(x.shape[0], -1))
        outs.append(np.asarray(runner(x), dtype=np.float64).reshape(x.shape[0], -1))
    ref, out = np.concatenate(refs), np.concatenate(outs)
    if ref.shape != out.shape:
        raise RuntimeError(f"variant output shape {out.shape} differs from fp32 output shape {ref.shape}")
    diff = np.abs(out - ref)
    result = {"reference": "fp32 (the unmodified model) on the same inputs", "examples": examples,
              "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "max_abs_reference": float(np.abs(ref).max()),
              "max_rel_diff": float(diff.max() / np.abs(ref).max()) if np.abs(ref).max() > 0 else float(diff.max())}
    if classifier:
        result["top1_agreement"] = float(np.mean(out.argmax(axis=1) == ref.argmax(axis=1)))
    if not all(math.isfinite(v) for v in result.values() if isinstance(v, float)):
        result = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
        result["non_finite_outputs"] = True
    return result


def _point(batch: int, concurrency: int, m: Measurement, threads: dict) -> dict:
    pt: dict[str, Any] = {"batch_size": batch, "concurrency": concurrency,
                          "samples_s": [round(float(v), 9) for v in m.samples_s],
                          "threads": threads, "summary": m.summary()}
    if m.handoff_s is not None:
        pt["handoff_s"] = [round(float(v), 9) for v in m.handoff_s]
    return pt


def measure_points(prepared: Prepared, config: ProfileConfig, threads: int | None,
                   progress: Progress | None = None) -> list[dict]:
    """Time every (batch size, concurrency) point of ``config`` with ``threads``."""
    if threads is None and prepared.runtime == "tflite":
        threads = prepared.thread_settings.get("num_threads")
    factory = prepared.factory(threads)
    measure = measure_serving if config.serving_path else measure_concurrent
    grid = [(b, 1) for b in config.batch_sizes]
    grid += [(config.batch_sizes[0], c) for c in config.concurrency if c > 1]
    points = []
    for b, c in grid:
        def make_input(i: int, b: int = b) -> np.ndarray:
            return make_inputs(prepared.input, b, np.random.default_rng([config.seed, b, i]))

        m = measure(factory, make_input, c, config.rule)
        points.append(_point(b, c, m, prepared.thread_settings))
        if progress is not None:
            s = m.summary()
            progress(f"  batch {b:>3} concurrency {c:>2}: n={s['n']:>6} mean {s['mean_s'] * 1e3:9.3f} ms "
                     f"({s['stopping_outcome']})")
    return points


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _child_points(config: ProfileConfig, threads: int, verbose: bool) -> tuple[list[dict], dict]:
    """Measure in a fresh process, where TensorFlow's thread pools can still be set."""
    prepared = prepare(config, threads)
    return measure_points(prepared, config, threads, _to_stderr if verbose else None), prepared.thread_settings


def _measure_in_subprocess(config: ProfileConfig, threads: int, verbose: bool) -> tuple[list[dict], dict]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_child_points, config, threads, verbose).result()


def run_profile(config: ProfileConfig, progress: Progress | None = None) -> Profile:
    """Measure ``config`` and return the validated :class:`~simulator.profiles.Profile` (not yet saved)."""
    threads = list(config.threads) if config.threads else [None]
    load_before = loadavg()
    prepared = prepare(config, threads[0])
    if progress is not None:
        progress(f"{prepared.model['name']} / {prepared.variant} ({prepared.runtime}), "
                 f"{'serving path' if config.serving_path else 'bare call'}")
    runner = prepared.factory(threads[0] or prepared.thread_settings.get("num_threads"))()
    accuracy = output_difference(prepared.reference, runner, prepared.input, prepared.classifier,
                                 config.accuracy_examples, config.seed)
    del runner
    started = utc_now()
    if prepared.threads_in_process or threads[0] is None:
        points = measure_points(prepared, config, threads[0], progress)
    else:
        points, settings = _measure_in_subprocess(config, threads[0], progress is not None)
        prepared = replace(prepared, thread_settings=settings)
    sweep = []
    for t in threads[1:]:
        if progress is not None:
            progress(f" threads={t}")
        if prepared.runtime == "tflite" or prepared.runtime.startswith("torch"):
            settings = dict(prepared.thread_settings, num_threads=t)
            sub = replace(prepared, thread_settings=settings)
            sweep.append({"threads": settings, "points": measure_points(sub, config, t, progress)})
        else:
            pts, settings = _measure_in_subprocess(config, t, progress is not None)
            sweep.append({"threads": settings, "points": pts})
    load_after = loadavg()
    one_minute = [p["summary"]["loadavg"]["max_1min"] for p in points if p["summary"]["loadavg"]["max_1min"]]
    one_minute += [la[0] for la in (load_before, load_after) if la]
    model = dict(prepared.model, variant=prepared.variant, runtime=prepared.runtime,
                 size_bytes=prepared.size_bytes, variant_info=prepared.variant_info,
                 output_difference=accuracy,
                 input_shape=list(prepared.input.shape), classifier=prepared.classifier)
    device = device_info(prepared.frameworks, prepared.gpu_name)
    device["threads"] = prepared.thread_settings
    method = {
        "path": "serving" if config.serving_path else "bare",
        "description": ("request queue (queue.Queue) -> worker thread -> response future; samples are "
                        "dequeue-by-worker -> response ready, handoff_s is the rest of enqueue -> response"
                        if config.serving_path else
                        "bare call of the model (runner(x) until the result is materialised)"),
        "timer": "time.perf_counter",
        "warmup": {"calls_min": config.rule.warmup_calls, "seconds": config.rule.warmup_seconds,
                   "excluded": True},
        "stopping_rule": config.rule.describe(),
        "batch_sizes": list(config.batch_sizes),
        "concurrency": list(config.concurrency),
        "concurrency_note": "k requests in flight on k worker threads; levels > 1 at the smallest batch size",
        "threads": list(threads),
        "seed": config.seed,
        "started_at": started,
        "loadavg": {"before": load_before, "after": load_after,
                    "max_1min": max(one_minute) if one_minute else None,
                    "note": "os.getloadavg() before, during (once a second) and after each point, in each point's "
                            "summary; the machine may be shared, and a 1-minute "
                            "load above the core count means other work competed with these timings"},
    }
    data = {"schema_version": SCHEMA_VERSION, "source": "measured", "model": model, "device": device,
            "measured_at": utc_now(), "method": method, "points": points}
    if sweep:
        data["thread_sweep"] = sweep
    return Profile.from_dict(data, origin=f"measurement of {config.model}")


def config_summary(config: ProfileConfig) -> dict:
    d = asdict(config)
    d["rule"] = config.rule.describe()
    return d
