//! What the runner says, to the terminal as before and, while a run goes, into that run's
//! `runner.log` (as Jepsen keeps `jepsen.log`): every console line, stamped with the wall
//! clock, plus what only the log gets (each fault as it starts and stops). A run folder
//! then tells its own story after the terminal is gone.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static LOG: Mutex<Option<File>> = Mutex::new(None);

/// Starts writing the log at `path` (a run's `runner.log`), ending any earlier one.
pub fn open(path: &Path) -> std::io::Result<()> {
    let f = File::options().create(true).append(true).open(path)?;
    *LOG.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    Ok(())
}

/// Stops writing the log (the run is over).
pub fn close() {
    *LOG.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Appends `text` (one or more lines) to the log, each line stamped; no-op between runs.
pub fn record(text: &str) {
    let mut log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = log.as_mut() {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        for line in text.lines() {
            let _ = writeln!(f, "{now} {line}");
        }
    }
}

/// Like `eprintln!`, and into the run's log. A closed stderr is not an error: the run
/// goes on, and its exit code still says how it ended (`eprintln!` would panic).
macro_rules! say {
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{text}");
        }
        $crate::console::record(&text);
    }};
}

/// Like `println!`, and into the run's log; a closed stdout (`| head -1`) is not an
/// error either.
macro_rules! tell {
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), "{text}");
        }
        $crate::console::record(&text);
    }};
}

pub(crate) use {say, tell};
