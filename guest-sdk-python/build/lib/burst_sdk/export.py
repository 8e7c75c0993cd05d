"""The component's ``work`` export: JSON in, the ``@work`` function, JSON out.

``burst-py build`` makes an entry module that imports the user's module
(whose ``@work`` registers its function) and then this module's
``WitWorld``, which componentize-py exports. The import runs when the
component is built, so a module without a ``@work`` function fails the
build, not the flare.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, Optional

import wit_world
from componentize_py_types import Err

from .context import Context
from .errors import CommError

__all__ = ["WitWorld", "registered", "work"]

WorkFunction = Callable[[Any, Context], Any]

_work: Optional[WorkFunction] = None


def work(function: WorkFunction) -> WorkFunction:
    """Makes ``function(input, ctx)`` this component's work function.

    ``input`` is the worker's JSON input, decoded; what it returns is
    encoded as JSON. An exception fails the worker with its type and
    message (a ``CommError`` with its message alone), and its traceback goes
    to the worker's stderr."""
    global _work
    if _work is not None:
        raise RuntimeError(f"a component has one @work function: {_work.__qualname__} is already it, not {function.__qualname__}")
    _work = function
    return function


def registered() -> WorkFunction:
    """The ``@work`` function; raises when the app defined none."""
    if _work is None:
        raise RuntimeError("the app defines no @work function (decorate one with @burst_sdk.work)")
    return _work


def _flush() -> None:
    # A worker is not a process that exits: what print() left in the
    # buffers would never reach the host without this.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or replaced stream must not fail the worker
            pass


def run(input: bytes) -> bytes:
    """Runs the ``@work`` function on a JSON input; raises ``Err(message)``."""
    try:
        value = json.loads(input)
    except (ValueError, UnicodeDecodeError) as error:
        raise Err(f"invalid input: {error}") from None
    try:
        output = registered()(value, Context())
    except CommError as error:
        _flush()
        raise Err(str(error)) from None
    except Exception as error:
        traceback.print_exc()
        _flush()
        raise Err(f"{type(error).__name__}: {error}") from None
    _flush()
    try:
        return json.dumps(output, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise Err(f"could not encode the output as JSON: {error}") from None


class WitWorld(wit_world.WitWorld):
    """The ``burst:bcm/worker`` world's export."""

    def work(self, input: bytes) -> bytes:
        return run(input)
