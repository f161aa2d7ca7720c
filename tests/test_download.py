"""Downloads without a network: an injected fetch copies local files."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.error
from pathlib import Path

import pytest

from datadiet.data import download as dl
from datadiet.data import registry
from datadiet.errors import CorruptDataError, DataDietError, UnknownNameError

try:  # tests/ is on sys.path itself, or is a package below the repository root
    from fakes import write_fake_cifar10, write_fake_cinic10, write_fake_idx
except ImportError:  # pragma: no cover
    from tests.fakes import write_fake_cifar10, write_fake_cinic10, write_fake_idx

BASE = "https://example.invalid/files/"


class LocalFetch:
    """fetch(url, dest) that serves files from a local folder by their URL's file name."""

    def __init__(self, folder: Path, corrupt: bool = False):
        self.folder, self.corrupt, self.calls = folder, corrupt, []

    def __call__(self, url: str, dest: Path) -> None:
        self.calls.append(url)
        shutil.copyfile(self.folder / url.rsplit("/", 1)[-1], dest)
        if self.corrupt:
            with open(dest, "ab") as fh:
                fh.write(b"x")


def _serve(monkeypatch, name: str, folder: Path, files: list[str], **changes) -> None:
    """Point SOURCES[name] at ``files`` in ``folder`` with their true MD5s."""
    sources = tuple(dl.Source(BASE + f, dl.file_md5(folder / f)) for f in files)
    monkeypatch.setitem(dl.SOURCES, name, dataclasses.replace(dl.SOURCES[name], files=sources, **changes))


def _tar(path: Path, tree: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=arcname)
    return path


