//! `microbench`: one primitive, one payload size, every byte checked.
//!
//! Input: `{"primitive": "pair" | "broadcast" | "scatter" | "gather" |
//! "all-gather" | "all-to-all" | "reduce" | "all-reduce" | "barrier",
//! "size": bytes, "root": worker, "iterations": n}`. Payloads are filled with
//! a pseudo-random stream derived from (sender, receiver, size), so a
//! message delivered to the wrong worker, truncated or reordered fails the
//! check. Returns the time of each iteration as seen by this worker.

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
    /// this worker's part.
    elapsed_us: Vec<u64>,
    /// Payload bytes this worker checked.
    checked_bytes: u64,
}

/// splitmix64: a cheap, well-mixed stream, seeded per (sender, receiver, size).
fn pattern(sender: u32, receiver: u32, size: usize) -> Vec<u8> {
    let mut state = (u64::from(sender) << 32 | u64::from(receiver)) ^ (size as u64).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

fn check(what: &str, got: &[u8], sender: u32, receiver: u32) -> Result<u64, Error> {
    let expected = pattern(sender, receiver, got.len());
    if let Some(at) = got.iter().zip(&expected).position(|(a, b)| a != b) {
        return Err(Error::work(format!("{what} from {sender}: byte {at} of {} is wrong", got.len())));
    }
    Ok(got.len() as u64)
}

fn check_len(what: &str, got: &[u8], size: usize) -> Result<(), Error> {
    if got.len() == size { Ok(()) } else { Err(Error::work(format!("{what}: got {} bytes, expected {size}", got.len()))) }
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

fn run_once(input: &Input, ctx: &Context) -> Result<u64, Error> {
    let (me, n, root, size) = (ctx.worker_id(), ctx.burst_size(), input.root, input.size);
    let mut checked = 0;
    match input.primitive {
        Primitive::Pair => {
            if n < 2 {
                return Err(Error::work("pair needs at least two workers"));
            }
            if me == 0 {
                ctx.send_bytes(1, &pattern(0, 1, size))?;
            } else if me == 1 {
                let got = ctx.recv_bytes(0)?;
                check_len("pair", &got, size)?;
                checked += check("pair", &got, 0, 1)?;
            }
        }
        Primitive::Broadcast => {
            let data = (me == root).then(|| pattern(root, EVERYONE, size));
            let got = ctx.broadcast_bytes(root, data.as_deref())?;
            check_len("broadcast", &got, size)?;
            checked += check("broadcast", &got, root, EVERYONE)?;
        }
        Primitive::Scatter => {
            let parts: Option<Vec<Vec<u8>>> = (me == root).then(|| (0..n).map(|d| pattern(root, d, size)).collect());
            let got = ctx.scatter_bytes(root, parts.as_deref())?;
            check_len("scatter", &got, size)?;
            checked += check("scatter", &got, root, me)?;
        }
        Primitive::Gather => {
            if let Some(parts) = ctx.gather_bytes(root, &pattern(me, root, size))? {
                for (sender, part) in (0..).zip(&parts) {
                    check_len("gather", part, size)?;
                    checked += check("gather", part, sender, root)?;
                }
            }
        }
        Primitive::AllGather => {
            for (sender, part) in (0..).zip(&ctx.all_gather_bytes(&pattern(me, EVERYONE, size))?) {
                check_len("all-gather", part, size)?;
                checked += check("all-gather", part, sender, EVERYONE)?;
            }
        }
        Primitive::AllToAll => {
            let parts: Vec<Vec<u8>> = (0..n).map(|d| pattern(me, d, size)).collect();
            for (sender, part) in (0..).zip(&ctx.all_to_all_bytes(&parts)?) {
                check_len("all-to-all", part, size)?;
                checked += check("all-to-all", part, sender, me)?;
            }
        }
        Primitive::Reduce => {
            if let Some(got) = ctx.reduce(root, &reduce_input(me, size), ReduceOp::Sum)? {
                checked += check_reduced(ctx, &got, size)?;
            }
        }
        Primitive::AllReduce => {
            checked += check_reduced(ctx, &ctx.all_reduce(&reduce_input(me, size), ReduceOp::Sum)?, size)?;
        }
        Primitive::Barrier => ctx.barrier()?,
    }
    Ok(checked)
}

fn work(input: Input, ctx: &Context) -> Result<Output, Error> {
    let mut elapsed_us = Vec::with_capacity(input.iterations as usize);
    let mut checked_bytes = 0;
    for _ in 0..input.iterations {
        ctx.barrier()?;
        let start = Instant::now();
        checked_bytes += run_once(&input, ctx)?;
        elapsed_us.push(start.elapsed().as_micros() as u64);
    }
    Ok(Output { worker_id: ctx.worker_id(), elapsed_us, checked_bytes })
}

export_work!(work);
