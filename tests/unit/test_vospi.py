"""The pure VoSPI parser on streams packetised from real Lepton 3 frames (CPTV asset)."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.sources.thermal.lepton.stream import (
    MUTATIONS,
    StreamSpec,
    centikelvin_frames,
    discard_packet,
    lepton2_frames,
    make_packet,
    mutate,
    vospi_packets,
    vospi_stream,
)
from device.sources.thermal.lepton.vospi import (
    PACKET_BYTES,
    Layout,
    Radiometry,
    VospiParser,
    crc16_ccitt,
    crc_ok,
    decode_telemetry,
    detect_layout,
    vospi_crc,
)

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
FRAMES_NPY = ASSETS / "thermal_raw" / "cptv" / "v2_first20_frames_uint16.npy"
L3, L2 = Layout(3), Layout(2)
PER_UNIQUE = {3: 12 * 64, 2: 3 * 64}  # packets per unique frame incl. 4 discards per run


@pytest.fixture(scope="module")
def frames3() -> np.ndarray:
    if not FRAMES_NPY.is_file():
        pytest.fail(f"real Lepton frames missing: {FRAMES_NPY} (check out ../shared)")
    frames = np.load(FRAMES_NPY)
    assert frames.shape == (20, 120, 160) and frames.dtype == np.uint16
    return frames


@pytest.fixture(scope="module")
def frames2(frames3: np.ndarray) -> np.ndarray:
    return lepton2_frames(frames3)


def packets_of(data: bytes) -> list[bytes]:
    return [data[i : i + PACKET_BYTES] for i in range(0, len(data), PACKET_BYTES)]


def parse(data: bytes, layout: Layout, chunk: int = 399 * PACKET_BYTES) -> tuple[list, VospiParser]:
    parser = VospiParser(layout)
    out = []
    for i in range(0, len(data), chunk):
        out += parser.feed(data[i : i + chunk])
    return out, parser


def reference_crc_ok(packet: bytes) -> bool:
    """The bit-by-bit check from docs/platform.md §1.2, as an independent oracle."""
    buf = bytearray(packet)
    buf[0] &= 0x0F
    rx = (buf[2] << 8) | buf[3]
    buf[2] = buf[3] = 0
    crc = 0
    for b in buf:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc == rx


# ------------------------------------------------------------------------------------- CRC
def test_crc_is_ccitt_xmodem() -> None:
    assert crc16_ccitt(b"123456789") == 0x31C3


def test_generated_packets_pass_the_reference_crc_and_vector_check(frames3: np.ndarray) -> None:
    packets = [p for p in vospi_packets(frames3[:1]) if p[0] & 0x0F != 0x0F]
    assert len(packets) == 12 * 60
    assert all(reference_crc_ok(p) for p in packets[:240])
    rows = np.frombuffer(b"".join(packets), np.uint8).reshape(-1, PACKET_BYTES)
    assert crc_ok(rows).all()
    assert all(vospi_crc(p) == int.from_bytes(p[2:4], "big") for p in packets[:60])


def test_crc_masks_the_segment_bits_and_covers_the_payload() -> None:
    payload = bytes(range(160))
    plain, seg3 = make_packet(20, payload, 0), make_packet(20, payload, 3)
    assert plain[2:] == seg3[2:] and seg3[0] >> 4 == 3  # segment bits are outside the CRC
    broken = bytearray(plain)
    broken[100] ^= 0x01
    assert reference_crc_ok(plain) and not reference_crc_ok(bytes(broken))
    assert not crc_ok(np.frombuffer(bytes(broken), np.uint8).reshape(1, -1))[0]


def test_segment_number_only_in_packet_20(frames3: np.ndarray) -> None:
    packets = [p for p in vospi_packets(frames3[:1]) if p[0] & 0x0F != 0x0F]
    for s in range(4):
        seg = packets[s * 60 : (s + 1) * 60]
        assert [p[0] >> 4 for p in seg] == [s + 1 if i == 20 else 0 for i in range(60)]
        assert [int.from_bytes(p[:2], "big") & 0x0FFF for p in seg] == list(range(60))
    assert all(p[0] >> 4 == 0 for p in packets[240:])  # the 8 repeats are invalid segments


# ------------------------------------------------------------------------------ clean streams
@pytest.mark.parametrize("telemetry", ["off", "header", "footer"])
def test_lepton3_stream_gives_every_unique_frame(frames3: np.ndarray, telemetry: str) -> None:
    layout = Layout(3, telemetry)  # type: ignore[arg-type]
    out, parser = parse(vospi_stream(frames3, StreamSpec(layout)), layout)
    assert len(out) == 20
    for got, want in zip(out, frames3, strict=True):
        assert got.pixels.dtype == np.uint16 and np.array_equal(got.pixels, want)
    assert parser.stats.invalid_segments == 20 * 8
    assert parser.stats.crc_errors == parser.stats.resyncs == parser.stats.realignments == 0
    assert parser.stats.discarded == 20 * 12 * 4
    assert (out[0].telemetry is None) == (telemetry == "off")


@pytest.mark.parametrize("telemetry", ["off", "header", "footer"])
def test_lepton2_repeats_are_dropped_to_one_in_three(frames2: np.ndarray, telemetry: str) -> None:
    layout = Layout(2, telemetry)  # type: ignore[arg-type]
    out, parser = parse(vospi_stream(frames2, StreamSpec(layout)), layout)
    assert [o.pixels.shape for o in out] == [(60, 80)] * 20
    assert all(np.array_equal(o.pixels, f) for o, f in zip(out, frames2, strict=True))
    # ~27 Hz VoSPI frames in, ~8.7 Hz unique frames out
    assert parser.stats.duplicates == 40 and parser.stats.frames == 20


def test_any_read_size_gives_the_same_frames(frames3: np.ndarray) -> None:
    data = vospi_stream(frames3[:3])
    rng = random.Random(7)
    parser, out, i = VospiParser(L3), [], 0
    while i < len(data):
        step = rng.randint(1, 3000)
        out += parser.feed(data[i : i + step])
        i += step
    assert [o.packet_index for o in out] == [0, PER_UNIQUE[3], 2 * PER_UNIQUE[3]]
    assert all(np.array_equal(o.pixels, f) for o, f in zip(out, frames3[:3], strict=True))


def test_stream_may_start_mid_frame_and_with_discards(frames3: np.ndarray) -> None:
    data = b"".join(discard_packet(0xAB) for _ in range(500)) + vospi_stream(frames3[:3])
    out, _ = parse(data[500 * PACKET_BYTES + 100 * PACKET_BYTES - 37 :], L3)  # cut mid-packet
    assert [np.array_equal(o.pixels, frames3[i + 1]) for i, o in enumerate(out)] == [True, True]


# ------------------------------------------------------------------------- injected faults
def stream_packets(frames: np.ndarray, layout: Layout) -> list[bytes]:
    return list(vospi_packets(frames, StreamSpec(layout)))


def assert_only_source_frames(out: list, frames: np.ndarray) -> list[int]:
    """Every output frame is exactly one source frame; returns which ones came out."""
    found = []
    for o in out:
        hits = [i for i, f in enumerate(frames) if np.array_equal(o.pixels, f)]
        assert hits, "a frame came out that is not one of the source frames (torn)"
        found.append(hits[0])
    return found


def test_bad_crc_drops_only_that_frame(frames3: np.ndarray) -> None:
    packets = stream_packets(frames3[:4], L3)
    victim = PER_UNIQUE[3] + 64 + 10  # frame 1, segment 2, packet 10
    bad = bytearray(packets[victim])
    bad[50] ^= 0x40
    packets[victim] = bytes(bad)
    out, parser = parse(b"".join(packets), L3)
    assert assert_only_source_frames(out, frames3[:4]) == [0, 2, 3]
    assert parser.stats.crc_errors == 1 and parser.stats.resyncs == 1


def test_lost_packet_drops_only_that_frame(frames2: np.ndarray) -> None:
    packets = stream_packets(frames2[:4], L2)
    for repeat in range(3):  # lose packet 30 in all three copies of frame 2
        del packets[2 * PER_UNIQUE[2] + repeat * 63 + 30]
    out, parser = parse(b"".join(packets), L2)
    assert assert_only_source_frames(out, frames2[:4]) == [0, 1, 3]
    assert parser.stats.resyncs == 1  # one loss of sync, regained with frame 3


def test_lost_packet_in_one_repeat_is_covered_by_the_next(frames2: np.ndarray) -> None:
    packets = stream_packets(frames2[:2], L2)
    del packets[PER_UNIQUE[2] + 5]  # first copy of frame 1 broken; the second one is used
    out, _ = parse(b"".join(packets), L2)
    assert assert_only_source_frames(out, frames2[:2]) == [0, 1]


def test_segments_out_of_order_never_make_a_frame(frames3: np.ndarray) -> None:
    packets = stream_packets(frames3[:3], L3)
    start = PER_UNIQUE[3]  # frame 1: swap segments 2 and 3 (64 packets each with discards)
    seg2, seg3 = packets[start + 64 : start + 128], packets[start + 128 : start + 192]
    packets[start + 64 : start + 192] = seg3 + seg2
    out, parser = parse(b"".join(packets), L3)
    assert assert_only_source_frames(out, frames3[:3]) == [0, 2]
    assert parser.stats.resyncs >= 1


@pytest.mark.parametrize("between", ["noise", "resync"])
def test_segments_of_two_frames_are_never_joined(frames3: np.ndarray, between: str) -> None:
    a, b = stream_packets(frames3[:1], L3), stream_packets(frames3[1:2], L3)
    parser = VospiParser(L3)
    out = parser.feed(b"".join(a[: 2 * 64]))  # segments 1-2 of frame 0
    if between == "resync":
        parser.reset()
    else:
        out += parser.feed(random.Random(2).randbytes(PACKET_BYTES))
    out += parser.feed(b"".join(b[2 * 64 : 4 * 64] + a))  # segments 3-4 of frame 1, frame 0
    assert assert_only_source_frames(out, frames3[:2]) == [0]
    assert parser.stats.resyncs == 1


def test_exact_segment_splice_is_the_protocols_blind_spot(frames3: np.ndarray) -> None:
    """VoSPI segments carry no frame number: bytes cut out exactly at segment boundaries
    (12 whole segments = 1 unique frame period) cannot be seen. A live Lepton never sends
    this: a reader that falls behind makes the Lepton lose sync and send no video at all."""
    a, b = stream_packets(frames3[:1], L3), stream_packets(frames3[1:2], L3)
    out, _ = parse(b"".join(a[: 2 * 64] + b[2 * 64 : 4 * 64]), L3)
    assert len(out) == 1 and not np.array_equal(out[0].pixels, frames3[0])


def test_invalid_segment_inside_a_frame_drops_it(frames3: np.ndarray) -> None:
    packets = stream_packets(frames3[:2], L3)
    p20 = bytearray(packets[2 * 64 + 20])  # frame 0, segment 3: segment number 3 -> 0
    p20[0] &= 0x0F
    packets[2 * 64 + 20] = bytes(p20)
    out, _ = parse(b"".join(packets), L3)
    assert assert_only_source_frames(out, frames3[:2]) == [1]


def test_stuck_discard_packets(frames3: np.ndarray) -> None:
    packets = stream_packets(frames3[:3], L3)
    packets[64:64] = [discard_packet(0xFF)] * 5000  # a long idle run between segments is fine
    out, _ = parse(b"".join(packets), L3)
    assert assert_only_source_frames(out, frames3[:3]) == [0, 1, 2]
    packets[5064 + 10 : 5064 + 40] = [discard_packet()] * 30  # frame 0 seg 2 stuck: lost
    out, _ = parse(b"".join(packets), L3)
    assert assert_only_source_frames(out, frames3[:3]) == [1, 2]


def test_a_segment_cut_off_by_a_long_idle_run_is_given_up(frames3: np.ndarray) -> None:
    packets = stream_packets(frames3[:3], L3)
    packets[1:1] = [discard_packet()] * 3000  # after packet 0 of frame 0: sync is gone
    parser = VospiParser(L3)
    out = []
    for i in range(0, len(packets), 399):
        out += parser.feed(b"".join(packets[i : i + 399]))
        assert len(parser._buf) <= 2 * 1024 * PACKET_BYTES  # bounded, never the whole idle run
    assert assert_only_source_frames(out, frames3[:3]) == [1, 2]


@pytest.mark.parametrize("lost", [1, 37, 163])
def test_lost_bytes_are_realigned(frames3: np.ndarray, lost: int) -> None:
    data = vospi_stream(frames3[:4])
    cut = PER_UNIQUE[3] * PACKET_BYTES + 70 * PACKET_BYTES + 5  # inside frame 1, segment 2
    out, parser = parse(data[:cut] + data[cut + lost :], L3)
    assert assert_only_source_frames(out, frames3[:4]) == [0, 2, 3]
    assert parser.stats.realignments == 1


def test_inserted_noise_is_realigned(frames2: np.ndarray) -> None:
    packets = stream_packets(frames2[:4], L2)
    packets.insert(PER_UNIQUE[2] + 10, random.Random(3).randbytes(1000))
    out, parser = parse(b"".join(packets), L2)
    assert assert_only_source_frames(out, frames2[:4]) == [0, 1, 2, 3]  # a later copy of 1
    assert parser.stats.realignments == 1


def test_reset_drops_the_partial_frame(frames3: np.ndarray) -> None:
    data = vospi_stream(frames3[:2])
    parser = VospiParser(L3)
    assert parser.feed(data[: 3 * 64 * PACKET_BYTES]) == []  # segments 1-3 of frame 0
    parser.reset()  # the transport re-synced: what follows is a new stream position
    out = parser.feed(data[3 * 64 * PACKET_BYTES :])
    assert assert_only_source_frames(out, frames3[:2]) == [1]
    assert parser.stats.resyncs == 1


def test_random_noise_only() -> None:
    out, parser = parse(random.Random(1).randbytes(200_000), L3)
    assert out == [] and parser.stats.frames == 0


# --------------------------------------------------------------------- telemetry, radiometry
def test_telemetry_counter_ffc_and_tlinear(frames3: np.ndarray) -> None:
    layout = Layout(3, "footer")
    kelvin = centikelvin_frames(frames3[:3])
    spec = StreamSpec(layout, tlinear=True, resolution_k=0.01, ffc_frames=frozenset({1}))
    out, _ = parse(vospi_stream(kelvin, spec), layout)
    tel = [o.decoded_telemetry() for o in out]
    assert [t.frame_counter for t in tel] == [1, 2, 3]
    assert [t.ffc_in_progress for t in tel] == [False, True, False]
    assert tel[0].radiometry == Radiometry(True, 0.01)
    assert tel[0].fpa_temp_c == pytest.approx(35.0)


def test_telemetry_frame_counter_decides_duplicates(frames2: np.ndarray) -> None:
    layout = Layout(2, "header")
    same = np.stack([frames2[0], frames2[0]])  # identical pixels, two counter values
    out, parser = parse(vospi_stream(same, StreamSpec(layout)), layout)
    assert len(out) == 2 and parser.stats.duplicates == 4


def test_tlinear_to_celsius_at_both_resolutions() -> None:
    pixels = np.array([[29315, 31015]], dtype=np.uint16)
    fine = Radiometry(True, 0.01).to_celsius(pixels)
    assert fine.dtype == np.float32 and np.allclose(fine, [[20.0, 37.0]], atol=1e-4)
    coarse = Radiometry(True, 0.1).to_celsius(np.array([[2932, 3102]], dtype=np.uint16))
    assert np.allclose(coarse, [[20.05, 37.05]], atol=1e-3)
    raw = Radiometry(False).to_celsius(np.array([[2648, 3184]], dtype=np.uint16))
    assert raw.tolist() == [[2648.0, 3184.0]]


def test_decode_telemetry_reads_lsw_first_words() -> None:
    rows = np.zeros((3, 80), dtype=np.uint16)
    rows[0, 20], rows[0, 21] = 0x0002, 0x0001  # frame counter 0x00010002
    rows[0, 3] = 0x0020  # FFC state 2 = in progress
    rows[2, 48], rows[2, 49] = 1, 0
    tel = decode_telemetry(rows)
    assert tel.frame_counter == 0x10002 and tel.ffc_in_progress
    assert tel.radiometry == Radiometry(True, 0.1)


@pytest.mark.parametrize("layout", [Layout(3), Layout(2), Layout(3, "footer"), Layout(2, "footer")])
def test_detect_layout(frames3: np.ndarray, layout: Layout) -> None:
    frames = frames3[:2] if layout.model == 3 else lepton2_frames(frames3[:2])
    data = vospi_stream(frames, StreamSpec(layout))
    assert detect_layout(b"\x0f\xff" * 3000 + data[5:]) is None or True  # never raises
    assert detect_layout(data) == layout


def test_mutations_are_deterministic_per_seed() -> None:
    run = [make_packet(i, bytes(160)) for i in range(60)]
    a = mutate(run, "smash", 4, random.Random(5))
    b = mutate(run, "smash", 4, random.Random(5))
    assert a == b and a != run


# ------------------------------------------------------------------------- property test
@functools.cache
def property_material(model: int) -> tuple[np.ndarray, list[list[bytes]], bytes]:
    """Source frames, the body's runs (one per segment / repeated frame), a clean tail."""
    frames = np.load(FRAMES_NPY)
    frames = frames if model == 3 else lepton2_frames(frames)
    layout = Layout(3 if model == 3 else 2)
    run = layout.packets_per_segment + 4
    body = list(vospi_packets(frames[:4], StreamSpec(layout)))
    runs = [body[i : i + run] for i in range(0, len(body), run)]
    return frames[:7], runs, vospi_stream(frames[4:7], StreamSpec(layout))


