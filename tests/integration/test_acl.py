"""The documented Mosquitto set-up (deploy/mosquitto/acl.conf, passwords, TLS) on a real broker:
a unit writes only its own subtree and reads only its own commands; a subscriber reads the fleet
and sends commands but cannot pose as a unit; a wrong password is fatal."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from device.config import MqttConfig
from device.errors import EX_NOPERM, BrokerAuthError
from device.publish.events import LabelEvent

from .broker import HOST, MosquittoBroker, Subscriber, make_ca, make_signed_cert, mqtt_config
from .conftest import BrokerFactory, PublisherFactory

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl.conf"
USERS = {"pi-01": "pw-01", "pi-02": "pw-02", "dashboard": "pw-dash"}
QUIET_S = 1.0  # long enough for a message the broker would pass on to arrive


@pytest.fixture
def secured(broker_factory: BrokerFactory, tmp_path: Path) -> tuple[MosquittoBroker, Path]:
    ca = make_ca(tmp_path, "fleet-ca")
    broker = broker_factory(users=USERS, tls=make_signed_cert(tmp_path, ca, "broker"), acl=ACL)
    return broker, ca[0]


def unit_config(
    broker: MosquittoBroker, ca: Path, user: str, password: str | None = None
) -> MqttConfig:
    secret = SecretStr(password or USERS[user])
    return mqtt_config(broker.port, username=user, password=secret, tls_ca_file=ca)


def raw_publish(broker: MosquittoBroker, ca: Path, user: str, topic: str, payload: str) -> None:
    """A plain paho client logged in as ``user`` publishes once (QoS 1) and leaves."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{user}-{time.time_ns()}")
    client.username_pw_set(user, USERS[user])
    client.tls_set(ca_certs=str(ca))
    client.connect(HOST, broker.port, keepalive=10)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_each_unit_writes_only_its_own_subtree(
    secured: tuple[MosquittoBroker, Path], publisher_factory: PublisherFactory
) -> None:
    broker, ca = secured
    commands: list[bool] = []
    got_command = threading.Event()
    with Subscriber(
        broker.port, ["#"], username="dashboard", password=USERS["dashboard"], ca_file=ca
    ) as sub:
        unit = publisher_factory(unit_config(broker, ca, "pi-01"), "pi-01")
        unit.on_monitoring(lambda paused: (commands.append(paused), got_command.set()))
        unit.start()
        assert unit.publish(LabelEvent("happy", 0.9, 1.0, "rgb", "m@0", "pi-01"))
        sub.wait_for("emotion-edge/pi-01/emotion")
        raw_publish(broker, ca, "pi-01", "emotion-edge/pi-02/emotion", '{"label":"sad"}')
        raw_publish(broker, ca, "pi-01", "emotion-edge/pi-02/status", "{}")
        raw_publish(broker, ca, "dashboard", "emotion-edge/pi-01/emotion", '{"label":"fear"}')
        time.sleep(QUIET_S)
        assert sub.messages("emotion-edge/pi-02/emotion") == []  # not another unit's subtree
        assert sub.messages("emotion-edge/pi-02/status") == []
        assert len(sub.messages("emotion-edge/pi-01/emotion")) == 1  # a subscriber cannot pose
        raw_publish(broker, ca, "pi-02", "emotion-edge/pi-02/emotion", '{"label":"sad"}')
        sub.wait_for("emotion-edge/pi-02/emotion")  # the unit itself can
        raw_publish(broker, ca, "dashboard", "emotion-edge/pi-01/set/monitoring", "off")
        assert got_command.wait(5) and commands == [True]  # commands reach their unit


def test_wrong_password_is_fatal(
    secured: tuple[MosquittoBroker, Path], publisher_factory: PublisherFactory
) -> None:
    broker, ca = secured
    unit = publisher_factory(unit_config(broker, ca, "pi-01", "not-it"), "pi-01")
    with pytest.raises(BrokerAuthError) as error:
        unit.start()
    assert error.value.exit_code == EX_NOPERM and "\n" not in str(error.value)