def test_sources_table():
    assert set(dl.SOURCES) == set(registry.DATASETS)
    fashion = {s.filename: s.md5 for s in dl.SOURCES["fashion-mnist"].files}
    assert fashion["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert fashion["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert dl.SOURCES["cifar10"].files[0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert dl.SOURCES["cinic10"].files[0].filename == "CINIC-10.tar.gz"
    for spec in dl.SOURCES.values():
        for s in spec.files:
            assert len(s.md5) == 32
            assert int(s.md5, 16) >= 0


def test_file_md5(tmp_path):
    (tmp_path / "f").write_bytes(b"hello\n")
    assert dl.file_md5(tmp_path / "f") == "b1946ac92492d2347c6235b4d2611184"


def test_idx_download_and_load(tmp_path, monkeypatch):
    served = tmp_path / "served"
    files = list(write_fake_idx(served))
    _serve(monkeypatch, "mnist", served, files)
    root = tmp_path / "data"
    fetch = LocalFetch(served)
    assert dl.download("mnist", root, fetch=fetch) == root / "mnist"
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(files)  # no temporary files left
    assert len(registry.load_splits("mnist", data_root=root).train) == 6
    # Second call: every file present with the right MD5, nothing fetched.
    fetch.calls.clear()
    dl.download("MNIST", root, fetch=fetch)
    assert fetch.calls == []


def test_wrong_md5_raises_and_leaves_nothing(tmp_path, monkeypatch):
    served = tmp_path / "served"
    files = list(write_fake_idx(served))
    _serve(monkeypatch, "fashion-mnist", served, files)
    root = tmp_path / "data"
    with pytest.raises(CorruptDataError) as info:
        dl.download("fashion-mnist", root, fetch=LocalFetch(served, corrupt=True))
    source = dl.SOURCES["fashion-mnist"].files[0]
    actual = hashlib.md5((served / source.filename).read_bytes() + b"x").hexdigest()
    assert f"MD5 {actual}, expected {source.md5}" in str(info.value)
    assert list((root / "fashion-mnist").iterdir()) == []  # no partial or temporary file


def test_wrong_md5_message_has_actual(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "a.gz").write_bytes(b"abc")
    source = dl.Source(BASE + "a.gz", "0" * 32)
    with pytest.raises(CorruptDataError, match=f"{dl.file_md5(served / 'a.gz')}, expected {'0' * 32}"):
        dl.fetch_verified(source, tmp_path / "out", fetch=LocalFetch(served))
    assert list((tmp_path / "out").iterdir()) == []


def test_present_file_with_wrong_md5_is_fetched_again(tmp_path, monkeypatch):
    served = tmp_path / "served"
    files = list(write_fake_idx(served))
    _serve(monkeypatch, "mnist", served, files)
    target = tmp_path / "data" / "mnist" / files[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"half a file")
    fetch = LocalFetch(served)
    dl.download("mnist", tmp_path / "data", fetch=fetch)
    assert target.read_bytes() == (served / files[0]).read_bytes()
    assert fetch.calls == [BASE + f for f in files]


@pytest.mark.parametrize("error", [urllib.error.URLError("no route to host"), ConnectionResetError("reset"),
                                   TimeoutError("timed out")])
def test_network_error_is_explained(tmp_path, error):
    def offline(url, dest):
        raise error

    with pytest.raises(DataDietError, match="offline") as info:
        dl.download("fashion-mnist", tmp_path, fetch=offline)
    assert "dataset-fashion-mnist" in str(info.value)  # the Debian package hint
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def test_default_fetch_streams_a_url(tmp_path):
    # file:// goes through the same urllib code path without a network.
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 5000)
    dest = tmp_path / "dest.bin"
    dl.urllib_fetch(src.as_uri(), dest)
    assert dest.read_bytes() == src.read_bytes()


def test_unknown_dataset(tmp_path):
    with pytest.raises(UnknownNameError, match="cifar10"):
        dl.download("imagenet", tmp_path, fetch=LocalFetch(tmp_path))


def test_cifar10_archive_is_unpacked_where_the_registry_looks(tmp_path, monkeypatch):
    tree = tmp_path / "tree" / "cifar-10-batches-py"
    write_fake_cifar10(tree, n_per_batch=2, n_test=3)
    served = tmp_path / "served"
    served.mkdir()
    _tar(served / "cifar-10-python.tar.gz", tree, "cifar-10-batches-py")
    _serve(monkeypatch, "cifar10", served, ["cifar-10-python.tar.gz"])
    root = tmp_path / "data"
    fetch = LocalFetch(served)
    assert dl.download("cifar10", root, fetch=fetch) == root / "cifar-10-batches-py"
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    splits = registry.load_splits("cifar10", data_root=root)
    assert len(splits.train) == 10
    assert len(splits.test) == 3
    # Already unpacked: no fetch at all.
    fetch.calls.clear()
    dl.download("cifar10", root, fetch=fetch)
    assert fetch.calls == []


def test_partial_unpack_is_replaced(tmp_path, monkeypatch):
    tree = tmp_path / "tree" / "cifar-10-batches-py"
    write_fake_cifar10(tree, n_per_batch=2, n_test=3)
    served = tmp_path / "served"
    served.mkdir()
    _tar(served / "cifar-10-python.tar.gz", tree, "cifar-10-batches-py")
    _serve(monkeypatch, "cifar10", served, ["cifar-10-python.tar.gz"])
    root = tmp_path / "data"
    partial = root / "cifar-10-batches-py"
    partial.mkdir(parents=True)
    (partial / "data_batch_1").write_bytes(b"cut short")
    dl.download("cifar10", root, fetch=LocalFetch(served))
    assert (partial / "data_batch_1").read_bytes() == (tree / "data_batch_1").read_bytes()


def test_cinic_archive_layout(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    write_fake_cinic10(tree, n_per_class=1)
    (tree / "README.md").write_text("CINIC-10")
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "CINIC-10.tar.gz", "w:gz") as tar:  # official: no top-level folder
        for entry in sorted(tree.iterdir()):
            tar.add(entry, arcname=entry.name)
    _serve(monkeypatch, "cinic10", served, ["CINIC-10.tar.gz"])
    root = tmp_path / "data"
    assert dl.download("cinic10", root, fetch=LocalFetch(served)) == root / "cinic10"
    assert sorted(p.name for p in (root / "cinic10").iterdir()) == ["README.md", "test", "train", "valid"]
    assert len(registry.load_splits("cinic10", data_root=root).train) == 20


def test_archive_with_wrong_layout(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "something.txt").write_text("not cifar")
    served = tmp_path / "served"
    served.mkdir()
    _tar(served / "cifar-10-python.tar.gz", tree, "elsewhere")
    _serve(monkeypatch, "cifar10", served, ["cifar-10-python.tar.gz"])
    with pytest.raises(CorruptDataError, match="still does not hold"):
        dl.download("cifar10", tmp_path / "data", fetch=LocalFetch(served))


def _evil_tar(path: Path, name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("cifar-10-batches-py/readme.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        data = b"" if kind != tarfile.REGTYPE else b"evil"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "cifar-10-batches-py/../../evil.txt", "/tmp/evil.txt",
                                  "..\\evil.txt", "C:\\evil.txt"])
def test_path_traversal_member_is_refused(tmp_path, name):
    archive = _evil_tar(tmp_path / "a.tar.gz", name)
    dest = tmp_path / "x" / "dest"
    with pytest.raises(CorruptDataError, match="Refused to unpack.*outside the target"):
        dl.extract_tar(archive, dest)
    assert not (tmp_path / "x" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # nothing unpacked at all, staging folder removed


@pytest.mark.parametrize("kind, linkname", [(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "../../x"),
                                            (tarfile.SYMTYPE, "readme.txt")])
def test_link_members_are_refused(tmp_path, kind, linkname):
    archive = _evil_tar(tmp_path / "a.tar.gz", "cifar-10-batches-py/link", kind, linkname)
    with pytest.raises(CorruptDataError, match="link or special file"):
        dl.extract_tar(archive, tmp_path / "dest")


def test_damaged_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CorruptDataError, match="Cannot unpack"):
        dl.extract_tar(archive, tmp_path / "dest")


def test_no_network_at_import(monkeypatch):
    import importlib.util
    import urllib.request

    def forbidden(*args, **kwargs):
        raise AssertionError("network used at import time")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    # Execute a fresh copy of the module (not registered anywhere) with the network forbidden.
    spec = importlib.util.spec_from_file_location("datadiet.data._download_copy", dl.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert set(module.SOURCES) == set(dl.SOURCES)
