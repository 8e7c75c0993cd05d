//! Matching of messages to receives, by envelope.
//!
//! Envelopes are unique within a flare, so a mailbox is a map from envelope
//! to either a message that arrived first or a receiver that asked first.
//! Delivery is at-least-once on remote paths: a second copy of a message that
//! is still waiting to be taken is dropped. Pure data structure: the waiting
//! (deadlines, cancellation) is done by the caller on the returned receiver.
//!
//! The mailbox also bounds what it holds, counting each stored message as
//! its bytes plus [`MESSAGE_OVERHEAD`] (so a flood of empty messages is
//! bounded too), against [`Mailbox::new`]'s limit per [`Account`]: a
//! point-to-point message is charged to its destination (a worker cannot
//! make the host buffer without end what a peer never receives), a
//! collective message to its sender (each sender contributes one message
//! per call, so a flare whose every message is within the limits cannot
//! fail however many packs send to one leader, while a sender that runs
//! calls ahead of its receivers is still caught).
//!
//! And it finds collective messages that nobody will take. Every message a
//! pack receives for collective call `seq` is taken by the pack's own part
//! in that call, so once every local worker has finished call `seq` (the
//! *watermark* passed it), a message of that call still stored, or arriving
//! later, is an *orphan*: its sender called a different collective, or the
//! same one with a different root.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;

use super::message::Message;
use super::{Envelope, Kind};

/// What one stored message costs beyond its bytes: its slot, envelope and
/// buffer handle, rounded up.
pub const MESSAGE_OVERHEAD: u64 = 128;

/// Whose budget a stored message is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The destination worker of a point-to-point message.
    To(u32),
    /// The sending worker (or pack leader) of a collective message.
    From(u32),
}

impl Account {
    /// The account `envelope` is charged to.
    pub fn of(envelope: &Envelope) -> Self {
        if is_collective(envelope) { Account::From(envelope.source) } else { Account::To(envelope.dest) }
    }
}

/// A message still arriving is charged its whole announced length from
/// its first frame on.
fn cost(message: &Message) -> u64 {
    message.len() + MESSAGE_OVERHEAD
}

enum Slot {
    Arrived(Message),
    Awaited(oneshot::Sender<Message>),
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
    /// Refused: storing it would put more than the limit of bytes in the
    /// mailbox on its account. Nothing changed.
    OverLimit {
        /// The account.
        account: Account,
        /// What the account would have had buffered with this message.
        buffered: u64,
    },
    /// Refused: a message of a collective call every local worker has
    /// already finished. Nothing changed.
    Orphan,
}

/// What [`Mailbox::take`] found.
#[derive(Debug)]
pub enum Take {
    /// The message had arrived (or begun to).
    Ready(Message),
    /// Not yet: it will be sent on this receiver.
    Pending(oneshot::Receiver<Message>),
}

/// Messages of one pack, keyed by envelope.
pub struct Mailbox {
    slots: HashMap<Envelope, Slot>,
    /// Bytes (with overhead) stored per account; entries at zero are removed.
    buffered: HashMap<Account, u64>,
    buffered_limit: u64,
    /// Collective calls below this have been finished by every local worker.
    watermark: u64,
    /// Stored collective messages per call; entries at zero are removed.
    stored_calls: BTreeMap<u64, u32>,
}

impl Mailbox {
    /// An empty mailbox holding at most `buffered_limit` bytes per account.
    pub fn new(buffered_limit: u64) -> Self {
        Self {
            slots: HashMap::new(),
            buffered: HashMap::new(),
            buffered_limit,
            watermark: 0,
            stored_calls: BTreeMap::new(),
        }
    }

    /// Records that every local worker finished the collective calls below
    /// `watermark`; returns a stored message of one of them, which nobody
    /// will take, if there is one.
    pub fn advance(&mut self, watermark: u64) -> Option<Envelope> {
        self.watermark = self.watermark.max(watermark);
        self.orphan_below(self.watermark)
    }

