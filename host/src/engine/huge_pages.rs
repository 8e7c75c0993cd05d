//! Transparent huge pages for the pool of linear memories.
//!
//! Every byte a worker receives lands in its own linear memory, and most of
//! that memory is touched for the first time when a message arrives. On the
//! development VM a 4 KiB page fault costs more than copying the page: a
//! first copy into 256 MiB takes ~250 ms on 4 KiB pages and ~75–130 ms on
//! 2 MiB pages, a second copy ~45 ms; the in-pack benchmark as a whole
//! (`cargo bench -p burst-controller --bench inpack`, every worker writing
//! and receiving into fresh memory) went from 56 s to 24 s. Linux's default
//! (`transparent_hugepage=madvise`) gives huge pages only to mappings that
//! ask, and wasmtime does not ask, so the runtime asks for the one mapping
//! that holds every pooled linear memory.
//!
//! wasmtime does not expose where that mapping is; it reserves it,
//! inaccessible, while the engine is built. [`Reservations`] compares the
//! process's inaccessible mappings before and after and advises the largest
//! new one that is at least as large as the pool's memories. Only memory the
//! guest can reach is ever faulted in, so the advice changes how pages are
//! backed, never what a guest may touch; a worker whose memory is smaller
//! than 2 MiB keeps small pages (a huge page must fit inside the accessible
//! part). Anything unexpected — no such mapping, another OS, the kernel
//! refusing — leaves the memories on small pages, which is only slower.

use std::collections::HashSet;

/// A process's inaccessible private mappings, as (start, end) addresses.
pub(super) struct Reservations(HashSet<(usize, usize)>);

impl Reservations {
    /// The inaccessible private mappings of this process now (none where
    /// `/proc/self/maps` cannot be read).
    pub(super) fn now() -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Self(maps.lines().filter_map(parse_reservation).collect())
    }

    /// Advises huge pages for the largest mapping that is in `self` and not
    /// in `before` and covers at least `pool_bytes`; returns its length.
    pub(super) fn advise_new_pool(&self, before: &Self, pool_bytes: u64) -> Option<usize> {
        let (start, end) = self
            .0
            .difference(&before.0)
            .copied()
            .filter(|(start, end)| (end - start) as u64 >= pool_bytes)
            .max_by_key(|(start, end)| end - start)?;
        let len = end - start;
        match advise_huge_pages(start, len) {
            Ok(()) => Some(len),
            Err(e) => {
                tracing::debug!(error = %e, "the kernel refused huge pages for the memory pool");
                None
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: usize, len: usize) -> std::io::Result<()> {
    // SAFETY: `madvise(MADV_HUGEPAGE)` only sets how the kernel backs the
    // pages of a mapping; it neither maps, unmaps nor changes the contents
    // or protection of any byte, so even a range that another thread
    // unmapped or replaced since it was listed is unharmed.
    #[allow(unsafe_code)]
    unsafe {
        rustix::mm::madvise(start as *mut std::ffi::c_void, len, rustix::mm::Advice::LinuxHugepage)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: usize, _len: usize) -> std::io::Result<()> {
    Err(std::io::Error::other("transparent huge pages are a Linux feature"))
}

/// `start-end ---p ...` from one line of `/proc/self/maps`.
fn parse_reservation(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    if fields.next()? != "---p" {
        return None;
    }
    Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Runtime, RuntimeConfig};

    /// The kernel's own record of the advice: `hg` among the `VmFlags` of
    /// a mapping at least as large as the pool.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_pool_of_linear_memories_is_advised_onto_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("this kernel has no transparent huge pages: nothing to check");
            return;
        }
        let config = RuntimeConfig { max_workers: 3, max_memory_per_worker: 96 << 20, ..RuntimeConfig::default() };
        let _runtime = Runtime::new(config).expect("a runtime");
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut size = 0;
        let mut advised = Vec::new();
        for line in smaps.lines() {
            if let Some((start, end)) = line.split_whitespace().next().and_then(|r| r.split_once('-')) {
                if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                    size = end - start;
                }
            } else if let Some(flags) = line.strip_prefix("VmFlags:")
                && flags.split_whitespace().any(|f| f == "hg")
            {
                advised.push(size);
            }
        }
        assert!(
            advised.iter().any(|&size| size as u64 >= 3 * (96 << 20)),
            "no mapping as large as the pool is advised huge pages (advised sizes: {advised:?})"
        );
    }

    #[test]
    fn only_inaccessible_private_mappings_are_reservations() {
        assert_eq!(
            parse_reservation("7f0000000000-7f4000000000 ---p 00000000 00:00 0"),
            Some((0x7f00_0000_0000, 0x7f40_0000_0000))
        );
        assert_eq!(parse_reservation("55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0 [heap]"), None);
        assert_eq!(parse_reservation("7f0000000000-7f4000000000 ---s 00000000 00:05 3 /memfd"), None);
        assert_eq!(parse_reservation("garbage"), None);
    }
}
