"""The device lifecycle: open everything in order, loop at the set rate, stop in reverse."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device import __version__, sd_notify
from device.assets import AssetResolver
from device.config import DeviceConfig
from device.errors import ConfigError, SourceUnavailable
from device.features.blendshapes import BlendshapeExtractor
from device.frames import RgbFrame
from device.inference.classifier import ModelHolder
from device.inference.smoothing import LabelSmoother
from device.last_error import LastErrorHandler, attach, detach
from device.pause import PauseSwitch, default_state_dir
from device.pipeline import Pipeline, StepResult
from device.publish.base import Publisher
from device.sources import create_rgb_source
from device.sources.latest import CaptureThread, LatestFrame
from device.spool import Spool
from device.summaries import Summaries, SummarySender

if TYPE_CHECKING:
    from device.thermal_channel import ThermalChannel

logger = logging.getLogger(__name__)

STATUS_INTERVAL_S = 30.0
FRAME_WAIT_S = 1.0
PAUSE_POLL_S = 0.5  # how soon a resume (file or MQTT command) is noticed
SUMMARY_DRAIN_S = 2.0  # at the end, how long spooled summaries may take to go out


@dataclass
class RunStats:
    started_s: float = field(default_factory=time.monotonic)
    frames: int = 0
    faces: int = 0
    events: int = 0

    def as_status(self, dropped_frames: int, model: str) -> dict[str, int | float | str]:
        uptime = time.monotonic() - self.started_s
        return {
            "frames_total": self.frames,
            "faces_found": self.faces,
            "dropped_frames": dropped_frames,
            "fps": round(self.frames / uptime, 2) if uptime > 0 else 0.0,
            "uptime_s": round(uptime, 1),
            "model": model,
            "version": __version__,
        }


def asset_resolver(config: DeviceConfig) -> AssetResolver:
    assets = config.assets
    return AssetResolver(assets.mirror_dir, assets.cache_dir, assets.allow_download)


def make_smoother(config: DeviceConfig, labels: tuple[str, ...]) -> LabelSmoother:
    s = config.smoothing
    return LabelSmoother(labels, s.window_s, s.min_confidence, s.switch_margin, s.no_face_label)


class DeviceService:
    """Runs the RGB path until stop(), end of stream, or a fatal error (raised from run())."""

    def __init__(self, config: DeviceConfig, publisher: Publisher) -> None:
        self.config = config
        self.publisher = publisher
        self.stats = RunStats()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.thermal: ThermalChannel | None = None
        self.pause = PauseSwitch(default_state_dir(config.state_dir))
        self.errors = LastErrorHandler()
        self.summaries: Summaries | None = None
        self.sender: SummarySender | None = None

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Reload the model file before the next step (SIGHUP); a bad file keeps the old model."""
        self._reload.set()

    def run(self) -> RunStats:
        with ExitStack() as stack:
            attach(self.errors)
            stack.callback(detach, self.errors)
            pipeline, models = self._open_pipeline(stack)
            self.thermal = self._open_thermal(stack, models)
            camera = RgbCamera(self.config)
            stack.callback(camera.close)
            self.publisher.on_monitoring(self.pause.set)
            self.publisher.start()
            stack.callback(self._shutdown)
            self._open_summaries(stack)
            stack.callback(self._publish_status, camera, models, "stopped")
            sd_notify.notify("READY=1")
            logger.info(
                "running: %s model, %s mode", models.current.name, self.config.features.running_mode
            )
            self._loop(pipeline, models, camera)
        return self.stats

    def _open_summaries(self, stack: ExitStack) -> None:
        """The spool and its sender; at the end the partial period is spooled and what the
        broker takes in a moment is delivered (runs before the publisher stops)."""
        if not self.config.summaries.enabled:
            return
        spool = Spool(self.pause.path.parent, self.config.summaries.max_spooled)
        stack.callback(spool.close)
        self.summaries = Summaries(self.config.summaries.period_s, spool)
        self.sender = SummarySender(spool, self.publisher)
        stack.callback(self.sender.drain, SUMMARY_DRAIN_S)
        stack.callback(self.summaries.close)

    def _open_thermal(self, stack: ExitStack, models: ModelHolder) -> ThermalChannel | None:
        if self.config.thermal is None:
            return None
        from device.thermal_channel import ThermalChannel

        def smoother(labels: tuple[str, ...]) -> LabelSmoother:
            return make_smoother(self.config, labels)

        channel = ThermalChannel(
            self.config, asset_resolver(self.config), smoother, models.current.labels
        )
        channel.start(stack)
        logger.info("thermal: %s", channel.status()["thermal"])
        return channel

    def _open_pipeline(self, stack: ExitStack) -> tuple[Pipeline, ModelHolder]:
        landmarker = asset_resolver(self.config).resolve(
            "face_landmarker", self.config.features.landmarker_path
        )
        models = ModelHolder(self.config.model.path, self.config.model.builtin)
        f = self.config.features
        extractor = stack.enter_context(
            BlendshapeExtractor(landmarker, f.running_mode, f.min_face_confidence)
        )
        smoother = make_smoother(self.config, models.current.labels)
        pipeline = Pipeline(
            extractor,
            models.current,
            smoother,
            device_id=self.config.device_id,
            heartbeat_s=self.config.smoothing.heartbeat_s,
        )
        return pipeline, models

    def _loop(self, pipeline: Pipeline, models: ModelHolder, camera: RgbCamera) -> None:
        period_s = 1.0 / self.config.loop.rate_hz
        next_due = time.monotonic()
        watchdog = _Ticker(sd_notify.watchdog_interval_s())
        status = _Ticker(STATUS_INTERVAL_S)
        while not self._stop.is_set():
            if self.pause.paused:
                self._stay_paused(pipeline, models, camera, watchdog)
                continue
            capture = camera.open()
            frame = camera.holder.take(FRAME_WAIT_S)
            if frame is None:
                if capture.ended:
                    break
                continue
            self._apply_reload(pipeline, models)
            result = pipeline.step(frame)
            self._handle(result)
            self._summarise(
                "rgb", result.smoothed.label, result.smoothed.confidence, result.face_found
            )
            self._thermal_step(frame.ts_s, result, models.current.name)
            if watchdog.due():
                sd_notify.notify("WATCHDOG=1")
            if status.due():
                self._publish_status(camera, models)
            next_due = _sleep_until(next_due + period_s, self._stop)
        if camera.error is not None:
            raise camera.error

    def _stay_paused(
        self, pipeline: Pipeline, models: ModelHolder, camera: RgbCamera, watchdog: _Ticker
    ) -> None:
        """Release the cameras and compute nothing until the switch is off or stop()."""
        camera.close()
        if self.thermal is not None:
            self.thermal.pause()
        if self.summaries is not None:
            self.summaries.close()  # the period so far; a paused one has nothing to say
        logger.info("monitoring paused: cameras released (%s)", self.pause.path)
        self._publish_status(camera, models, "paused")
        while self.pause.paused and not self._stop.wait(PAUSE_POLL_S):
            if self.sender is not None:
                self.sender.pump()  # what was spooled before still goes out
            if watchdog.due():
                sd_notify.notify("WATCHDOG=1")
        if self._stop.is_set():
            return
        pipeline.smoother = make_smoother(self.config, models.current.labels)  # no stale label
        if self.thermal is not None:
            self.thermal.resume()
        logger.info("monitoring resumed")
        self._publish_status(camera, models, "running")

    def _handle(self, result: StepResult) -> None:
        self.stats.frames += 1
        self.stats.faces += result.face_found
        if result.event is not None:
            self.stats.events += 1
            self.publisher.publish(result.event)
        if self.publisher.fatal_error is not None:
            raise self.publisher.fatal_error

    def _thermal_step(self, ts_s: float, result: StepResult, model: str) -> None:
        if self.thermal is None:
            return
        self.thermal.observe_rgb(result.face)  # landmarks for the registration, memory only
        for event in (self.thermal.poll(), self.thermal.fuse(ts_s, result.probs, model)):
            if event is not None:
                self.stats.events += 1
                self.publisher.publish(event)
                self._summarise(event.source, event.label, event.confidence, True)

    def _summarise(self, source: str, label: str, confidence: float, face: bool) -> None:
        """One observation for the summaries; closes a due period and moves the spool on."""
        if self.summaries is None or self.sender is None:
            return
        self.summaries.observe(source, label, confidence, face)
        self.summaries.tick()
        self.sender.pump()

    def _apply_reload(self, pipeline: Pipeline, models: ModelHolder) -> None:
        if not self._reload.is_set():
            return
        self._reload.clear()
        if models.reload() and models.current.labels != pipeline.classifier.labels:
            pipeline.smoother = make_smoother(self.config, models.current.labels)
        pipeline.classifier = models.current

    def _publish_status(
        self, camera: RgbCamera, models: ModelHolder, state: str = "running"
    ) -> None:
        status = self.stats.as_status(camera.dropped, models.current.name)
        status["model_check"] = models.current.check
        status["model_kind"] = model_kind(models.current)
        status["rgb_source"] = f"{self.config.rgb.type}: {camera.health(state)}"
        status |= self.errors.status()
        if self.sender is not None:
            status["summaries_spooled"] = len(self.sender.spool)
            status["summaries_dropped"] = self.sender.spool.dropped
        status |= {"published": self.publisher.published, "state": state}
        status["dropped_offline"] = self.publisher.dropped_offline
        if self.thermal is not None:
            status |= self.thermal.status()
        self.publisher.publish_status(status)

    def _shutdown(self) -> None:
        sd_notify.notify("STOPPING=1")
        self.publisher.stop()


