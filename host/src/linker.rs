//! Links `burst:bcm/comm` by hand.
//!
//! The generated `Host` trait would lift every `list<u8>` into a fresh
//! `Vec<u8>` and lower results from `Vec<u8>`; linking with `Bytes` instead
//! lets one refcounted buffer go from the sender's lifted copy to every local
//! receiver, so a local send costs one copy out of the sender and one into
//! the receiver, and a local broadcast to k workers 1 + k copies. Each
//! function clones the worker's `Arc<WorkerComm>` out of the store before
//! awaiting, so no borrow of the store lives across a suspension.

use bytes::Bytes;
use wasmtime::component::Linker;

use crate::bindings::WitCommError;
use crate::engine::WorkerState;
use crate::{Dtype, ReduceOp};

type CommResult<T> = Result<T, WitCommError>;

/// Links one async comm function: `$name`, its parameter tuple, and the
/// `WorkerComm` call that answers it.
macro_rules! link {
    ($instance:ident, $name:literal, |$comm:ident, ($($arg:ident),*): $params:ty| -> $ret:ty { $call:expr }) => {
        $instance.func_wrap_async($name, |store, ($($arg,)*): $params| {
            let $comm = std::sync::Arc::clone(&store.data().comm);
            Box::new(async move {
                let result: CommResult<$ret> = $call.await.map_err(WitCommError::from);
                Ok((result,))
            })
        })?;
    };
}

pub(crate) fn add_comm(linker: &mut Linker<WorkerState>) -> anyhow::Result<()> {
    let mut comm = linker.instance("burst:bcm/comm@0.1.0")?;
    comm.func_wrap("info", |store, (): ()| Ok((store.data().comm.info(),)))?;
    link!(comm, "send", |c, (dest, tag, data): (u32, u32, Bytes)| -> () { c.send(dest, tag, data) });
    link!(comm, "recv", |c, (source, tag): (u32, u32)| -> Bytes { c.recv(source, tag) });
    link!(comm, "broadcast", |c, (root, data): (u32, Option<Bytes>)| -> Bytes { c.broadcast(root, data) });
    link!(comm, "scatter", |c, (root, parts): (u32, Option<Vec<Bytes>>)| -> Bytes { c.scatter(root, parts) });
    link!(comm, "gather", |c, (root, data): (u32, Bytes)| -> Option<Vec<Bytes>> { c.gather(root, data) });
    link!(comm, "all-gather", |c, (data): (Bytes,)| -> Vec<Bytes> { c.all_gather(data) });
    link!(comm, "all-to-all", |c, (parts): (Vec<Bytes>,)| -> Vec<Bytes> { c.all_to_all(parts) });
    link!(comm, "reduce", |c, (root, data, ty, op): (u32, Bytes, Dtype, ReduceOp)| -> Option<Bytes> {
        c.reduce(root, data, ty, op)
    });
    link!(comm, "all-reduce", |c, (data, ty, op): (Bytes, Dtype, ReduceOp)| -> Bytes { c.all_reduce(data, ty, op) });
    link!(comm, "barrier", |c, (): ()| -> () { c.barrier() });
    Ok(())
}
