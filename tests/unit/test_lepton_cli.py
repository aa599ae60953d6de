"""``emotion-device lepton decode|bench`` end to end: replay captures through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.cli import main
from device.errors import ConfigError
from device.lepton_cli import bench_parser, fuzz_parser, layout_from_args
from device.sources.thermal.lepton.capture import CaptureWriter
from device.sources.thermal.lepton.stream import (
    StreamSpec,
    discard_packet,
    lepton2_frames,
    timed_chunks,
    vospi_packets,
    vospi_stream,
)
from device.sources.thermal.lepton.transport import Chunk
from device.sources.thermal.lepton.vospi import PACKET_BYTES, Layout

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
FRAMES_NPY = ASSETS / "thermal_raw" / "cptv" / "v2_first20_frames_uint16.npy"
PER_UNIQUE = 12 * 64  # Lepton 3 packets per unique frame, with repeats and discards


@pytest.fixture(scope="module")
def frames3() -> np.ndarray:
    if not FRAMES_NPY.is_file():
        pytest.fail(f"real Lepton frames missing: {FRAMES_NPY} (check out ../shared)")
    return np.load(FRAMES_NPY)


def corrupted_capture(frames: np.ndarray, path: Path) -> None:
    """Frames 0-7 with: a bad CRC in 1, a lost packet in 3, 2000 stuck discards before 4, lost
    bytes in 5, and a /CS re-sync in the middle of 6; read in 399-packet chunks like spidev."""
    packets = list(vospi_packets(frames[:8], StreamSpec(Layout(3))))
    packets[4 * PER_UNIQUE : 4 * PER_UNIQUE] = [discard_packet(0xFF)] * 2000
    del packets[3 * PER_UNIQUE + 100]
    bad = bytearray(packets[PER_UNIQUE + 30])
    bad[80] ^= 0x10
    packets[PER_UNIQUE + 30] = bytes(bad)
    shift = 2000 - 1  # where original packet i >= 4 * PER_UNIQUE now sits: i + shift
    offsets = np.cumsum([0] + [len(p) for p in packets])
    cut = offsets[5 * PER_UNIQUE + shift + 10]
    resync_at = offsets[6 * PER_UNIQUE + shift + 50]
    resume = offsets[7 * PER_UNIQUE + shift] - 3 * PACKET_BYTES  # lands in discards before 7
    data = b"".join(packets)
    data = data[:cut] + data[cut + 77 :]
    with CaptureWriter(path, Layout(3), {"device": "test"}) as writer:
        for ts, chunk in timed_chunks(data[: resync_at - 77], 399, 18000.0):
            writer.write(Chunk(chunk, ts))
        writer.write(Chunk(b"", ts + 0.2, resync=True))
        for t2, chunk in timed_chunks(data[resume - 77 :], 399, 18000.0):
            writer.write(Chunk(chunk, ts + 0.4 + t2))


def test_decode_capture_end_to_end(
    frames3: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupted_capture(frames3, tmp_path / "field.cap")
    out = tmp_path / "frames.npz"
    assert main(["lepton", "decode", str(tmp_path / "field.cap"), "--out", str(out)]) == 0
    assert "4 unique frames" in capsys.readouterr().out
    with np.load(out) as npz:
        assert npz["frames"].dtype == np.uint16 and npz["frames"].shape == (4, 120, 160)
        for got, want in zip(npz["frames"], [0, 2, 4, 7], strict=True):
            assert np.array_equal(got, frames3[want])
        assert npz["packet_index"].tolist()[:3] == [0, 2 * PER_UNIQUE, 4 * PER_UNIQUE + 1999]
        assert np.all(np.diff(npz["ts_s"]) > 0)
        assert int(npz["count_crc_errors"]) == 1
        assert int(npz["count_discarded"]) >= 2000
        assert int(npz["count_realignments"]) == 1
        assert int(npz["count_resyncs"]) >= 3 and int(npz["count_cs_resyncs"]) == 1
        assert int(npz["model"]) == 3 and str(npz["telemetry_mode"]) == "off"


def test_decode_raw_dump_with_explicit_layout(frames3: np.ndarray, tmp_path: Path) -> None:
    layout = Layout(2, "header")
    frames2 = lepton2_frames(frames3[:5])
    (tmp_path / "dump.bin").write_bytes(vospi_stream(frames2, StreamSpec(layout)))
    out = tmp_path / "f.npz"
    args = ["lepton", "decode", str(tmp_path / "dump.bin"), "--out", str(out)]
    assert main([*args, "--model", "2", "--telemetry", "header"]) == 0
    with np.load(out) as npz:
        assert np.array_equal(npz["frames"], frames2)
        assert npz["telemetry"].shape == (5, 3, 80) and not npz["ffc"].any()
        assert int(npz["count_duplicates"]) == 10 and np.isnan(npz["ts_s"]).all()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["lepton", "decode", "{tmp}/missing.cap", "--out", "{tmp}/f.npz"], 69, "does not exist"),
        (["lepton", "decode", "{tmp}/noise.bin", "--out", "{tmp}/f.npz"], 69, "not a Lepton"),
        (["lepton", "decode", "{tmp}/ok.bin", "--out", "{tmp}/no/dir/f.npz"], 78, "cannot write"),
    ],
)
def test_user_mistakes_give_one_sentence(
    frames3: np.ndarray,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 400)
    (tmp_path / "ok.bin").write_bytes(vospi_stream(frames3[:1]))
    assert main([a.format(tmp=tmp_path) for a in argv]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_layout_arguments() -> None:
    assert layout_from_args(None, None) is None
    assert layout_from_args(2, None) == Layout(2, "off")
    assert layout_from_args(None, "footer") == Layout(3, "footer")
    with pytest.raises(ConfigError):
        layout_from_args(3, "sideways")


@pytest.mark.parametrize("model", [3, 2])
def test_fuzz_no_crash_no_torn_frame_recovers(frames3: np.ndarray, model: int) -> None:
    report = fuzz_parser(frames3, model=model, target=15_000, seed=11)
    assert report.mutated_packets >= 15_000 and report.packets > report.mutated_packets
    assert report.crashes == 0, report.first_crash
    assert report.torn_frames == 0 and report.undetected_corrupt == 0
    assert report.exact_frames == report.frames_out > 0 and report.recovered
    assert set(report.mutations) == {
        "bitflip", "smash", "drop", "duplicate", "swap", "truncate", "insert",
        "stuck_discard", "segment", "renumber", "garbage",
    }  # fmt: skip


def test_bench_parser_reports_figures(frames3: np.ndarray) -> None:
    figures = bench_parser(frames3, model=3, unique=10, repeats=1)
    assert figures["unique_frames"] == 10 and figures["packets"] == 10 * PER_UNIQUE
    assert figures["ms_per_unique_frame"] > 0  # a figure, not a timing assertion


def test_bench_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    argv = ["lepton", "bench", "--fuzz-packets", "3000", "--json", str(out)]
    assert main([*argv, "--frames", str(FRAMES_NPY)]) == 0
    printed = capsys.readouterr().out
    assert "ms per unique frame" in printed and "0 crashes, 0 torn frames" in printed
    report = json.loads(out.read_text())
    assert [s["model"] for s in report["speed"]] == [3, 2]
    assert sum(f["mutated_packets"] for f in report["fuzz"]) >= 3000
    assert PACKET_BYTES == 164
