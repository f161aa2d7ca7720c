"""Tiny fake datasets written in exactly the official on-disk formats.

CIFAR batches are Python 2 pickles: protocol 2, strings stored with the
Python 2 ``str`` opcodes (so they load as ``bytes`` with ``encoding="bytes"``)
and numpy arrays rebuilt through ``numpy.core.multiarray._reconstruct``, the
name numpy 1.x wrote.  Python 3's own protocol-2 pickles differ (they store
bytes through ``_codecs.encode``), hence the small pickler below.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

requires_fashion = pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST (dataset-fashion-mnist) not installed")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CINIC_CLASSES = CIFAR10_CLASSES


class Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes like Python 2 did.

    ``bytes`` become Python 2 ``str`` (SHORT_BINSTRING / BINSTRING); with
    ``str_as_bytes`` Python 3 ``str`` does too (as in the official files),
    otherwise it stays unicode (to test str keys).
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, *, str_as_bytes: bool = True) -> None:
        super().__init__(file, protocol=2)
        self.str_as_bytes = str_as_bytes

    def save_py2_str(self, obj: bytes) -> None:
        self._write_str(obj)
        self.memoize(obj)

    def save_unicode(self, obj: str) -> None:
        if self.str_as_bytes:
            self._write_str(obj.encode("latin-1"))
            self.memoize(obj)
        else:
            pickle._Pickler.save_str(self, obj)

    def _write_str(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            # numpy 1.x (and so every official file) names it numpy.core.multiarray.
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_unicode


def write_py2_pickle(path: Path, obj, *, str_as_bytes: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        Py2Pickler(fh, str_as_bytes=str_as_bytes).dump(obj)


def py2_pickle_bytes(obj, *, str_as_bytes: bool = True) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, str_as_bytes=str_as_bytes).dump(obj)
    return buf.getvalue()


@dataclass
class FakeCifar:
    """What a fake CIFAR folder holds, in official order: rows uint8 [N, 3072], labels int64 [N]."""

    train_rows: np.ndarray
    train_labels: np.ndarray
    test_rows: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]


def cifar_batch(rows: np.ndarray, labels: list[int], *, label_key: bytes = b"labels", name: bytes = b"batch") -> dict:
    """A batch dict with the official keys (bytes, as Python 2 wrote them)."""
    batch = {
        b"batch_label": name,
        label_key: [int(x) for x in labels],
        b"data": rows,
        b"filenames": [b"img_%05d.png" % i for i in range(len(labels))],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(x) % 20 for x in labels]
    return batch


def random_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_fake_cifar10(root: Path, n_per_batch: int = 4, n_test: int = 5, seed: int = 0) -> FakeCifar:
    """The official cifar-10-batches-py files with ``5 * n_per_batch`` train and ``n_test`` test images."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train_rows, train_labels = [], []
    for b in range(1, 6):
        rows = random_rows(n_per_batch, rng)
        labels = [(7 * b + i) % 10 for i in range(n_per_batch)]  # every batch starts at a different class
        write_py2_pickle(root / f"data_batch_{b}", cifar_batch(rows, labels, name=b"training batch %d of 5" % b))
        train_rows.append(rows)
        train_labels += labels
    test_rows = random_rows(n_test, rng)
    test_labels = [(3 * i + 1) % 10 for i in range(n_test)]
    write_py2_pickle(root / "test_batch", cifar_batch(test_rows, test_labels, name=b"testing batch 1 of 1"))
    write_py2_pickle(root / "batches.meta", {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": n_per_batch,
        b"num_vis": 3072,
    })
    return FakeCifar(np.concatenate(train_rows), np.asarray(train_labels, dtype=np.int64),
                     test_rows, np.asarray(test_labels, dtype=np.int64), CIFAR10_CLASSES)


def cifar100_classes() -> tuple[str, ...]:
    return tuple(f"class_{i:03d}" for i in range(100))


