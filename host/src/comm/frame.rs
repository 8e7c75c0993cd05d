//! The wire format of what crosses packs through a broker, and reassembly.
//!
//! A message is split into chunks; each chunk travels as one frame with an
//! explicit little-endian header:
//!
//! ```text
//! magic u8 | version u8 | kind u8 | flare-id length u8 | flare id (utf-8)
//! tag u32 | seq u64 | source u32 | dest u32
//! chunk index u32 | chunk count u32 | total length u64 | chunk bytes...
//! ```
//!
//! `kind` is a [`Kind`] code, [`ABORT`] for a frame whose body is a JSON
//! [`Failure`] (always one chunk), [`STORED`] for a frame that points at a
//! message whose frames the broker keeps elsewhere (a Redis publish is
//! stored once and read by every other pack; its body is the key prefix of
//! those frames), or [`DONE`] for the last frame a pack sends to each other
//! pack (its `source` is the pack's id; no body). Decoding checks every
//! field before it allocates. The reassembler hands a message on at its
//! first chunk and its chunks in order as they come (see
//! [`message`](super::message)), holds only chunks that arrived early,
//! drops duplicates (brokers deliver at least once), and fails a message
//! whose chunks do not add up to its announced length.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{Arriving, Message, Pieces};
use super::{Envelope, Kind};
use crate::Failure;

/// First byte of every frame.
pub const MAGIC: u8 = 0xB5;
/// Version of this format.
pub const VERSION: u8 = 2;
/// Kind code of an abort frame.
pub const ABORT: u8 = 0xFF;
/// Kind code of a frame pointing at a message stored in the broker.
pub const STORED: u8 = 0xFE;
/// Kind code of the frame that says its pack will send nothing more.
pub const DONE: u8 = 0xFD;
/// Longest key prefix a [`STORED`] frame may name.
pub const MAX_STORED_KEY: usize = MAX_FLARE_ID + 64;
/// Longest flare id a frame carries.
pub const MAX_FLARE_ID: usize = 128;
/// Largest message a peer may announce: a guest's linear memory is at most
/// 4 GiB, so nothing legitimate is larger, and a lying length can never
/// make us reserve more.
pub const MAX_MESSAGE_BYTES: u64 = 1 << 32;
/// Largest abort body; a failure is a short message.
pub const MAX_ABORT_BYTES: usize = 64 << 10;
/// Messages being put together at once: bounds what lying first chunks can
/// make a pack reserve to this many times the message limit.
pub const MAX_PARTIAL_MESSAGES: usize = 1 << 16;
/// Completed messages whose late duplicates are still recognised and
/// dropped (brokers redeliver soon after, if at all): a bounded window,
/// not a record that grows with every message of the flare.
pub const RECENT_COMPLETE: usize = 4096;
/// Default chunk size.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

const FIXED_HEADER: usize = 4 + 4 + 8 + 4 + 4 + 4 + 4 + 8;

/// Why a frame or a message is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header needs.
    #[error("frame of {0} bytes is truncated")]
    Truncated(usize),
    /// Wrong magic byte or version.
    #[error("not a burst frame (magic {magic:#x}, version {version})")]
    NotAFrame {
        /// The first byte.
        magic: u8,
        /// The second byte.
        version: u8,
    },
    /// An unknown kind code.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The frame belongs to another flare.
    #[error("frame of flare {0:?} reached another flare")]
    WrongFlare(String),
    /// Chunk fields that cannot be right.
    #[error("inconsistent chunk: {0}")]
    Inconsistent(String),
    /// An abort frame whose body is not a failure.
    #[error("malformed abort: {0}")]
    BadAbort(String),
}

/// A decoded frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// One chunk of a message.
    Chunk(Chunk),
    /// Another pack failed the flare.
    Abort(Failure),
    /// Pack `pack_id` will send nothing more.
    Done {
        /// The pack that finished.
        pack_id: u32,
    },
    /// Frames `frames` of a message of `total` frames that the broker
    /// stores under `key`.
    Stored {
        /// Key prefix of the message's frames.
        key: String,
        /// The frames now stored (and not announced before).
        frames: std::ops::Range<u32>,
        /// Number of frames of the message.
        total: u32,
    },
}

/// One chunk of a message.
#[derive(Debug, PartialEq)]
pub struct Chunk {
    /// The message's address.
    pub envelope: Envelope,
    /// Position of this chunk.
    pub index: u32,
    /// Number of chunks of the message.
    pub count: u32,
    /// Length of the whole message.
    pub total_len: u64,
    /// This chunk's bytes.
    pub bytes: Bytes,
}

