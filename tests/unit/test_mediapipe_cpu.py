"""mediapipe 1.x on a CPU without LSE atomics (a Pi 4) is refused in one sentence, not a SIGILL."""

from __future__ import annotations

import pytest

from device.errors import ModelMismatch
from device.features.blendshapes import check_cpu_for_mediapipe

PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
PI5 += "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n"


def test_mediapipe_1_on_a_pi_4_is_refused_with_what_to_install() -> None:
    with pytest.raises(ModelMismatch, match=r"needs a CPU with LSE atomics.*0\.10\.18") as err:
        check_cpu_for_mediapipe("1.2.2", "aarch64", PI4)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("version", "machine", "cpuinfo"),
    [
        ("1.2.2", "aarch64", PI5),  # a Pi 5 has the atomics
        ("0.10.18", "aarch64", PI4),  # 0.10.x runs on a Pi 4
        ("1.2.2", "x86_64", "flags\t: fpu sse2 avx2\n"),  # not ARM
        ("1.2.2", "aarch64", ""),  # no Features line: do not guess
    ],
)
def test_other_cpus_and_versions_pass(version: str, machine: str, cpuinfo: str) -> None:
    check_cpu_for_mediapipe(version, machine, cpuinfo)
