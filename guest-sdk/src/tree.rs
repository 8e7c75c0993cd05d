//! Reductions with a user-defined function, built from send/recv.
//!
//! The tree follows the packs: every pack folds its workers' values at its
//! leader (the root in the root's pack, the first worker elsewhere), then
//! the leaders send their partials to the root, so only one value per pack
//! crosses packs. Values are folded in worker-id order, so `f` must be
//! associative but need not be commutative. Messages use a reserved tag and
//! can never be confused with the user's own sends.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CommError, Context, Error, RESERVED_TAGS};

const REDUCE_TAG: u32 = RESERVED_TAGS + 1;

fn fold_in<T>(acc: Option<T>, value: T, f: &impl Fn(T, T) -> T) -> Option<T> {
    Some(match acc {
        None => value,
        Some(acc) => f(acc, value),
    })
}

impl Context {
    /// Reduces every worker's `value` with `f` to `root`, which gets
    /// `Some(v0 ∘ v1 ∘ … ∘ vN-1)`; the others get `None`. Every worker calls
    /// it with the same root.
    ///
    /// # Errors
    /// `InvalidWorker` for a bad root; the flare's failure; `Codec`.
    pub fn reduce_with<T, F>(&self, root: u32, value: T, f: F) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(T, T) -> T,
    {
        let (Some(root_pack), Some(my_pack)) = (self.pack_of(root), self.pack_of(self.worker_id())) else {
            return Err(CommError::InvalidWorker(root).into());
        };
        let me = self.worker_id();
        let leader = |pack: u32| {
            if pack == root_pack { root } else { self.packs()[pack as usize].first }
        };
        if me != leader(my_pack) {
            self.send_reserved(leader(my_pack), REDUCE_TAG, &value)?;
            return Ok(None);
        }
        let range = self.packs()[my_pack as usize];
        let mut own = Some(value);
        let mut partial = None;
        for worker in range.first..range.first + range.count {
            let value = match own.take_if(|_| worker == me) {
                Some(value) => value,
                None => self.recv_reserved(worker, REDUCE_TAG)?,
            };
            partial = fold_in(partial, value, &f);
        }
        let partial = partial.ok_or_else(|| Error::Work("empty pack".into()))?;
        if me != root {
            self.send_reserved(root, REDUCE_TAG, &partial)?;
            return Ok(None);
        }
        let mut own = Some(partial);
        let mut total = None;
        for pack in 0..self.packs().len() as u32 {
            let value = match own.take_if(|_| pack == my_pack) {
                Some(value) => value,
                None => self.recv_reserved(leader(pack), REDUCE_TAG)?,
            };
            total = fold_in(total, value, &f);
        }
        Ok(total)
    }

    /// [`reduce_with`](Self::reduce_with) to worker 0, then a broadcast of
    /// the result: every worker gets it.
    ///
    /// # Errors
    /// As [`reduce_with`](Self::reduce_with).
    pub fn all_reduce_with<T, F>(&self, value: T, f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(T, T) -> T,
    {
        let total = self.reduce_with(0, value, f)?;
        self.broadcast(0, total.as_ref())
    }
}
