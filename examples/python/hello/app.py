"""``hello`` in Python: the twin of ``examples/hello`` (Rust).

Every worker sends its id to the next worker in a ring, receives from the
previous one, then all-reduces the sum of ids. It checks both results
itself and returns them, with the same keys as the Rust twin.
"""

from burst_sdk import Context, ReduceOp, work


@work
def hello(_input: object, ctx: Context) -> dict:
    n, me = ctx.burst_size, ctx.worker_id
    previous = (me + n - 1) % n
    ctx.send((me + 1) % n, me)
    received_from = ctx.recv(previous)
    if received_from != previous:
        raise ValueError(f"expected the id {previous} from the ring, got {received_from}")
    sum_of_ids = ctx.all_reduce([me], ReduceOp.SUM, dtype="u64")[0]
    expected = n * (n - 1) // 2
    if sum_of_ids != expected:
        raise ValueError(f"the ids sum to {expected}, the all-reduce gave {sum_of_ids}")
    return {
        "worker_id": me,
        "burst_size": n,
        "pack_id": ctx.pack_id,
        "received_from": received_from,
        "sum_of_ids": sum_of_ids,
    }
