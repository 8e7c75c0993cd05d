//! Matching of messages to receives, by envelope.
//!
//! Envelopes are unique within a flare, so a mailbox is a map from envelope
//! to either a message that arrived first or a receiver that asked first.
//! Delivery is at-least-once on remote paths: a second copy of a message that
//! is still waiting to be taken is dropped. Pure data structure: the waiting
//! (deadlines, cancellation) is done by the caller on the returned receiver.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::Envelope;

enum Slot {
    Arrived(Bytes),
    Awaited(oneshot::Sender<Bytes>),
}

/// What [`Mailbox::deliver`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Handed to a receiver that was already waiting.
    Matched,
    /// Stored until someone takes it.
    Stored,
    /// Dropped: a copy with the same envelope is already stored.
    Duplicate,
}

/// What [`Mailbox::take`] found.
#[derive(Debug)]
pub enum Take {
    /// The message had arrived.
    Ready(Bytes),
    /// Not yet: it will be sent on this receiver.
    Pending(oneshot::Receiver<Bytes>),
}

/// Messages of one pack, keyed by envelope.
#[derive(Default)]
pub struct Mailbox {
    slots: HashMap<Envelope, Slot>,
}

impl Mailbox {
    /// Hands `payload` to whoever takes `envelope`.
    pub fn deliver(&mut self, envelope: Envelope, payload: Bytes) -> Delivered {
        match self.slots.entry(envelope) {
            Entry::Vacant(slot) => {
                slot.insert(Slot::Arrived(payload));
                Delivered::Stored
            }
            Entry::Occupied(slot) => match slot.get() {
                Slot::Arrived(_) => Delivered::Duplicate,
                Slot::Awaited(_) => {
                    let Slot::Awaited(sender) = slot.remove() else { unreachable!() };
                    // A receiver that gave up (its worker was stopped) no longer
                    // wants the message; dropping it is the right outcome.
                    let _ = sender.send(payload);
                    Delivered::Matched
                }
            },
        }
    }

    /// Takes the message addressed by `envelope`, now or when it arrives.
    ///
    /// Each envelope is taken at most once; taking it again while the first
    /// receiver still waits replaces that receiver.
    pub fn take(&mut self, envelope: Envelope) -> Take {
        if let Some(Slot::Arrived(_)) = self.slots.get(&envelope)
            && let Some(Slot::Arrived(payload)) = self.slots.remove(&envelope)
        {
            return Take::Ready(payload);
        }
        let (sender, receiver) = oneshot::channel();
        self.slots.insert(envelope, Slot::Awaited(sender));
        Take::Pending(receiver)
    }

    /// Whether nothing is stored or awaited.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::Kind;

    fn envelope(seq: u64) -> Envelope {
        Envelope::direct(0, seq, 1, 2)
    }

    #[test]
    fn a_message_that_arrives_first_is_taken_later() {
        let mut mailbox = Mailbox::default();
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"abc")), Delivered::Stored);
        let Take::Ready(payload) = mailbox.take(envelope(0)) else { panic!("expected a stored message") };
        assert_eq!(&payload[..], b"abc");
        assert!(mailbox.is_empty());
    }

    #[test]
    fn a_waiting_receiver_gets_the_message_when_it_arrives() {
        let mut mailbox = Mailbox::default();
        let Take::Pending(mut receiver) = mailbox.take(envelope(3)) else { panic!("nothing was sent yet") };
        assert!(receiver.try_recv().is_err());
        assert_eq!(mailbox.deliver(envelope(3), Bytes::from_static(b"xyz")), Delivered::Matched);
        assert_eq!(&receiver.try_recv().expect("delivered")[..], b"xyz");
        assert!(mailbox.is_empty());
    }

    #[test]
    fn duplicates_are_dropped_and_other_addresses_do_not_match() {
        let mut mailbox = Mailbox::default();
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"first")), Delivered::Stored);
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"again")), Delivered::Duplicate);
        let collective = Envelope::collective(Kind::Gather, 0, 1, 2);
        let other_tag = Envelope::direct(7, 0, 1, 2);
        assert!(matches!(mailbox.take(collective), Take::Pending(_)));
        assert!(matches!(mailbox.take(other_tag), Take::Pending(_)));
        let Take::Ready(payload) = mailbox.take(envelope(0)) else { panic!("stored") };
        assert_eq!(&payload[..], b"first");
    }
}
