"""Shared pieces of the PyTorch training-throughput baselines.

train_torch_cpu.py and train_torch_gpu.py both import this module, so the CPU
and the GPU baseline train exactly the same models with exactly the same
LaPerm synchronisation; only the device and the timing clock differ.

What is measured, per (model, threads, sync on/off):
  * step time: one Adam step (forward, loss, backward, update) at batch B on
    random MNIST-shaped data, median over timed windows after a warm-up;
  * sync time: one full LaPerm synchronisation of every tensor of the model
    (per-row stable argsort, then scatter of the sorted initial row), median
    over repeated syncs;
  * images/s without sync = B / step time (median window; the best window too);
  * images/s with sync    = B * k / (k * step time + sync time), i.e. the
    authors' schedule (one sync every k steps) amortised exactly. A timed
    window of a few hundred steps would otherwise contain zero or one sync
    depending on where it starts, which makes a median meaningless.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 128
# Published k for f2 (250), conv7 (1200) and the dense ResNet (400); lenet300 has
# no published LaPerm setup, it uses the MNIST dense-network value 250.
DEFAULT_K = {"f2": 250, "lenet300": 250, "conv7": 1200, "resnet50c": 400}
MODELS = ("f2", "lenet300", "conv7")            # the CPU baseline's default
KNOWN_MODELS = MODELS + ("resnet50c",)
# (channels, height, width) of each model's input.
INPUT_SHAPE = {"f2": (1, 28, 28), "lenet300": (1, 28, 28), "conv7": (1, 28, 28), "resnet50c": (3, 32, 32)}
# The CIFAR setups reconnect kernels only (skip_bias, skip_bn in the authors' code).
RECONNECT_1D = {"f2": True, "lenet300": True, "conv7": True, "resnet50c": False}


class TfSamePad(nn.Module):
    """TensorFlow 'same' padding for a stride-s conv: the odd pixel goes bottom/right."""

    def __init__(self, kernel: int, stride: int, size: int) -> None:
        super().__init__()
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        before = total // 2
        self.pad = (before, total - before, before, total - before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


def same_conv(cin: int, cout: int, kernel: int, stride: int, size: int) -> list[nn.Module]:
    """A conv with TensorFlow 'same' padding: the conv's own padding where it is symmetric (no
    separate op, as PyTorch users write it), an explicit F.pad only where TF pads one pixel more
    at the bottom/right."""
    pad = TfSamePad(kernel, stride, size)
    before, after = pad.pad[0], pad.pad[1]
    if before == after:
        return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=before)]
    return [pad, nn.Conv2d(cin, cout, kernel, stride=stride)]


class ResidualBlock(nn.Module):
    """Keras ResNet v1 block: [conv3 BN relu conv3 BN] + shortcut (1x1 stride-2 conv with
    bias, no BN, when downsampling), then relu. Batch-norm as Keras: momentum 0.99, eps 1e-3."""

    def __init__(self, cin: int, cout: int, stride: int, size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            *same_conv(cin, cout, 3, stride, size), keras_bn(cout), nn.ReLU(),
            *same_conv(cout, cout, 3, 1, -(-size // stride)), keras_bn(cout))
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.main(x) + self.shortcut(x))


def keras_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def resnet_v1(blocks_per_stack: int) -> nn.Module:
    """CIFAR ResNet v1 of depth 6n+2 as our BuiltInModels.ResNet (n=8: resnet50c)."""
    layers: list[nn.Module] = [*same_conv(3, 16, 3, 1, 32), keras_bn(16), nn.ReLU()]
    cin, size = 16, 32
    for stack in range(3):
        cout = 16 << stack
        for block in range(blocks_per_stack):
            stride = 2 if stack > 0 and block == 0 else 1
            layers.append(ResidualBlock(cin, cout, stride, size))
            cin, size = cout, -(-size // stride)
    layers += [nn.AvgPool2d(8), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def build_model(name: str) -> nn.Module:
    if name == "f2":
        # 784-128-64-10, ReLU, no bias (the paper's F2).
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 128, bias=False), nn.ReLU(),
            nn.Linear(128, 64, bias=False), nn.ReLU(),
            nn.Linear(64, 10, bias=False))
    if name == "lenet300":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 300), nn.ReLU(),
            nn.Linear(300, 100), nn.ReLU(),
            nn.Linear(100, 10))
    if name == "conv7":
        # 28x28x1 NCHW; 'valid' unless noted; ReLU after every conv; 325,578 params.
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),                                # 26
            nn.Conv2d(32, 32, 3), nn.ReLU(),                               # 24
            TfSamePad(5, 2, 24), nn.Conv2d(32, 32, 5, stride=2), nn.ReLU(),  # 12
            nn.Dropout(0.4),
            nn.Conv2d(32, 64, 3), nn.ReLU(),                               # 10
            nn.Conv2d(64, 64, 3), nn.ReLU(),                               # 8
            TfSamePad(5, 2, 8), nn.Conv2d(64, 64, 5, stride=2), nn.ReLU(),   # 4
            nn.Dropout(0.4),
            nn.Conv2d(64, 128, 4), nn.ReLU(),                              # 1
            nn.Flatten(),
            nn.Dropout(0.4),
            nn.Linear(128, 10))
    if name == "resnet50c":
        return resnet_v1(8)
    raise ValueError(f"unknown model '{name}': expected one of {', '.join(KNOWN_MODELS)}")


def he_uniform_(model: nn.Module) -> None:
    """He-uniform U(-sqrt(6/fan_in), +sqrt(6/fan_in)) for kernels and biases, as LaPerm does."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            bound = (6.0 / fan_in) ** 0.5
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.uniform_(module.bias, -bound, bound)


