"""Bring your own data: image folders (folder:PATH), arrays (arrays:FILE.npz | DIR) and Dataset.from_tensors.

Every folder here is tiny (a few 8x8 PNGs written with Pillow), and the decoded-image cache lives in tmp_path.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import datadiet
from datadiet.cli import main
from datadiet.config import DataConfig, TrainConfig, add_arguments, from_arguments
from datadiet.data import Dataset, list_folder, load_data, save_arrays
from datadiet.data import folder as folder_mod
from datadiet.data.transforms import Normalizer
from datadiet.errors import ConfigError, CorruptDataError, DataDietError, DatasetNotFoundError
from datadiet.runs.identity import identity
from datadiet.training.evaluate import predict
from datadiet.training.stream import BatchStream

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DATADIET_CACHE", str(cache))
    return cache


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return array


def pixels(seed: int, shape=(8, 8, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_folder(root: Path, *, per_class: int = 4, classes=CLASSES, names=None) -> dict[str, np.ndarray]:
    """``root/<class>/<name>.png`` (RGB 8x8, distinct pixels); returns relative path → HWC pixels written."""
    written = {}
    names = names or [f"img{i}.png" for i in range(per_class)]
    for c, cls in enumerate(classes):
        for i, name in enumerate(names):
            rel = f"{cls}/{name}"
            written[rel] = write_image(root / rel, pixels(100 * c + i))
    return written


def chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(hwc.transpose(2, 0, 1).copy())


# ----------------------------------------------------------------------------- image folders: order and split

def test_single_split_folder_in_canonical_order(tmp_path):
    root = tmp_path / "pets"
    # names chosen so that string order differs from creation order and from numeric order
    written = make_folder(root, names=["b.png", "a10.png", "a2.png", "c.jpg"])
    splits = Dataset.from_folder(root)
    listing = list_folder(root)
    assert splits.train.classes == CLASSES and listing.layout == "single"
    assert len(splits.train) == 9 and len(splits.test) == 3  # round(0.2 * 4) = 1 per class held out
    for split, ds in (("train", splits.train), ("test", splits.test)):
        files = listing.files[split]
        assert list(files) == sorted(files, key=lambda f: (f.split("/")[0], f))  # class, then path
        assert ds.ids.tolist() == list(range(len(ds)))
        for i, rel in enumerate(files):  # id i of a split is listing.files[split][i]
            if rel.endswith(".jpg"):  # lossy: compare with Pillow's own decoding of the file
                expected = chw(np.asarray(Image.open(root / rel).convert("RGB")))
            else:
                expected = chw(written[rel])
            assert torch.equal(ds.images[i], expected)
            assert ds.labels[i] == CLASSES.index(rel.split("/")[0])
    assert torch.bincount(splits.test.labels).tolist() == [1, 1, 1]
    assert splits.train.name == f"folder:{root}"
    assert splits.train.images.dtype == torch.uint8 and splits.train.shape == (3, 8, 8)


def test_train_test_layout_with_nested_files_ignored_and_hidden_entries(tmp_path):
    root = tmp_path / "split"
    for split in ("train", "test"):
        for c, cls in enumerate(("x", "y")):
            write_image(root / split / cls / "one.png", pixels(c))
            write_image(root / split / cls / "sub" / "two.png", pixels(c + 10))
    (root / "train" / "x" / "notes.txt").write_text("not an image")
    (root / "train" / "x" / ".DS_Store").write_bytes(b"\0")
    (root / "README.md").write_text("hello")
    (root / "valid" / "x").mkdir(parents=True)
    listing = list_folder(root)
    assert listing.layout == "split" and listing.classes == ("x", "y")
    assert listing.files["train"] == ("train/x/one.png", "train/x/sub/two.png", "train/y/one.png",
                                      "train/y/sub/two.png")
    assert listing.ignored == ("README.md", "train/x/notes.txt", "valid/")
    splits = Dataset.from_folder(root)
    assert torch.equal(splits.train.images[1], chw(pixels(10))) and splits.train.labels.tolist() == [0, 0, 1, 1]
    assert splits.train.notes["source"]["ignored_count"] == 3
    with pytest.raises(ConfigError, match="train/ and test/"):
        Dataset.from_folder(root, test_fraction=0.5)


def test_held_out_split_is_seeded_stratified_and_stable_when_classes_change(tmp_path):
    root = tmp_path / "many"
    make_folder(root, per_class=10)
    a, b = list_folder(root, seed=0), list_folder(root, seed=0)
    assert a.files == b.files
    assert np.bincount(a.labels["test"]).tolist() == [2, 2, 2]
    assert a.files["test"] != list_folder(root, seed=1).files["test"]
    assert np.bincount(list_folder(root, test_fraction=0.5).labels["test"]).tolist() == [5, 5, 5]
    assert not set(a.files["train"]) & set(a.files["test"])
    make_folder(root, per_class=10, classes=("dog",))  # a new class: the others hold out the same files
    grown = list_folder(root, seed=0)
    assert [f for f in grown.files["test"] if not f.startswith("dog/")] == list(a.files["test"])


# ----------------------------------------------------------------------------- sizes and channels

def test_mixed_sizes_need_resize_which_uses_pillow_bilinear(tmp_path):
    root = tmp_path / "sizes"
    make_folder(root, per_class=2)
    odd = write_image(root / "bee" / "wide.png", pixels(7, (6, 10, 3)))
    with pytest.raises(ConfigError, match=r"ant/img0.png is 8x8.*bee/wide.png is 10x6.*--resize"):
        Dataset.from_folder(root)
    splits = Dataset.from_folder(root, resize=(5, 7))
    assert splits.train.shape == (3, 5, 7)
    rel = "bee/wide.png"
    where = [*list_folder(root).files["train"], *list_folder(root).files["test"]].index(rel)
    both = torch.cat([splits.train.images, splits.test.images])
    expected = Image.fromarray(odd).resize((7, 5), Image.BILINEAR)
    assert torch.equal(both[where], chw(np.asarray(expected)))


def test_mixed_channels_need_a_choice_and_alpha_is_dropped(tmp_path):
    root = tmp_path / "chan"
    make_folder(root, per_class=2)
    gray = write_image(root / "cat" / "gray.png", pixels(5, (8, 8)))
    rgba = write_image(root / "ant" / "alpha.png", pixels(6, (8, 8, 4)), mode="RGBA")
    with pytest.raises(ConfigError, match=r"cat/gray.png is grayscale \(L\) and ant/\w+.png is colour.*--channels"):
        Dataset.from_folder(root)
    listing = list_folder(root)
    ordered = [*listing.files["train"], *listing.files["test"]]

    def image(splits, rel):
        return torch.cat([splits.train.images, splits.test.images])[ordered.index(rel)]

    rgb = Dataset.from_folder(root, channels=3)
    assert rgb.train.shape == (3, 8, 8)
    assert torch.equal(image(rgb, "cat/gray.png"), torch.from_numpy(gray)[None].expand(3, 8, 8))
    assert torch.equal(image(rgb, "ant/alpha.png"), chw(rgba[..., :3]))  # alpha dropped, not composited
    one = Dataset.from_folder(root, channels=1)
    assert one.train.shape == (1, 8, 8) and len(one.mean) == 1
    assert torch.equal(image(one, "cat/gray.png")[0], torch.from_numpy(gray))
    expected = np.array(Image.fromarray(rgba, mode="RGBA").convert("L"))
    assert torch.equal(image(one, "ant/alpha.png")[0], torch.from_numpy(expected))


def test_grayscale_folder_keeps_one_channel(tmp_path):
    root = tmp_path / "gray"
    for c in ("a", "b"):
        for i in range(3):
            write_image(root / c / f"{i}.png", pixels(i, (8, 8)))
    splits = Dataset.from_folder(root)
    assert splits.train.shape == (1, 8, 8) and len(splits.std) == 1


# ----------------------------------------------------------------------------- fingerprints and the cache

def test_fingerprints_are_stable_and_follow_the_pixels(tmp_path, cache_dir):
    root = tmp_path / "fp"
    written = make_folder(root)
    first = Dataset.from_folder(root)
    again = Dataset.from_folder(root)
    assert again.train.notes["source"]["cache_hit"] and not first.train.notes["source"]["cache_hit"]
    assert (first.train.fingerprint, first.test.fingerprint) == (again.train.fingerprint, again.test.fingerprint)
    via_config = load_data(DataConfig(dataset=f"folder:{root}"))
    assert via_config.train.fingerprint == first.train.fingerprint and via_config.mean == first.mean
    rel = list_folder(root).files["train"][0]
    changed = written[rel].copy()
    changed[0, 0, 0] ^= 1
    write_image(root / rel, changed)
    st = os.stat(root / rel)
    os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    after = Dataset.from_folder(root)
    assert not after.train.notes["source"]["cache_hit"]
    assert after.train.fingerprint != first.train.fingerprint
    assert after.test.fingerprint == first.test.fingerprint
    assert torch.equal(after.train.images[0], chw(changed))
    assert len(list((cache_dir / "folders").glob("*.npz"))) == 1  # the stale cache was replaced


def test_second_load_reads_the_cache_without_decoding(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "cached"
    make_folder(root)
    first = Dataset.from_folder(root)
    cache = Path(first.train.notes["source"]["cache"])
    assert cache.is_file() and cache_dir in cache.parents and root not in cache.parents

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(folder_mod, "_decode_image", refuse)
    monkeypatch.setattr(folder_mod, "_probe", refuse)
    hit = Dataset.from_folder(root)
    assert torch.equal(hit.train.images, first.train.images) and torch.equal(hit.test.labels, first.test.labels)
    # other decode options are another cache entry: decoded again
    with pytest.raises(AssertionError, match="decoded"):
        Dataset.from_folder(root, resize=(4, 4))
    # the key is the files' bytes: a touched file is the same image (the cache is used) ...
    target = root / "bee" / "img1.png"
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert Dataset.from_folder(root).train.notes["source"]["cache_hit"]
    # ... and a file rewritten with the same size and its old time restored (rsync -t, cp -p) is another image
    changed = bytearray(target.read_bytes())
    changed[-13] ^= 1  # a byte of the last chunk's CRC: same size, other content
    target.write_bytes(bytes(changed))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert os.stat(target).st_size == st.st_size
    with pytest.raises(AssertionError, match="decoded"):
        Dataset.from_folder(root)


def test_a_damaged_cache_is_rebuilt(tmp_path):
    root = tmp_path / "dmg"
    make_folder(root)
    first = Dataset.from_folder(root)
    cache = Path(first.train.notes["source"]["cache"])
    cache.write_bytes(b"PK\x03\x04 not really a zip")
    again = Dataset.from_folder(root)
    assert not again.train.notes["source"]["cache_hit"]
    assert again.train.fingerprint == first.train.fingerprint
    assert Dataset.from_folder(root).train.notes["source"]["cache_hit"]


def test_the_cache_is_never_inside_the_folder(tmp_path, monkeypatch):
    root = tmp_path / "inside"
    make_folder(root)
    monkeypatch.setenv("DATADIET_CACHE", str(root / "cachehere"))
    with pytest.raises(ConfigError, match="inside the image folder"):
        Dataset.from_folder(root)


# ----------------------------------------------------------------------------- bad folders

def test_bad_folders_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no class folders"):
        Dataset.from_folder(empty)
    loose = tmp_path / "loose"
    write_image(loose / "x.png", pixels(0))
    with pytest.raises(DatasetNotFoundError, match=r"holds images directly \(x.png"):
        Dataset.from_folder(loose)

    no_images = tmp_path / "noimg"
    make_folder(no_images)
    (no_images / "dog").mkdir()
    (no_images / "dog" / "readme.txt").write_text("x")
    with pytest.raises(CorruptDataError, match=r"Class 'dog' .* holds no image \(only dog/readme.txt"):
        Dataset.from_folder(no_images)

    corrupt = tmp_path / "corrupt"
    make_folder(corrupt)
    (corrupt / "bee" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(CorruptDataError, match=r"bee/broken.png is not a readable image"):
        Dataset.from_folder(corrupt)

    truncated = tmp_path / "trunc"
    make_folder(truncated)
    whole = (truncated / "ant" / "img2.png").read_bytes()
    (truncated / "ant" / "img2.png").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(CorruptDataError, match=r"ant/img2.png is not a readable image"):
        Dataset.from_folder(truncated)

    split = tmp_path / "classes"
    make_folder(split / "train", classes=("a", "b", "c"), per_class=1)
    make_folder(split / "test", classes=("a", "b", "d"), per_class=1)
    with pytest.raises(CorruptDataError, match=r"train/ has class 'c' that test/ lacks; test/ has class 'd'"):
        Dataset.from_folder(split)

    half = tmp_path / "half"
    make_folder(half / "train", per_class=1)
    with pytest.raises(DatasetNotFoundError, match=r"has train/ but no test/"):
        Dataset.from_folder(half)

    single = tmp_path / "single"
    make_folder(single, per_class=1)
    with pytest.raises(ConfigError, match="holds out no image"):
        Dataset.from_folder(single)


def test_missing_paths_through_the_config(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"folder:.*nowhere does not exist"):
        load_data(DataConfig(dataset=f"folder:{tmp_path / 'nowhere'}"))
    (tmp_path / "file.npz").write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a folder"):
        load_data(DataConfig(dataset=f"folder:{tmp_path / 'file.npz'}"))
    with pytest.raises(DatasetNotFoundError, match=r"missing.npz does not exist"):
        load_data(DataConfig(dataset=f"arrays:{tmp_path / 'missing.npz'}"))
    with pytest.raises(ConfigError, match="names no path"):
        load_data(DataConfig(dataset="folder:"))


# ----------------------------------------------------------------------------- config, CLI and subsets

def test_folder_options_in_the_config_and_on_the_command_line(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, DataConfig)
    args = parser.parse_args(["--dataset", "folder:x", "--resize", "16", "12", "--channels", "1",
                              "--test-fraction", "0.25", "--split-seed", "3"])
    cfg = from_arguments(DataConfig, args)
    assert (cfg.resize, cfg.channels, cfg.test_fraction, cfg.split_seed) == ((16, 12), 1, 0.25, 3)
    with pytest.raises(ConfigError, match="--resize takes two"):
        DataConfig(dataset="folder:x", resize=(16,))
    with pytest.raises(ConfigError, match="--channels must be 1"):
        DataConfig(dataset="folder:x", channels=4)
    with pytest.raises(ConfigError, match="--test-fraction must lie"):
        DataConfig(dataset="folder:x", test_fraction=1.0)
    with pytest.raises(ConfigError, match="--resize and --channels apply only to image folders"):
        DataConfig(dataset="cifar10", resize=(8, 8), channels=3)
    # the new fields at their defaults leave every earlier identity as it was; other values are identity
    old = {k: v for k, v in dataclasses.asdict(DataConfig()).items()
           if k not in ("resize", "channels", "test_fraction", "split_seed")}
    assert identity(DataConfig()) == identity(old)
    base = DataConfig(dataset="folder:x")
    assert len({identity(base), identity(dataclasses.replace(base, resize=(8, 8))),
                identity(dataclasses.replace(base, channels=1)), identity(dataclasses.replace(base, split_seed=1)),
                identity(dataclasses.replace(base, test_fraction=0.3))}) == 5


def test_subsets_and_label_noise_on_a_folder(tmp_path):
    root = tmp_path / "sub"
    make_folder(root, per_class=5)
    name = f"folder:{root}"
    full = load_data(DataConfig(dataset=name))
    cut = load_data(DataConfig(dataset=name, subset=6, subset_mode="balanced", test_subset=3, label_noise=0.5))
    assert len(cut.train) == 6 and torch.bincount(cut.train.labels, minlength=3).sum() == 6
    assert torch.equal(cut.train.images, full.train.images[full.train.positions_of(cut.train.ids)])
    assert cut.train.notes["label_noise"]["n_chosen"] == 3 and "source" in cut.train.notes
    assert sorted(cut.test.labels.tolist()) == [0, 1, 2]  # class-balanced, not the first class only
    assert cut.mean == full.mean
    # the default mode of a subset of your own data is balanced (the folder is sorted by class) ...
    default = DataConfig(dataset=name, subset=6)
    assert default.subset_mode == "balanced"
    assert torch.equal(load_data(default).train.ids, load_data(DataConfig(dataset=name, subset=6,
                                                                            subset_mode="balanced")).train.ids)
    assert DataConfig(subset=6).subset_mode == "first" and DataConfig(dataset=name).subset_mode == "first"
    # ... and the first n, asked for, are still refused: they would be the first classes only
    with pytest.raises(ConfigError, match="sorted by class.*--subset-mode balanced"):
        load_data(DataConfig(dataset=name, subset=6, subset_mode="first"))


def test_datadiet_data_shows_what_was_found(tmp_path, capsys):
    root = tmp_path / "shown"
    make_folder(root)
    (root / "ant" / "notes.txt").write_text("x")
    assert main(["data", "--dataset", f"folder:{root}"]) == 0
    out = capsys.readouterr().out
    assert "image folder, one split, 0.2 of each class held out" in out
    assert "classes: 3 (ant, bee, cat)" in out and "3-channel images of 8x8 pixels" in out
    assert "(written now)" in out and "ant/notes.txt" in out
    assert main(["data", "--dataset", f"folder:{root}"]) == 0
    assert "(reused)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- arrays

def image_arrays(n_train=6, n_test=3, layout="nhwc"):
    rng = np.random.default_rng(0)
    shape = (8, 8, 3) if layout == "nhwc" else (3, 8, 8)
    return (rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), np.arange(n_train) % 3,
            rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), np.arange(n_test) % 3)


def test_arrays_npz_round_trip_with_classes_and_own_ids(tmp_path):
    x_tr, y_tr, x_te, y_te = image_arrays()
    ids = np.array([50, 10, 40, 20, 30, 60])
    path = save_arrays(tmp_path / "mine.npz", x_tr, y_tr, x_te, y_te, ids_train=ids, classes=["r", "g", "b"])
    splits = Dataset.from_arrays(path)
    assert splits.train.shape == (3, 8, 8) and splits.train.classes == ("r", "g", "b")
    assert torch.equal(splits.train.images, torch.from_numpy(x_tr.transpose(0, 3, 1, 2).copy()))
    assert splits.train.ids.tolist() == ids.tolist() and splits.test.ids.tolist() == [0, 1, 2]
    assert splits.train.positions_of([40, 10]).tolist() == [2, 1]
    via_config = load_data(DataConfig(dataset=f"arrays:{path}", subset=3, subset_mode="balanced"))
    assert via_config.mean == splits.mean and len(via_config.train) == 3
    assert set(via_config.train.ids.tolist()) <= set(ids.tolist())
    with np.load(path, allow_pickle=False) as stored:
        assert stored["classes"].dtype.kind == "U" and stored["x_train"].shape == (6, 3, 8, 8)


def test_arrays_folder_of_npy_files_and_default_class_names(tmp_path):
    x_tr, y_tr, x_te, y_te = image_arrays(layout="nchw")
    folder = tmp_path / "npys"
    folder.mkdir()
    for key, value in {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}.items():
        np.save(folder / f"{key}.npy", value)
    splits = load_data(DataConfig(dataset=f"arrays:{folder}"))
    assert splits.train.classes == ("0", "1", "2") and torch.equal(splits.test.images, torch.from_numpy(x_te))
    assert splits.train.notes["source"]["format"] == "npy folder"


def test_layout_rule_for_uint8_arrays():
    rng = np.random.default_rng(1)
    y = np.array([0, 1])
    ambiguous = rng.integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)  # read as NCHW
    assert Dataset.from_tensors(ambiguous, y, ambiguous, y).train.shape == (3, 4, 3)
    nhwc = rng.integers(0, 256, (2, 8, 6, 1), dtype=np.uint8)
    assert Dataset.from_tensors(nhwc, y, nhwc, y).train.shape == (1, 8, 6)
    gray = rng.integers(0, 256, (2, 8, 6), dtype=np.uint8)
    assert Dataset.from_tensors(gray, y, gray, y).train.shape == (1, 8, 6)


def test_from_tensors_copies_and_matches_the_saved_file(tmp_path):
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(a) for a in image_arrays(layout="nchw"))
    splits = Dataset.from_tensors(x_tr, y_tr, x_te, y_te, classes=("a", "b", "c"))
    fingerprint = splits.train.fingerprint
    x_tr[0, 0, 0, 0] += 1  # the caller's tensor changes; the dataset does not
    assert splits.train.fingerprint == fingerprint
    assert Dataset.from_tensors(x_tr, y_tr, x_te, y_te).train.fingerprint != fingerprint
    x_tr[0, 0, 0, 0] -= 1
    path = save_arrays(tmp_path / "t.npz", x_tr, y_tr, x_te, y_te, classes=("a", "b", "c"))
    assert Dataset.from_arrays(path).train.fingerprint == fingerprint
    assert splits.train.name == "tensors" and datadiet.Dataset is Dataset
    with pytest.raises(TypeError, match="namespace of constructors"):
        Dataset()


# ----------------------------------------------------------------------------- float features

def test_float_features_are_normalized_per_dimension_and_never_augmented(tmp_path):
    rng = np.random.default_rng(2)
    x_tr = rng.normal([1.0, -5.0, 0.0], [2.0, 0.5, 1.0], size=(40, 3))
    x_tr[:, 2] = 7.0  # a constant dimension: std 1, only centred
    x_te = rng.normal(size=(10, 3))
    y_tr, y_te = rng.integers(0, 2, 40), rng.integers(0, 2, 10)
    path = save_arrays(tmp_path / "f.npz", x_tr, y_tr, x_te, y_te)
    splits = load_data(DataConfig(dataset=f"arrays:{path}"))
    train = splits.train
    assert train.is_features and train.kind == "features" and train.shape == (3,)
    assert train.images.dtype == torch.float32 and train.describe()["shape"] == [3]
    x32 = x_tr.astype(np.float32).astype(np.float64)
    assert splits.mean == pytest.approx(x32.mean(0).tolist()) and splits.std[:2] == pytest.approx(x32.std(0)[:2])
    assert splits.std[2] == 1.0
    z = Normalizer(splits.mean, splits.std)(train.images)
    assert z.mean(0).abs().max() < 1e-5 and torch.allclose(z[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-5)
    assert torch.all(z[:, 2] == 0)

    plan = TrainConfig(batch_size=8).schedule(train_size=40)
    stream = BatchStream(train.images, plan, TrainConfig(batch_size=8, augment=True, pad=4))
    for rows, x in stream.batches(0, 6):
        assert torch.equal(x, train.images[rows])  # rows as they are: no crop, no flip

    model = torch.nn.Linear(3, 2)
    result = predict(model, splits.test.images, splits.test.labels, normalize=Normalizer(splits.mean, splits.std))
    assert result.correct.shape == (10,)
    from datadiet.runs.scoring import dataset_input_norms, score_model
    assert score_model(model, splits, ["el2n"])["el2n"].shape == (40,)
    assert np.allclose(dataset_input_norms(splits, train), z.double().norm(dim=1).numpy(), atol=1e-5)


def test_feature_fingerprints_follow_the_values():
    x = np.random.default_rng(3).normal(size=(5, 4))
    y = np.array([0, 1, 0, 1, 0])
    a = Dataset.from_tensors(x, y, x[:2], y[:2])
    x2 = x.copy()
    x2[4, 3] += 1e-3
    assert a.train.fingerprint == Dataset.from_tensors(x, y, x[:2], y[:2]).train.fingerprint
    assert a.train.fingerprint != Dataset.from_tensors(x2, y, x[:2], y[:2]).train.fingerprint


# ----------------------------------------------------------------------------- bad arrays

def test_bad_arrays_are_named(tmp_path):
    x_tr, y_tr, x_te, y_te = image_arrays()
    np.savez(tmp_path / "keys.npz", x_train=x_tr, y_train=y_tr, x_tset=x_te)
    with pytest.raises(CorruptDataError, match=r"keys.npz is not an arrays dataset .*: it has no x_test, y_test .*it holds x_train, x_tset, y_train"):
        Dataset.from_arrays(tmp_path / "keys.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CorruptDataError, match=r"text.npz is not an arrays dataset .*: it is not an .npz \(zip\) archive at all"):
        Dataset.from_arrays(tmp_path / "text.npz")
    np.savez(tmp_path / "obj.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
             classes=np.array(["a", 1, None], dtype=object))
    with pytest.raises(CorruptDataError, match=r"obj.npz is not an arrays dataset .*: its key 'classes' holds Python objects"):
        Dataset.from_arrays(tmp_path / "obj.npz")
    empty_dir = tmp_path / "nonpy"
    empty_dir.mkdir()
    with pytest.raises(CorruptDataError, match=r"holds no .npy file; it lacks x_train.npy"):
        Dataset.from_arrays(empty_dir)

    with pytest.raises(CorruptDataError, match=r"y_train has shape \[5\] but x_train holds 6 examples"):
        Dataset.from_tensors(x_tr, y_tr[:5], x_te, y_te)
    with pytest.raises(CorruptDataError, match=r"y_train has dtype float64: labels must be integer"):
        Dataset.from_tensors(x_tr, y_tr.astype(float), x_te, y_te)
    with pytest.raises(CorruptDataError, match=r"y_test: label 3 at row 1 .* \[0, 3\) for the 3 classes"):
        Dataset.from_tensors(x_tr, y_tr, x_te, np.array([0, 3, 1]), classes=["a", "b", "c"])
    with pytest.raises(CorruptDataError, match=r"y_train: label -1 at row 0"):
        Dataset.from_tensors(x_tr, np.array([-1, 0, 1, 2, 0, 1]), x_te, y_te)
    with pytest.raises(CorruptDataError, match=r"ids_train holds 2 duplicated ids \(id 3 at rows \[1, 4\]; id 5"):
        Dataset.from_tensors(x_tr, y_tr, x_te, y_te, ids_train=[0, 3, 5, 5, 3, 9])
    with pytest.raises(CorruptDataError, match=r"class name 'a' appears twice"):
        Dataset.from_tensors(x_tr, y_tr, x_te, y_te, classes=["a", "b", "a"])
    with pytest.raises(CorruptDataError, match=r"x_train holds images of shape \[3, 8, 8\] but x_test holds "
                                               r"images of shape \[3, 5, 5\]"):
        Dataset.from_tensors(x_tr, y_tr, x_te[:, :5, :5], y_te)
    with pytest.raises(CorruptDataError, match=r"x_train is float32 with shape \[6, 8, 8, 3\]: expected uint8"):
        Dataset.from_tensors(x_tr.astype(np.float32), y_tr, x_te, y_te)
    features = np.ones((6, 4))
    features[2, 1] = np.nan
    with pytest.raises(CorruptDataError, match=r"x_train: 1 rows hold NaN or infinite features \(first: row 2"):
        Dataset.from_tensors(features, y_tr, np.ones((3, 4)), y_te)
    with pytest.raises(CorruptDataError, match=r"row 0, finite in float64 but too large for float32"):
        Dataset.from_tensors(np.ones((6, 4)), y_tr, np.full((3, 4), 1e300), y_te)
    with pytest.raises(CorruptDataError, match=r"x_test holds no examples"):
        Dataset.from_tensors(x_tr, y_tr, x_te[:0], y_te[:0])
    with pytest.raises(ConfigError, match=r"name it \*.npz"):
        save_arrays(tmp_path / "data.bin", x_tr, y_tr, x_te, y_te)
    with pytest.raises(CorruptDataError):
        save_arrays(tmp_path / "never.npz", x_tr, y_tr[:2], x_te, y_te)
    assert not (tmp_path / "never.npz").exists() and not list(tmp_path.glob(".never*"))
    # every refusal is a DataDietError the CLI turns into a message
    assert issubclass(CorruptDataError, DataDietError) and issubclass(DatasetNotFoundError, DataDietError)


# ----------------------------------------------------------------------------- model inputs for the score functions

def test_prepare_inputs_normalizes_like_training_and_scoring(tmp_path):
    from datadiet.runs.scoring import score_model

    root = tmp_path / "pets"
    make_folder(root, per_class=4)
    splits = Dataset.from_folder(root)
    x = datadiet.prepare_inputs(splits)
    pixels = splits.train.images.numpy().astype(np.float64) / 255  # the statistics, computed independently
    mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
    expected = (pixels - mean[None, :, None, None]) / std[None, :, None, None]
    assert x.dtype == torch.float32 and np.allclose(x.numpy(), expected, atol=1e-5)
    assert torch.equal(datadiet.prepare_inputs(splits, splits.test), datadiet.prepare_inputs(splits, splits.test.images))
    model = datadiet.build_model("smallcnn", num_classes=3, in_channels=3, width=0.25)
    by_hand = datadiet.grand(model, x, splits.train.labels)
    assert torch.allclose(by_hand.double(), torch.from_numpy(score_model(model, splits, ["grand"])["grand"]),
                          rtol=1e-5)
    with pytest.raises(ConfigError, match="uint8"):
        datadiet.prepare_inputs(splits, splits.train.images.float())
    with pytest.raises(ConfigError, match="DatasetSplits"):
        datadiet.prepare_inputs(splits.train)
