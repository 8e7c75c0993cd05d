//! The points file: a CSV of numbers under a header line that only fixes
//! the number of columns. Every worker reads the header and the first `k`
//! rows (the initial centroids) from the start of the file, then its own
//! byte range of it (`Split`: the lines that start in
//! `[i·S/N, (i+1)·S/N)` of a file of `S` bytes), stopping at its first bad
//! line. Lines are numbered from 1, the header being line 1.

use std::io;
use std::path::Path;

use burst_guest_sdk::split::{BadLine, Split, SplitLines};

use crate::{MAX_DIMENSIONS, MAX_WORKER_CELLS};

/// Most characters of a bad cell quoted in an error message.
const MAX_QUOTED_CHARS: usize = 32;

/// The numbers of one data line, appended to `row`; the error says what is
/// wrong with the line (without naming it: the caller knows where it is).
pub fn parse_row(line: &[u8], columns: usize, row: &mut Vec<f64>) -> Result<(), String> {
    let cells: Vec<&[u8]> =
        if line.trim_ascii().is_empty() { Vec::new() } else { line.split(|&b| b == b',').collect() };
    if cells.len() != columns {
        return Err(format!("{} columns, the header has {columns}", cells.len()));
    }
    for (column, cell) in (1..).zip(cells) {
        let value = std::str::from_utf8(cell.trim_ascii()).ok().and_then(|text| text.parse::<f64>().ok());
        match value {
            Some(value) if value.is_finite() => row.push(value),
            _ => return Err(format!("column {column} ({}) is not a finite number", quoted(cell))),
        }
    }
    Ok(())
}

