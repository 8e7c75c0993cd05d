//! Hostile input: whatever bytes arrive, decoding and reassembly never
//! panic, never accept a length above the cap, and put a message back
//! together exactly whenever its chunks arrive in any order, any number of
//! times.

use proptest::prelude::*;

use super::tests::Whole;
use super::*;

const FLARE: &str = "flare-prop";

fn envelope() -> impl Strategy<Value = Envelope> {
    (prop::sample::select(Kind::ALL.to_vec()), any::<u32>(), any::<u64>(), 0..64u32, 0..64u32)
        .prop_map(|(kind, tag, seq, source, dest)| Envelope { kind, tag, seq, source, dest })
}

/// A message, its chunk size, and an arrival order of its chunks: every
/// chunk at least once, some several times, shuffled.
fn arrivals() -> impl Strategy<Value = (Bytes, usize, Vec<usize>)> {
    (0..4096usize, 1..700usize, any::<u64>()).prop_flat_map(|(len, chunk, seed)| {
        let count = len.div_ceil(chunk).max(1);
        let message =
            Bytes::from((0..len).map(|i| (i as u64 * 31 + seed % 251 + i as u64 / 7) as u8).collect::<Vec<_>>());
        let extra = prop::collection::vec(0..count, 0..count * 2);
        (
            Just(message),
            Just(chunk),
            extra.prop_flat_map(move |extra| {
                let order: Vec<usize> = (0..count).chain(extra).collect();
                Just(order).prop_shuffle()
            }),
        )
    })
}

fn chunk(frame: &Bytes) -> Chunk {
    match decode(frame, FLARE) {
        Ok(Frame::Chunk(chunk)) => chunk,
        other => panic!("a frame we encoded must decode: {other:?}"),
    }
}

/// What every accepted chunk satisfies, whatever its bytes were.
fn check_accepted(decoded: Result<Frame, FrameError>) {
    if let Ok(Frame::Chunk(chunk)) = decoded {
        assert!(chunk.total_len <= MAX_MESSAGE_BYTES);
        assert!(chunk.bytes.len() as u64 <= chunk.total_len);
        assert!(chunk.index < chunk.count);
        let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
        let _ = reassembler.add(chunk);
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_accepted(decode(&Bytes::from(bytes), FLARE));
    }

    #[test]
    fn random_bytes_after_a_valid_prefix_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut framed = vec![MAGIC, VERSION, Kind::Direct as u8, FLARE.len() as u8];
        framed.extend_from_slice(FLARE.as_bytes());
        framed.append(&mut bytes);
        check_accepted(decode(&Bytes::from(framed), FLARE));
    }

    #[test]
    fn truncated_and_corrupted_frames_never_panic(
        envelope in envelope(),
        len in 0..300usize,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let payload = Bytes::from((0..len).map(|i| (i * 13 + 5) as u8).collect::<Vec<_>>());
        for frame in encode_message(FLARE, &envelope, &payload, 97) {
            let truncated = frame.slice(..cut.index(frame.len() + 1));
            check_accepted(decode(&truncated, FLARE));
            let mut corrupted = frame.to_vec();
            for (at, value) in &flips {
                let at = at.index(corrupted.len());
                corrupted[at] = *value;
            }
            check_accepted(decode(&Bytes::from(corrupted), FLARE));
        }
    }

    #[test]
    fn lying_lengths_and_counts_are_rejected_or_bounded(
        envelope in envelope(),
        index in any::<u32>(),
        count in any::<u32>(),
        total in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut frame = BytesMut::new();
        put_header(&mut frame, envelope.kind as u8, FLARE, &envelope, index, count, total);
        frame.put_slice(&body);
        check_accepted(decode(&frame.freeze(), FLARE));
    }

    #[test]
    fn any_arrival_order_with_duplicates_reassembles_the_message(
        envelope in envelope(),
        (message, chunk_bytes, order) in arrivals(),
    ) {
        let frames = encode_message(FLARE, &envelope, &message, chunk_bytes);
        let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
        let mut seen = HashSet::new();
        let mut completed = None;
        for index in order {
            let done = reassembler.add(chunk(&frames[index])).expect("consistent chunks");
            seen.insert(index);
            match done {
                Some((got, bytes)) => {
                    prop_assert!(completed.is_none(), "returned twice");
                    prop_assert_eq!(seen.len(), frames.len(), "returned before every chunk arrived");
                    prop_assert_eq!(got, envelope);
                    prop_assert_eq!(&bytes, &message);
                    completed = Some(bytes);
                }
                None => prop_assert!(completed.is_some() || seen.len() < frames.len()),
            }
        }
        prop_assert!(completed.is_some());
    }

    #[test]
    fn interleaved_messages_reassemble_independently(
        (first, chunk_bytes, order) in arrivals(),
        second_len in 0..2000usize,
    ) {
        let (a, b) = (Envelope::direct(1, 0, 2, 3), Envelope::direct(1, 1, 2, 3));
        let second = Bytes::from((0..second_len).map(|i| (i * 3 + 1) as u8).collect::<Vec<_>>());
        let first_frames = encode_message(FLARE, &a, &first, chunk_bytes);
        let second_frames = encode_message(FLARE, &b, &second, chunk_bytes);
        let mut reassembler = Whole::new(MAX_MESSAGE_BYTES);
        let mut done = Vec::new();
        let mut second_next = second_frames.iter();
        for index in order {
            done.extend(reassembler.add(chunk(&first_frames[index])).expect("consistent"));
            if let Some(frame) = second_next.next() {
                done.extend(reassembler.add(chunk(frame)).expect("consistent"));
            }
        }
        for frame in second_next {
            done.extend(reassembler.add(chunk(frame)).expect("consistent"));
        }
        done.sort_by_key(|(envelope, _)| envelope.seq);
        prop_assert_eq!(done, vec![(a, first), (b, second)]);
    }
}
