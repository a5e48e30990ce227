"""Secrets at rest: webhook signing secrets are stored sealed with Fernet, never in plain text.

The Fernet keys are derived (HKDF-SHA256) from ``CHUTE_SECRET_KEY``, with a purpose label, so
the same setting can sign upload tokens without the two uses sharing a key. Rotation is
MultiFernet's: the new key encrypts, the keys in ``CHUTE_OLD_SECRET_KEYS`` still decrypt, and
``chute keys reencrypt`` rewrites every sealed value under the new key (README, "Keys").

When ``CHUTE_SECRET_KEY`` is empty a random key is generated once into ``secret_key_file``:
enough for ``chute dev`` and for processes sharing one machine, never for several machines.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from functools import cache, lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models.settings import Settings, current_settings

#: The HKDF label of the webhook-secret key: another use of CHUTE_SECRET_KEY derives its own.
PURPOSE = b"chute webhook secrets v1"


class SealingError(RuntimeError):
    """A sealed value that no configured key opens (the key was rotated away, or is wrong)."""


def derive_key(secret_key: str, purpose: bytes = PURPOSE) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) for ``purpose``, derived from ``secret_key``."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def secret_key(settings: Settings) -> str:
    """The configured secret key, or the one generated into ``secret_key_file`` (made on first use)."""
    return settings.secret_key or _generated_key(os.path.abspath(settings.secret_key_file))


@cache
def _generated_key(key_file: str) -> str:
    """The key in ``key_file``, made first if it is missing; looked up once per process (the
    file is made once and never rewritten), as every webhook signature asks for it."""
    path = Path(key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        # link() fails if another process made the file first: then everyone uses that one.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        temp.unlink()
    return path.read_text().strip()


@cache
def _fernet(current: str, old: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(derive_key(k)) for k in (current, *old)])


def fernet(settings: Settings | None = None) -> MultiFernet:
    settings = settings or current_settings()
    return _fernet(secret_key(settings), settings.old_secret_keys)


def seal(value: str, settings: Settings | None = None) -> str:
    """``value`` encrypted (and authenticated) under the current key."""
    return fernet(settings).encrypt(value.encode()).decode("ascii")


def unseal(token: str, settings: Settings | None = None) -> str:
    """The plain value of a sealed ``token``.

    Raises:
        SealingError: no configured key opens it.
    """
    try:
        return _unsealed(token, fernet(settings))
    except (InvalidToken, ValueError):
        raise SealingError(
            "a stored secret cannot be decrypted: every process needs the same CHUTE_SECRET_KEY, "
            "and the key it was sealed with must be current or in CHUTE_OLD_SECRET_KEYS"
        ) from None


@lru_cache(maxsize=4096)
def _unsealed(token: str, keys: MultiFernet) -> str:
    """Remembered: every webhook attempt unsealed its tenant's secret (a tenth of the attempt's
    CPU). A sealed token has one plain value under given keys; new keys are a new ``MultiFernet``
    (``_fernet``), so a rotation is never answered from here. A token that fails is not kept."""
    return keys.decrypt(token.encode("ascii")).decode()


def reseal(token: str, settings: Settings | None = None) -> str:
    """``token`` re-encrypted under the current key (MultiFernet.rotate).

    Raises:
        SealingError: no configured key opens it.
    """
    try:
        return fernet(settings).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        raise SealingError("a stored secret cannot be decrypted with any configured key") from None