/// `cell` as a quoted string, cut to [`MAX_QUOTED_CHARS`].
fn quoted(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    let mut shown: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// The start of the file: its column count and its first rows.
pub struct Head {
    /// Columns of every row: the point's dimensions.
    pub columns: usize,
    /// The first `k` rows, row-major.
    pub rows: Vec<f64>,
}

/// Reads the header and the first `k` rows of the file at `path`; every
/// error names the file (and the line, where there is one).
pub fn read_head(path: &Path, k: usize) -> Result<Head, String> {
    let name = path.display();
    let io_error = |e: io::Error| format!("could not read the points {name}: {e}");
    // The whole file as one split: read from its first byte, line by line.
    let mut split = Split::open(path, 0, 1).map_err(io_error)?;
    let mut line = Vec::new();
    if !split.next_line(&mut line).map_err(io_error)? {
        return Err(format!("{name}: empty (no header line)"));
    }
    if line.trim_ascii().is_empty() {
        return Err(format!("{name} line 1: the header is blank"));
    }
    let columns = line.split(|&b| b == b',').count();
    if columns > MAX_DIMENSIONS {
        return Err(format!("{name} line 1: {columns} columns; at most {MAX_DIMENSIONS}"));
    }
    let mut rows = Vec::with_capacity(k * columns);
    while rows.len() < k * columns {
        if !split.next_line(&mut line).map_err(io_error)? {
            return Err(format!("k = {k} but {name} has only {} rows", rows.len() / columns));
        }
        parse_row(&line, columns, &mut rows).map_err(|message| format!("{name} line {}: {message}", split.lines))?;
    }
    Ok(Head { columns, rows })
}

/// What a worker read from its split of the file.
pub struct SplitPoints {
    /// The rows, row-major, in file order.
    pub points: Vec<f64>,
    /// Lines read and the first bad one, for numbering it in the file.
    pub lines: SplitLines,
    /// Bytes fetched from the file.
    pub bytes_read: u64,
}

impl SplitPoints {
    /// Rows read.
    pub fn rows(&self, columns: usize) -> u64 {
        (self.points.len() / columns) as u64
    }
}

/// Reads split `worker_id` of `burst_size` of the file at `path`, whose
/// rows have `columns` numbers, stopping at its first bad line.
pub fn read_split(path: &Path, worker_id: u32, burst_size: u32, columns: usize) -> io::Result<SplitPoints> {
    let mut split = Split::open(path, worker_id, burst_size)?;
    // Only a split from byte 0 can read the line there: the header.
    let has_header = split.start == 0;
    let (mut points, mut line, mut bad) = (Vec::new(), Vec::new(), None);
    while split.next_line(&mut line)? {
        if has_header && split.lines == 1 {
            continue;
        }
        let problem = if points.len() + columns > MAX_WORKER_CELLS {
            Err(format!("more than {MAX_WORKER_CELLS} numbers in one worker's share; use more workers"))
        } else {
            parse_row(&line, columns, &mut points)
        };
        if let Err(message) = problem {
            bad = Some(BadLine { index: split.lines - 1, message });
            break;
        }
    }
    let lines = SplitLines { lines: split.lines, bad };
    Ok(SplitPoints { points, lines, bytes_read: split.bytes_read() })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use burst_guest_sdk::split::first_bad_line;
    use tempfile::NamedTempFile;

    use super::*;

    fn file(text: &str) -> NamedTempFile {
        let mut file = NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn rows_parse_with_spaces_and_exponents() {
        let mut row = Vec::new();
        parse_row(b" 1.5, -2e-3 ,7", 3, &mut row).expect("valid");
        assert_eq!(row, [1.5, -0.002, 7.0]);
        let cases: [(&[u8], &str); 6] = [
            (b"1,2", "2 columns, the header has 3"),
            (b"", "0 columns, the header has 3"),
            (b"1,2,3,4", "4 columns, the header has 3"),
            (b"1,x,3", "column 2 (\"x\") is not a finite number"),
            (b"1,2,", "column 3 (\"\") is not a finite number"),
            (b"NaN,inf,1", "column 1 (\"NaN\") is not a finite number"),
        ];
        for (line, message) in cases {
            assert_eq!(parse_row(line, 3, &mut row), Err(message.to_owned()), "{:?}", String::from_utf8_lossy(line));
        }
        let long = format!("{},1,1", "y".repeat(40));
        let quoted = format!("column 1 (\"{}…\") is not a finite number", "y".repeat(32));
        assert_eq!(parse_row(long.as_bytes(), 3, &mut row), Err(quoted));
    }

    #[test]
    fn the_head_is_the_header_and_the_first_rows() {
        let csv = file("x,y\r\n1,2\n3,4\n5,6\n");
        let head = read_head(csv.path(), 2).expect("valid");
        assert_eq!((head.columns, head.rows), (2, vec![1.0, 2.0, 3.0, 4.0]));
        let name = csv.path().display().to_string();
        assert_eq!(read_head(csv.path(), 4).err(), Some(format!("k = 4 but {name} has only 3 rows")));
        // `NAME` stands for each case's own file.
        let cases = [
            ("", "NAME: empty (no header line)"),
            (" \n1\n", "NAME line 1: the header is blank"),
            ("a,b\n1,2\n1\n", "NAME line 3: 1 columns, the header has 2"),
            ("a\n1\nz\n", "NAME line 3: column 1 (\"z\") is not a finite number"),
        ];
        for (text, message) in cases {
            let csv = file(text);
            let name = csv.path().display().to_string();
            assert_eq!(read_head(csv.path(), 2).err(), Some(message.replace("NAME", &name)), "{text:?}");
        }
    }

    #[test]
    fn splits_share_the_rows_and_number_the_first_bad_line() {
        let mut text = String::from("a,b,c\n");
        for i in 0..300 {
            text.push_str(&format!("{i},{}.5,-{i}\n", i * 2));
        }
        let csv = file(&text);
        let expected: Vec<f64> = (0..300).flat_map(|i| [f64::from(i), f64::from(i * 2) + 0.5, -f64::from(i)]).collect();
        for n in [1, 2, 7, 500] {
            let splits: Vec<SplitPoints> = (0..n).map(|i| read_split(csv.path(), i, n, 3).expect("reads")).collect();
            let joined: Vec<f64> = splits.iter().flat_map(|s| s.points.iter().copied()).collect();
            assert_eq!(joined, expected, "{n} splits");
            assert!(splits.iter().all(|s| s.lines.bad.is_none()));
        }
        text.push_str("1,2\n7,8,9\nq,1,1\n");
        let csv = file(&text);
        let lines: Vec<SplitLines> = (0..5).map(|i| read_split(csv.path(), i, 5, 3).expect("reads").lines).collect();
        assert_eq!(first_bad_line(&lines), Some((302, "2 columns, the header has 3")));
    }
}
