//! Examples of the wire format: round trips, malformed frames, and what
//! a peer may announce.

use super::*;
use crate::FailureKind;

const FLARE: &str = "flare-7";

/// A [`Reassembler`] whose messages are put back together here, so that
/// a test sees each message once, whole, when its last byte arrived.
pub(super) struct Whole {
    reassembler: Reassembler,
    arriving: HashMap<Envelope, (Arriving, BytesMut)>,
}

impl Whole {
    pub(super) fn new(max_message: u64) -> Self {
        Self { reassembler: Reassembler::new(max_message), arriving: HashMap::new() }
    }

    pub(super) fn add(&mut self, chunk: Chunk) -> Result<Option<(Envelope, Bytes)>, FrameError> {
        let envelope = chunk.envelope;
        match self.reassembler.add(chunk)? {
            Some((envelope, Message::Whole(bytes))) => return Ok(Some((envelope, bytes))),
            Some((envelope, Message::Arriving(arriving))) => {
                let so_far = BytesMut::with_capacity(arriving.len() as usize);
                self.arriving.insert(envelope, (arriving, so_far));
            }
            None => {}
        }
        let Some((arriving, so_far)) = self.arriving.get_mut(&envelope) else { return Ok(None) };
        while let Some(piece) = arriving.try_next() {
            so_far.extend_from_slice(&piece);
        }
        if so_far.len() < arriving.len() as usize {
            return Ok(None);
        }
        let (_, message) = self.arriving.remove(&envelope).expect("present");
        Ok(Some((envelope, message.freeze())))
    }
}

fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>())
}

fn chunks_of(frames: &[Bytes]) -> Vec<Chunk> {
    frames
        .iter()
        .map(|f| match decode(f, FLARE).expect("valid frame") {
            Frame::Chunk(chunk) => chunk,
            other => panic!("not a chunk: {other:?}"),
        })
        .collect()
}

#[test]
fn messages_round_trip_in_any_order_with_duplicates() {
    let envelope = Envelope::direct(3, 9, 1, 2);
    for (len, chunk) in [(0, 4), (1, 4), (10, 4), (12, 4), (1000, 1000), (1001, 64)] {
        let message = payload(len);
        let frames = encode_message(FLARE, &envelope, &message, chunk);
        assert_eq!(frames.len(), len.div_ceil(chunk).max(1));
        let mut chunks = chunks_of(&frames);
        chunks.reverse();
        let duplicates = chunks_of(&frames);
        let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
        let mut done = Vec::new();
        for chunk in chunks.into_iter().chain(duplicates) {
            if let Some(result) = reassembler.add(chunk).expect("consistent") {
                done.push(result);
            }
        }
        assert_eq!(done, vec![(envelope, message)], "len {len} chunk {chunk}");
    }
}

#[test]
fn aborts_carry_the_failure() {
    let failure = Failure::new(Some(4), FailureKind::Trap, "boom");
    assert_eq!(decode(&encode_abort(FLARE, &failure), FLARE), Ok(Frame::Abort(failure)));
}

#[test]
fn done_frames_name_their_pack() {
    let frame = encode_done(FLARE, 5);
    assert_eq!(decode(&frame, FLARE), Ok(Frame::Done { pack_id: 5 }));
    let mut with_body = frame.to_vec();
    with_body.push(0);
    assert!(matches!(decode(&Bytes::from(with_body), FLARE), Err(FrameError::Inconsistent(_))));
}

#[test]
fn stored_frames_name_their_key_and_count() {
    let envelope = Envelope::collective(Kind::Broadcast, 4, 0, u32::MAX);
    let key = "burst:flare-7:pub:0:3";
    let frame = encode_stored(FLARE, &envelope, 16..32, 40, key);
    assert_eq!(decode(&frame, FLARE), Ok(Frame::Stored { key: key.to_owned(), frames: 16..32, total: 40 }));
    for (frames, total) in [(16..16, 40), (16..41, 40), (39..40, 38)] {
        let frame = encode_stored(FLARE, &envelope, frames, total, key);
        assert!(matches!(decode(&frame, FLARE), Err(FrameError::Inconsistent(_))), "{frame:?}");
    }
    let long = "k".repeat(MAX_STORED_KEY + 1);
    let mut out = BytesMut::new();
    put_header(&mut out, STORED, FLARE, &envelope, 0, 1, 4 + long.len() as u64);
    out.put_u32_le(1);
    out.put_slice(long.as_bytes());
    assert!(matches!(decode(&out.freeze(), FLARE), Err(FrameError::Inconsistent(_))));
    let mut out = BytesMut::new();
    put_header(&mut out, STORED, FLARE, &envelope, 0, 1, 6);
    out.put_u32_le(1);
    out.put_slice(&[0xff, 0xfe]);
    assert!(matches!(decode(&out.freeze(), FLARE), Err(FrameError::Inconsistent(_))));
}

