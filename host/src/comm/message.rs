//! Messages as they move: what a sender hands the comm layer, and what a
//! receiver takes from a pack's mailbox.
//!
//! A sender's bytes are a [`Payload`]: a host buffer that may be shared by
//! several receivers, or a slice read in place from the sender's linear
//! memory while its call is in progress, which a backend frames straight
//! into the broker without first copying the whole message into the host.
//!
//! A received message is a [`Message`]: whole (it came through memory, or
//! in one frame), or *arriving* — a message from another pack whose frames
//! are still coming. The backend hands an arriving message to the mailbox
//! at its first frame and then its pieces, in order, as they come, so a
//! receiver that reads it piece by piece (`recv-first` / `recv-more`) never
//! needs the whole message in host memory, and one that needs it whole
//! collects it into one buffer of its size.
//!
//! A message every worker of a pack reads (a broadcast, a part of an
//! all-gather) is a [`SharedMessage`]: its pieces are pulled from the
//! backend once, by whichever reader needs the next one first, and shared
//! by reference with the others, each reading at its own pace.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// The bytes of a message being sent.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// Read in place from the sender's memory; copied only where it goes.
    Borrowed(&'a [u8]),
    /// A host buffer, shared (not copied) by everyone it goes to.
    Shared(&'a Bytes),
}

impl<'a> Payload<'a> {
    /// The payload's bytes.
    pub fn as_slice(&self) -> &'a [u8] {
        match *self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Shared(bytes) => bytes,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A host buffer holding it: the shared buffer itself, or a copy.
    pub fn to_bytes(&self) -> Bytes {
        match *self {
            Payload::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
            Payload::Shared(bytes) => bytes.clone(),
        }
    }
}

/// A message for a worker of this pack.
#[derive(Debug)]
pub enum Message {
    /// All its bytes.
    Whole(Bytes),
    /// A message from another pack whose pieces are still arriving.
    Arriving(Arriving),
}

impl Message {
    /// The message's length in bytes (announced by its first frame when it
    /// is still arriving).
    pub fn len(&self) -> u64 {
        match self {
            Message::Whole(bytes) => bytes.len() as u64,
            Message::Arriving(arriving) => arriving.len(),
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Message::Whole(bytes)
    }
}

/// The receiving end of a message whose pieces are still arriving.
#[derive(Debug)]
pub struct Arriving {
    len: u64,
    pieces: mpsc::UnboundedReceiver<Bytes>,
}

/// The sending end: where the backend puts a message's pieces, in order.
/// Dropping it before the last piece leaves the message incomplete, which
/// its reader reports.
#[derive(Debug)]
pub struct Pieces(mpsc::UnboundedSender<Bytes>);

impl Pieces {
    /// Hands on the next piece. A reader that gave the message up (its
    /// worker ended or failed) drops what still comes.
    pub fn push(&self, piece: Bytes) {
        let _ = self.0.send(piece);
    }
}

/// The message stopped before its last piece: its backend closed or broke
/// the wire protocol (which fails the flare).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the message ended after {received} of its {len} bytes")]
pub struct Incomplete {
    /// Bytes received.
    pub received: u64,
    /// Bytes announced.
    pub len: u64,
}

impl Arriving {
    /// A message of `len` bytes whose pieces will be pushed to the returned
    /// [`Pieces`].
    pub fn channel(len: u64) -> (Pieces, Arriving) {
        let (sender, pieces) = mpsc::unbounded_channel();
        (Pieces(sender), Arriving { len, pieces })
    }

    /// The message's announced length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next piece, once it is here; `None` after the last.
    ///
    /// # Errors
    /// [`Incomplete`] when the message stopped before its end.
    pub async fn next(&mut self, received: u64) -> Result<Option<Bytes>, Incomplete> {
        if received >= self.len {
            return Ok(None);
        }
        match self.pieces.recv().await {
            Some(piece) if received + piece.len() as u64 <= self.len => Ok(Some(piece)),
            _ => Err(Incomplete { received, len: self.len }),
        }
    }
}

#[cfg(test)]
impl Arriving {
    /// The next piece if it is already here (for tests that feed a
    /// reassembler by hand, outside a runtime).
    pub(crate) fn try_next(&mut self) -> Option<Bytes> {
        self.pieces.try_recv().ok()
    }
}

/// A message read by every worker of a pack.
#[derive(Clone, Debug)]
pub enum SharedMessage {
    /// All its bytes, shared by reference.
    Whole(Bytes),
    /// A message from another pack whose pieces are still arriving.
    Arriving(Arc<Tee>),
}

impl SharedMessage {
    /// Shares `message` among readers.
    pub fn new(message: Message) -> Self {
        match message {
            Message::Whole(bytes) => SharedMessage::Whole(bytes),
            Message::Arriving(arriving) => SharedMessage::Arriving(Arc::new(Tee::new(arriving))),
        }
    }

    /// The message's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            SharedMessage::Whole(bytes) => bytes.len() as u64,
            SharedMessage::Arriving(tee) => tee.len,
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An arriving message with several readers. The pieces pulled so far are
/// kept (by reference, never copied) until the last reader is done with the
/// message, so a reader behind the others finds them here; the reader that
/// first needs a piece not yet pulled waits for it on everyone's behalf.
#[derive(Debug)]
pub struct Tee {
    len: u64,
    pieces: Mutex<Vec<Bytes>>,
    /// The backend's pieces and the bytes pulled from it; held only while
    /// pulling the next piece.
    source: tokio::sync::Mutex<(Arriving, u64)>,
}

impl Tee {
    fn new(arriving: Arriving) -> Self {
        Self { len: arriving.len(), pieces: Mutex::default(), source: tokio::sync::Mutex::new((arriving, 0)) }
    }

    fn pulled(&self, index: usize) -> Option<Bytes> {
        self.pieces.lock().unwrap_or_else(PoisonError::into_inner).get(index).cloned()
    }

    /// Piece `index` (readers ask for their pieces in order), waiting for
    /// it if no reader has pulled it yet; `None` after the last.
    async fn piece(&self, index: usize) -> Result<Option<Bytes>, Incomplete> {
        if let Some(piece) = self.pulled(index) {
            return Ok(Some(piece));
        }
        let mut source = self.source.lock().await;
        // Another reader may have pulled it while this one waited.
        if let Some(piece) = self.pulled(index) {
            return Ok(Some(piece));
        }
        let (arriving, received) = &mut *source;
        let Some(piece) = arriving.next(*received).await? else { return Ok(None) };
        *received += piece.len() as u64;
        self.pieces.lock().unwrap_or_else(PoisonError::into_inner).push(piece.clone());
        Ok(Some(piece))
    }
}

/// Where a [`Reading`] gets its pieces.
#[derive(Debug)]
enum Source {
    Whole(Bytes),
    Arriving(Arriving),
    /// A shared message, and the index of this reader's next piece.
    Shared(Arc<Tee>, usize),
}

/// A message being read piece by piece.
#[derive(Debug)]
pub struct Reading {
    source: Source,
    total: u64,
    received: u64,
}

impl Reading {
    /// Starts reading `message`.
    pub fn new(message: Message) -> Self {
        let total = message.len();
        let source = match message {
            Message::Whole(bytes) => Source::Whole(bytes),
            Message::Arriving(arriving) => Source::Arriving(arriving),
        };
        Self { source, total, received: 0 }
    }

    /// Starts one reader's reading of a shared message.
    pub fn shared(message: &SharedMessage) -> Self {
        let source = match message {
            SharedMessage::Whole(bytes) => Source::Whole(bytes.clone()),
            SharedMessage::Arriving(tee) => Source::Shared(Arc::clone(tee), 0),
        };
        Self { source, total: message.len(), received: 0 }
    }

    /// The length of the whole message, in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.received >= self.total
    }

    /// The next piece (waiting for it if it is still arriving); an empty
    /// buffer once every byte was read.
    ///
    /// # Errors
    /// [`Incomplete`] when the message stopped before its end.
    pub async fn next(&mut self) -> Result<Bytes, Incomplete> {
        if self.is_done() {
            return Ok(Bytes::new());
        }
        let piece = match &mut self.source {
            Source::Whole(bytes) => std::mem::take(bytes),
            Source::Arriving(arriving) => arriving.next(self.received).await?.unwrap_or_default(),
            Source::Shared(tee, index) => {
                let piece = tee.piece(*index).await?.unwrap_or_default();
                *index += 1;
                piece
            }
        };
        self.received += piece.len() as u64;
        Ok(piece)
    }

    /// The rest of the message in one buffer: the whole message itself if
    /// nothing was read yet and it arrived whole, else one copy of each
    /// piece into a buffer of the message's size (one per reader of a
    /// shared message).
    ///
    /// # Errors
    /// [`Incomplete`] when the message stopped before its end.
    pub async fn rest(mut self) -> Result<Bytes, Incomplete> {
        if let Source::Whole(bytes) = self.source {
            return Ok(bytes);
        }
        let mut rest = BytesMut::with_capacity((self.total() - self.received) as usize);
        while !self.is_done() {
            rest.extend_from_slice(&self.next().await?);
        }
        Ok(rest.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_arriving_message_is_read_in_pieces_or_whole() {
        let (pieces, arriving) = Arriving::channel(7);
        pieces.push(Bytes::from_static(b"abc"));
        pieces.push(Bytes::from_static(b"defg"));
        let mut reading = Reading::new(Message::Arriving(arriving));
        assert_eq!(reading.total(), 7);
        assert_eq!(&reading.next().await.expect("complete")[..], b"abc");
        assert!(!reading.is_done());
        assert_eq!(&reading.rest().await.expect("complete")[..], b"defg");
    }

    #[tokio::test]
    async fn a_message_that_stops_early_or_overflows_is_incomplete() {
        let (pieces, arriving) = Arriving::channel(5);
        pieces.push(Bytes::from_static(b"ab"));
        drop(pieces);
        let error = Reading::new(Message::Arriving(arriving)).rest().await.expect_err("incomplete");
        assert_eq!(error, Incomplete { received: 2, len: 5 });

        let (pieces, arriving) = Arriving::channel(2);
        pieces.push(Bytes::from_static(b"abc"));
        let error = Reading::new(Message::Arriving(arriving)).rest().await.expect_err("incomplete");
        assert_eq!(error, Incomplete { received: 0, len: 2 });
    }

    #[tokio::test]
    async fn a_whole_message_is_one_piece_then_nothing() {
        let mut reading = Reading::new(Message::from(Bytes::from_static(b"xyz")));
        assert_eq!(&reading.next().await.expect("complete")[..], b"xyz");
        assert_eq!(reading.total(), 3);
        assert!(reading.is_done());
        assert!(reading.next().await.expect("complete").is_empty());
    }

    #[tokio::test]
    async fn readers_of_a_shared_message_each_get_every_piece_at_their_own_pace() {
        let (pieces, arriving) = Arriving::channel(7);
        let shared = SharedMessage::new(Message::Arriving(arriving));
        assert_eq!(shared.len(), 7);
        let mut ahead = Reading::shared(&shared);
        let behind = Reading::shared(&shared);
        pieces.push(Bytes::from_static(b"abc"));
        assert_eq!(&ahead.next().await.expect("complete")[..], b"abc");
        pieces.push(Bytes::from_static(b"defg"));
        assert_eq!(&ahead.next().await.expect("complete")[..], b"defg");
        assert!(ahead.is_done());
        assert!(ahead.next().await.expect("complete").is_empty());
        // The pieces the first reader pulled wait for the second.
        drop(pieces);
        assert_eq!(&behind.rest().await.expect("complete")[..], b"abcdefg");
    }

    #[tokio::test]
    async fn a_shared_message_that_stops_early_is_incomplete_for_every_reader() {
        let (pieces, arriving) = Arriving::channel(5);
        let shared = SharedMessage::new(Message::Arriving(arriving));
        pieces.push(Bytes::from_static(b"ab"));
        drop(pieces);
        for _ in 0..2 {
            let error = Reading::shared(&shared).rest().await.expect_err("incomplete");
            assert_eq!(error, Incomplete { received: 2, len: 5 });
        }
    }

    #[tokio::test]
    async fn a_shared_whole_message_is_one_piece_for_every_reader() {
        let shared = SharedMessage::new(Message::from(Bytes::from_static(b"xyz")));
        for _ in 0..2 {
            let mut reading = Reading::shared(&shared);
            assert_eq!(&reading.next().await.expect("complete")[..], b"xyz");
            assert!(reading.is_done());
        }
    }
}
