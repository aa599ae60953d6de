"""The pause (privacy) switch: while it is on, the device opens no camera and computes nothing.

It lives as one file in the state directory (``monitoring-off``), so a pause survives a restart;
``emotion-device pause|resume``, the retained MQTT command ``<prefix>/<device_id>/set/monitoring``
(``on`` / ``off``) and, later, Home Assistant's switch all set it here.
"""

from __future__ import annotations

import os
from pathlib import Path

from device.errors import ConfigError

PAUSE_FILE = "monitoring-off"
STATE_ENV = "STATE_DIRECTORY"  # systemd sets it from StateDirectory=
SERVICE_STATE_DIR = Path("/var/lib/emotion-edge")  # StateDirectory=emotion-edge of the unit


def default_state_dir(configured: Path | None = None) -> Path:
    """The config's ``state_dir``, else systemd's ``$STATE_DIRECTORY``, else the installed
    service's folder when it exists (so ``emotion-device pause`` in a shell reaches the service),
    else ``~/.local/state/emotion-edge``."""
    if configured is not None:
        return configured
    systemd = os.environ.get(STATE_ENV)
    if systemd:
        return Path(systemd.split(":")[0])
    if SERVICE_STATE_DIR.is_dir():
        return SERVICE_STATE_DIR
    return Path.home() / ".local" / "state" / "emotion-edge"


class PauseSwitch:
    """Reads and sets the pause file; nothing is written while monitoring runs."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / PAUSE_FILE

    @property
    def paused(self) -> bool:
        return self.path.exists()

    def set(self, paused: bool) -> None:
        try:
            if paused:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.path.write_text("monitoring is paused: no camera is opened\n")
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot {'write' if paused else 'remove'} the pause switch {self.path} "
                f"({exc.strerror}): run as the service's user or root, or set state_dir"
            ) from exc


def parse_command(payload: bytes) -> bool | None:
    """``on`` → False (not paused), ``off`` → True (paused); anything else None."""
    text = payload.decode("utf-8", errors="replace").strip().lower()
    return {"on": False, "off": True}.get(text)
