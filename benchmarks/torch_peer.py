"""The PyTorch peer of ``benchmarks/throughput.py``: the same ``conv`` architectures trained one
after another in PyTorch eager mode, the way a trial runs in NNI or Optuna.

Each genome's standalone network (``ConvEncoding.build(genome)[0].layers``: stem, layers, global
average pooling, dense head) is rebuilt with ``torch.nn`` at the same shapes: "same" padding,
stride 1, the depthwise-separable ops as a depthwise conv without bias and a pointwise conv with
bias, residuals zero-padded or truncated to the layer's width, Flax's tanh-approximated GELU.
The optimiser is Adam with the same peak learning rate and the same cosine decay to 0 over the
steps (``optax.cosine_decay_schedule``), the batches are the trainer's (the same indices), the
loss is the mean cross-entropy. Only the initialisation is PyTorch's own. Threads: all cores
(``torch.set_num_threads(os.cpu_count())``).

Needs ``torch`` (``pip install '.[peers]'``); ``available()`` says whether it imports.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from typing import Any


def available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _activation(name: str | None) -> Any:
    import torch.nn as tnn

    return {"relu": tnn.ReLU(), "gelu": tnn.GELU(approximate="tanh"), "silu": tnn.SiLU(),
            "tanh": tnn.Tanh(), "elu": tnn.ELU(), "identity": tnn.Identity(),
            None: tnn.Identity()}[name]


def build(module: Any, in_channels: int, spatial: int) -> Any:
    """The ``torch.nn.Module`` of a Flax ``ConvNet`` (its ``layers``, ``stem_width`` and
    ``num_classes``), for inputs ``[batch, channels, *spatial]``."""
    import torch
    import torch.nn as tnn

    from evonas.genomes.conv import parse_op

    conv = tnn.Conv1d if spatial == 1 else tnn.Conv2d
    maxpool = tnn.MaxPool1d if spatial == 1 else tnn.MaxPool2d
    avgpool = tnn.AvgPool1d if spatial == 1 else tnn.AvgPool2d

    class Layer(tnn.Module):
        def __init__(self, op: str, c_in: int, width: int, act: str | None, residual: bool):
            super().__init__()
            kind, k = parse_op(op)
            self.residual, self.width = residual, width
            if kind == "conv":
                self.body = tnn.Sequential(conv(c_in, width, k, padding=k // 2), _activation(act))
            elif kind == "dwsep":
                self.body = tnn.Sequential(
                    conv(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False),
                    conv(c_in, width, 1), _activation(act))
            elif kind == "maxpool":
                self.body = maxpool(3, 1, 1)
            elif kind == "avgpool":
                self.body = avgpool(3, 1, 1, count_include_pad=True)
            else:
                self.body = tnn.Identity()

        def forward(self, h: Any) -> Any:
            y = self.body(h)
            if self.residual:
                c = h.shape[1]
                fit = h[:, :self.width] if c >= self.width else torch.nn.functional.pad(
                    h, [0, 0] * spatial + [0, self.width - c])
                y = y + fit
            return y

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Sequential(conv(in_channels, module.stem_width, 3, padding=1),
                                       tnn.ReLU())
            layers, c = [], module.stem_width
            for _, op, width, act, residual in module.layers:
                layers.append(Layer(op, c, width, act, residual))
                c = width
            self.layers = tnn.Sequential(*layers)
            self.head = tnn.Linear(c, module.num_classes)

        def forward(self, x: Any) -> Any:
            h = self.layers(self.stem(x))
            return self.head(h.mean(dim=tuple(range(2, 2 + spatial))))

    return Net()


def train_all(encoding: Any, genomes: Any, dataset: Any, indices: Any, steps: int,
              learning_rate: float, seed: int) -> dict[str, Any]:
    """Trains every genome in turn; returns seconds, accuracies and step times."""
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    channels_last = np.asarray(dataset.x_train, np.float32)
    spatial = channels_last.ndim - 2
    order = (0, channels_last.ndim - 1, *range(1, channels_last.ndim - 1))
    x = torch.from_numpy(np.ascontiguousarray(channels_last.transpose(order)))
    y = torch.from_numpy(np.asarray(dataset.y_train, np.int64))
    x_val = torch.from_numpy(np.ascontiguousarray(
        np.asarray(dataset.x_val, np.float32).transpose(order)))
    y_val = torch.from_numpy(np.asarray(dataset.y_val, np.int64))
    batches = torch.from_numpy(np.asarray(indices, np.int64))
    accs, step_s = [], {}
    start = time.perf_counter()
    for i, genome in enumerate(genomes):
        net = build(encoding.build(genome)[0], x.shape[1], spatial)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
        # optax.cosine_decay_schedule(lr, steps): lr * 0.5 * (1 + cos(pi * t / steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
        t0 = time.perf_counter()
        for s in range(steps):
            idx = batches[s]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        step_s[str(i)] = (time.perf_counter() - t0) / steps
        with torch.no_grad():
            accs.append(float((net(x_val).argmax(-1) == y_val).float().mean()))
    return {"wall_s": time.perf_counter() - start, "best_val_acc": max(accs),
            "val_acc": accs, "step_s": step_s}
