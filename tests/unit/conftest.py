from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture
def asset_mirror(monkeypatch: pytest.MonkeyPatch) -> Path:
    mirror = SHARED / "assets"
    if not mirror.is_dir():
        pytest.fail(f"the asset mirror {mirror} is missing: check out ../shared beside the repo")
    monkeypatch.setenv("EMOTION_EDGE_ASSET_MIRROR", str(mirror))
    return mirror
