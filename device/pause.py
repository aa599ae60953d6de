"""The pause (privacy) switch: while it is on, the device opens no camera and computes nothing.

It lives as one file in the state directory (``monitoring-off``), so a pause survives a restart;
``emotion-device pause|resume``, the retained MQTT command ``<prefix>/<device_id>/set/monitoring``
(``on`` / ``off``) and, later, Home Assistant's switch all set it here.
"""

from __future__ import annotations

import os
from pathlib import Path

PAUSE_FILE = "monitoring-off"
STATE_ENV = "STATE_DIRECTORY"  # systemd sets it from StateDirectory=


def default_state_dir(configured: Path | None = None) -> Path:
    """The config's ``state_dir``, else systemd's ``$STATE_DIRECTORY``, else
    ``~/.local/state/emotion-edge``."""
    if configured is not None:
        return configured
    systemd = os.environ.get(STATE_ENV)
    if systemd:
        return Path(systemd.split(":")[0])
    return Path.home() / ".local" / "state" / "emotion-edge"


class PauseSwitch:
    """Reads and sets the pause file; nothing is written while monitoring runs."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / PAUSE_FILE

    @property
    def paused(self) -> bool:
        return self.path.exists()

    def set(self, paused: bool) -> None:
        if paused:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path.write_text("monitoring is paused: no camera is opened\n")
        else:
            self.path.unlink(missing_ok=True)


def parse_command(payload: bytes) -> bool | None:
    """``on`` → False (not paused), ``off`` → True (paused); anything else None."""
    text = payload.decode("utf-8", errors="replace").strip().lower()
    return {"on": False, "off": True}.get(text)