def model_kind(model: object) -> str:
    """``personal`` for a model whose manifest names the person it was trained for."""
    manifest = getattr(model, "manifest", None)
    person = getattr(manifest, "training_data", {}).get("person_id") if manifest else None
    return "personal" if person else "general"


class RgbCamera:
    """The RGB capture thread: opened when the loop needs frames, closed (the camera released)
    while monitoring is paused and at the end."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.holder: LatestFrame[RgbFrame] = LatestFrame()
        self._capture: CaptureThread[RgbFrame] | None = None
        self._dropped_before = 0
        self._error: SourceUnavailable | None = None

    def open(self) -> CaptureThread[RgbFrame]:
        if self._capture is None:
            self.holder = LatestFrame()
            self._capture = CaptureThread(create_rgb_source(self.config.rgb), self.holder)
            self._capture.start()
        return self._capture

    def close(self) -> None:
        if self._capture is None:
            return
        self._capture.stop()
        self._error = self._error or self._capture.error
        self._dropped_before += self.holder.dropped
        self._capture = None

    @property
    def error(self) -> SourceUnavailable | None:
        """Why reading stopped early (now or before a pause), or None."""
        return self._error or (self._capture.error if self._capture else None)

    def health(self, state: str) -> str:
        """In a few words: ok, paused, stopped, or the error that ended reading."""
        if self.error is not None:
            return f"error: {type(self.error).__name__}"
        return "ok" if state == "running" else state

    @property
    def dropped(self) -> int:
        return self._dropped_before + (self.holder.dropped if self._capture else 0)


class _Ticker:
    """True from due() at most once per interval; never when interval is None."""

    def __init__(self, interval_s: float | None) -> None:
        self.interval_s = interval_s
        self._next = time.monotonic() + (interval_s or 0.0)

    def due(self) -> bool:
        if self.interval_s is None or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.interval_s
        return True


def _sleep_until(due_s: float, stop: threading.Event) -> float:
    """Wait for the next tick; if we are late, start the schedule again from now."""
    delay = due_s - time.monotonic()
    if delay <= 0:
        return time.monotonic()
    stop.wait(delay)
    return due_s


def require_broker(config: DeviceConfig) -> None:
    if not config.mqtt.host:
        raise ConfigError(
            "mqtt.host is not set; give the broker's address (or try `emotion-device demo`)"
        )
