//! The graph as the workers hold it: parsing SNAP edge lists, which worker
//! owns which source nodes, the edges' wire form for the shuffle, and each
//! worker's adjacency lists of the sources it owns.

use std::io;
use std::ops::Range;
use std::path::Path;

use burst_guest_sdk::split::{BadLine, Split, SplitLines};

/// Most nodes a graph may have: the rank vector (8 bytes a node) is
/// broadcast whole every iteration and must fit one message, and a worker
/// holds a few such vectors at once (raise the memory limit for the
/// largest graphs).
pub const MAX_NODES: u32 = 1 << 24;

/// Most bytes of a bad field quoted in an error message.
const MAX_QUOTED_BYTES: usize = 32;

/// The source nodes worker `worker_id` of `burst_size` owns among `nodes`:
/// contiguous id ranges, as even as integer division makes them.
pub fn owned(worker_id: u32, burst_size: u32, nodes: u32) -> Range<u32> {
    // u64: `nodes * burst_size` may not fit in 32 bits.
    let at = |i: u32| (u64::from(nodes) * u64::from(i) / u64::from(burst_size)) as u32;
    at(worker_id)..at(worker_id + 1)
}

/// The worker whose [`owned`] range holds `node` (`node < nodes`).
pub fn owner(node: u32, burst_size: u32, nodes: u32) -> u32 {
    // The largest `i` with `⌊i·nodes/n⌋ ≤ node`, i.e. `i·nodes < (node+1)·n`.
    ((u64::from(node) + 1) * u64::from(burst_size)).div_ceil(u64::from(nodes)) as u32 - 1
}

/// The edge on one line of a SNAP edge list, `None` for a comment or an
/// empty line; the error says what is wrong with the line.
pub fn parse_line(line: &[u8]) -> Result<Option<(u32, u32)>, String> {
    let mut fields = line.split(u8::is_ascii_whitespace).filter(|f| !f.is_empty());
    let Some(source) = fields.next() else {
        return Ok(None);
    };
    if source.starts_with(b"#") {
        return Ok(None);
    }
    let source = node_id(source, "source")?;
    let target = fields.next().ok_or("expected a target node id after the source")?;
    let target = node_id(target, "target")?;
    if let Some(extra) = fields.next() {
        return Err(format!("expected two node ids, found more: {}", quoted(extra)));
    }
    Ok(Some((source, target)))
}

/// A node id: decimal digits, below [`MAX_NODES`].
fn node_id(field: &[u8], role: &str) -> Result<u32, String> {
    if !field.iter().all(u8::is_ascii_digit) {
        return Err(format!("{role} {} is not a node id (a non-negative integer)", quoted(field)));
    }
    let mut id: u64 = 0;
    for digit in field {
        id = id * 10 + u64::from(digit - b'0');
        if id >= u64::from(MAX_NODES) {
            return Err(format!("{role} {} is above the largest node id, {}", quoted(field), MAX_NODES - 1));
        }
    }
    Ok(id as u32)
}

/// `field` in quotes, cut to [`MAX_QUOTED_BYTES`].
fn quoted(field: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&field[..field.len().min(MAX_QUOTED_BYTES)]);
    let more = if field.len() > MAX_QUOTED_BYTES { "…" } else { "" };
    format!("\"{shown}{more}\"")
}

/// What a worker read from its split of an edge list.
pub struct SplitEdges {
    /// The edges, duplicates included, in file order.
    pub edges: Vec<(u32, u32)>,
    /// Lines read and the first bad one, for numbering it in the file.
    pub lines: SplitLines,
    /// One more than the largest node id seen (0 for no edges).
    pub nodes: u64,
    /// Bytes fetched from the file.
    pub bytes_read: u64,
}

/// Reads split `worker_id` of `burst_size` of the edge list at `path`,
/// stopping at its first bad line.
pub fn read_split(path: &Path, worker_id: u32, burst_size: u32) -> io::Result<SplitEdges> {
    let mut split = Split::open(path, worker_id, burst_size)?;
    let (mut edges, mut line, mut nodes, mut bad) = (Vec::new(), Vec::new(), 0, None);
    while split.next_line(&mut line)? {
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some((u, v))) => {
                nodes = nodes.max(u64::from(u.max(v)) + 1);
                edges.push((u, v));
            }
            Err(message) => {
                bad = Some(BadLine { index: split.lines - 1, message });
                break;
            }
        }
    }
    let lines = SplitLines { lines: split.lines, bad };
    Ok(SplitEdges { edges, lines, nodes, bytes_read: split.bytes_read() })
}

/// Bytes of one edge on the wire: two little-endian `u32`.
const EDGE_BYTES: usize = 8;

/// `edges` as the shuffle sends them: message `j` holds the edges whose
/// source worker `j` owns among `burst_size` (all sources below `nodes`).
pub fn route(edges: &[(u32, u32)], burst_size: u32, nodes: u32) -> Vec<Vec<u8>> {
    let mut parts = vec![Vec::new(); burst_size as usize];
    for (u, v) in edges {
        let part = &mut parts[owner(*u, burst_size, nodes) as usize];
        part.extend_from_slice(&u.to_le_bytes());
        part.extend_from_slice(&v.to_le_bytes());
    }
    parts
}

/// Appends the edges of a shuffle message to `edges`.
pub fn decode_edges(bytes: &[u8], edges: &mut Vec<(u32, u32)>) -> Result<(), String> {
    if !bytes.len().is_multiple_of(EDGE_BYTES) {
        return Err(format!("a shuffle message of {} bytes is not whole edges", bytes.len()));
    }
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    edges.extend(bytes.chunks_exact(EDGE_BYTES).map(|e| (word(&e[..4]), word(&e[4..]))));
    Ok(())
}

