"""``emotion-device lepton …``: decode raw captures, capture on a Pi, bench and fuzz the parser.

Thin functions that return data and write files; ``device/cli.py`` only parses arguments.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import ConfigError, SourceUnavailable
from device.sources.thermal.lepton.capture import CaptureWriter, ReplayTransport, capture
from device.sources.thermal.lepton.cci import open_cci
from device.sources.thermal.lepton.spi import SpiOptions, SpiTransport
from device.sources.thermal.lepton.stream import (
    MUTATIONS,
    REPEATS_PER_UNIQUE_FRAME,
    StreamSpec,
    discard_packet,
    frame_segments,
    frame_words,
    lepton2_frames,
    mutate,
    vospi_stream,
)
from device.sources.thermal.lepton.vospi import (
    PACKET_BYTES,
    Layout,
    TelemetryMode,
    VospiFrame,
    VospiParser,
)

Words = npt.NDArray[np.uint16]
SAMPLE_FRAMES = Path("thermal_raw") / "cptv" / "v2_first20_frames_uint16.npy"
READ_PACKETS = 399  # one read at spidev.bufsiz=65536
CORRUPT_PROBABILITY = 1 / 3  # per segment (Lepton 3) or frame (Lepton 2) run
MUTATION_SIZES = (1, 2, 4, 16, 64)  # packets touched by one mutation


# ------------------------------------------------------------------------------------ decode
@dataclass
class DecodeResult:
    layout: Layout
    frames: list[VospiFrame] = field(default_factory=list)
    ts_s: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def decode_capture(capture: Path, layout: Layout | None = None) -> DecodeResult:
    """All unique frames of a capture file (ours, or a plain raw dump) and the parser's counts."""
    if not capture.is_file():
        raise SourceUnavailable(f"capture file {capture} does not exist")
    transport = ReplayTransport(capture, layout=layout)
    transport.open()
    assert transport.layout is not None  # open() sets it or raises
    result = DecodeResult(layout=transport.layout)
    parser, cs_resyncs = VospiParser(transport.layout), 0
    try:
        while (chunk := transport.read()) is not None:
            if chunk.resync:
                parser.reset()
                cs_resyncs += 1
            for frame in parser.feed(chunk.data):
                result.frames.append(frame)
                result.ts_s.append(chunk.ts_s)
    finally:
        transport.close()
    result.counts = {**parser.stats.as_dict(), "cs_resyncs": cs_resyncs}
    return result


def write_frames_npz(result: DecodeResult, out: Path) -> None:
    """frames (N x H x W uint16, sensor order), packet_index, ts_s, ffc, telemetry, count_*."""
    lay = result.layout
    frames = [f.pixels for f in result.frames]
    arrays: dict[str, Any] = {
        "frames": np.stack(frames) if frames else np.zeros((0, lay.height, lay.width), np.uint16),
        "packet_index": np.array([f.packet_index for f in result.frames], dtype=np.int64),
        "stream_offset": np.array([f.stream_offset for f in result.frames], dtype=np.int64),
        "ts_s": np.array(result.ts_s, dtype=np.float64),
        "ffc": np.array([_ffc(f) for f in result.frames], dtype=bool),
        "model": np.array(lay.model),
        "telemetry_mode": np.array(lay.telemetry),
        **{f"count_{k}": np.array(v, dtype=np.int64) for k, v in result.counts.items()},
    }
    if lay.telemetry_packets and result.frames:
        arrays["telemetry"] = np.stack(
            [f.telemetry for f in result.frames if f.telemetry is not None]
        )
    try:
        np.savez_compressed(out, **arrays)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from exc


def _ffc(frame: VospiFrame) -> bool:
    telemetry = frame.decoded_telemetry()
    return telemetry is not None and telemetry.ffc_in_progress


# ---------------------------------------------------------------------------- sample frames
def load_sample_frames(path: Path | None = None) -> Words:
    """The 20 real Lepton 3 frames from the asset mirror, or synthetic 14-bit frames."""
    candidates = [path] if path else []
    mirror = os.environ.get("EMOTION_EDGE_ASSET_MIRROR")
    if mirror:
        candidates.append(Path(mirror) / SAMPLE_FRAMES)
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return np.asarray(np.load(candidate), dtype=np.uint16)
    if path is not None:
        raise ConfigError(f"frames file {path} does not exist")
    rng = np.random.default_rng(0)
    return rng.integers(2600, 3200, size=(20, 120, 160), dtype=np.uint16)


