"""Decoding an OTLP protobuf body, with the error both receivers answer when it fails."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from agent_sre_daemon.errors import InvalidArgumentError


def decode_protobuf(message_type: Any, body: bytes) -> Any:
    """``body`` as a ``message_type``.

    Raises:
        InvalidArgumentError: it is not one (the type, the size and the decoder's reason).
    """
    try:
        return message_type.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"cannot decode {message_type.DESCRIPTOR.name} ({len(body)} bytes): {exc}"
        ) from None
