"""PyTorch backend, for machines with PyTorch but no TensorFlow (the GPU machines).

The zoo architectures are rebuilt in PyTorch (torchvision's MobileNetV2 / ResNet50 when torchvision is
installed, a compact own definition otherwise; the encoder uses ``torch.nn.TransformerEncoder``) with
seeded random weights. Variants: ``fp32`` and ``fp16`` (``model.half()``), eager; and, on CUDA only,
``fp32-cudagraph`` / ``fp16-cudagraph``: the same model captured once per batch size as a CUDA graph and
replayed, which is how a GPU server escapes the per-kernel launch cost of eager PyTorch (small models at
small batches are CPU-bound in eager mode: measured on an H100, MobileNetV2 takes ~4-6 ms per call eager
whatever the batch up to 8). Runs on CUDA when available; every timed call ends with
``torch.cuda.synchronize()`` so that the time covers the kernels, not just their launch. Inputs are copied
host → device and outputs device → host inside the call, as a server would.

PyTorch is imported only inside these functions.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .zoo import ZOO_PREFIX, InputSpec, get_entry

__all__ = ["TORCH_VARIANTS", "build_torch_model", "prepare_torch"]

TORCH_VARIANTS = ("fp32", "fp16", "fp32-cudagraph", "fp16-cudagraph")
_TORCH_ALIASES = {"tflite-fp16": "fp16", "float16": "fp16", "half": "fp16"}

# PyTorch is channels-first.
TORCH_INPUTS = {
    "tiny_cnn": InputSpec((3, 32, 32)),
    "mobilenet_v2": InputSpec((3, 224, 224)),
    "resnet50": InputSpec((3, 224, 224)),
    "transformer_small": InputSpec((128,), "int64", 8000),
}


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise InputError(f"the torch backend needs PyTorch installed ({exc})") from None
    return torch


def _mobilenet_v2(torch: Any) -> Any:
    try:
        from torchvision.models import mobilenet_v2

        return mobilenet_v2(weights=None)
    except ImportError:
        pass
    nn = torch.nn

    def cbr(cin: int, cout: int, k: int, s: int, groups: int = 1) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int):
            super().__init__()
            hidden = cin * expand
            layers = [cbr(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [cbr(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            return x + self.block(x) if self.residual else self.block(x)

    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1)]
    layers: list[Any] = [cbr(3, 32, 3, 2)]
    cin = 32
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += [cbr(cin, 1280, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers)


def _resnet50(torch: Any) -> Any:
    try:
        from torchvision.models import resnet50

        return resnet50(weights=None)
    except ImportError:
        pass
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int):
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            return self.relu(self.body(x) + self.down(x))

    layers: list[Any] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def _transformer_small(torch: Any) -> Any:
    nn = torch.nn

    class Encoder(nn.Module):
        def __init__(self, vocab: int = 8000, seq: int = 128, d: int = 128, heads: int = 4, ffn: int = 512):
            super().__init__()
            self.tokens = nn.Embedding(vocab, d)
            self.positions = nn.Parameter(torch.randn(1, seq, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(d, 4)

        def forward(self, ids: Any) -> Any:
            h = self.encoder(self.tokens(ids) + self.positions)
            return self.head(h.mean(dim=1))

    return Encoder()


def _tiny_cnn(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


_BUILDERS = {"tiny_cnn": _tiny_cnn, "mobilenet_v2": _mobilenet_v2, "resnet50": _resnet50,
             "transformer_small": _transformer_small}


def build_torch_model(name: str, seed: int = 0) -> Any:
    """Build zoo model ``name`` in PyTorch with weights drawn from ``seed``, in eval mode."""
    torch = _import_torch()
    entry = get_entry(name)
    # fork_rng keeps the caller's global torch RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _BUILDERS[entry.name](torch)
        _calibrate_batch_norm(torch, model, TORCH_INPUTS[entry.name])
    return model.eval()


def _calibrate_batch_norm(torch: Any, model: Any, spec: InputSpec, batches: int = 2, batch: int = 8) -> None:
    """Set batch-norm running statistics from a few random batches, as training would have.

    With freshly initialised statistics (mean 0, variance 1) nothing normalises a random network's
    activations: through MobileNetV2 they decay to ~1e-9 at the logits, below float16's smallest
    number, so the fp16 variant answered all zeros (measured on an H100: top-1 agreement 0, relative
    difference 1.0). Calibrated statistics keep activations at a trained network's scale, so the fp16
    and fp32 outputs can be compared. Timings do not depend on the weights' values.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            if spec.dtype.startswith("int"):
                x = torch.randint(0, spec.int_high, (batch, *spec.shape))
            else:
                x = torch.rand((batch, *spec.shape))
            model(x)
    model.eval()


