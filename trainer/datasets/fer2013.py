"""FER2013 in its three public shapes: the project's npz, the original CSV, an image-folder copy.

Every reader returns the same ``FerDataset``: uint8 N x 48 x 48 faces, labels in the original
FER2013 order (angry, disgust, fear, happy, sad, surprise, neutral), and the ``Usage`` split.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.errors import DatasetError

logger = logging.getLogger(__name__)

FER2013_CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
FOLDER_USAGE = {"train": "Training", "test": "PrivateTest"}
IMAGE_SIDE = 48
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
CSV_COLUMNS = ("emotion", "pixels", "Usage")
NPZ_KEYS = ("images", "labels", "usage")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class FerDataset:
    """FER2013 faces as arrays; ``ids`` name each row in its source (row number or file)."""

    images: npt.NDArray[np.uint8]  # (N, 48, 48)
    labels: npt.NDArray[np.int64]  # (N,), index into class_names
    class_names: tuple[str, ...]
    usage: npt.NDArray[np.str_]  # (N,), Training / PublicTest / PrivateTest
    ids: npt.NDArray[np.str_]  # (N,)
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def content_hash(self) -> str:
        """sha256 of the pixels (shape included): what the features depend on."""
        digest = hashlib.sha256(repr(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        return digest.hexdigest()

    def subset(self, rows: npt.NDArray[Any]) -> FerDataset:
        """The rows selected by an index array or boolean mask, same class names."""
        return FerDataset(
            images=self.images[rows],
            labels=self.labels[rows],
            class_names=self.class_names,
            usage=self.usage[rows],
            ids=self.ids[rows],
            source=self.source,
        )

    def summary(self) -> dict[str, Any]:
        """Counts per usage and class, for a model manifest (no pixels, no ids)."""
        counts = {
            usage: np.bincount(self.labels[self.usage == usage], minlength=len(self.class_names))
            .astype(int)
            .tolist()
            for usage in np.unique(self.usage).tolist()
        }
        return {
            "dataset": "FER2013",
            "source": Path(self.source).name,
            "n_images": len(self),
            "class_names": list(self.class_names),
            "class_counts_by_usage": counts,
            "content_sha256": self.content_hash(),
        }


def load_fer2013(path: Path | str) -> FerDataset:
    """Read FER2013 from an npz, the original CSV, or an image folder (decided by the path)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"FER2013 path {path} does not exist")
    if path.is_dir():
        return _load_dir(path)
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    if path.suffix.lower() == ".csv":
        return _load_csv(path)
    raise DatasetError(f"{path} is not a FER2013 .npz, .csv or image folder")


def _load_dir(path: Path) -> FerDataset:
    if any((path / split).is_dir() for split in FOLDER_USAGE):
        return _load_folder(path)
    for name in ("fer2013.npz", "fer2013.csv"):
        if (path / name).is_file():
            return load_fer2013(path / name)
    raise DatasetError(
        f"{path} holds neither train/ or test/ image folders nor fer2013.npz or fer2013.csv"
    )


# --- npz -----------------------------------------------------------------------------------


def _load_npz(path: Path) -> FerDataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in NPZ_KEYS if key not in data.files]
            if missing:
                raise DatasetError(f"{path} lacks the keys {missing}; expected {list(NPZ_KEYS)}")
            names = data["class_names"] if "class_names" in data.files else FER2013_CLASSES
            arrays = {key: data[key] for key in NPZ_KEYS}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable npz file ({exc})") from exc
    images = arrays["images"]
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"{path}: images have shape {images.shape}, expected (N, 48, 48)")
    ids = np.array([f"row{i}" for i in range(images.shape[0])])
    names = tuple(str(n) for n in names)
    labels, usage = arrays["labels"], arrays["usage"]
    return _make(path, images=images, labels=labels, class_names=names, usage=usage, ids=ids)