fn put_header(
    out: &mut impl BufMut,
    kind: u8,
    flare_id: &str,
    envelope: &Envelope,
    index: u32,
    count: u32,
    total: u64,
) {
    out.put_u8(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u8(flare_id.len() as u8);
    out.put_slice(flare_id.as_bytes());
    out.put_u32_le(envelope.tag);
    out.put_u64_le(envelope.seq);
    out.put_u32_le(envelope.source);
    out.put_u32_le(envelope.dest);
    out.put_u32_le(index);
    out.put_u32_le(count);
    out.put_u64_le(total);
}

/// One frame of a message as two parts: its header, and its chunk of the
/// payload (a slice of the sender's bytes, not a copy). A transport that
/// can write a frame from two pieces copies the payload once, straight
/// into its own buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameParts<'a> {
    /// The encoded header.
    pub header: &'a [u8],
    /// The chunk's bytes.
    pub body: &'a [u8],
}

impl FrameParts<'_> {
    /// Bytes of the frame.
    pub fn len(&self) -> usize {
        self.header.len() + self.body.len()
    }

    /// Whether the frame is empty (never: a frame has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame in one contiguous buffer, for a transport that needs one.
    pub fn contiguous(&self) -> Vec<u8> {
        [self.header, self.body].concat()
    }
}

/// A message cut into frames of at most `chunk_bytes` payload each (an
/// empty message is one frame), produced one at a time as a transport
/// writes them: the headers are encoded up front, the payload is only
/// sliced.
pub struct Split<'a> {
    headers: Vec<u8>,
    header_len: usize,
    payload: &'a [u8],
    chunk_bytes: usize,
}

impl<'a> Split<'a> {
    /// Frames of `payload` for `envelope`. `flare_id` must be at most
    /// [`MAX_FLARE_ID`] bytes (callers check it once per flare).
    pub fn new(flare_id: &str, envelope: &Envelope, payload: &'a [u8], chunk_bytes: usize) -> Self {
        debug_assert!(flare_id.len() <= MAX_FLARE_ID);
        let chunk_bytes = chunk_bytes.max(1);
        let count = payload.len().div_ceil(chunk_bytes).max(1);
        let header_len = FIXED_HEADER + flare_id.len();
        let mut headers = Vec::with_capacity(header_len * count);
        for index in 0..count {
            let (index, count, total) = (index as u32, count as u32, payload.len() as u64);
            put_header(&mut headers, envelope.kind as u8, flare_id, envelope, index, count, total);
        }
        Self { headers, header_len, payload, chunk_bytes }
    }

    /// Number of frames.
    pub fn count(&self) -> usize {
        self.headers.len() / self.header_len
    }

    /// Frame `index` (below [`count`](Self::count)).
    pub fn frame(&self, index: usize) -> FrameParts<'_> {
        let header = &self.headers[index * self.header_len..(index + 1) * self.header_len];
        let end = ((index + 1) * self.chunk_bytes).min(self.payload.len());
        let body = &self.payload[(index * self.chunk_bytes).min(end)..end];
        FrameParts { header, body }
    }

    /// Every frame, in order.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = FrameParts<'_>> + '_ {
        (0..self.count()).map(|index| self.frame(index))
    }

    /// Every frame in a contiguous buffer of its own, each made only when
    /// it is asked for.
    pub fn contiguous_frames(&self) -> impl ExactSizeIterator<Item = Vec<u8>> + '_ {
        (0..self.count()).map(|index| self.frame(index).contiguous())
    }
}

/// The frames of a message, each in one contiguous buffer.
pub fn encode_message(flare_id: &str, envelope: &Envelope, payload: &[u8], chunk_bytes: usize) -> Vec<Bytes> {
    Split::new(flare_id, envelope, payload, chunk_bytes).contiguous_frames().map(Bytes::from).collect()
}

/// The frame that tells other packs the flare failed.
pub fn encode_abort(flare_id: &str, failure: &Failure) -> Bytes {
    let body = serde_json::to_vec(failure).unwrap_or_default();
    let envelope = Envelope::collective(Kind::Direct, 0, 0, 0);
    let mut out = BytesMut::with_capacity(FIXED_HEADER + flare_id.len() + body.len());
    put_header(&mut out, ABORT, flare_id, &envelope, 0, 1, body.len() as u64);
    out.put_slice(&body);
    out.freeze()
}

/// The frame that tells the other packs that pack `pack_id` will send
/// nothing more.
pub fn encode_done(flare_id: &str, pack_id: u32) -> Bytes {
    let envelope = Envelope::collective(Kind::Direct, 0, pack_id, 0);
    let mut out = BytesMut::with_capacity(FIXED_HEADER + flare_id.len());
    put_header(&mut out, DONE, flare_id, &envelope, 0, 1, 0);
    out.freeze()
}

