//! Links `burst:bcm/comm` by hand.
//!
//! The generated `Host` trait would lift every `list<u8>` into a fresh
//! `Vec<u8>` and lower results from `Vec<u8>`; linking with `Bytes` instead
//! lets one refcounted buffer go from the sender's lifted copy to every local
//! receiver, so a local send costs one copy out of the sender and one into
//! the receiver, and a local broadcast to k workers 1 + k copies. Each
//! function clones the worker's `Arc<WorkerComm>` out of the store before
//! awaiting, so no borrow of the store lives across a suspension.
//!
//! Byte-list arguments are read in place from the guest's memory and copied
//! once into a host buffer of their size (a list of parts into one buffer
//! per part), so a message costs one copy out of the guest and one
//! allocation, and holds no memory but its own.

use bytes::Bytes;
use wasmtime::AsContext;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList};

use crate::bindings::WitCommError;
use crate::engine::WorkerState;
use crate::{Dtype, ReduceOp};

type CommResult<T> = Result<T, WitCommError>;

/// Links one async comm function: `$name`, its parameter tuple, and the
/// `WorkerComm` call that answers it.
macro_rules! link {
    ($instance:ident, $name:literal, |$store:ident, $comm:ident, ($($arg:ident),*): $params:ty| -> $ret:ty {
        let $bound:ident = $prepare:expr; $call:expr
    }) => {
        $instance.func_wrap_async($name, |mut $store: StoreContextMut<'_, WorkerState>, ($($arg,)*): $params| {
            let $comm = std::sync::Arc::clone(&$store.data().comm);
            let $bound = $prepare;
            Box::new(async move {
                let _in_call = $comm.enter_call();
                let result: CommResult<$ret> = $call.await.map_err(WitCommError::from);
                Ok((result,))
            })
        })?;
    };
    ($instance:ident, $name:literal, |$comm:ident, ($($arg:ident),*): $params:ty| -> $ret:ty { $call:expr }) => {
        $instance.func_wrap_async($name, |store, ($($arg,)*): $params| {
            let $comm = std::sync::Arc::clone(&store.data().comm);
            Box::new(async move {
                let _in_call = $comm.enter_call();
                let result: CommResult<$ret> = $call.await.map_err(WitCommError::from);
                Ok((result,))
            })
        })?;
    };
}

pub(crate) fn add_comm(linker: &mut Linker<WorkerState>) -> anyhow::Result<()> {
    let mut comm = linker.instance("burst:bcm/comm@0.1.0")?;
    comm.func_wrap("info", |store, (): ()| Ok((store.data().comm.info(),)))?;
    link!(comm, "send", |store, c, (dest, tag, data): (u32, u32, WasmList<u8>)| -> () {
        let data = copy_in(&mut store, &data);
        c.send(dest, tag, data)
    });
    link!(comm, "recv", |c, (source, tag): (u32, u32)| -> Bytes { c.recv(source, tag) });
    link!(comm, "broadcast", |store, c, (root, data): (u32, Option<WasmList<u8>>)| -> Bytes {
        let data = data.map(|list| copy_in(&mut store, &list));
        c.broadcast(root, data)
    });
    link!(comm, "scatter", |store, c, (root, parts): (u32, Option<Vec<WasmList<u8>>>)| -> Bytes {
        let parts = parts.map(|parts| copy_parts(&mut store, &parts));
        c.scatter(root, parts)
    });
    link!(comm, "gather", |store, c, (root, data): (u32, WasmList<u8>)| -> Option<Vec<Bytes>> {
        let data = copy_in(&mut store, &data);
        c.gather(root, data)
    });
    link!(comm, "all-gather", |store, c, (data): (WasmList<u8>,)| -> Vec<Bytes> {
        let data = copy_in(&mut store, &data);
        c.all_gather(data)
    });
    link!(comm, "all-to-all", |store, c, (parts): (Vec<WasmList<u8>>,)| -> Vec<Bytes> {
        let parts = copy_parts(&mut store, &parts);
        c.all_to_all(parts)
    });
    link!(comm, "reduce", |store, c, (root, data, ty, op): (u32, WasmList<u8>, Dtype, ReduceOp)| -> Option<Bytes> {
        let data = copy_in(&mut store, &data);
        c.reduce(root, data, ty, op)
    });
    link!(comm, "all-reduce", |store, c, (data, ty, op): (WasmList<u8>, Dtype, ReduceOp)| -> Bytes {
        let data = copy_in(&mut store, &data);
        c.all_reduce(data, ty, op)
    });
    link!(comm, "barrier", |c, (): ()| -> () { c.barrier() });
    Ok(())
}

/// Copies a guest's byte list into a host buffer of its size, shared from
/// then on by every receiver.
fn copy_in(store: &mut StoreContextMut<'_, WorkerState>, list: &WasmList<u8>) -> Bytes {
    Bytes::copy_from_slice(list.as_le_slice(store.as_context()))
}

/// Copies a guest's list of byte lists into one host buffer per part: each
/// part may wait for its receiver alone, so it must pin no more memory than
/// its own bytes.
fn copy_parts(store: &mut StoreContextMut<'_, WorkerState>, parts: &[WasmList<u8>]) -> Vec<Bytes> {
    let store = store.as_context();
    parts.iter().map(|part| Bytes::copy_from_slice(part.as_le_slice(&store))).collect()
}
