//! `chaos-runner shrink RUN`: the smallest part of a failing run's schedule that still
//! fails.
//!
//! An invalid run's schedule holds 20 or 30 faults, and most did not matter. Shrinking
//! replays the run (its flags and seed, through `test --schedule`) with parts of its
//! schedule, delta-debugging style (Zeller's ddmin, complements only): first without
//! either half, then without quarters, down to without single faults, keeping any part
//! that still fails. Real processes are not deterministic, so a part counts as passing
//! only after `--tries` replays that all pass, and as failing after the first that fails.
//!
//! Two things keep it fast: every replay runs with `--fail-fast` (it stops at the
//! anomaly), and the first step cuts the run a few seconds after the anomaly, dropping
//! every fault that began later (they cannot have caused it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use checker::record::{RunResults, TestRecord};
use checker::Verdict;
use serde::Serialize;

use crate::exit;
use crate::nemesis::{schedule_file, Planned};

/// Find the smallest part of a failing run's fault schedule that still fails.
///
/// Replays the run (its flags and seed, through `test --schedule`) with parts of its
/// schedule: without either half, then without quarters, down to without single faults,
/// keeping every part that still fails (ddmin). A part counts as passing only after
/// --tries replays that all pass. Each replay stops at the anomaly (--fail-fast), and the
/// first cuts the run a few seconds after the anomaly the run found. A part kept on one
/// lucky failure is caught by the confirmation at the end: the result is replayed
/// --confirm times, and if it never fails, the larger parts kept on the way are, until
/// one fails again; shrinking then starts over from that one (at most 4 rounds).
///
/// Writes RUN/shrink/: schedule.json (the smallest failing schedule), shrink.json (every
/// step: the faults tried, each replay's verdict, the time), log.txt (the replays'
/// console) and trials/ (the failing replays' run folders). Prints the command that
/// replays the result. Run it from where the original run was started: the run's
/// relative paths (binaries, --client-cmd) are taken from there.
///
/// Exit codes: 0 shrunk (or nothing left to take out), 2 the run did not fail again in
/// --tries replays (nothing to shrink), 3 error (not an invalid run, a damaged record, a
/// replay that cannot start).
#[derive(clap::Args, Debug)]
pub struct ShrinkArgs {
    /// The failing run's folder, e.g. store/latest.
    run_dir: PathBuf,
    /// Replays of each part before it counts as passing.
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=20))]
    tries: u32,
    /// Seconds to spend in all. No replay starts that the time left could not see
    /// through (judged by the longest replay so far), and one still running when the
    /// time is up is stopped; the smallest failing part found by then is the result.
    #[arg(long, default_value_t = 1800.0, value_name = "SECS")]
    budget: f64,
    /// Keep the run's full time limit and every fault (by default the first replay cuts
    /// the run a few seconds after the anomaly).
    #[arg(long)]
    no_cut: bool,
    /// Replays of the result at the end, to say how often it fails; when none fails, the
    /// walk back to larger parts described above (0: no confirmation, no walk back).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=20))]
    confirm: u32,
}

/// Seconds kept after the anomaly when the run is cut: the fault in force then must
/// still end, and the checker see the operations around it.
const CUT_MARGIN_S: f64 = 3.0;

/// Flags of the original run that a replay sets itself, with whether each takes a value.
const REPLACED: [(&str, bool); 13] = [
    ("--seed", true),
    ("--test-count", true),
    ("--store", true),
    ("--name", true),
    ("--junit", true),
    ("--time-limit", true),
    ("--nemesis", true),
    ("--nemesis-interval", true),
    ("--schedule", true),
    ("--staggered-kills", false),
    ("--dry-run", false),
    ("--fail-fast", false),
    ("--ops", true),
];

/// One replay of a part of the schedule.
#[derive(Debug, Clone, Serialize)]
struct Replay {
    /// The replay's exit code: 1 invalid (the part fails), 0 valid, 2 unknown, 3 error.
    code: u8,
    seconds: f64,
    /// Its run folder, kept when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<PathBuf>,
    /// Stopped when the budget ran out: its code says nothing about the part.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cut: bool,
}