# ------------------------------------------------------------------------------ speed bench
def bench_parser(frames: Words, model: int, unique: int = 200, repeats: int = 3) -> dict[str, Any]:
    """Parser cost on a clean stream fed in spidev-sized reads; best of ``repeats`` runs."""
    layout = Layout(3 if model == 3 else 2)
    source = frames if model == 3 else lepton2_frames(frames)
    data = vospi_stream((source[i % len(source)] for i in range(unique)), StreamSpec(layout))
    size = READ_PACKETS * PACKET_BYTES
    best = float("inf")
    for _ in range(repeats):
        parser = VospiParser(layout)
        start = time.perf_counter()
        count = sum(len(parser.feed(data[i : i + size])) for i in range(0, len(data), size))
        best = min(best, time.perf_counter() - start)
    return {
        "model": model,
        "unique_frames": count,
        "packets": len(data) // PACKET_BYTES,
        "ms_per_unique_frame": 1e3 * best / count,
        "ms_per_vospi_frame": 1e3 * best / (count * REPEATS_PER_UNIQUE_FRAME),
        "us_per_packet": 1e6 * best / (len(data) // PACKET_BYTES),
    }


# ------------------------------------------------------------------------------------- fuzz
@dataclass
class FuzzReport:
    packets: int = 0
    mutated_packets: int = 0
    mutations: Counter[str] = field(default_factory=Counter)
    frames_out: int = 0
    exact_frames: int = 0
    torn_frames: int = 0  # rows from another frame or position: must stay 0
    undetected_corrupt: int = 0  # a mutated packet passed CRC-16 (p = 1/65536 per packet)
    crashes: int = 0
    first_crash: str = ""
    recovered: bool = False
    counts: dict[str, int] = field(default_factory=dict)


class _FrameChecker:
    """Classifies parser output against the unique frames the stream was made from."""

    def __init__(self, frames: Words) -> None:
        self.whole = {f.tobytes() for f in frames}
        self.rows: dict[bytes, set[tuple[int, int]]] = {}
        for fi, frame in enumerate(frames):
            for ri, row in enumerate(frame.reshape(-1, 80)):
                self.rows.setdefault(row.tobytes(), set()).add((fi, ri))

    def check(self, frame: VospiFrame, report: FuzzReport) -> None:
        report.frames_out += 1
        if frame.pixels.tobytes() in self.whole:
            report.exact_frames += 1
            return
        matches = [self.rows.get(r.tobytes(), set()) for r in frame.pixels.reshape(-1, 80)]
        votes = Counter(fi for ri, m in enumerate(matches) for fi, rj in m if rj == ri)
        best = votes.most_common(1)[0][0] if votes else -1
        foreign = any(m and (best, ri) not in m for ri, m in enumerate(matches))
        if foreign or best < 0:
            report.torn_frames += 1
        else:
            report.undetected_corrupt += 1


def _segment_runs(frames: Words, layout: Layout, idle: int) -> list[list[list[bytes]]]:
    """Per unique frame: the runs (one per segment or repeated frame) a Lepton sends."""
    tail = [discard_packet() for _ in range(idle)]
    runs = []
    for pixels in frames:
        words = frame_words(pixels, layout, None)
        groups = []
        for repeat in range(REPEATS_PER_UNIQUE_FRAME):
            valid = repeat == 0 or layout.model == 2
            groups += [seg + tail for seg in frame_segments(words, layout, valid)]
        runs.append(groups)
    return runs


def _fuzzed_bytes(
    runs: list[list[list[bytes]]], target: int, rng: random.Random, report: FuzzReport
) -> Iterator[bytes]:
    """Runs of the stream, a third of them corrupted, until ``target`` packets were mutated."""
    while report.mutated_packets < target:
        for run in runs[rng.randrange(len(runs))]:
            report.packets += len(run)
            yield b"".join(_maybe_mutate(run, rng, report))


def _maybe_mutate(run: list[bytes], rng: random.Random, report: FuzzReport) -> list[bytes]:
    if rng.random() >= CORRUPT_PROBABILITY:
        return run
    op, count = rng.choice(MUTATIONS), min(rng.choice(MUTATION_SIZES), len(run))
    report.mutations[op] += 1
    report.mutated_packets += count
    return mutate(run, op, count, rng)


def fuzz_parser(
    frames: Words, model: int = 3, target: int = 1_000_000, seed: int = 0
) -> FuzzReport:
    """Feed a corrupted stream in random-sized reads; then a clean tail must come out whole."""
    layout, rng, report = Layout(3 if model == 3 else 2), random.Random(seed), FuzzReport()
    source = frames if model == 3 else lepton2_frames(frames)
    body, tail = source[:-3], source[-3:]
    checker, parser = _FrameChecker(source), VospiParser(layout)
    pending = bytearray()
    for piece in _fuzzed_bytes(_segment_runs(body, layout, 4), target, rng, report):
        pending += piece
        if len(pending) >= rng.randint(1, 2 * READ_PACKETS * PACKET_BYTES):
            _feed_checked(parser, bytes(pending), checker, report)
            pending.clear()
    _feed_checked(parser, bytes(pending), checker, report)
    before = report.exact_frames
    _feed_checked(parser, vospi_stream(tail, StreamSpec(layout)), checker, report)
    report.recovered = report.exact_frames - before >= len(tail) - 1
    report.counts = parser.stats.as_dict()
    return report


def _feed_checked(
    parser: VospiParser, data: bytes, checker: _FrameChecker, report: FuzzReport
) -> None:
    try:
        frames = parser.feed(data)
    except Exception as exc:  # the fuzz counts crashes instead of stopping at the first
        report.crashes += 1
        report.first_crash = report.first_crash or f"{type(exc).__name__}: {exc}"
        return
    for frame in frames:
        checker.check(frame, report)


# ------------------------------------------------------------------------- command bodies
def layout_from_args(model: int | None, telemetry: str | None) -> Layout | None:
    """None = take it from the capture (header, else detected from the packets)."""
    if model is None and telemetry is None:
        return None
    modes: dict[str | None, TelemetryMode] = {
        None: "off",
        "off": "off",
        "header": "header",
        "footer": "footer",
    }
    if telemetry not in modes:
        raise ConfigError(f"--telemetry must be off, header or footer, not {telemetry!r}")
    return Layout(2 if model == 2 else 3, modes[telemetry])


def run_decode(capture: Path, out: Path, layout: Layout | None = None) -> str:
    result = decode_capture(capture, layout)
    write_frames_npz(result, out)
    c = result.counts
    return (
        f"{len(result.frames)} unique frames ({result.layout.width}x{result.layout.height}, "
        f"Lepton {result.layout.model}, telemetry {result.layout.telemetry}) → {out}; "
        f"packets {c['packets']}, discarded {c['discarded']}, CRC failures {c['crc_errors']}, "
        f"resyncs {c['resyncs']} (+{c['cs_resyncs']} /CS), realignments {c['realignments']}"
    )


def run_bench(frames_path: Path | None, fuzz_packets: int, seed: int) -> dict[str, Any]:
    """Speed of the parser on both models, then the fuzz (``fuzz_packets`` each); the figures."""
    frames = load_sample_frames(frames_path)
    report: dict[str, Any] = {"speed": [bench_parser(frames, m) for m in (3, 2)], "fuzz": []}
    for model in (3, 2):
        start = time.perf_counter()
        fuzz = fuzz_parser(frames, model, fuzz_packets, seed)
        summary = {k: v for k, v in vars(fuzz).items() if k != "mutations"}
        summary |= {"model": model, "seconds": time.perf_counter() - start}
        report["fuzz"].append(summary | {"mutations": dict(fuzz.mutations)})
    return report


def format_bench(report: dict[str, Any]) -> list[str]:
    lines = []
    for s in report["speed"]:
        lines.append(
            f"parser, Lepton {s['model']}: {s['ms_per_unique_frame']:.3f} ms per unique frame "
            f"({s['ms_per_vospi_frame']:.3f} ms per VoSPI frame, {s['us_per_packet']:.2f} µs "
            f"per packet; {s['unique_frames']} frames, {s['packets']} packets)"
        )
    for f in report["fuzz"]:
        lines.append(
            f"fuzz, Lepton {f['model']}: {f['mutated_packets']} mutated of {f['packets']} "
            f"packets, {f['crashes']} crashes, {f['torn_frames']} torn frames, "
            f"{f['undetected_corrupt']} CRC-undetected, {f['exact_frames']}/{f['frames_out']} "
            f"frames exact, recovered {f['recovered']} ({f['seconds']:.1f} s)"
        )
    return lines


def run_capture(out: Path, seconds: float, options: SpiOptions) -> int:
    """On a Pi: raw SPI bytes to ``out`` for ``seconds`` (decode it anywhere)."""
    transport = SpiTransport(options)
    with CaptureWriter(
        out,
        options.layout or Layout(),
        {"device": str(options.device), "speed_hz": options.speed_hz},
    ) as writer:
        return capture(transport, writer, seconds)


def run_status(i2c_bus: int) -> dict[str, Any]:
    cci = open_cci(i2c_bus)
    try:
        status = cci.status()
        radiometry = cci.radiometry()
        return {
            "booted": status.booted,
            "busy": status.busy,
            "error_code": status.error_code,
            "telemetry": cci.telemetry() or "off",
            "tlinear": radiometry.tlinear,
            "resolution_k": radiometry.resolution_k,
            "ffc_busy": cci.ffc_busy(),
        }
    finally:
        cci.close()


# ------------------------------------------------------------------------- pipeline bench
LEPTON_FACES = "thermal/lepton_chips_NONCOMMERCIAL/*.jpeg"  # 160 x 120 Lepton 3.5 images
TFW_FACES = "thermal/tfw/*.png"  # 464 x 348 FLIR T540 images
STAGES = ("parse", "detect", "rois", "features")


@dataclass
class PipelineRun:
    """Per-stage seconds and the ROI method of every frame of one input."""

    name: str
    frames: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    methods: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        per_frame = {k: 1e3 * v / max(self.frames, 1) for k, v in self.seconds.items()}
        total = sum(per_frame.values())
        return {
            "name": self.name,
            "frames": self.frames,
            "ms_per_frame": per_frame,
            "total_ms": total,
            "fps": 1e3 / total if total > 0 else float("inf"),
            "methods": dict(self.methods),
        }


def _finder(detector: str) -> Any:
    from device.assets import AssetResolver
    from device.config import ThermalConfig, ThermalSyntheticConfig
    from device.thermal_channel import face_finder

    mirror = os.environ.get("EMOTION_EDGE_ASSET_MIRROR")
    resolver = AssetResolver(Path(mirror) if mirror else None, allow_download=False)
    config = ThermalConfig(source=ThermalSyntheticConfig(type="synthetic"), detector=detector)
    return face_finder(config, resolver)


def _parse_stream(frames: Words, layout: Layout, run: PipelineRun) -> list[npt.NDArray[np.float32]]:
    """The frames as a VoSPI stream through the parser (spidev-sized reads) and to °C."""
    from device.sources.thermal.lepton.vospi import Radiometry

    data = vospi_stream(iter(frames), StreamSpec(layout))
    size, radiometry = READ_PACKETS * PACKET_BYTES, Radiometry(tlinear=True)
    start = time.perf_counter()
    parser = VospiParser(layout)
    out = [
        radiometry.to_celsius(f.pixels)
        for i in range(0, len(data), size)
        for f in parser.feed(data[i : i + size])
    ]
    run.seconds["parse"] += time.perf_counter() - start
    return out


def _run_stages(finder: Any, celsius: list[npt.NDArray[np.float32]], run: PipelineRun) -> None:
    """Detector → ROIs → baseline deltas and features, timed per stage."""
    from device.features.baseline import BaselineSettings, PersonBaseline, feature_values
    from device.features.thermal_roi import extract_thermal_rois

    baseline = PersonBaseline(BaselineSettings(mode="rolling", window_s=300.0, calibration_s=60.0))
    for index, frame in enumerate(celsius):
        t0 = time.perf_counter()
        boxes = finder(frame)
        t1 = time.perf_counter()
        run.frames += 1
        run.seconds["detect"] += t1 - t0
        if not boxes:
            run.methods["no_face"] += 1
            continue
        rois = extract_thermal_rois(frame, face_box=boxes[0])
        t2 = time.perf_counter()
        means = rois.means()
        feature_values(means, baseline.update(index / 8.7, means))
        run.seconds["rois"] += t2 - t1
        run.seconds["features"] += time.perf_counter() - t2
        run.methods[f"roi_{rois.method}"] += 1


def _synthetic_run(finder: Any, count: int) -> PipelineRun:
    from device.sources.thermal.recording import to_units
    from device.sources.thermal.synthetic import SyntheticThermalFace

    face = SyntheticThermalFace(seed=0)
    frames = np.stack([to_units(face.render(i), "centikelvin") for i in range(count)])
    run = PipelineRun("synthetic radiometric faces, Lepton 3 VoSPI stream")
    _run_stages(finder, _parse_stream(frames, Layout(3), run), run)
    return run


def _real_stream_run(finder: Any, frames_path: Path | None) -> PipelineRun:
    """The 20 real Lepton 3 frames (raw counts, a night scene: no face) through everything."""
    frames = load_sample_frames(frames_path)
    run = PipelineRun("real Lepton 3 frames (CPTV, raw counts), VoSPI stream")
    celsius = _parse_stream(frames, Layout(3), run)
    _run_stages(finder, [(c - c.min()) * 0.01 + 20.0 for c in celsius], run)
    return run


def real_face_frames(assets: Path, pattern: str) -> list[npt.NDArray[np.float32]]:
    """Real thermal face images (8-bit renderings) as pseudo-°C (20 + grey / 255 x 20)."""
    from device.sources.opencv import read_image_rgb

    images = []
    for path in sorted(assets.glob(pattern)):
        rgb = read_image_rgb(path)
        if rgb is not None:  # grey palettes: R = G = B
            images.append(20.0 + rgb.mean(axis=2, dtype=np.float32) / 255.0 * 20.0)
    return images


def _real_faces_run(finder: Any, assets: Path, pattern: str, repeats: int) -> PipelineRun | None:
    """Each image ``repeats`` times; Lepton-sized ones go through a VoSPI stream first."""
    from device.sources.thermal.recording import to_units

    images = real_face_frames(assets, pattern)
    if not images:
        return None
    run = PipelineRun(f"{pattern} ({len(images)} images x {repeats})")
    frames = images * repeats
    if images[0].shape == (120, 160):
        stored = np.stack([to_units(f, "centikelvin") for f in frames])
        frames = _parse_stream(stored, Layout(3), run)
    _run_stages(finder, frames, run)
    for key in run.methods:
        run.methods[key] //= repeats
    return run


def run_pipeline_bench(frame_count: int, detector: str, frames_path: Path | None) -> dict[str, Any]:
    """Thermal frames per second the pipeline sustains on this machine, per stage."""
    finder = _finder(detector)
    runs = [_synthetic_run(finder, frame_count), _real_stream_run(finder, frames_path)]
    mirror = os.environ.get("EMOTION_EDGE_ASSET_MIRROR")
    for pattern in (LEPTON_FACES, TFW_FACES) if mirror else ():
        faces = _real_faces_run(finder, Path(mirror or "."), pattern, repeats=5)
        runs += [faces] if faces is not None else []
    return {"detector": detector, "runs": [r.summary() for r in runs]}


def format_pipeline_bench(report: dict[str, Any]) -> list[str]:
    lines = [f"thermal pipeline, detector {report['detector']} (one core, this machine):"]
    for run in report["runs"]:
        stages = ", ".join(f"{k} {v:.2f} ms" for k, v in run["ms_per_frame"].items())
        methods = ", ".join(f"{k} {v}" for k, v in sorted(run["methods"].items()))
        lines.append(
            f"  {run['name']}: {run['frames']} frames; {stages}; total {run['total_ms']:.2f} ms "
            f"= {run['fps']:.0f} frames/s; ROI methods: {methods}"
        )
    return lines
