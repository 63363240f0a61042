//! Latency and rate plots as SVG, with fault intervals shaded as in Jepsen's perf graphs.

use checker::history::Outcome;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::data::{Fault, Run};
use crate::layout::{nice_width, rates, windows, Rate, Window};
use crate::ReportError;

const SIZE: (u32, u32) = (960, 320);
/// Most points the raw-latency plot draws; beyond it, `ok` points are thinned evenly.
const MAX_POINTS: usize = 20_000;

const OK: RGBColor = RGBColor(46, 139, 87);
const FAIL: RGBColor = RGBColor(200, 50, 50);
const INFO: RGBColor = RGBColor(230, 150, 20);
const FAULT: RGBColor = RGBColor(120, 120, 200);

fn err(what: &'static str) -> impl Fn(String) -> ReportError {
    move |message| ReportError::Plot { what, message }
}

fn outcome_color(o: Outcome) -> RGBColor {
    match o {
        Outcome::Ok => OK,
        Outcome::Fail => FAIL,
        Outcome::Info => INFO,
    }
}

fn shade<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>,
    >,
    faults: &[Fault],
    y: (f64, f64),
) -> Result<(), String> {
    chart
        .draw_series(
            faults
                .iter()
                .filter(|f| f.end > f.start)
                .map(|f| Rectangle::new([(f.start, y.0), (f.end, y.1)], FAULT.mix(0.15).filled())),
        )
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(faults.iter().map(|f| {
            Text::new(
                f.label.clone(),
                (f.start, y.1),
                ("sans-serif", 11).into_font().color(&FAULT),
            )
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn root(s: &mut String) -> DrawingArea<SVGBackend<'_>, Shift> {
    let root = SVGBackend::with_string(s, SIZE).into_drawing_area();
    let _ = root.fill(&WHITE);
    root
}

/// Draws the legend and writes the SVG out.
fn finish<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    mut chart: ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, Shift>,
    what: &'static str,
) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(what)(e.to_string()))?;
    root.present().map_err(|e| err(what)(e.to_string()))
}

/// A time × latency (ms, log scale) chart with its axes drawn and faults shaded.
fn latency_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    run: &Run,
    ymax: f64,
    what: &'static str,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>, ReportError>
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..run.end.max(1.0), (0.01f64..ymax).log_scale())
        .map_err(|e| err(what)(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(what)(e.to_string()))?;
    shade(&mut chart, &run.faults, (0.01, ymax)).map_err(err(what))?;
    Ok(chart)
}

/// Every operation's latency over time, log scale, by outcome (colour) and function
/// (marker: circle read, triangle write, cross other).
pub fn latency_raw(run: &Run) -> Result<String, ReportError> {
    let mut points: Vec<(f64, f64, Outcome, u8)> = run
        .ops()
        .iter()
        .filter_map(|o| {
            let ret = o.ret?;
            let shape = match o.f.as_str() {
                "read" | "get" => 0,
                "write" | "put" => 1,
                _ => 2,
            };
            Some((
                ret as f64 / 1e9,
                ((ret - o.call) as f64 / 1e6).max(0.01),
                o.outcome,
                shape,
            ))
        })
        .collect();
    // Thin each outcome evenly to its share of MAX_POINTS; unknown outcomes are rare and
    // always kept.
    for outcome in [Outcome::Ok, Outcome::Fail] {
        let n = points.iter().filter(|p| p.2 == outcome).count();
        let keep_every = n.div_ceil(MAX_POINTS / 2).max(1);
        let mut i = 0;
        points.retain(|p| {
            if p.2 != outcome {
                return true;
            }
            i += 1;
            i % keep_every == 0
        });
    }
    let ymax = points.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.5;
    let mut s = String::new();
    {
        let root = root(&mut s);
        let mut chart = latency_chart(
            &root,
            "latency of every operation",
            run,
            ymax,
            "latency-raw",
        )?;
        for (outcome, name) in [
            (Outcome::Ok, "ok"),
            (Outcome::Fail, "fail"),
            (Outcome::Info, "info"),
        ] {
            let c = outcome_color(outcome);
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.2 == outcome)
                        .map(|&(x, y, _, shape)| {
                            let style = c.mix(0.6).filled();
                            match shape {
                                0 => Circle::new((x, y), 2, style).into_dyn(),
                                1 => TriangleMarker::new((x, y), 3, style).into_dyn(),
                                _ => Cross::new((x, y), 3, c.mix(0.8)).into_dyn(),
                            }
                        }),
                )
                .map_err(|e| err("latency-raw")(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| Circle::new((x, y), 3, c.filled()));
        }
        finish(chart, &root, "latency-raw")?;
    }
    Ok(s)
}