def write_fake_cifar100(root: Path, n_train: int = 12, n_test: int = 6, seed: int = 1) -> FakeCifar:
    """The official cifar-100-python files (train, test, meta) with tiny splits."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train_rows, test_rows = random_rows(n_train, rng), random_rows(n_test, rng)
    train_labels = [(37 * i + 99) % 100 for i in range(n_train)]  # includes 99, the largest label
    test_labels = [(11 * i) % 100 for i in range(n_test)]
    for file, rows, labels in (("train", train_rows, train_labels), ("test", test_rows, test_labels)):
        write_py2_pickle(root / file, cifar_batch(rows, labels, label_key=b"fine_labels", name=file.encode()))
    write_py2_pickle(root / "meta", {
        b"fine_label_names": [c.encode() for c in cifar100_classes()],
        b"coarse_label_names": [b"super_%02d" % i for i in range(20)],
    })
    return FakeCifar(train_rows, np.asarray(train_labels, dtype=np.int64),
                     test_rows, np.asarray(test_labels, dtype=np.int64), cifar100_classes())


@dataclass
class FakeCinic:
    """Expected contents in canonical order: images uint8 [N, 3, 32, 32], labels int64 [N], file paths."""

    train_images: np.ndarray
    train_labels: np.ndarray
    train_files: list[Path]
    test_images: np.ndarray
    test_labels: np.ndarray
    test_files: list[Path]
    gray_file: Path


def write_fake_cinic10(root: Path, n_per_class: int = 2, seed: int = 2) -> FakeCinic:
    """CINIC-10 folders train/, valid/, test/ with ``n_per_class`` 32x32 PNGs per class.

    File names mix the two official naming styles (``cifar10-train-7.png``,
    ``n02690373_1003.png``) and are written in reverse of their sorted order,
    so a loader must sort; with ``n_per_class > 10`` plain string sort puts
    ``-10`` before ``-2``.  The last file of train/airplane is grayscale (mode "L").
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    expected = {folder: ([], [], []) for folder in ("train", "valid", "test")}
    gray_file = None
    for folder, (imgs, labels, files) in expected.items():
        for label, cls in enumerate(CINIC_CLASSES):
            class_dir = root / folder / cls
            class_dir.mkdir(parents=True, exist_ok=True)
            names = sorted([f"cifar10-{folder}-{i}.png" for i in range(0, n_per_class, 2)]
                           + [f"n0{label}_{i}.png" for i in range(1, n_per_class, 2)])
            pixels = {}
            for name in reversed(names):  # write order differs from the canonical order
                if gray_file is None:
                    gray_file = class_dir / name
                    gray = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
                    Image.fromarray(gray, mode="L").save(gray_file)
                    pixels[name] = np.repeat(gray[None], 3, axis=0)
                else:
                    hwc = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                    Image.fromarray(hwc, mode="RGB").save(class_dir / name)
                    pixels[name] = hwc.transpose(2, 0, 1)
            imgs.extend(pixels[n] for n in names)
            labels.extend([label] * len(names))
            files.extend(class_dir / n for n in names)

    def arrays(*folders):
        imgs = [im for f in folders for im in expected[f][0]]
        return (np.stack(imgs), np.asarray([l for f in folders for l in expected[f][1]], dtype=np.int64),
                [p for f in folders for p in expected[f][2]])

    return FakeCinic(*arrays("train", "valid"), *arrays("test"), gray_file)


