"""``emotion-device``: thin commands over importable functions. Logging is set up only here."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from device import __version__
from device.argtypes import non_negative_int, positive_int
from device.config import DEFAULT_CONFIG_PATH, load_config
from device.errors import EmotionEdgeError

logger = logging.getLogger("device")

EX_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log_level", "INFO"))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except EmotionEdgeError as exc:
        print(f"emotion-device: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion-device", description=__doc__)
    parser.add_argument("--version", action="version", version=f"emotion-edge {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_run(sub)
    _add_check_config(sub)
    _add_demo(sub)
    _add_bench(sub)
    _add_bench_rounds(sub)
    _add_record(sub)
    _add_assets(sub)
    _add_classify(sub)
    _add_lepton(sub)
    _add_pause(sub)
    return parser


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the device: camera → labels → MQTT")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="TOML config file")
    p.set_defaults(handler=cmd_run)


def _add_check_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a config file; exit 78 if invalid")
    p.add_argument("config", type=Path)
    p.set_defaults(handler=cmd_check_config)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run on the sample face video and print received labels")
    p.add_argument("--video", type=Path, help="another video file instead of the sample")
    p.add_argument("--broker", help="HOST:PORT of a broker (default: embedded, loopback)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time)")
    p.set_defaults(handler=cmd_demo)


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="per-stage timings, fps, CPU and peak memory")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, help="video file (default: the sample video)")
    src.add_argument("--camera", type=int, help="OpenCV camera index")
    p.add_argument(
        "--frames", type=non_negative_int, default=0, help="frames to use (0 = whole video)"
    )
    p.add_argument("--mode", choices=["image", "video"], default="image")
    p.add_argument(
        "--model", type=Path, help="model .onnx or bundle .json (default: the built-in model)"
    )
    p.add_argument(
        "--blendshapes-only", action="store_true", help="the built-in blendshape model alone"
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--compare-modes", action="store_true", help="IMAGE vs VIDEO features")
    p.set_defaults(handler=cmd_bench)


def _add_bench_rounds(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench-rounds", help="bench several models in turn, round after round, and compare them"
    )
    p.add_argument("models", type=Path, nargs="+", help="model .onnx or bundle .json files")
    p.add_argument("--rounds", type=positive_int, default=3, help="bench runs per model")
    p.add_argument("--video", type=Path, help="video file (default: the sample video)")
    p.add_argument(
        "--frames", type=non_negative_int, default=0, help="frames per run (0 = whole video)"
    )
    p.add_argument("--mode", choices=["image", "video"], default="image")
    p.add_argument("--json", type=Path, help="also write the table and every run's figure here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_bench_rounds)


def _add_record(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "record", help="record both cameras to local files (interactive only; stores images)"
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    p.add_argument(
        "--out", type=Path, required=True, help="RGB .npz; thermal goes to NAME.thermal.npz"
    )
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--subject", default="subject", help="pseudonymous id stored with the session")
    p.set_defaults(handler=cmd_record)


def _add_assets(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("assets", help="list third-party files and where they resolve")
    p.add_argument("--config", type=Path, help="use this config's assets section")
    p.add_argument("--fetch", action="store_true", help="download what is missing")
    p.set_defaults(handler=cmd_assets)


def _add_lepton(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lepton", help="FLIR Lepton over SPI: capture, decode, bench, status")
    lep = p.add_subparsers(required=True, metavar="ACTION")
    d = lep.add_parser("decode", help="raw SPI capture → unique frames (.npz)")
    d.add_argument("capture", type=Path)
    d.add_argument("--out", type=Path, required=True, help="output .npz")
    _add_layout_args(d)
    d.set_defaults(handler=cmd_lepton_decode)
    b = lep.add_parser("bench", help="parser cost per frame and a fuzz of mutated packets")
    b.add_argument("--frames", type=Path, help="N x 120 x 160 uint16 .npy (default: asset)")
    b.add_argument("--fuzz-packets", type=int, default=1_000_000, help="mutated, per model")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", type=Path, help="also write the figures here")
    b.add_argument(
        "--pipeline", action="store_true", help="instead: thermal frames/s through the pipeline"
    )
    b.add_argument("--pipeline-frames", type=int, default=200, help="synthetic frames")
    b.add_argument("--detector", choices=["dlib_hog", "skin_box"], default="dlib_hog")
    b.set_defaults(handler=cmd_lepton_bench)
    c = lep.add_parser("capture", help="on a Pi: record raw SPI bytes for field debugging")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--seconds", type=float, default=10.0)
    c.add_argument("--device", type=Path, default=Path("/dev/spidev0.0"))
    c.add_argument("--speed-hz", type=int, default=18_000_000)
    _add_layout_args(c)
    c.set_defaults(handler=cmd_lepton_capture)
    s = lep.add_parser("status", help="on a Pi: ask the Lepton over I2C (CCI)")
    s.add_argument("--i2c-bus", type=int, default=1)
    s.set_defaults(handler=cmd_lepton_status)


def _add_layout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=int, choices=[2, 3], help="Lepton 2.x or 3.x")
    p.add_argument("--telemetry", choices=["off", "header", "footer"])


def _add_pause(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, paused, what in (
        ("pause", True, "pause monitoring: the device releases its cameras and computes nothing"),
        ("resume", False, "resume monitoring after a pause"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG_PATH,
            help="the device's TOML config: its state_dir, and its broker for the retained command",
        )
        p.set_defaults(handler=cmd_pause, paused=paused)


def cmd_pause(args: argparse.Namespace) -> int:
    """Set the pause switch in the state directory (it survives a restart) and, with a broker in
    the config, send the retained ``set/monitoring`` command that a subscriber and HA see."""
    from device.pause import PauseSwitch, default_state_dir
    from device.publish.mqtt import send_monitoring

    config = load_config(args.config)
    switch = PauseSwitch(default_state_dir(config.state_dir))
    switch.set(args.paused)
    word = "paused" if args.paused else "resumed"
    print(f"monitoring {word} ({switch.path} {'written' if args.paused else 'removed'})")
    if config.mqtt.host is not None:
        send_monitoring(config.mqtt, config.device_id, args.paused)
        print(f"retained command sent to {config.mqtt.host}:{config.mqtt.port}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: OK (device {config.device_id}, rgb source {config.rgb.type})")
    return 0


def _add_classify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classify", help="label faces in image files or folders; publishes nothing")
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--model", type=Path, help=".onnx with its manifest, or a bundle .json (default: built-in)"
    )
    p.add_argument(
        "--blendshapes-only", action="store_true", help="the built-in blendshape model, no CNN"
    )
    p.add_argument(
        "--pre-cropped",
        action="store_true",
        help="images are face crops already (like FER2013): label them even without landmarks",
    )
    p.add_argument("--min-face-confidence", type=float, default=0.5, help="face threshold")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--evaluate", action="store_true", help="folder names are true labels: print accuracy"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=cmd_classify, log_level="WARNING")


def cmd_classify(args: argparse.Namespace) -> int:
    from device.classify import ClassifyOptions, run_classify

    options = ClassifyOptions(
        paths=args.paths,
        model=args.model,
        min_face_confidence=args.min_face_confidence,
        as_json=args.json,
        evaluate=args.evaluate,
        builtin="blendshapes" if args.blendshapes_only else "fused",
        pre_cropped=args.pre_cropped,
        progress=False if args.no_progress else None,
    )
    return run_classify(options)


def cmd_run(args: argparse.Namespace) -> int:
    from device.publish.mqtt import MqttPublisher
    from device.service import DeviceService, require_broker

    config = load_config(args.config)
    setup_logging(config.logging.level)
    require_broker(config)
    service = DeviceService(config, MqttPublisher(config.mqtt, config.device_id))
    install_signals(service.stop, service.request_reload)
    stats = service.run()
    logger.info("stopped after %d frames, %d label events", stats.frames, stats.events)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from device.demo import run_demo

    return run_demo(video=args.video, broker=args.broker, speed=args.speed)


def cmd_bench(args: argparse.Namespace) -> int:
    from device.bench import BenchOptions, run_bench

    options = BenchOptions(
        video=args.video,
        camera=args.camera,
        frames=args.frames,
        mode=args.mode,
        model=args.model,
        json_path=args.json,
        compare_modes=args.compare_modes,
        builtin="blendshapes" if args.blendshapes_only else "fused",
    )
    return run_bench(options)


def cmd_bench_rounds(args: argparse.Namespace) -> int:
    from device.bench_rounds import RoundsOptions, run_bench_rounds

    bench_args = ["--frames", str(args.frames), "--mode", args.mode]
    if args.video is not None:
        bench_args += ["--video", str(args.video)]
    options = RoundsOptions(
        models=args.models,
        rounds=args.rounds,
        bench_args=bench_args,
        json_path=args.json,
        progress=not args.no_progress,
    )
    return run_bench_rounds(options)


def cmd_record(args: argparse.Namespace) -> int:
    from device.sources import create_rgb_source
    from device.sources.recording import record_cameras, refuse_unless_interactive
    from device.sources.thermal.factory import create_thermal_source

    refuse_unless_interactive()
    config = load_config(args.config)
    thermal = create_thermal_source(config.thermal.source) if config.thermal else None
    sensor = config.thermal.source.type if config.thermal else "none"
    max_frames = int(args.seconds * 30) + 1  # frames stay in memory until the file is written
    summary = record_cameras(
        create_rgb_source(config.rgb),
        thermal,
        args.out,
        args.seconds,
        max_frames,
        subject=args.subject,
        sensor=sensor,
    )
    rgb = summary.rgb
    print(f"recorded {rgb.frame_count} RGB frames ({rgb.duration_s:.1f} s) to {rgb.path}")
    if summary.thermal_path is not None:
        print(f"recorded {summary.thermal_frames} thermal frames to {summary.thermal_path}")
    print("these are images of a person: keep the files on this unit and delete them after use")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from device.assets import ASSETS, AssetResolver

    resolver = AssetResolver(allow_download=args.fetch)
    if args.config is not None:
        a = load_config(args.config).assets
        resolver = AssetResolver(a.mirror_dir, a.cache_dir, args.fetch and a.allow_download)
    failures = 0
    for name in ASSETS:
        try:
            print(f"{name}: {resolver.resolve(name)}")
        except EmotionEdgeError as exc:
            failures += 1
            print(f"{name}: MISSING ({exc})")
    return 1 if failures else 0


def cmd_lepton_decode(args: argparse.Namespace) -> int:
    from device.lepton_cli import layout_from_args, run_decode

    print(run_decode(args.capture, args.out, layout_from_args(args.model, args.telemetry)))
    return 0


def cmd_lepton_bench(args: argparse.Namespace) -> int:
    import json

    from device.lepton_cli import (
        format_bench,
        format_pipeline_bench,
        run_bench,
        run_pipeline_bench,
    )

    if args.pipeline:
        report = run_pipeline_bench(args.pipeline_frames, args.detector, args.frames)
        print("\n".join(format_pipeline_bench(report)))
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    report = run_bench(args.frames, args.fuzz_packets, args.seed)
    print("\n".join(format_bench(report)))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    failed = any(f["crashes"] or f["torn_frames"] or not f["recovered"] for f in report["fuzz"])
    return 1 if failed else 0


def cmd_lepton_capture(args: argparse.Namespace) -> int:
    from device.lepton_cli import layout_from_args, run_capture
    from device.sources.thermal.lepton.spi import SpiOptions
    from device.sources.thermal.lepton.vospi import Layout

    layout = layout_from_args(args.model, args.telemetry) or Layout()
    options = SpiOptions(device=args.device, speed_hz=args.speed_hz, layout=layout)
    written = run_capture(args.out, args.seconds, options)
    print(f"captured {written} bytes to {args.out}; decode with `emotion-device lepton decode`")
    return 0


def cmd_lepton_status(args: argparse.Namespace) -> int:
    from device.lepton_cli import run_status

    for key, value in run_status(args.i2c_bus).items():
        print(f"{key}: {value}")
    return 0


def install_signals(stop: Callable[[], None], reload: Callable[[], None]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())
    signal.signal(signal.SIGHUP, lambda *_: reload())


def setup_logging(level: str) -> None:
    under_systemd = "INVOCATION_ID" in os.environ or "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_systemd:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, force=True)
    for noisy in ("amqtt", "transitions", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
