"""Reader for CINIC-10 in its official image-folder layout.

Layout as unpacked from the official ``CINIC-10.tar.gz``::

    root/{train,valid,test}/{airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck}/*.png

Each split folder holds 90000 32x32 PNGs (9000 per class).  As in the Data
Diet paper, our TRAIN split is ``train`` and ``valid`` combined (180000
images) and our TEST split is ``test`` (90000).

Canonical order (the ``ids`` are positions in it):

1. split folders in the order ``train`` then ``valid`` (TEST has only ``test``);
2. within a split folder, class folders in the fixed order of :data:`CLASSES`;
3. within a class folder, ``*.png`` file names sorted with plain Python string
   sort (``sorted(names)``), so the order does not depend on the filesystem.

Other files (README, ``.DS_Store``) are ignored.  Some CINIC images (from
ImageNet) are grayscale; every image is converted to RGB.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import CorruptDataError, DatasetNotFoundError
from .dataset import DatasetSplits, ImageDataset, make_splits

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Our split -> official folders, in canonical order.
SPLIT_FOLDERS = {"train": ("train", "valid"), "test": ("test",)}
IMAGE_SIZE = (32, 32)
_CHUNK = 2048  # files per work item: few futures, yet a quick stop on the first bad file


def cinic10_parts(root: Path) -> dict[str, bool]:
    """Each class folder CINIC-10 needs (``valid/truck/``), and whether ``root`` has it; a split folder
    missing altogether is one entry (``valid/``)."""
    root = Path(root)
    parts = {}
    for folder in (f for fs in SPLIT_FOLDERS.values() for f in fs):
        if not (root / folder).is_dir():
            parts[f"{folder}/"] = False
            continue
        parts.update({f"{folder}/{c}/": (root / folder / c).is_dir() for c in CLASSES})
    return parts


def has_cinic10(root: Path) -> bool:
    """True when ``root`` has ``train/``, ``valid/`` and ``test/``, each with the 10 class folders."""
    return all(cinic10_parts(root).values())


def load_cinic10(root: str | Path) -> DatasetSplits:
    """CINIC-10: train = train + valid (180000), test = test (90000), canonical order.

    Images are uint8 ``[N, 3, 32, 32]``, labels int64 ``[N]`` in ``[0, 10)``.
    """
    root = Path(root)
    missing = [part for part, present in cinic10_parts(root).items() if not present]
    if missing:
        raise DatasetNotFoundError(
            f"cinic10: {root} lacks the folder(s) {', '.join(missing)}. Unpack the official CINIC-10.tar.gz "
            f"into {root} again (it must contain train/, valid/ and test/, each with the 10 class folders) "
            "or run `datadiet download cinic10 --data-root DIR`."
        )
    splits = {split: _load_split(root, split) for split in SPLIT_FOLDERS}
    return make_splits(splits["train"], splits["test"])


def list_files(root: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """PNG paths of ``split`` in canonical order and their int64 labels ``[N]``."""
    paths: list[Path] = []
    labels: list[int] = []
    for folder in SPLIT_FOLDERS[split]:
        for label, cls in enumerate(CLASSES):
            class_dir = root / folder / cls
            if not class_dir.is_dir():
                raise DatasetNotFoundError(
                    f"cinic10: folder {class_dir} is missing. Unpack the official CINIC-10.tar.gz into "
                    f"{root} (it must contain train/, valid/ and test/) or run `datadiet download cinic10`."
                )
            names = sorted(p.name for p in class_dir.iterdir() if p.suffix.lower() == ".png")
            paths.extend(class_dir / n for n in names)
            labels.extend([label] * len(names))
    return paths, np.asarray(labels, dtype=np.int64)


def read_png(path: Path) -> np.ndarray:
    """One CINIC image as uint8 ``[3, 32, 32]`` (grayscale and palette images become RGB)."""
    from PIL import Image  # lazy: only CINIC needs Pillow

    try:
        with Image.open(path) as img:
            size = img.size
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's ways of saying "not an image"
        raise CorruptDataError(
            f"cinic10: cannot decode {path} ({exc}). The file is damaged, probably by an interrupted "
            "download or unpacking; unpack the official CINIC-10.tar.gz again."
        ) from exc
    if size != IMAGE_SIZE:
        raise CorruptDataError(
            f"cinic10: {path} is {size[0]}x{size[1]} pixels, but every CINIC-10 image is 32x32. "
            "The folder holds files from another dataset; unpack the official CINIC-10.tar.gz again."
        )
    return rgb.transpose(2, 0, 1)


def _load_split(root: Path, split: str) -> ImageDataset:
    paths, labels = list_files(root, split)
    images = np.empty((len(paths), 3, *IMAGE_SIZE), dtype=np.uint8)
    _decode_into(paths, images)
    return ImageDataset(
        name="cinic10",
        split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        ids=torch.arange(len(paths), dtype=torch.long),
        classes=CLASSES,
    )


def _decode_into(paths: list[Path], out: np.ndarray) -> None:
    """Decode ``paths[i]`` into ``out[i]`` on a few threads (PNG inflate releases the GIL)."""
    def work(start: int) -> None:
        for i in range(start, min(start + _CHUNK, len(paths))):
            out[i] = read_png(paths[i])

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, start) for start in range(0, len(paths), _CHUNK)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # stop early instead of decoding 180k files first
                future.cancel()
            raise
