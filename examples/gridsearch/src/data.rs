//! The data set: parsed from a CSV file (a header line, numeric columns, the
//! last one the target) or generated from a seed.

/// At most this many feature columns: each fold's `XᵀX` has `features²`
/// entries and each alpha costs a Cholesky of `features³ / 3` steps.
pub const MAX_FEATURES: usize = 256;

/// At most this many numbers (rows × columns) in a data set: 64 MiB of
/// `f64`, well inside a worker's default memory limit with the file's text.
pub const MAX_CELLS: usize = 1 << 23;

/// Terms summed for one approximately normal noise draw (Irwin–Hall):
/// plain arithmetic, so a generated data set has the same bits on every
/// platform, which `ln`/`cos` of a Box–Muller draw would not promise.
const NOISE_TERMS: usize = 12;

/// Rows of features and their targets.
#[derive(Debug, PartialEq)]
pub struct Dataset {
    /// Number of feature columns.
    pub features: usize,
    /// Features, row-major: row `i` is `x[i * features..(i + 1) * features]`.
    pub x: Vec<f64>,
    /// Target of each row.
    pub y: Vec<f64>,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// Features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.features..(i + 1) * self.features]
    }
}

/// Parses the CSV `text` of the file `name` (named in every error, with
/// the 1-based line; the header is line 1). A final newline is optional.
pub fn parse_csv(name: &str, text: &str) -> Result<Dataset, String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = (1..).zip(text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)));
    let columns = match lines.next() {
        Some((_, header)) if !header.trim().is_empty() => header.split(',').count(),
        _ => return Err(format!("{name}: empty (no header line)")),
    };
    if columns < 2 {
        return Err(format!("{name} line 1: the header has 1 column; need the features, then the target"));
    }
    let features = columns - 1;
    if features > MAX_FEATURES {
        return Err(format!("{name} line 1: {features} features; at most {MAX_FEATURES}"));
    }
    let mut data = Dataset { features, x: Vec::new(), y: Vec::new() };
    for (number, line) in lines {
        let cells: Vec<&str> = if line.trim().is_empty() { Vec::new() } else { line.split(',').collect() };
        if cells.len() != columns {
            return Err(format!("{name} line {number}: {} columns, the header has {columns}", cells.len()));
        }
        if data.x.len() + columns > MAX_CELLS {
            return Err(format!("{name} line {number}: more than {MAX_CELLS} numbers in the file"));
        }
        for (column, cell) in (1..).zip(&cells) {
            let value = match cell.trim().parse::<f64>() {
                Ok(value) if value.is_finite() => value,
                _ => return Err(format!("{name} line {number}: column {column} ({cell:?}) is not a finite number")),
            };
            if column == columns { data.y.push(value) } else { data.x.push(value) }
        }
    }
    Ok(data)
}

/// A seeded synthetic data set: `y = x·w + noise·ε`.
#[derive(serde::Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Rows.
    pub rows: usize,
    /// Feature columns.
    pub features: usize,
    /// Standard deviation of the noise added to the targets.
    pub noise: f64,
    /// Seed of everything: the true weights, the features, the noise.
    pub seed: u64,
}

