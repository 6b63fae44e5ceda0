//! The memory model behind the projection: what `used_memory` will be with a given number of
//! sessions, tokens and counters, and so how many fit under a limit.
//!
//! ```text
//! used_memory ≈ base + Σ count_k × bytes_k + tables(keys)
//! ```
//!
//! - `base`: what is there whatever the keyspace holds — the empty server (`used_memory_startup`),
//!   clients, the script cache, other applications' data. Measured, not assumed.
//! - `bytes_k`: `used_memory` growth per item of kind k, measured by writing a sample through the
//!   real stores ([`super::measure`]). It includes everything per key that Redis allocates and
//!   `MEMORY USAGE` leaves out: the `expires` entry every store key has, allocator rounding of the
//!   dict entry, and — for a session — its share of the user's index set.
//! - `tables(keys)`: the keyspace's two hash tables (main and `expires`: every store key has a TTL),
//!   8 bytes per bucket, buckets a power of two ≥ keys. They grow in steps (a table doubles when
//!   it is full), so they are modelled apart instead of being smeared into `bytes_k`: a sample that
//!   happens to cross a doubling would otherwise inflate every item by the whole new table.
//!
//! The model's inputs are plain data in [`crate::report::capacity`] ([`Model`] is
//! `report::capacity::MemoryModel`), so a report read back shows what its projection was computed
//! from; its arithmetic is here.
//!
//! Near `maxmemory`, Redis ≥ 6.2 refuses to double a keyspace table if the new table would push
//! `used_memory` over the limit, until the table is 1.618× overfull (`dictExpandAllowed` in
//! `server.c`). The model does the same, so the count at the limit is right even when the limit
//! falls just past a doubling.

pub(crate) use crate::report::capacity::{KindCost, MemoryModel as Model};

/// Highest load factor at which Redis still defers a table doubling to stay under maxmemory.
const MAX_DEFERRED_LOAD: f64 = 1.618;
/// Bytes per bucket of a keyspace table (a pointer).
const BUCKET: f64 = 8.0;
/// Smallest table Redis allocates.
const MIN_BUCKETS: f64 = 4.0;

fn buckets_for(keys: f64) -> f64 {
    let mut b = MIN_BUCKETS;
    while b < keys {
        b *= 2.0;
    }
    b
}

/// Bytes of both keyspace tables (main and `expires`) holding `keys` keys, no limit in sight.
pub(crate) fn table_bytes(keys: f64) -> f64 {
    2.0 * BUCKET * buckets_for(keys)
}

impl Model {
    fn data(&self, counts: [f64; 3]) -> f64 {
        counts
            .iter()
            .zip(&self.kinds)
            .map(|(n, k)| n * k.bytes)
            .sum()
    }

    fn keys(&self, counts: [f64; 3]) -> f64 {
        self.other_keys
            + counts
                .iter()
                .zip(&self.kinds)
                .map(|(n, k)| n * k.keys)
                .sum::<f64>()
    }

    /// Bytes of both keyspace tables holding `keys`, when the data that makes `keys` keys takes
    /// `data` bytes. With a `maxmemory`, a doubling that would not fit is deferred as Redis does.
    fn tables(&self, keys: f64, data: f64, maxmemory: Option<f64>) -> f64 {
        let big = buckets_for(keys);
        let small = big / 2.0;
        let (mut main, mut expires) = (big, big);
        if let Some(m) = maxmemory
            && small >= MIN_BUCKETS
            && keys <= small * MAX_DEFERRED_LOAD
        {
            // used_memory when the key that crossed `small` arrived, both tables still small.
            let at_crossing = self.base + data * (small / keys.max(1.0)) + 2.0 * BUCKET * small;
            if at_crossing + BUCKET * big > m {
                main = small;
            }
            let grown_main = if main == big { BUCKET * big } else { 0.0 };
            if at_crossing + grown_main + BUCKET * big > m {
                expires = small;
            }
        }
        BUCKET * (main + expires)
    }

    /// Predicted `used_memory` holding `counts` (sessions, tokens, counters).
    pub(crate) fn used(&self, counts: [f64; 3], maxmemory: Option<f64>) -> f64 {
        let data = self.data(counts);
        self.base + data + self.tables(self.keys(counts), data, maxmemory)
    }

    /// Largest multiple `f` of `unit` whose predicted `used_memory` stays within `limit`.
    /// `maxmemory` is the server's own limit (for the deferred doubling); `limit` may be lower
    /// (headroom). Returns 0 when not even the base fits.
    pub(crate) fn max_scale(&self, unit: [f64; 3], limit: f64, maxmemory: Option<f64>) -> f64 {
        let at = |f: f64| self.used(unit.map(|u| u * f), maxmemory);
        if at(0.0) > limit || unit.iter().all(|u| *u <= 0.0) {
            return 0.0;
        }
        let per_unit = self.data(unit).max(1e-9);
        let mut hi = (limit / per_unit).max(1.0) * 2.0;
        while at(hi) <= limit {
            hi *= 2.0;
        }
        let mut lo = 0.0;
        // `used` is monotone in f: bisect to well under one item.
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if at(mid) <= limit {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-3 {
                break;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            base: 1_000_000.0,
            other_keys: 0.0,
            kinds: [
                KindCost {
                    bytes: 1000.0,
                    keys: 1.0,
                },
                KindCost {
                    bytes: 200.0,
                    keys: 1.0,
                },
                KindCost {
                    bytes: 100.0,
                    keys: 1.0,
                },
            ],
        }
    }

    #[test]
    fn tables_are_powers_of_two_and_a_doubling_that_does_not_fit_is_deferred() {
        let m = model();
        // 1000 keys: 1024 buckets in each table.
        assert_eq!(m.tables(1000.0, 0.0, None), 2.0 * 8.0 * 1024.0);
        // 1100 keys would need 2048 buckets. The doubling is decided when key 1025 arrives: if the
        // new 2048-bucket table would not fit then, the tables stay small (1100 ≤ 1.618 × 1024).
        let data = 1100.0 * 1000.0;
        let at_crossing = m.base + 1024.0 * 1000.0 + 2.0 * 8.0 * 1024.0;
        let tight = at_crossing + 8.0 * 2048.0 - 1.0;
        assert_eq!(m.tables(1100.0, data, Some(tight)), 2.0 * 8.0 * 1024.0);
        // With room for the main table only, only the main table doubles.
        let room = at_crossing + 8.0 * 2048.0 + 1.0;
        assert_eq!(m.tables(1100.0, data, Some(room)), 8.0 * (2048.0 + 1024.0));
        // Past 1.618× the doubling happens anyway.
        assert_eq!(m.tables(1700.0, data, Some(tight)), 2.0 * 8.0 * 2048.0);
    }

    #[test]
    fn the_largest_fitting_count_fits_and_one_more_does_not() {
        let m = model();
        let limit = 64.0 * 1024.0 * 1024.0;
        let f = m.max_scale([1.0, 0.0, 0.0], limit, Some(limit));
        let n = f.floor();
        assert!(m.used([n, 0.0, 0.0], Some(limit)) <= limit);
        assert!(m.used([n + 2.0, 0.0, 0.0], Some(limit)) > limit);
        // Roughly (limit - base) / (bytes + table share).
        assert!((60_000.0..70_000.0).contains(&n), "{n}");
        assert_eq!(m.max_scale([1.0, 0.0, 0.0], 10.0, None), 0.0);
    }
}
