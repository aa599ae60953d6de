"""Run ``emotion-device`` as a real process with a generated config (for integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared"
SHORT_VIDEO = SHARED / "assets" / "video_rgb" / "pyfeat_single_face.mp4"
LONG_VIDEO = SHARED / "assets" / "video_rgb" / "pyfeat_WolfgangLanger_Pexels.mp4"
PREFIX = "emotion-edge"


def write_config(
    folder: Path,
    port: int,
    *,
    device_id: str = "itest",
    rgb: str | None = None,
    mqtt_extra: str = "",
    model_path: Path | None = None,
    extra: str = "",
) -> Path:
    rgb = rgb or f'type = "replay"\npath = "{SHORT_VIDEO}"\n'
    model = f'[model]\npath = "{model_path}"\n' if model_path else ""
    text = (
        f'device_id = "{device_id}"\n[rgb]\n{rgb}\n{model}'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nreconnect_min_s = 0.5\n'
        f"reconnect_max_s = 1.0\n{mqtt_extra}\n"
        "[smoothing]\nwindow_s = 1.0\nheartbeat_s = 1.0\n"
        f"{extra}"
    )
    path = folder / "device.toml"
    path.write_text(text)
    return path


def device_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        STATE_DIRECTORY=str(home / ".local/state/emotion-edge"),  # never an installed service's
        MPLCONFIGDIR=str(home.parent / "mpl"),
        EMOTION_EDGE_ASSET_MIRROR=str(SHARED / "assets"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_device(config: Path, home: Path, **env: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "device.cli", "run", "--config", str(config)],
        cwd=home,
        env=device_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_device(
    config: Path, home: Path, timeout_s: float = 90.0
) -> subprocess.CompletedProcess[str]:
    process = start_device(config, home)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"device did not finish in {timeout_s} s:\n{err}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


SPOOL = Path(".local/state/emotion-edge/summaries.sqlite3")  # label aggregates, until delivered


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
