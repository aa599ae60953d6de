"""The whole device as a process: replayed real video → MediaPipe → ONNX → real Mosquitto."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from device.publish.base import STATUS_KEYS
from device.publish.events import LABEL_EVENT_KEYS
from device.publish.reference import spec_for
from tests.unit.test_topic_reference import validate

from .broker import MosquittoBroker, Subscriber, free_port
from .conftest import AUTH_USER, BrokerFactory
from .device_process import (
    LONG_VIDEO,
    PREFIX,
    SPOOL,
    files_under,
    run_device,
    start_device,
    write_config,
)

ALLOWED_LEAVES = {"availability", "emotion", "status", "summary"}


def emotion_payloads(sub: Subscriber, device_id: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in sub.messages(f"{PREFIX}/{device_id}/emotion")]


def test_replayed_video_publishes_only_label_events(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    rgb = f'type = "replay"\npath = "{LONG_VIDEO}"\nspeed = 3.0\n'
    config = write_config(tmp_path, mosquitto.port, rgb=rgb)
    home = tmp_path / "home"
    with Subscriber(mosquitto.port, ["#"]) as sub:
        result = run_device(config, home)
        sub.wait_for_payload(f"{PREFIX}/itest/availability", b"offline")
        all_topics = {topic for topic in sub._messages}  # every topic the device wrote to
    assert result.returncode == 0, result.stderr
    assert {t.split("/")[-1] for t in all_topics} <= ALLOWED_LEAVES
    assert all(t.startswith(f"{PREFIX}/itest/") for t in all_topics)
    events = emotion_payloads(sub, "itest")
    assert len(events) >= 3
    for event in events:
        assert set(event) == LABEL_EVENT_KEYS
        assert event["device"] == "itest"
        assert event["source"] == "rgb"
    labels = [e["label"] for e in events]
    assert "happy" in labels  # she smiles broadly at the end of the clip
    availability = [m.payload for m in sub.messages(f"{PREFIX}/itest/availability")]
    assert availability[0] == b"online"
    assert availability[-1] == b"offline"
    status = json.loads(sub.messages(f"{PREFIX}/itest/status")[-1].payload)
    assert set(status) <= STATUS_KEYS
    assert status["frames_total"] > 0
    assert status["model_check"] == "ok"  # the shipped bundle's golden answers hold on this CPU
    assert status["model_kind"] == "general" and status["rgb_source"] == "replay: stopped"
    checked = 0
    for topic in all_topics:  # every message on the wire against its topic's JSON Schema
        for message in sub.messages(topic):
            validate(spec_for(topic.split("/")[-1]).schema, message.payload)
            checked += 1
    assert checked >= len(events) + 3


def test_nothing_reaches_disk(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """Only the summary spool, which holds label aggregates until the broker has them."""
    config = write_config(tmp_path, mosquitto.port)
    home = tmp_path / "home"
    result = run_device(config, home)
    assert result.returncode == 0, result.stderr
    spool = home / SPOOL
    assert files_under(home) == [spool]
    with sqlite3.connect(spool) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = db.execute("SELECT body FROM summaries").fetchall()
    assert set(tables) <= {"summaries", "sqlite_sequence"} and rows == []  # all delivered


def test_sigterm_stops_cleanly_and_leaves_offline(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    rgb = f'type = "replay"\npath = "{LONG_VIDEO}"\nloop = true\n'
    config = write_config(tmp_path, mosquitto.port, rgb=rgb)
    topic = f"{PREFIX}/itest/availability"
    with Subscriber(mosquitto.port, [f"{PREFIX}/itest/#"]) as sub:
        process = start_device(config, tmp_path / "home")
        try:
            sub.wait_for_payload(topic, b"online", timeout_s=30)
            sub.wait_for(f"{PREFIX}/itest/emotion", 1, timeout_s=30)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            process.kill()
        sub.wait_for_payload(topic, b"offline")
    with Subscriber(mosquitto.port, [topic]) as late:
        retained = late.wait_for(topic, 1)[0]
    assert retained.payload == b"offline"
    assert retained.retain


def test_killed_process_triggers_last_will(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    rgb = f'type = "replay"\npath = "{LONG_VIDEO}"\nloop = true\n'
    config = write_config(tmp_path, mosquitto.port, rgb=rgb)
    topic = f"{PREFIX}/itest/availability"
    with Subscriber(mosquitto.port, [topic]) as sub:
        process = start_device(config, tmp_path / "home")
        try:
            sub.wait_for_payload(topic, b"online", timeout_s=30)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=5)
            sub.wait_for_payload(topic, b"offline", timeout_s=5)
        finally:
            process.kill()


def test_wrong_password_is_fatal_and_clear(mosquitto_auth: MosquittoBroker, tmp_path: Path) -> None:
    extra = f'username = "{AUTH_USER}"\npassword = "not the password"\n'
    config = write_config(tmp_path, mosquitto_auth.port, mqtt_extra=extra)
    result = run_device(config, tmp_path / "home", timeout_s=60)
    assert result.returncode == 77
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("emotion-device: ")
    assert "not the password" not in result.stderr


def test_unreachable_broker_is_retried_until_it_appears(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    port = free_port()
    rgb = f'type = "replay"\npath = "{LONG_VIDEO}"\nloop = true\n'
    config = write_config(tmp_path, port, rgb=rgb)
    process = start_device(config, tmp_path / "home")
    try:
        time.sleep(4.0)  # model load + a few failed connection attempts
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        broker = broker_factory(port=port)
        topic = f"{PREFIX}/itest/availability"
        with Subscriber(broker.port, [topic]) as sub:
            sub.wait_for_payload(topic, b"online", timeout_s=15)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()


def test_systemd_notify_ready_watchdog_stopping(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    config = write_config(tmp_path, mosquitto.port)
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(sock_path))
        server.settimeout(60)
        process = start_device(
            config, tmp_path / "home", NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000"
        )
        messages = []
        try:
            while not messages or messages[-1] != "STOPPING=1":
                messages.append(server.recv(256).decode())
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()
    assert messages[0] == "READY=1"
    assert "WATCHDOG=1" in messages
    assert messages[-1] == "STOPPING=1"


@pytest.mark.parametrize(
    ("rgb", "needle"),
    [
        ('type = "replay"\npath = "/nonexistent/clip.mp4"\n', "clip.mp4"),
        ('type = "opencv"\ncamera_index = 57\n', "57"),
    ],
)
def test_unusable_source_is_one_clear_line(tmp_path: Path, rgb: str, needle: str) -> None:
    config = write_config(tmp_path, free_port(), rgb=rgb)
    result = run_device(config, tmp_path / "home", timeout_s=60)
    assert result.returncode == 69, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("emotion-device: ")
    assert needle in last
