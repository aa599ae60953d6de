"""One TLS handshake with the broker before MQTT starts, so a certificate problem is one fatal
sentence (exit 76) instead of endless silent reconnects: the broker's certificate not signed by
``mqtt.tls_ca_file``, not naming the host, or this unit's client certificate refused."""

from __future__ import annotations

import socket
import ssl

from device.config import MqttConfig
from device.errors import BrokerTLSError, ConfigError

HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
CONNECT_TIMEOUT_S = 5.0
ALERT_WAIT_S = 1.0  # TLS 1.3 servers refuse a client certificate after the handshake


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """The client context paho uses too: the CA, and this unit's certificate if configured."""
    try:
        context = ssl.create_default_context(cafile=str(config.tls_ca_file))
        if config.tls_cert_file is not None:
            context.load_cert_chain(str(config.tls_cert_file), str(config.tls_key_file))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        files = [f"tls_ca_file {config.tls_ca_file}"]
        if config.tls_cert_file is not None:
            files.append(f"tls_cert_file {config.tls_cert_file} / tls_key_file")
        raise ConfigError(f"mqtt.{' and '.join(files)} cannot be used: {exc}") from exc
    return context


def check_tls(config: MqttConfig) -> None:
    """Raise BrokerTLSError if the broker and this unit cannot agree on certificates; return
    quietly when the broker cannot be reached at all (that is retried, not fatal)."""
    host, where = config.host or "localhost", f"{config.host}:{config.port}"
    context = tls_context(config)
    try:
        raw = socket.create_connection((host, config.port), timeout=CONNECT_TIMEOUT_S)
    except OSError:
        return
    with raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                _wait_for_refusal(tls)
        except ssl.SSLCertVerificationError as exc:
            raise BrokerTLSError(_verify_sentence(exc, config, where)) from exc
        except (ssl.SSLError, ConnectionResetError) as exc:
            raise BrokerTLSError(
                f"the broker {where} refused this unit's TLS connection ({_reason(exc)}): "
                "it wants a client certificate it trusts (mqtt.tls_cert_file / tls_key_file)"
            ) from exc


def _wait_for_refusal(tls: ssl.SSLSocket) -> None:
    tls.settimeout(ALERT_WAIT_S)
    try:
        if tls.recv(1) == b"":
            raise ConnectionResetError("closed right after the handshake")
    except TimeoutError:
        return  # the broker waits for MQTT's CONNECT: it accepted us


def _verify_sentence(exc: ssl.SSLCertVerificationError, config: MqttConfig, where: str) -> str:
    if exc.verify_code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        return (
            f"the broker {where} shows a certificate for another name ({exc.verify_message}): "
            "use the host name its certificate names in mqtt.host, or reissue it"
        )
    return (
        f"the broker {where} shows a certificate that mqtt.tls_ca_file {config.tls_ca_file} "
        f"does not vouch for ({exc.verify_message}): give the CA that signed it"
    )


def _reason(exc: OSError) -> str:
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__
