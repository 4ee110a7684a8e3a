"""Your own data: arrays, ``.npz`` and ``.csv`` files, folders of images, IDX files.

Every door ends in the same :class:`~evonas.data.dataset.RawData` that the built-in sets give, so
a user's data is split, standardised, fingerprinted and exported exactly like MNIST-1D. Each door
checks what it reads before anything is created and refuses bad input in one line that names the
file, field or value and what is allowed:

- labels of any type (strings, integers, floats) are mapped to ``0 .. K-1`` in sorted order and
  their names kept (``class_names``);
- integer inputs (``uint8`` pixels) are scaled by their type's maximum to ``[0, 1]``; the model
  exported records that scale and takes the data in its own units;
- NaN or infinity, one class only, test classes the train split lacks, x and y of different
  lengths, images of mixed sizes without ``image_size``, unreadable image files and empty class
  folders are refused.

No file is executed or unpickled: ``.npz`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evonas.data.raw import RawData
from evonas.data.splits import split_indices

TEST_FRACTION = 0.2
TEST_SEED = 20240  # a carved test split never depends on the user's seed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


# -- arrays ---------------------------------------------------------------------------------------


def _features(x: Any, where: str) -> tuple[np.ndarray, float]:
    """``x`` as float32 ``[N, ...]`` with a channel axis for images, and the scale applied
    (``1/255`` for ``uint8``; 1 for floats).

    Raises:
        ValueError: not numeric, fewer than 2 dimensions, or NaN / infinity (naming a row).
    """
    try:
        x = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{where} is not an array of numbers: {err}") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{where} holds {x.dtype} values; give numbers (features or pixels)")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{where} has shape {x.shape}; give [examples, features] or [examples, "
                         "height, width(, channels)]")
    scale = 1.0
    if np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.signedinteger):
        scale = 1.0 / float(np.iinfo(x.dtype).max)
    elif x.dtype == bool:
        x = x.astype(np.uint8)
    out = x.astype(np.float32) * np.float32(scale) if scale != 1.0 else x.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{where} holds NaN or infinity (first in example {row}); remove or "
                         "impute those values")
    if out.ndim == 3 and out.shape[2] > 4:  # [N, H, W]: grey images; [N, L, C <= 4]: sequences
        out = out[..., None]
    return out, scale


def _labels(y_train: Any, y_test: Any | None, names: Sequence[str] | None,
            where: str) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Labels of any type as ``int32`` class indices ``0 .. K-1`` (sorted), and the names.

    Raises:
        ValueError: labels that are not one per example, one class only, or test classes the
            train split lacks.
    """
    y = np.asarray(y_train)
    if y.ndim != 1:
        if y.ndim == 2 and y.shape[1] > 1 and set(np.unique(y)) <= {0, 1}:
            raise ValueError(f"{where} y_train has shape {y.shape}: one-hot labels; give one "
                             "label per example (y.argmax(axis=1))")
        y = y.reshape(len(y), -1)
        if y.shape[1] != 1:
            raise ValueError(f"{where} y_train has shape {np.shape(y_train)}; give one label "
                             "per example")
        y = y[:, 0]
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"{where} y_train has one class only ({classes.tolist()[:1]}); a "
                         "classifier needs at least two")
    index = {c: i for i, c in enumerate(classes.tolist())}
    mapped = np.asarray([index[c] for c in y.tolist()], np.int32)
    test = None
    if y_test is not None:
        yt = np.asarray(y_test).reshape(-1) if np.ndim(y_test) > 1 and np.shape(
            y_test)[1] == 1 else np.asarray(y_test)
        unknown = sorted({c for c in yt.tolist() if c not in index}, key=str)
        if unknown:
            raise ValueError(f"{where} y_test has classes the train split lacks: "
                             f"{[str(u) for u in unknown[:5]]}; the train split's classes: "
                             f"{[str(c) for c in classes.tolist()[:20]]}")
        test = np.asarray([index[c] for c in yt.tolist()], np.int32)
    if names is not None:
        names = tuple(str(n) for n in names)
        if len(names) != len(classes) or not np.issubdtype(classes.dtype, np.integer) or (
                classes.tolist() != list(range(len(classes)))):
            raise ValueError(f"{where} class_names gives {len(names)} names for labels "
                             f"{classes.tolist()[:20]}; give one name per label 0..K-1, or "
                             "omit it (the labels are then the names)")
    else:
        names = tuple(str(c) for c in classes.tolist())
    return mapped, test, names


