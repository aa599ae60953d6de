"""The device with a thermal camera beside the RGB one: thermal and fused labels, real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.publish.base import STATUS_KEYS
from device.publish.events import LABEL_EVENT_KEYS
from trainer.thermal import main as thermal_main

from ..unit.test_thermal_model import write_sessions
from .broker import MosquittoBroker, Subscriber
from .device_process import LONG_VIDEO, PREFIX, SPOOL, files_under, run_device, write_config

RGB = f'type = "replay"\npath = "{LONG_VIDEO}"\nspeed = 2.0\n'


def thermal_section(model: Path | None) -> str:
    text = '[thermal]\ndetector = "skin_box"\n'
    if model is not None:
        text += f'model_path = "{model}"\n'
    return text + '[thermal.source]\ntype = "synthetic"\nfps_hz = 8.7\n'


@pytest.fixture(scope="module")
def thermal_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("thermal-model")
    assert thermal_main(["train", str(write_sessions(root / "s")), "--out", str(root)]) == 0
    return root / "thermal_rois.onnx"


def run(mosquitto: MosquittoBroker, tmp_path: Path, extra: str) -> tuple[list[dict], dict]:
    config = write_config(tmp_path, mosquitto.port, rgb=RGB, extra=extra)
    with Subscriber(mosquitto.port, ["#"]) as sub:
        result = run_device(config, tmp_path / "home")
        sub.wait_for_payload(f"{PREFIX}/itest/availability", b"offline")
    assert result.returncode == 0, result.stderr
    events = [json.loads(m.payload) for m in sub.messages(f"{PREFIX}/itest/emotion")]
    status = json.loads(sub.messages(f"{PREFIX}/itest/status")[-1].payload)
    assert all(set(e) == LABEL_EVENT_KEYS for e in events)
    assert set(status) <= STATUS_KEYS
    home = tmp_path / "home"
    assert files_under(home) == [home / SPOOL]  # no thermal frame or temperature on disk
    return events, status


def test_thermal_and_fused_labels_are_published(
    mosquitto: MosquittoBroker, tmp_path: Path, thermal_model: Path
) -> None:
    events, status = run(mosquitto, tmp_path, thermal_section(thermal_model))
    sources = {e["source"] for e in events}
    assert sources == {"rgb", "thermal", "fused"}
    thermal = [e for e in events if e["source"] == "thermal"]
    assert {e["model"] for e in thermal} == {thermal[0]["model"]}
    assert thermal[0]["model"].startswith("thermal_rois@")
    fused = [e for e in events if e["source"] == "fused"]
    assert all("+thermal_rois@" in e["model"] for e in fused)
    assert all(e["label"] in {"fear", "happy", "neutral", "no_face"} for e in fused)
    assert status["thermal"] == "thermal and fused labels"
    placed = status["thermal_roi_detector_box"] + status["thermal_roi_registered"]
    assert status["thermal_frames"] > 20 and placed > 20


def test_without_a_thermal_model_the_device_says_rgb_only(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    events, status = run(mosquitto, tmp_path, thermal_section(None))
    assert {e["source"] for e in events} == {"rgb"}
    assert status["thermal"] == "no thermal model: labels from RGB only"
    assert status["thermal_faces"] > 0