/// The out-edges of the sources a worker owns, duplicates removed.
pub struct Adjacency {
    /// The owned sources.
    range: Range<u32>,
    /// Out-edges of source `range.start + i` are `targets[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    targets: Vec<u32>,
}

impl Adjacency {
    /// The adjacency of the sources in `range`, from edges whose sources
    /// are all in it (in any order, with duplicates).
    pub fn new(range: Range<u32>, mut edges: Vec<(u32, u32)>) -> Result<Self, String> {
        edges.sort_unstable();
        edges.dedup();
        let mut offsets = vec![0; range.len() + 1];
        for &(u, _) in &edges {
            if !range.contains(&u) {
                return Err(format!("an edge from node {u} reached the worker of nodes {range:?}"));
            }
            offsets[(u - range.start) as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let targets = edges.into_iter().map(|(_, v)| v).collect();
        Ok(Self { range, offsets, targets })
    }

    /// Distinct edges.
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64
    }

    /// Owned sources without out-edges.
    pub fn dangling(&self) -> u64 {
        self.offsets.windows(2).filter(|w| w[0] == w[1]).count() as u64
    }

    /// What the owned sources give: entry `v` is `Σ r_u / outdeg(u)` over
    /// their edges `u → v`, and one more entry holds the ranks of the
    /// dangling ones. `ranks` has an entry per node of the graph.
    pub fn contributions(&self, ranks: &[f64]) -> Vec<f64> {
        let nodes = ranks.len();
        let mut sums = vec![0.0; nodes + 1];
        for (u, window) in self.range.clone().zip(self.offsets.windows(2)) {
            let rank = ranks[u as usize];
            let targets = &self.targets[window[0]..window[1]];
            if targets.is_empty() {
                sums[nodes] += rank;
                continue;
            }
            let share = rank / targets.len() as f64;
            for &v in targets {
                sums[v as usize] += share;
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_has_the_owner_whose_range_holds_it() {
        for (nodes, burst) in [(1, 1), (1, 7), (5, 7), (7, 7), (10_000, 6), (10_001, 7), (MAX_NODES, 3)] {
            let mut next = 0;
            for worker in 0..burst {
                let range = owned(worker, burst, nodes);
                assert_eq!(range.start, next, "{nodes} nodes, {burst} workers");
                for node in [range.start, range.end.saturating_sub(1)].into_iter().filter(|n| range.contains(n)) {
                    assert_eq!(owner(node, burst, nodes), worker, "node {node} of {nodes}, {burst} workers");
                }
                next = range.end;
            }
            assert_eq!(next, nodes);
        }
        for node in 0..100 {
            let worker = owner(node, 7, 100);
            assert!(owned(worker, 7, 100).contains(&node), "node {node}");
        }
    }

    #[test]
    fn lines_parse_as_edges_comments_or_errors() {
        assert_eq!(parse_line(b"3\t4"), Ok(Some((3, 4))));
        assert_eq!(parse_line(b"  12   0  "), Ok(Some((12, 0))));
        assert_eq!(parse_line(b""), Ok(None));
        assert_eq!(parse_line(b" \t "), Ok(None));
        assert_eq!(parse_line(b"# FromNodeId\tToNodeId"), Ok(None));
        assert_eq!(parse_line(b"3 x"), Err("target \"x\" is not a node id (a non-negative integer)".into()));
        assert_eq!(parse_line(b"-1 2"), Err("source \"-1\" is not a node id (a non-negative integer)".into()));
        assert_eq!(parse_line(b"7"), Err("expected a target node id after the source".into()));
        assert_eq!(parse_line(b"1 2 0.5"), Err("expected two node ids, found more: \"0.5\"".into()));
        assert_eq!(parse_line(b"16777215 0"), Ok(Some((MAX_NODES - 1, 0))));
        let big = parse_line(b"0 99999999999999999999999999999999999999999");
        assert_eq!(
            big,
            Err("target \"99999999999999999999999999999999…\" is above the largest node id, 16777215".into())
        );
    }

    #[test]
    fn edges_are_routed_to_their_source_owner_and_survive_the_wire() {
        // 10 nodes over 3 workers: 0..3, 3..6, 6..10.
        let parts = route(&[(0, 1), (9, 7), (3, 3), (2, 9)], 3, 10);
        let mut back: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 3];
        for (part, edges) in parts.iter().zip(&mut back) {
            decode_edges(part, edges).expect("whole edges");
        }
        assert_eq!(back, [vec![(0, 1), (2, 9)], vec![(3, 3)], vec![(9, 7)]]);
        let mut more = vec![(5, 5)];
        decode_edges(&parts[1], &mut more).expect("whole edges");
        assert_eq!(more, [(5, 5), (3, 3)]);
        assert!(decode_edges(&[0; 9], &mut more).is_err());
    }

    #[test]
    fn the_adjacency_drops_duplicates_and_spreads_ranks() {
        // Sources 2..5 of a graph of 6 nodes; 3 is dangling.
        let edges = vec![(4, 0), (2, 5), (2, 1), (2, 5), (4, 4)];
        let adjacency = Adjacency::new(2..5, edges).expect("all owned");
        assert_eq!((adjacency.edges(), adjacency.dangling()), (4, 1));
        let ranks = [0.0, 0.0, 0.4, 0.1, 0.2, 0.3];
        assert_eq!(adjacency.contributions(&ranks), [0.1, 0.2, 0.0, 0.0, 0.1, 0.2, 0.1]);
        assert!(Adjacency::new(2..4, vec![(4, 0)]).is_err());
    }
}
