//! The records TeraSort sorts, in the sort benchmark's `gensort` binary
//! format: 100 bytes each, the first 10 of which are the key. Also the
//! deterministic generator, the `valsort`-style checksum and the checks a
//! worker runs on its own output.

/// Bytes of one record.
pub const RECORD_BYTES: usize = 100;

/// Bytes of a record's key (its first bytes).
pub const KEY_BYTES: usize = 10;

/// One record.
pub type Record = [u8; RECORD_BYTES];

/// One key.
pub type Key = [u8; KEY_BYTES];

/// The key of `record`.
pub fn key_of(record: &Record) -> Key {
    let mut key = [0; KEY_BYTES];
    key.copy_from_slice(&record[..KEY_BYTES]);
    key
}

/// The splitmix64 finaliser: a bijection of 64-bit words that mixes every
/// input bit into every output bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Pseudo-random word `j` of record `index` under `seed`.
fn word(seed: u64, index: u64, j: u64) -> u64 {
    mix64(seed ^ mix64(index.wrapping_mul(2).wrapping_add(j)))
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Record `index` (global, counted from 0) of the data set of `seed`.
///
/// It depends on nothing else, so a data set reads the same whatever the
/// burst size. The layout follows `gensort`'s: with `w0 = word(0)` and
/// `w1 = word(1)`, where `word(j) = mix64(seed ^ mix64(2·index + j))`,
/// * bytes 0..8: `w0` big-endian; bytes 8..10: the top two bytes of `w1`
///   (the key);
/// * bytes 10..12: `00 11`;
/// * bytes 12..44: `index` as 32 upper-case hex digits;
/// * bytes 44..48: `88 99 AA BB`;
/// * bytes 48..96: 12 groups of 4 copies of one upper-case hex digit, the
///   digit of group `m` being nibble `m` of `w1` (`(w1 >> 4m) & 15`);
/// * bytes 96..100: `CC DD EE FF`.
pub fn generate(seed: u64, index: u64) -> Record {
    let (w0, w1) = (word(seed, index, 0), word(seed, index, 1));
    let mut record = [0; RECORD_BYTES];
    record[..8].copy_from_slice(&w0.to_be_bytes());
    record[8..10].copy_from_slice(&w1.to_be_bytes()[..2]);
    record[10..12].copy_from_slice(&[0x00, 0x11]);
    let row = u128::from(index);
    for (i, byte) in record[12..44].iter_mut().enumerate() {
        *byte = HEX_UPPER[((row >> (4 * (31 - i))) & 0xF) as usize];
    }
    record[44..48].copy_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for (m, group) in record[48..96].chunks_exact_mut(4).enumerate() {
        group.fill(HEX_UPPER[((w1 >> (4 * m)) & 0xF) as usize]);
    }
    record[96..].copy_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
    record
}

/// Records `[first, first + count)` of the data set of `seed`.
pub fn generate_range(seed: u64, first: u64, count: u64) -> Vec<Record> {
    (first..first + count).map(|index| generate(seed, index)).collect()
}

/// The wrapping sum of the CRC-32 (IEEE) of every record, as `valsort`
/// sums them (it keeps 128 bits; 64 are plenty to compare two sums).
pub fn checksum(records: &[Record]) -> u64 {
    records.iter().fold(0u64, |sum, record| sum.wrapping_add(u64::from(crc32fast::hash(record))))
}

/// Whether `records` are in non-decreasing order of their bytes (by key,
/// then by the whole record).
pub fn is_sorted(records: &[Record]) -> bool {
    records.windows(2).all(|pair| pair[0] <= pair[1])
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [HEX_LOWER[usize::from(b >> 4)] as char, HEX_LOWER[usize::from(b & 0xF)] as char])
        .collect()
}

/// Records `[start, end)` of `total`, the share of worker `index` of `count`.
pub fn share(total: u64, index: u32, count: u32) -> (u64, u64) {
    // u128: `total * count` may not fit in 64 bits.
    let at = |i: u32| (u128::from(total) * u128::from(i) / u128::from(count)) as u64;
    (at(index), at(index + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data/sample.dat` is records `0..SAMPLE_RECORDS` of seed
    /// `SAMPLE_SEED`, in generation (unsorted) order.
    const SAMPLE_SEED: u64 = 2024;
    const SAMPLE_RECORDS: u64 = 500;

    #[test]
    fn the_sample_file_is_the_generators_output() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.dat");
        let expected = generate_range(SAMPLE_SEED, 0, SAMPLE_RECORDS).concat();
        // `TERASORT_WRITE_SAMPLE=1 cargo test -p terasort sample` rewrites it.
        if std::env::var_os("TERASORT_WRITE_SAMPLE").is_some() {
            std::fs::write(&path, &expected).expect("writes the sample");
        }
        let on_disk = std::fs::read(&path).expect("the sample file is there");
        assert!(on_disk == expected, "{} is not the generator's output", path.display());
    }

    #[test]
    fn a_record_has_the_gensort_layout() {
        let record = generate(7, 0x1234);
        assert_eq!(&record[10..12], &[0x00, 0x11]);
        assert_eq!(&record[12..44], b"00000000000000000000000000001234");
        assert_eq!(&record[44..48], &[0x88, 0x99, 0xAA, 0xBB]);
        assert_eq!(&record[96..], &[0xCC, 0xDD, 0xEE, 0xFF]);
        for group in record[48..96].chunks_exact(4) {
            assert!(group.iter().all(|&b| b == group[0] && HEX_UPPER.contains(&b)), "{group:?}");
        }
    }

    #[test]
    fn records_depend_only_on_seed_and_index() {
        assert_eq!(generate(1, 5), generate(1, 5));
        assert_ne!(generate(1, 5), generate(2, 5));
        assert_ne!(generate(1, 5), generate(1, 6));
        let whole = generate_range(3, 0, 10);
        assert_eq!(&whole[3..5], &generate_range(3, 3, 2)[..]);
    }

    #[test]
    fn the_key_is_spread() {
        // Keys of consecutive records land all over the key space.
        let high: Vec<u8> = (0..64).map(|i| generate(0, i)[0]).collect();
        assert!(high.iter().any(|&b| b < 64) && high.iter().any(|&b| b >= 192), "{high:?}");
    }

    #[test]
    fn checksum_sums_the_crc_of_each_record() {
        let a = generate(0, 0);
        let b = generate(0, 1);
        let expected = u64::from(crc32fast::hash(&a)) + u64::from(crc32fast::hash(&b));
        assert_eq!(checksum(&[a, b]), expected);
        assert_eq!(checksum(&[]), 0);
    }

    #[test]
    fn sorted_means_non_decreasing_bytes() {
        let (a, b) = ([1; RECORD_BYTES], [2; RECORD_BYTES]);
        assert!(is_sorted(&[a, a, b]));
        assert!(!is_sorted(&[b, a]));
        assert!(is_sorted(&[]));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xAB, 0x7F]), "00ab7f");
        assert_eq!(key_of(&generate(0, 0)).len(), KEY_BYTES);
    }

    #[test]
    fn shares_cover_every_record_once() {
        for (total, count) in [(0, 3), (10, 3), (1003, 7), (5, 8)] {
            let mut next = 0;
            for i in 0..count {
                let (start, end) = share(total, i, count);
                assert_eq!(start, next);
                next = end;
            }
            assert_eq!(next, total);
        }
        assert_eq!(share(u64::MAX, 1, 2), (u64::MAX / 2, u64::MAX));
    }
}
