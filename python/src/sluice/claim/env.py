"""The store a process's claims are kept in, from the environment the
platform gives its Python replicas (platform/cli pythonRegistryEnv):
SLUICE_S3_ENDPOINT, SLUICE_S3_BUCKET, SLUICE_S3_PREFIX, SLUICE_S3_TLS,
SLUICE_S3_CA_FILE and the credentials (SLUICE_S3_ACCESS_KEY,
SLUICE_S3_SECRET_KEY, else the contents of the files
SLUICE_S3_ACCESS_KEY_FILE, SLUICE_S3_SECRET_KEY_FILE, else
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: the Go side's order), or
SLUICE_BLOB_DIR, `sluice dev`'s directory."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sluice.claim.claims import DEFAULT_LIMIT, DEFAULT_THRESHOLD, Claims
from sluice.claim.s3 import S3Config, S3Store
from sluice.claim.store import DirStore, Store

DEFAULT_BUCKET = "sluice-models"
"""The bucket when SLUICE_S3_BUCKET is unset: the platform's --s3-bucket default."""


def store_from_env(env: Mapping[str, str] | None = None) -> Store | None:
    """The store env names; None when it names none. A bad setting is a
    ValueError naming it."""
    env = os.environ if env is None else env
    if endpoint := env.get("SLUICE_S3_ENDPOINT", ""):
        ca = env.get("SLUICE_S3_CA_FILE", "")
        return S3Store(S3Config(
            endpoint=endpoint,
            bucket=env.get("SLUICE_S3_BUCKET") or DEFAULT_BUCKET,
            access_key=_key(env, "SLUICE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
            secret_key=_key(env, "SLUICE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
            prefix=env.get("SLUICE_S3_PREFIX", ""),
            tls=env.get("SLUICE_S3_TLS", "") in ("1", "true") or bool(ca),
            ca_file=ca,
        ))  # fmt: skip
    if d := env.get("SLUICE_BLOB_DIR", ""):
        return DirStore(d)
    return None


def _key(env: Mapping[str, str], name: str, aws: str) -> str:
    """A credential: $name, else the contents of the file $name_FILE (a
    mounted Secret, trailing white space dropped), else $aws. A file that
    cannot be read is a ValueError naming its variable."""
    if v := env.get(name, ""):
        return v
    if path := env.get(name + "_FILE", ""):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip()
        except OSError as exc:
            raise ValueError(f"${name}_FILE: {exc}") from None
    return env.get(aws, "")


def open_claims(threshold: int = DEFAULT_THRESHOLD, limit: int = DEFAULT_LIMIT,
               env: Mapping[str, str] | None = None) -> Claims | None:  # fmt: skip
    """The claims of a process on the store env names; None without one
    (every value then goes in its record)."""
    store = store_from_env(env)
    return None if store is None else Claims(store, threshold, limit)
