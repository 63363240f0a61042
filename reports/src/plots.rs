//! Latency and rate plots as SVG, with fault intervals shaded as in Jepsen's perf graphs.

use checker::history::Outcome;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{Fault, Run};
use crate::layout::{nice_width, rates, windows, Rate, Window};
use crate::ReportError;

const SIZE: (u32, u32) = (960, 372);
/// The strip at the right that holds the legend, clear of the data.
const LEGEND_W: u32 = 190;
/// Rows of fault labels, in a band above the plotting area: clear of the data.
pub(crate) const LABEL_ROWS: usize = 4;
const ROW_H: i32 = 13;
const BAND: u32 = LABEL_ROWS as u32 * ROW_H as u32 + 6;
/// About how wide a character of the labels' 11 px font is.
const CHAR_W: f64 = 6.2;
/// Most points the raw-latency plot draws; beyond it, `ok` and `fail` points are thinned
/// evenly. A 960-pixel plot shows no more (8 points a pixel column), and each costs about
/// 125 bytes of SVG: at 20,000 the plot alone was 2.5 MB of a one-hour report.
const MAX_POINTS: usize = 8_000;

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

/// Where each fault's label goes in the band above the plot: a row and an x in pixels.
/// A label starts at its fault's start (`x_of`), or ends at `right` when it would run
/// past it; it takes the first row where it does not run into the previous label, and a
/// label that fits in no row is left out (the shading stays, and the timeline lists
/// every fault).
pub(crate) fn label_rows(
    faults: &[Fault],
    x_of: impl Fn(f64) -> f64,
    right: f64,
) -> Vec<Option<(usize, f64)>> {
    let mut row_end = [f64::NEG_INFINITY; LABEL_ROWS];
    faults
        .iter()
        .map(|f| {
            let w = f.label.chars().count() as f64 * CHAR_W;
            let x = x_of(f.start).min(right - w).max(0.0);
            let row = (0..LABEL_ROWS).find(|&r| row_end[r] + CHAR_W <= x)?;
            row_end[row] = x + w;
            Some((row, x))
        })
        .collect()
}

/// Shades each fault's interval on the chart, and labels it in the band above the
/// plotting area (drawn on `root`, in pixels).
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    root: &DrawingArea<DB, Shift>,
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
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let top = ys.start;
    let x_of = |t: f64| f64::from(chart.backend_coord(&(t, y.0)).0);
    let rows = label_rows(faults, x_of, f64::from(xs.end));
    let font = ("sans-serif", 11).into_font().color(&FAULT);
    for (f, place) in faults.iter().zip(rows) {
        let Some((row, x)) = place else { continue };
        let ly = top - BAND as i32 + row as i32 * ROW_H + 2;
        root.draw(&Text::new(f.label.clone(), (x as i32, ly), font.clone()))
            .map_err(|e| e.to_string())?;
        // A tick from the label down to where its fault begins.
        let fx = x_of(f.start) as i32;
        root.draw(&PathElement::new(
            vec![(fx, ly + ROW_H - 2), (fx, top)],
            FAULT.mix(0.5),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a legend entry shows beside its name.
#[derive(Clone, Copy)]
enum Swatch {
    Square(RGBColor),
    Line(RGBColor),
    Circle(RGBColor),
    Triangle(RGBColor),
    Cross(RGBColor),
}

/// The canvas of a plot: the whole SVG, the part for the chart, and the legend's strip.
struct Frame<'a> {
    root: DrawingArea<SVGBackend<'a>, Shift>,
    chart: DrawingArea<SVGBackend<'a>, Shift>,
    legend: DrawingArea<SVGBackend<'a>, Shift>,
}

/// The frame of a plot captioned `caption`: the title on top, then the band for fault
/// labels, then the chart; the legend's strip at the right.
fn frame<'a>(s: &'a mut String, caption: &str) -> Frame<'a> {
    let root = SVGBackend::with_string(s, SIZE).into_drawing_area();
    let _ = root.fill(&WHITE);
    let (left, legend) = root.split_horizontally(SIZE.0 - LEGEND_W);
    let chart = left
        .titled(caption, ("sans-serif", 15))
        .unwrap_or_else(|_| left.clone());
    Frame {
        root,
        chart,
        legend,
    }
}

/// A chart on the frame, with room for its axes and the band of fault labels above it.
fn chart_builder<'a, 'b>(
    f: &'a Frame<'b>,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(&f.chart);
    b.margin(8)
        .margin_top(BAND + 2)
        .x_label_area_size(30)
        .y_label_area_size(y_label_area);
    b
}