/// A splitmix64 stream.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Checks `spec` and generates its data set: true weights uniform in
/// `[-2, 2)`, features uniform in `[-1, 1)`, noise approximately normal.
pub fn generate(spec: &Generate) -> Result<Dataset, String> {
    let Generate { rows, features, noise, seed } = *spec;
    if !(1..=MAX_FEATURES).contains(&features) {
        return Err(format!("generate.features: {features}; need 1 to {MAX_FEATURES}"));
    }
    if rows.checked_mul(features + 1).is_none_or(|cells| cells > MAX_CELLS) {
        return Err(format!("generate: {rows} rows of {features} features and a target exceed {MAX_CELLS} numbers"));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(format!("generate.noise: {noise}; need a finite number ≥ 0"));
    }
    let mut stream = Stream(seed);
    let weights: Vec<f64> = (0..features).map(|_| 4.0 * stream.uniform() - 2.0).collect();
    let mut data = Dataset { features, x: Vec::with_capacity(rows * features), y: Vec::with_capacity(rows) };
    for _ in 0..rows {
        let row: Vec<f64> = (0..features).map(|_| 2.0 * stream.uniform() - 1.0).collect();
        let signal: f64 = row.iter().zip(&weights).map(|(x, w)| x * w).sum();
        let normal: f64 = (0..NOISE_TERMS).map(|_| stream.uniform()).sum::<f64>() - NOISE_TERMS as f64 / 2.0;
        data.x.extend_from_slice(&row);
        data.y.push(signal + noise * normal);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` as the sample file is written: six decimals.
    fn to_csv(data: &Dataset) -> String {
        let mut text: Vec<String> = (1..=data.features).map(|j| format!("x{j}")).collect();
        text.push("y".into());
        let mut csv = text.join(",") + "\n";
        for i in 0..data.rows() {
            let cells: Vec<String> = data.row(i).iter().chain([&data.y[i]]).map(|v| format!("{v:.6}")).collect();
            csv += &(cells.join(",") + "\n");
        }
        csv
    }

    /// The sample under `data/` is this generated set, written by `to_csv`.
    const SAMPLE: Generate = Generate { rows: 500, features: 5, noise: 0.5, seed: 2024 };

    #[test]
    fn the_sample_file_is_the_generated_sample() {
        let expected = to_csv(&generate(&SAMPLE).expect("valid"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.csv");
        if std::env::var_os("GRIDSEARCH_WRITE_SAMPLE").is_some() {
            std::fs::write(path, &expected).expect("writes the sample");
        }
        assert_eq!(std::fs::read_to_string(path).expect("the sample exists"), expected);
    }

    #[test]
    fn a_csv_parses_into_rows_and_targets() {
        let data = parse_csv("f.csv", "a,b,t\r\n1,2,3\n -4 , 5e-1,6\n").expect("valid");
        assert_eq!(data, Dataset { features: 2, x: vec![1.0, 2.0, -4.0, 0.5], y: vec![3.0, 6.0] });
        assert_eq!(parse_csv("f.csv", "a,t").expect("valid").rows(), 0);
    }

    #[test]
    fn bad_csvs_name_the_file_and_line() {
        let cases = [
            ("", "f.csv: empty (no header line)"),
            ("t\n1\n", "f.csv line 1: the header has 1 column; need the features, then the target"),
            ("a,t\n1,2\n1,2,3\n", "f.csv line 3: 3 columns, the header has 2"),
            ("a,t\n1,2\n\n1,2\n", "f.csv line 3: 0 columns, the header has 2"),
            ("a,t\n1,2\n3,x\n", "f.csv line 3: column 2 (\"x\") is not a finite number"),
            ("a,t\n1,2\n3,\n", "f.csv line 3: column 2 (\"\") is not a finite number"),
            ("a,t\nNaN,2\n", "f.csv line 2: column 1 (\"NaN\") is not a finite number"),
            ("a,t\ninf,2\n", "f.csv line 2: column 1 (\"inf\") is not a finite number"),
        ];
        for (text, message) in cases {
            assert_eq!(parse_csv("f.csv", text), Err(message.to_owned()), "{text:?}");
        }
        let wide = vec!["c"; MAX_FEATURES + 2].join(",");
        assert_eq!(parse_csv("f.csv", &wide), Err(format!("f.csv line 1: 257 features; at most {MAX_FEATURES}")));
    }

    #[test]
    fn generation_is_deterministic_and_checked() {
        let spec = Generate { rows: 50, features: 3, noise: 0.1, seed: 7 };
        let (a, b) = (generate(&spec).expect("valid"), generate(&spec).expect("valid"));
        assert_eq!(a, b);
        assert_eq!((a.rows(), a.x.len()), (50, 150));
        assert!(a.x.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(a, generate(&Generate { seed: 8, ..spec }).expect("valid"));
        let bad = [
            (Generate { features: 0, ..spec }, "generate.features: 0; need 1 to 256"),
            (Generate { noise: -1.0, ..spec }, "generate.noise: -1; need a finite number ≥ 0"),
            (
                Generate { rows: MAX_CELLS, ..spec },
                "generate: 8388608 rows of 3 features and a target exceed 8388608 numbers",
            ),
        ];
        for (spec, message) in bad {
            assert_eq!(generate(&spec), Err(message.to_owned()));
        }
    }
}
