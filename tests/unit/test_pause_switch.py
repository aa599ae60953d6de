"""The pause switch file and where it lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.pause import PAUSE_FILE, PauseSwitch, default_state_dir


def test_switch_is_one_file_that_exists_only_while_paused(tmp_path: Path) -> None:
    switch = PauseSwitch(tmp_path / "state")
    assert not switch.paused and not (tmp_path / "state").exists()  # nothing written to run
    switch.set(True)
    assert switch.paused and switch.path == tmp_path / "state" / PAUSE_FILE
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0  # owner-only folder
    switch.set(True)  # twice is fine
    switch.set(False)
    assert not switch.paused and not switch.path.exists()
    switch.set(False)


def test_state_dir_from_config_then_systemd_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert default_state_dir() == tmp_path / ".local" / "state" / "emotion-edge"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/emotion-edge:/var/lib/other")
    assert default_state_dir() == Path("/var/lib/emotion-edge")
    assert default_state_dir(tmp_path / "mine") == tmp_path / "mine"
