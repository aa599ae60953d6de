"""TLS against a real Mosquitto with certificates made here by openssl: a CA that signs the
broker's and the units' certificates. A broker the configured CA does not vouch for, a broker
certificate for another name, and a client certificate the broker refuses are each one fatal
sentence with exit code 76, not endless reconnects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.errors import EX_PROTOCOL, BrokerTLSError
from device.publish.events import LabelEvent

from .broker import make_ca, make_signed_cert, mqtt_config
from .conftest import BrokerFactory, PublisherFactory
from .device_process import device_env, write_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = make_ca(folder, "unit-ca")
    other_ca = make_ca(folder, "other-ca")
    return {
        "ca": ca,
        "other_ca": other_ca,
        "broker": make_signed_cert(folder, ca, "broker"),
        "broker_other_name": make_signed_cert(folder, ca, "elsewhere", san="DNS:mqtt.example"),
        "unit": make_signed_cert(folder, ca, "pi-01", san="DNS:pi-01"),
        "stranger": make_signed_cert(folder, other_ca, "stranger", san="DNS:stranger"),
    }


def event() -> LabelEvent:
    return LabelEvent("happy", 0.9, 1.0, "rgb", "m@00000000", "pi-01")


def test_client_certificate_signed_by_the_ca_connects(
    broker_factory: BrokerFactory, publisher_factory: PublisherFactory, pki: dict
) -> None:
    broker = broker_factory(tls=pki["broker"], client_ca=pki["ca"][0])
    cert, key = pki["unit"]
    config = mqtt_config(
        broker.port, tls_ca_file=pki["ca"][0], tls_cert_file=cert, tls_key_file=key
    )
    publisher = publisher_factory(config, "pi-01")
    publisher.start()
    assert publisher.connected and publisher.publish(event())


@pytest.mark.parametrize(
    "case",
    [
        ("other_ca", None, "broker", "does not vouch for"),
        ("ca", None, "broker_other_name", "certificate for another name"),
        ("ca", "stranger", "broker", "refused this unit's TLS connection"),
        ("ca", None, "broker", "refused this unit's TLS connection"),  # no client certificate
    ],
)
def test_certificate_problems_are_one_fatal_sentence(
    broker_factory: BrokerFactory,
    publisher_factory: PublisherFactory,
    pki: dict,
    case: tuple[str, str | None, str, str],
) -> None:
    ca, client, broker_cert, fragment = case  # unit's CA, unit's cert, broker's cert, says
    broker = broker_factory(tls=pki[broker_cert], client_ca=pki["ca"][0])
    files = {"tls_cert_file": pki[client][0], "tls_key_file": pki[client][1]} if client else {}
    config = mqtt_config(broker.port, tls_ca_file=pki[ca][0], **files)
    publisher = publisher_factory(config, "pi-01")
    with pytest.raises(BrokerTLSError, match=fragment) as error:
        publisher.start()
    assert "\n" not in str(error.value) and error.value.exit_code == EX_PROTOCOL == 76


def test_the_device_exits_76_with_one_line(
    broker_factory: BrokerFactory, pki: dict, tmp_path: Path
) -> None:
    broker = broker_factory(tls=pki["broker"])
    config = write_config(
        tmp_path, broker.port, mqtt_extra=f'tls_ca_file = "{pki["other_ca"][0]}"\n'
    )
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "run", "--config", str(config)],
        env=device_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 76, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("emotion-device: the broker") and "does not vouch for" in last
