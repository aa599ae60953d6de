"""The pause switch on a real device process and a real Mosquitto: the retained command and
``emotion-device pause|resume`` release and reopen the camera (the replayed video file is really
closed: /proc/<pid>/fd), nothing is computed or published meanwhile, and a pause survives a
restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from device.pause import PAUSE_FILE
from device.publish.mqtt import send_monitoring

from .broker import MosquittoBroker, Subscriber, mqtt_config
from .device_process import LONG_VIDEO, PREFIX, device_env, start_device, write_config

STATUS = f"{PREFIX}/itest/status"
EMOTION = f"{PREFIX}/itest/emotion"
LOOPING = f'type = "replay"\npath = "{LONG_VIDEO}"\nloop = true\n'


def wait_for_state(sub: Subscriber, state: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(json.loads(m.payload).get("state") == state for m in sub.messages(STATUS)[-1:]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no status with state {state!r} within {timeout_s} s")


def has_open(pid: int, path: Path) -> bool:
    """Whether the process holds ``path`` open right now (its file descriptors)."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())


def wait_for_events(sub: Subscriber, more_than: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = len(sub.messages(EMOTION))
        if count > more_than:
            return count
        time.sleep(0.1)
    raise AssertionError(f"no new label event within {timeout_s} s")


def run_cli(action: str, config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``emotion-device pause|resume --config CONFIG`` as a user runs it, in ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "device.cli", action, "--config", str(config)],
        env=device_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_retained_command_releases_and_reopens_the_camera(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto.port, rgb=LOOPING)
    home = tmp_path / "home"
    with Subscriber(mosquitto.port, [f"{PREFIX}/itest/#"]) as sub:
        process = start_device(config, home)
        try:
            before = wait_for_events(sub, 0)
            assert has_open(process.pid, LONG_VIDEO)
            send_monitoring(mqtt_config(mosquitto.port), "itest", paused=True)
            wait_for_state(sub, "paused")
            assert not has_open(process.pid, LONG_VIDEO)  # the camera is released
            assert json.loads(sub.messages(STATUS)[-1].payload)["rgb_source"] == "replay: paused"
            assert (home / ".local/state/emotion-edge" / PAUSE_FILE).is_file()
            paused_count = len(sub.messages(EMOTION))
            time.sleep(2.0)
            assert len(sub.messages(EMOTION)) == paused_count >= before  # nothing computed
            send_monitoring(mqtt_config(mosquitto.port), "itest", paused=False)
            wait_for_state(sub, "running")
            wait_for_events(sub, paused_count)
            assert has_open(process.pid, LONG_VIDEO)
            assert not (home / ".local/state/emotion-edge" / PAUSE_FILE).exists()
        finally:
            stop(process)


def test_pause_survives_a_restart_and_the_cli_resumes(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto.port, rgb=LOOPING)
    home = tmp_path / "home"
    home.mkdir()
    paused = run_cli("pause", config, home)
    assert paused.returncode == 0, paused.stderr
    assert "monitoring paused" in paused.stdout and "retained command sent" in paused.stdout
    with Subscriber(mosquitto.port, [f"{PREFIX}/itest/#"]) as sub:
        process = start_device(config, home)  # a restart while paused
        try:
            wait_for_state(sub, "paused")
            time.sleep(1.0)
            assert not has_open(process.pid, LONG_VIDEO) and sub.messages(EMOTION) == []
            resumed = run_cli("resume", config, home)
            assert resumed.returncode == 0, resumed.stderr
            wait_for_events(sub, 0)
            assert has_open(process.pid, LONG_VIDEO)
        finally:
            stop(process)


def test_pause_with_the_broker_away_sets_the_switch_and_says_so(tmp_path: Path) -> None:
    from .broker import free_port

    config = write_config(tmp_path, free_port())
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("pause", config, home)
    assert result.returncode == 69
    (line,) = result.stderr.strip().splitlines()
    assert "the switch is set on this unit" in line and "send it again" in line
    assert (home / ".local/state/emotion-edge" / PAUSE_FILE).is_file()
