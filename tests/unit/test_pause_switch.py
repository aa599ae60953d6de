"""The pause switch file and where it lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from device import pause
from device.errors import ConfigError
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
    monkeypatch.setattr(pause, "SERVICE_STATE_DIR", tmp_path / "not-installed")
    assert default_state_dir() == tmp_path / ".local" / "state" / "emotion-edge"
    (tmp_path / "service").mkdir()
    monkeypatch.setattr(pause, "SERVICE_STATE_DIR", tmp_path / "service")
    assert default_state_dir() == tmp_path / "service"  # a shell reaches the installed service
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/emotion-edge:/var/lib/other")
    assert default_state_dir() == Path("/var/lib/emotion-edge")
    assert default_state_dir(tmp_path / "mine") == tmp_path / "mine"


def test_a_switch_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write the pause switch .* set state_dir") as err:
        PauseSwitch(blocker / "state").set(True)  # a file where the folder should be
    assert "\n" not in str(err.value)
