"""DARTS, GDAS and DrNAS on the NAS-Bench-201 cell space trained on real images (Fashion-MNIST):
which cells they end with, and how much of each is parameter-free (skip, none, pooling).

DARTS is known to collapse on this space (Dong & Yang 2020 report cells of skip connections only
when it searches CIFAR: 54.30 % on CIFAR-10); DrNAS's Dirichlet with its anchor is known not to
(94.36 %). CIFAR is not available offline here, so the supernet trains on Fashion-MNIST's
training split (``--train`` images, halved into the weights' and the architecture's halves),
28 x 28 grey images, ``C = --channels`` and ``N = --cells`` cells per stage. Each method runs
``--seeds`` searches as one vmapped program (``evonas.train.differentiable``). Printed per method
and seed: the final cell (its NAS-Bench-201 arch string), the share of parameter-free ops in the
argmax per epoch, and the cell's CIFAR-10 / CIFAR-100 / ImageNet16-120 test accuracy looked up in
the vendored table (the cell found on Fashion-MNIST, as CIFAR's searches would be scored).

    python benchmarks/relaxed_nb201.py --methods darts,drnas --train 3000 --epochs 15 --seeds 1

Time it alone. The last line printed is one JSON object::

    {"benchmark": "relaxed_nb201", "methods": {METHOD: {"parameter_free": [[per epoch] per seed],
     "cells": [arch strings], "nb201_test": {dataset: [per seed]}, "seconds": ...}}, ...}
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="darts,gdas,drnas")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train", type=int, default=6000, help="training images used")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--arch-learning-rate", type=float, default=3e-3)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files")
    args = parser.parse_args(argv)

    from evonas.benchmarks.nb201 import DATASETS, load_table
    from evonas.data import load_dataset
    from evonas.genomes.cell import CellEncoding
    from evonas.train import TrainConfig
    from evonas.train.differentiable import Relaxation, differentiable_search

    options = {"limit": args.train} if args.data_dir is None else {
        "limit": args.train, "data_dir": args.data_dir}
    dataset = load_dataset("fashion_mnist", **options)
    size = dataset.x_train.shape[1]
    encoding = CellEncoding(num_classes=10, input_size=size, channels=args.channels,
                            cells_per_stage=args.cells, in_channels=dataset.x_train.shape[-1])
    train = TrainConfig(steps=1, batch_size=args.batch_size, learning_rate=0.025,
                        optimizer="sgd", weight_decay=3e-4, schedule="cosine")
    table = load_table()
    out: dict = {"benchmark": "relaxed_nb201", "train_images": int(len(dataset.y_train)),
                 "epochs": args.epochs, "channels": args.channels, "cells": args.cells,
                 "seeds": args.seeds, "methods": {}}
    for method in args.methods.split(","):
        relaxation = Relaxation(method=method, epochs=args.epochs,
                                arch_learning_rate=args.arch_learning_rate)
        began = time.perf_counter()
        result = differentiable_search(jax.random.key(0), encoding, dataset, relaxation, train,
                                       seeds=args.seeds)
        seconds = time.perf_counter() - began
        finals = result.argmax[:, -1]
        cells = [encoding.to_arch_str(g) for g in finals]
        looked = {name: [float(table.column(name, "test_acc")[table.index_of(g)])
                         for g in finals] for name in DATASETS}
        free = np.round(result.parameter_free.astype(np.float64), 3).tolist()
        out["methods"][method] = {"cells": cells, "parameter_free": free,
                                  "final_parameter_free": [f[-1] for f in free],
                                  "nb201_test": looked, "seconds": round(seconds, 1)}
        print(f"{method}: {seconds:.0f} s; parameter-free share of the argmax at the end "
              f"{[f[-1] for f in free]}; cells {cells}; NB201 test "
              + ", ".join(f"{k} {np.mean(v):.2f}" for k, v in looked.items()), flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
