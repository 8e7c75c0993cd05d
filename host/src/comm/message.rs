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

/// A message being read piece by piece.
#[derive(Debug)]
pub struct Reading {
    message: Message,
    total: u64,
    received: u64,
}

impl Reading {
    /// Starts reading `message`.
    pub fn new(message: Message) -> Self {
        Self { total: message.len(), message, received: 0 }
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
        let piece = match &mut self.message {
            Message::Whole(bytes) => std::mem::take(bytes),
            Message::Arriving(arriving) => arriving.next(self.received).await?.unwrap_or_default(),
        };
        self.received += piece.len() as u64;
        Ok(piece)
    }

    /// The rest of the message in one buffer: the whole message itself if
    /// nothing was read yet and it arrived whole, else one copy of each
    /// piece into a buffer of the message's size.
    ///
    /// # Errors
    /// [`Incomplete`] when the message stopped before its end.
    pub async fn rest(mut self) -> Result<Bytes, Incomplete> {
        if let Message::Whole(bytes) = self.message {
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
}