def from_arrays(x_train: Any, y_train: Any, x_test: Any = None, y_test: Any = None, *,
                class_names: Sequence[str] | None = None, where: str = "the data") -> RawData:
    """Arrays as :class:`RawData`: features or images, labels of any type.

    Without ``x_test`` a test split is carved from the train split (20 %, stratified, a fixed
    seed: the test split never depends on the search's seed).

    Raises:
        ValueError: one line for x and y of different lengths, non-numeric or non-finite x,
            one class, test classes the train split lacks, or train and test of different
            shapes.
    """
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{where}: give both x_test and y_test, or neither (a test split is "
                         "then carved from the train split)")
    x, scale = _features(x_train, f"{where} x_train")
    if len(np.asarray(y_train).reshape(len(np.asarray(y_train)), -1)) != len(x):
        raise ValueError(f"{where}: x_train has {len(x)} examples but y_train "
                         f"{len(np.asarray(y_train))}; give one label per example")
    y, yt, names = _labels(y_train, y_test, class_names, where)
    note = "test split given"
    if x_test is None:
        train, test = split_indices(y, TEST_FRACTION, TEST_SEED)
        xt, yt = x[test], y[test]
        x, y = x[train], y[train]
        note = f"test carved from the data ({TEST_FRACTION:.0%}, stratified, fixed seed)"
    else:
        xt, test_scale = _features(x_test, f"{where} x_test")
        if len(xt) != len(yt):
            raise ValueError(f"{where}: x_test has {len(xt)} examples but y_test {len(yt)}; "
                             "give one label per example")
        if xt.shape[1:] != x.shape[1:]:
            raise ValueError(f"{where}: x_test examples have shape {xt.shape[1:]} but x_train "
                             f"{x.shape[1:]}; give both splits the same shape")
        if test_scale != scale:
            raise ValueError(f"{where}: x_train and x_test have different types "
                             f"({np.asarray(x_train).dtype} and {np.asarray(x_test).dtype}); "
                             "give both the same")
    return RawData(x, y, xt, yt, len(names), names, note, scale)


def digest(raw: RawData) -> str:
    """A content hash of the data (every array's bytes, shape and type, and the class names):
    equal data gives the equal digest; a resumed run refuses data whose digest changed."""
    h = hashlib.blake2b(digest_size=16)
    for array in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(repr(raw.class_names).encode())
    return h.hexdigest()


# -- files ----------------------------------------------------------------------------------------


def _path(path: Any, what: str) -> Path:
    if path is None or not str(path).strip():
        raise ValueError(f"dataset.path is missing: the {what} door reads a path "
                         "(dataset: {name: " + what + ", path: ...})")
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise ValueError(f"dataset.path {str(p)!r} does not exist")
    return p


def load_npz(path: Any) -> RawData:
    """``x_train``, ``y_train`` and optionally ``x_test``, ``y_test`` (and ``class_names``)
    from a ``.npz`` file, read without unpickling anything."""
    p = _path(path, "npz")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as err:
        raise ValueError(f"{p} holds objects that need unpickling ({err}); save plain arrays "
                         "(np.savez with numeric x and numeric or string y)") from None
    except Exception as err:  # not a zip, a truncated file, ...
        raise ValueError(f"{p} is not a readable .npz file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120] if str(err) else ''})") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise ValueError(f"{p} lacks {missing}; an .npz needs x_train and y_train (x_test and "
                         f"y_test optional); it holds {sorted(arrays)}")
    names = arrays.get("class_names")
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays.get("x_test"),
                       arrays.get("y_test"), class_names=None if names is None else list(names),
                       where=str(p))


