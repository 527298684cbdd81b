//! Picking a url of a pool: round robin, or rendezvous (highest random weight) hashing by
//! path so that one path always lands on the same origin url while it is in the pool,
//! and only the paths of a removed url move when the pool changes.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::config::schema::Balance;

/// A balancer over `n` urls.
#[derive(Debug)]
pub struct Balancer {
    kind: Balance,
    n: usize,
    next: AtomicUsize,
}

/// Fixed-key hasher so that every streamgate instance maps a path to the same url.
#[derive(Clone, Copy, Default)]
struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = std::collections::hash_map::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        std::collections::hash_map::DefaultHasher::new()
    }
}

impl Balancer {
    /// A balancer of the given kind over `n` urls (`n >= 1`).
    pub fn new(kind: Balance, n: usize) -> Self {
        Self { kind, n: n.max(1), next: AtomicUsize::new(0) }
    }

    /// The first url to try for a request with this path.
    pub fn pick(&self, path: &str) -> usize {
        if self.n == 1 {
            return 0;
        }
        match self.kind {
            Balance::RoundRobin => self.next.fetch_add(1, Relaxed) % self.n,
            Balance::ConsistentHash => {
                let mut best = (0u64, 0usize);
                for i in 0..self.n {
                    let mut h = FixedState.build_hasher();
                    h.write(path.as_bytes());
                    h.write_usize(i);
                    let w = h.finish();
                    if i == 0 || w > best.0 {
                        best = (w, i);
                    }
                }
                best.1
            }
        }
    }

    /// The order of urls to try: the pick first, then the others in turn, cycling (so a
    /// pool of one url retries that url).
    pub fn order(&self, path: &str) -> impl Iterator<Item = usize> + '_ {
        let first = self.pick(path);
        (0..).map(move |k| (first + k) % self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let b = Balancer::new(Balance::RoundRobin, 3);
        let picks: Vec<usize> = (0..6).map(|_| b.pick("/x")).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn consistent_hash_is_stable_and_spreads() {
        let b = Balancer::new(Balance::ConsistentHash, 4);
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let p = format!("/seg/{i}.ts");
            let first = b.pick(&p);
            assert_eq!(first, b.pick(&p));
            seen[first] += 1;
        }
        assert!(seen.iter().all(|&n| n > 40), "uneven spread: {seen:?}");
    }

    #[test]
    fn order_visits_every_url_once() {
        let b = Balancer::new(Balance::ConsistentHash, 3);
        let mut o: Vec<usize> = b.order("/a").take(3).collect();
        o.sort_unstable();
        assert_eq!(o, vec![0, 1, 2]);
    }
}