/// The frame that tells another pack that frames `frames` of a message of
/// `total` frames are stored under the key prefix `key` (at most
/// [`MAX_STORED_KEY`] bytes). Its chunk index and count fields carry the
/// range; its body, the total and the key.
pub fn encode_stored(
    flare_id: &str,
    envelope: &Envelope,
    frames: std::ops::Range<u32>,
    total: u32,
    key: &str,
) -> Bytes {
    debug_assert!(key.len() <= MAX_STORED_KEY);
    let body_len = 4 + key.len();
    let mut out = BytesMut::with_capacity(FIXED_HEADER + flare_id.len() + body_len);
    put_header(&mut out, STORED, flare_id, envelope, frames.start, frames.end, body_len as u64);
    out.put_u32_le(total);
    out.put_slice(key.as_bytes());
    out.freeze()
}

/// Reads fixed-size fields from the front of a buffer.
struct Reader<'a> {
    rest: &'a [u8],
    len: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(FrameError::Truncated(self.len))?;
        self.rest = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

/// Decodes one frame of flare `flare_id`. The chunk's bytes share `frame`'s
/// buffer (no copy).
///
/// # Errors
/// [`FrameError`] naming the first field that is wrong.
pub fn decode(frame: &Bytes, flare_id: &str) -> Result<Frame, FrameError> {
    let mut r = Reader { rest: frame, len: frame.len() };
    let (magic, version) = (r.u8()?, r.u8()?);
    if magic != MAGIC || version != VERSION {
        return Err(FrameError::NotAFrame { magic, version });
    }
    let kind_code = r.u8()?;
    let id_len = usize::from(r.u8()?);
    if r.rest.len() < id_len {
        return Err(FrameError::Truncated(frame.len()));
    }
    let (id, rest) = r.rest.split_at(id_len);
    r.rest = rest;
    if id != flare_id.as_bytes() {
        return Err(FrameError::WrongFlare(String::from_utf8_lossy(id).into_owned()));
    }
    let (tag, seq, source, dest) = (r.u32()?, r.u64()?, r.u32()?, r.u32()?);
    let (index, count, total_len) = (r.u32()?, r.u32()?, r.u64()?);
    let body = frame.slice(frame.len() - r.rest.len()..);
    if kind_code == ABORT {
        if body.len() > MAX_ABORT_BYTES {
            return Err(FrameError::BadAbort(format!("{} bytes", body.len())));
        }
        let failure = serde_json::from_slice(&body).map_err(|e| FrameError::BadAbort(e.to_string()))?;
        return Ok(Frame::Abort(failure));
    }
    if kind_code == DONE {
        if !body.is_empty() {
            return Err(FrameError::Inconsistent(format!("a done frame with {} bytes of body", body.len())));
        }
        return Ok(Frame::Done { pack_id: source });
    }
    if kind_code == STORED {
        let (total, key) = match body.split_first_chunk::<4>() {
            Some((total, key)) if key.len() <= MAX_STORED_KEY => (u32::from_le_bytes(*total), key),
            _ => return Err(FrameError::Inconsistent(format!("a stored-message frame of {} bytes", body.len()))),
        };
        let (first, end) = (index, count);
        if first >= end || end > total {
            return Err(FrameError::Inconsistent(format!("stored frames {first}..{end} of a message of {total}")));
        }
        let key =
            String::from_utf8(key.to_vec()).map_err(|_| FrameError::Inconsistent("stored key is not UTF-8".into()))?;
        return Ok(Frame::Stored { key, frames: first..end, total });
    }
    let kind = Kind::from_code(kind_code).ok_or(FrameError::UnknownKind(kind_code))?;
    if total_len > MAX_MESSAGE_BYTES {
        return Err(FrameError::Inconsistent(format!("message of {total_len} bytes is above the maximum")));
    }
    if count == 0 || index >= count {
        return Err(FrameError::Inconsistent(format!("chunk {index} of {count}")));
    }
    if body.len() as u64 > total_len || u64::from(count) > total_len.max(1) {
        return Err(FrameError::Inconsistent(format!(
            "chunk of {} bytes, {count} chunks, for a message of {total_len} bytes",
            body.len()
        )));
    }
    let envelope = Envelope { kind, tag, seq, source, dest };
    Ok(Frame::Chunk(Chunk { envelope, index, count, total_len, bytes: body }))
}

/// A message some of whose chunks arrived.
struct Partial {
    count: u32,
    total_len: u64,
    /// Chunks `0..next` went to the receiver, in order.
    next: u32,
    passed_bytes: u64,
    pieces: Pieces,
    /// Chunks that arrived before their turn, and their bytes.
    early: BTreeMap<u32, Bytes>,
    early_bytes: u64,
}

impl Partial {
    fn pass(&mut self, bytes: Bytes) {
        self.passed_bytes += bytes.len() as u64;
        self.next += 1;
        self.pieces.push(bytes);
    }
}

