//! `hello`: the smallest complete burst program.
//!
//! Every worker sends its id to the next worker in a ring, receives from the
//! previous one, then all-reduces the sum of ids. It checks both results
//! itself and returns them.

use burst_guest_sdk::{Context, Error, ReduceOp, export_work};
use serde::Serialize;
use serde::de::IgnoredAny;

/// What each worker returns.
#[derive(Serialize)]
struct Hello {
    worker_id: u32,
    burst_size: u32,
    pack_id: u32,
    received_from: u32,
    sum_of_ids: u64,
}

fn work(_input: IgnoredAny, ctx: &Context) -> Result<Hello, Error> {
    let (id, n) = (ctx.worker_id(), ctx.burst_size());
    let previous = (id + n - 1) % n;
    ctx.send((id + 1) % n, &id)?;
    let received_from: u32 = ctx.recv(previous)?;
    if received_from != previous {
        return Err(Error::work(format!("expected the id {previous} from the ring, got {received_from}")));
    }
    let sum_of_ids = ctx.all_reduce(&[u64::from(id)], ReduceOp::Sum)?[0];
    let expected = u64::from(n) * u64::from(n - 1) / 2;
    if sum_of_ids != expected {
        return Err(Error::work(format!("the ids sum to {expected}, the all-reduce gave {sum_of_ids}")));
    }
    Ok(Hello { worker_id: id, burst_size: n, pack_id: ctx.pack_id(), received_from, sum_of_ids })
}

export_work!(work);