/// One part tried: which of the original faults (numbered from 1) and what the replays
/// said.
#[derive(Debug, Clone, Serialize)]
struct Step {
    faults: Vec<usize>,
    time_limit_s: f64,
    fails: bool,
    replays: Vec<Replay>,
}

/// The replays of a kept part at the end: how many of them failed.
#[derive(Debug, Clone, Serialize)]
struct Confirmation {
    faults: Vec<usize>,
    failed: u32,
    replays: u32,
}

/// `shrink.json`.
#[derive(Debug, Serialize)]
struct Outcome {
    run: PathBuf,
    seed: u64,
    original_faults: usize,
    faults: Vec<usize>,
    time_limit_s: f64,
    steps: Vec<Step>,
    replays: usize,
    seconds: f64,
    /// The budget ran out before every single fault had been tried.
    budget_ran_out: bool,
    /// The result's confirming replays: how many of them failed, of how many.
    confirmed: Option<(u32, u32)>,
    /// Every part confirmed, smallest first, until one failed again.
    confirmations: Vec<Confirmation>,
    command: String,
}

/// The replays: how to run one, where they go, what they cost so far.
struct Replayer {
    exe: PathBuf,
    base: Vec<String>,
    seed: u64,
    schedule: Vec<Planned>,
    out: PathBuf,
    log: std::fs::File,
    tries: u32,
    deadline: Instant,
    /// Seconds of the longest replay so far: what the next one is expected to need.
    longest: f64,
    steps: Vec<Step>,
    confirmations: Vec<Confirmation>,
    replays: usize,
    errors_in_a_row: u32,
}

impl Replayer {
    /// Whether the faults `part` (indices into the schedule) still fail within
    /// `time_limit`: `None` when the budget ran out first.
    fn fails(&mut self, part: &[usize], time_limit: f64) -> Result<Option<bool>> {
        let numbers = numbered(part);
        if let Some(s) = self
            .steps
            .iter()
            .find(|s| s.faults == numbers && s.time_limit_s == time_limit)
        {
            return Ok(Some(s.fails));
        }
        let mut step = Step {
            faults: numbers.clone(),
            time_limit_s: time_limit,
            fails: false,
            replays: Vec::new(),
        };
        for attempt in 1..=self.tries {
            if !self.room_for_a_replay() {
                if !step.replays.is_empty() {
                    self.steps.push(step);
                }
                return Ok(None);
            }
            let replay = self.replay(part, time_limit)?;
            if replay.cut {
                step.replays.push(replay);
                self.steps.push(step);
                return Ok(None);
            }
            crate::console::tell!(
                "  {} of {} faults [{}], {time_limit:.0} s: {} (replay {attempt} of {}, {:.0} s)",
                part.len(),
                self.schedule.len(),
                ranges(&numbers),
                verdict_word(replay.code),
                self.tries,
                replay.seconds
            );
            let failed = replay.code == exit::INVALID;
            step.replays.push(replay);
            if failed {
                step.fails = true;
                break;
            }
        }
        let fails = step.fails;
        self.steps.push(step);
        Ok(Some(fails))
    }

    /// Replays `part` up to `n` times, as the budget allows: how many failed, of how
    /// many replays that ran to the end. When all `n` ran and none failed, the part
    /// counts as passing from now on.
    fn confirm(&mut self, part: &[usize], time_limit: f64, n: u32) -> Result<(u32, u32)> {
        let (mut failed, mut done) = (0, 0);
        while done < n && self.room_for_a_replay() {
            let r = self.replay(part, time_limit)?;
            if r.cut {
                break;
            }
            done += 1;
            failed += u32::from(r.code == exit::INVALID);
        }
        let numbers = numbered(part);
        if failed == 0 && done == n {
            for s in self.steps.iter_mut().filter(|s| s.faults == numbers) {
                s.fails = false;
            }
        }
        if done > 0 {
            self.confirmations.push(Confirmation {
                faults: numbers,
                failed,
                replays: done,
            });
        }
        Ok((failed, done))
    }

