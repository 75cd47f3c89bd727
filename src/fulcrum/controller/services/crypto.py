"""Encryption of write-only fields at rest, and password hashing with a memory-hard KDF."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) over JSON documents of secret fields."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path, env_key: str | None = None) -> SecretBox:
        """Use FULCRUM_SECRET_KEY when given (clusters share it), else `<data-dir>/secret.key` (0600)."""
        if env_key:
            return cls(env_key.encode())
        path = data_dir / "secret.key"
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
        return cls(path.read_bytes().strip())

    def seal(self, values: dict[str, Any]) -> str | None:
        if not values:
            return None
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise RuntimeError("stored secrets cannot be decrypted: wrong FULCRUM_SECRET_KEY?") from None


class Passwords:
    """Argon2id hashing. Memory cost is a setting so that tests may use a smaller (still hard) cost."""

    def __init__(self, memory_kib: int = 65536, time_cost: int = 3) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=1)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        if not stored_hash:
            # Spend the same time as a real check so timing does not reveal unknown users.
            self._hasher.hash(password)
            return False
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
