//! `microbench`: one primitive, one payload size, every byte checked.
//!
//! Input: `{"primitive": "pair" | "broadcast" | "scatter" | "gather" |
//! "all-gather" | "all-to-all" | "reduce" | "all-reduce" | "barrier" | "compute",
//! "size": bytes, "root": worker, "iterations": n}`. Payloads are filled with
//! a pseudo-random stream derived from (sender, receiver, size), so a
//! message delivered to the wrong worker, truncated or reordered fails the
//! check. Payloads are built before and checked after the timed part;
//! returns the time of each iteration as seen by this worker.
//!
//! `"compute"` moves nothing: each worker builds and checks one payload of
//! `size` bytes, timed, so that the same code (`payload.rs`) can be timed
//! natively and in Wasm (`cargo bench -p burst-controller --bench compute`).

mod payload;

use std::time::Instant;

use burst_guest_sdk::{Context, Error, ReduceOp, export_work};
use serde::{Deserialize, Serialize};

/// Receiver id used in the pattern of a payload meant for every worker.
const EVERYONE: u32 = u32::MAX;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Primitive {
    Pair,
    Broadcast,
    Scatter,
    Gather,
    AllGather,
    AllToAll,
    Reduce,
    AllReduce,
    Barrier,
    Compute,
}

#[derive(Deserialize)]
struct Input {
    primitive: Primitive,
    #[serde(default)]
    size: usize,
    #[serde(default)]
    root: u32,
    #[serde(default = "one")]
    iterations: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
struct Output {
    worker_id: u32,
    /// Microseconds of each iteration, from a common barrier to the end of
    /// this worker's communication.
    elapsed_us: Vec<u64>,
    /// Payload bytes this worker checked.
    checked_bytes: u64,
    /// Size of this worker's linear memory at the end (it never shrinks,
    /// so this is its peak): what the host process holds for the guest,
    /// to tell apart from what it holds for itself.
    memory_bytes: u64,
}

#[cfg(target_arch = "wasm32")]
fn linear_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65536
}

#[cfg(not(target_arch = "wasm32"))]
fn linear_memory_bytes() -> u64 {
    0
}

fn check(what: &str, got: &[u8], sender: u32, receiver: u32) -> Result<u64, Error> {
    match payload::first_mismatch(got, sender, receiver) {
        Some(at) => Err(Error::work(format!("{what} from {sender}: byte {at} of {} is wrong", got.len()))),
        None => Ok(got.len() as u64),
    }
}

fn check_len(what: &str, got: &[u8], size: usize) -> Result<(), Error> {
    if got.len() == size {
        Ok(())
    } else {
        Err(Error::work(format!("{what}: got {} bytes, expected {size}", got.len())))
    }
}

/// Element `i` of the reduce input of `worker`.
fn reduce_element(worker: u32, i: usize) -> u64 {
    (i as u64).wrapping_mul(0x1000_0001) ^ u64::from(worker).wrapping_mul(0x9e37_79b9)
}

/// The reduce input of `worker`: `size / 8` u64s.
fn reduce_input(worker: u32, size: usize) -> Vec<u64> {
    (0..size / 8).map(|i| reduce_element(worker, i)).collect()
}

fn check_reduced(ctx: &Context, got: &[u64], size: usize) -> Result<u64, Error> {
    if got.len() != size / 8 {
        return Err(Error::work(format!("reduced {} elements, expected {}", got.len(), size / 8)));
    }
    for (i, &value) in got.iter().enumerate() {
        let expected = (0..ctx.burst_size()).map(|w| reduce_element(w, i)).fold(0u64, u64::wrapping_add);
        if value != expected {
            return Err(Error::work(format!("reduced element {i} is {value}, expected {expected}")));
        }
    }
    Ok(size as u64 / 8 * 8)
}

/// What a worker sends in one iteration, built before the clock starts.
enum Outgoing {
    Nothing,
    Bytes(Vec<u8>),
    Parts(Vec<Vec<u8>>),
    Numbers(Vec<u64>),
}

/// What a worker received in one iteration, checked after the clock stops.
enum Received {
    Nothing,
    Bytes(Vec<u8>),
    Parts(Vec<Vec<u8>>),
    Numbers(Vec<u64>),
}

fn prepare(input: &Input, ctx: &Context) -> Outgoing {
    let (me, n, root, size) = (ctx.worker_id(), ctx.burst_size(), input.root, input.size);
    match input.primitive {
        Primitive::Pair if me == 0 => Outgoing::Bytes(payload::pattern(0, 1, size)),
        Primitive::Broadcast if me == root => Outgoing::Bytes(payload::pattern(root, EVERYONE, size)),
        Primitive::Scatter if me == root => Outgoing::Parts((0..n).map(|d| payload::pattern(root, d, size)).collect()),
        Primitive::Gather => Outgoing::Bytes(payload::pattern(me, root, size)),
        Primitive::AllGather => Outgoing::Bytes(payload::pattern(me, EVERYONE, size)),
        Primitive::AllToAll => Outgoing::Parts((0..n).map(|d| payload::pattern(me, d, size)).collect()),
        Primitive::Reduce | Primitive::AllReduce => Outgoing::Numbers(reduce_input(me, size)),
        _ => Outgoing::Nothing,
    }
}

