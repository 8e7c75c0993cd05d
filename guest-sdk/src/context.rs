//! The worker's view of its flare: identity, layout and every primitive.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::element::{from_le, to_le};
use crate::wit::burst::bcm::comm;
use crate::wit::burst::bcm::types::BurstInfo;
use crate::{CommError, Dtype, Element, Error, PackRange, RESERVED_TAGS, ReduceOp};

/// Encodes a typed message (postcard: compact, self-delimiting).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(|e| Error::Codec(format!("encoding a message: {e}")))
}

/// Decodes a typed message.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec(format!("decoding a message of {} bytes: {e}", bytes.len())))
}

/// Receives the next message from `source` on `tag` a piece at a time: a
/// message from another pack lands in this worker's memory as its frames
/// arrive, instead of waiting whole in the host and being copied in at once
/// at the end. A message that came whole is returned as it came.
fn receive(source: u32, tag: u32) -> Result<Vec<u8>, Error> {
    let (len, first) = comm::recv_first(source, tag)?;
    complete(0, len, first)
}

/// Result `index` of the last `-first` call, of `len` bytes, whose first
/// piece is `first`: the rest is read piece by piece with `recv-more`.
fn complete(index: u32, len: u64, first: Vec<u8>) -> Result<Vec<u8>, Error> {
    if first.len() as u64 == len {
        return Ok(first);
    }
    let len = usize::try_from(len).map_err(|_| Error::work(format!("a message of {len} bytes does not fit")))?;
    let mut message = Vec::with_capacity(len);
    message.extend_from_slice(&first);
    drop(first);
    while message.len() < len {
        message.extend_from_slice(&comm::recv_more(index)?);
    }
    Ok(message)
}

fn decode_all<T: DeserializeOwned>(parts: &[Vec<u8>]) -> Result<Vec<T>, Error> {
    parts.iter().map(|p| decode(p)).collect()
}

fn encode_all<T: Serialize>(values: &[T]) -> Result<Vec<Vec<u8>>, Error> {
    values.iter().map(encode).collect()
}

fn check_user_tag(tag: u32) -> Result<(), Error> {
    if tag < RESERVED_TAGS {
        Ok(())
    } else {
        Err(CommError::InvalidArgument(format!("tag {tag:#x} is reserved (user tags are below {RESERVED_TAGS:#x})"))
            .into())
    }
}

/// Who this worker is, and how it talks to the others.
///
/// Methods ending in `_bytes` move raw bytes; the others move any serde type.
/// Lists indexed by worker id have exactly [`burst_size`](Self::burst_size)
/// entries; results of gathering calls are indexed by sender.
pub struct Context {
    info: BurstInfo,
}

impl Context {
    pub(crate) fn new() -> Self {
        Self { info: comm::info() }
    }

    /// This worker's id, in `0..burst_size()`.
    pub fn worker_id(&self) -> u32 {
        self.info.worker_id
    }

    /// Number of workers in the flare.
    pub fn burst_size(&self) -> u32 {
        self.info.burst_size
    }

    /// The pack this worker runs in.
    pub fn pack_id(&self) -> u32 {
        self.info.pack_id
    }

    /// Every pack of the flare, indexed by pack id.
    pub fn packs(&self) -> &[PackRange] {
        &self.info.packs
    }

    /// The pack of `worker_id`, if it is in the flare.
    pub fn pack_of(&self, worker_id: u32) -> Option<u32> {
        let index = self.info.packs.partition_point(|p| p.first <= worker_id).checked_sub(1)?;
        let pack = self.info.packs[index];
        (worker_id < pack.first + pack.count).then_some(index as u32)
    }

    /// The flare's id.
    pub fn flare_id(&self) -> &str {
        &self.info.flare_id
    }

    // Point to point.

    /// Sends `data` to `dest` (buffered: returns once handed off). Sending
    /// to yourself works.
    ///
    /// # Errors
    /// `InvalidWorker` when `dest` is not below the burst size.
    pub fn send_bytes(&self, dest: u32, data: &[u8]) -> Result<(), Error> {
        Ok(comm::send(dest, 0, data)?)
    }