    /// Whether the budget leaves time for one more replay as long as the longest so far.
    fn room_for_a_replay(&self) -> bool {
        Instant::now() + Duration::from_secs_f64(self.longest) < self.deadline
    }

    /// Runs `test` once with the faults `part`, stopping it if the budget runs out first
    /// (the replay is then `cut`).
    fn replay(&mut self, part: &[usize], time_limit: f64) -> Result<Replay> {
        use std::io::Write;
        self.replays += 1;
        let file = self.out.join(format!("part-{}.json", self.replays));
        let faults: Vec<Planned> = part.iter().map(|&i| self.schedule[i].clone()).collect();
        schedule_file::write(&file, &faults, "a part tried by shrink")?;
        let store = self.out.join("trials");
        let args = self.args(&file, time_limit, &store);
        writeln!(
            self.log,
            "\n=== replay {}: chaos-runner {}",
            self.replays,
            crate::test_cmd::shell_line(&args)
        )?;
        let t = Instant::now();
        let (status, cut) = {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(&self.exe);
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(self.log.try_clone()?)
                .stderr(self.log.try_clone()?);
            // SAFETY: pre_exec runs in the forked child before exec; prctl only reads its
            // integer arguments. SIGTERM (not SIGKILL) lets the replay take its nodes down.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                        .map_err(std::io::Error::from)
                });
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", self.exe.display()))?;
            wait_until(child, self.deadline)
                .with_context(|| format!("waiting for {}", self.exe.display()))?
        };
        let seconds = t.elapsed().as_secs_f64();
        self.longest = self.longest.max(seconds);
        let code = status.code().map_or(exit::ERROR, |c| c as u8);
        std::fs::remove_file(&file).ok();
        // The replay's folder: kept as evidence when it failed, else removed.
        let run = std::fs::canonicalize(store.join("latest")).ok();
        let run = match run {
            Some(dir) if code == exit::INVALID && !cut => Some(dir),
            Some(dir) => {
                std::fs::remove_dir_all(&dir).ok();
                None
            }
            None => None,
        };
        if cut {
            writeln!(
                self.log,
                "=== replay {} stopped: the budget ran out",
                self.replays
            )?;
        } else if code == exit::ERROR {
            self.errors_in_a_row += 1;
            if self.errors_in_a_row >= 3 {
                bail!(
                    "three replays in a row ended in a harness error; see {}",
                    self.out.join("log.txt").display()
                );
            }
        } else {
            self.errors_in_a_row = 0;
        }
        Ok(Replay {
            code,
            seconds,
            run,
            cut,
        })
    }

    fn args(&self, schedule: &Path, time_limit: f64, store: &Path) -> Vec<String> {
        let mut args = self.base.clone();
        for (flag, value) in [
            ("--seed", self.seed.to_string()),
            ("--schedule", schedule.display().to_string()),
            ("--time-limit", format!("{time_limit}")),
            ("--store", store.display().to_string()),
            ("--name", "replay".to_string()),
        ] {
            args.push(flag.to_string());
            args.push(value);
        }
        args.push("--fail-fast".to_string());
        args
    }
}

/// A part's faults as people count them, from 1 (indices count from 0).
fn numbered(part: &[usize]) -> Vec<usize> {
    part.iter().map(|i| i + 1).collect()
}

fn verdict_word(code: u8) -> &'static str {
    match code {
        exit::INVALID => "fails",
        exit::VALID => "passes",
        exit::UNKNOWN => "unknown",
        _ => "error",
    }
}

