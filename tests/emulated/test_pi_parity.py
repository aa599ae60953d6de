"""The device's models give the host's answers on an emulated Raspberry Pi (aarch64, qemu-user).

For each board x OS (pi4 = Cortex-A72, pi5 = Cortex-A76; Debian bookworm / Python 3.11 and trixie /
Python 3.13), ``deploy/pi-emulated.sh`` runs ``probe.py`` in the emulated userland, and the same
probe runs on the host; the outputs must agree: every argmax, and probabilities within 1e-4 (the
blendshape model, the stacker on fixed inputs, the CNN, and the whole fused answer), the aligned
crop pixel for pixel, the bundle's golden self-check, and where MediaPipe runs there, the 52
blendshape scores of the sample video's frames within 5e-4 of the host's run of the same
mediapipe version (measured 2.2e-4 to 2.7e-4) with the same label for every frame.

Opt out with ``-m "not emulated"``. Needs qemu-user-static; the first run builds the emulated
userlands (about a minute per OS, cached, see the script); a warm run of this module takes a few
minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.assets import AssetResolver
from device.errors import AssetError
from device.features.crop import CROP_POINTS
from device.features.schema import FEATURE_NAMES, RGB_FEATURES

pytestmark = pytest.mark.emulated

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "pi-emulated.sh"
PROBE = Path(__file__).resolve().parent / "probe.py"
QEMU = "qemu-aarch64-static"
FER_ENV = "EMOTION_EDGE_FER2013"
FER_DEFAULT = REPO.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
TOLERANCE = 1e-4  # max |dp| of the models on the same inputs
# MediaPipe's float inference is not bit-identical across x86 and ARM: measured max |d| over 6
# frames x 52 scores, emulated ARM vs the x86 host, same version: 2.2e-4 (1.2.2), 2.7e-4 (0.10.18);
# 0.10.18 vs 1.2.2 on the same x86 host: 1.6e-4. Issue 15 asked for 1e-4, which MediaPipe's own
# kernels do not give; the labels the frames get are held to equality (test_frames_end_to_end).
LANDMARKER_TOLERANCE = 5e-4
N_CROPS = N_ROWS = 64
SEED = 2013
FRAME_INDICES = (0, 94, 188, 282, 376, 470)  # 6 frames spread over the 472 of the sample video
PROBE_TIMEOUT_S = 900
# (board, os) -> the mediapipe version the script installs there (None: no mediapipe runs there)
COMBOS: dict[tuple[str, str], str | None] = {
    ("pi4", "bookworm"): "0.10.18",
    ("pi4", "trixie"): None,
    ("pi5", "bookworm"): "1.2.2",
    ("pi5", "trixie"): "1.2.2",
}
IDS = [f"{board}-{os_}" for board, os_ in COMBOS]
HOST_MEDIAPIPE = "1.2.2"  # the .venv's (deploy/dev.sh on x86)


def pi_cache() -> Path:
    """The script's cache folder (same default): the host-side mediapipe 0.10.18 goes there too."""
    if "EMOTION_EDGE_PI_CACHE" in os.environ:
        return Path(os.environ["EMOTION_EDGE_PI_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emotion-edge" / "pi-emulated"


@pytest.fixture(scope="module", autouse=True)
def qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        pytest.skip(f"{QEMU} is not installed (apt-get install qemu-user-static)")
    return path


@pytest.fixture(scope="module")
def fer_npz() -> Path:
    path = Path(os.environ.get(FER_ENV) or FER_DEFAULT)
    if not path.is_file():
        pytest.skip(f"FER2013 not found: set {FER_ENV} (looked at {path})")
    return path


@pytest.fixture(scope="module")
def inputs(
    fer_npz: Path,
    landmarker_path: Path,
    asset_mirror_env: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The probe's inputs, made once on the host: FER crops, feature rows, frames, eye corners."""
    from device.features.blendshapes import BlendshapeExtractor, FaceFeatures

    with np.load(fer_npz) as data:
        private = np.flatnonzero(data["usage"] == "PrivateTest")
        picked = np.sort(np.random.default_rng(SEED).choice(private, N_CROPS, replace=False))
        crops = data["images"][picked]

    frames = sample_frames(asset_mirror_env)
    stills = still_faces(asset_mirror_env / "faces_rgb")
    with BlendshapeExtractor(landmarker_path, "image") as extractor:
        frame_faces = [extractor.extract(f) for f in frames]
        still_results = [extractor.extract(s) for s in stills]
    if not all(isinstance(f, FaceFeatures) for f in frame_faces):
        pytest.fail("the host landmarker found no face in a sample video frame")
    faces = [f for f in [*frame_faces, *still_results] if isinstance(f, FaceFeatures)]
    points = np.stack([f.points_xy(CROP_POINTS) for f in faces[: len(frames)]])

    real = np.stack([f.rgb_vector() for f in faces]).astype(np.float32)
    rng = np.random.default_rng(SEED)
    a, b = rng.integers(0, len(real), (2, N_ROWS - len(real)))
    t = rng.random((N_ROWS - len(real), 1), dtype=np.float32)
    mixed = real[a] * (1 - t) + real[b] * t  # points between real faces: plausible feature rows
    rows = np.full((N_ROWS, len(FEATURE_NAMES)), np.nan, np.float32)
    rows[:, : len(RGB_FEATURES)] = np.concatenate([real, mixed])

    stack_blend, stack_cnn = fixed_stacker_inputs(rng)
    path = tmp_path_factory.mktemp("pi-parity") / "inputs.npz"
    np.savez(
        path,
        crops=crops,
        rows=rows,
        stack_blend=stack_blend,
        stack_cnn=stack_cnn,
        frames=np.stack(frames),
        crop_points=points.astype(np.float32),
    )
    return path


def sample_frames(mirror: Path) -> list[np.ndarray]:
    import cv2

    try:
        video = AssetResolver(mirror_dir=mirror, allow_download=False).resolve("sample_video")
    except AssetError as exc:
        pytest.skip(f"sample video not available: {exc}")
    capture = cv2.VideoCapture(str(video))
    frames, index = [], 0
    try:
        while len(frames) < len(FRAME_INDICES):
            ok, bgr = capture.read()
            if not ok:
                break
            if index in FRAME_INDICES:
                frames.append(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            index += 1
    finally:
        capture.release()
    assert len(frames) == len(FRAME_INDICES), f"{video} has only {index} frames"
    return frames


def still_faces(folder: Path) -> list[np.ndarray]:
    import cv2

    images = []
    for path in sorted(folder.glob("*")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.suffix in {".jpg", ".png"} else None
        if bgr is not None:
            images.append(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return images


def fixed_stacker_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Probability pairs for the stacker alone: peaked and flat ones, from a fixed seed."""

    def probs(n: int) -> np.ndarray:
        logits = rng.normal(0.0, rng.uniform(0.3, 4.0, (n, 1)), (n, 7))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    return probs(N_ROWS), probs(N_ROWS)


def run_probe(command: list[str], out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the probe; its outputs, with the wall time and the command's stderr tail."""
    t0 = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env, check=False
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        return {"error": f"exit {done.returncode}: {tail}", "wall_s": wall}
    with np.load(out) as data:
        result: dict[str, Any] = {key: data[key] for key in data.files}
    result["meta"] = json.loads(str(result["meta"]))
    result["wall_s"] = wall
    return result


@pytest.fixture(scope="module")
def host_mediapipe_01018(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """mediapipe 0.10.18 for the host (x86-64, --no-deps) in the script's cache, to compare the
    Pi 4's 0.10.18 with the same version (0.10.18 and 1.2.2 differ by ~2e-4 on any machine)."""
    target = pi_cache() / "host" / f"{sys.implementation.cache_tag}-mediapipe-0.10.18"
    if (target / "mediapipe").is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--target", str(partial), "mediapipe==0.10.18",
         "attrs"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    partial.rename(target)
    return target


@pytest.fixture(scope="module")
def host_runs(
    inputs: Path, host_mediapipe_01018: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The probe on the host, with the venv's mediapipe and (when it installs) with 0.10.18."""
    folder = tmp_path_factory.mktemp("host")
    runs = {}
    versions = {HOST_MEDIAPIPE: None, "0.10.18": host_mediapipe_01018}
    for version, extra_path in versions.items():
        if version != HOST_MEDIAPIPE and extra_path is None:
            continue
        env = dict(os.environ)
        if extra_path is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(extra_path), str(REPO)])
        out = folder / f"host-{version}.npz"
        cmd = [sys.executable, str(PROBE), str(inputs), str(out), "--landmarker"]
        runs[version] = run_probe(cmd, out, env)
        assert "error" not in runs[version], (
            f"host probe (mediapipe {version}) failed: {runs[version]}"
        )
        found = runs[version]["meta"]["versions"]["mediapipe"]
        assert found == version, f"host probe ran mediapipe {found}, not {version}"
    return runs


@pytest.fixture(scope="module")
def report(pytestconfig: pytest.Config) -> Iterator[dict[str, dict[str, Any]]]:
    """Per combo: times and the parity numbers; printed at the end of the module."""
    lines: dict[str, dict[str, Any]] = {}
    yield lines
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return
    terminal.write_line("")
    terminal.write_line("emulated Pi parity (max |dp| / argmax agreement; host = x86 .venv):")
    for combo, numbers in lines.items():
        terminal.write_line(f"  {combo}: " + "; ".join(f"{k} {v}" for k, v in numbers.items()))


class Emulated:
    """The probe's outputs per emulated board x OS: each combo runs once, when a test first asks."""

    def __init__(self, inputs: Path, folder: Path, report: dict[str, dict[str, Any]]) -> None:
        self.inputs, self.folder, self.report = inputs, folder, report
        self.runs: dict[str, dict[str, Any]] = {}

    def run(self, board: str, os_: str) -> dict[str, Any]:
        key = f"{board}-{os_}"
        if key not in self.runs:
            out = self.folder / f"{key}.npz"
            cmd = ["bash", str(SCRIPT), "--board", board, "--os", os_, "--", "python", str(PROBE),
                   str(self.inputs), str(out)]  # fmt: skip
            if COMBOS[(board, os_)] is not None:
                cmd.append("--landmarker")
            self.runs[key] = run_probe(cmd, out)
            entry = self.report.setdefault(key, {})
            entry["probe"] = f"{self.runs[key]['wall_s']:.0f} s"
            if "error" in self.runs[key]:
                entry["error"] = self.runs[key]["error"].splitlines()[-1]
            else:
                times = self.runs[key]["meta"]["times"]
                entry["stages"] = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in times.items())
        run = self.runs[key]
        if "error" in run:
            pytest.fail(f"the probe failed on {key}: {run['error']}")
        return run


@pytest.fixture(scope="module")
def emulator(
    inputs: Path, tmp_path_factory: pytest.TempPathFactory, report: dict[str, dict[str, Any]]
) -> Emulated:
    return Emulated(inputs, tmp_path_factory.mktemp("emulated"), report)


@pytest.fixture(params=list(COMBOS), ids=IDS)
def combo_run(
    request: pytest.FixtureRequest, emulator: Emulated, host_runs: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    board, os_ = request.param
    run = emulator.run(board, os_)
    host = host_runs[HOST_MEDIAPIPE]
    assert run["model_name"] == host["model_name"], "the bundle changed between the two runs"
    key = f"{board}-{os_}"
    return key, run, host, emulator.report.setdefault(key, {})


def compare(name: str, pi: np.ndarray, host: np.ndarray, entry: dict[str, Any]) -> None:
    diff = float(np.max(np.abs(pi.astype(np.float64) - host)))
    agree = float(np.mean(pi.argmax(axis=1) == host.argmax(axis=1)))
    entry[name] = f"{diff:.2e}/{agree:.0%}"
    assert agree == 1.0 and diff <= TOLERANCE, (
        f"{name}: argmax agrees on {agree:.1%} of {len(pi)}, max |dp| {diff:.3g} "
        f"(tolerance {TOLERANCE})"
    )


def test_golden_self_check_passes(combo_run: tuple[str, dict, dict, dict]) -> None:
    """The bundle's golden answers, written on x86, hold on this board: the device keeps the
    fused model instead of falling back."""
    _, run, _, entry = combo_run
    check = run["meta"]["self_check"]
    entry["golden"] = f"{max(check['diffs'].values()):.1e}"
    assert check["failed"] == [] and max(check["diffs"].values()) < 1e-4


def test_blendshape_model(combo_run: tuple[str, dict, dict, dict]) -> None:
    _, run, host, entry = combo_run
    compare("blendshapes", run["blend"], host["blend"], entry)


def test_stacker(combo_run: tuple[str, dict, dict, dict]) -> None:
    _, run, host, entry = combo_run
    compare("stacker", run["stacked"], host["stacked"], entry)


def test_cnn(combo_run: tuple[str, dict, dict, dict]) -> None:
    """An int8 (QDQ) CNN fails here: onnxruntime on x86 fuses it into int8 kernels whose answers
    differ from the unfused reference, which the emulated ARM CPUs give exactly."""
    _, run, host, entry = combo_run
    compare("cnn", run["cnn"], host["cnn"], entry)


def test_fused(combo_run: tuple[str, dict, dict, dict]) -> None:
    _, run, host, entry = combo_run
    compare("fused", run["fused"], host["fused"], entry)


def test_crop_pixels(combo_run: tuple[str, dict, dict, dict]) -> None:
    """The aligned crop (OpenCV's 8-bit warpAffine) is the same pixels on the Pi as on x86."""
    _, run, host, entry = combo_run
    diff = int(np.max(np.abs(run["crops_out"].astype(int) - host["crops_out"])))
    entry["crop"] = f"max {diff} grey levels"
    assert diff == 0, f"the aligned crop differs from the host's by up to {diff} grey levels"


def test_landmarker(
    combo_run: tuple[str, dict, dict, dict], host_runs: dict[str, dict[str, Any]]
) -> None:
    key, run, _, entry = combo_run
    board, os_ = key.split("-")
    version = COMBOS[(board, os_)]
    if version is None:
        pytest.skip(f"no mediapipe runs on {key} (0.10.x: no cp313 wheel; 1.x: needs LSE atomics)")
    assert run["meta"]["versions"]["mediapipe"] == version
    if version not in host_runs:
        pytest.skip(f"mediapipe {version} could not be installed on the host to compare with")
    pi, host = run["blendshapes"], host_runs[version]["blendshapes"]
    assert not np.isnan(pi).any(), f"{key}: the landmarker found no face in some frames"
    diff = float(np.max(np.abs(pi - host)))
    entry[f"landmarker {version}"] = f"{diff:.2e}"
    if version != HOST_MEDIAPIPE:  # for the record: how far the old version is from the host's
        other = float(np.max(np.abs(pi - host_runs[HOST_MEDIAPIPE]["blendshapes"])))
        entry[f"vs host {HOST_MEDIAPIPE}"] = f"{other:.2e}"
    assert diff <= LANDMARKER_TOLERANCE, (
        f"{key}: blendshapes differ from the host's by up to {diff:.3g}"
    )


def test_frames_end_to_end(
    combo_run: tuple[str, dict, dict, dict], host_runs: dict[str, dict[str, Any]]
) -> None:
    """Frame -> landmarker -> fused bundle on the Pi: the same label as the host's run of the same
    mediapipe version (the probabilities carry the landmarker's float differences, so only the
    labels are held to equality; the largest |dp| is reported)."""
    key, run, _, entry = combo_run
    board, os_ = key.split("-")
    version = COMBOS[(board, os_)]
    if version is None or version not in host_runs:
        pytest.skip(f"no landmarker to compare on {key}")
    pi, host = run["frame_probs"], host_runs[version]["frame_probs"]
    diff = float(np.max(np.abs(pi - host)))
    agree = float(np.mean(pi.argmax(axis=1) == host.argmax(axis=1)))
    entry["frames end-to-end"] = f"{diff:.2e}/{agree:.0%}"
    assert agree == 1.0, f"{key}: the label differs from the host's on {1 - agree:.0%} of frames"
