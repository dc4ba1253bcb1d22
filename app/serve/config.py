"""How the server listens and what it accepts: bind address, API key, CORS, queue and size limits.

A bind to anything but a loopback address needs a key (`IDEAFORGE_SERVER_KEY`); the key is registered as a
secret at once, so it is redacted from everything ideaforge prints or writes.

Example:
    >>> ServeConfig(host="127.0.0.1").check()
    >>> ServeConfig(host="0.0.0.0").check()
    Traceback (most recent call last):
    ...
    ideaforge.errors.InputError: binding to '0.0.0.0' (not loopback) needs an API key: set IDEAFORGE_SERVER_KEY, or serve on 127.0.0.1
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from ideaforge.errors import InputError
from ideaforge.tools.sanitize import register_secret

KEY_ENV = "IDEAFORGE_SERVER_KEY"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost` are loopback; every other address or name is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """The server's own settings; the forge's (model, steps, out, ...) are `Settings`, as for the CLI."""

    host: str = "127.0.0.1"
    port: int = 8000
    key: str | None = field(default=None, repr=False)
    cors: list[str] = field(default_factory=list)  # allowed origins; empty: no CORS headers at all
    batch_size: int = 8  # most images in one merged pipeline call
    workers: int = 0  # run threads; 0: 2 x batch_size (half fill the next batch while the rest save)
    max_queue: int = 64  # runs waiting or running (sync and jobs together) before 429
    max_n: int = 4  # most images one request may ask for
    max_body: int = 64 * 1024  # bytes in one request body
    model_name: str = "ideaforge"  # the id in /v1/models and the `model` requests may name

    def __post_init__(self) -> None:
        register_secret(self.key)

    @classmethod
    def from_env(cls, **values: object) -> ServeConfig:
        """Given values, with the key from `IDEAFORGE_SERVER_KEY` unless given."""
        given = {k: v for k, v in values.items() if v is not None}
        given.setdefault("key", os.environ.get(KEY_ENV) or None)
        return cls(**given)  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuse an unsafe or impossible configuration with one line (no key on a public bind, bad limits)."""
        if not is_loopback(self.host) and not self.key:
            raise InputError(
                f"binding to {self.host!r} (not loopback) needs an API key: set {KEY_ENV}, or serve on 127.0.0.1"
            )
        if self.key is not None and len(self.key.strip()) < 8:
            raise InputError(f"{KEY_ENV} is too short; use at least 8 characters (e.g. `openssl rand -hex 16`)")
        for name in ("batch_size", "max_queue", "max_n", "max_body"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} {getattr(self, name)!r} is invalid: use 1 or more")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port!r} is invalid: use 0 to 65535")

    @property
    def threads(self) -> int:
        return self.workers if self.workers > 0 else max(2, 2 * self.batch_size)
