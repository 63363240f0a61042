//! Each node's clock, moved through libfaketime (Debian's `libfaketime`): when a run has
//! clock faults, every node starts with the library preloaded and a control file of its
//! own, which the library reads on every clock call (`FAKETIME_NO_CACHE`). Rewriting the
//! file moves the node's wall and monotonic clocks at once; its sleeps and timers (which
//! wait on those clocks) follow.
//!
//! libfaketime computes a node's time as `S + (t - S) * rate + offset` from the control
//! file's `+offset xrate`, where `S` is when the process started. So that a change of
//! rate does not also jump the clock, the offset is recomputed from `S` (the runner's
//! record of the start, a few milliseconds before the library's own) at every change.
//!
//! With `--clock-wall-only` ([`ClockScope::WallOnly`]) the library leaves monotonic
//! clocks alone (`FAKETIME_DONT_FAKE_MONOTONIC`). Its rates would still scale sleeps, so
//! a wall clock's drift is stepped through the offset instead (`nemesis::clock`).
//!
//! It reaches programs whose clock calls go through libc's dynamic symbols: raft-node,
//! Python, most C and Rust programs. Go binaries (etcd, nats-server) read the clock
//! through the vDSO themselves, and static binaries have no libc to preload into: their
//! servers refuse clock faults (`Server::refuses`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

/// Where Debian's libfaketime puts the preloadable library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Why clock faults cannot run on this machine, if they cannot.
pub fn unavailable() -> Option<String> {
    (!Path::new(LIBFAKETIME).is_file()).then(|| {
        format!("no {LIBFAKETIME}: install Debian's libfaketime (apt-get install libfaketime)")
    })
}

/// Which of a node's clocks the faults move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockScope {
    /// Wall and monotonic clocks together, as a wrong clock source moves them: timers,
    /// timeouts and sleeps follow.
    WallAndMonotonic,
    /// The wall clock only (`CLOCK_REALTIME`, `gettimeofday`, `time`), as a step of
    /// `settimeofday` or a bad NTP server moves it: timers and `Instant`s keep real time.
    /// What a server that takes leases or timestamps from the wall clock must survive.
    WallOnly,
}

/// One node's clock: its control file and what it says.
#[derive(Debug)]
pub struct NodeClock {
    file: PathBuf,
    scope: ClockScope,
    /// When the node's process started (libfaketime's reference), once it has.
    started: Option<Instant>,
    /// The control file's offset in seconds and rate.
    offset_s: f64,
    rate: f64,
}

impl NodeClock {
    /// A clock at real time, controlled through `file`.
    pub fn new(file: PathBuf, scope: ClockScope) -> Result<NodeClock> {
        let clock = NodeClock {
            file,
            scope,
            started: None,
            offset_s: 0.0,
            rate: 1.0,
        };
        clock.write()?;
        Ok(clock)
    }

    /// Which of the node's clocks the faults move.
    pub fn scope(&self) -> ClockScope {
        self.scope
    }

    /// The environment that puts a node's process under this clock.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".to_string()),
        ];
        if self.scope == ClockScope::WallOnly {
            env.push(("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()));
        }
        env
    }

    /// The node's process starts now: libfaketime's reference moves here, and a restart
    /// begins at the offset the file holds.
    pub fn starting(&mut self) {
        self.started = Some(Instant::now());
    }

    /// Seconds since the process started (0 before it has).
    fn age(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    /// How far ahead of real time the node's clock is now, in seconds.
    pub fn ahead_s(&self) -> f64 {
        self.age() * (self.rate - 1.0) + self.offset_s
    }

    /// Sets the clock `ahead_s` seconds ahead of real time (negative: behind) and running
    /// at `rate`, from now.
    pub fn set(&mut self, ahead_s: f64, rate: f64) -> Result<()> {
        self.rate = rate;
        self.offset_s = ahead_s - self.age() * (rate - 1.0);
        self.write()
    }

    /// Moves the clock by `by_s` seconds at once, keeping its rate.
    pub fn jump(&mut self, by_s: f64) -> Result<()> {
        self.offset_s += by_s;
        self.write()
    }

    /// Runs the clock at `rate` from now on, without a jump.
    pub fn run_at(&mut self, rate: f64) -> Result<()> {
        self.set(self.ahead_s(), rate)
    }

    /// Back to real time.
    pub fn reset(&mut self) -> Result<()> {
        self.set(0.0, 1.0)
    }

    fn write(&self) -> Result<()> {
        // Written whole and renamed: the library may read it at any moment.
        let tmp = self.file.with_extension("tmp");
        let line = format!("{:+.6} x{:.6}\n", self.offset_s, self.rate);
        std::fs::write(&tmp, line).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file)
            .with_context(|| format!("cannot write {}", self.file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(c: &NodeClock) -> (f64, f64) {
        let text = std::fs::read_to_string(&c.file).unwrap();
        let (o, r) = text.trim().split_once(" x").unwrap();
        (o.parse().unwrap(), r.parse().unwrap())
    }

    /// What a program under the clock sees: `date` (the wall clock) moved by a jump,
    /// in either scope, and the wall-only scope tells the library to leave monotonic
    /// clocks alone.
    #[test]
    fn a_program_under_the_clock_sees_its_wall_clock_moved() {
        if unavailable().is_some() {
            return; // The runner's test suite requires it on CI (test_cmd.rs).
        }
        let dir = tempfile::tempdir().unwrap();
        for scope in [ClockScope::WallAndMonotonic, ClockScope::WallOnly] {
            let mut c = NodeClock::new(dir.path().join("n1.rc"), scope).unwrap();
            c.starting();
            c.jump(1000.0).unwrap();
            let out = std::process::Command::new("date")
                .arg("+%s")
                .envs(c.env())
                .output()
                .unwrap();
            let faked: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(
                (faked - real - 1000).abs() <= 2,
                "{scope:?}: {faked} vs {real}"
            );
            let monotonic_left = c
                .env()
                .iter()
                .any(|(k, v)| *k == "FAKETIME_DONT_FAKE_MONOTONIC" && v == "1");
            assert_eq!(monotonic_left, scope == ClockScope::WallOnly);
        }
    }

    /// The file says what libfaketime needs so that the clock is where it should be: a
    /// rate change keeps the clock where it was, a jump moves it, a reset is real time.
    #[test]
    fn the_control_file_keeps_the_clock_continuous() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodeClock::new(dir.path().join("n1.rc"), ClockScope::WallAndMonotonic).unwrap();
        assert_eq!(read(&c), (0.0, 1.0));
        // A process 10 s old.
        c.started = Some(Instant::now() - std::time::Duration::from_secs(10));
        c.run_at(2.0).unwrap();
        let (o, r) = read(&c);
        assert_eq!(r, 2.0);
        // S + 10 * 2 + o must be S + 10: o = -10 (to within the test's own time).
        assert!((o + 10.0).abs() < 0.05, "{o}");
        assert!(c.ahead_s().abs() < 0.05);
        c.jump(-3.0).unwrap();
        assert!((c.ahead_s() + 3.0).abs() < 0.05);
        c.reset().unwrap();
        assert!(c.ahead_s().abs() < 1e-9);
        let (o, r) = read(&c);
        assert!(o.abs() < 1e-9 && r == 1.0);
    }
}
