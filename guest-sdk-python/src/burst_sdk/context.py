"""The worker's view of its flare: identity, layout and every primitive.

Methods ending in ``_bytes`` move raw ``bytes``; the others move any
picklable Python object. Lists indexed by worker id have exactly
``burst_size`` entries; results of gathering calls are indexed by sender.
Every collective must be called by every worker, in the same order.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TypeVar

from componentize_py_types import Err
from wit_world.imports import comm

from .errors import CodecError, InvalidArgument, InvalidWorker, raise_comm_error
from .numbers import Numbers, ReduceOp, decode_numbers, encode_numbers, wit_dtype

__all__ = ["Context", "PackRange", "RESERVED_TAGS"]

#: Tags at or above this value are reserved for the SDK's own messages
#: (the same split as the Rust SDK's, so that the two never collide).
RESERVED_TAGS = 0xFFFF_0000
#: The tag of untagged sends (``send``, ``send_bytes``).
DEFAULT_TAG = 0
#: The tag of ``reduce_with``'s messages.
REDUCE_TAG = RESERVED_TAGS + 1
#: Pickle protocol of typed messages: every worker of a flare runs the same
#: component, so the newest protocol the interpreter has is always readable.
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

T = TypeVar("T")


@dataclass(frozen=True)
class PackRange:
    """A contiguous range of worker ids that share one pack."""

    first: int
    count: int

    def __contains__(self, worker_id: object) -> bool:
        return isinstance(worker_id, int) and self.first <= worker_id < self.first + self.count


def _call(function: Callable[..., T], *args: Any) -> T:
    """Calls a host function, raising its ``comm-error`` as a ``CommError``."""
    try:
        return function(*args)
    except Err as error:
        raise_comm_error(error.value)


def _encode(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as error:  # pickling runs arbitrary __reduce__ code
        raise CodecError(f"encoding a message: {error}") from error


def _decode(data: bytes) -> Any:
    try:
        return pickle.loads(data)
    except Exception as error:  # any garbage can make unpickling fail
        raise CodecError(f"decoding a message of {len(data)} bytes: {error}") from error


def _complete(index: int, length: int, first: bytes) -> bytes:
    """Result ``index`` of the last ``-first`` call, of ``length`` bytes, whose
    first piece is ``first``: the rest is read piece by piece while it arrives,
    so a large message from another pack is never whole in the host."""
    pieces, received = [first], len(first)
    while received < length:
        piece = _call(comm.recv_more, index)
        pieces.append(piece)
        received += len(piece)
    # One copy into the message, however many pieces came.
    return first if len(pieces) == 1 else b"".join(pieces)


def _check_user_tag(tag: int) -> None:
    if not 0 <= tag < RESERVED_TAGS:
        raise InvalidArgument(f"tag {tag:#x} is reserved or negative (user tags are in 0..{RESERVED_TAGS:#x})")


class Context:
    """Who this worker is, and how it talks to the others."""

    def __init__(self) -> None:
        info = comm.info()
        self._flare_id: str = info.flare_id
        self._worker_id: int = info.worker_id
        self._burst_size: int = info.burst_size
        self._pack_id: int = info.pack_id
        self._packs: tuple[PackRange, ...] = tuple(PackRange(p.first, p.count) for p in info.packs)

    @property
    def worker_id(self) -> int:
        """This worker's id, in ``range(burst_size)``."""
        return self._worker_id

    @property
    def burst_size(self) -> int:
        """Number of workers in the flare."""
        return self._burst_size

    @property
    def pack_id(self) -> int:
        """The pack this worker runs in."""
        return self._pack_id

    @property
    def packs(self) -> tuple[PackRange, ...]:
        """Every pack of the flare, indexed by pack id."""
        return self._packs

    @property
    def flare_id(self) -> str:
        """The flare's id."""
        return self._flare_id

    def pack_of(self, worker_id: int) -> Optional[int]:
        """The pack of ``worker_id``, or ``None`` when it is not in the flare."""
        for pack, workers in enumerate(self._packs):
            if worker_id in workers:
                return pack
        return None

    # Point to point.

    def send_bytes(self, dest: int, data: bytes, tag: int = DEFAULT_TAG) -> None:
        """Sends ``data`` to ``dest`` on channel ``tag`` (buffered: returns once
        handed off). Messages of one (source, destination, tag) arrive in order.

        Raises ``InvalidWorker`` for a bad ``dest``, ``InvalidArgument`` for a
        reserved tag."""
        _check_user_tag(tag)
        _call(comm.send, dest, tag, bytes(data))

    def recv_bytes(self, source: int, tag: int = DEFAULT_TAG) -> bytes:
        """Receives the next message ``source`` sent to this worker on ``tag``."""
        _check_user_tag(tag)
        return self._receive(source, tag)

    def send(self, dest: int, value: Any, tag: int = DEFAULT_TAG) -> None:
        """Sends a picklable ``value`` to ``dest``."""
        self.send_bytes(dest, _encode(value), tag)

    def recv(self, source: int, tag: int = DEFAULT_TAG) -> Any:
        """Receives a value ``source`` sent with :meth:`send`."""
        return _decode(self.recv_bytes(source, tag))

    def _receive(self, source: int, tag: int) -> bytes:
        length, first = _call(comm.recv_first, source, tag)
        return _complete(0, length, first)

    # Collectives on bytes.

    def broadcast_bytes(self, root: int, data: Optional[bytes] = None) -> bytes:
        """Every worker gets the root's ``data``; only the root passes it."""
        length, first = _call(comm.broadcast_first, root, None if data is None else bytes(data))
        return _complete(0, length, first)

    def scatter_bytes(self, root: int, parts: Optional[Sequence[bytes]] = None) -> bytes:
        """Worker ``i`` gets ``parts[i]``; only the root passes exactly
        ``burst_size`` parts."""
        return _call(comm.scatter, root, None if parts is None else [bytes(p) for p in parts])

    def gather_bytes(self, root: int, data: bytes) -> Optional[list[bytes]]:
        """The root gets every worker's ``data`` indexed by sender; the others ``None``."""
        return _call(comm.gather, root, bytes(data))

    def all_gather_bytes(self, data: bytes) -> list[bytes]:
        """Every worker gets every worker's ``data``, indexed by sender."""
        firsts = _call(comm.all_gather_first, bytes(data))
        return [_complete(sender, length, first) for sender, (length, first) in enumerate(firsts)]

    def all_to_all_bytes(self, parts: Sequence[bytes]) -> list[bytes]:
        """``parts[j]`` goes to worker ``j`` (exactly ``burst_size`` parts); the
        result is indexed by sender."""
        firsts = _call(comm.all_to_all_first, [bytes(p) for p in parts])
        return [_complete(sender, length, first) for sender, (length, first) in enumerate(firsts)]

    def barrier(self) -> None:
        """Returns once every worker has entered the barrier."""
        _call(comm.barrier)

    # Collectives on Python objects.

    def broadcast(self, root: int, value: Any = None) -> Any:
        """Every worker gets the root's ``value`` (what others pass is ignored)."""
        data = _encode(value) if self._worker_id == root else None
        return _decode(self.broadcast_bytes(root, data))

    def scatter(self, root: int, parts: Optional[Sequence[Any]] = None) -> Any:
        """Worker ``i`` gets ``parts[i]``; only the root passes ``parts``."""
        encoded = None if parts is None else [_encode(p) for p in parts]
        return _decode(self.scatter_bytes(root, encoded))

    def gather(self, root: int, value: Any) -> Optional[list[Any]]:
        """The root gets every worker's ``value`` indexed by sender; the others ``None``."""
        parts = self.gather_bytes(root, _encode(value))
        return None if parts is None else [_decode(p) for p in parts]

    def all_gather(self, value: Any) -> list[Any]:
        """Every worker gets every worker's ``value``, indexed by sender."""
        return [_decode(p) for p in self.all_gather_bytes(_encode(value))]

    def all_to_all(self, parts: Sequence[Any]) -> list[Any]:
        """``parts[j]`` goes to worker ``j``; the result is indexed by sender."""
        return [_decode(p) for p in self.all_to_all_bytes([_encode(p) for p in parts])]

    # Host-native numeric reductions.

    def reduce_bytes(self, root: int, data: bytes, dtype: str, op: ReduceOp) -> Optional[bytes]:
        """Element-wise reduction of little-endian numbers of ``dtype`` (a name
        of :data:`DTYPES`) to ``root``; the others get ``None``."""
        return _call(comm.reduce, root, bytes(data), wit_dtype(dtype), op.wit())

    def all_reduce_bytes(self, data: bytes, dtype: str, op: ReduceOp) -> bytes:
        """:meth:`reduce_bytes` whose result every worker gets."""
        return _call(comm.all_reduce, bytes(data), wit_dtype(dtype), op.wit())

    def reduce(self, root: int, values: Numbers, op: ReduceOp, dtype: Optional[str] = None) -> Optional[Any]:
        """Element-wise reduction of numbers to ``root`` (the others get ``None``).

        ``values`` is an ``array.array`` or a ``memoryview`` of a WIT dtype
        (typecodes ``B i I q Q f d`` and their aliases), or a sequence of
        numbers with ``dtype`` (``"u8"``, ``"i32"``, ``"u32"``, ``"i64"``,
        ``"u64"``, ``"f32"``, ``"f64"``). The result is an ``array.array`` of
        the same dtype. Every worker passes the same length."""
        data, ty = encode_numbers(values, dtype)
        result = _call(comm.reduce, root, data, ty, op.wit())
        return None if result is None else decode_numbers(result, ty)

    def all_reduce(self, values: Numbers, op: ReduceOp, dtype: Optional[str] = None) -> Any:
        """:meth:`reduce` whose result every worker gets."""
        data, ty = encode_numbers(values, dtype)
        return decode_numbers(_call(comm.all_reduce, data, ty, op.wit()), ty)

    # Reductions with a Python function, over a pack-aware tree.

    def reduce_with(self, root: int, value: T, fn: Callable[[T, T], T]) -> Optional[T]:
        """Reduces every worker's ``value`` with ``fn`` to ``root``, which gets
        ``v0 ∘ v1 ∘ … ∘ vN-1``; the others get ``None``.

        Each pack folds its workers' values at its leader (the root in the
        root's pack, its first worker elsewhere), then the leaders send their
        partials to the root, so one value per pack crosses packs. Values are
        folded in worker-id order: ``fn`` must be associative, not commutative."""
        root_pack, my_pack = self.pack_of(root), self.pack_of(self._worker_id)
        if root_pack is None or my_pack is None:
            raise InvalidWorker(root)

        def leader(pack: int) -> int:
            return root if pack == root_pack else self._packs[pack].first

        me = self._worker_id
        if me != leader(my_pack):
            self._send_reserved(leader(my_pack), value)
            return None
        workers = self._packs[my_pack]
        values = (value if w == me else self._recv_reserved(w) for w in range(workers.first, workers.first + workers.count))
        partial = _fold(values, fn)
        if me != root:
            self._send_reserved(root, partial)
            return None
        partials = (partial if p == my_pack else self._recv_reserved(leader(p)) for p in range(len(self._packs)))
        return _fold(partials, fn)

    def all_reduce_with(self, value: T, fn: Callable[[T, T], T]) -> T:
        """:meth:`reduce_with` to worker 0, then a broadcast: every worker gets it."""
        return self.broadcast(0, self.reduce_with(0, value, fn))

    def _send_reserved(self, dest: int, value: Any) -> None:
        _call(comm.send, dest, REDUCE_TAG, _encode(value))

    def _recv_reserved(self, source: int) -> Any:
        return _decode(self._receive(source, REDUCE_TAG))


def _fold(values: Any, fn: Callable[[T, T], T]) -> T:
    iterator = iter(values)
    total = next(iterator)
    for value in iterator:
        total = fn(total, value)
    return total