def l2_params(model: nn.Module, name: str) -> list[torch.Tensor]:
    """F2 has L2 1e-4 on its first two kernels, the ResNet on every conv kernel; the others none."""
    if name == "resnet50c":
        return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    if name != "f2":
        return []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [linears[0].weight, linears[1].weight]


class Reconnector:
    """LaPerm synchronisation: every row (per output neuron / filter; 1-D tensors
    are one row) is refilled with its sorted initial values in the rank order of
    the current weights. Sorted initial rows are computed once."""

    def __init__(self, model: nn.Module, reconnect_1d: bool = True) -> None:
        self.tensors = [p for p in model.parameters() if reconnect_1d or p.dim() > 1]
        self.sorted0 = [torch.sort(self._rows(p.detach()), dim=1, stable=True).values.clone()
                        for p in self.tensors]

    @staticmethod
    def _rows(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1) if t.dim() == 1 else t.reshape(t.shape[0], -1)

    @torch.no_grad()
    def sync(self) -> None:
        for p, sorted0 in zip(self.tensors, self.sorted0):
            rows = self._rows(p.data)
            order = torch.sort(rows, dim=1, stable=True).indices
            rows.scatter_(1, order, sorted0)


@dataclass
class Result:
    model: str
    device: str
    threads: int
    batch: int
    sync: bool
    k: int
    step_ms: float
    sync_ms: float | None
    images_per_second: float
    # The fastest window: closer to the uncontended speed when other work shares the cores.
    best_window_images_per_second: float
    windows: int
    steps_per_window: int
    # Median process CPU time of one step (all threads together).
    process_cpu_ms_per_step: float
    process_cpu_ms_per_sync: float
    # PyTorch's Adam implementation: "fused" or "default" (see adam()).
    adam: str


