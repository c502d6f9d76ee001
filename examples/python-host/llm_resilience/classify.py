"""The types of the ``classify`` interface: :class:`ErrorKind` and :class:`Classification`.

They mirror ``interface classify`` in ``wit/llm-resilience.wit``; the meaning of each kind is
documented there and in the project's design (the error taxonomy).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

__all__ = ["ErrorKind", "Classification"]


class ErrorKind(str, enum.Enum):
    """What kind of failure a call met: a closed set with one catch-all (``UNKNOWN``).

    The values are the kebab-case names used by the WIT, the vectors and every other surface,
    so ``ErrorKind("rate-limited") is ErrorKind.RATE_LIMITED`` and
    ``ErrorKind.RATE_LIMITED == "rate-limited"``.
    """

    #: Credentials invalid, revoked or missing. Not retryable.
    AUTH = "auth"
    #: The account or key has no money or quota left. Not retryable until topped up.
    QUOTA_EXHAUSTED = "quota-exhausted"
    #: The input or output was flagged by a content filter. Not retryable.
    MODERATION = "moderation"
    #: Temporary throttling; retry after the hinted delay.
    RATE_LIMITED = "rate-limited"
    #: The call timed out (client, gateway or upstream). Retryable.
    TIMEOUT = "timeout"
    #: The request is larger than the endpoint accepts. Retry only after shrinking.
    CONTEXT_OVERFLOW = "context-overflow"
    #: Malformed or unsupported request. Not retryable.
    INVALID_REQUEST = "invalid-request"
    #: The model or endpoint does not exist. Not retryable; use a fallback model.
    NOT_FOUND = "not-found"
    #: The provider is saturated (529, "overloaded"). Retry with backoff.
    OVERLOADED = "overloaded"
    #: The upstream is down or unreachable. Retryable; trips breakers.
    UNAVAILABLE = "unavailable"
    #: Any other upstream 5xx. Retryable, limited.
    SERVER_ERROR = "server-error"
    #: Connection refused or reset, DNS, TLS, a cut stream. Retryable except TLS failures.
    NETWORK = "network"
    #: None of the above. The message is kept, but callers must not parse it.
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Classification:
    """What a failure was, and what it says about retrying.

    Optional fields are ``None`` when the failure did not state them.
    """

    #: The kind of failure.
    kind: ErrorKind
    #: Whether retrying the same request (perhaps after a wait) can succeed.
    retryable: bool
    #: How long the server asked us to wait, in milliseconds.
    retry_after_ms: Optional[int]
    #: The context limit the error states, in tokens.
    limit_tokens: Optional[int]
    #: The request size the error states, in tokens.
    requested_tokens: Optional[int]
    #: The provider that produced the error.
    provider: Optional[str]
    #: The provider's own error code or type.
    code: Optional[str]
    #: OpenRouter's ``error.metadata.error_type``, when present.
    error_type: Optional[str]
    #: A human-readable message with secrets redacted.
    message: str