def _state_size(model: Any) -> int:
    torch = _import_torch()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def prepare_torch(config: Any, threads: int | None) -> Any:
    """The torch counterpart of the TensorFlow backend: a :class:`~.profiler.Prepared` variant."""
    from .profiler import Prepared

    torch = _import_torch()
    variant = _TORCH_ALIASES.get(config.variant, config.variant)
    if variant not in TORCH_VARIANTS:
        raise InputError(f"variant must be one of {', '.join(TORCH_VARIANTS)} with the torch backend; "
                         f"got {config.variant!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    graphs = variant.endswith("-cudagraph")
    if graphs and device.type != "cuda":
        raise InputError(f"variant {variant!r} needs a CUDA device (torch.cuda.is_available() is False)")
    if config.model.startswith(ZOO_PREFIX):
        entry = get_entry(config.model)
        spec = TORCH_INPUTS[entry.name]
        model = build_torch_model(entry.name, config.seed)
        info: dict = {"name": entry.name, "framework": "torch", "format": "zoo", "zoo": ZOO_PREFIX + entry.name,
                      "description": entry.description + " (PyTorch, channels-first)",
                      "weights": f"random (seed {config.seed}); architecture built in code; batch-norm "
                                 "statistics from 2 random batches"}
        classifier = entry.classifier
    else:
        path = Path(config.model)
        if not path.is_file() or path.suffix.lower() not in (".pt", ".pth"):
            raise InputError(f"the torch backend takes zoo:<name> or a TorchScript .pt file; got {config.model!r}")
        if config.input_shape is None:
            raise InputError(f"{config.model}: give --input-shape for a TorchScript model")
        try:
            model = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"{config.model!r} is not a TorchScript model: {exc}") from None
        spec = InputSpec(tuple(config.input_shape))
        from .tf_backend import file_sha256

        info = {"name": path.stem, "framework": "torch", "format": "torchscript", "file": str(path),
                "file_sha256": file_sha256(path)}
        classifier = True
    if config.input_shape is not None:
        spec = InputSpec(tuple(config.input_shape), spec.dtype, spec.int_high)
    model = model.to(device)
    reference_model = model
    size = _state_size(model)
    if variant.startswith("fp16"):
        import copy

        half = copy.deepcopy(model).half()
        size = _state_size(half)
    else:
        half = None
    run_model = half if half is not None else model
    float_dtype = torch.float16 if half is not None else torch.float32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def to_tensor(x: np.ndarray, dtype: Any) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=False)
        return t if not t.is_floating_point() else t.to(dtype)

    def make_runner(m: Any, dtype: Any) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                y = m(to_tensor(x, dtype))
                sync()
                return y.float().cpu().numpy()

        return run

    capture_lock = threading.Lock()

    def make_graph_runner(m: Any, dtype: Any) -> Callable[[np.ndarray], np.ndarray]:
        """One CUDA graph per input shape, captured on first use (the warm-up) on this worker's own stream;
        a call copies the input into the graph's static input, replays it and copies the output back."""
        stream = torch.cuda.Stream(device)
        captured: dict[tuple, tuple[Any, Any, Any]] = {}

        def capture(example: Any) -> tuple[Any, Any, Any]:
            static_in = example.clone()
            with capture_lock, torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):  # warm-up outside the graph: lazy initialisation must not be captured
                    m(static_in)
                stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    static_out = m(static_in)
            return graph, static_in, static_out

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.cuda.stream(stream):
                t = to_tensor(x, dtype)
                entry = captured.get(x.shape)
                if entry is None:
                    entry = captured[x.shape] = capture(t)
                graph, static_in, static_out = entry
                static_in.copy_(t)
                graph.replay()
                out = static_out.float().cpu().numpy()
                stream.synchronize()
                return out

        return run

    def factory(t: int | None) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
        if t is not None:
            torch.set_num_threads(t)
        if graphs:
            return lambda: make_graph_runner(run_model, float_dtype)
        return lambda: make_runner(run_model, float_dtype)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    settings = {"runtime": "torch", "num_threads": threads if threads is not None else torch.get_num_threads(),
                "device": str(device)}
    if threads is not None:
        torch.set_num_threads(threads)
    return Prepared(info, variant, f"torch-{device.type}", spec, classifier, size, factory,
                    make_runner(reference_model, torch.float32),
                    {"dtype": "float16" if half is not None else "float32",
                     "execution": "CUDA graph per batch size, replayed" if graphs else "eager",
                     "timing": "torch.cuda.synchronize() after each call" if gpu else "CPU, synchronous"},
                    ("torch", "torchvision"), gpu, settings)