def _make(
    path: Path,
    *,
    images: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    class_names: tuple[str, ...],
    usage: npt.NDArray[Any],
    ids: npt.NDArray[Any],
) -> FerDataset:
    if not len(labels) == len(images) == len(usage):
        raise DatasetError(f"{path}: images, labels and usage differ in length")
    if len(labels) == 0:
        raise DatasetError(f"{path} holds no images")
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DatasetError(f"{path}: labels must lie in 0..{len(class_names) - 1}")
    return FerDataset(
        images=np.ascontiguousarray(images, dtype=np.uint8),
        labels=labels.astype(np.int64),
        class_names=class_names,
        usage=usage.astype(np.str_),
        ids=ids.astype(np.str_),
        source=str(path),
    )


# --- original CSV --------------------------------------------------------------------------


def _load_csv(path: Path) -> FerDataset:
    images, labels, usage = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames)
        for row in reader:
            line = reader.line_num
            labels.append(_parse_label(path, line, row.get("emotion")))
            images.append(_parse_pixels(path, line, row.get("pixels")))
            usage.append(row.get("Usage") or "Training")
    ids = np.array([f"row{i}" for i in range(len(labels))])
    stack = np.stack(images) if images else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    return _make(
        path,
        images=stack,
        labels=np.array(labels),
        class_names=FER2013_CLASSES,
        usage=np.array(usage),
        ids=ids,
    )


def _check_columns(path: Path, fieldnames: Any) -> None:
    columns = [str(name).strip() for name in fieldnames or []]
    if "emotion" not in columns or "pixels" not in columns:
        raise DatasetError(
            f"{path} has columns {columns[:6]}, expected {','.join(CSV_COLUMNS)} "
            "(the original fer2013.csv)"
        )
    if "Usage" not in columns:
        logger.warning("%s has no Usage column: every row counts as Training", path)


def _parse_label(path: Path, line: int, text: str | None) -> int:
    try:
        label = int(text or "")
    except ValueError:
        raise DatasetError(f"{path} line {line}: emotion {text!r} is not an integer") from None
    if not 0 <= label < len(FER2013_CLASSES):
        raise DatasetError(f"{path} line {line}: emotion {label} is outside 0..6")
    return label


def _parse_pixels(path: Path, line: int, text: str | None) -> npt.NDArray[np.uint8]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy < 2.3 only warns on junk
        try:
            values = np.fromstring(text or "", dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise DatasetError(
                f"{path} line {line}: pixels are not space-separated integers"
            ) from None
    if values.size != N_PIXELS:
        raise DatasetError(
            f"{path} line {line}: pixels has {values.size} values, expected {N_PIXELS} (48x48)"
        )
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(f"{path} line {line}: pixel values must lie in 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


# --- image folder --------------------------------------------------------------------------


def _load_folder(root: Path) -> FerDataset:
    entries = list(_folder_entries(root))
    if not entries:
        raise DatasetError(f"{root} has train/ or test/ folders but no .jpg or .png images in them")
    images = np.stack([_read_grey(file) for file, _, _ in entries])
    labels = np.array([label for _, label, _ in entries])
    usage = np.array([usage for _, _, usage in entries])
    ids = np.array([file.relative_to(root).as_posix() for file, _, _ in entries])
    return _make(
        root, images=images, labels=labels, class_names=FER2013_CLASSES, usage=usage, ids=ids
    )


def _folder_entries(root: Path) -> Iterator[tuple[Path, int, str]]:
    """(file, label, usage) for every image, ordered by split, class folder and file name."""
    for split, default_usage in FOLDER_USAGE.items():
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            label = _class_index(class_dir)
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    yield file, label, _usage_from_name(file.name, default_usage)


def _class_index(class_dir: Path) -> int:
    name = class_dir.name.lower()
    if name not in FER2013_CLASSES:
        raise DatasetError(
            f"unknown class folder {class_dir}; "
            f"expected one of {', '.join(sorted(FER2013_CLASSES))}"
        )
    return FER2013_CLASSES.index(name)


def _usage_from_name(file_name: str, default: str) -> str:
    prefix = file_name.split("_", 1)[0]
    return prefix if prefix in USAGES else default


def _read_grey(file: Path) -> npt.NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            grey = np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{file} is not a readable image ({exc})") from exc
    if grey.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"{file} is {grey.shape[1]}x{grey.shape[0]} pixels, expected 48x48")
    return grey
