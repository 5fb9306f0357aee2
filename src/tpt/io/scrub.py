"""Scrubbing secrets from text before it is stored, logged or raised.

A server may echo a request's headers in an error body, whole or cut anywhere (the body is often
truncated by the server, by a proxy or by us). So every run of ``MIN_PIECE`` or more characters of
the secret is replaced, not only the whole secret, and scrubbing always happens on the full text,
before any truncation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

MIN_PIECE = 6  # shorter pieces of a key are indistinguishable from ordinary text
MASK = "***"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = _scrub_one(text, secret)
    return text


def _scrub_one(text: str, secret: str) -> str:
    if len(secret) < MIN_PIECE:
        return text.replace(secret, MASK)
    pieces = {secret[i : i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1)}
    covered = bytearray(len(text))  # 1 where a character is part of a piece of the secret
    for j in range(len(text) - MIN_PIECE + 1):
        if text[j : j + MIN_PIECE] in pieces:
            covered[j : j + MIN_PIECE] = b"\x01" * MIN_PIECE
    if not any(covered):
        return text
    out, j = [], 0
    while j < len(text):
        if covered[j]:
            while j < len(text) and covered[j]:
                j += 1
            out.append(MASK)
        else:
            out.append(text[j])
            j += 1
    return "".join(out)


def env_secrets(*names: str) -> list[str]:
    """The values of the named environment variables (the API keys a run may hold)."""
    return [os.environ[n] for n in names if os.environ.get(n)]


def scrub_env(text: str, *names: str) -> str:
    return scrub(text, env_secrets(*names))
