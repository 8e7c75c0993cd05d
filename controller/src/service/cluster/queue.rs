//! The admission queue: one FIFO per tenant, the tenants served in turns.
//!
//! A single FIFO let one tenant's backlog delay every other tenant's flares
//! by its whole length. Here each tenant keeps its own order, and the
//! tenants take turns: when a tenant's flare starts, the tenant moves to
//! the back of the turn order, so a flare waits for at most one flare of
//! each tenant ahead of it, however many those tenants queued. The caller
//! still lets the head of the turn order block the rest when it does not
//! fit the free slots (no overtaking), so a large flare is never starved by
//! small ones; only a tenant held back by its own bound is passed over.

use std::collections::{HashMap, VecDeque};

/// Queued flare ids by tenant, and the order in which tenants get turns.
#[derive(Default)]
pub struct Queue {
    /// Tenants with queued flares, whose turn is next first.
    turns: VecDeque<String>,
    /// Each tenant's queued flares, oldest first; never empty.
    flares: HashMap<String, VecDeque<String>>,
    len: usize,
}

impl Queue {
    /// Queues a flare behind its tenant's others; a tenant new to the queue
    /// gets the last turn.
    pub fn push(&mut self, tenant: &str, flare_id: String) {
        let flares = self.flares.entry(tenant.to_owned()).or_default();
        if flares.is_empty() {
            self.turns.push_back(tenant.to_owned());
        }
        flares.push_back(flare_id);
        self.len += 1;
    }

    /// Each tenant's oldest flare as `(tenant, flare_id)`, in turn order.
    pub fn heads(&self) -> impl Iterator<Item = (&str, &str)> {
        self.turns.iter().filter_map(|tenant| Some((tenant.as_str(), self.flares.get(tenant)?.front()?.as_str())))
    }

    /// Takes a flare out (it started, or it ended while queued). A tenant
    /// whose head started goes to the back of the turn order.
    pub fn remove(&mut self, flare_id: &str) {
        let Some((tenant, flares)) = self.flares.iter_mut().find(|(_, flares)| flares.iter().any(|id| id == flare_id))
        else {
            return;
        };
        let was_head = flares.front().is_some_and(|id| id == flare_id);
        flares.retain(|id| id != flare_id);
        self.len -= 1;
        let (tenant, empty) = (tenant.clone(), flares.is_empty());
        if empty {
            self.flares.remove(&tenant);
        }
        if empty || was_head {
            self.turns.retain(|t| *t != tenant);
            if !empty {
                self.turns.push_back(tenant);
            }
        }
    }

    /// Flares queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Flares of `tenant` queued.
    pub fn len_of(&self, tenant: &str) -> usize {
        self.flares.get(tenant).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(queue: &Queue) -> Vec<String> {
        queue.heads().map(|(tenant, id)| format!("{tenant}:{id}")).collect()
    }

    #[test]
    fn tenants_take_turns_and_keep_their_own_order() {
        let mut queue = Queue::default();
        for id in ["a1", "a2", "a3"] {
            queue.push("a", id.into());
        }
        queue.push("b", "b1".into());
        queue.push("c", "c1".into());
        assert_eq!(heads(&queue), ["a:a1", "b:b1", "c:c1"]);
        queue.remove("a1");
        // a had its turn: b and c come first, then a's next.
        assert_eq!(heads(&queue), ["b:b1", "c:c1", "a:a2"]);
        queue.remove("b1");
        queue.push("b", "b2".into());
        assert_eq!(heads(&queue), ["c:c1", "a:a2", "b:b2"]);
        assert_eq!((queue.len(), queue.len_of("a"), queue.len_of("b"), queue.len_of("z")), (4, 2, 1, 0));
    }

    #[test]
    fn removing_a_flare_behind_its_tenants_head_keeps_the_turns() {
        let mut queue = Queue::default();
        for (tenant, id) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
            queue.push(tenant, id.into());
        }
        queue.remove("a2");
        assert_eq!(heads(&queue), ["a:a1", "b:b1"]);
        queue.remove("a1");
        queue.remove("unknown");
        assert_eq!(heads(&queue), ["b:b1"]);
        queue.remove("b1");
        assert_eq!((heads(&queue).len(), queue.len()), (0, 0));
    }
}
