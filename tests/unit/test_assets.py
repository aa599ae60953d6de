"""Assets resolve by sha256 from an explicit path, a mirror or the cache, else fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device.assets import ASSETS, MIRROR_ENV, AssetResolver, file_sha256
from device.errors import AssetError


def test_every_registered_asset_is_in_the_mirror(asset_mirror: Path) -> None:
    for asset in ASSETS.values():
        path = asset_mirror / asset.mirror_path
        assert file_sha256(path) == asset.sha256, asset.name


def test_mirror_from_environment(asset_mirror: Path, tmp_path: Path) -> None:
    resolver = AssetResolver(cache_dir=tmp_path, allow_download=False)
    expected = asset_mirror / ASSETS["face_landmarker"].mirror_path
    assert resolver.resolve("face_landmarker") == expected


def test_missing_asset_says_file_hash_and_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    resolver = AssetResolver(tmp_path / "mirror", tmp_path / "c", allow_download=False)
    with pytest.raises(AssetError) as info:
        resolver.resolve("face_landmarker")
    message = str(info.value)
    assert "face_landmarker.task" in message
    assert ASSETS["face_landmarker"].sha256 in message
    assert str(tmp_path / "mirror") in message
    assert "\n" not in message


def test_corrupt_file_is_refused(asset_mirror: Path, tmp_path: Path) -> None:
    copy = tmp_path / "face_landmarker.task"
    shutil.copy(asset_mirror / ASSETS["face_landmarker"].mirror_path, copy)
    with copy.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(AssetError, match="corrupt or the wrong file"):
        AssetResolver(allow_download=False).resolve("face_landmarker", explicit=copy)


def test_explicit_path_wins(asset_mirror: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lm.task"
    shutil.copy(asset_mirror / ASSETS["face_landmarker"].mirror_path, copy)
    assert AssetResolver().resolve("face_landmarker", explicit=copy) == copy


def test_failed_download_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download that cannot connect (nothing listens on this loopback port) fails cleanly."""
    import dataclasses

    from device import assets

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    broken = dataclasses.replace(ASSETS["sample_face_happy"], url="http://127.0.0.1:9/x.jpg")
    monkeypatch.setitem(assets.ASSETS, "sample_face_happy", broken)
    with pytest.raises(AssetError, match="could not download"):
        AssetResolver(cache_dir=tmp_path).resolve("sample_face_happy")
    assert list(tmp_path.iterdir()) == []  # no half-written file left behind


def test_unknown_asset_name() -> None:
    with pytest.raises(AssetError, match="unknown asset"):
        AssetResolver().resolve("nope")