def load_csv(path: Any, label: str | None = None) -> RawData:
    """A table with a header row: every column but ``label`` a numeric feature.

    Raises:
        ValueError: no label column of that name (naming the columns), or a feature that is not
            a number (naming the row, column and value).
    """
    p = _path(path, "csv")
    if label is None or not str(label).strip():
        raise ValueError(f"dataset.label is missing: name the column of {p} that holds the "
                         "labels (dataset: {name: csv, path: ..., label: COLUMN})")
    with open(p, newline="", encoding="utf-8-sig", errors="replace") as f:
        rows = list(csv.reader(f))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 3:
        raise ValueError(f"{p} holds {max(len(rows) - 1, 0)} data rows; a CSV needs a header row "
                         "and examples")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise ValueError(f"{p} has no column {label!r}; its columns: {header[:30]}")
    column = header.index(label)
    features = [i for i in range(len(header)) if i != column]
    x = np.empty((len(rows) - 1, len(features)), np.float32)
    y = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{p} line {r} has {len(row)} fields; the header has {len(header)}")
        y.append(row[column].strip())
        for j, i in enumerate(features):
            try:
                x[r - 2, j] = float(row[i])
            except ValueError:
                raise ValueError(f"{p} line {r}, column {header[i]!r}: {row[i]!r} is not a "
                                 "number; features must be numeric (encode categories as "
                                 "numbers first)") from None
    labels: Any = y
    try:  # numeric labels sort as numbers
        labels = np.asarray([float(v) for v in y])
        if np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    except ValueError:
        labels = np.asarray(y)
    return from_arrays(x, labels, where=str(p))


def _read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
                if image.mode == "RGBA":
                    image = image.convert("RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(image, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not an image evonas can read ({type(err).__name__}); "
                         "remove it or replace it with a PNG or JPEG") from None


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(f"{root} holds {len(folders)} class folder"
                         f"{'' if len(folders) == 1 else 's'}; give one subfolder per class "
                         "(at least two), each holding that class's images")
    return folders


def _read_folders(root: Path, size: tuple[int, int] | None, classes: list[str] | None
                  ) -> tuple[list[np.ndarray], list[str], list[Path]]:
    images, labels, files = [], [], []
    for folder in _class_folders(root):
        if classes is not None and folder.name not in classes:
            raise ValueError(f"{folder} is a class the train folder lacks; the train classes: "
                             f"{classes[:20]}")
        found = sorted(f for f in folder.rglob("*") if f.is_file() and not f.is_symlink()
                       and not f.name.startswith("."))
        if not found:
            raise ValueError(f"{folder} is an empty class folder; give each class at least one "
                             "image, or remove the folder")
        for f in found:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{f} is not an image file ({f.suffix or 'no suffix'}); a class "
                                 f"folder holds images only ({', '.join(IMAGE_SUFFIXES)})")
            images.append(_read_image(f, size))
            labels.append(folder.name)
            files.append(f)
    return images, labels, files


def _stack(images: list[np.ndarray], files: list[Path], where: Path) -> np.ndarray:
    shapes: dict[tuple[int, ...], Path] = {}
    for image, f in zip(images, files):
        shapes.setdefault(image.shape, f)
        if len(shapes) > 1:
            (a, fa), (b, fb) = list(shapes.items())[:2]
            raise ValueError(f"{where} holds images of different sizes or channels: {fa} is "
                             f"{a}, {fb} is {b}; set dataset.image_size: [H, W] to resize them "
                             "(colour images are kept RGB, grey ones L)")
    return np.stack(images)


