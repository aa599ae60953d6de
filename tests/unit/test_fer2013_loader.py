"""FER2013 readers: CSV and image-folder copies built from real npz rows load identically."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.datasets.fer2013 import FER2013_CLASSES, FerDataset, load_fer2013
from trainer.errors import DatasetError


@pytest.fixture(scope="module")
def small(fer_slice: FerDataset) -> FerDataset:
    """Every 6th row of the session slice: all classes, Training and PrivateTest."""
    return fer_slice.subset(np.arange(0, len(fer_slice), 6))


def write_csv(
    path: Path, data: FerDataset, header: tuple[str, ...] = ("emotion", "pixels", "Usage")
):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for image, label, usage in zip(data.images, data.labels, data.usage, strict=True):
            writer.writerow([int(label), " ".join(map(str, image.ravel())), str(usage)])
    return path


def write_folder(root: Path, data: FerDataset, prefixed: bool = True) -> Path:
    for row, (image, label, usage) in enumerate(
        zip(data.images, data.labels, data.usage, strict=True)
    ):
        split = "train" if usage == "Training" else "test"
        folder = root / split / FER2013_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{usage}_{row:05d}.png" if prefixed else f"{row:05d}.png"
        Image.fromarray(image).save(folder / name)
    return root


def test_npz_has_the_published_shape(fer_npz_path: Path) -> None:
    data = load_fer2013(fer_npz_path)
    assert data.images.shape == (35887, 48, 48) and data.images.dtype == np.uint8
    assert data.class_names == FER2013_CLASSES
    assert (data.usage == "PrivateTest").sum() == 3589
    assert np.bincount(data.labels).tolist() == [4953, 547, 5121, 8989, 6077, 4002, 6198]


def test_folder_of_npz_is_found(fer_npz_path: Path) -> None:
    assert len(load_fer2013(fer_npz_path.parent)) == 35887


def test_csv_equals_npz_rows(small: FerDataset, tmp_path: Path) -> None:
    data = load_fer2013(write_csv(tmp_path / "fer2013.csv", small))
    np.testing.assert_array_equal(data.images, small.images)
    np.testing.assert_array_equal(data.labels, small.labels)
    np.testing.assert_array_equal(data.usage, small.usage)
    assert data.class_names == FER2013_CLASSES


def test_image_folder_equals_npz_rows(small: FerDataset, tmp_path: Path) -> None:
    data = load_fer2013(write_folder(tmp_path, small))
    order = np.argsort([int(Path(i).stem.split("_")[1]) for i in data.ids])
    np.testing.assert_array_equal(data.images[order], small.images)
    np.testing.assert_array_equal(data.labels[order], small.labels)
    np.testing.assert_array_equal(data.usage[order], small.usage)


def test_image_folder_without_prefix_takes_usage_from_split(
    small: FerDataset, tmp_path: Path
) -> None:
    data = load_fer2013(write_folder(tmp_path, small, prefixed=False))
    train = np.array([i.startswith("train/") for i in data.ids])
    assert set(data.usage[train]) == {"Training"}
    assert set(data.usage[~train]) == {"PrivateTest"}


def test_jpg_rgb_images_are_read_as_grey(small: FerDataset, tmp_path: Path) -> None:
    folder = tmp_path / "train" / "happy"
    folder.mkdir(parents=True)
    Image.fromarray(small.images[0]).convert("RGB").save(folder / "Training_1.jpg", quality=100)
    data = load_fer2013(tmp_path)
    assert data.images.shape == (1, 48, 48) and data.labels.tolist() == [3]
    assert np.abs(data.images[0].astype(int) - small.images[0]).max() <= 3  # JPEG rounding


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_fer2013(tmp_path / "nope.npz")


def test_wrong_columns_names_the_expected_ones(shared_dir: Path) -> None:
    ferplus = shared_dir / "data" / "fer2013" / "fer2013new.csv"
    if not ferplus.is_file():
        pytest.skip("fer2013new.csv not at hand")
    with pytest.raises(DatasetError, match="expected emotion,pixels,Usage"):
        load_fer2013(ferplus)


def test_bad_pixel_count_names_the_line(small: FerDataset, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fer.csv", small.subset(np.arange(3)))
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",", ",1 ", 1)  # 2305 values on the second data row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"line 3: pixels has 2305 values, expected 2304"):
        load_fer2013(path)


def test_junk_pixels_and_labels(small: FerDataset, tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels,Usage\n3,1 2 x,Training\n")
    with pytest.raises(DatasetError, match="line 2: pixels are not"):
        load_fer2013(path)
    path.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    with pytest.raises(DatasetError, match=r"line 2: emotion 9 is outside 0\.\.6"):
        load_fer2013(path)


def test_unknown_class_folder(small: FerDataset, tmp_path: Path) -> None:
    write_folder(tmp_path, small.subset(np.arange(2)))
    (tmp_path / "train" / "contempt").mkdir()
    with pytest.raises(DatasetError, match=r"unknown class folder .*contempt"):
        load_fer2013(tmp_path)


def test_wrong_image_size(tmp_path: Path) -> None:
    folder = tmp_path / "test" / "sad"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "a.png")
    with pytest.raises(DatasetError, match="64x64 pixels, expected 48x48"):
        load_fer2013(tmp_path)


def test_unknown_file_type_and_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a FER2013"):
        load_fer2013(tmp_path / "x.txt")
    with pytest.raises(DatasetError, match="neither train/"):
        load_fer2013(tmp_path)


def test_summary_counts_per_usage(small: FerDataset) -> None:
    summary = small.summary()
    assert summary["n_images"] == len(small)
    assert sum(sum(c) for c in summary["class_counts_by_usage"].values()) == len(small)
    assert len(summary["content_sha256"]) == 64
