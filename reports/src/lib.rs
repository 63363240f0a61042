//! `reports`: what a person reads after a run.
//!
//! - [`data`]: loads a run folder (test.json, history.jsonl, results.json).
//! - [`escape`]: text made safe for HTML.
//! - [`layout`]: the arithmetic of the pictures: lanes, time scales, windows, quantiles.
//! - [`plots`]: latency and rate plots as SVG (plotters), faults shaded.
//! - [`html`]: the self-contained `report.html`: header, timeline, counterexample, plots.
//! - [`txn`]: a transaction history's anomalies, explained and drawn as cycles.
//! - [`index`]: `store/index.html`, every run newest first.

pub mod data;
pub mod escape;
pub mod html;
pub mod index;
pub mod layout;
pub mod plots;
pub mod txn;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
    #[error("drawing {what}: {message}")]
    Plot { what: &'static str, message: String },
}

/// Files written for a run.
#[derive(Debug, Clone)]
pub struct Written {
    pub report: PathBuf,
    pub plots: Vec<PathBuf>,
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds `report.html` and the SVG plots of the run in `run_dir`.
pub fn build(run_dir: &Path) -> Result<Written, ReportError> {
    let run = data::Run::load(run_dir)?;
    let svgs = plots::all(&run)?;
    let mut plot_paths = Vec::new();
    for (name, svg) in &svgs {
        let p = run_dir.join(name);
        write(&p, svg)?;
        plot_paths.push(p);
    }
    let html = html::render(&run, &svgs);
    let report = run_dir.join("report.html");
    write(&report, &html)?;
    Ok(Written {
        report,
        plots: plot_paths,
    })
}