    /// Receives the next message `source` sent with [`send_bytes`](Self::send_bytes).
    ///
    /// # Errors
    /// `InvalidWorker`, `Timeout`, `PeerFailed`.
    pub fn recv_bytes(&self, source: u32) -> Result<Vec<u8>, Error> {
        receive(source, 0)
    }

    /// Sends on channel `tag`; messages of one (source, destination, tag)
    /// arrive in order and never match another tag.
    ///
    /// # Errors
    /// `InvalidArgument` for a tag at or above [`RESERVED_TAGS`].
    pub fn send_tagged_bytes(&self, dest: u32, tag: u32, data: &[u8]) -> Result<(), Error> {
        check_user_tag(tag)?;
        Ok(comm::send(dest, tag, data)?)
    }

    /// Receives the next message from `source` on channel `tag`.
    ///
    /// # Errors
    /// As [`send_tagged_bytes`](Self::send_tagged_bytes) and [`recv_bytes`](Self::recv_bytes).
    pub fn recv_tagged_bytes(&self, source: u32, tag: u32) -> Result<Vec<u8>, Error> {
        check_user_tag(tag)?;
        receive(source, tag)
    }

    /// Sends a typed value to `dest`.
    ///
    /// # Errors
    /// As [`send_bytes`](Self::send_bytes), or `Codec`.
    pub fn send<T: Serialize + ?Sized>(&self, dest: u32, value: &T) -> Result<(), Error> {
        self.send_bytes(dest, &encode(value)?)
    }

    /// Receives a typed value from `source`.
    ///
    /// # Errors
    /// As [`recv_bytes`](Self::recv_bytes), or `Codec` when the message is
    /// not a `T`.
    pub fn recv<T: DeserializeOwned>(&self, source: u32) -> Result<T, Error> {
        decode(&self.recv_bytes(source)?)
    }

    pub(crate) fn send_reserved<T: Serialize>(&self, dest: u32, tag: u32, value: &T) -> Result<(), Error> {
        Ok(comm::send(dest, tag, &encode(value)?)?)
    }

    pub(crate) fn recv_reserved<T: DeserializeOwned>(&self, source: u32, tag: u32) -> Result<T, Error> {
        decode(&receive(source, tag)?)
    }

    // Collectives on bytes.

    /// Every worker gets the root's data. The root passes `Some`, every
    /// other worker `None`.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root, `InvalidArgument` when the rule above
    /// is broken.
    pub fn broadcast_bytes(&self, root: u32, data: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        let (len, first) = comm::broadcast_first(root, data)?;
        complete(0, len, first)
    }

    /// Worker `i` gets `parts[i]`. The root passes exactly `burst_size()`
    /// parts, every other worker `None`.
    ///
    /// # Errors
    /// `InvalidWorker`, `InvalidArgument` when the rule above is broken.
    pub fn scatter_bytes(&self, root: u32, parts: Option<&[Vec<u8>]>) -> Result<Vec<u8>, Error> {
        Ok(comm::scatter(root, parts)?)
    }

    /// The root gets every worker's data, indexed by sender; the others get
    /// `None`.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root.
    pub fn gather_bytes(&self, root: u32, data: &[u8]) -> Result<Option<Vec<Vec<u8>>>, Error> {
        Ok(comm::gather(root, data)?)
    }

    /// Every worker gets every worker's data, indexed by sender.
    ///
    /// # Errors
    /// The flare's failure.
    pub fn all_gather_bytes(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let firsts = comm::all_gather_first(data)?;
        (0..).zip(firsts).map(|(sender, (len, first))| complete(sender, len, first)).collect()
    }

