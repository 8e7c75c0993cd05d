//! One worker's byte range of a text file, cut at line boundaries the way
//! Hadoop's text input splits are: worker `i` of `n` owns the lines that
//! *start* in `[i·S/n, (i+1)·S/n)` of a file of `S` bytes. It seeks to its
//! range, skips the partial line it lands in (that line belongs to the
//! previous worker) and reads past its end to finish its last line, so no
//! worker reads much more than `S/n` bytes and every line is read by
//! exactly one worker.
//!
//! ```ignore
//! let mut split = Split::open(Path::new("/data/graph.txt"), ctx.worker_id(), ctx.burst_size())?;
//! let mut line = Vec::new();
//! while split.next_line(&mut line)? { /* parse `line` */ }
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Read buffer: large enough that a split is read in few host calls.
const BUFFER_BYTES: usize = 64 * 1024;

/// The lines of a split, read one at a time.
pub struct Split {
    reader: BufReader<Counted>,
    /// Byte offset of the next unread byte.
    position: u64,
    /// Lines starting at or past this offset belong to the next worker.
    end: u64,
    /// First byte of the range (0: the split starts with the file's first line).
    pub start: u64,
    /// Lines returned so far.
    pub lines: u64,
}

/// A reader that counts the bytes it hands out: the bytes this worker
/// actually fetched from the file, buffer read-ahead included.
struct Counted {
    file: File,
    bytes: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Byte range `[start, end)` of split `index` of `count` in a file of `size` bytes.
pub fn byte_range(size: u64, index: u32, count: u32) -> (u64, u64) {
    // u128: `size * count` may not fit in 64 bits.
    let at = |i: u32| (u128::from(size) * u128::from(i) / u128::from(count)) as u64;
    (at(index), at(index + 1))
}

impl Split {
    /// Opens split `index` of `count` of the file at `path`.
    pub fn open(path: &Path, index: u32, count: u32) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let (start, end) = byte_range(size, index, count);
        // From one byte before the range: if that byte ends a line, the
        // range starts on a line start and skipping "through the next
        // newline" skips nothing of ours.
        let from = start.saturating_sub(1);
        file.seek(SeekFrom::Start(from))?;
        let reader = BufReader::with_capacity(BUFFER_BYTES, Counted { file, bytes: 0 });
        let mut split = Self { reader, position: from, end, start, lines: 0 };
        if start > 0 {
            let mut partial = Vec::new();
            split.position += split.reader.read_until(b'\n', &mut partial)? as u64;
        }
        Ok(split)
    }

    /// Reads the next line of the split into `line` (without its `\n` or
    /// `\r\n`); `false` once the split has no more lines.
    pub fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        line.clear();
        if self.position >= self.end {
            return Ok(false);
        }
        let n = self.reader.read_until(b'\n', line)?;
        if n == 0 {
            return Ok(false);
        }
        self.position += n as u64;
        self.lines += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        Ok(true)
    }

    /// Bytes fetched from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().bytes
    }
}

/// The first malformed line of a split, by its index in the split (from 0):
/// a worker does not know its first line's number in the file until the
/// workers have shared how many lines each read.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
pub struct BadLine {
    /// Index of the line in its split, from 0.
    pub index: u64,
    /// What is wrong with it.
    pub message: String,
}

/// What a worker shares about its split: how many lines it read (up to its
/// first bad line, the only one the workers after it need), and that line.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SplitLines {
    /// Lines read.
    pub lines: u64,
    /// The first bad line, if any.
    pub bad: Option<BadLine>,
}

/// The first bad line of the file, numbered from 1, given every worker's
/// [`SplitLines`] in worker order.
///
/// Stopping at its first bad line is enough for a worker: only the line
/// numbers of the workers after it depend on its count, and their bad
/// lines come after its own.
pub fn first_bad_line(splits: &[SplitLines]) -> Option<(u64, &str)> {
    let mut first_line = 1;
    for split in splits {
        if let Some(bad) = &split.bad {
            return Some((first_line + bad.index, &bad.message));
        }
        first_line += split.lines;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Every line of `text` read through `count` splits, in split order.
    fn read_all(text: &[u8], count: u32) -> Vec<Vec<String>> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text).expect("write");
        (0..count)
            .map(|index| {
                let mut split = Split::open(file.path(), index, count).expect("opens");
                let (mut lines, mut line) = (Vec::new(), Vec::new());
                while split.next_line(&mut line).expect("reads") {
                    lines.push(String::from_utf8(line.clone()).expect("UTF-8"));
                }
                assert_eq!(split.lines, lines.len() as u64);
                lines
            })
            .collect()
    }

    #[test]
    fn every_line_is_read_by_exactly_one_split_in_order() {
        // Lines of uneven lengths, a CRLF line, an empty line, no final newline.
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&"x".repeat(i % 17));
            text.push_str(&format!("{i}"));
            text.push_str(if i % 13 == 0 { "\r\n" } else { "\n" });
        }
        text.push_str("\nlast");
        let expected: Vec<String> = text.lines().map(str::to_owned).collect();
        for count in [1, 2, 3, 7, 64, 5000] {
            let splits = read_all(text.as_bytes(), count);
            assert_eq!(splits.concat(), expected, "{count} splits");
        }
    }

    #[test]
    fn a_split_reads_little_more_than_its_range() {
        let text: String = (0..100_000).map(|i| format!("{i:07}\n")).collect();
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        let mut split = Split::open(file.path(), 3, 8).expect("opens");
        let mut line = Vec::new();
        while split.next_line(&mut line).expect("reads") {}
        let share = text.len() as u64 / 8;
        assert!(
            split.bytes_read() <= share + BUFFER_BYTES as u64,
            "{} bytes for a {share}-byte split",
            split.bytes_read()
        );
        assert_eq!(split.lines, 12_500);
    }

    #[test]
    fn the_first_bad_line_is_numbered_in_the_file() {
        let splits = [
            SplitLines { lines: 10, bad: None },
            SplitLines { lines: 3, bad: Some(BadLine { index: 2, message: "not a number".into() }) },
            SplitLines { lines: 0, bad: Some(BadLine { index: 0, message: "later".into() }) },
        ];
        assert_eq!(first_bad_line(&splits), Some((13, "not a number")));
        assert_eq!(first_bad_line(&splits[..1]), None);
    }
}
