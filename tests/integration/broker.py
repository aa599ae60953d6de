"""Helpers for tests against a real Mosquitto: start/stop a broker, collect messages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.config import MqttConfig

HOST = "127.0.0.1"
START_TIMEOUT_S = 5.0
WAIT_TIMEOUT_S = 5.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """A Mosquitto password file made with ``mosquitto_passwd -b``."""
    passwd = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
    path.unlink(missing_ok=True)
    for user, password in users.items():
        create = [] if path.exists() else ["-c"]
        subprocess.run([passwd, *create, "-b", str(path), user, password], check=True)


def make_tls_cert(folder: Path, host: str = HOST) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (its own CA) and its key, made with openssl."""
    cert, key = folder / "broker-cert.pem", folder / "broker-key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}"]
    command += ["-addext", f"subjectAltName=IP:{host}"]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str = "test-ca") -> tuple[Path, Path]:
    """A CA certificate and key, made with openssl."""
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-subj",
        f"/CN={name}",
    )
    return cert, key


def make_signed_cert(
    folder: Path, ca: tuple[Path, Path], name: str, san: str = f"IP:{HOST}"
) -> tuple[Path, Path]:
    """A certificate for ``san`` signed by ``ca`` (broker or client), and its key."""
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        str(cert),
        "-extfile",
        str(ext),
    )
    return cert, key


def config_text(
    port: int,
    password_file: Path | None,
    tls: tuple[Path, Path] | None,
    client_ca: Path | None = None,
    acl: Path | None = None,
) -> str:
    lines = [f"listener {port} {HOST}", "persistence false"]
    if acl is not None:
        lines.append(f"acl_file {acl}")
    if tls is not None:
        lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
    if client_ca is not None:  # clients must show a certificate signed by this CA
        lines += [f"cafile {client_ca}", "require_certificate true"]
    if os.geteuid() == 0:
        # As root, mosquitto drops to user "mosquitto", which cannot read files in a private
        # temp dir ("Unable to open pwfile"); "user root" keeps it as root.
        lines.insert(0, "user root")
    if password_file is None:
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    return "\n".join(lines) + "\n"


@dataclass
class MosquittoBroker:
    """One mosquitto process on 127.0.0.1:``port``; ``users`` empty = anonymous allowed.

    The readiness check is a plain TCP connect, so it works for TLS listeners too.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None  # (certfile, keyfile): the listener speaks TLS
    client_ca: Path | None = None  # clients need a certificate signed by this CA
    acl: Path | None = None  # Mosquitto acl_file
    host: str = HOST
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"mosquitto-{self.port}.log"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> MosquittoBroker:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        password_file = None
        if self.users:
            password_file = self.workdir / f"passwd-{self.port}"
            write_password_file(password_file, self.users)
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        text = config_text(self.port, password_file, self.tls, self.client_ca, self.acl)
        conf.write_text(text)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_listening(timeout_s)
        return self

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL) and reap the process; safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)
        self.process = None

    def send_signal(self, sig: int) -> None:
        """E.g. SIGSTOP to freeze the broker (TCP stays up, nothing is acknowledged), SIGCONT."""
        assert self.process is not None
        self.process.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_listening(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}):\n{self.log()}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"mosquitto did not listen on {self.port} in {timeout_s} s:\n{self.log()}"
        )


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho client that records every message per topic; use as a context manager."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        host: str = HOST,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self._host, self._port, self._topics = host, port, topics
        self._cond = threading.Condition()
        self._messages: dict[str, list[Received]] = defaultdict(list)
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self)}")
        if username is not None:
            self._client.username_pw_set(username, password)
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file))
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __enter__(self) -> Subscriber:
        self._client.connect(self._host, self._port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(WAIT_TIMEOUT_S):
            self.close()
            raise TimeoutError(f"no SUBACK from {self._host}:{self._port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self, topic: str) -> list[Received]:
        with self._cond:
            return list(self._messages[topic])

    def wait_for(
        self, topic: str, count: int = 1, timeout_s: float = WAIT_TIMEOUT_S
    ) -> list[Received]:
        """The first ``count`` messages on ``topic``; TimeoutError if they do not arrive."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._messages[topic]) >= count, timeout_s)
            got = list(self._messages[topic])
        if not ok:
            raise TimeoutError(f"{len(got)} of {count} messages on {topic} in {timeout_s} s: {got}")
        return got[:count]

    def wait_for_payload(
        self, topic: str, payload: bytes, timeout_s: float = WAIT_TIMEOUT_S
    ) -> Received:
        """The first message on ``topic`` with exactly ``payload``."""

        def find() -> Received | None:
            return next((m for m in self._messages[topic] if m.payload == payload), None)

        with self._cond:
            self._cond.wait_for(lambda: find() is not None, timeout_s)
            found, got = find(), list(self._messages[topic])
        if found is None:
            raise TimeoutError(f"no {payload!r} on {topic} in {timeout_s} s, got: {got}")
        return found

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not rc.is_failure:
            client.subscribe([(topic, 1) for topic in self._topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos)
        with self._cond:
            self._messages[msg.topic].append(received)
            self._cond.notify_all()


def mqtt_config(port: int, **overrides: Any) -> MqttConfig:
    """A MqttConfig for a test broker, with short back-off so tests stay fast."""
    values: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "keepalive_s": 10,
        "reconnect_min_s": 1.0,
        "reconnect_max_s": 1.0,
    }
    values.update(overrides)
    return MqttConfig(**values)