#[test]
fn early_chunks_wait_for_their_turn_and_the_message_is_exact() {
    let envelope = Envelope::direct(1, 2, 3, 4);
    let message = payload(10_000);
    let chunks = chunks_of(&encode_message(FLARE, &envelope, &message, 999));
    let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
    // Last first, then the rest from the middle out, with repeats.
    let order = [10, 5, 5, 6, 0, 9, 1, 2, 8, 3, 7, 4, 0];
    let mut done = None;
    for index in order {
        let chunk = chunks_of(&encode_message(FLARE, &envelope, &message, 999)).remove(index);
        if let Some(result) = reassembler.add(chunk).expect("consistent") {
            assert!(done.is_none(), "completed twice");
            done = Some(result);
        }
    }
    assert_eq!(chunks.len(), 11);
    assert_eq!(done, Some((envelope, message)));
}

#[test]
fn malformed_frames_are_typed_errors() {
    let frame = encode_message(FLARE, &Envelope::direct(0, 0, 0, 1), &payload(10), 4).remove(0);
    for cut in 0..frame.len() - 4 {
        assert!(decode(&frame.slice(..cut), FLARE).is_err(), "cut at {cut}");
    }
    assert_eq!(decode(&frame, "other"), Err(FrameError::WrongFlare(FLARE.into())));
    let mut bad = frame.to_vec();
    bad[0] = 0;
    assert!(matches!(decode(&Bytes::from(bad), FLARE), Err(FrameError::NotAFrame { .. })));
    let mut bad = frame.to_vec();
    bad[2] = 42;
    assert_eq!(decode(&Bytes::from(bad), FLARE), Err(FrameError::UnknownKind(42)));
    let lying_total = {
        let mut out = BytesMut::new();
        put_header(&mut out, 1, FLARE, &Envelope::direct(0, 0, 0, 1), 0, 2, MAX_MESSAGE_BYTES + 1);
        out.freeze()
    };
    assert!(matches!(decode(&lying_total, FLARE), Err(FrameError::Inconsistent(_))));
    let lying_count = {
        let mut out = BytesMut::new();
        put_header(&mut out, 1, FLARE, &Envelope::direct(0, 0, 0, 1), 5, 3, 100);
        out.freeze()
    };
    assert!(matches!(decode(&lying_count, FLARE), Err(FrameError::Inconsistent(_))));
}

#[test]
fn what_a_peer_announces_is_bounded_by_the_receiving_flare() {
    let envelope = Envelope::direct(0, 0, 0, 1);
    // Above the message limit, in one chunk or in several.
    let mut reassembler = Whole::new(9);
    for chunk in [10, 3] {
        let first = chunks_of(&encode_message(FLARE, &envelope, &payload(10), chunk)).remove(0);
        assert!(matches!(reassembler.add(first), Err(FrameError::Inconsistent(m)) if m.contains("limit is 9")));
    }
    // One message announced as several chunks, then as one.
    let mut reassembler = Whole::new(100);
    let first = chunks_of(&encode_message(FLARE, &envelope, &payload(8), 4)).remove(0);
    assert_eq!(reassembler.add(first).expect("first of two"), None);
    let whole = chunks_of(&encode_message(FLARE, &envelope, &payload(8), 8)).remove(0);
    assert!(matches!(reassembler.add(whole), Err(FrameError::Inconsistent(_))));
    // Messages in progress at once are capped.
    let mut reassembler = Whole::new(100);
    for seq in 0..=MAX_PARTIAL_MESSAGES as u64 {
        let first = chunks_of(&encode_message(FLARE, &Envelope::direct(0, seq, 0, 1), &payload(8), 4)).remove(0);
        let added = reassembler.add(first);
        if (seq as usize) < MAX_PARTIAL_MESSAGES {
            assert_eq!(added.expect("within the cap"), None);
        } else {
            assert!(matches!(added, Err(FrameError::Inconsistent(m)) if m.contains("in progress")));
        }
    }
}

#[test]
fn only_recent_messages_are_remembered_to_drop_duplicates() {
    let mut reassembler = Whole::new(100);
    let message = |seq| chunks_of(&encode_message(FLARE, &Envelope::direct(0, seq, 0, 1), &payload(3), 8)).remove(0);
    for seq in 0..3 * RECENT_COMPLETE as u64 {
        assert!(reassembler.add(message(seq)).expect("valid").is_some());
    }
    assert_eq!(reassembler.reassembler.complete.len(), RECENT_COMPLETE);
    let last = 3 * RECENT_COMPLETE as u64 - 1;
    assert_eq!(reassembler.add(message(last)).expect("valid"), None, "a recent duplicate is dropped");
}

#[test]
fn chunks_that_disagree_are_rejected() {
    let envelope = Envelope::direct(0, 0, 0, 1);
    let a = chunks_of(&encode_message(FLARE, &envelope, &payload(8), 4));
    let b = chunks_of(&encode_message(FLARE, &envelope, &payload(12), 4));
    let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
    let mut a = a.into_iter();
    assert_eq!(reassembler.add(a.next().expect("chunk")).expect("first"), None);
    assert!(matches!(reassembler.add(b.into_iter().nth(1).expect("chunk")), Err(FrameError::Inconsistent(_))));
}
