"""Fine-tuning a found Fashion-MNIST network to a new task, per mode, against training the same
architecture from scratch at equal steps.

The transfer protocol of the fine-tuning literature on class splits: evonas searches the
Fashion-MNIST CNN space (``fashion_mnist.py``'s, at ``--max-mflops``) on the first five classes
(T-shirt, trouser, pullover, dress, coat; ``--pretrain-limit`` training images) and retrains the
best; the new task is the other five classes (sandal, shirt, sneaker, bag, ankle boot) with only
``--new-train`` training images, tested on their 5,000 official test images. Every mode of
``evonas finetune`` (full, last block, head, linear probe) and the scratch baseline train for
``--steps`` steps with the same batch, optimiser, schedule and image pipeline; each is run with
``--seeds`` seeds (the new head's initialisation and the batch order). The modes that train a
new head through the network (full, last, head) run twice: with the default start, the head
fitted as a linear probe first (LP-FT), and with a fresh head (rows ``...-fresh``).

    python benchmarks/finetune.py                 # about 10 minutes alone on a 2-core CPU

The last line printed is one JSON object: per mode the mean and spread of the test accuracy, the
trained parameters, the seconds, and the gain over scratch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OLD, NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
MODES = (("scratch", 1), ("full", 1), ("last", 1), ("head", 1), ("probe", 1))
FRESH = ("full", "last", "head")  # also run with a fresh head (--head-init fresh), the baseline
# of the probe-first start (LP-FT) the default gives them


def _split(data_dir, root: Path, new_train: int, seed: int) -> tuple[Path, Path]:
    """Fashion-MNIST's classes 0-4 (all) and 5-9 (``new_train`` training images) as .npz files,
    raw pixels and the class names, as a user would hand them over."""
    from evonas.data.doors import load_fashion_mnist

    raw = load_fashion_mnist(data_dir)
    names = np.asarray(raw.class_names)
    out = []
    for classes, limit, name in ((OLD, None, "old"), (NEW, new_train, "new")):
        train = np.flatnonzero(np.isin(raw.y_train, classes))
        if limit is not None:
            train = np.sort(np.random.default_rng(seed).permutation(train)[:limit])
        test = np.flatnonzero(np.isin(raw.y_test, classes))
        path = root / f"fashion_{name}.npz"
        np.savez(path, x_train=raw.x_train[train], y_train=names[raw.y_train[train]],
                 x_test=raw.x_test[test], y_test=names[raw.y_test[test]])
        out.append(path)
    return out[0], out[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps, every mode")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--body-lr-scale", type=float, default=0.1,
                        help="full and last: the pretrained parameters' rate over the head's")
    parser.add_argument("--new-train", type=int, default=1000,
                        help="training images of the new task (5 classes)")
    parser.add_argument("--pretrain-limit", type=int, default=12000)
    parser.add_argument("--pretrain-steps", type=int, default=1500,
                        help="retraining steps of the found network on the first task")
    parser.add_argument("--max-mflops", type=float, default=6.0)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run to check the script (numbers meaningless)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.seeds, args.new_train = 10, 1, 300
        args.pretrain_limit, args.pretrain_steps = 600, 20

    from evonas.experiment import Experiment, ExperimentConfig
    from evonas.experiment.finish import finetune_run

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fashion_mnist import cnn_space  # the same space as the Fashion-MNIST benchmark

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        old, new = _split(args.data_dir, root, args.new_train, 0)
        search_steps = 30 if args.smoke else 100
        config = ExperimentConfig.from_dict({
            "dataset": {"name": "npz", "path": str(old), "limit": args.pretrain_limit},
            "encoding": cnn_space(),
            "strategy": {"name": "regularized_evolution",
                         "params": {"population_size": 8, "sample_size": 3}},
            "train": {"steps": search_steps, "batch_size": 64 if args.smoke else 128,
                      "learning_rate": 3e-3, "weight_decay": 1e-4,
                      "augment": {"crop": 2, "flip": True}, "compile_cache_dir": None},
            "search": {"population_size": 6, "generations": 1 if args.smoke else 2,
                       "seed": 0,
                       "constraints": [f"flops <= {args.max_mflops * 1e6:.0f}"]},
            "final": {"retrain": {"top_k": 1, "steps": args.pretrain_steps}},
            "display": {"progress": not args.smoke, "report": False},
        })
        start = time.perf_counter()
        run_dir = root / "run"
        Experiment(config, run_dir=run_dir).run()
        pretrain_s = time.perf_counter() - start
        final = json.loads((run_dir / "best" / "final.json").read_text())
        rows = {}
        variants = [(m, b, "auto") for m, b in MODES] + [(m, b, "fresh") for m, b in MODES
                                                          if m in FRESH]
        for mode, blocks, init in variants:
            runs = [finetune_run(run_dir, new, mode=mode, blocks=blocks, steps=args.steps,
                                 body_lr_scale=args.body_lr_scale, seed=seed, head_init=init)
                    for seed in range(args.seeds)]
            accs = [r["test_acc"] for r in runs]
            name = (f"last{blocks}" if mode == "last" else mode) + (
                "-fresh" if init == "fresh" else "")
            rows[name] = {
                "test_acc_mean": round(statistics.fmean(accs), 4),
                "test_acc_std": round(statistics.pstdev(accs), 4), "test_accs": accs,
                "head_init": runs[0]["head_init"],
                "trainable_params": runs[0]["trainable_params"], "params": runs[0]["params"],
                "seconds_mean": round(statistics.fmean(r["train_seconds"] for r in runs), 2),
            }
            print(f"{name}: {rows[name]}", flush=True)
        scratch = rows["scratch"]["test_acc_mean"]
        for name, row in rows.items():
            if name != "scratch":
                row["gain_over_scratch"] = round(row["test_acc_mean"] - scratch, 4)
                row["beats_scratch"] = row["test_acc_mean"] > scratch
        out = {
            "benchmark": "finetune", "steps": args.steps, "seeds": args.seeds,
            "body_lr_scale": args.body_lr_scale,
            "new_task": {"classes": list(NEW), "train_images": args.new_train,
                         "test_images": 5000},
            "source": {"genome": final["models"][0]["genome"],
                       "old_task_test_acc": final.get("best_test_acc"),
                       "pretrain_seconds": round(pretrain_s, 1),
                       "max_mflops": args.max_mflops},
            "modes": rows,
            "every_mode_beats_scratch": all(r.get("beats_scratch", True)
                                            for r in rows.values()),
        }
    if args.out:
        Path(args.out).write_text(json.dumps(out) + "\n")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
