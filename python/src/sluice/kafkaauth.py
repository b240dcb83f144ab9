"""How the Python side secures its Kafka connections: the SLUICE_KAFKA_*
environment the Go processes read (streams/kafkaauth) and hand to every
replica they start, as librdkafka settings. TLS (a CA bundle, a client
certificate) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
with a token from a file, read again at each refresh, or a command)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

TOKEN_LIFETIME_S = 60.0
"""How long librdkafka keeps an OAUTHBEARER token before asking again (at
80% of it): the token file is read again, or the command run, that often."""

TOKEN_COMMAND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KafkaSecurity:
    """The security of a process's Kafka connections; the default is
    plaintext without SASL."""

    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    mechanism: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    token_file: str = ""
    token_command: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("kafka security: SLUICE_KAFKA_CERT_FILE and SLUICE_KAFKA_KEY_FILE go together")
        m = self.mechanism
        if m and m not in MECHANISMS:
            raise ValueError(f"kafka security: SLUICE_KAFKA_SASL_MECHANISM {m!r} is not one of {', '.join(MECHANISMS)}")
        if m in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.username:
                raise ValueError(f"kafka security: SLUICE_KAFKA_SASL_USERNAME is required with {m}")
            if bool(self.password) == bool(self.password_file):
                raise ValueError(
                    f"kafka security: {m} needs one of SLUICE_KAFKA_SASL_PASSWORD and SLUICE_KAFKA_SASL_PASSWORD_FILE"
                )
        if m == "OAUTHBEARER" and bool(self.token_file) == bool(self.token_command):
            raise ValueError(
                "kafka security: OAUTHBEARER needs one of SLUICE_KAFKA_SASL_TOKEN_FILE"
                " and SLUICE_KAFKA_SASL_TOKEN_COMMAND"
            )
        if m == "OAUTHBEARER" and self.token_command and not shlex.split(self.token_command):
            raise ValueError("kafka security: SLUICE_KAFKA_SASL_TOKEN_COMMAND is blank: name the command")

    @property
    def tls_on(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """Reads the SLUICE_KAFKA_* variables (the Go processes resolve any
        config file into them before starting a replica)."""
        if env.get("SLUICE_KAFKA_CONFIG"):
            raise ValueError(
                "kafka security: SLUICE_KAFKA_CONFIG is read by the sluice binary;"
                " give the Python replica SLUICE_KAFKA_* variables"
            )
        if env.get("SLUICE_KAFKA_SERVER_NAME"):
            raise ValueError(
                "kafka security: SLUICE_KAFKA_SERVER_NAME is not supported by librdkafka;"
                " use a certificate naming the brokers' hosts"
            )
        flag = env.get("SLUICE_KAFKA_TLS", "").lower()
        if flag not in ("", "true", "false", "1", "0"):
            raise ValueError(f"kafka security: SLUICE_KAFKA_TLS={flag!r}: want true or false")
        return cls(
            tls=flag in ("true", "1"),
            ca_file=env.get("SLUICE_KAFKA_CA_FILE", ""),
            cert_file=env.get("SLUICE_KAFKA_CERT_FILE", ""),
            key_file=env.get("SLUICE_KAFKA_KEY_FILE", ""),
            mechanism=env.get("SLUICE_KAFKA_SASL_MECHANISM", "").upper(),
            username=env.get("SLUICE_KAFKA_SASL_USERNAME", ""),
            password=env.get("SLUICE_KAFKA_SASL_PASSWORD", ""),
            password_file=env.get("SLUICE_KAFKA_SASL_PASSWORD_FILE", ""),
            token_file=env.get("SLUICE_KAFKA_SASL_TOKEN_FILE", ""),
            token_command=env.get("SLUICE_KAFKA_SASL_TOKEN_COMMAND", ""),
        )

    def settings(self) -> dict[str, Any]:
        """The librdkafka settings of this security."""
        proto = {(False, False): "PLAINTEXT", (True, False): "SSL", (False, True): "SASL_PLAINTEXT"}
        conf: dict[str, Any] = {"security.protocol": proto.get((self.tls_on, bool(self.mechanism)), "SASL_SSL")}
        if self.ca_file:
            conf["ssl.ca.location"] = self.ca_file
        if self.cert_file:
            conf["ssl.certificate.location"] = self.cert_file
            conf["ssl.key.location"] = self.key_file
        if not self.mechanism:
            return conf
        conf["sasl.mechanism"] = self.mechanism
        if self.mechanism == "OAUTHBEARER":
            conf["oauth_cb"] = self._oauth_cb(self._token_source())
            return conf
        conf["sasl.username"] = self.username
        conf["sasl.password"] = self.password or _read_secret(self.password_file, "SLUICE_KAFKA_SASL_PASSWORD_FILE")
        return conf

    def secret(self) -> str:
        """The password (PLAIN, SCRAM) or the token (OAUTHBEARER), read now."""
        if self.mechanism == "OAUTHBEARER":
            return self._token_source()()
        return self.password or _read_secret(self.password_file, "SLUICE_KAFKA_SASL_PASSWORD_FILE")

    def _token_source(self) -> Callable[[], str]:
        if self.token_file:
            path = self.token_file
            return lambda: _read_secret(path, "SLUICE_KAFKA_SASL_TOKEN_FILE")
        argv = shlex.split(self.token_command)

        def run() -> str:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=TOKEN_COMMAND_TIMEOUT_S, check=False)
            if out.returncode != 0 or not out.stdout.strip():
                what = f"SLUICE_KAFKA_SASL_TOKEN_COMMAND {argv[0]}: exit {out.returncode}"
                raise ValueError(f"kafka security: {what}: {out.stderr.strip()}")
            return out.stdout.strip()

        return run

    @staticmethod
    def _oauth_cb(token: Callable[[], str]) -> Callable[[str | None], tuple[str, float]]:
        def cb(_config: str | None) -> tuple[str, float]:
            return token(), time.time() + TOKEN_LIFETIME_S

        return cb


def _read_secret(path: str, what: str) -> str:
    try:
        v = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"kafka security: {what} {path}: {exc.strerror}") from exc
    if not v:
        raise ValueError(f"kafka security: {what} {path} is empty")
    return v


@cache
def process_security() -> KafkaSecurity:
    """This process's security, from its environment, read once."""
    return KafkaSecurity.from_env(os.environ)


def client_settings(brokers: list[str]) -> dict[str, Any]:
    """The settings every librdkafka client of this process starts from:
    the brokers and this process's security."""
    return {"bootstrap.servers": ",".join(brokers), **process_security().settings()}
