"""``emotion-device bench``: per-stage timings of the real device step, beside the bare landmarker.

Each frame goes through a bare MediaPipe landmarker and through the full device step (landmarker,
classifier, smoothing, publish) in the same run, alternating which goes first, so machine noise
hits both alike. Frames are streamed, never all held in memory.

With the fused bundle (the default model), every other pair of frames runs the blendshape-only
model's device step instead, so both paths are timed side by side in the same run, each right
after its landmarker as on the device; the report gives the fused path's stages (crop, CNN,
blendshape model, stacker) and its extra cost over the blendshape-only path: the built-in
blendshape model that ``model.builtin = "blendshapes"`` selects (named in the report), which is
not always the blendshape model inside the bundle.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.assets import AssetResolver
from device.errors import EmotionEdgeError
from device.features.blendshapes import BlendshapeExtractor, FaceFeatures, RunningMode
from device.frames import RgbFrame
from device.inference.bundle import FusedModel
from device.inference.classifier import ModelHolder, OnnxClassifier, builtin_model
from device.inference.manifest import manifest_path_for, read_manifest
from device.inference.smoothing import LabelSmoother
from device.pipeline import FaceModel, Pipeline
from device.publish.memory import MemoryPublisher

WARM_UP_FRAMES = 30  # device-only frames before timing starts


class NothingToTime(EmotionEdgeError):
    """The source ran out before any frame could be timed: a usage problem (--frames, video)."""

    exit_code = 2


@dataclass(frozen=True)
class BenchOptions:
    video: Path | None = None
    camera: int | None = None
    frames: int = 0
    mode: RunningMode = "image"
    model: Path | None = None
    json_path: Path | None = None
    compare_modes: bool = False
    builtin: str = "fused"


class Samples:
    """Seconds per stage, the stages in a fixed order (the report's order)."""

    def __init__(self, *stages: str) -> None:
        self.seconds: dict[str, list[float]] = {stage: [] for stage in stages}

    def add(self, **seconds: float) -> None:
        for stage, value in seconds.items():
            self.seconds[stage].append(value)

    def stats_ms(self) -> dict[str, dict[str, float]]:
        return {stage: _stats_ms(values) for stage, values in self.seconds.items()}

    def count(self, stage: str) -> int:
        return len(self.seconds[stage])


DEVICE_STAGES = (
    "decode",
    "bare_landmarker",
    "landmarker",
    "classifier",
    "smoothing",
    "publish",
    "device_step",
    "classifier_smoothing",
)
# The fused path's own stages, and the blendshape-only classifier stage beside it.
FUSED_STAGES = ("crop", "cnn", "blendshapes", "fusion", "fused_classifier")
BLEND_ONLY = "blendshape_only_classifier"


def run_bench(options: BenchOptions) -> int:
    resolver = AssetResolver()
    landmarker = resolver.resolve("face_landmarker")
    source_name = _source_name(options, resolver)
    if options.compare_modes:
        report = compare_modes(_frames(options, resolver), landmarker, options.model)
    else:
        report = bench_device(_frames(options, resolver), landmarker, options)
    report["source"] = source_name
    print_report(report)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {options.json_path}")
    return 0


def bench_device(
    frames: Iterator[tuple[RgbFrame, float]], landmarker: Path, options: BenchOptions
) -> dict[str, object]:
    models = ModelHolder(options.model, options.builtin)
    classifier = models.current
    publisher = MemoryPublisher()
    publisher.start()
    samples, fused = Samples(*DEVICE_STAGES), Samples(*FUSED_STAGES, BLEND_ONLY)
    faces = 0
    try:
        with BlendshapeExtractor(landmarker, options.mode) as extractor:
            pipeline = _pipeline(extractor, classifier)
            device_rss_mb = _device_only_warm_up(frames, pipeline, WARM_UP_FRAMES)
            baseline_model = blendshape_only(classifier)
            baseline = None if baseline_model is None else _pipeline(extractor, baseline_model)
            with BlendshapeExtractor(landmarker, options.mode) as bare:
                last: RgbFrame | None = None
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for last, decode_s in frames:
                    samples.add(decode=decode_s)
                    if baseline is not None and (last.index // 2) % 2 == 1:
                        result = baseline.step(last)
                        if result.face_found:
                            fused.add(**{BLEND_ONLY: result.times.classifier_s})
                        continue
                    found = _measure_frame(last, bare, pipeline, publisher, samples)
                    faces += found
                    if found and isinstance(classifier, FusedModel):
                        _add_fused(fused, classifier, samples.seconds["classifier"][-1])
                cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
                if not samples.count("device_step"):
                    raise NothingToTime(
                        f"no frame was left to time after the {WARM_UP_FRAMES} warm-up frames: "
                        f"give --frames 0 (the whole video) or more than {WARM_UP_FRAMES}, "
                        "or a longer video"
                    )
                warm_ms = _warm_classifier_ms(bare, classifier, last) if last else None
    finally:
        publisher.stop()  # also when there was nothing to time
    report = _summary(samples, faces, cpu_s, wall_s, mode=options.mode, model=classifier.name)
    report["classifier_warm_cache_ms"] = warm_ms
    if baseline_model is not None:
        report["fused_path"] = _fused_report(fused, baseline_model.name)
    report["peak_rss_mb"] = device_rss_mb
    report["peak_rss_mb_with_bare_landmarker"] = round(peak_rss_mb(), 1)
    return report


def blendshape_only(classifier: OnnxClassifier | FusedModel) -> OnnxClassifier | None:
    """What a fused bundle is measured against: the device's built-in blendshape-only model.

    That is the model a user gets with ``model.builtin = "blendshapes"``; the bundle's own
    blendshape model may be another (``build-fused --blendshape-model``). None for a plain model.
    """
    if not isinstance(classifier, FusedModel):
        return None
    builtin = builtin_model("blendshapes")
    if read_manifest(manifest_path_for(builtin)).name == classifier.blendshapes.name:
        return classifier.blendshapes  # the same model file: its session serves both paths
    return OnnxClassifier(builtin)


def _pipeline(extractor: BlendshapeExtractor, model: FaceModel) -> Pipeline:
    smoother = LabelSmoother(model.labels, 2.0, 0.35, 0.1)
    return Pipeline(extractor, model, smoother, device_id="bench", heartbeat_s=1.0)


def _add_fused(fused: Samples, model: FusedModel, classifier_s: float) -> None:
    times = model.times
    fused.add(
        crop=times.crop_s,
        cnn=times.cnn_s,
        blendshapes=times.blendshapes_s,
        fusion=times.fusion_s,
        fused_classifier=classifier_s,
    )


def _fused_report(fused: Samples, baseline_name: str) -> dict[str, object]:
    """Fused stages, and its classifier stage against the blendshape-only one (faces only)."""
    stages = fused.stats_ms()
    with_cnn, alone = stages["fused_classifier"], stages[BLEND_ONLY]
    measured = fused.count("crop") > 0 and fused.count(BLEND_ONLY) > 0  # faces on both paths
    return {
        "stages_ms": stages,
        "extra_cost_ms": round(with_cnn["mean_ms"] - alone["mean_ms"], 4) if measured else None,
        "extra_cost_median_ms": (
            round(with_cnn["median_ms"] - alone["median_ms"], 4) if measured else None
        ),
        "frames": {"fused": fused.count("crop"), "blendshape_only": fused.count(BLEND_ONLY)},
        "blendshape_only_model": baseline_name,
    }


def _device_only_warm_up(
    frames: Iterator[tuple[RgbFrame, float]], pipeline: Pipeline, count: int
) -> float:
    """Run the first frames through the device step alone; the peak RSS of a real device.

    The bench's second (bare) landmarker is opened only afterwards, so this figure does not
    include it. These frames are not timed: they also warm the caches and the landmarker.
    """
    for frame, _ in itertools.islice(frames, count):
        pipeline.step(frame)
    return round(peak_rss_mb(), 1)


def _warm_classifier_ms(
    extractor: BlendshapeExtractor, classifier: FaceModel, frame: RgbFrame
) -> float | None:
    """The classifier alone, called back to back on one face: its cost with warm CPU caches.

    In the device step it runs right after the landmarker has evicted the caches; the gap
    between the two figures is memory latency, not arithmetic.
    """
    face = extractor.extract(frame.image, int(frame.ts_s * 1000) + 1)
    if not isinstance(face, FaceFeatures):
        return None
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        classifier.predict_face(face, frame.image)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000.0, 4)


def _measure_frame(
    frame: RgbFrame,
    bare: BlendshapeExtractor,
    pipeline: Pipeline,
    publisher: MemoryPublisher,
    samples: Samples,
) -> int:
    ts_ms = int(frame.ts_s * 1000)
    bare_first = frame.index % 2 == 0
    if bare_first:
        samples.add(bare_landmarker=_timed_extract(bare, frame.image, ts_ms))
    t0 = time.perf_counter()
    result = pipeline.step(frame)
    t1 = time.perf_counter()
    if result.event is not None:
        publisher.publish(result.event)
    t2 = time.perf_counter()
    if not bare_first:
        samples.add(bare_landmarker=_timed_extract(bare, frame.image, ts_ms))
    times = result.times
    samples.add(
        landmarker=times.landmarker_s,
        classifier=times.classifier_s,
        smoothing=times.smoothing_s,
        classifier_smoothing=times.classifier_s + times.smoothing_s,
        publish=t2 - t1,
        device_step=t2 - t0,
    )
    return int(result.face_found)


def _timed_extract(extractor: BlendshapeExtractor, image: npt.NDArray[np.uint8], ts: int) -> float:
    t0 = time.perf_counter()
    extractor.extract(image, ts)
    return time.perf_counter() - t0


def _summary(
    samples: Samples, faces: int, cpu_s: float, wall_s: float, *, mode: str, model: str
) -> dict[str, object]:
    stages = samples.stats_ms()
    n = samples.count("device_step")
    bare_mean = stages["bare_landmarker"]["mean_ms"]
    step_mean = stages["device_step"]["mean_ms"]
    return {
        "frames": n,
        "faces_found": faces,
        "running_mode": mode,
        "model": model,
        "stages_ms": stages,
        "device_step_over_bare_landmarker": round(step_mean / bare_mean, 4) if bare_mean else None,
        "device_fps": round(1000.0 / step_mean, 1) if step_mean else None,
        "cpu_percent_of_one_core": round(100.0 * cpu_s / wall_s, 1) if wall_s else None,
        "cpu_count": os.cpu_count(),
        "machine": os.uname().machine,
    }


def _stats_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean_ms": 0.0, "median_ms": 0.0, "p95_ms": 0.0}
    ms = sorted(v * 1000.0 for v in values)
    return {
        "mean_ms": round(statistics.fmean(ms), 4),
        "median_ms": round(statistics.median(ms), 4),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 4),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compare_modes(
    frames: Iterator[tuple[RgbFrame, float]], landmarker: Path, model: Path | None
) -> dict[str, object]:
    """IMAGE vs VIDEO mode on the same frames: speed, and how far the features drift apart."""
    classifier = ModelHolder(model).current
    diffs: list[float] = []
    agree = both = 0
    times: dict[str, list[float]] = {"image": [], "video": []}
    found = {"image": 0, "video": 0}
    jitter: dict[str, list[float]] = {"image": [], "video": []}
    previous: dict[str, npt.NDArray[np.float32]] = {}
    with (
        BlendshapeExtractor(landmarker, "image") as image_mode,
        BlendshapeExtractor(landmarker, "video") as video_mode,
    ):
        for frame, _ in frames:
            results = {}
            for mode, ex in (("image", image_mode), ("video", video_mode)):
                t0 = time.perf_counter()
                results[mode] = ex.extract(frame.image, int(frame.ts_s * 1000))
                times[mode].append(time.perf_counter() - t0)
                found[mode] += isinstance(results[mode], FaceFeatures)
                _track_jitter(results[mode], previous, jitter[mode], mode)
            a, b = results["image"], results["video"]
            if isinstance(a, FaceFeatures) and isinstance(b, FaceFeatures):
                both += 1
                diffs.append(float(np.abs(a.blendshapes - b.blendshapes).max()))
                pa = classifier.predict_face(a, frame.image)
                pb = classifier.predict_face(b, frame.image)
                agree += int(np.argmax(pa) == np.argmax(pb))
    return {
        "frames": len(times["image"]),
        "faces_found": found,
        "ms_per_frame": {m: _stats_ms(v) for m, v in times.items()},
        "max_abs_blendshape_diff": _diff_stats(diffs),
        "frame_to_frame_mean_abs_change": {m: _diff_stats(v) for m, v in jitter.items()},
        "classifier_label_agreement": round(agree / both, 4) if both else None,
    }


def _track_jitter(
    face: object,
    previous: dict[str, npt.NDArray[np.float32]],
    changes: list[float],
    mode: str,
) -> None:
    """How much one mode's blendshapes move between consecutive frames (temporal noise)."""
    if not isinstance(face, FaceFeatures):
        previous.pop(mode, None)
        return
    if mode in previous:
        changes.append(float(np.abs(face.blendshapes - previous[mode]).mean()))
    previous[mode] = face.blendshapes


def _diff_stats(diffs: list[float]) -> dict[str, float]:
    if not diffs:
        return {}
    arr = np.array(diffs)
    return {
        "median": round(float(np.median(arr)), 4),
        "p95": round(float(np.percentile(arr, 95)), 4),
        "max": round(float(arr.max()), 4),
    }


def print_report(report: dict[str, object]) -> None:
    stages = report.get("stages_ms")
    if isinstance(stages, dict):
        print(f"{'stage':<22}{'mean ms':>10}{'median ms':>11}{'p95 ms':>10}")
        for name, st in stages.items():
            print(f"{name:<22}{st['mean_ms']:>10.3f}{st['median_ms']:>11.3f}{st['p95_ms']:>10.3f}")
        print()
    for key, value in report.items():
        if key != "stages_ms":
            print(f"{key}: {value}")
    sys.stdout.flush()


def _source_name(options: BenchOptions, resolver: AssetResolver) -> str:
    if options.camera is not None:
        return f"camera {options.camera}"
    return str(options.video or resolver.resolve("sample_video"))


def _frames(options: BenchOptions, resolver: AssetResolver) -> Iterator[tuple[RgbFrame, float]]:
    """(frame, seconds spent decoding it), up to options.frames (0 = all)."""
    if options.camera is not None:
        return _camera_frames(options.camera, options.frames or 300)
    path = options.video or resolver.resolve("sample_video")
    return _video_frames(path, options.frames)


def _video_frames(path: Path, limit: int) -> Iterator[tuple[RgbFrame, float]]:
    from device.sources.opencv import read_video_frames

    t0 = time.perf_counter()
    for index, ts_s, rgb in read_video_frames(path):
        decode_s = time.perf_counter() - t0
        yield RgbFrame(rgb, ts_s, index), decode_s
        if limit and index + 1 >= limit:
            return
        t0 = time.perf_counter()


def _camera_frames(camera: int, limit: int) -> Iterator[tuple[RgbFrame, float]]:
    from device.config import OpencvConfig
    from device.sources.opencv import OpencvSource

    source = OpencvSource(OpencvConfig(type="opencv", camera_index=camera))
    source.open()
    try:
        for _ in range(limit):
            t0 = time.perf_counter()
            frame = source.read()
            if frame is None:
                return
            yield frame, time.perf_counter() - t0
    finally:
        source.close()