fn communicate(input: &Input, ctx: &Context, outgoing: Outgoing) -> Result<Received, Error> {
    let (me, root) = (ctx.worker_id(), input.root);
    Ok(match (input.primitive, outgoing) {
        (Primitive::Pair, Outgoing::Bytes(data)) => {
            ctx.send_bytes(1, &data)?;
            Received::Nothing
        }
        (Primitive::Pair, _) if me == 1 => Received::Bytes(ctx.recv_bytes(0)?),
        (Primitive::Pair, _) => Received::Nothing,
        (Primitive::Broadcast, Outgoing::Bytes(data)) => Received::Bytes(ctx.broadcast_bytes(root, Some(&data))?),
        (Primitive::Broadcast, _) => Received::Bytes(ctx.broadcast_bytes(root, None)?),
        (Primitive::Scatter, Outgoing::Parts(parts)) => Received::Bytes(ctx.scatter_bytes(root, Some(&parts))?),
        (Primitive::Scatter, _) => Received::Bytes(ctx.scatter_bytes(root, None)?),
        (Primitive::Gather, Outgoing::Bytes(data)) => {
            ctx.gather_bytes(root, &data)?.map_or(Received::Nothing, Received::Parts)
        }
        (Primitive::AllGather, Outgoing::Bytes(data)) => Received::Parts(ctx.all_gather_bytes(&data)?),
        (Primitive::AllToAll, Outgoing::Parts(parts)) => Received::Parts(ctx.all_to_all_bytes(&parts)?),
        (Primitive::Reduce, Outgoing::Numbers(values)) => {
            ctx.reduce(root, &values, ReduceOp::Sum)?.map_or(Received::Nothing, Received::Numbers)
        }
        (Primitive::AllReduce, Outgoing::Numbers(values)) => Received::Numbers(ctx.all_reduce(&values, ReduceOp::Sum)?),
        (Primitive::Barrier, _) => {
            ctx.barrier()?;
            Received::Nothing
        }
        (primitive, _) => return Err(Error::work(format!("{primitive:?}: nothing prepared to send"))),
    })
}

fn verify(input: &Input, ctx: &Context, received: &Received) -> Result<u64, Error> {
    let (me, root, size) = (ctx.worker_id(), input.root, input.size);
    let what = format!("{:?}", input.primitive);
    match received {
        Received::Nothing => Ok(0),
        Received::Numbers(values) => check_reduced(ctx, values, size),
        Received::Bytes(got) => {
            check_len(&what, got, size)?;
            let (sender, receiver) = match input.primitive {
                Primitive::Pair => (0, 1),
                Primitive::Broadcast => (root, EVERYONE),
                _ => (root, me),
            };
            check(&what, got, sender, receiver)
        }
        Received::Parts(parts) => {
            if parts.len() != ctx.burst_size() as usize {
                return Err(Error::work(format!("{what}: {} parts for {} workers", parts.len(), ctx.burst_size())));
            }
            let mut checked = 0;
            for (sender, part) in (0..).zip(parts) {
                check_len(&what, part, size)?;
                let receiver = match input.primitive {
                    Primitive::AllGather => EVERYONE,
                    Primitive::Gather => root,
                    _ => me,
                };
                checked += check(&what, part, sender, receiver)?;
            }
            Ok(checked)
        }
    }
}

/// Builds and checks one payload, timed: the compute of the other primitives
/// without the communication.
fn compute(ctx: &Context, size: usize) -> Result<(u64, u64), Error> {
    let start = Instant::now();
    let data = payload::pattern(ctx.worker_id(), ctx.worker_id(), size);
    let checked = check("compute", &data, ctx.worker_id(), ctx.worker_id())?;
    Ok((start.elapsed().as_micros() as u64, checked))
}

fn work(input: Input, ctx: &Context) -> Result<Output, Error> {
    if input.primitive == Primitive::Pair && ctx.burst_size() < 2 {
        return Err(Error::work("pair needs at least two workers"));
    }
    let mut elapsed_us = Vec::with_capacity(input.iterations as usize);
    let mut checked_bytes = 0;
    for _ in 0..input.iterations {
        if input.primitive == Primitive::Compute {
            let (elapsed, checked) = compute(ctx, input.size)?;
            elapsed_us.push(elapsed);
            checked_bytes += checked;
            continue;
        }
        let outgoing = prepare(&input, ctx);
        ctx.barrier()?;
        let start = Instant::now();
        let received = communicate(&input, ctx, outgoing)?;
        elapsed_us.push(start.elapsed().as_micros() as u64);
        checked_bytes += verify(&input, ctx, &received)?;
    }
    Ok(Output { worker_id: ctx.worker_id(), elapsed_us, checked_bytes, memory_bytes: linear_memory_bytes() })
}

export_work!(work);
