"""Transient faults of an HTTP call, and how long to wait before its next attempt.

Connection errors, timeouts and HTTP 429/500/502/503/504 are transient. The wait doubles per attempt,
with jitter, unless the server asks for a positive `Retry-After`: the vendor's material never
mentions the header, and a server may send `0`, a date gone by or something unreadable, none of
which may make the client hammer it with attempts at the same instant.
"""

from __future__ import annotations

import email.utils
import math
import random
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_cap_seconds * 5)
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


class TransientError(Exception):
    def __init__(self, cause: str, retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(cause)
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection to the host at all (a name it cannot resolve, say)


class UntrustedCertificate(Exception):
    """No retry helps: the server's certificate does not verify."""


@contextmanager
def transient_faults() -> Iterator[None]:
    """httpx's transport errors as `TransientError`, but for a certificate that does not verify."""
    try:
        yield
    except (httpx.TransportError, httpx.DecodingError) as error:
        untrusted = _certificate_error(error)
        if untrusted is not None:
            raise UntrustedCertificate(untrusted.verify_message or str(untrusted)) from None
        unreachable = isinstance(error, httpx.ConnectError)
        raise TransientError(f"{type(error).__name__}: {error}", unreachable=unreachable) from None


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def raise_if_transient(response: httpx.Response) -> None:
    if response.status_code in TRANSIENT_STATUSES:
        raise TransientError(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    """The seconds a `Retry-After` value asks for (a number, or an HTTP date with its zone), if positive;
    None for anything else, which leaves the wait to the backoff."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # a date without a zone names no instant
            return None
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return seconds if math.isfinite(seconds) and seconds > 0 else None
