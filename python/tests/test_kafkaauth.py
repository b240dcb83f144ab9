"""The SLUICE_KAFKA_* environment as librdkafka settings (no broker)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from sluice.kafkaauth import KafkaSecurity


def test_plaintext_by_default() -> None:
    assert KafkaSecurity.from_env({}).settings() == {"security.protocol": "PLAINTEXT"}


def test_sasl_ssl_scram(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    env = {
        "SLUICE_KAFKA_TLS": "true",
        "SLUICE_KAFKA_CA_FILE": "/ca.crt",
        "SLUICE_KAFKA_CERT_FILE": "/tls.crt",
        "SLUICE_KAFKA_KEY_FILE": "/tls.key",
        "SLUICE_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "SLUICE_KAFKA_SASL_USERNAME": "app",
        "SLUICE_KAFKA_SASL_PASSWORD_FILE": str(pw),
    }
    assert KafkaSecurity.from_env(env).settings() == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/ca.crt",
        "ssl.certificate.location": "/tls.crt",
        "ssl.key.location": "/tls.key",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "app",
        "sasl.password": "s3cret",
    }


def test_ca_implies_tls() -> None:
    s = KafkaSecurity.from_env({"SLUICE_KAFKA_CA_FILE": "/ca.crt", "SLUICE_KAFKA_TLS": "false"})
    assert s.settings()["security.protocol"] == "SSL"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SLUICE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "is not one of"),
        ({"SLUICE_KAFKA_SASL_MECHANISM": "PLAIN", "SLUICE_KAFKA_SASL_PASSWORD": "p"}, "USERNAME is required"),
        ({"SLUICE_KAFKA_SASL_MECHANISM": "PLAIN", "SLUICE_KAFKA_SASL_USERNAME": "u"}, "needs one of"),
        ({"SLUICE_KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "OAUTHBEARER needs one of"),
        ({"SLUICE_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "SLUICE_KAFKA_SASL_TOKEN_COMMAND": "  "}, "is blank"),
        ({"SLUICE_KAFKA_CERT_FILE": "/c"}, "go together"),
        ({"SLUICE_KAFKA_TLS": "maybe"}, "want true or false"),
        ({"SLUICE_KAFKA_SERVER_NAME": "k"}, "not supported by librdkafka"),
        ({"SLUICE_KAFKA_CONFIG": "/k.yaml"}, "read by the sluice binary"),
    ],
)
def test_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        KafkaSecurity.from_env(env)


def test_missing_password_file_is_named(tmp_path: Path) -> None:
    env = {
        "SLUICE_KAFKA_SASL_MECHANISM": "PLAIN",
        "SLUICE_KAFKA_SASL_USERNAME": "u",
        "SLUICE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "none"),
    }
    with pytest.raises(ValueError, match=r"SLUICE_KAFKA_SASL_PASSWORD_FILE .*none"):
        KafkaSecurity.from_env(env).settings()


def test_oauth_token_file_read_at_each_refresh(tmp_path: Path) -> None:
    tok = tmp_path / "token"
    tok.write_text("first\n")
    conf = KafkaSecurity.from_env(
        {"SLUICE_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "SLUICE_KAFKA_SASL_TOKEN_FILE": str(tok)}
    ).settings()
    cb: Any = conf["oauth_cb"]
    token, expiry = cb(None)
    assert token == "first"
    assert expiry > time.time()
    tok.write_text("second\n")
    assert cb(None)[0] == "second"


def test_oauth_token_command() -> None:
    conf = KafkaSecurity.from_env(
        {"SLUICE_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "SLUICE_KAFKA_SASL_TOKEN_COMMAND": "echo cmd-token"}
    ).settings()
    assert conf["oauth_cb"](None)[0] == "cmd-token"
    failing = KafkaSecurity.from_env(
        {"SLUICE_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "SLUICE_KAFKA_SASL_TOKEN_COMMAND": "false"}
    ).settings()
    with pytest.raises(ValueError, match="TOKEN_COMMAND false"):
        failing["oauth_cb"](None)


def test_environment_untouched() -> None:
    assert "SLUICE_KAFKA_SASL_PASSWORD" not in KafkaSecurity().settings()
    assert os.environ.get("SLUICE_KAFKA_CONFIG", "") == ""
