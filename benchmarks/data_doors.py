"""The data doors cost nothing in the hot path: a population trained on your arrays
(``Dataset.from_arrays``) against the same population on the built-in set of the same shape.

MNIST-1D is loaded by name (``load_dataset("mnist1d")``) and, as a user with arrays would bring
it, through ``Dataset.from_arrays`` from its raw train and test arrays: same shapes, same number
of classes, different bytes in the splits (the door carves its own validation). The same random
population of the ``conv`` encoding is trained on each, with the same key and config, each in a
fresh ``ProgramCache``, alternately ``--repeats`` times; the fastest of each is kept, and each
one's first run (the built-in set's compiles everything; the arrays' run after it finds JAX's
in-process caches warm, so ``compiles`` counts what each had to compile anew).

Prints one JSON line (the last line)::

    {"benchmark": "data_doors", "population": P, "steps": S,
     "builtin": {"wall_s", "step_ms", "compiles", "programs"},
     "from_arrays": {"wall_s", "step_ms", "compiles", "programs"},
     "wall_ratio": from_arrays / builtin, "same_programs": bool}

Usage: ``python benchmarks/data_doors.py [--population 16] [--steps 200] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _train(dataset, genomes, steps: int, encoding) -> dict:
    import jax

    from evonas.train import ProgramCache, TrainConfig, train_population

    config = TrainConfig(steps=steps, batch_size=128, compile_cache_dir=None)
    start = time.perf_counter()
    result = train_population(jax.random.key(0), encoding, genomes, dataset, config,
                              cache=ProgramCache())
    wall = time.perf_counter() - start
    steps_s = [s for s in result.step_seconds if np.isfinite(s)]
    return {"wall_s": round(wall, 2),
            "step_ms": round(1000 * float(np.mean(steps_s)), 3) if steps_s else None,
            "compiles": int(result.compiles),
            "programs": dict(sorted(result.program_compiles.items())),
            "best_val_acc": round(float(np.max(result.metrics["val_acc"])), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import jax

    from evonas.data import Dataset, load_dataset
    from evonas.genomes import get_encoding

    builtin = load_dataset("mnist1d")
    raw = load_dataset("mnist1d", normalize=False)
    arrays = Dataset.from_arrays(np.concatenate([raw.x_train, raw.x_val]),
                                 np.concatenate([raw.y_train, raw.y_val]),
                                 raw.x_test, raw.y_test)
    assert arrays.x_train.shape[1:] == builtin.x_train.shape[1:], arrays.x_train.shape
    encoding = get_encoding("conv", input_shape=builtin.x_train.shape[1:],
                            num_classes=int(builtin.num_classes))
    genomes = np.asarray(encoding.space.sample(jax.random.key(1), args.population))
    runs: dict[str, list[dict]] = {"builtin": [], "from_arrays": []}
    for _ in range(args.repeats):
        for name, dataset in (("builtin", builtin), ("from_arrays", arrays)):
            runs[name].append(_train(dataset, genomes, args.steps, encoding))
    best = {name: min(r, key=lambda x: x["wall_s"]) for name, r in runs.items()}
    out = {"benchmark": "data_doors", "population": args.population, "steps": args.steps,
           "repeats": args.repeats, **best,
           "first_run": {name: r[0] for name, r in runs.items()},
           "wall_ratio": round(best["from_arrays"]["wall_s"] / best["builtin"]["wall_s"], 3),
           "same_programs": best["from_arrays"]["programs"] == best["builtin"]["programs"]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
