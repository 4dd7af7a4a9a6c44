//! A small bounded map that forgets its least recently used entry when full.
//!
//! The key cache and the failed-authentication limiter need a few thousand entries
//! each, behind a mutex held for a map operation or two: a hash map for the entries
//! and an ordered map of use ticks for the eviction order are enough, and need no
//! dependency.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting into a full map drops the entry
/// used longest ago.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map that holds at most `capacity` entries (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value of `key`, which becomes the most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let tick = self.next_tick();
        let (_, used) = self.entries.get_mut(key)?;
        let old = std::mem::replace(used, tick);
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(tick, k);
        }
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    /// Sets `key` (the most recently used); returns the entry evicted to make room.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let tick = self.next_tick();
        if let Some((v, used)) = self.entries.get_mut(&key) {
            *v = value;
            let old = std::mem::replace(used, tick);
            self.order.remove(&old);
            self.order.insert(tick, key);
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.pop_oldest()
        } else {
            None
        };
        self.order.insert(tick, key.clone());
        self.entries.insert(key, (value, tick));
        evicted
    }

    /// Drops `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (v, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(v)
    }

    fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (v, _) = self.entries.remove(&key)?;
        Some((key, v))
    }

    /// How many entries there are.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut m = Lru::new(2);
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("b", 2), None);
        // Using `a` makes `b` the oldest.
        assert_eq!(m.get_mut(&"a").copied(), Some(1));
        assert_eq!(m.insert("c", 3), Some(("b", 2)));
        assert_eq!(m.get_mut(&"b"), None);
        assert_eq!(m.len(), 2);
        // Overwriting does not evict.
        assert_eq!(m.insert("a", 10), None);
        assert_eq!(m.insert("d", 4), Some(("c", 3)));
        assert_eq!(m.remove(&"a"), Some(10));
        assert_eq!(m.len(), 1);
    }
}