/// Draws the legend in its strip, beside the chart, and writes the SVG out.
fn finish(
    f: &Frame<'_>,
    entries: &[(String, Swatch)],
    what: &'static str,
) -> Result<(), ReportError> {
    let e = |x: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| err(what)(x.to_string());
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    for (i, (name, swatch)) in entries.iter().enumerate() {
        let (x, y) = (10, 40 + BAND as i32 + i as i32 * 18);
        match *swatch {
            Swatch::Square(c) => f
                .legend
                .draw(&Rectangle::new([(x, y - 4), (x + 8, y + 4)], c.filled())),
            Swatch::Line(c) => f.legend.draw(&PathElement::new(
                vec![(x - 2, y), (x + 13, y)],
                c.stroke_width(2),
            )),
            Swatch::Circle(c) => f.legend.draw(&Circle::new((x + 4, y), 3, c.filled())),
            Swatch::Triangle(c) => f
                .legend
                .draw(&TriangleMarker::new((x + 4, y), 4, c.filled())),
            Swatch::Cross(c) => f.legend.draw(&Cross::new((x + 4, y), 4, c)),
        }
        .map_err(e)?;
        f.legend
            .draw(&Text::new(name.clone(), (x + 20, y - 7), font.clone()))
            .map_err(e)?;
    }
    f.root.present().map_err(e)
}

