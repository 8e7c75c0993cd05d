"""Errors of a work function's communication calls.

``CommError`` and its subclasses mirror the WIT ``comm-error`` variant one
case to one class, so ``except PeerFailed`` catches exactly what a Rust
guest sees as ``CommError::PeerFailed``. ``CodecError`` is the SDK's own: a
message that could not be pickled or unpickled.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = [
    "BackendError",
    "Cancelled",
    "CodecError",
    "CommError",
    "InvalidArgument",
    "InvalidWorker",
    "PeerFailed",
    "ProtocolError",
    "Timeout",
    "TooLarge",
]


class CommError(Exception):
    """The host refused or could not complete a communication call."""


class InvalidWorker(CommError):
    """A worker id (destination, source or root) is not below the burst size."""

    def __init__(self, worker: int) -> None:
        super().__init__(f"worker {worker} does not exist in this flare")
        self.worker = worker


class InvalidArgument(CommError):
    """The arguments break a precondition of the call."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid argument: {message}")
        self.message = message


class TooLarge(CommError):
    """A message is larger than the host accepts; ``size`` is its size in bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(f"message of {size} bytes is too large")
        self.size = size


class Timeout(CommError):
    """The flare's deadline passed while waiting."""

    def __init__(self) -> None:
        super().__init__("the flare's deadline passed")


class Cancelled(CommError):
    """The flare was cancelled from outside."""

    def __init__(self) -> None:
        super().__init__("the flare was cancelled")


class PeerFailed(CommError):
    """Another worker of the flare failed; ``worker`` is its id."""

    def __init__(self, worker: int) -> None:
        super().__init__(f"worker {worker} of the flare failed")
        self.worker = worker


class BackendError(CommError):
    """The remote backend (broker) failed."""

    def __init__(self, message: str) -> None:
        super().__init__(f"backend: {message}")
        self.message = message


class ProtocolError(CommError):
    """A message from the backend broke the wire protocol."""

    def __init__(self, message: str) -> None:
        super().__init__(f"protocol: {message}")
        self.message = message


class CodecError(Exception):
    """A Python object could not be pickled, or a message is not a pickle."""


def raise_comm_error(error: object) -> NoReturn:
    """Raises the ``CommError`` subclass of a WIT ``comm-error`` case.

    The bindings' case classes are named ``CommError_<Case>`` and carry their
    payload as ``value``; matching on the name keeps this module importable
    outside a component (its unit tests run on CPython).
    """
    case = type(error).__name__.removeprefix("CommError_")
    value = getattr(error, "value", None)
    if case == "InvalidWorker":
        raise InvalidWorker(value)
    if case == "InvalidArgument":
        raise InvalidArgument(value)
    if case == "TooLarge":
        raise TooLarge(value)
    if case == "Timeout":
        raise Timeout()
    if case == "Cancelled":
        raise Cancelled()
    if case == "PeerFailed":
        raise PeerFailed(value)
    if case == "Backend":
        raise BackendError(value)
    if case == "Protocol":
        raise ProtocolError(value)
    raise CommError(f"unknown comm-error case {type(error).__name__}: {value!r}")