    /// `parts[j]` goes to worker `j`; exactly `burst_size()` parts. The
    /// result is indexed by sender.
    ///
    /// # Errors
    /// `InvalidArgument` for a wrong number of parts.
    pub fn all_to_all_bytes(&self, parts: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Error> {
        let firsts = comm::all_to_all_first(parts)?;
        (0..).zip(firsts).map(|(sender, (len, first))| complete(sender, len, first)).collect()
    }

    /// Element-wise reduction of little-endian arrays of `ty` to `root`
    /// (the others get `None`). Every worker passes the same length.
    ///
    /// # Errors
    /// `InvalidArgument` for lengths that differ or are not whole elements.
    pub fn reduce_bytes(&self, root: u32, data: &[u8], ty: Dtype, op: ReduceOp) -> Result<Option<Vec<u8>>, Error> {
        Ok(comm::reduce(root, data, ty, op)?)
    }

    /// Element-wise reduction whose result every worker gets.
    ///
    /// # Errors
    /// As [`reduce_bytes`](Self::reduce_bytes).
    pub fn all_reduce_bytes(&self, data: &[u8], ty: Dtype, op: ReduceOp) -> Result<Vec<u8>, Error> {
        Ok(comm::all_reduce(data, ty, op)?)
    }

    /// Returns once every worker has entered the barrier.
    ///
    /// # Errors
    /// The flare's failure.
    pub fn barrier(&self) -> Result<(), Error> {
        Ok(comm::barrier()?)
    }

    // Typed collectives.

    /// Typed [`broadcast_bytes`](Self::broadcast_bytes).
    ///
    /// # Errors
    /// As the bytes form, or `Codec`.
    pub fn broadcast<T: Serialize + DeserializeOwned>(&self, root: u32, value: Option<&T>) -> Result<T, Error> {
        let data = value.map(encode).transpose()?;
        decode(&self.broadcast_bytes(root, data.as_deref())?)
    }

    /// Typed [`scatter_bytes`](Self::scatter_bytes).
    ///
    /// # Errors
    /// As the bytes form, or `Codec`.
    pub fn scatter<T: Serialize + DeserializeOwned>(&self, root: u32, parts: Option<&[T]>) -> Result<T, Error> {
        let parts = parts.map(encode_all).transpose()?;
        decode(&self.scatter_bytes(root, parts.as_deref())?)
    }

    /// Typed [`gather_bytes`](Self::gather_bytes).
    ///
    /// # Errors
    /// As the bytes form, or `Codec`.
    pub fn gather<T: Serialize + DeserializeOwned>(&self, root: u32, value: &T) -> Result<Option<Vec<T>>, Error> {
        self.gather_bytes(root, &encode(value)?)?.as_deref().map(decode_all).transpose()
    }

    /// Typed [`all_gather_bytes`](Self::all_gather_bytes).
    ///
    /// # Errors
    /// As the bytes form, or `Codec`.
    pub fn all_gather<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<Vec<T>, Error> {
        decode_all(&self.all_gather_bytes(&encode(value)?)?)
    }

    /// Typed [`all_to_all_bytes`](Self::all_to_all_bytes).
    ///
    /// # Errors
    /// As the bytes form, or `Codec`.
    pub fn all_to_all<T: Serialize + DeserializeOwned>(&self, parts: &[T]) -> Result<Vec<T>, Error> {
        decode_all(&self.all_to_all_bytes(&encode_all(parts)?)?)
    }

    /// Host-native element-wise reduction of numbers to `root`.
    ///
    /// # Errors
    /// As [`reduce_bytes`](Self::reduce_bytes).
    pub fn reduce<E: Element>(&self, root: u32, values: &[E], op: ReduceOp) -> Result<Option<Vec<E>>, Error> {
        Ok(self.reduce_bytes(root, &to_le(values), E::DTYPE, op)?.map(|b| from_le(&b)))
    }

    /// Host-native element-wise reduction of numbers, on every worker.
    ///
    /// # Errors
    /// As [`reduce_bytes`](Self::reduce_bytes).
    pub fn all_reduce<E: Element>(&self, values: &[E], op: ReduceOp) -> Result<Vec<E>, Error> {
        Ok(from_le(&self.all_reduce_bytes(&to_le(values), E::DTYPE, op)?))
    }
}
