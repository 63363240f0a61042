//! A schedule as a file: every run writes the faults it planned to `schedule.json`, and
//! `test --schedule FILE` runs exactly the faults a file lists instead of drawing them
//! from the seed. `shrink` is built on the two: it replays a failing run with subsets of
//! its schedule.
//!
//! Each fault is kept whole (times, kind, target, shape, the number that picks its
//! nodes, its layer), so a fault taken out of one schedule and run in another hits the
//! same nodes in the same way; only a `leader` target depends on who leads then.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::schedule::{FaultKind, Layer, Planned, Shape, Target};

/// The file's format version: a reader refuses a newer one rather than misreading it.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    version: u32,
    /// Where the schedule came from (`seed 42`, `shrink of ...`): for the reader only.
    #[serde(default)]
    origin: String,
    faults: Vec<FaultLine>,
}

/// One fault, as the file spells it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultLine {
    /// The fault in words, as the console and `--dry-run` print it; ignored when read.
    #[serde(default)]
    text: String,
    start_s: f64,
    end_s: f64,
    kind: FaultKind,
    target: Target,
    shape: Shape,
    pick: u64,
    layer: Layer,
    #[serde(default)]
    staggered: bool,
}

/// Writes `schedule` to `path`, `origin` saying where it came from.
pub fn write(path: &Path, schedule: &[Planned], origin: &str) -> Result<()> {
    let file = ScheduleFile {
        version: VERSION,
        origin: origin.to_string(),
        faults: schedule
            .iter()
            .map(|p| FaultLine {
                text: p.to_string(),
                start_s: p.start.as_secs_f64(),
                end_s: p.end.as_secs_f64(),
                kind: p.kind,
                target: p.target,
                shape: p.shape,
                pick: p.pick,
                layer: p.layer,
                staggered: p.staggered,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a schedule file, sorted by start. A damaged or impossible file is an error
/// that names the fault at fault.
pub fn read(path: &Path) -> Result<Vec<Planned>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the schedule {}", path.display()))?;
    parse(&text).with_context(|| format!("schedule {}", path.display()))
}

fn parse(text: &str) -> Result<Vec<Planned>> {
    let file: ScheduleFile = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "not a schedule file (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    if file.version != VERSION {
        bail!(
            "format version {} (this chaos-runner reads version {VERSION})",
            file.version
        );
    }
    let mut out = Vec::with_capacity(file.faults.len());
    for (i, f) in file.faults.into_iter().enumerate() {
        let n = i + 1;
        let secs = |s: f64, what: &str| -> Result<Duration> {
            if !s.is_finite() || !(0.0..=1e7).contains(&s) {
                bail!("fault {n}: {what} {s} is not a time from 0 s on");
            }
            Ok(Duration::from_secs_f64(s))
        };
        let (start, end) = (secs(f.start_s, "start_s")?, secs(f.end_s, "end_s")?);
        if end <= start {
            bail!(
                "fault {n}: it ends ({} s) before it starts ({} s)",
                f.end_s,
                f.start_s
            );
        }
        let p = Planned {
            start,
            end,
            kind: f.kind,
            target: f.target,
            shape: f.shape,
            pick: f.pick,
            layer: f.layer,
            staggered: f.staggered,
        };
        if p.staggered && !p.can_stagger() {
            bail!("fault {n}: only a kill of several nodes can be staggered");
        }
        out.push(p);
    }
    out.sort_by_key(|p| p.start);
    Ok(out)
}

/// The kinds a schedule needs the run to carry out, each once, in `FaultKind` order. The
/// weather (link latency) needs what `latency` needs.
pub fn kinds(schedule: &[Planned]) -> Vec<FaultKind> {
    let mut kinds: Vec<FaultKind> = schedule
        .iter()
        .map(|p| match p.kind {
            FaultKind::LinkLatency => FaultKind::Latency,
            k => k,
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_schedule_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schedule.json");
        let mut schedule = super::super::schedule::search(7, &FaultKind::ALL);
        schedule.sort_by_key(|p| p.start);
        assert!(schedule.len() > 5, "{schedule:?}");
        write(&path, &schedule, "seed 7").unwrap();
        let back = read(&path).unwrap();
        // Times go through f64 seconds: equal to the nanosecond.
        assert_eq!(back.len(), schedule.len());
        for (a, b) in back.iter().zip(&schedule) {
            assert!(a.start.abs_diff(b.start) < Duration::from_micros(1));
            assert!(a.end.abs_diff(b.end) < Duration::from_micros(1));
            assert_eq!(
                (a.kind, a.target, a.shape, a.pick, a.layer, a.staggered),
                (b.kind, b.target, b.shape, b.pick, b.layer, b.staggered)
            );
        }
    }

    #[test]
    fn damaged_schedules_are_refused_with_the_fault_named() {
        let line = |extra: &str| {
            format!(
                r#"{{"version":1,"faults":[{{"start_s":1,"end_s":2,"kind":"kill","target":"leader","shape":"halves","pick":3,"layer":"foreground"{extra}}}]}}"#
            )
        };
        assert_eq!(parse(&line("")).unwrap().len(), 1);
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("{").contains("line 1"), "{}", err("{"));
        assert!(err(&line(r#","colour":"red""#)).contains("colour"));
        let backwards = line("").replace(r#""end_s":2"#, r#""end_s":0.5"#);
        assert!(
            err(&backwards).contains("fault 1: it ends"),
            "{}",
            err(&backwards)
        );
        let negative = line("").replace(r#""start_s":1"#, r#""start_s":-1"#);
        assert!(err(&negative).contains("not a time"));
        let newer = line("").replace(r#""version":1"#, r#""version":9"#);
        assert!(err(&newer).contains("version 9"));
        let stagger = line(r#","staggered":true"#);
        assert!(err(&stagger).contains("staggered"), "{}", err(&stagger));
        let bad_kind = line("").replace("\"kill\"", "\"explode\"");
        assert!(err(&bad_kind).contains("explode"));
    }
}
