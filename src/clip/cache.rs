//! The embedding cache: the same image bytes or text are not encoded twice.
//!
//! Keyed by sha256 of the content (not the path: a file that changes is re-encoded), bounded, evicts
//! the oldest entry first. Vectors are those of one model: each pool owns its cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Bounded map from content hash to embedding; evicts the oldest entry.
pub(crate) struct Cache {
    cap: usize,
    map: HashMap<[u8; 32], Arc<Vec<f32>>>,
    order: VecDeque<[u8; 32]>,
}

impl Cache {
    /// A cache of at most `cap` entries (0: caches nothing).
    pub(crate) fn new(cap: usize) -> Cache {
        Cache {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn get(&self, k: &[u8; 32]) -> Option<Vec<f32>> {
        self.map.get(k).map(|v| v.as_ref().clone())
    }

    pub(crate) fn put(&mut self, k: [u8; 32], v: &[f32]) {
        if self.cap == 0 || self.map.contains_key(&k) {
            return;
        }
        if self.map.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(k, Arc::new(v.to_vec()));
        self.order.push_back(k);
    }
}

/// Content hash of an input; `kind` keeps a text and an image of equal bytes apart.
pub(crate) fn hash(kind: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind);
    h.update(data);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_kinds_apart() {
        let mut c = Cache::new(2);
        let (a, b, d) = (hash(b"t", b"a"), hash(b"t", b"b"), hash(b"t", b"d"));
        assert_ne!(hash(b"t", b"a"), hash(b"i", b"a"));
        c.put(a, &[1.0]);
        c.put(b, &[2.0]);
        c.put(d, &[3.0]);
        assert_eq!(c.get(&a), None);
        assert_eq!(c.get(&b), Some(vec![2.0]));
        assert_eq!(c.get(&d), Some(vec![3.0]));
        let mut off = Cache::new(0);
        off.put(a, &[1.0]);
        assert_eq!(off.get(&a), None);
    }
}
