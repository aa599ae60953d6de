"""systemd's notify protocol without dependencies (no-op when not run under systemd)."""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send e.g. ``READY=1`` or ``WATCHDOG=1``; False when NOTIFY_SOCKET is not set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        logger.warning("sd_notify %s failed: %s", message.split("=", maxsplit=1)[0], exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec when systemd asked for pings (for this process), else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