/// p50 / p95 / p99 / max latency of `ok` operations per time window.
pub fn latency_quantiles(run: &Run) -> Result<String, ReportError> {
    let samples: Vec<(f64, f64)> = run
        .ops()
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| {
            o.ret
                .map(|r| (r as f64 / 1e9, ((r - o.call) as f64 / 1e6).max(0.01)))
        })
        .collect();
    let width = nice_width(run.end, 40);
    let ws = windows(&samples, width);
    let ymax = ws.iter().map(|w| w.max).fold(1.0f64, f64::max) * 1.5;
    let mut s = String::new();
    {
        let root = root(&mut s);
        let mut chart = latency_chart(
            &root,
            &format!("latency quantiles per {width} s (ok operations)"),
            run,
            ymax,
            "latency-quantiles",
        )?;
        type Series = (&'static str, RGBColor, fn(&Window) -> f64);
        let series: [Series; 4] = [
            ("p50", RGBColor(40, 100, 200), |w| w.p50),
            ("p95", RGBColor(120, 60, 180), |w| w.p95),
            ("p99", RGBColor(200, 90, 40), |w| w.p99),
            ("max", RGBColor(160, 30, 30), |w| w.max),
        ];
        for (name, color, f) in series {
            chart
                .draw_series(LineSeries::new(
                    ws.iter().map(|w| (w.t + width / 2.0, f(w))),
                    color.stroke_width(2),
                ))
                .map_err(|e| err("latency-quantiles")(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
        finish(chart, &root, "latency-quantiles")?;
    }
    Ok(s)
}

/// Completed operations per second, by outcome.
pub fn rate(run: &Run) -> Result<String, ReportError> {
    let r = rates(run.ops(), run.end);
    let ymax = r
        .iter()
        .map(|x| x.1.max(x.2).max(x.3))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let mut s = String::new();
    {
        let root = root(&mut s);
        let mut chart = ChartBuilder::on(&root)
            .caption("completed operations per second", ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..run.end.max(1.0), 0f64..ymax)
            .map_err(|e| err("rate")(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err("rate")(e.to_string()))?;
        shade(&mut chart, &run.faults, (0.0, ymax)).map_err(err("rate"))?;
        type Series = (&'static str, RGBColor, fn(&Rate) -> usize);
        let series: [Series; 3] = [
            ("ok", OK, |x| x.1),
            ("fail", FAIL, |x| x.2),
            ("info", INFO, |x| x.3),
        ];
        for (name, color, f) in series {
            chart
                .draw_series(LineSeries::new(
                    r.iter().map(|x| (x.0 + 0.5, f(x) as f64)),
                    color.stroke_width(2),
                ))
                .map_err(|e| err("rate")(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
        finish(chart, &root, "rate")?;
    }
    Ok(s)
}

/// Every plot, with its file name.
pub fn all(run: &Run) -> Result<Vec<(&'static str, String)>, ReportError> {
    Ok(vec![
        ("latency-raw.svg", latency_raw(run)?),
        ("latency-quantiles.svg", latency_quantiles(run)?),
        ("rate.svg", rate(run)?),
    ])
}
