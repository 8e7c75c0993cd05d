//! Links `burst:bcm/comm` by hand.
//!
//! The generated `Host` trait would lift every `list<u8>` into a fresh
//! `Vec<u8>` and lower results from `Vec<u8>`; linking with `Bytes` instead
//! lets one refcounted buffer go from the sender's lifted copy to every local
//! receiver, so a local send costs one copy out of the sender and one into
//! the receiver, and a local broadcast to k workers 1 + k copies.
//!
//! Byte-list arguments are read in place from the guest's memory: the
//! future of a call holds the worker's store while it runs (the guest is
//! suspended in the call, so its memory cannot change), so what goes to
//! another pack is framed straight from linear memory into the broker, a
//! chunk at a time, and only what stays in the pack (or meets other local
//! workers' inputs in a collective round) is copied into a host buffer of
//! its size. Messages from other packs can be received the same way, a
//! piece at a time (a `-first` call, then `recv-more`), so a large message
//! never has to be whole in the host on either side.

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList};

use crate::bindings::WitCommError;
use crate::comm::{Payload, Primitive};
use crate::engine::WorkerState;
use crate::{Dtype, ReduceOp};

type CommResult<T> = Result<T, WitCommError>;

/// Links one async comm function: `$name`, its parameter tuple, and the
/// `WorkerComm` call that answers it, which may borrow the guest's memory
/// through `$store` for as long as it runs. The call's time is recorded
/// for the results (`Primitive`).
macro_rules! link {
    ($instance:ident, $name:literal, |$store:ident, $comm:ident, ($($arg:ident),*): $params:ty| -> $ret:ty {
        $call:expr
    }) => {
        let primitive = Primitive::of_function($name);
        $instance.func_wrap_async($name, move |$store: StoreContextMut<'_, WorkerState>, ($($arg,)*): $params| {
            let $comm = std::sync::Arc::clone(&$store.data().comm);
            let waiting = $store.data().ticking.waiting();
            Box::new(async move {
                let _waiting = waiting;
                let _in_call = $comm.enter_call(primitive);
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
        c.send(dest, tag, Payload::Borrowed(data.as_le_slice(&store)))
    });
    link!(comm, "recv", |store, c, (source, tag): (u32, u32)| -> Bytes { c.recv(source, tag) });
    link!(comm, "recv-first", |store, c, (source, tag): (u32, u32)| -> (u64, Bytes) { c.recv_first(source, tag) });
    link!(comm, "recv-more", |store, c, (index): (u32,)| -> Bytes { c.recv_more(index) });
    link!(comm, "broadcast", |store, c, (root, data): (u32, Option<WasmList<u8>>)| -> Bytes {
        c.broadcast(root, data.map(|list| Bytes::copy_from_slice(list.as_le_slice(&store))))
    });
    link!(comm, "broadcast-first", |store, c, (root, data): (u32, Option<WasmList<u8>>)| -> (u64, Bytes) {
        c.broadcast_first(root, data.map(|list| Bytes::copy_from_slice(list.as_le_slice(&store))))
    });
    link!(comm, "scatter", |store, c, (root, parts): (u32, Option<Vec<WasmList<u8>>>)| -> Bytes {
        c.scatter(root, parts.as_deref().map(|parts| borrow_parts(&store, parts)))
    });
    link!(comm, "gather", |store, c, (root, data): (u32, WasmList<u8>)| -> Option<Vec<Bytes>> {
        c.gather(root, Payload::Borrowed(data.as_le_slice(&store)))
    });
    link!(comm, "all-gather", |store, c, (data): (WasmList<u8>,)| -> Vec<Bytes> {
        c.all_gather(Bytes::copy_from_slice(data.as_le_slice(&store)))
    });
    link!(comm, "all-gather-first", |store, c, (data): (WasmList<u8>,)| -> Vec<(u64, Bytes)> {
        c.all_gather_first(Bytes::copy_from_slice(data.as_le_slice(&store)))
    });
    link!(comm, "all-to-all", |store, c, (parts): (Vec<WasmList<u8>>,)| -> Vec<Bytes> {
        c.all_to_all(borrow_parts(&store, &parts))
    });
    link!(comm, "all-to-all-first", |store, c, (parts): (Vec<WasmList<u8>>,)| -> Vec<(u64, Bytes)> {
        c.all_to_all_first(borrow_parts(&store, &parts))
    });
    link!(comm, "reduce", |store, c, (root, data, ty, op): (u32, WasmList<u8>, Dtype, ReduceOp)| -> Option<Bytes> {
        c.reduce(root, Bytes::copy_from_slice(data.as_le_slice(&store)), ty, op)
    });
    link!(comm, "all-reduce", |store, c, (data, ty, op): (WasmList<u8>, Dtype, ReduceOp)| -> Bytes {
        c.all_reduce(Bytes::copy_from_slice(data.as_le_slice(&store)), ty, op)
    });
    link!(comm, "barrier", |store, c, (): ()| -> () { c.barrier() });
    Ok(())
}

/// Each part of a guest's list of byte lists, read in place.
fn borrow_parts<'a>(store: &'a StoreContextMut<'_, WorkerState>, parts: &[WasmList<u8>]) -> Vec<Payload<'a>> {
    parts.iter().map(|part| Payload::Borrowed(part.as_le_slice(store))).collect()
}