def mutation_lists(ops: tuple[str, ...], max_size: int) -> st.SearchStrategy[list]:
    return st.lists(
        st.tuples(
            st.sampled_from(ops),
            st.integers(0, 1000),  # which run
            st.sampled_from([1, 2, 3, 8, 64]),  # packets touched
            st.integers(0, 2**32 - 1),  # seed of the mutation's own choices
        ),
        min_size=1,
        max_size=max_size,
    )


# The segment number (bits 14..12 of packet 20) is outside the CRC by the datasheet's design, so
# a lost segment *plus* a corrupted segment number right after it can pass as a whole frame
# (test_two_faults_lost_segment_and_segment_number below). Any number of other faults, and any
# single fault of every kind, never make a torn frame: that is what the properties check.
CRC_COVERED = tuple(m for m in MUTATIONS if m != "segment")


def check_mutated_stream(model: int, mutations: list[tuple[str, int, int, int]], read: int) -> None:
    frames, runs, tail = property_material(model)
    runs = list(runs)
    for op, where, count, seed in mutations:
        index = where % len(runs)
        runs[index] = mutate(runs[index], op, count, random.Random(seed))
    data = b"".join(b"".join(r) for r in runs) + tail
    out, _ = parse(data, Layout(3 if model == 3 else 2), chunk=read)
    found = assert_only_source_frames(out, frames)  # never a torn or corrupted frame
    assert {5, 6} <= set(found)  # the clean tail's last two frames always come out
    per_frame = len(runs) // 4
    hit = {where % len(runs) // per_frame for _, where, _, _ in mutations}
    # a frame comes out whole unless it or the frame before it (lost alignment) was mutated
    untouched = {i for i in range(4) if i not in hit and i - 1 not in hit}
    assert untouched <= set(found)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    model=st.sampled_from([2, 3]),
    mutations=mutation_lists(CRC_COVERED, 10),
    read_bytes=st.integers(100, 70_000),
)
def test_property_no_crash_no_torn_frame_and_sync_recovers(
    model: int, mutations: list[tuple[str, int, int, int]], read_bytes: int
) -> None:
    check_mutated_stream(model, mutations, read_bytes)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    model=st.sampled_from([2, 3]),
    mutations=mutation_lists(MUTATIONS, 1),
    read_bytes=st.integers(100, 70_000),
)
def test_property_any_single_fault_is_safe(
    model: int, mutations: list[tuple[str, int, int, int]], read_bytes: int
) -> None:
    check_mutated_stream(model, mutations, read_bytes)


def test_two_faults_lost_segment_and_segment_number(frames3: np.ndarray) -> None:
    """The known two-fault case: segment 4 lost and the next (invalid, segment 0) segment's
    number corrupted to 4 gives a frame whose last quarter is other data. Documented in
    docs/thermal.md; in the 1,000,000-packet fuzz (random faults) it did not occur."""
    packets = stream_packets(frames3[:2], L3)
    del packets[3 * 64 : 4 * 64]  # segment 4 of frame 0 lost, with its idle discards
    p20 = bytearray(packets[3 * 64 + 20])  # first repeat segment: number 0 -> 4
    p20[0] |= 4 << 4
    packets[3 * 64 + 20] = bytes(p20)
    out, _ = parse(b"".join(packets), L3)
    assert len(out) == 2 and not np.array_equal(out[0].pixels, frames3[0])
