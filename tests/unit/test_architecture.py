"""Layering rules from DESIGN.md, checked on the source: vendor imports in one adapter each."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# vendor module -> the only files allowed to import it
ALLOWED = {
    "mediapipe": {"device/features/blendshapes.py"},
    "onnxruntime": {"device/inference/classifier.py"},
    "paho": {"device/publish/mqtt.py"},
    "picamera2": {"device/sources/picamera.py"},
    "amqtt": {"device/publish/embedded_broker.py"},
    "spidev": {"device/sources/thermal/lepton/spi.py"},
    "smbus2": {"device/sources/thermal/lepton/cci.py"},
    "dlib": {"device/features/thermal_landmarks.py"},
    # OpenCV: video and webcam frames; and the face crop's one warpAffine call, which the trainer
    # and the device share (numpy took 0.27 ms per face there with cold caches, OpenCV 0.14).
    "cv2": {"device/sources/opencv.py", "device/features/crop.py"},
}


def imports_of(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def device_files() -> list[Path]:
    return sorted((ROOT / "device").rglob("*.py"))


def test_vendor_imports_only_in_their_adapter() -> None:
    offenders = []
    for path in device_files():
        rel = path.relative_to(ROOT).as_posix()
        for module, line in imports_of(path):
            if module in ALLOWED and rel not in ALLOWED[module]:
                offenders.append(f"{rel}:{line} imports {module}")
    assert offenders == []


def test_device_never_imports_trainer() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in device_files()
        for module, line in imports_of(p)
        if module == "trainer"
    ]
    assert offenders == []


def test_publish_cannot_see_frames_or_features() -> None:
    offenders = []
    for path in (ROOT / "device" / "publish").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            hidden = ("device.frames", "device.features", "device.sources")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(hidden):
                offenders.append(f"{path.name} imports {node.module}")
    assert offenders == []


def test_vendor_imports_are_lazy() -> None:
    """Adapters import vendor runtimes inside functions, so every module imports anywhere."""
    eager = []
    for path in device_files():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            eager += [f"{path.name}: {n}" for n in names if n in ALLOWED and n != "cv2"]
    assert eager == []