def write_idx(path: Path, array: np.ndarray, *, magic: int | None = None, compress: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file exactly like the official ones."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    return path


def write_fake_mnist(root: Path, *, n_train: int = 40, n_test: int = 20, size: int = 28, seed: int = 0) -> Path:
    """Four IDX .gz files with random pixels and labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def write_fake_idx(folder: Path, n_train: int = 6, n_test: int = 4, seed: int = 3) -> dict[str, bytes]:
    """The four gzipped (Fashion-)MNIST IDX files; returns file name -> bytes written."""
    write_fake_mnist(Path(folder), n_train=n_train, n_test=n_test, seed=seed)
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*-ubyte.gz"))}


def tiny_dataset(n: int = 64, *, classes: int = 4, channels: int = 1, size: int = 8, seed: int = 0,
                 split: str = "train"):
    """An ImageDataset of ``n`` random uint8 images, labels cycling through ``classes``, ids 0..n-1."""
    from datadiet.data.dataset import ImageDataset

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageDataset(name="tiny", split=split, images=images, labels=labels, ids=torch.arange(n),
                        classes=tuple(f"c{i}" for i in range(classes)))


def learnable_splits(n_train: int = 256, n_test: int = 128, *, size: int = 12, classes: int = 4, seed: int = 0):
    """A tiny dataset a model can actually learn: the class sets which quadrant is bright."""
    from datadiet.data.dataset import ImageDataset, make_splits

    def make(n: int, split: str, offset: int):
        gen = torch.Generator().manual_seed(seed + offset)
        labels = torch.randint(0, classes, (n,), generator=gen)
        images = torch.randint(0, 60, (n, 1, size, size), generator=gen).to(torch.uint8)
        half = size // 2
        for c in range(classes):
            r, col = divmod(c, 2)
            sel = labels == c
            images[sel, :, r * half:(r + 1) * half, col * half:(col + 1) * half] += 150
        return ImageDataset(name="quadrants", split=split, images=images, labels=labels, ids=torch.arange(n),
                            classes=tuple(f"q{i}" for i in range(classes)))
    return make_splits(make(n_train, "train", 0), make(n_test, "test", 1))


def smoke_analysis(tmp_path_factory, name: str):
    """Run analysis ``name``'s smoke preset in a fresh workspace over a fake MNIST of 480 + 240 images;
    returns (workspace, summary)."""
    from datadiet.runs import Execution, Workspace
    from datadiet.studies import run_analysis

    tmp = tmp_path_factory.mktemp(name)
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    ws = Workspace(tmp / "ws", Execution(data_root=str(root)), log=lambda _: None)
    return ws, run_analysis(name, "smoke", workspace=ws)


def stored_scores(ws, pattern: str = "*.npz") -> dict:
    """Every score file in the workspace's shared score cache, by label."""
    from datadiet.scores import load_scores

    return {t.label: t for t in map(load_scores, sorted((ws.root / "scores").glob(f"*/{pattern}")))}


def run_files(root: Path) -> dict[str, tuple[int | None, bytes]]:
    """What training leaves in a workspace or results folder, by relative path, with modification time and
    contents: evaluation runs (``sweep/``, ``runs/``, ``failures/``), score runs (``**/.runs/``) and
    everything studies cache themselves (``*/cache/**``, cached score files such as grand_vs_norm's).

    CSV tables in a cache (memorization.csv) are derived from the cached runs and rewritten, identically, on
    every run: only their contents count, not their modification time."""
    root = Path(root)
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        parts = rel.parts
        is_run = (parts[0] in ("sweep", "runs", "failures") or ".runs" in parts or "cache" in parts
                  or (len(parts) == 2 and parts[0] != "scores" and path.suffix == ".npz"))
        if path.is_file() and is_run:
            mtime = None if path.suffix == ".csv" else path.stat().st_mtime_ns
            found[rel.as_posix()] = (mtime, path.read_bytes())
    return found


def forbid_training(monkeypatch) -> list:
    """Make any training fail the test. Every run goes through one entry point, ``datadiet.training.engine.train``
    (``ensure_checkpoints`` and the studies call it); it is replaced, and so is every module-level name bound to it
    (``from ..training import train``, or under another name), found by identity. Returns the list of calls seen."""
    import datadiet.training.engine as engine

    real, calls = engine.train, []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        pytest.fail("a rerun trained a model; everything should have come from the caches")

    for name, module in list(sys.modules.items()):
        if name == "datadiet" or name.startswith("datadiet."):
            for attribute, value in list(vars(module).items()):
                if value is real:
                    monkeypatch.setattr(module, attribute, refuse)
    return calls


def assert_rerun_trains_nothing(ws, name: str) -> None:
    """Run analysis ``name``'s smoke preset again in ``ws`` and check that nothing trained: any call of the
    training engine fails, and no evaluation run, score run or cached model file is added or rewritten."""
    from datadiet.studies import run_analysis

    before = run_files(ws.root)
    assert before, f"{ws.root} holds no run files: the first run trained nothing to reuse"
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = forbid_training(monkeypatch)
        run_analysis(name, "smoke", workspace=ws)
    assert not calls
    after = run_files(ws.root)
    assert sorted(set(after) - set(before)) == [], "the rerun wrote new run files"
    assert sorted(p for p in before if after.get(p) != before[p]) == [], "the rerun rewrote run files"


def copy_workspace(ws, folder: Path, *, log=None):
    """A Workspace over a copy of ``ws``'s folder (same data): for tests that add to or rewrite a workspace
    that a module-scoped fixture shares with other tests."""
    import shutil
    from dataclasses import replace

    shutil.copytree(ws.root, folder)
    return replace(ws, root=Path(folder), log=log or (lambda _: None))


def brute_force_auroc(scores, positive) -> float:
    """AUROC by counting every (positive, negative) pair: a win 1, a tie ½."""
    from itertools import product

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
    return wins / (len(pos) * len(neg))


TINY = dict(model="smallcnn", width=0.25, batch_size=16, eval_batch_size=64)  # a recipe that trains in milliseconds


def model_state(model) -> dict:
    """A detached copy of ``model``'s parameters and buffers."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    """Two state dicts hold bit-identical tensors under the same names."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def smoke_reproduction(tmp_path_factory, name: str = "smoke"):
    """``reproduce``'s smoke preset on fake MNIST files: ``(data root, results folder, summary)``."""
    from datadiet.studies.reproduce import PRESETS, reproduce

    tmp = tmp_path_factory.mktemp(name)
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    out = tmp / "results"
    return root, out, reproduce(PRESETS["smoke"], out, data_root=str(root), log=lambda _: None)


# Where a `datadiet reproduce --out OUT` folder keeps things (a study on the workspace OUT).
def study_dir(out: Path) -> Path:
    """``OUT/reproduce``: the reproduction's config, plan, tables, figures, summary and section."""
    return Path(out) / "reproduce"


def runs_dir(out: Path) -> Path:
    """``OUT/sweep/runs``: the evaluation runs of every study of the workspace."""
    return Path(out) / "sweep" / "runs"


def failures_dir(out: Path) -> Path:
    """``OUT/sweep/failures``: the failed evaluation runs, retried by the next run."""
    return Path(out) / "sweep" / "failures"


def score_dirs(out: Path) -> list[Path]:
    """The reproduction's score folders (``OUT/scores/<identity>``), draw 0 first, as its config lists them."""
    import json

    config = json.loads((study_dir(out) / "config.json").read_text(encoding="utf-8"))
    return [Path(out) / folder for folder in config["score_folders"]]


# A named pipe where a file belongs (tests of readers that must refuse it). Its guard uses no clock.
class PipeGuard:
    """A named pipe at ``path`` that can never hang the test: a thread opens it for writing and closes it at once,
    again and again, so a reader that opens it (the defect) reads an empty file instead of waiting forever for a
    writer. ``stop`` releases the thread by opening the reading end itself: no clock involved. The pipe has a
    second name, ``spare`` (in the test's own folder), which stays when ``path`` is replaced by a file."""

    def __init__(self, path: Path, spare: Path):
        os.mkfifo(spare)
        os.link(spare, path)
        self.path, self.spare, self.stopping = path, spare, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                if not os.path.samefile(self.path, self.spare):
                    return  # replaced (a resumed sweep writes a record in its place)
                os.close(os.open(self.spare, os.O_WRONLY))  # blocks until someone opens it for reading
            except OSError:
                return

    def stop(self) -> None:
        self.stopping = True
        reader = os.open(self.spare, os.O_RDONLY | os.O_NONBLOCK)  # lets a writer blocked in open() through
        self.thread.join()
        os.close(reader)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.stop()