    /// A stored collective message of a call below `watermark`, if any.
    pub fn orphan_below(&self, watermark: u64) -> Option<Envelope> {
        let (&seq, _) = self.stored_calls.first_key_value().filter(|(seq, _)| **seq < watermark)?;
        self.slots.iter().find_map(|(envelope, slot)| {
            (is_collective(envelope) && envelope.seq == seq && matches!(slot, Slot::Arrived(_))).then_some(*envelope)
        })
    }

    /// Hands `message` to whoever takes `envelope`.
    pub fn deliver(&mut self, envelope: Envelope, message: impl Into<Message>) -> Delivered {
        let payload = message.into();
        match self.slots.entry(envelope) {
            Entry::Vacant(slot) => {
                if is_collective(&envelope) && envelope.seq < self.watermark {
                    return Delivered::Orphan;
                }
                let account = Account::of(&envelope);
                let held = self.buffered.entry(account).or_default();
                let buffered = *held + cost(&payload);
                if buffered > self.buffered_limit {
                    if *held == 0 {
                        self.buffered.remove(&account);
                    }
                    return Delivered::OverLimit { account, buffered };
                }
                *held = buffered;
                slot.insert(Slot::Arrived(payload));
                if is_collective(&envelope) {
                    *self.stored_calls.entry(envelope.seq).or_default() += 1;
                }
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
            if let Entry::Occupied(mut held) = self.buffered.entry(Account::of(&envelope)) {
                *held.get_mut() -= cost(&payload);
                if *held.get() == 0 {
                    held.remove();
                }
            }
            if is_collective(&envelope)
                && let std::collections::btree_map::Entry::Occupied(mut calls) = self.stored_calls.entry(envelope.seq)
            {
                *calls.get_mut() -= 1;
                if *calls.get() == 0 {
                    calls.remove();
                }
            }
            return Take::Ready(payload);
        }
        let (sender, receiver) = oneshot::channel();
        self.slots.insert(envelope, Slot::Awaited(sender));
        Take::Pending(receiver)
    }

    /// Whether nothing is stored or awaited.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.buffered.is_empty() && self.stored_calls.is_empty()
    }
}

