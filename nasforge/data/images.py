"""Image datasets from folders: class sub-folders of PNG / JPEG files, or CIFAR's python batches.

``--dataset DIR`` (or ``DIR@SIZE``, SIZE ``32`` or ``HxW``) takes, in this order:

* CIFAR-10 / CIFAR-100 python batches in DIR (``data_batch_1..5`` + ``test_batch``, or ``train``
  + ``test``): read by :mod:`.cifar`, never downloaded;
* ``DIR/train`` and ``DIR/test``, each a folder of class sub-folders (the ImageFolder layout);
* DIR itself in that layout, split 80 / 20 stratified with seed 0 into train and test (as the
  built-in digits and MNIST-5k are).

Class names sorted give labels 0..K-1 (the test split's classes must be among the training
split's). Every image is decoded once, into memory, as uint8 pixels. Images must agree in their
channels (1: grayscale, 3: colour; alpha channels and 16-bit images are refused) and, unless a
SIZE is given, in their size; with a SIZE every image is resized to it (Pillow, bilinear).
The network's input is pixels / 255 standardised per channel with the training split's mean and
deviation; the record (:func:`~.datasets.make_preprocessing`, plus ``image``: size, resizing,
class names) is what an export replays, so an exported model takes uint8 arrays (N, C, H, W) of
images already at SIZE (resizing stays outside the model: say so to whoever feeds it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cifar import cifar_files, load_cifar
from .datasets import DataError, Dataset, split_validation
from .pixels import pixel_dataset

SUFFIXES = (".png", ".jpg", ".jpeg")
#: Pillow mode -> (mode decoded to, channels); any other mode is refused with its name.
MODES = {"L": ("L", 1), "1": ("L", 1), "RGB": ("RGB", 3), "P": ("RGB", 3), "CMYK": ("RGB", 3), "YCbCr": ("RGB", 3)}


def split_reference(reference: str) -> Tuple[Path, Optional[Tuple[int, int]]]:
    """``DIR`` or ``DIR@SIZE`` -> (folder, (height, width) or None)."""
    folder, at, size = reference.rpartition("@")
    if not at or not re.fullmatch(r"\d+(x\d+)?", size):
        whole = Path(reference).expanduser()
        if at and folder and not whole.is_dir() and Path(folder).expanduser().is_dir():
            raise DataError(f"bad image size {size!r} in {reference}: use DIR@32 or DIR@HEIGHTxWIDTH")
        return whole, None  # a folder whose own name holds '@', or one that does not exist (said later)
    h, _, w = size.partition("x")
    hw = (int(h), int(w or h))
    if min(hw) < 1 or max(hw) > 4096:
        raise DataError(f"image size {size!r} must be between 1 and 4096 pixels")
    return Path(folder).expanduser(), hw


def class_files(root: Path) -> Tuple[List[str], List[List[Path]]]:
    """Sorted class names and each class's image files (sorted), refusing empty layouts."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in SUFFIXES][:3]
        hint = f" (it holds images such as {', '.join(loose)} directly)" if loose else ""
        raise DataError(f"{root} has no class sub-folders{hint}: put each class's images in a folder "
                        f"named after the class, e.g. {root}/cat/001.png")
    files = []
    for name in classes:
        images = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not images:
            raise DataError(f"class folder {root / name} holds no PNG or JPEG images")
        files.append(images)
    return classes, files


def decode(path: Path, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """One image as uint8 (C, H, W); resized (bilinear) when ``size`` is given and differs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in MODES:
                raise DataError(f"image {path} has mode {image.mode!r}: use 8-bit grayscale (L) or colour (RGB) "
                                "images without an alpha channel")
            image = image.convert(MODES[image.mode][0])
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read image {path}: {exc}") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_split(root: Path, size: Optional[Tuple[int, int]], classes: Optional[Sequence[str]] = None):
    """(uint8 pixels (N, C, H, W), labels, class names) of one ImageFolder tree; ``classes`` fixes
    the label of each name (a test split's classes must be among them)."""
    names, files = class_files(root)
    classes = list(classes) if classes is not None else names
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise DataError(f"{root} has classes the training images lack: {', '.join(unknown[:10])}")
    images, labels, seen = [], [], {}
    for name, paths in zip(names, files):
        for path in paths:
            pixels = decode(path, size)
            seen.setdefault(pixels.shape, path)
            images.append(pixels)
            labels.append(classes.index(name))
    _check_agree(seen, size)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def _check_agree(seen: Dict[Tuple[int, ...], Path], size: Optional[Tuple[int, int]]) -> None:
    """Refuse images of mixed channels, or of mixed sizes when no size was given."""
    channels = {shape[0]: path for shape, path in seen.items()}
    if len(channels) > 1:
        examples = "; ".join(f"{c} channel{'s' if c > 1 else ''}: {p}" for c, p in sorted(channels.items()))
        raise DataError(f"images have mixed channels ({examples}): convert them all to grayscale or all to RGB")
    if len(seen) > 1:
        examples = "; ".join(f"{s[1]}x{s[2]}: {p}" for s, p in list(seen.items())[:3])
        raise DataError(f"images have different sizes ({examples}); resize them, or give one size to resize "
                        "every image to: --dataset DIR@32 or DIR@HEIGHTxWIDTH")


def _check_both_splits(root: Path) -> None:
    """Refuse DIR/train without DIR/test (or the reverse): read as one folder, the split folder
    would be taken for a class. A ``train`` or ``test`` folder of images (no sub-folders) is a
    class of its own (CIFAR-100 has a class "train") and passes."""
    splits = [name for name in ("train", "test") if (root / name).is_dir()]
    if len(splits) != 1 or not any(p.is_dir() and not p.name.startswith(".") for p in (root / splits[0]).iterdir()):
        return
    other = "test" if splits[0] == "train" else "train"
    raise DataError(f"{root} has {splits[0]}/ but no {other}/: give both for fixed splits, or put the class "
                    f"folders directly in {root}")


def load_folder(reference: str) -> Dataset:
    """The dataset ``--dataset DIR[@SIZE]`` names (see the module docstring for the layouts)."""
    root, size = split_reference(reference)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    if cifar_files(root) is not None:
        return load_cifar(root, size)
    image = {"size": None if size is None else list(size), "resample": None if size is None else "bilinear (Pillow)",
             "folder": str(root.resolve())}
    _check_both_splits(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        x, y, classes = read_split(root / "train", size)
        xt, yt, _ = read_split(root / "test", size, classes)
        if x.shape[1:] != xt.shape[1:]:
            raise DataError(f"training images are {x.shape[1:]} (C, H, W) but test images {xt.shape[1:]}; "
                            "give one size: --dataset DIR@HEIGHTxWIDTH")
        image["split"] = "train/ and test/ folders"
    else:
        pixels, labels, classes = read_split(root, size)
        (x, y), (xt, yt) = split_validation(pixels, labels, 0.2, 0)
        image["split"] = "one folder, 80/20 stratified, seed 0"
    image["classes"] = classes
    return pixel_dataset(root.name, (x, y, xt, yt), image)