/// Turns chunks that arrive in any order, any number of times, into
/// messages: a message of one chunk whole, a longer one as an
/// [`Arriving`] message at its first chunk, whose pieces (the chunks'
/// own buffers, never copied) follow in order as they come.
pub struct Reassembler {
    max_message: u64,
    partial: HashMap<Envelope, Partial>,
    /// The last [`RECENT_COMPLETE`] messages returned, oldest first.
    complete: HashSet<Envelope>,
    completed: VecDeque<Envelope>,
}

impl Reassembler {
    /// A reassembler that accepts messages of at most `max_message` bytes
    /// (the receiving flare's message limit).
    pub fn new(max_message: u64) -> Self {
        Self { max_message, partial: HashMap::new(), complete: HashSet::new(), completed: VecDeque::new() }
    }

    fn completed(&mut self, envelope: Envelope) {
        if self.complete.insert(envelope) {
            self.completed.push_back(envelope);
        }
        if self.completed.len() > RECENT_COMPLETE
            && let Some(oldest) = self.completed.pop_front()
        {
            self.complete.remove(&oldest);
        }
    }

    /// Adds a chunk; returns its message if this is the first chunk of it
    /// seen. Chunks of a message already complete are dropped.
    ///
    /// # Errors
    /// [`FrameError::Inconsistent`] when chunks of one message disagree on
    /// its shape or add up to more or less than its length.
    pub fn add(&mut self, chunk: Chunk) -> Result<Option<(Envelope, Message)>, FrameError> {
        if self.complete.contains(&chunk.envelope) {
            return Ok(None);
        }
        if chunk.total_len > self.max_message {
            return Err(FrameError::Inconsistent(format!(
                "a message of {} bytes announced; the flare's message limit is {}",
                chunk.total_len, self.max_message
            )));
        }
        if chunk.count == 1 {
            if self.partial.contains_key(&chunk.envelope) {
                return Err(FrameError::Inconsistent("a message announced as one chunk and as several".into()));
            }
            if chunk.bytes.len() as u64 != chunk.total_len {
                return Err(FrameError::Inconsistent(format!(
                    "single chunk of {} bytes for a message of {}",
                    chunk.bytes.len(),
                    chunk.total_len
                )));
            }
            self.completed(chunk.envelope);
            return Ok(Some((chunk.envelope, Message::Whole(chunk.bytes))));
        }
        let mut first_seen = None;
        let full = self.partial.len() >= MAX_PARTIAL_MESSAGES;
        let partial = match self.partial.entry(chunk.envelope) {
            Entry::Occupied(partial) => partial.into_mut(),
            Entry::Vacant(_) if full => {
                return Err(FrameError::Inconsistent(format!(
                    "more than {MAX_PARTIAL_MESSAGES} messages in progress at once"
                )));
            }
            Entry::Vacant(slot) => {
                let (pieces, arriving) = Arriving::channel(chunk.total_len);
                first_seen = Some((chunk.envelope, Message::Arriving(arriving)));
                slot.insert(Partial {
                    count: chunk.count,
                    total_len: chunk.total_len,
                    next: 0,
                    passed_bytes: 0,
                    pieces,
                    early: BTreeMap::new(),
                    early_bytes: 0,
                })
            }
        };
        if (partial.count, partial.total_len) != (chunk.count, chunk.total_len) {
            return Err(FrameError::Inconsistent(format!(
                "chunks of one message announce {} chunks / {} bytes and {} chunks / {} bytes",
                partial.count, partial.total_len, chunk.count, chunk.total_len
            )));
        }
        if chunk.index < partial.next || partial.early.contains_key(&chunk.index) {
            return Ok(first_seen);
        }
        let received = partial.passed_bytes + partial.early_bytes + chunk.bytes.len() as u64;
        if received > partial.total_len {
            return Err(FrameError::Inconsistent(format!("chunks add up to more than {} bytes", partial.total_len)));
        }
        if chunk.index == partial.next {
            partial.pass(chunk.bytes);
            while let Some(bytes) = partial.early.remove(&partial.next) {
                partial.early_bytes -= bytes.len() as u64;
                partial.pass(bytes);
            }
        } else {
            partial.early_bytes += chunk.bytes.len() as u64;
            partial.early.insert(chunk.index, chunk.bytes);
        }
        if partial.next < partial.count {
            return Ok(first_seen);
        }
        if partial.passed_bytes != partial.total_len {
            return Err(FrameError::Inconsistent(format!(
                "chunks add up to {} bytes, the message has {}",
                partial.passed_bytes, partial.total_len
            )));
        }
        self.partial.remove(&chunk.envelope);
        self.completed(chunk.envelope);
        Ok(first_seen)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