fn is_collective(envelope: &Envelope) -> bool {
    envelope.kind != Kind::Direct
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn whole(message: Message) -> Bytes {
        let Message::Whole(bytes) = message else { panic!("messages in these tests arrive whole") };
        bytes
    }

    fn envelope(seq: u64) -> Envelope {
        Envelope::direct(0, seq, 1, 2)
    }

    #[test]
    fn a_message_that_arrives_first_is_taken_later() {
        let mut mailbox = Mailbox::new(u64::MAX);
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"abc")), Delivered::Stored);
        let Take::Ready(payload) = mailbox.take(envelope(0)) else { panic!("expected a stored message") };
        assert_eq!(&whole(payload)[..], b"abc");
        assert!(mailbox.is_empty());
    }

    #[test]
    fn a_waiting_receiver_gets_the_message_when_it_arrives() {
        let mut mailbox = Mailbox::new(u64::MAX);
        let Take::Pending(mut receiver) = mailbox.take(envelope(3)) else { panic!("nothing was sent yet") };
        assert!(receiver.try_recv().is_err());
        assert_eq!(mailbox.deliver(envelope(3), Bytes::from_static(b"xyz")), Delivered::Matched);
        assert_eq!(&whole(receiver.try_recv().expect("delivered"))[..], b"xyz");
        assert!(mailbox.is_empty());
    }

    #[test]
    fn duplicates_are_dropped_and_other_addresses_do_not_match() {
        let mut mailbox = Mailbox::new(u64::MAX);
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"first")), Delivered::Stored);
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"again")), Delivered::Duplicate);
        let collective = Envelope::collective(Kind::Gather, 0, 1, 2);
        let other_tag = Envelope::direct(7, 0, 1, 2);
        assert!(matches!(mailbox.take(collective), Take::Pending(_)));
        assert!(matches!(mailbox.take(other_tag), Take::Pending(_)));
        let Take::Ready(payload) = mailbox.take(envelope(0)) else { panic!("stored") };
        assert_eq!(&whole(payload)[..], b"first");
    }

    #[test]
    fn collective_messages_are_charged_to_their_sender() {
        // One leader receives a partial from each of 5 packs: each within
        // the limit, together far above it.
        let mut mailbox = Mailbox::new(100 + MESSAGE_OVERHEAD);
        let partial = |from: u32, seq: u64| Envelope::collective(Kind::AllReduce, seq, from, 0);
        for from in 1..6 {
            assert_eq!(mailbox.deliver(partial(from, 0), Bytes::from(vec![7; 100])), Delivered::Stored);
        }
        // A sender that runs a call ahead of its receiver is caught.
        assert_eq!(
            mailbox.deliver(partial(3, 1), Bytes::from(vec![7; 100])),
            Delivered::OverLimit { account: Account::From(3), buffered: 200 + 2 * MESSAGE_OVERHEAD }
        );
    }

    #[test]
    fn collective_messages_nobody_will_take_are_orphans() {
        let mut mailbox = Mailbox::new(u64::MAX);
        let call = |seq: u64, source: u32| Envelope::collective(Kind::Broadcast, seq, source, u32::MAX);
        // Call 0 is taken; call 1 arrives from a root the pack did not use.
        assert_eq!(mailbox.deliver(call(0, 0), Bytes::from_static(b"a")), Delivered::Stored);
        assert_eq!(mailbox.deliver(call(1, 3), Bytes::from_static(b"b")), Delivered::Stored);
        let Take::Ready(_) = mailbox.take(call(0, 0)) else { panic!("stored") };
        assert_eq!(mailbox.advance(1), None, "call 0 was taken");
        assert_eq!(mailbox.advance(2), Some(call(1, 3)), "call 1 was finished without it");
        // Arriving after its call was finished, by every local worker.
        assert_eq!(mailbox.deliver(call(0, 5), Bytes::from_static(b"c")), Delivered::Orphan);
        // Point-to-point messages may wait for ever.
        assert_eq!(mailbox.deliver(envelope(0), Bytes::from_static(b"d")), Delivered::Stored);
        let Take::Ready(_) = mailbox.take(call(1, 3)) else { panic!("stored") };
        assert_eq!(mailbox.orphan_below(u64::MAX), None);
    }

    #[test]
    fn stored_bytes_per_destination_are_bounded_and_freed_by_taking() {
        let mut mailbox = Mailbox::new(10 + 2 * MESSAGE_OVERHEAD);
        let to = |dest: u32, seq: u64| Envelope::direct(0, seq, 1, dest);
        assert_eq!(mailbox.deliver(to(2, 0), Bytes::from_static(b"012345")), Delivered::Stored);
        assert_eq!(
            mailbox.deliver(to(2, 1), Bytes::from_static(b"67890")),
            Delivered::OverLimit { account: Account::To(2), buffered: 11 + 2 * MESSAGE_OVERHEAD }
        );
        // Another destination has its own budget; a matched message is never held.
        assert_eq!(mailbox.deliver(to(3, 0), Bytes::from_static(b"0123456789")), Delivered::Stored);
        assert_eq!(mailbox.deliver(to(3, 1), Bytes::new()), Delivered::Stored);
        assert!(matches!(mailbox.deliver(to(3, 2), Bytes::new()), Delivered::OverLimit { .. }), "empty ones count");
        let Take::Ready(_) = mailbox.take(to(3, 1)) else { panic!("stored") };
        let Take::Pending(_waiting) = mailbox.take(to(2, 1)) else { panic!("was refused, not stored") };
        assert_eq!(mailbox.deliver(to(2, 1), Bytes::from_static(b"67890")), Delivered::Matched);
        let Take::Ready(payload) = mailbox.take(to(2, 0)) else { panic!("stored") };
        assert_eq!(&whole(payload)[..], b"012345");
        assert_eq!(mailbox.deliver(to(2, 2), Bytes::from_static(b"abcdefghij")), Delivered::Stored);
        let Take::Ready(_) = mailbox.take(to(2, 2)) else { panic!("stored") };
        let Take::Ready(_) = mailbox.take(to(3, 0)) else { panic!("stored") };
        assert!(mailbox.is_empty());
    }
}