/// `1-3,7,9-10`.
fn ranges(numbers: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        out.push(match j - i {
            0 => numbers[i].to_string(),
            _ => format!("{}-{}", numbers[i], numbers[j]),
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(",")
    }
}

/// The original run's arguments without the flags a replay sets itself. Older records
/// have only the command line: it is split as the runner quoted it.
fn base_args(record: &TestRecord) -> Result<Vec<String>> {
    let words = if record.args.is_empty() {
        let mut w = split_words(&record.command)?;
        if w.first().map(String::as_str) == Some("chaos-runner") {
            w.remove(0);
        }
        w
    } else {
        record.args.clone()
    };
    if words.first().map(String::as_str) != Some("test") {
        bail!("test.json does not hold a `chaos-runner test` command line");
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let name = w.split('=').next().unwrap_or_default();
        match REPLACED.iter().find(|(f, _)| *f == name) {
            Some((_, true)) if !w.contains('=') => {
                it.next();
            }
            Some(_) => {}
            None => out.push(w),
        }
    }
    Ok(out)
}

/// Splits a command line quoted as `test_cmd::shell_word` quotes: plain words and
/// single-quoted ones (a quote inside as `'\''`).
fn split_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => words.extend(cur.take()),
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unbalanced quote in the command {line:?}"),
                    }
                }
            }
            '\\' => {
                let w = cur.get_or_insert_with(String::new);
                w.extend(chars.next());
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    Ok(words)
}

/// When the anomaly happened, in seconds on the run's clock.
fn anomaly_at(results: &RunResults) -> Option<f64> {
    if let Some(f) = &results.fail_fast {
        return Some(f.returned_s);
    }
    let op = &results.checker.failures.first()?.op;
    Some(op.ret.unwrap_or(op.call) as f64 / 1e9)
}

/// Waits for `child`, a replay; at `deadline` asks it to stop (SIGTERM: it takes its
/// nodes down), and kills it if it has not within 10 s. Returns its status and whether it
/// was stopped.
fn wait_until(
    mut child: std::process::Child,
    deadline: Instant,
) -> std::io::Result<(std::process::ExitStatus, bool)> {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(child.id() as i32);
    // The waiter only watches (WNOWAIT): the child stays unreaped until `child.wait()`
    // below, so its pid cannot be another process's when it is signalled.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Err(nix::errno::Errno::EINTR) =
            waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
        {}
        let _ = tx.send(());
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let mut cut = false;
    if rx.recv_timeout(left).is_err() {
        cut = true;
        let _ = kill(pid, Signal::SIGTERM);
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    Ok((child.wait()?, cut))
}

/// What shrinking asks of replays: whether a part fails, and how often it fails again.
trait Oracle {
    /// Whether `part` fails (up to --tries replays); `None` when the budget ran out.
    fn fails(&mut self, part: &[usize]) -> Result<Option<bool>>;
    /// How many of --confirm replays of `part` fail, of how many ran; when all ran and
    /// none failed, the part counts as passing. `None` when the budget ran out before
    /// that was known (no replay failed, and not all of them ran).
    fn confirm(&mut self, part: &[usize]) -> Result<Option<(u32, u32)>>;
    /// How many replays a confirmation makes (0: no confirmation).
    fn confirmations(&self) -> u32;
}

/// The real replays, of a run cut at `time_limit`.
struct Replays<'a> {
    replayer: &'a mut Replayer,
    time_limit: f64,
    confirm: u32,
}

impl Oracle for Replays<'_> {
    fn fails(&mut self, part: &[usize]) -> Result<Option<bool>> {
        self.replayer.fails(part, self.time_limit)
    }

    fn confirm(&mut self, part: &[usize]) -> Result<Option<(u32, u32)>> {
        let (failed, done) = self.replayer.confirm(part, self.time_limit, self.confirm)?;
        if done > 0 {
            crate::console::tell!(
                "  confirming {} of {} faults [{}]: failed {failed} of {done} replays{}",
                part.len(),
                self.replayer.schedule.len(),
                ranges(&numbered(part)),
                if done < self.confirm {
                    " (the budget ran out)"
                } else {
                    ""
                }
            );
        }
        Ok((failed > 0 || done == self.confirm).then_some((failed, done)))
    }

    fn confirmations(&self) -> u32 {
        self.confirm
    }
}

/// What [`rounds`] found: the part, how many of its confirming replays failed (of how
/// many), and whether the budget ran out.
type Shrunk = (Vec<usize>, Option<(u32, u32)>, bool);

