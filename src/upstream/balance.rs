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

    /// The first url to try for a request with this path, among all urls.
    pub fn pick(&self, path: &str) -> usize {
        self.pick_in(path, Usable::ALL)
    }

    /// The first url to try among the usable ones.
    fn pick_in(&self, path: &str, usable: Usable) -> usize {
        if self.n == 1 {
            return 0;
        }
        match self.kind {
            Balance::RoundRobin => {
                let m = usable.count(self.n);
                let r = self.next.fetch_add(1, Relaxed) % m;
                (0..self.n).filter(|&i| usable.has(i)).nth(r).unwrap_or(0)
            }
            Balance::ConsistentHash => {
                // Rendezvous hashing over the usable urls: while a url is out, only its
                // paths move, and they come back when it does.
                let mut best: Option<(u64, usize)> = None;
                for i in (0..self.n).filter(|&i| usable.has(i)) {
                    let mut h = FixedState.build_hasher();
                    h.write(path.as_bytes());
                    h.write_usize(i);
                    let w = h.finish();
                    if best.is_none_or(|(b, _)| w > b) {
                        best = Some((w, i));
                    }
                }
                best.map_or(0, |(_, i)| i)
            }
        }
    }

    /// The order of urls to try among `usable` ones: the pick first, then the other
    /// usable urls in turn, cycling (so a pool with one usable url retries that url).
    /// When no url is usable, every url is tried: failing closed would turn a false
    /// alarm of the health checks into an outage.
    pub fn order(&self, path: &str, usable: Usable) -> Order {
        let usable = if usable.count(self.n) == 0 || usable.0 == Usable::ALL.0 { Usable::ALL } else { usable };
        Order { n: self.n, next: self.pick_in(path, usable), usable }
    }
}

/// The set of urls the balancer may pick, as a bit set of the first 64 urls of a pool;
/// urls past the 64th are always usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usable(pub u64);

impl Usable {
    /// Every url.
    pub const ALL: Usable = Usable(u64::MAX);

    /// Whether url `i` is usable.
    #[inline]
    pub fn has(self, i: usize) -> bool {
        i >= 64 || self.0 & (1 << i) != 0
    }

    /// How many of `n` urls are usable.
    fn count(self, n: usize) -> usize {
        let tracked = n.min(64);
        let mask = if tracked == 64 { u64::MAX } else { (1u64 << tracked) - 1 };
        (self.0 & mask).count_ones() as usize + n.saturating_sub(64)
    }
}

/// The urls to try for one request, in order, without end (the caller stops).
#[derive(Debug)]
pub struct Order {
    n: usize,
    next: usize,
    usable: Usable,
}

impl Iterator for Order {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        // At least one url is usable (`order` made sure), so this ends within n steps.
        for _ in 0..self.n {
            let i = self.next;
            self.next = (self.next + 1) % self.n;
            if self.usable.has(i) {
                return Some(i);
            }
        }
        None
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
        let mut o: Vec<usize> = b.order("/a", Usable::ALL).take(3).collect();
        o.sort_unstable();
        assert_eq!(o, vec![0, 1, 2]);
    }

    #[test]
    fn order_skips_urls_that_are_out() {
        let b = Balancer::new(Balance::RoundRobin, 3);
        let usable = Usable(0b101);
        for _ in 0..6 {
            let o: Vec<usize> = b.order("/a", usable).take(4).collect();
            assert!(o == vec![0, 2, 0, 2] || o == vec![2, 0, 2, 0], "{o:?}");
        }
        // Round robin spreads over the usable urls evenly.
        let firsts: Vec<usize> = (0..4).map(|_| b.order("/a", usable).next().unwrap()).collect();
        assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 2, "{firsts:?}");
        // One usable url: it is retried.
        assert_eq!(b.order("/a", Usable(0b010)).take(3).collect::<Vec<_>>(), vec![1, 1, 1]);
        // None usable: all are tried.
        let mut all: Vec<usize> = b.order("/a", Usable(0)).take(3).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn consistent_hash_moves_only_the_paths_of_a_url_that_is_out() {
        let b = Balancer::new(Balance::ConsistentHash, 3);
        for i in 0..100 {
            let p = format!("/seg/{i}.ts");
            let home = b.pick(&p);
            let without_1 = b.order(&p, Usable(0b101)).next().unwrap();
            if home == 1 {
                assert_ne!(without_1, 1);
            } else {
                assert_eq!(without_1, home, "{p} moved although its url is in");
            }
        }
    }

    #[test]
    fn usable_counts_past_64_urls() {
        assert_eq!(Usable(0b11).count(3), 2);
        assert_eq!(Usable(0).count(66), 2);
        assert_eq!(Usable::ALL.count(64), 64);
        assert!(Usable(0).has(64));
    }
}