def adam(model: torch.nn.Module, device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    """Keras' Adam (lr 1e-3, eps 1e-7) in PyTorch's fastest eager form on this device, and which
    form that is. On a GPU: fused (one kernel for every parameter, like our update; PyTorch 2.0 and
    later), else PyTorch's default (multi-tensor "foreach" kernels where it has them). On the CPU:
    the default, the form the README's CPU table was measured with."""
    settings = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    if device.type == "cuda":
        try:
            return torch.optim.Adam(model.parameters(), fused=True, **settings), "fused"
        except (TypeError, RuntimeError):
            pass
    return torch.optim.Adam(model.parameters(), **settings), "default"


class Trainer:
    def __init__(self, name: str, device: torch.device, batch: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.name = name
        self.device = device
        self.batch = batch
        self.model = build_model(name).to(device)
        he_uniform_(self.model)
        self.model.train()
        self.optimizer, self.adam = adam(self.model, device)
        self.l2 = l2_params(self.model, name)
        self.reconnector = Reconnector(self.model, RECONNECT_1D[name])
        # A pool of random batches shaped like the model's data set, cycled through.
        pool = 16
        generator = torch.Generator().manual_seed(seed + 1)
        self.images = torch.rand(pool, batch, *INPUT_SHAPE[name], generator=generator).to(device)
        self.labels = torch.randint(0, 10, (pool, batch), generator=generator).to(device)
        self.cursor = 0

    def step(self) -> None:
        i = self.cursor % self.images.shape[0]
        self.cursor += 1
        logits = self.model(self.images[i])
        loss = F.cross_entropy(logits, self.labels[i])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.l2:
            # L2 1e-4 * sum(w^2) as its gradient, 2e-4 * w, added in one multi-tensor op (what our
            # trainer does too): adding it to the loss would cost PyTorch dozens of small ops a step.
            # Under no_grad: with the weights (which require grad) as an operand, autograd would
            # record the add (for _foreach_add_ too in recent PyTorch), work our trainer does not do.
            with torch.no_grad():
                grads = [w.grad for w in self.l2]
                if hasattr(torch, "_foreach_add_"):
                    torch._foreach_add_(grads, self.l2, alpha=2e-4)
                else:
                    for g, w in zip(grads, self.l2):
                        g.add_(w, alpha=2e-4)
        self.optimizer.step()


def time_windows(action: Callable[[], None], repeats: int, windows: int,
                   synchronize: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Wall seconds and process CPU seconds per call, for each of `windows` timed windows
    of `repeats` calls. CPU time is what a single-threaded run would take on an idle
    core when other processes compete for the machine; wall time is what users see."""
    wall, cpu = [], []
    for _ in range(windows):
        synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            action()
        synchronize()
        wall.append((time.perf_counter() - start) / repeats)
        cpu.append((time.process_time() - start_cpu) / repeats)
    return wall, cpu


def measure(name: str, device: torch.device, threads: int, batch: int, k: int,
            warmup_seconds: float, window_seconds: float, windows: int, seed: int,
            synchronize: Callable[[], None]) -> list[Result]:
    trainer = Trainer(name, device, batch, seed)
    # Warm-up: allocator, kernels/JIT, caches; also sizes the timed windows.
    start = time.perf_counter()
    warm_steps = 0
    while warm_steps < 3 or time.perf_counter() - start < warmup_seconds:
        trainer.step()
        warm_steps += 1
    synchronize()
    # Windows sized from steady steps only: the warm-up's first steps (cuDNN autotuning, lazy
    # kernel loading) would make them too short.
    start = time.perf_counter()
    for _ in range(3):
        trainer.step()
    synchronize()
    per_step = (time.perf_counter() - start) / 3
    steps_per_window = max(3, int(window_seconds / per_step))
    step_windows, step_cpu = time_windows(trainer.step, steps_per_window, windows, synchronize)
    step_s, best_step_s = statistics.median(step_windows), min(step_windows)

    trainer.reconnector.sync()
    synchronize()
    sync_repeats = max(1, min(20, int(0.5 / max(step_s, 1e-6))))
    sync_windows, sync_cpu = time_windows(trainer.reconnector.sync, sync_repeats, windows, synchronize)
    sync_s, best_sync_s = statistics.median(sync_windows), min(sync_windows)

    common = dict(model=name, device=device.type, threads=threads, batch=batch, k=k,
                  windows=windows, steps_per_window=steps_per_window,
                  process_cpu_ms_per_step=statistics.median(step_cpu) * 1e3,
                  process_cpu_ms_per_sync=statistics.median(sync_cpu) * 1e3, adam=trainer.adam)
    without = Result(sync=False, step_ms=step_s * 1e3, sync_ms=None,
                     images_per_second=batch / step_s,
                     best_window_images_per_second=batch / best_step_s, **common)
    with_sync = Result(sync=True, step_ms=step_s * 1e3, sync_ms=sync_s * 1e3,
                       images_per_second=batch * k / (k * step_s + sync_s),
                       best_window_images_per_second=batch * k / (k * best_step_s + best_sync_s),
                       **common)
    return [with_sync, without]


def describe(result: Result) -> str:
    sync = (f"sync=on k={result.k} sync_ms={result.sync_ms:.3f} cpu_ms_per_sync={result.process_cpu_ms_per_sync:.3f}"
            if result.sync else "sync=off")
    return (f"model={result.model} device={result.device} threads={result.threads} "
            f"batch={result.batch} {sync} step_ms={result.step_ms:.3f} "
            f"cpu_ms_per_step={result.process_cpu_ms_per_step:.3f} "
            f"images_per_s={result.images_per_second:.1f} "
            f"best_window_images_per_s={result.best_window_images_per_second:.1f} adam={result.adam}")


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # The load average tells whether other work competed for the cores while we measured.
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "load_average_1_5_15": list(os.getloadavg())}


def write_json(path: str, payload: dict) -> None:
    """Atomic write: temp file in the same folder, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(temp, path)


def results_payload(results: list[Result], extra: dict) -> dict:
    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_description(), **extra,
            "results": [asdict(r) for r in results]}
