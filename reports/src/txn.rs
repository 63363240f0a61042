//! The transaction checker's findings in report.html: each anomaly in words, edge by
//! edge, and its cycle drawn as a small graph (transactions on a circle, each dependency
//! an arrow named ww, wr, rw, process or realtime).

use std::fmt::Write as _;

use checker::txn::graph::Dependency;
use checker::txn::{Anomaly, TxnReport};

use crate::escape::esc;

/// The colour of a dependency's arrow: data dependencies in warm tones, orders in grey.
fn colour(d: Dependency) -> &'static str {
    match d {
        Dependency::Ww => "#9b1c1c",
        Dependency::Wr => "#1d5fa8",
        Dependency::Rw => "#c26a00",
        Dependency::Process => "#555",
        Dependency::Realtime => "#888",
    }
}

/// Anomalies of one kind shown in the report.
const EXAMPLES: usize = 3;

/// The cycle of `a` as an SVG: its operations on a circle, arrows between them.
pub fn cycle_svg(a: &Anomaly) -> Option<String> {
    let n = a.ops.len();
    if n < 2 || a.edges.len() != n {
        return None;
    }
    let r = 40.0 + 14.0 * n as f64;
    let (w, h) = (2.0 * r + 120.0, 2.0 * r + 60.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let at = |i: usize| {
        let t = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (cx + r * t.cos(), cy + r * t.sin())
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"cycle\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" aria-label=\"{} cycle\"><defs>",
        esc(a.kind.name())
    );
    for d in [
        Dependency::Ww,
        Dependency::Wr,
        Dependency::Rw,
        Dependency::Process,
        Dependency::Realtime,
    ] {
        let _ = write!(
            s,
            "<marker id=\"arrow-{0}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"{1}\"/></marker>",
            d.name(),
            colour(d)
        );
    }
    s.push_str("</defs>");
    const NODE: f64 = 22.0;
    for (i, d) in a.edges.iter().enumerate() {
        let ((x1, y1), (x2, y2)) = (at(i), at((i + 1) % n));
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // A slight bend outward, so two-node cycles show both arrows.
        let (mx, my) = ((x1 + x2) / 2.0 - uy * 18.0, (y1 + y2) / 2.0 + ux * 18.0);
        let (sx, sy) = (x1 + ux * NODE, y1 + uy * NODE);
        let (ex, ey) = (x2 - ux * NODE, y2 - uy * NODE);
        let _ = write!(
            s,
            "<path d=\"M{sx:.1},{sy:.1}Q{mx:.1},{my:.1} {ex:.1},{ey:.1}\" fill=\"none\" stroke=\"{c}\" \
             stroke-width=\"2\" marker-end=\"url(#arrow-{name})\"/>\
             <text x=\"{mx:.1}\" y=\"{my:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"{c}\" \
             dy=\"-3\">{name}</text>",
            c = colour(*d),
            name = d.name()
        );
    }
    for (i, op) in a.ops.iter().enumerate() {
        let (x, y) = at(i);
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE}\" fill=\"#fff\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{y:.1}\" dy=\"4\" font-size=\"12\" text-anchor=\"middle\">T{op}</text>"
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The section for a transaction history's anomalies (nothing when there are none).
pub fn findings(report: &TxnReport, out: &mut String) {
    if report.anomalies.is_empty() {
        return;
    }
    let models = |ms: &[checker::txn::ConsistencyModel]| {
        ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    };
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    let _ = write!(
        out,
        "<section id=\"txn\"><h2>Why it is not {}</h2><p>Found {}. They break {}{}. Up to \
         three of each kind are shown, worst first; results.json has more.</p>",
        esc(report.model.name()),
        esc(&counts.join(", ")),
        esc(&models(&report.weakest_broken)),
        if report.strongest_satisfied.is_empty() {
            String::new()
        } else {
            format!(
                "; the history still satisfies {}",
                esc(&models(&report.strongest_satisfied))
            )
        }
    );
    let mut shown: std::collections::BTreeMap<checker::txn::AnomalyKind, usize> =
        Default::default();
    for (i, a) in report.anomalies.iter().enumerate() {
        // Three of each kind: the report is read, the rest are in results.json.
        let n = shown.entry(a.kind).or_default();
        *n += 1;
        if *n > EXAMPLES {
            continue;
        }
        let names: Vec<String> = a.ops.iter().map(|o| format!("T{o}")).collect();
        let lines: Vec<String> = a.lines.iter().map(usize::to_string).collect();
        let _ = write!(
            out,
            "<div class=\"cx\"><h3>{}: {}</h3>",
            esc(a.kind.name()),
            esc(&names.join(", "))
        );
        if let Some(svg) = cycle_svg(a) {
            out.push_str(&svg);
        }
        out.push_str("<ol>");
        for l in &a.explanation {
            let _ = write!(out, "<li>{}</li>", esc(l));
        }
        let _ = write!(
            out,
            "</ol><div class=\"note\">history.jsonl line{} {}{}</div></div>",
            if lines.len() == 1 { "" } else { "s" },
            esc(&lines.join(", ")),
            if i == 0 {
                " · the worst found: marked on the timeline"
            } else {
                ""
            }
        );
    }
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::txn::AnomalyKind;

    #[test]
    fn a_cycle_draws_one_arrow_per_dependency() {
        let a = Anomaly {
            kind: AnomalyKind::GSingle,
            ops: vec![3, 9],
            lines: vec![4, 10],
            explanation: vec!["x".into(), "y".into()],
            edges: vec![Dependency::Rw, Dependency::Wr],
        };
        let svg = cycle_svg(&a).unwrap();
        assert_eq!(svg.matches("<path d=\"M").count(), 2 + 5, "{svg}");
        assert!(svg.contains(">T3<") && svg.contains(">T9<"));
        assert!(svg.contains("url(#arrow-rw)") && svg.contains("url(#arrow-wr)"));
        let not_a_cycle = Anomaly { edges: vec![], ..a };
        assert!(cycle_svg(&not_a_cycle).is_none());
    }
}
