//! The arithmetic behind the pictures, kept apart so it can be tested.

use std::collections::BTreeMap;

use checker::history::{Operation, Outcome};
use checker::record::quantile_of_sorted;

/// Maps a time interval onto a pixel interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub t0: f64,
    pub t1: f64,
    pub x0: f64,
    pub x1: f64,
}

impl Scale {
    pub fn new(t0: f64, t1: f64, x0: f64, x1: f64) -> Scale {
        // An empty or inverted time range still maps somewhere sensible.
        let t1 = if t1 > t0 { t1 } else { t0 + 1.0 };
        Scale { t0, t1, x0, x1 }
    }

    pub fn x(&self, t: f64) -> f64 {
        self.x0 + (t - self.t0) / (self.t1 - self.t0) * (self.x1 - self.x0)
    }

    pub fn t(&self, x: f64) -> f64 {
        self.t0 + (x - self.x0) / (self.x1 - self.x0) * (self.t1 - self.t0)
    }
}

/// One lane per logical process, in order of each process's first invocation.
pub fn lanes(ops: &[Operation]) -> BTreeMap<i64, usize> {
    // Each process's span: its first invocation to its last end, where an `info`
    // operation ends when its client gave up on it (a process retired after an `info`
    // is followed by a fresh one of the same client, which can then take its lane).
    let mut span: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for op in ops {
        let end = op.ret.or(op.abandoned).unwrap_or(u64::MAX);
        let s = span.entry(op.process).or_insert((op.call, end));
        s.0 = s.0.min(op.call);
        s.1 = s.1.max(end);
    }
    let mut first: Vec<(u64, u64, i64)> = span.into_iter().map(|(p, (a, b))| (a, b, p)).collect();
    first.sort();
    // The first lane free when the process begins: lanes for the clients at once, not
    // one per process the run ever had.
    let mut lane_ends: Vec<u64> = Vec::new();
    let mut out = BTreeMap::new();
    for (start, end, p) in first {
        let lane = match lane_ends.iter().position(|&e| e < start) {
            Some(l) => l,
            None => {
                lane_ends.push(0);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = end;
        out.insert(p, lane);
    }
    out
}

/// Latency quantiles per time window, of operations completed in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Window start, seconds.
    pub t: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Splits `(completion_s, latency_ms)` samples into windows of `width` seconds.
pub fn windows(samples: &[(f64, f64)], width: f64) -> Vec<Window> {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(t, l) in samples {
        buckets
            .entry((t / width).floor() as i64)
            .or_default()
            .push(l);
    }
    buckets
        .into_iter()
        .map(|(b, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |q| quantile_of_sorted(&v, q).expect("non-empty");
            Window {
                t: b as f64 * width,
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
                max: q(1.0),
            }
        })
        .collect()
}

/// Operations completed in one second, by outcome: `(second, ok, fail, info)`.
pub type Rate = (f64, usize, usize, usize);

/// Completed operations per second, per outcome.
pub fn rates(ops: &[Operation], end: f64) -> Vec<Rate> {
    let n = end.ceil().max(1.0) as usize;
    let mut out: Vec<Rate> = (0..n).map(|s| (s as f64, 0, 0, 0)).collect();
    for op in ops {
        // Unknown outcomes count when their invocation gave up: the call time is all we have.
        let t = op.ret.unwrap_or(op.call) as f64 / 1e9;
        let i = (t.floor() as usize).min(n - 1);
        match op.outcome {
            Outcome::Ok => out[i].1 += 1,
            Outcome::Fail => out[i].2 += 1,
            Outcome::Info => out[i].3 += 1,
        }
    }
    out
}

/// A window width giving about `target` windows over `span` seconds, rounded to a nice
/// number.
pub fn nice_width(span: f64, target: usize) -> f64 {
    let raw = (span / target.max(1) as f64).max(0.001);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::HistoryBuilder;
    use serde_json::json;

    #[test]
    fn scale_maps_both_ways() {
        let s = Scale::new(10.0, 20.0, 0.0, 1000.0);
        assert_eq!(s.x(15.0), 500.0);
        assert_eq!(s.t(250.0), 12.5);
        let degenerate = Scale::new(5.0, 5.0, 0.0, 100.0);
        assert!(degenerate.x(5.0).is_finite());
    }

    /// A process retired after an `info` hands its lane to the next process that starts
    /// after its client gave up: lanes per client, not per process.
    #[test]
    fn a_retired_process_hands_its_lane_on() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "write", None, json!(1), 1)
            .info(0, "write", json!(1), 3);
        b.invoke(1, "read", None, json!(null), 2)
            .ok(1, "read", json!(null), 8);
        b.invoke(2, "write", None, json!(2), 4)
            .ok(2, "write", json!(2), 5);
        let l = lanes(&b.build().ops);
        assert_eq!((l[&0], l[&1], l[&2]), (0, 1, 0));
    }

    #[test]
    fn lanes_follow_first_invocation() {
        let mut b = HistoryBuilder::new();
        b.invoke(7, "read", None, json!(null), 5)
            .ok(7, "read", json!(null), 6);
        b.invoke(3, "read", None, json!(null), 1)
            .ok(3, "read", json!(null), 9);
        b.invoke(7, "read", None, json!(null), 10)
            .ok(7, "read", json!(null), 11);
        let l = lanes(&b.build().ops);
        assert_eq!(l[&3], 0);
        assert_eq!(l[&7], 1);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn quantiles_and_windows() {
        let samples = [(0.1, 1.0), (0.5, 3.0), (1.2, 10.0)];
        let w = windows(&samples, 1.0);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].t, w[0].p50, w[0].max), (0.0, 1.0, 3.0));
        assert_eq!(w[1].p99, 10.0);
        assert_eq!(nice_width(30.0, 30), 1.0);
        assert_eq!(nice_width(60.0, 25), 5.0);
    }
}
