"""The population axis sharded over 4 (forced host) devices gives the numbers of one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from evonas.data import load_dataset
    from evonas.genomes.mlp import MLPEncoding
    from evonas.train import TrainConfig, train_population

    assert jax.device_count() == 4, jax.devices()
    ds = load_dataset("mnist1d", limit=256)
    enc = MLPEncoding(input_shape=(40, 1), widths=(8, 16), max_layers=2,
                      activations=("relu", "tanh"))
    genomes = np.array([[0, 0, 0, 1, 0], [1, 1, 1, 0, 1], [1, 0, 0, 1, 1]], np.int32)
    config = TrainConfig(steps=8, batch_size=32, learning_rate=2e-2, eval_batch_size=512,
                         plan="masked")
    out = {}
    for name, devices in (("four", None), ("one", jax.devices()[:1])):
        r = train_population(jax.random.key(3), enc, genomes, ds, config, devices=devices)
        out[name] = {"loss": r.metrics["val_loss"].tolist(), "acc": r.metrics["val_acc"].tolist(),
                     "sizes": [g.size for g in r.groups]}
    print(json.dumps(out))
""")


def test_four_devices_match_one_device():
    # The session's compile flags (conftest.py), with 4 host devices.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 3 padded to 4 devices; on one CPU device the cost model runs them one at a time.
    assert out["four"]["sizes"] == [4] and out["one"]["sizes"] == [1]
    np.testing.assert_allclose(out["four"]["loss"], out["one"]["loss"], rtol=1e-5)
    assert out["four"]["acc"] == out["one"]["acc"]
    assert min(out["one"]["acc"]) > 0.1
