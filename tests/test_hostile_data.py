"""Hostile data brought by the user, through the command line: image folders and arrays that used to crash, hang,
clip, mislead or leave folders behind.

Every refusal ends with status 2, one paragraph (no traceback) matching the case's patterns, no output folder and no
``*.tmp`` file left, and names only flags that its command has.  The cases that are not refusals check that the
right thing happened instead (16-bit images scaled, linked folders followed, a FIFO listed and not opened, ...).
All data is tiny (a few 8x8 PNGs or a few rows of features); nothing trains for more than two steps.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datadiet import cli
from datadiet import io as io_mod
from datadiet.config import DataConfig, TrainConfig
from datadiet.data import Dataset, list_folder
from datadiet.data import folder as folder_mod
from datadiet.data.idx import IMAGES_MAGIC, read_idx
from datadiet.errors import ConfigError, CorruptDataError, DataDietError, NonFiniteLossError
from datadiet.io import LOCK_NAME, folder_lock, write_json_atomic
from datadiet.runs.identity import identity
from fakes import write_fake_mnist

TINY = ["--width", "0.25", "--batch-size", "8", "--steps", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DATADIET_DEBUG", raising=False)
    monkeypatch.delenv("DATADIET_DATA", raising=False)
    return tmp_path / "cache"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, out, " ".join(err.split())


def flags_named(message: str) -> set[str]:
    """The flags a message tells the user to give (not those of another command it quotes: `datadiet score ...`)."""
    own = re.sub(r"`datadiet [^`]*`", "", message)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", own))


def options_of(argv) -> set[str]:
    command, analysis = cli._wanted([str(a) for a in argv])
    parser = cli._parser(command, analysis)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]  # argparse keeps no public map
    if command == "analyze":
        sub = next(a for a in sub._actions if a.dest == "analysis").choices[analysis]
    return {o for a in sub._actions for o in a.option_strings}


def refused(capsys, tmp_path: Path, argv, *patterns: str, outputs=()) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, f"exit status {code}; stderr: {err}"
    for pattern in patterns:
        assert re.search(pattern, err), f"{pattern!r} not in: {err}"
    missing = flags_named(err) - options_of(argv)
    assert not missing, f"the message names {missing}, which `datadiet {argv[0]}` does not have: {err}"
    for path in outputs:
        assert not path.exists(), f"{path} was left behind: {sorted(p.name for p in path.rglob('*'))}"
    # os.walk, not rglob: it passes over a folder too deep to open (the long-path case) instead of failing
    assert not [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".tmp")]
    return err


def png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def folder(root: Path, classes=("a", "b"), per_class: int = 5, size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(per_class):
            png(root / c / f"{i}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def features(path: Path, y_train=None, **extra) -> Path:
    rng = np.random.default_rng(1)
    y_train = np.arange(12) % 2 if y_train is None else np.asarray(y_train)
    np.savez(path, x_train=rng.normal(size=(len(y_train), 4)).astype(np.float32), y_train=y_train,
             x_test=rng.normal(size=(4, 4)).astype(np.float32), y_test=np.arange(4) % 2, **extra)
    return path


# ============================================================================= refusals

def test_a_one_class_folder_is_refused(capsys, tmp_path):
    root = folder(tmp_path / "one", classes=("only",))
    refused(capsys, tmp_path, ["train", "--dataset", f"folder:{root}", *TINY, "--out", tmp_path / "out"],
            r"one class folder \('only'\)", r"at least 2 classes", outputs=[tmp_path / "out"])


def test_one_class_arrays_are_refused(capsys, tmp_path):
    path = features(tmp_path / "one.npz", y_train=np.zeros(12, dtype=np.int64))
    refused(capsys, tmp_path, ["data", "--dataset", f"arrays:{path}"], r"one\.npz: key 'y_train'", r"at least 2")


def test_a_stray_label_of_a_million_is_refused_not_a_million_way_model(capsys, tmp_path):
    y = np.arange(12) % 2
    y[5] = 1_000_000
    path = features(tmp_path / "sparse.npz", y_train=y)
    err = refused(capsys, tmp_path, ["score", "--dataset", f"arrays:{path}", "--model", "mlp", "--scores",
                                     "input_norm", "--runs", "1", *TINY, "--out", tmp_path / "s"],
                  r"sparse\.npz: key 'y_train'", r"1,000,000", r"1,000,001 outputs", r"'classes'",
                  outputs=[tmp_path / "s"])
    assert "np.unique" in err  # says how to remap
    # named classes are the way out: with them the same label is simply out of range
    np.savez(tmp_path / "named.npz", **dict(np.load(path)), classes=np.array(["x", "y"]))
    refused(capsys, tmp_path, ["data", "--dataset", f"arrays:{tmp_path / 'named.npz'}"], r"out of range")


def test_labels_with_a_few_gaps_are_still_accepted(tmp_path):
    y = np.arange(12) % 2 * 5  # labels 0 and 5: four unused classes, within the allowance
    splits = Dataset.from_arrays(features(tmp_path / "gaps.npz", y_train=y, ))
    assert splits.train.num_classes == 6


def test_a_zip_bomb_is_refused_before_decompressing(capsys, tmp_path, monkeypatch):
    """80 MB of zeros deflated to 80 kB: the declared size (zip header) is checked, nothing is decompressed."""
    path = tmp_path / "bomb.npz"
    zeros = np.zeros((80 * 1024 * 1024,), np.uint8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, value in {"x_train": zeros, "y_train": np.arange(2), "x_test": zeros[:16].reshape(1, 16).astype(
                np.float32), "y_test": np.arange(1)}.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, value)
    inflated = []
    read = zipfile.ZipExtFile.read

    def counted_read(self, n=-1):  # every byte any reader gets out of the archive's members
        data = read(self, n)
        inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counted_read)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load decompressed the bomb"))
    refused(capsys, tmp_path, ["data", "--dataset", f"arrays:{path}"], r"bomb\.npz is not an arrays dataset .*: its "
            r"key 'x_train' declares", r"zip bomb",
            r"numpy\.savez")
    assert sum(inflated) < 1 << 20  # at most .npy headers were read: nothing near the 80 MB was decompressed


def test_arrays_larger_than_memory_are_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(io_mod, "available_memory", lambda: 100)
    path = features(tmp_path / "big.npz")
    refused(capsys, tmp_path, ["data", "--dataset", f"arrays:{path}"], r"big\.npz holds \d+ bytes of arrays",
            r"the 100 bytes of memory available")


def test_an_npy_header_that_claims_more_than_the_file_holds_is_refused(capsys, tmp_path):
    d = tmp_path / "npys"
    d.mkdir()
    for key, value in {"x_train": np.zeros((6, 4), np.float32), "y_train": np.arange(6) % 2,
                       "x_test": np.zeros((2, 4), np.float32), "y_test": np.arange(2)}.items():
        np.save(d / f"{key}.npy", value)
    whole = (d / "x_train.npy").read_bytes()
    (d / "x_train.npy").write_bytes(whole.replace(b"(6, 4)", b"(9, 4)"))  # the header lies about the rows
    refused(capsys, tmp_path, ["data", "--dataset", f"arrays:{d}"],
            r"x_train\.npy is not a plain \.npy array: its header declares 144 bytes of array data but only 96 bytes "
            r"are stored", r"truncated or forged")


@pytest.mark.parametrize("command", ["score", "reproduce"])
def test_negative_ids_are_refused_at_load(capsys, tmp_path, command):
    path = features(tmp_path / "neg.npz", ids_train=np.arange(12) - 3)
    out = tmp_path / "out"
    argv = (["score", "--scores", "input_norm", "--runs", "1", *TINY] if command == "score" else
            ["reproduce", "--preset", "smoke", "--methods", "input_norm", "--eval-seeds", "1", "--score-runs", "1",
             "--device", "cpu"])
    refused(capsys, tmp_path, [*argv, "--dataset", f"arrays:{path}", "--model", "mlp", "--out", out],
            r"neg\.npz: key 'ids_train': id -3 at row 0 is negative", outputs=[out])


@pytest.mark.parametrize("how", ["one-pixel images", "--resize 2 2"])
@pytest.mark.parametrize("command", ["train", "score", "reproduce"])
def test_images_too_small_for_the_model_name_the_minimum(capsys, tmp_path, command, how):
    root = folder(tmp_path / "tiny", size=1 if how == "one-pixel images" else 8)
    resize = ["--resize", "2", "2"] if how == "--resize 2 2" else []
    out = tmp_path / "out"
    argv = {"train": ["train", *TINY],
            "score": ["score", "--scores", "el2n", "--runs", "1", *TINY],
            "reproduce": ["reproduce", "--preset", "smoke", "--methods", "input_norm", "--eval-seeds", "1",
                          "--score-runs", "1", "--device", "cpu"]}[command]
    side = "1x1" if how == "one-pixel images" else "2x2"
    refused(capsys, tmp_path, [*argv, "--dataset", f"folder:{root}", *resize, "--model", "smallcnn", "--out", out],
            r"'smallcnn' needs images of at least 4x4 pixels", rf"holds {side} images", r"--resize 4 4",
            outputs=[out])


def test_a_long_path_is_named_not_skipped(capsys, tmp_path):
    """A class folder holding a folder deeper than the system's path limit (4096): os.walk would skip it."""
    root = folder(tmp_path / "deep")
    fd = os.open(root / "b", os.O_RDONLY)
    try:
        for _ in range(22):  # 22 levels of 200 characters: beyond PATH_MAX
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        image = os.open("lost.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(image, (root / "a" / "0.png").read_bytes())
        os.close(image)
    finally:
        os.close(fd)
    refused(capsys, tmp_path, ["data", "--dataset", f"folder:{root}"], r"cannot be read \(File name too long\)",
            r"characters\)", r"shorter path")


def test_a_score_file_with_a_number_for_a_name_is_named(capsys, tmp_path):
    meta = {"format": "datadiet-scores/1", "score": "el2n", "when": 2, "dataset": {"fingerprint": "x"}}
    path = tmp_path / "edited.npz"
    np.savez(path, ids=np.arange(3), runs=np.zeros((1, 3)), meta=np.array(json.dumps(meta)))
    refused(capsys, tmp_path, ["prune", "--score-file", path, "--keep", "0.5", "--out", tmp_path / "m.json"],
            r"edited\.npz: its meta entry 'when' is a whole number 2", outputs=[tmp_path / "m.json"])


# ============================================================================= refused commands leave no folder

def test_a_factory_returning_a_string_leaves_no_folder(capsys, tmp_path):
    root = folder(tmp_path / "imgs")
    out = tmp_path / "nested" / "run"
    refused(capsys, tmp_path, ["train", "--dataset", f"folder:{root}", "--model", "user_models:returns_list",
                               *TINY, "--out", out], r"user_models:returns_list", outputs=[tmp_path / "nested"])


def test_a_width_the_factory_cannot_take_is_refused(capsys, tmp_path):
    root = folder(tmp_path / "imgs")
    out = tmp_path / "run"
    refused(capsys, tmp_path, ["train", "--dataset", f"folder:{root}", "--model", "user_models:no_width", *TINY,
                               "--out", out], r"--width 0\.25 was given", r"user_models:no_width takes no width",
            outputs=[out])


def test_a_conv_model_on_feature_arrays_leaves_no_lock(capsys, tmp_path):
    path = features(tmp_path / "emb.npz")
    out = tmp_path / "scores"
    refused(capsys, tmp_path, ["score", "--dataset", f"arrays:{path}", "--model", "smallcnn", "--scores", "el2n",
                               "--runs", "1", *TINY, "--out", out], r"feature vectors", r"--model mlp", outputs=[out])


def test_an_impossible_scaling_size_leaves_no_workspace(capsys, tmp_path):
    data = write_fake_mnist(tmp_path / "data" / "fashion-mnist", n_train=400, n_test=200).parent
    out = tmp_path / "ws"
    refused(capsys, tmp_path, ["analyze", "scaling", "--preset", "smoke", "--sizes", "100000", "--epochs-per-size",
                               "1", "--data-root", data, "--device", "cpu", "--out", out],
            r"Subset size 100000", outputs=[out])


def test_the_lock_removes_only_a_folder_it_made_and_only_before_results(tmp_path):
    def fail(folder: Path, error: Exception, *files: str):
        with pytest.raises(type(error)):
            with folder_lock(folder):
                for name in files:
                    write_json_atomic(folder / name, {})
                raise error

    fail(tmp_path / "made" / "run", ConfigError("refused"), "config.json", "workspace.json")
    assert not (tmp_path / "made").exists()  # and the parent it made for it
    (tmp_path / "mine").mkdir()
    fail(tmp_path / "mine", ConfigError("refused"), "config.json")
    assert (tmp_path / "mine" / "config.json").is_file()  # not made by the lock: left as it is
    fail(tmp_path / "result", ConfigError("refused"), "config.json", "result.json")
    assert (tmp_path / "result" / "result.json").is_file()  # a result: kept
    fail(tmp_path / "diverged", NonFiniteLossError("nan"), "config.json")
    assert (tmp_path / "diverged" / "config.json").is_file()  # its message says the folder keeps config.json
    with folder_lock(tmp_path / "fine"):
        pass
    assert (tmp_path / "fine" / LOCK_NAME).exists()  # success: nothing removed


# ============================================================================= the right thing, not a refusal

def test_16_bit_images_are_scaled_not_clipped(capsys, tmp_path):
    root = tmp_path / "deep16"
    rng = np.random.default_rng(3)
    written = {}
    for c in ("a", "b"):
        for i in range(4):
            values = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
            path = png(root / c / f"{i}.png", values)
            assert Image.open(path).mode == "I;16"
            written[f"{c}/{i}.png"] = values
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0
    splits = Dataset.from_folder(root)
    listing = list_folder(root)
    for split, ds in (("train", splits.train), ("test", splits.test)):
        for i, rel in enumerate(listing.files[split]):
            expected = np.round(written[rel].astype(np.float64) * 255 / 65535).astype(np.uint8)
            assert np.array_equal(ds.images[i, 0].numpy(), expected)
    assert (splits.train.images == 255).float().mean() < 0.02  # clipping made 99.6 % of the pixels white


def test_linked_folders_are_followed_once_and_a_loop_is_listed(capsys, tmp_path):
    root = folder(tmp_path / "links")
    elsewhere = folder(tmp_path / "elsewhere", classes=("extra",), per_class=3)
    (root / "a" / "more").symlink_to(elsewhere / "extra", target_is_directory=True)
    (root / "b" / "loop").symlink_to(root / "b", target_is_directory=True)
    (root / "b" / "gone.png").symlink_to(tmp_path / "missing.png")
    listing = list_folder(root)
    every = [*listing.files["train"], *listing.files["test"]]
    assert sorted(f for f in every if f.startswith("a/more/")) == [f"a/more/{i}.png" for i in range(3)]
    assert "b/loop/ (a link to a folder already read)" in listing.ignored
    assert "b/gone.png (a broken link)" in listing.ignored
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0 and "b/loop/ (a link to a folder already read)" in out


def test_a_fifo_named_png_is_listed_not_read(capsys, tmp_path):
    root = folder(tmp_path / "fifo")
    os.mkfifo(root / "a" / "pipe.png")
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading the FIFO blocked"))
    signal.alarm(20)
    try:
        code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert code == 0 and "a/pipe.png (not a regular file)" in out
    assert len(Dataset.from_folder(root).train) + len(Dataset.from_folder(root).test) == 10


def test_a_file_rewritten_with_its_old_time_is_decoded_again(capsys, tmp_path):
    root = folder(tmp_path / "rewritten")
    assert run_cli(capsys, "data", "--dataset", f"folder:{root}")[0] == 0
    target = root / "a" / "0.png"
    before = os.stat(target)
    pixels = np.asarray(Image.open(target)).copy()
    pixels[0, 0] ^= 0xFF
    png(target, pixels)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # what `rsync -t` or `cp -p` leave
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0 and "(written now)" in out  # not "(reused)": the bytes changed
    listing = list_folder(root)
    splits = Dataset.from_folder(root)
    where = list(listing.files["train"]).index("a/0.png") if "a/0.png" in listing.files["train"] else None
    images = splits.train.images if where is not None else splits.test.images
    where = where if where is not None else list(listing.files["test"]).index("a/0.png")
    assert np.array_equal(images[where, 0].numpy(), pixels)


def test_a_cache_that_cannot_be_written_is_said_so(capsys, tmp_path, monkeypatch):
    root = folder(tmp_path / "imgs")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder belongs")
    monkeypatch.setenv("DATADIET_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="Could not write the decoded-image cache"):
        code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0
    assert "(not written: Not a directory" in out and "written now" not in out


def test_a_killed_cache_write_is_cleaned_up_next_time(capsys, tmp_path, cache_dir):
    """A writer killed inside the cache write leaves its temporary (named after its process); the next load
    removes it because that process is gone, and leaves alone a write in progress, whatever the files' times."""
    root = folder(tmp_path / "imgs")
    assert run_cli(capsys, "data", "--dataset", f"folder:{root}")[0] == 0
    folders = cache_dir / "folders"
    killed = subprocess.run(  # os._exit inside the block: no cleanup runs, as under SIGKILL
        [sys.executable, "-c", "import os, sys; from pathlib import Path; from datadiet.data.folder import "
         "_cache_temporary\nwith _cache_temporary(Path(sys.argv[1])) as tmp:\n    tmp.write_bytes(b'half a cache')\n"
         "    print(tmp.name, flush=True)\n    os._exit(9)", str(folders / "imgs-0123456789ab-0123.npz")],
        capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    orphan = folders / killed.stdout.strip()
    assert orphan.is_file() and f".{os.getpid()}." not in orphan.name
    # Writers that cannot be looked up from here (another machine's process; an earlier version, which named
    # none): their time decides, so the test fixes it far in the past or the future, never near the clock's.
    other, busy = (folders / orphan.name.replace(f".{folder_mod._host()}.", f".another-machine{i}.")
                   for i in range(2))
    legacy = folders / ".imgs-0123456789ab-0123.npz.ab12cd34.tmp"
    for path, when in ((other, 0), (legacy, 0), (busy, 2 ** 40)):
        path.write_bytes(b"half a cache")
        os.utime(path, (when, when))
    with folder_mod._cache_temporary(folders / "imgs-0123456789ab-4567.npz") as live:
        live.write_bytes(b"a write in progress")
        os.utime(live, (0, 0))  # even an old time does not make a live writer's file an orphan
        assert run_cli(capsys, "data", "--dataset", f"folder:{root}")[0] == 0
        assert live.exists()
        assert not orphan.exists() and not other.exists() and not legacy.exists() and busy.exists()
    assert not live.exists() and (folders / "imgs-0123456789ab-4567.npz").read_bytes() == b"a write in progress"


def test_files_map_ids_back_to_their_images(tmp_path):
    root = folder(tmp_path / "imgs")
    splits = Dataset.from_folder(root)
    listing = list_folder(root)
    assert splits.train.files == listing.files["train"] and splits.test.files == listing.files["test"]
    picked = splits.train.take([3, 0])
    assert picked.files == (listing.files["train"][3], listing.files["train"][0])
    for i in (0, 3):
        decoded = np.asarray(Image.open(root / splits.train.files[i]))
        assert np.array_equal(splits.train.images[i, 0].numpy(), decoded)
    assert Dataset.from_arrays(features(tmp_path / "f.npz")).train.files is None


# ============================================================================= flips: the data's default

def test_user_data_is_not_flipped_by_default_and_built_in_identities_stay(capsys, tmp_path):
    # identities computed by datadiet 0.2.0 (git HEAD before flips became the data's default)
    assert identity({"data": DataConfig(), "train": TrainConfig()}) == "0eca7389459919b948c0"
    assert identity({"data": DataConfig(dataset="folder:/x"), "train": TrainConfig(flip=True)}) == \
        "3773308d3ee572d1a043"
    from datadiet.config import resolve_flip
    from datadiet.runs.presets import PRESETS
    from datadiet.runs.sweep import RunSpec

    for name, old in (("smoke", "2c66c5a190c9c82e54c4"), ("quick", "39a07f31032b5ce6ac8a"),
                      ("paper", "6c10e2198b67300c4baa")):
        setting = PRESETS[name]
        for train in (setting.train, resolve_flip(setting.train, user_data=False)):  # as given, as the CLI saves it
            assert RunSpec(data=setting.data, train=train, method="full", keep=1.0).run_id == old, name
    user = DataConfig(dataset="folder:/x")
    assert identity({"data": user, "train": TrainConfig()}) == identity({"data": user,
                                                                        "train": TrainConfig(flip=False)})
    root = folder(tmp_path / "digits")
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0 and "no flips (the default for your own data" in out
    out_dir = tmp_path / "run"
    assert run_cli(capsys, "train", "--dataset", f"folder:{root}", *TINY, "--out", out_dir)[0] == 0
    assert json.loads((out_dir / "config.json").read_text())["train"]["flip"] is False
    assert run_cli(capsys, "train", "--dataset", f"folder:{root}", *TINY, "--flip", "--out", tmp_path / "f")[0] == 0
    assert json.loads((tmp_path / "f" / "config.json").read_text())["train"]["flip"] is True


# ============================================================================= the third hostile probe (issue 25)

def test_a_class_folder_linked_to_a_folder_above_it_is_listed_not_followed(capsys, tmp_path):
    """`up -> ..` as a class folder read every other class again under the label 'up' (71 images from 24)."""
    root = folder(tmp_path / "links")
    (root / "up").symlink_to("..", target_is_directory=True)  # the folder holding the image folder
    (root / "a" / "back").symlink_to("..", target_is_directory=True)  # the image folder itself
    (root / "a" / "side").symlink_to("../b", target_is_directory=True)  # another class: a second label
    elsewhere = folder(tmp_path / "elsewhere", classes=("extra",), per_class=3)
    (root / "a" / "more").symlink_to(elsewhere / "extra", target_is_directory=True)  # out of the dataset: read
    (root / "b" / "again").symlink_to(elsewhere / "extra", target_is_directory=True)  # the same, in another class
    listing = list_folder(root)
    every = [*listing.files["train"], *listing.files["test"]]
    assert listing.classes == ("a", "b") and len(every) == 10 + 3
    assert sorted(f for f in every if "/more/" in f) == [f"a/more/{i}.png" for i in range(3)]
    for note in ("up/ (a link to a folder above it)", "a/back/ (a link to a folder above it)",
                 "a/side/ (a link out of its class folder)", "b/again/ (a link to a folder already read)"):
        assert note in listing.ignored
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0 and "up/ (a link to a folder above it)" in out and "classes: 2 (a, b)" in out


def test_a_link_from_train_into_test_is_listed_not_followed(tmp_path):
    root = tmp_path / "split"
    for split in ("train", "test"):
        folder(root / split)
    (root / "train" / "a" / "peek").symlink_to("../../test/a", target_is_directory=True)
    (root / "train" / "up").symlink_to("..", target_is_directory=True)
    listing = list_folder(root)
    assert listing.classes == ("a", "b") and len(listing.files["train"]) == len(listing.files["test"]) == 10
    assert "train/a/peek/ (a link out of its class folder)" in listing.ignored
    assert "train/up/ (a link to a folder above it)" in listing.ignored


def test_a_hidden_class_folder_is_listed_not_dropped_silently(capsys, tmp_path):
    root = folder(tmp_path / "hidden", classes=("a", "b", ".cat"))
    png(root / "a" / ".sneaky.png", np.zeros((8, 8), np.uint8))
    (root / "a" / ".DS_Store").write_bytes(b"\0")  # a hidden file not named like an image: skipped unsaid
    listing = list_folder(root)
    assert listing.classes == ("a", "b")
    assert listing.ignored == (".cat/ (hidden)", "a/.sneaky.png (hidden)")
    code, out, _ = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    assert code == 0 and ".cat/ (hidden)" in out


@pytest.mark.parametrize("shape", [(12, 0), (12, 1, 0, 8), (12, 1, 0, 0), (12, 0, 8)])
def test_empty_examples_are_refused_at_load(capsys, tmp_path, shape):
    """Features [N, 0] trained an mlp and recorded an accuracy; 0-pixel images loaded with NaN statistics."""
    dtype = np.float32 if len(shape) == 2 else np.uint8
    path = tmp_path / "empty.npz"
    np.savez(path, x_train=np.zeros(shape, dtype), y_train=np.arange(12) % 2,
             x_test=np.zeros((4, *shape[1:]), dtype), y_test=np.arange(4) % 2)
    out = tmp_path / "run"
    stored = [12, 1, *shape[1:]] if len(shape) == 3 else list(shape)  # [N, H, W] is one-channel images
    err = refused(capsys, tmp_path, ["train", "--dataset", f"arrays:{path}", "--model", "mlp", *TINY, "--out", out],
                  r"empty\.npz: key 'x_train' holds", re.escape(str(stored)), r"empty images|no feature",
                  outputs=[out])
    assert "at least 9x9" not in err
    assert ("height 0" in err) == (len(shape) > 2)


def test_an_empty_image_file_is_named_not_averaged(tmp_path, monkeypatch):
    """Pillow refuses the empty headers it knows, but not every loader need: the folder checks sizes itself."""
    root = folder(tmp_path / "imgs")
    probe = folder_mod._probe
    monkeypatch.setattr(folder_mod, "_probe", lambda path: ((0, 8), "L") if path.name == "3.png" else probe(path))
    with pytest.raises(CorruptDataError, match=r"a/3\.png is an empty image \(0x8 pixels.*2 such files"):
        Dataset.from_folder(root)


def test_a_meta_tensor_is_refused_naming_the_argument():
    x, y = torch.zeros(12, 4), torch.arange(12) % 2
    with pytest.raises(DataDietError, match=r"x_train is a tensor on the meta device: it has a shape \(\[12, 4\]\)"):
        Dataset.from_tensors(x.to("meta"), y, x[:4], y[:4])
    with pytest.raises(DataDietError, match=r"y_test is a tensor on the meta device"):
        Dataset.from_tensors(x, y, x[:4], y[:4].to("meta"))
    with pytest.raises(DataDietError, match=r"x_test is a torch\.sparse_coo tensor.*x_test\.to_dense\(\)"):
        Dataset.from_tensors(x, y, x[:4].to_sparse(), y[:4])
    half = Dataset.from_tensors(x.bfloat16() + 0.5, y, x[:4].bfloat16(), y[:4])  # numpy has no bfloat16
    assert half.train.images.dtype == torch.float32 and float(half.train.images[0, 0]) == 0.5


def test_an_over_long_cache_path_names_datadiet_cache(capsys, tmp_path, monkeypatch):
    root = folder(tmp_path / "imgs")
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "/".join(["c" * 250] * 20)))  # beyond PATH_MAX
    with pytest.warns(folder_mod.CacheWarning) as caught:
        code, out, err = run_cli(capsys, "data", "--dataset", f"folder:{root}")
    message = " ".join(str(w.message) for w in caught)
    assert code == 0 and "(not written: File name too long" in out  # the folder is decoded without a cache
    assert "$DATADIET_CACHE, the folder where datadiet keeps decoded image folders, is a path too long" in message
    assert "set $DATADIET_CACHE to a shorter folder path" in message and "--out" not in message + err
    assert not (tmp_path / ("c" * 250)).exists()


def _idx_gz(path: Path, header_shape: tuple[int, ...], payload: bytes) -> Path:
    magic = 0x0800 | len(header_shape)
    path.write_bytes(gzip.compress(struct.pack(f">I{len(header_shape)}I", magic, *header_shape) + payload, mtime=0))
    return path


def test_an_idx_file_longer_than_its_header_is_refused_without_inflating_it(capsys, tmp_path, monkeypatch):
    """7.5 MB of gzip in $DATADIET_DATA inflated whole (6.65 GB) before its size was checked."""
    data = tmp_path / "data"
    write_fake_mnist(data / "mnist", n_train=10, n_test=5)
    bomb = _idx_gz(data / "mnist" / "train-images-idx3-ubyte.gz", (10, 28, 28), bytes(10 * 784 + (64 << 20)))
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setenv("DATADIET_DATA", str(data))
    handed_out, depth = [], []

    def counted(method):  # bytes the reader gets out of the gzip stream (readinto may call read: counted once)
        def wrapper(self, arg=-1):
            depth.append(method)
            try:
                result = method(self, arg)
            finally:
                depth.pop()
            if not depth:
                handed_out.append(result if isinstance(result, int) else len(result))
            return result
        return wrapper

    monkeypatch.setattr(gzip.GzipFile, "read", counted(gzip.GzipFile.read))
    monkeypatch.setattr(gzip.GzipFile, "readinto", counted(gzip.GzipFile.readinto))
    refused(capsys, tmp_path, ["data", "--dataset", "mnist"], r"train-images-idx3-ubyte\.gz: header promises 7840 "
            r"bytes of data for shape \(10, 28, 28\), found more than 7840")
    assert sum(handed_out) <= 16 + 7840 + 1  # the header, what it promises, and one byte to see there is more


def test_an_idx_file_shorter_than_its_header_or_larger_than_memory_is_refused(tmp_path, monkeypatch):
    short = _idx_gz(tmp_path / "short.gz", (3, 2, 2), bytes(11))
    with pytest.raises(DataDietError, match=r"short\.gz: header promises 12 bytes .* found 11"):
        read_idx(short, expected_magic=IMAGES_MAGIC)
    huge = _idx_gz(tmp_path / "huge.gz", (10, 28, 28), bytes(100))  # promises 7,840 bytes
    monkeypatch.setattr(io_mod, "available_memory", lambda: 1000)
    monkeypatch.setattr(np, "empty", lambda *a, **k: pytest.fail("allocated before checking the memory"))
    with pytest.raises(DataDietError, match=r"huge\.gz holds 7\.8 kB of arrays, more than the 1\.0 kB of memory"):
        read_idx(huge, expected_magic=IMAGES_MAGIC)
