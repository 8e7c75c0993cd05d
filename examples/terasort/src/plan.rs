//! How records are split among workers: sample keys, choose splitters from
//! the samples of every worker, send each record to the worker whose key
//! range holds it. Every worker computes the same splitters from the same
//! samples, so the one-flare sort and the two-stage baseline agree.

use crate::record::{KEY_BYTES, Key, Record, key_of};

/// Keys each worker contributes to the sample (all of its keys when it has
/// fewer). Hadoop's TeraSort samples 100 000 keys in all; this many per
/// worker keeps the all-gather small while splitting evenly enough.
pub const SAMPLES_PER_WORKER: usize = 1000;

/// Evenly spaced keys of `records` (the key at the middle of each of
/// `min(len, SAMPLES_PER_WORKER)` equal stretches), concatenated.
pub fn sample(records: &[Record]) -> Vec<u8> {
    let taken = records.len().min(SAMPLES_PER_WORKER);
    let len = records.len() as u128;
    let step = |k: usize| ((2 * k as u128 + 1) * len / (2 * taken as u128)) as usize;
    (0..taken).flat_map(|k| key_of(&records[step(k)])).collect()
}

/// The `workers - 1` splitters chosen from every worker's samples (as
/// all-gathered: concatenated keys): the samples at ranks `j·M/workers`
/// for `j` in `1..workers`, `M` samples in all. Worker `d` gets the keys
/// from splitter `d - 1` (included) to splitter `d` (excluded). Without
/// samples there are no records, and no splitters are needed.
///
/// # Errors
/// When a worker's samples are not whole keys, naming the worker.
pub fn splitters(samples: &[Vec<u8>], workers: u32) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (worker, part) in samples.iter().enumerate() {
        let (whole, rest) = part.as_chunks::<KEY_BYTES>();
        if !rest.is_empty() {
            return Err(format!("the samples of worker {worker} are {} bytes, not whole keys", part.len()));
        }
        keys.extend_from_slice(whole);
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    keys.sort_unstable();
    let total = keys.len() as u128;
    let n = u128::from(workers);
    Ok((1..n).map(|j| keys[(j * total / n) as usize]).collect())
}

/// The worker that gets a record of `key`: the number of splitters at or
/// below it, so that all records of one key go to one worker.
pub fn destination(splitters: &[Key], key: &Key) -> usize {
    splitters.partition_point(|splitter| splitter <= key)
}

/// `records` split into one part per worker (`workers` parts, in the order
/// the records come).
pub fn partition(records: &[Record], splitters: &[Key], workers: u32) -> Vec<Vec<u8>> {
    let mut parts = vec![Vec::new(); workers as usize];
    for record in records {
        parts[destination(splitters, &key_of(record))].extend_from_slice(record);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RECORD_BYTES, generate};

    fn with_key(first: u8) -> Record {
        let mut record = [0; RECORD_BYTES];
        record[0] = first;
        record
    }

    #[test]
    fn a_small_share_is_sampled_whole() {
        let records: Vec<Record> = (0..5).map(with_key).collect();
        let keys = sample(&records);
        assert_eq!(keys.len(), 5 * KEY_BYTES);
        assert_eq!(keys.iter().step_by(KEY_BYTES).copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(sample(&[]).is_empty());
    }

    #[test]
    fn a_large_share_is_sampled_evenly() {
        let records: Vec<Record> = (0..3 * SAMPLES_PER_WORKER as u64).map(|i| generate(9, i)).collect();
        let keys = sample(&records);
        assert_eq!(keys.len(), SAMPLES_PER_WORKER * KEY_BYTES);
        // The middle of stretch k of 3 records is record 3k + 1.
        assert_eq!(keys[..KEY_BYTES], records[1][..KEY_BYTES]);
        assert_eq!(keys[KEY_BYTES..2 * KEY_BYTES], records[4][..KEY_BYTES]);
    }

    #[test]
    fn splitters_are_at_even_ranks_of_all_samples() {
        // Keys 0..12 spread over three workers, out of order.
        let key = |b: u8| {
            let mut k = [0; KEY_BYTES];
            k[0] = b;
            k
        };
        let part = |bs: &[u8]| bs.iter().flat_map(|&b| key(b)).collect::<Vec<u8>>();
        let samples = vec![part(&[11, 0, 5, 3]), part(&[1, 9, 7, 2]), part(&[4, 6, 10, 8])];
        assert_eq!(splitters(&samples, 4), Ok(vec![key(3), key(6), key(9)]));
        assert_eq!(splitters(&samples, 1), Ok(vec![]));
        assert_eq!(splitters(&[vec![], vec![]], 2), Ok(vec![]));
        assert_eq!(
            splitters(&[vec![0; 10], vec![0; 11]], 2),
            Err("the samples of worker 1 are 11 bytes, not whole keys".into())
        );
    }

    #[test]
    fn fewer_samples_than_workers_still_give_every_splitter() {
        let samples = vec![vec![7; KEY_BYTES], vec![]];
        assert_eq!(splitters(&samples, 5), Ok(vec![[7; KEY_BYTES]; 4]));
    }

    #[test]
    fn equal_keys_go_to_one_worker() {
        let splitters = [[3; KEY_BYTES], [3; KEY_BYTES], [8; KEY_BYTES]];
        assert_eq!(destination(&splitters, &[0; KEY_BYTES]), 0);
        assert_eq!(destination(&splitters, &[3; KEY_BYTES]), 2);
        assert_eq!(destination(&splitters, &[5; KEY_BYTES]), 2);
        assert_eq!(destination(&splitters, &[8; KEY_BYTES]), 3);
        assert_eq!(destination(&[], &[8; KEY_BYTES]), 0);
    }

    #[test]
    fn partition_keeps_every_record_in_order() {
        let records: Vec<Record> = [5, 1, 9, 3, 7].map(with_key).to_vec();
        let parts = partition(&records, &[with_key(4)[..KEY_BYTES].try_into().expect("a key")], 2);
        let firsts = |p: &Vec<u8>| p.iter().step_by(RECORD_BYTES).copied().collect::<Vec<_>>();
        assert_eq!(parts.iter().map(firsts).collect::<Vec<_>>(), vec![vec![1, 3], vec![5, 9, 7]]);
    }
}
