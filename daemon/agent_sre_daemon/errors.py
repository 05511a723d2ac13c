"""Every error the receivers return, and its gRPC and HTTP form, in one place.

Follows the OTLP specification's table: a retryable refusal is UNAVAILABLE / 503 (with a
Retry-After hint); bad input is INVALID_ARGUMENT / 400; an oversized message is
RESOURCE_EXHAUSTED / 413 (HTTP has a status of its own for it); a wrong content type is 415.
A storage failure (disk full, I/O error) is retryable: UNAVAILABLE / 503, reason ``storage``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from agent_sre_daemon.stores.errors import StorageError

STORAGE_RETRY_AFTER = 5.0


class ReceiverError(Exception):
    """A refusal with a message for the client."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500
    reason: str = "internal"
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(ReceiverError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    reason = "invalid"


class PayloadTooLargeError(ReceiverError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 413
    reason = "too_large"


class UnsupportedMediaTypeError(ReceiverError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 415
    reason = "content_type"


class UnavailableError(ReceiverError):
    """Retryable: the queue is full, the disk failed, or the daemon is shutting down."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    reason = "queue_full"

    def __init__(self, message: str, retry_after: float = 1.0, reason: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


def storage_unavailable(exc: StorageError | str) -> UnavailableError:
    """The answer to a request the durable queue could not store (the client retries)."""
    return UnavailableError(
        f"the daemon cannot store requests right now ({exc}); retry later",
        retry_after=STORAGE_RETRY_AFTER,
        reason="storage",
    )


# gRPC codes an OTLP exporter retries (opentelemetry-proto specification); RESOURCE_EXHAUSTED
# only when the server says when to come back, which ours does through RetryInfo.
RETRYABLE_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
    }
)
