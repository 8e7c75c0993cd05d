"""Write burst work functions in Python.

A work function takes the flare's JSON input (decoded) and a
:class:`Context`, and returns anything JSON can encode; ``@work`` makes it
the ``work`` export of the ``burst:bcm/worker`` world::

    from burst_sdk import Context, ReduceOp, work

    @work
    def main(greeting: str, ctx: Context) -> str:
        total = ctx.all_reduce([ctx.worker_id], ReduceOp.SUM, dtype="u64")[0]
        return f"{greeting} from {ctx.worker_id} of {ctx.burst_size} (ids sum to {total})"

Build it with ``burst-py build app.py -o app.wasm`` and run the component
with ``burst run`` or deploy it, as a Rust one. Every collective must be
called by every worker of the flare, in the same order. Messages are raw
bytes (``*_bytes`` methods) or Python objects, pickled.
"""

from .context import RESERVED_TAGS, Context, PackRange
from .errors import (
    BackendError,
    Cancelled,
    CodecError,
    CommError,
    InvalidArgument,
    InvalidWorker,
    PeerFailed,
    ProtocolError,
    Timeout,
    TooLarge,
)
from .export import work
from .numbers import DTYPES, ReduceOp

__all__ = [
    "DTYPES",
    "RESERVED_TAGS",
    "BackendError",
    "Cancelled",
    "CodecError",
    "CommError",
    "Context",
    "InvalidArgument",
    "InvalidWorker",
    "PackRange",
    "PeerFailed",
    "ProtocolError",
    "ReduceOp",
    "Timeout",
    "TooLarge",
    "work",
]
