"""Your own data: arrays, .npz, .csv, image folders, IDX files and Fashion-MNIST by name; each
mistake one line before anything is created; the data's content guards a resume."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import evonas
from evonas.data import load_dataset
from evonas.data.digits import load_digits
from tests.experiment_configs import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of uint8 images a small MLP separates: bright left half or bright right."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 60, (n, size, size), dtype=np.uint8)
    for i, label in enumerate(y):
        half = slice(0, size // 2) if label == 0 else slice(size // 2, size)
        x[i, :, half] += 150
    return x, np.where(y == 0, "left", "right")


def test_arrays_of_any_label_type_become_a_dataset():
    x, y = _images(200)
    ds = evonas.Dataset.from_arrays(x, y)
    assert ds.class_names == ("left", "right") and ds.num_classes == 2
    assert ds.input_shape == (8, 8, 1) and ds.input_scale == pytest.approx(1 / 255)
    assert sorted(ds.info()["sizes"].values()) == [16, 40, 144]  # test 20 %, validation 10 %
    prep = ds.preprocessing()
    assert prep["scale"] == pytest.approx(1 / 255) and len(prep["standardize"]["mean"]) == 1
    again = evonas.Dataset.from_arrays(x, y)
    assert again.digest == ds.digest
    x2 = x.copy()
    x2[0, 0, 0] ^= 1
    assert evonas.Dataset.from_arrays(x2, y).digest != ds.digest


@pytest.mark.parametrize("make, fragment", [
    (lambda x, y: (x[:-1], y), "x_train has 199 examples but y_train 200"),
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 77, np.nan,
                            x.astype(float)), y), "NaN or infinity (first in example 1)"),
    (lambda x, y: (x, np.zeros(len(y))), "one class only"),
    (lambda x, y: (x, np.eye(2)[np.arange(len(y)) % 2]), "one-hot labels"),
    (lambda x, y: (x.astype(object), y), "holds object values"),
])
def test_bad_arrays_are_one_line(make, fragment):
    x, y = _images(200)
    with pytest.raises(ValueError) as err:
        evonas.Dataset.from_arrays(*make(x, y))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_test_classes_the_train_split_lacks_are_named():
    x, y = _images(100)
    y_test = np.array(["left", "up"] * 10)
    with pytest.raises(ValueError, match=r"y_test has classes the train split lacks: \['up'\]"):
        evonas.Dataset.from_arrays(x, y, x[:20], y_test)


def test_npz_and_csv_doors(tmp_path):
    x, y = _images(120)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    ds = load_dataset("npz", path=tmp_path / "d.npz")
    assert ds.class_names == ("left", "right") and ds.input_shape == (8, 8, 1)
    np.savez(tmp_path / "bad.npz", x_train=np.array([object()] * 3, dtype=object), y_train=y[:3])
    with pytest.raises(ValueError, match="unpickling"):
        load_dataset("npz", path=tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", x=x)
    with pytest.raises(ValueError, match=r"lacks \['x_train', 'y_train'\]"):
        load_dataset("npz", path=tmp_path / "partial.npz")

    rows = ["f1,f2,species"] + [f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}" for i in range(60)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset("csv", path=tmp_path / "t.csv", label="species")
    assert ds.input_shape == (2,) and ds.class_names == ("a", "b")
    with pytest.raises(ValueError, match=r"has no column 'kind'; its columns: \['f1', 'f2', "):
        load_dataset("csv", path=tmp_path / "t.csv", label="kind")
    (tmp_path / "s.csv").write_text("\n".join(rows[:5] + ["x,1,a"] + rows[5:]) + "\n")
    with pytest.raises(ValueError, match=r"line 6, column 'f1': 'x' is not a number"):
        load_dataset("csv", path=tmp_path / "s.csv", label="species")
    # A CSV's vectors with the (default) conv encoding: one line that says to use mlp.
    config = tiny_config(dataset={"name": "csv", "path": str(tmp_path / "t.csv"),
                                  "label": "species", "limit": None},
                         encoding={"name": "conv"})
    with pytest.raises(ValueError, match=r"input_shape \(2,\) is a vector of features.*"
                                         r"encoding.name: mlp"):
        evonas.Experiment(config, run_dir=tmp_path / "csv_run").run()
    assert not (tmp_path / "csv_run").exists()


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_the_recorded_preprocessing_turns_unnormalised_data_into_what_the_run_trained_on():
    """``load_dataset(name, normalize=False)`` gives the raw inputs an exported model takes:
    the recorded preprocessing applied to them is the standardised data the run trains on. For
    ``uint8`` sources too (Fashion-MNIST's IDX files, pixel arrays), whose own units are 0..255:
    given [0, 1] images, their exported models scored 10 % (a constant class)."""
    from evonas.data.preprocessing import check_preprocessing

    x, y = _images(200)
    pairs = [(evonas.Dataset.from_arrays(x, y), evonas.Dataset.from_arrays(x, y, normalize=False)),
             (load_dataset("fashion_mnist", limit=300),  # .ci/run installs its package
              load_dataset("fashion_mnist", limit=300, normalize=False))]
    for run, raw in pairs:
        mean, std, scale = check_preprocessing(run.preprocessing(), "test")
        assert scale == pytest.approx(1 / 255) and raw.preprocessing() is None
        assert raw.x_test.max() > 1.0  # 0..255, not [0, 1]
        for split in ("x_train", "x_val", "x_test"):
            prepared = (getattr(raw, split) * np.float32(scale) - np.float32(mean[0])) / np.float32(
                std[0])
            np.testing.assert_allclose(prepared, getattr(run, split), atol=1e-5)


def test_folder_door_both_layouts_and_its_mistakes(tmp_path):
    x, y = _images(40)
    flat = tmp_path / "flat"
    for i, (image, label) in enumerate(zip(x, y)):
        _write_png(flat / label / f"{i}.png", image)
    ds = load_dataset("folder", path=flat)
    assert ds.class_names == ("left", "right") and ds.input_shape == (8, 8, 1)
    assert ds.input_scale == pytest.approx(1 / 255)
    split = tmp_path / "split"
    for i, (image, label) in enumerate(zip(x, y)):
        _write_png(split / ("test" if i % 5 == 0 else "train") / label / f"{i}.png", image)
    ds = load_dataset("folder", path=split)
    assert len(ds.y_test) == 8 and "test split given" in ds.split_note
    # Mixed sizes: named, with the setting that fixes them; image_size resizes.
    _write_png(flat / "left" / "big.png", np.zeros((12, 12), np.uint8))
    with pytest.raises(ValueError) as err:
        load_dataset("folder", path=flat)
    assert "(8, 8)" in str(err.value) and "(12, 12)" in str(err.value)
    assert "dataset.image_size" in str(err.value)
    assert load_dataset("folder", path=flat, image_size=[6, 6]).input_shape == (6, 6, 1)
    (flat / "left" / "big.png").unlink()
    (flat / "left" / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png is not an image evonas can read"):
        load_dataset("folder", path=flat)
    (flat / "left" / "notes.png").unlink()
    (flat / "empty").mkdir()
    with pytest.raises(ValueError, match="empty is an empty class folder"):
        load_dataset("folder", path=flat)


def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_door(tmp_path, gz):
    x, y = _images(50)
    labels = (y == "right").astype(np.uint8)
    suffix = ".gz" if gz else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    _idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", x[:10], gz)
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels[:10], gz)
    ds = load_dataset("idx", path=tmp_path)
    assert len(ds.y_test) == 10 and ds.input_shape == (8, 8, 1)
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(b"\0\0\x08\x03trunc")
    with pytest.raises(ValueError, match="IDX|truncated|can.t be read"):
        load_dataset("idx", path=tmp_path)


def test_fashion_mnist_by_name_reads_the_debian_package(tmp_path):
    ds = load_dataset("fashion_mnist", limit=500)
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    assert len(ds.y_test) == 10_000 and ds.class_names[0] == "T-shirt/top"
    assert "official test split" in ds.split_note
    with pytest.raises(ValueError) as err:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert "dataset-fashion-mnist" in str(err.value) and "name: idx" in str(err.value)


def test_arrays_train_exactly_as_the_built_in_set(tmp_path):
    """The doors cost nothing in the hot path: the digits given as arrays give the same rows as
    the digits by name (same splits, same programs, same numbers)."""
    raw = load_digits()
    given = evonas.Dataset.from_arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test)
    config = tiny_config(dataset={"name": "digits", "limit": None},
                         final={"retrain": {"top_k": 0}})
    a = evonas.Experiment(config, run_dir=tmp_path / "named").run()
    b = evonas.Experiment(config, run_dir=tmp_path / "arrays", dataset=given).run()
    from tests.experiment_configs import evaluations

    strip = lambda rows: [r[:6] for r in rows]  # noqa: E731
    assert strip(evaluations(a.run_dir)) == strip(evaluations(b.run_dir))
    assert json.loads((b.run_dir / "dataset.json").read_text())["class_names"] == [
        str(i) for i in range(10)]


def test_a_run_on_changed_data_is_refused_and_arrays_resume_with_the_same_data(tmp_path):
    x, y = _images(120)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    config = tiny_config(dataset={"name": "npz", "path": str(tmp_path / "d.npz"),
                                  "limit": None}, search={"generations": 2},
                         final={"retrain": {"top_k": 1, "steps": 20}})
    result = evonas.Experiment(config, run_dir=tmp_path / "run").run()
    module, variables, info = evonas.load_model(result.run_dir)
    assert info["class_names"] == ["left", "right"]
    logits = np.asarray(module.apply(variables, x[:4, ..., None]))  # uint8 pixels, as given
    assert logits.shape == (4, 2)
    x[0, 0, 0] ^= 1
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    with pytest.raises(ValueError, match="not the data this run started on"):
        evonas.Experiment.resume(tmp_path / "run").run()
    given = evonas.Dataset.from_arrays(x, y)
    arrays = tiny_config(search={"generations": 2}, final={"retrain": {"top_k": 0}})
    evonas.Experiment(arrays, run_dir=tmp_path / "arrays", dataset=given).run()
    with pytest.raises(ValueError, match="resume it with Experiment.resume"):
        evonas.Experiment.resume(tmp_path / "arrays")
    out = evonas.Experiment.resume(tmp_path / "arrays", dataset=given).run()
    assert out.already_finished
    with pytest.raises(ValueError, match="not the data this run started on"):
        evonas.Experiment.resume(tmp_path / "arrays",
                                 dataset=evonas.Dataset.from_arrays(x[1:], y[1:])).run()


def test_evonas_run_data_picks_the_door(tmp_path):
    x, y = _images(60)
    for i, (image, label) in enumerate(zip(x, y)):
        _write_png(tmp_path / "imgs" / label / f"{i}.png", image)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    args = [sys.executable, "-m", "evonas.cli", "run", "--data", str(tmp_path / "imgs"),
            "--run-dir", str(tmp_path / "run"), "--set", "encoding.name=mlp", "--set",
            "search.generations=1", "--set", "search.population_size=4", "--set",
            "train.steps=10", "--set", "train.batch_size=16", "--set",
            "final.retrain.top_k=0", "--set", "display.report=false"]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert info["name"] == "folder" and info["class_names"] == ["left", "right"]
    proc = subprocess.run([*args[:5], str(tmp_path / "nowhere"), *args[6:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_data_larger_than_the_memory_budget_is_refused_before_anything_exists(tmp_path):
    config = tiny_config(train={"memory_budget_mb": 0.3}, dataset={"limit": None})
    with pytest.raises(ValueError) as err:
        evonas.Experiment(config, run_dir=tmp_path / "run").run()
    assert "takes" in str(err.value) and "train.memory_budget_mb=0.3" in str(err.value)
    assert not (tmp_path / "run").exists()