def load_folder(path: Any, image_size: Sequence[int] | None = None) -> RawData:
    """A folder of class folders (``DIR/<class>/*.png``), or ``train/`` and ``test/`` each
    holding them: the layout of Keras's ``image_dataset_from_directory`` and torchvision's
    ``ImageFolder``. Images are read with Pillow (PNG, JPEG, ...), grey as one channel, colour
    as three; ``image_size`` ``[H, W]`` resizes them.
    """
    root = _path(path, "folder")
    if not root.is_dir():
        raise ValueError(f"dataset.path {str(root)!r} is not a folder")
    size = None
    if image_size is not None:
        size = tuple(int(s) for s in image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"dataset.image_size {list(image_size)} must be [height, width]")
    if (root / "train").is_dir():
        images, labels, files = _read_folders(root / "train", size, None)
        x = _stack(images, files, root / "train")
        x_test = y_test = None
        if (root / "test").is_dir():
            classes = sorted(set(labels))
            timages, tlabels, tfiles = _read_folders(root / "test", size, classes)
            x_test, y_test = _stack(timages, tfiles, root / "test"), np.asarray(tlabels)
            if x_test.shape[1:] != x.shape[1:]:
                raise ValueError(f"{root}: test images are {x_test.shape[1:]} but train images "
                                 f"{x.shape[1:]}; set dataset.image_size: [H, W]")
        return from_arrays(x, np.asarray(labels), x_test, y_test, where=str(root))
    images, labels, files = _read_folders(root, size, None)
    return from_arrays(_stack(images, files, root), np.asarray(labels), where=str(root))


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (the MNIST format), gzipped or not.

    Raises:
        ValueError: not an IDX file, or truncated (naming the file).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} can't be read: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (the MNIST format)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise ValueError(f"{path} is not an IDX file (the MNIST format)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(shape)) if shape else 0
    if len(data) - header < count * dtype.itemsize:
        raise ValueError(f"{path} is truncated: its header promises {shape} values")
    return np.frombuffer(data, dtype, count, header).reshape(shape)


def _idx_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem.replace("-idx", ".idx"), f"{stem}.gz",
                 f"{stem.replace('-idx', '.idx')}.gz"):
        if (root / name).is_file():
            return root / name
    return None


def load_idx(path: Any, class_names: Sequence[str] | None = None, what: str = "idx"
             ) -> RawData:
    """``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (and the ``t10k-``
    test pair, if there), gzipped or not, from the folder ``path``: MNIST's format."""
    root = _path(path, what)
    if not root.is_dir():
        raise ValueError(f"dataset.path {str(root)!r} is not a folder of IDX files")
    pairs = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx_file(root, f"{prefix}-images-idx3-ubyte")
        labels = _idx_file(root, f"{prefix}-labels-idx1-ubyte")
        pairs[split] = (images, labels)
    if None in pairs["train"]:
        raise ValueError(f"{root} lacks train-images-idx3-ubyte(.gz) and "
                         "train-labels-idx1-ubyte(.gz), the MNIST-format files the idx door "
                         "reads")
    x, y = (read_idx(p) for p in pairs["train"])
    x_test = y_test = None
    if None not in pairs["test"]:
        x_test, y_test = (read_idx(p) for p in pairs["test"])
    return from_arrays(x, y, x_test, y_test, class_names=class_names, where=str(root))


def load_fashion_mnist(data_dir: Any = None) -> RawData:
    """Fashion-MNIST from its IDX files: ``data_dir``, else the Debian package's folder.

    Raises:
        ValueError: the files are not there (naming the package and the ``idx`` door).
    """
    root = Path(data_dir) if data_dir is not None else Path(FASHION_MNIST_DIR)
    if _idx_file(root, "train-images-idx3-ubyte") is None:
        raise ValueError(
            f"Fashion-MNIST's IDX files are not in {root}: install Debian's "
            "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), give "
            "dataset.data_dir, or read any MNIST-format folder with dataset: {name: idx, "
            "path: DIR}")
    raw = load_idx(root, FASHION_MNIST_CLASSES, what="fashion_mnist")
    return raw._replace(test_note="the official test split (t10k)")


def door_of(path: Any) -> str:
    """The door a path opens: ``npz``, ``csv``, ``idx`` (a folder of IDX files) or ``folder``.

    Raises:
        ValueError: a path none reads (naming what each takes).
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise ValueError(f"--data {str(p)!r} does not exist")
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return "npz"
        if p.suffix.lower() == ".csv":
            return "csv"
    elif _idx_file(p, "train-images-idx3-ubyte") is not None:
        return "idx"
    elif p.is_dir():
        return "folder"
    raise ValueError(f"--data {str(p)!r} is neither an .npz, a .csv, a folder of class folders "
                     "nor a folder of IDX files")
