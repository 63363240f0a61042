//! `--junit FILE`: the runs as a JUnit test suite, which CI systems display.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit;

/// What one run ended with.
pub struct RunSummary {
    pub seed: u64,
    /// The run's exit code.
    pub code: u8,
    pub seconds: f64,
    /// One line: the checker's summary, the reason for unknown, or the error.
    pub message: String,
    pub dir: Option<PathBuf>,
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The suite as XML: an invalid run is a failure, an unknown one skipped, a harness error
/// an error.
pub fn render(name: &str, runs: &[RunSummary]) -> String {
    let count = |c: u8| runs.iter().filter(|r| r.code == c).count();
    let total: f64 = runs.iter().map(|r| r.seconds).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"chaos-runner {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total:.3}\">\n",
        xml(name),
        runs.len(),
        count(exit::INVALID),
        count(exit::ERROR),
        count(exit::UNKNOWN)
    );
    for r in runs {
        out += &format!(
            "  <testcase classname=\"chaos-runner.{}\" name=\"{} seed {}\" time=\"{:.3}\">\n",
            xml(name),
            xml(name),
            r.seed,
            r.seconds
        );
        let detail = r
            .dir
            .as_ref()
            .map(|d| format!("results: {}", d.display()))
            .unwrap_or_default();
        let (message, detail) = (xml(&r.message), xml(&detail));
        out += &match r.code {
            exit::VALID => String::new(),
            exit::INVALID => {
                format!("    <failure type=\"invalid\" message=\"{message}\">{detail}</failure>\n")
            }
            exit::UNKNOWN => format!("    <skipped message=\"{message}\"/>\n"),
            _ => format!("    <error message=\"{message}\">{detail}</error>\n"),
        };
        out += "  </testcase>\n";
    }
    out += "</testsuite>\n";
    out
}

pub fn write(path: &Path, name: &str, runs: &[RunSummary]) -> Result<()> {
    std::fs::write(path, render(name, runs))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_exit_code_becomes_its_junit_element() {
        let run = |code, message: &str| RunSummary {
            seed: 7,
            code,
            seconds: 1.0,
            message: message.into(),
            dir: Some(PathBuf::from("store/r/1")),
        };
        let xml = render(
            "reg<1>",
            &[
                run(exit::VALID, "VALID"),
                run(exit::INVALID, "INVALID: \"x\""),
                run(exit::UNKNOWN, "unknown: budget"),
                run(exit::ERROR, "no leader"),
            ],
        );
        assert!(xml.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""));
        assert!(xml.contains("<failure type=\"invalid\" message=\"INVALID: &quot;x&quot;\">results: store/r/1</failure>"));
        assert!(xml.contains("<skipped message=\"unknown: budget\"/>"));
        assert!(xml.contains("<error message=\"no leader\">"));
        assert!(xml.contains("name=\"chaos-runner reg&lt;1&gt;\""));
    }
}
