"""On a Raspberry Pi with a FLIR Lepton on SPI0/CS0 and I2C1:
``pytest -m hardware tests/hardware/test_lepton.py`` (env LEPTON_MODEL=2 for a Lepton 2.x).

Self-checking: it opens the real SPI device with our driver, reads unique frames and checks what
the driver promises. It fails (not skips) without spidev or a Lepton: running it says there is one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from device.sources.thermal.lepton import LeptonOptions, LeptonSource
from device.sources.thermal.lepton.capture import CaptureWriter, capture
from device.sources.thermal.lepton.cci import open_cci
from device.sources.thermal.lepton.spi import SpiOptions, SpiTransport, read_bufsiz
from device.sources.thermal.lepton.vospi import Layout

pytestmark = pytest.mark.hardware

LAYOUT = Layout(3 if os.environ.get("LEPTON_MODEL", "3") == "3" else 2)


def test_kernel_spidev_buffer_holds_a_segment() -> None:
    assert read_bufsiz() >= 65536, "add spidev.bufsiz=65536 to /boot/firmware/cmdline.txt"


def test_cci_answers_and_reports_radiometry() -> None:
    cci = open_cci(1)
    try:
        status = cci.status()
        radiometry = cci.radiometry()
    finally:
        cci.close()
    assert status.booted and status.error_code == 0
    assert radiometry.resolution_k in (0.01, 0.1)


def test_reads_unique_frames_at_about_9_hz() -> None:
    source = LeptonSource(SpiTransport(SpiOptions(layout=LAYOUT)), LeptonOptions())
    source.open()
    try:
        frames = [source.read() for _ in range(20)]
        received_at = time.monotonic()
    finally:
        source.close()
    real = [f for f in frames if f is not None]
    assert len(real) == 20
    for frame in real:
        assert frame.celsius.shape == (LAYOUT.height, LAYOUT.width)
        assert float(frame.celsius.std()) > 0  # a real scene, not a constant
    assert np.all(np.diff([f.index for f in real]) > 0)
    ts = np.array([f.ts_s for f in real])
    assert 0 <= received_at - ts[-1] < 1.0
    assert float(np.median(np.diff(ts))) == pytest.approx(1 / 8.7, rel=0.3)
    assert source.parser.stats.crc_errors <= 2
    assert source.read() is None


def test_capture_on_the_device(tmp_path: Path) -> None:
    transport = SpiTransport(SpiOptions(layout=LAYOUT))
    with CaptureWriter(tmp_path / "lepton.cap", LAYOUT) as writer:
        written = capture(transport, writer, seconds=1.0)
    assert written > 100_000
