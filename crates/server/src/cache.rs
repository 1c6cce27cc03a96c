//! [`PredictionCache`]: a model version's answers kept by their inputs, as in Clipper and
//! Triton's response cache. Opt-in per model (`cache_bytes` in `model.toml`), bounded by
//! bytes (keys and outputs counted), least recently used evicted first. The key is the
//! inputs' exact bytes (names, datatypes, shapes, elements), never a hash of them, so two
//! different requests can never share an answer.

use std::sync::{Arc, Mutex};

use ferroserve_core::Tensor;
use lru::LruCache;

/// The cache of one model version.
#[derive(Debug)]
pub struct PredictionCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: LruCache<Vec<u8>, Arc<Vec<Tensor>>>,
    bytes: usize,
}

impl PredictionCache {
    /// A cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> PredictionCache {
        PredictionCache {
            capacity,
            inner: Mutex::new(Inner {
                // Bounded by bytes below, not by count.
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The key of a request's (validated) inputs.
    pub fn key(inputs: &[Tensor]) -> Vec<u8> {
        let size: usize = inputs
            .iter()
            .map(|t| t.name.len() + 16 + 8 * t.shape.len() + t.data().byte_size())
            .sum();
        let mut key = Vec::with_capacity(size);
        for t in inputs {
            key.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
            key.extend_from_slice(t.name.as_bytes());
            key.extend_from_slice(t.datatype().name().as_bytes());
            key.push(0);
            key.extend_from_slice(&(t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                key.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            t.data().write_binary(&mut key);
        }
        key
    }

    /// The outputs stored for `key`, marking them recently used.
    pub fn get(&self, key: &[u8]) -> Option<Arc<Vec<Tensor>>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.get(key).cloned()
    }

    /// Stores `outputs` under `key`, evicting the least recently used entries to stay within
    /// the capacity; an entry larger than the whole capacity is not stored.
    pub fn put(&self, key: Vec<u8>, outputs: Arc<Vec<Tensor>>) {
        let size = entry_size(&key, &outputs);
        if size > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.entries.peek(&key) {
            let old_size = entry_size(&key, old);
            inner.bytes -= old_size;
        }
        inner.bytes += size;
        inner.entries.put(key, outputs);
        while inner.bytes > self.capacity {
            let Some((k, v)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= entry_size(&k, &v);
        }
    }

    /// Bytes held now, and the entries.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.bytes, inner.entries.len())
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

fn entry_size(key: &[u8], outputs: &[Tensor]) -> usize {
    key.len()
        + outputs
            .iter()
            .map(|t| t.name.len() + 8 * t.shape.len() + t.data().byte_size())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use ferroserve_core::TensorData;

    use super::*;

    fn t(name: &str, values: Vec<f32>) -> Tensor {
        let n = values.len();
        Tensor::new(name, vec![1, n], TensorData::F32(values)).unwrap()
    }

    #[test]
    fn keys_are_exact_and_eviction_keeps_within_the_bytes() {
        let a = PredictionCache::key(&[t("x", vec![1.0, 2.0])]);
        let b = PredictionCache::key(&[t("x", vec![1.0, 2.5])]);
        let c = PredictionCache::key(&[t("y", vec![1.0, 2.0])]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        let out = Arc::new(vec![t("p", vec![0.5; 100])]);
        let one = entry_size(&a, &out);
        let cache = PredictionCache::new(2 * one + one / 2);
        cache.put(a.clone(), Arc::clone(&out));
        cache.put(b.clone(), Arc::clone(&out));
        assert!(cache.get(&a).is_some()); // a is now the most recently used
        cache.put(c.clone(), Arc::clone(&out));
        assert!(cache.get(&b).is_none(), "b was the least recently used");
        assert!(cache.get(&a).is_some() && cache.get(&c).is_some());
        assert!(cache.usage().0 <= 2 * one + one / 2);
        // Too large for the whole cache: not stored.
        let huge = Arc::new(vec![t("p", vec![0.0; 10_000])]);
        cache.put(b.clone(), huge);
        assert!(cache.get(&b).is_none());
        assert_eq!(cache.usage().1, 2);
    }
}