/// At most this many rounds of [`rounds`]: each after the first retries ddmin with more
/// parts known to pass, and on a failure that comes and goes they could go on for long.
const MAX_ROUNDS: u32 = 4;

/// Rounds of ddmin from `start` (a part known to fail). A part is kept on one failing
/// replay, and a rare failure can mislead that: the smallest part of a round is replayed
/// again, and when it does not fail, the walk goes back along the parts kept until one
/// does; what did not fail again counts as passing from then on, and the next round
/// starts from the part that did. It ends when a round's smallest part fails again, when
/// no part fails again, after [`MAX_ROUNDS`], or when the budget runs out. Returns the result, how many of its confirming replays failed (of how
/// many), and whether the budget ran out.
fn rounds(oracle: &mut dyn Oracle, start: Vec<usize>) -> Result<Shrunk> {
    let n = oracle.confirmations();
    let mut faults = start;
    let mut confirmed = None;
    let mut round = 0;
    loop {
        let (trail, ran_out) = ddmin(&mut |part| oracle.fails(part), faults.clone())?;
        faults = trail.last().cloned().unwrap_or_default();
        if n == 0 {
            return Ok((faults, None, ran_out));
        }
        let mut again = None;
        for (k, part) in trail.iter().rev().enumerate() {
            let Some((failed, done)) = oracle.confirm(part)? else {
                return Ok((faults, confirmed, true));
            };
            if k == 0 || failed > 0 {
                faults = part.clone();
                confirmed = Some((failed, done));
            }
            if failed > 0 {
                again = Some(k);
                break;
            }
        }
        round += 1;
        match again {
            // What failed again is larger than what the round found: ddmin again from
            // it, now that the parts that did not fail again count as passing.
            Some(k) if k > 0 && !ran_out && round < MAX_ROUNDS => {
                crate::console::tell!(
                    "  shrinking again from the {} faults that failed again",
                    faults.len()
                );
            }
            _ => return Ok((faults, confirmed, ran_out)),
        }
    }
}