/// A time × latency (ms, log scale) chart with its axes drawn and faults shaded.
fn latency_chart<'a, 'b>(
    f: &'a Frame<'b>,
    run: &Run,
    ymax: f64,
    what: &'static str,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>, ReportError>
{
    let mut chart = chart_builder(f, 55)
        .build_cartesian_2d(0f64..run.end.max(1.0), (0.01f64..ymax).log_scale())
        .map_err(|e| err(what)(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(what)(e.to_string()))?;
    shade(&mut chart, &f.root, &run.faults, (0.01, ymax)).map_err(err(what))?;
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
            let shape = match o.func() {
                Some(checker::Func::Read) => 0,
                Some(checker::Func::Write) => 1,
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
        let f = frame(&mut s, "latency of every operation");
        let mut chart = latency_chart(&f, run, ymax, "latency-raw")?;
        let mut legend = Vec::new();
        // Failures first and ok last, so the many cas mismatches (failures by answer) never
        // bury the ok points.
        for (outcome, name) in [
            (Outcome::Fail, "fail"),
            (Outcome::Info, "info"),
            (Outcome::Ok, "ok"),
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
                .map_err(|e| err("latency-raw")(e.to_string()))?;
            legend.push((name.to_string(), Swatch::Square(c)));
        }
        // What each marker stands for.
        let grey = RGBColor(90, 90, 90);
        legend.extend([
            ("read: circle".to_string(), Swatch::Circle(grey)),
            ("write: triangle".to_string(), Swatch::Triangle(grey)),
            ("cas, other: cross".to_string(), Swatch::Cross(grey)),
        ]);
        drop(chart);
        finish(&f, &legend, "latency-raw")?;
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
        let f = frame(
            &mut s,
            &format!("latency quantiles per {width} s (ok operations)"),
        );
        let mut chart = latency_chart(&f, run, ymax, "latency-quantiles")?;
        type Series = (&'static str, RGBColor, fn(&Window) -> f64);
        let series: [Series; 4] = [
            ("p50", RGBColor(40, 100, 200), |w| w.p50),
            ("p95", RGBColor(120, 60, 180), |w| w.p95),
            ("p99", RGBColor(200, 90, 40), |w| w.p99),
            ("max", RGBColor(160, 30, 30), |w| w.max),
        ];
        // Windows without an ok operation (a pause, a partition) break the lines: no
        // straight line across a gap suggests latencies nobody measured.
        let runs: Vec<&[Window]> = ws.chunk_by(|a, b| b.t - a.t < width * 1.5).collect();
        let mut legend = Vec::new();
        for (name, color, value) in series {
            for run in runs.iter().skip(1) {
                chart
                    .draw_series(LineSeries::new(
                        run.iter().map(|w| (w.t + width / 2.0, value(w))),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err("latency-quantiles")(e.to_string()))?;
            }
            let first: &[Window] = runs.first().copied().unwrap_or(&[]);
            chart
                .draw_series(LineSeries::new(
                    first.iter().map(|w| (w.t + width / 2.0, value(w))),
                    color.stroke_width(2),
                ))
                .map_err(|e| err("latency-quantiles")(e.to_string()))?;
            legend.push((name.to_string(), Swatch::Line(color)));
        }
        drop(chart);
        finish(&f, &legend, "latency-quantiles")?;
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
        let f = frame(&mut s, "completed operations per second");
        let mut chart = chart_builder(&f, 55)
            .build_cartesian_2d(0f64..run.end.max(1.0), 0f64..ymax)
            .map_err(|e| err("rate")(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err("rate")(e.to_string()))?;
        shade(&mut chart, &f.root, &run.faults, (0.0, ymax)).map_err(err("rate"))?;
        type Series = (&'static str, RGBColor, fn(&Rate) -> usize);
        let series: [Series; 3] = [
            ("ok", OK, |x| x.1),
            ("fail", FAIL, |x| x.2),
            ("info", INFO, |x| x.3),
        ];
        let mut legend = Vec::new();
        for (name, color, value) in series {
            chart
                .draw_series(LineSeries::new(
                    r.iter().map(|x| (x.0 + 0.5, value(x) as f64)),
                    color.stroke_width(2),
                ))
                .map_err(|e| err("rate")(e.to_string()))?;
            legend.push((name.to_string(), Swatch::Line(color)));
        }
        drop(chart);
        finish(&f, &legend, "rate")?;
    }
    Ok(s)
}

/// What became of each add of a set history, the rows of [`set_outcomes`], bottom up.
const SET_ROWS: [(&str, RGBColor); 8] = [
    ("acknowledged", OK),
    ("failed, never read", RGBColor(150, 150, 150)),
    ("unknown, never read", INFO),
    ("unknown, then read", RGBColor(70, 130, 200)),
    ("stale", RGBColor(160, 90, 200)),
    ("lost", FAIL),
    ("duplicated", RGBColor(200, 0, 120)),
    ("unexpected", RGBColor(120, 0, 0)),
];

/// Jepsen's set plot: every add at the time it was invoked, in the row of what became
/// of it (the set checker's verdict on its element), faults shaded; elements read but
/// never added sit in the top row at the first read that held them. `None` unless the
/// history is a set history.
pub fn set_outcomes(run: &Run) -> Option<Result<String, ReportError>> {
    use std::collections::{HashMap, HashSet};
    let ops = run.ops();
    let report = run.set_report()?;
    let text = checker::set::text;
    let key = |o: &checker::Operation| o.key.clone().unwrap_or_default();
    // Per key: what each named element came to, and every element any read held.
    let mut named: HashMap<(String, String), usize> = HashMap::new();
    for s in &report.sets {
        for (row, fates) in [
            (4, &s.stale),
            (5, &s.lost),
            (6, &s.duplicated),
            (7, &s.unexpected),
        ] {
            for f in fates {
                named.insert((s.key.clone(), f.element.clone()), row);
            }
        }
    }
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for o in ops
        .iter()
        .filter(|o| o.func() == Some(checker::Func::ReadAll))
    {
        if let Some(serde_json::Value::Array(a)) = &o.output {
            seen.extend(a.iter().map(|e| (key(o), text(e))));
        }
    }
    let mut points: Vec<(f64, usize)> = Vec::new();
    let mut added: HashSet<(String, String)> = HashSet::new();
    for o in ops.iter().filter(|o| o.func() == Some(checker::Func::Add)) {
        let id = (key(o), text(&o.input));
        let was_seen = seen.contains(&id);
        let row = named
            .get(&id)
            .copied()
            .unwrap_or(match (o.outcome, was_seen) {
                (Outcome::Ok, _) => 0,
                (Outcome::Fail, _) => 1,
                (Outcome::Info, false) => 2,
                (Outcome::Info, true) => 3,
            });
        points.push((o.call as f64 / 1e9, row));
        added.insert(id);
    }
    for s in &report.sets {
        for f in s.unexpected.iter().filter(|f| f.add.is_none()) {
            points.push((ops[f.read].call as f64 / 1e9, 7));
        }
    }
    let counts: Vec<usize> = (0..SET_ROWS.len())
        .map(|row| points.iter().filter(|p| p.1 == row).count())
        .collect();
    // Thin the acknowledged (by far the most) evenly; every other point is drawn.
    let n = counts[0];
    let keep_every = n.div_ceil(MAX_POINTS).max(1);
    let mut i = 0;
    points.retain(|p| {
        i += (p.1 == 0) as usize;
        p.1 != 0 || i % keep_every == 0
    });
    let what = "set-outcomes";
    let mut s = String::new();
    let drawn = (|| -> Result<(), ReportError> {
        let f = frame(&mut s, "what became of each add (set checker)");
        let top = SET_ROWS.len() as f64 + 1.5;
        let mut chart = chart_builder(&f, 130)
            .build_cartesian_2d(0f64..run.end.max(1.0), -0.5f64..top)
            .map_err(|e| err(what)(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("time the add was invoked (s)")
            .y_labels(SET_ROWS.len() * 2 + 4)
            .y_label_formatter(&|y| {
                let r = y.round();
                match SET_ROWS.get(r as usize) {
                    Some((name, _)) if (y - r).abs() < 1e-6 && r >= 0.0 => name.to_string(),
                    _ => String::new(),
                }
            })
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(what)(e.to_string()))?;
        shade(&mut chart, &f.root, &run.faults, (-0.5, top)).map_err(err(what))?;
        let mut legend = Vec::new();
        for (row, (name, color)) in SET_ROWS.iter().enumerate() {
            let count = counts[row];
            if count == 0 {
                continue;
            }
            let c = *color;
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.1 == row)
                        .map(|&(x, r)| Circle::new((x, r as f64), 2, c.mix(0.7).filled())),
                )
                .map_err(|e| err(what)(e.to_string()))?;
            legend.push((format!("{name}: {count}"), Swatch::Circle(c)));
        }
        drop(chart);
        finish(&f, &legend, what)
    })();
    Some(drawn.map(|()| s))
}

/// Every plot, with its file name.
pub fn all(run: &Run) -> Result<Vec<(&'static str, String)>, ReportError> {
    let mut plots = vec![
        ("latency-raw.svg", latency_raw(run)?),
        ("latency-quantiles.svg", latency_quantiles(run)?),
        ("rate.svg", rate(run)?),
    ];
    if let Some(set) = set_outcomes(run) {
        plots.insert(0, ("set-outcomes.svg", set?));
    }
    Ok(plots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::HistoryBuilder;
    use serde_json::json;

    fn fault(start: f64, end: f64, label: &str) -> Fault {
        Fault {
            kind: crate::data::Happened::Fault(checker::record::FaultKind::Kill),
            start,
            end,
            label: label.into(),
        }
    }

    #[test]
    fn fault_labels_take_rows_stay_inside_and_the_overflow_is_left_out() {
        // 100 px a second over 800 px: "pause n1 n2" is 11 characters, about 68 px.
        let x_of = |t: f64| 50.0 + t * 100.0;
        let faults: Vec<Fault> = (0..6)
            .map(|i| fault(i as f64 * 0.1, 5.0, "pause n1 n2"))
            .collect();
        let rows = label_rows(&faults, x_of, 850.0);
        let row = |r: &Option<(usize, f64)>| r.map(|(row, _)| row);
        assert_eq!(
            rows[..4].iter().map(row).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3)]
        );
        assert_eq!(rows[4..], [None, None]);
        // Far enough apart, one row does.
        let apart = [fault(0.0, 0.1, "kill n1"), fault(5.0, 5.1, "kill n2")];
        assert_eq!(
            label_rows(&apart, x_of, 850.0),
            [Some((0, 50.0)), Some((0, 550.0))]
        );
        // A label at the right edge ends there instead of being cut off.
        let late = [fault(7.9, 8.0, "power loss n1,n2,n3")];
        let (_, x) = label_rows(&late, x_of, 850.0)[0].unwrap();
        assert!(x + 19.0 * CHAR_W <= 850.0 && x < x_of(7.9), "{x}");
    }

    /// `(x, y, text)` of every `<text>` of an SVG plotters wrote.
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        let attr = |tag: &str, name: &str| -> f64 {
            let tag = format!(" {tag}");
            let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            tag[at..].split('"').next().unwrap().parse().unwrap()
        };
        svg.split("<text ")
            .skip(1)
            .map(|t| {
                let (tag, rest) = t.split_once('>').unwrap();
                let text = rest.split("</text>").next().unwrap().trim().to_string();
                (attr(tag, "x"), attr(tag, "y"), text)
            })
            .collect()
    }

    /// Issue 31: fault labels sit above the data and inside the picture, the legend beside
    /// the data, not over it.
    #[test]
    fn labels_and_legend_keep_clear_of_the_data() {
        let mut b = HistoryBuilder::new();
        for i in 0..1000u64 {
            let at = i * 10_000_000;
            b.invoke(0, "read", None, json!(null), at)
                .ok(0, "read", json!(null), at + 1_000_000);
        }
        let late = "partition isolate [1] | [2, 3] (black-hole)";
        let run = Run {
            test: None,
            results: None,
            faults: vec![fault(2.0, 3.0, "kill n1"), fault(9.6, 9.9, late)],
            end: 10.0,
            history: b.build(),
            files: Vec::new(),
            in_store: false,
            set: Default::default(),
        };
        let svg = rate(&run).unwrap();
        let points: Vec<(f64, f64)> = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#2E8B57\""))
            .flat_map(|l| {
                let pts = l
                    .split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                pts.split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // The data's line, not the legend's two-point sample.
        let data: Vec<&(f64, f64)> = points.iter().filter(|p| p.0 < 700.0).collect();
        assert!(data.len() > 5, "{svg}");
        let top = data.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let right = data.iter().map(|p| p.0).fold(0.0, f64::max);
        let texts = texts(&svg);
        for label in ["kill n1", late] {
            let (x, y, _) = texts.iter().find(|t| t.2 == label).expect(label);
            assert!(y + 10.0 <= top, "{label} at y {y}, data from {top}");
            let width = label.len() as f64 * CHAR_W;
            assert!(
                x + width <= f64::from(SIZE.0 - LEGEND_W),
                "{label} at x {x}"
            );
        }
        let (x, _, _) = texts.iter().find(|t| t.2 == "ok").expect("legend");
        assert!(*x > right, "legend at {x}, data to {right}");
    }

    #[test]
    fn quantile_lines_break_where_no_operation_completed() {
        // ok operations in 0-2 s and 6-8 s, nothing in between (a pause).
        let mut b = HistoryBuilder::new();
        let mut t = 0u64;
        for i in 0..400u64 {
            let at = if i < 200 {
                i * 10_000_000
            } else {
                6_000_000_000 + (i - 200) * 10_000_000
            };
            t = t.max(at);
            b.invoke(0, "read", None, json!(null), at)
                .ok(0, "read", json!(null), at + 1_000_000);
        }
        let history = b.build();
        let run = Run {
            test: None,
            results: None,
            faults: Vec::new(),
            end: (t as f64 + 2e6) / 1e9,
            history,
            files: Vec::new(),
            in_store: false,
            set: Default::default(),
        };
        let svg = latency_quantiles(&run).unwrap();
        // The p50 line is two pieces, plus its legend sample: three.
        let p50 = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#2864C8\""))
            .count();
        assert_eq!(p50, 3, "{svg}");
    }

    #[test]
    fn the_set_plot_puts_each_add_in_the_row_of_its_fate() {
        let mut b = HistoryBuilder::new();
        for (p, e, ok) in [(0, "1", true), (1, "2", true), (2, "3", false)] {
            b.invoke(p, "add", Some("s"), json!(e), 0);
            if ok {
                b.ok(p, "add", json!(e), 1_000_000);
            } else {
                b.info(p, "add", json!(null), 1_000_000);
            }
        }
        // 2 was acknowledged and is gone; 3 (unknown) shows up; 9 was never added.
        b.invoke(3, "read-all", Some("s"), json!(null), 2_000_000)
            .ok(3, "read-all", json!(["1", "3", "9"]), 3_000_000);
        let run = Run {
            test: None,
            results: None,
            faults: vec![fault(0.0, 0.002, "kill n1")],
            end: 0.004,
            history: b.build(),
            files: Vec::new(),
            in_store: false,
            set: Default::default(),
        };
        let svg = set_outcomes(&run).expect("a set history").unwrap();
        for label in [
            "acknowledged: 1",
            "lost: 1",
            "unknown, then read: 1",
            "unexpected: 1",
        ] {
            assert!(svg.contains(label), "{label} in\n{svg}");
        }
        assert!(!svg.contains("stale:"), "no stale element");
        // The page names the lost element, when it was known in, and the fault before.
        let page = crate::html::render(&run, &[]);
        assert!(page.contains("set s: 1 lost"), "{page}");
        assert!(page.contains("<code>&quot;2&quot;</code>") || page.contains("<code>\"2\"</code>"));
        assert!(
            page.contains("kill n1 at 0.000 s"),
            "the fault it vanished after"
        );
        // Not a set history: no plot.
        let mut b = HistoryBuilder::new();
        b.invoke(0, "read", None, json!(null), 0)
            .ok(0, "read", json!(null), 1);
        let run = Run {
            history: b.build(),
            set: Default::default(),
            ..run
        };
        assert!(set_outcomes(&run).is_none());
    }
}
