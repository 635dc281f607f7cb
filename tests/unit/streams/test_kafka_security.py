"""Settings → Kafka connection options (aiokafka's and faust's alike), and misconfigurations refused with
the setting to fix (no broker; a refused port for the one connection test)."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.kafka import KafkaSetupError, explain, faust_credentials, kafka_options
from streams.settings import Settings

SCRAM = {
    "BANTER_KAFKA_BOOTSTRAP": "kafka.example:9093",
    "BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "BANTER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "BANTER_KAFKA_USERNAME": "banter",
    "BANTER_KAFKA_PASSWORD": "s3cret",
}


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "banter test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("pem")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def _settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_plaintext_by_default() -> None:
    settings = _settings()
    assert kafka_options(settings) == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_a_user_alone_means_sasl_plain_over_plaintext_as_before() -> None:
    settings = _settings(BANTER_KAFKA_USERNAME="banter", BANTER_KAFKA_PASSWORD="s3cret")
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT" and options["sasl_mechanism"] == "PLAIN"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("banter", "s3cret")
    assert "ssl_context" not in options
    _same_for_faust(settings)


def test_sasl_ssl_with_scram_and_a_ca_file(pem: tuple[Path, Path]) -> None:
    settings = Settings.from_env({**SCRAM, "BANTER_KAFKA_SSL_CAFILE": str(pem[0])})
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the CA file only, not the system's CAs besides
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and "s3cret" not in repr(credentials)
    _same_for_faust(settings)


def _same_for_faust(settings: Settings) -> None:
    """faust's consumer and producer get exactly what every aiokafka client of banter's gets."""
    ours = kafka_options(settings)
    del ours["bootstrap_servers"]
    assert dict(credentials_to_aiokafka_auth(faust_credentials(settings))) == {"ssl_context": None, **ours}


def test_the_protocol_follows_from_a_user_and_a_ca_file(pem: tuple[Path, Path]) -> None:
    user = {"BANTER_KAFKA_USERNAME": "banter", "BANTER_KAFKA_PASSWORD": "s3cret"}
    cafile = {"BANTER_KAFKA_SSL_CAFILE": str(pem[0])}
    assert kafka_options(_settings(**user, **cafile))["security_protocol"] == "SASL_SSL"
    tls_only = _settings(**cafile)
    assert kafka_options(tls_only)["security_protocol"] == "SSL"
    assert isinstance(faust_credentials(tls_only), faust.SSLCredentials)
    assert (
        kafka_options(_settings(BANTER_KAFKA_SECURITY_PROTOCOL="sasl_ssl", **user))["security_protocol"] == "SASL_SSL"
    )


def test_tls_without_a_ca_file_trusts_the_systems_cas() -> None:
    context = kafka_options(_settings(BANTER_KAFKA_SECURITY_PROTOCOL="SSL"))["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_mutual_tls_loads_the_client_certificate(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    settings = _settings(
        BANTER_KAFKA_SSL_CAFILE=str(cert), BANTER_KAFKA_SSL_CERTFILE=str(cert), BANTER_KAFKA_SSL_KEYFILE=str(key)
    )
    assert kafka_options(settings)["security_protocol"] == "SSL"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BANTER_KAFKA_SECURITY_PROTOCOL": "TLS"}, "BANTER_KAFKA_SECURITY_PROTOCOL='TLS' is not one of PLAINTEXT"),
        ({**SCRAM, "BANTER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "BANTER_KAFKA_SASL_MECHANISM='SCRAM-SHA-1'"),
        ({"BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs BANTER_KAFKA_USERNAME and BANTER_KAFKA_PASS"),
        (
            {"BANTER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "BANTER_KAFKA_USERNAME": "banter"},
            "BANTER_KAFKA_USERNAME is set but BANTER_KAFKA_SECURITY_PROTOCOL=PLAINTEXT .* set it to SASL_PLAINTEXT",
        ),
        (
            {**SCRAM, "BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BANTER_KAFKA_SSL_CAFILE": "/ca.pem"},
            "BANTER_KAFKA_SSL_CAFILE is set but BANTER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
        ),
        ({**SCRAM, "BANTER_KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "BANTER_KAFKA_SSL_CAFILE: no such file: /nowhere"),
        ({**SCRAM, "BANTER_KAFKA_SSL_CAFILE": __file__}, "BANTER_KAFKA_SSL_CAFILE: cannot use"),
        ({**SCRAM, "BANTER_KAFKA_SSL_KEYFILE": "/key.pem"}, "BANTER_KAFKA_SSL_KEYFILE is set without"),
    ],
)
def test_a_misconfiguration_names_the_setting_to_fix(env: dict[str, str], names: str) -> None:
    settings = Settings.from_env(env)
    with pytest.raises(KafkaSetupError, match=names):
        kafka_options(settings)
    with pytest.raises(KafkaSetupError, match=names):
        faust_credentials(settings)


def test_a_wrong_client_key_names_the_client_settings(pem: tuple[Path, Path]) -> None:
    cert, _ = pem
    settings = _settings(BANTER_KAFKA_SSL_CERTFILE=str(cert), BANTER_KAFKA_SSL_KEYFILE=__file__)
    with pytest.raises(KafkaSetupError, match="BANTER_KAFKA_SSL_CERTFILE, BANTER_KAFKA_SSL_KEYFILE or"):
        kafka_options(settings)


def test_nothing_listening_names_the_bootstrap_setting() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reason = asyncio.run(explain(_settings(BANTER_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}")))
    assert reason == f"nothing listens at 127.0.0.1:{port}: check BANTER_KAFKA_BOOTSTRAP"