/// ddmin over complements: take out each of `n` chunks in turn, keep what still fails,
/// refine `n` until single faults. Returns every part it kept, from `current` to the
/// smallest (the trail a confirmation walks back along), and whether the budget ran out
/// first.
fn ddmin(
    fails: &mut dyn FnMut(&[usize]) -> Result<Option<bool>>,
    mut current: Vec<usize>,
) -> Result<(Vec<Vec<usize>>, bool)> {
    let mut trail = vec![current.clone()];
    let mut n = 2;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut reduced = false;
        for chunk in &chunks {
            let rest: Vec<usize> = current
                .iter()
                .copied()
                .filter(|i| !chunk.contains(i))
                .collect();
            match fails(&rest)? {
                None => return Ok((trail, true)),
                Some(true) => {
                    trail.push(rest.clone());
                    current = rest;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
                Some(false) => {}
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    if current.len() == 1 {
        // Does it need any fault at all?
        match fails(&[])? {
            None => return Ok((trail, true)),
            Some(true) => trail.push(Vec::new()),
            Some(false) => {}
        }
    }
    Ok((trail, false))
}

/// `items` in `n` chunks of nearly equal size, in order.
fn split(items: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.clamp(1, items.len().max(1));
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 0..n {
        let end = (items.len() * (k + 1)) / n;
        out.push(items[start..end].to_vec());
        start = end;
    }
    out
}

pub fn run(args: ShrinkArgs) -> Result<u8> {
    let dir = std::fs::canonicalize(&args.run_dir)
        .with_context(|| format!("no run folder at {}", args.run_dir.display()))?;
    let record: TestRecord = reports::data::read_record(&dir.join("test.json"))?
        .with_context(|| format!("{} holds no test.json", dir.display()))?;
    let results: RunResults =
        reports::data::read_record(&dir.join("results.json"))?.with_context(|| {
            format!(
                "{} holds no results.json: the run did not finish",
                dir.display()
            )
        })?;
    if results.verdict != Verdict::Invalid {
        bail!(
            "the run at {} was {}, not invalid: shrink looks for the smallest schedule that \
             still fails",
            dir.display(),
            results.verdict.as_str()
        );
    }
    let schedule_path = dir.join("schedule.json");
    if !schedule_path.exists() {
        bail!(
            "{} has no schedule.json (runs before this version did not write one): run it \
             again with `{}` and shrink that run",
            dir.display(),
            record.command
        );
    }
    let schedule = schedule_file::read(&schedule_path)?;
    if !args.budget.is_finite() || args.budget <= 0.0 {
        bail!("--budget must be a positive number of seconds");
    }
    let out = dir.join("shrink");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let t0 = Instant::now();
    let mut replayer = Replayer {
        exe: std::env::current_exe().context("cannot find this executable")?,
        base: base_args(&record)?,
        seed: record.seed,
        schedule: schedule.clone(),
        log: std::fs::File::create(out.join("log.txt"))?,
        out: out.clone(),
        tries: args.tries,
        deadline: t0 + Duration::from_secs_f64(args.budget),
        longest: 0.0,
        steps: Vec::new(),
        confirmations: Vec::new(),
        replays: 0,
        errors_in_a_row: 0,
    };
    let all: Vec<usize> = (0..schedule.len()).collect();
    let mut time_limit = record.time_limit_s;
    crate::console::tell!(
        "shrinking {} (seed {}, {} faults, {:.0} s); up to {} replays per part, budget {:.0} s",
        dir.display(),
        record.seed,
        schedule.len(),
        time_limit,
        args.tries,
        args.budget
    );
    // Step 0: the run up to just after its anomaly.
    let mut current = all.clone();
    let mut reproduced = None;
    if let Some(at) = anomaly_at(&results).filter(|_| !args.no_cut) {
        let cut = (at + CUT_MARGIN_S).ceil();
        if cut < time_limit {
            let before: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| schedule[i].start.as_secs_f64() < cut)
                .collect();
            crate::console::tell!(
                "cut: the anomaly came at {at:.1} s; trying the run to {cut:.0} s ({} faults)",
                before.len()
            );
            reproduced = replayer.fails(&before, cut)?;
            if reproduced == Some(true) {
                current = before;
                time_limit = cut;
            }
        }
    }
    if reproduced != Some(true) {
        crate::console::tell!("the whole run again:");
        reproduced = replayer.fails(&all, time_limit)?;
    }
    if reproduced == Some(false) {
        crate::console::tell!(
            "the run did not fail again in {} replays: nothing to shrink (see {})",
            args.tries,
            out.join("log.txt").display()
        );
        write_outcome(
            &out,
            &dir,
            &record,
            &replayer,
            &[],
            time_limit,
            t0,
            false,
            None,
        )?;
        return Ok(exit::UNKNOWN);
    }
    let (faults, confirmed, ran_out) = if reproduced == Some(true) {
        let mut oracle = Replays {
            replayer: &mut replayer,
            time_limit,
            confirm: args.confirm,
        };
        rounds(&mut oracle, current.clone())?
    } else {
        (current.clone(), None, true)
    };
    let budget_ran_out = ran_out;
    let kept: Vec<Planned> = faults.iter().map(|&i| schedule[i].clone()).collect();
    let result_path = out.join("schedule.json");
    schedule_file::write(
        &result_path,
        &kept,
        &format!(
            "shrink of {} (seed {}): {} of {} faults",
            dir.display(),
            record.seed,
            kept.len(),
            schedule.len()
        ),
    )?;
    let command = write_outcome(
        &out,
        &dir,
        &record,
        &replayer,
        &faults,
        time_limit,
        t0,
        budget_ran_out,
        confirmed,
    )?;
    crate::console::tell!(
        "shrunk {} faults to {} in {} replays ({:.0} s){}:",
        schedule.len(),
        kept.len(),
        replayer.replays,
        t0.elapsed().as_secs_f64(),
        if budget_ran_out {
            "; the budget ran out before every fault was tried"
        } else {
            ""
        }
    );
    if kept.is_empty() {
        crate::console::tell!("  (none: the run fails without any fault)");
    }
    for (i, p) in faults.iter().zip(&kept) {
        crate::console::tell!("  {:>3}. {p}", i + 1);
    }
    if let Some((failed, of)) = confirmed {
        crate::console::tell!("confirmed: it failed {failed} of {of} replays");
        if failed == 0 && budget_ran_out {
            crate::console::tell!(
                "  it did not fail again, and the budget ran out before the larger parts kept \
                 on the way were replayed (shrink.json lists them): a longer --budget goes on"
            );
        } else if failed == 0 {
            crate::console::tell!(
                "  no part failed again when replayed: this failure is rare under these \
                 faults, and the schedule above is the smallest that failed once"
            );
        }
    }
    crate::console::tell!("schedule: {}", result_path.display());
    crate::console::tell!("replay:   {command}");
    Ok(exit::VALID)
}

#[allow(clippy::too_many_arguments)]
fn write_outcome(
    out: &Path,
    dir: &Path,
    record: &TestRecord,
    replayer: &Replayer,
    faults: &[usize],
    time_limit: f64,
    t0: Instant,
    budget_ran_out: bool,
    confirmed: Option<(u32, u32)>,
) -> Result<String> {
    let mut words = vec!["chaos-runner".to_string()];
    words.extend(replayer.base.iter().cloned());
    for (f, v) in [
        ("--seed", record.seed.to_string()),
        ("--time-limit", format!("{time_limit}")),
        (
            "--schedule",
            out.join("schedule.json").display().to_string(),
        ),
    ] {
        words.push(f.to_string());
        words.push(v);
    }
    let command = crate::test_cmd::shell_line(&words);
    let outcome = Outcome {
        run: dir.to_path_buf(),
        seed: record.seed,
        original_faults: replayer.schedule.len(),
        faults: numbered(faults),
        time_limit_s: time_limit,
        steps: replayer.steps.clone(),
        replays: replayer.replays,
        seconds: t0.elapsed().as_secs_f64(),
        budget_ran_out,
        confirmed,
        confirmations: replayer.confirmations.clone(),
        command: command.clone(),
    };
    let path = out.join("shrink.json");
    std::fs::write(&path, serde_json::to_string_pretty(&outcome)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replayed_flags_are_taken_out_in_both_spellings() {
        let record = TestRecord {
            args: [
                "test",
                "--nodes",
                "5",
                "--seed",
                "9",
                "--store=/x",
                "--fail-fast",
                "--nemesis",
                "kill,pause",
                "--node-arg=--bug",
                "--node-arg",
                "stale-read",
            ]
            .map(String::from)
            .to_vec(),
            ..TestRecord::default()
        };
        assert_eq!(
            base_args(&record).unwrap(),
            [
                "test",
                "--nodes",
                "5",
                "--node-arg=--bug",
                "--node-arg",
                "stale-read"
            ]
        );
        // An older record: only the quoted command line.
        let old = TestRecord {
            command: "chaos-runner test --client-cmd 'python3 a.py --x '\\''y'\\''' --seed 4"
                .to_string(),
            ..TestRecord::default()
        };
        assert_eq!(
            base_args(&old).unwrap(),
            ["test", "--client-cmd", "python3 a.py --x 'y'"]
        );
        let bench = TestRecord {
            command: "chaos-runner bench".to_string(),
            ..TestRecord::default()
        };
        assert!(base_args(&bench).is_err());
    }

    #[test]
    fn splitting_quoted_words_inverts_the_quoting() {
        for words in [
            vec!["a", "b c", "", "it's", "{peer_addr:2}", "x'y'z"],
            vec!["--node-cmd", "sh -c 'echo \"$x\"'"],
        ] {
            let owned: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let line = crate::test_cmd::shell_line(&owned);
            assert_eq!(split_words(&line).unwrap(), words, "{line}");
        }
        assert!(split_words("a 'b").is_err());
    }

    /// ddmin finds the faults that matter, and takes out a half first when it can.
    #[test]
    fn ddmin_keeps_exactly_the_faults_that_matter() {
        for needed in [
            vec![],
            vec![5],
            vec![3, 11],
            vec![0, 12, 23],
            vec![7, 8, 9, 10],
        ] {
            let mut calls = 0;
            let mut fails = |part: &[usize]| -> Result<Option<bool>> {
                calls += 1;
                Ok(Some(needed.iter().all(|i| part.contains(i))))
            };
            let (trail, out_of_budget) = ddmin(&mut fails, (0..24).collect()).unwrap();
            assert_eq!(trail.last().unwrap(), &needed);
            assert_eq!(trail[0], (0..24).collect::<Vec<_>>());
            // Each part kept is smaller than the one before, and contains what is needed.
            for w in trail.windows(2) {
                assert!(w[1].len() < w[0].len() && w[1].iter().all(|i| w[0].contains(i)));
            }
            assert!(!out_of_budget);
            assert!(calls <= 60, "{needed:?}: {calls} calls");
        }
        // When the budget runs out, the smallest failing part so far is the answer.
        let mut left = 3;
        let mut fails = |part: &[usize]| -> Result<Option<bool>> {
            left -= 1;
            Ok((left >= 0).then(|| part.contains(&20)))
        };
        let (trail, out_of_budget) = ddmin(&mut fails, (0..24).collect()).unwrap();
        assert!(out_of_budget);
        assert_eq!(trail.last().unwrap(), &(18..24).collect::<Vec<_>>());
        assert_eq!(trail.len(), 3);
    }

    /// A fake: a part fails when it holds every fault of `needed`, and, once each, a
    /// part of `flaky` fails although it does not (a rare failure that misleads ddmin).
    struct Fake {
        needed: Vec<usize>,
        flaky: Vec<Vec<usize>>,
        counted_passing: Vec<Vec<usize>>,
        replays: usize,
    }

    impl Oracle for Fake {
        fn fails(&mut self, part: &[usize]) -> Result<Option<bool>> {
            self.replays += 1;
            if self.counted_passing.iter().any(|p| p == part) {
                return Ok(Some(false));
            }
            if let Some(i) = self.flaky.iter().position(|p| p == part) {
                self.flaky.remove(i);
                return Ok(Some(true));
            }
            Ok(Some(self.needed.iter().all(|i| part.contains(i))))
        }

        fn confirm(&mut self, part: &[usize]) -> Result<Option<(u32, u32)>> {
            self.replays += 3;
            let real = self.needed.iter().all(|i| part.contains(i));
            if !real {
                self.counted_passing.push(part.to_vec());
            }
            Ok(Some((if real { 3 } else { 0 }, 3)))
        }

        fn confirmations(&self) -> u32 {
            3
        }
    }

    #[test]
    fn a_rare_failure_that_misleads_ddmin_is_walked_back_and_shrunk_again() {
        // Faults 2 and 9 of 16 make it fail; a part without 9 fails once by chance.
        let all: Vec<usize> = (0..16).collect();
        let without_second_half: Vec<usize> = (0..8).collect();
        let mut fake = Fake {
            needed: vec![2, 9],
            flaky: vec![without_second_half],
            counted_passing: Vec::new(),
            replays: 0,
        };
        let (kept, confirmed, ran_out) = rounds(&mut fake, all.clone()).unwrap();
        assert_eq!(kept, [2, 9]);
        assert_eq!(confirmed, Some((3, 3)));
        assert!(!ran_out);
        // With no rare failure, one round and one confirmation.
        let mut fake = Fake {
            needed: vec![2, 9],
            flaky: Vec::new(),
            counted_passing: Vec::new(),
            replays: 0,
        };
        assert_eq!(rounds(&mut fake, all).unwrap().0, [2, 9]);
    }

    #[test]
    fn parts_are_numbered_as_ranges_and_split_evenly() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(ranges(&[]), "none");
        let items: Vec<usize> = (0..7).collect();
        let chunks = split(&items, 3);
        assert_eq!(chunks, vec![vec![0, 1], vec![2, 3], vec![4, 5, 6]]);
        assert_eq!(split(&items, 9).len(), 7);
    }
}
