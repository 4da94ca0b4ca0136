//! The cold-start chart, hand-written SVG: the latency CDF of each phase (x: latency on a log
//! scale, y: 0–100 % of pods), one colour per phase, a solid line for the first endpoint and a
//! dashed one for the second (`--vs`).

use std::fmt::Write;

use super::report::{PHASES, Sample, sorted};

const W: f64 = 900.0;
const H: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#444444"];
const DASHES: [&str; 3] = ["", "7,4", "2,3"];

/// The chart for `series` (endpoint name, its samples); at most three endpoints are told apart.
pub(crate) fn cdf(series: &[(&str, &[Sample])]) -> String {
    // The x range: whole decades around every value.
    let all = series.iter().flat_map(|(_, s)| s.iter()).flat_map(|s| PHASES.iter().map(move |(_, f)| f(s)));
    let (lo, hi) = all.filter(|v| *v > 0.0).fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (1.0, 10.0) };
    let d0 = lo.log10().floor();
    let d1 = hi.log10().ceil().max(d0 + 1.0);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |v: f64| LEFT + (v.max(lo).log10() - d0) / (d1 - d0) * pw;
    let y = |frac: f64| TOP + (1.0 - frac) * ph;

    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#);
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Cold start: latency CDF per phase</text>"#, LEFT + pw / 2.0);
    // Grid: decades (labelled) and 2×, 5× (faint); 0–100 % every 10 %.
    let mut d = d0;
    while d <= d1 {
        for (m, major) in [(1.0, true), (2.0, false), (5.0, false)] {
            let v = m * 10f64.powf(d);
            if v.log10() > d1 + 1e-9 {
                continue;
            }
            let xv = LEFT + (v.log10() - d0) / (d1 - d0) * pw;
            let stroke = if major { "#bbb" } else { "#eee" };
            let _ = writeln!(s, r#"<line x1="{xv:.1}" y1="{TOP}" x2="{xv:.1}" y2="{:.1}" stroke="{stroke}"/>"#, TOP + ph);
            if major {
                let _ = writeln!(s, r#"<text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, TOP + ph + 16.0, label(v));
            }
        }
        d += 1.0;
    }
    for p in (0..=10).map(|i| f64::from(i) / 10.0) {
        let yv = y(p);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{yv:.1}" x2="{:.1}" y2="{yv:.1}" stroke="#eee"/>"##, LEFT + pw);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"#, LEFT - 6.0, yv + 4.0, p * 100.0);
    }
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">latency (log scale)</text>"#, LEFT + pw / 2.0, H - 18.0);
    let _ = writeln!(s, r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">pods (%)</text>"#, TOP + ph / 2.0);

    // The curves: a step per sample.
    for (e, (_, samples)) in series.iter().enumerate() {
        for (p, (_, f)) in PHASES.iter().enumerate() {
            let v = sorted(samples, *f);
            if v.is_empty() {
                continue;
            }
            let n = v.len() as f64;
            let mut pts = format!("{:.1},{:.1}", x(v[0]), y(0.0));
            for (i, val) in v.iter().enumerate() {
                let _ = write!(pts, " {:.1},{:.1} {:.1},{:.1}", x(*val), y(i as f64 / n), x(*val), y((i + 1) as f64 / n));
            }
            let dash = DASHES[e.min(DASHES.len() - 1)];
            let dash = if dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{dash}""#) };
            let _ = writeln!(s, r#"<polyline fill="none" stroke="{}" stroke-width="1.6"{dash} points="{pts}"/>"#, COLOURS[p]);
        }
    }

    // Legend: phases by colour, endpoints by dash.
    let lx = LEFT + pw + 15.0;
    let mut ly = TOP + 10.0;
    for (p, (name, _)) in PHASES.iter().enumerate() {
        let _ = writeln!(s, r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/>"#, lx + 24.0, COLOURS[p]);
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 30.0, ly + 4.0, esc(name));
        ly += 18.0;
    }
    ly += 10.0;
    for (e, (name, _)) in series.iter().enumerate() {
        let dash = DASHES[e.min(DASHES.len() - 1)];
        let _ = writeln!(s, r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="black" stroke-width="1.6" stroke-dasharray="{dash}"/>"#, lx + 24.0);
        let short = name.rsplit('/').next().unwrap_or(name);
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 30.0, ly + 4.0, esc(short));
        ly += 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// µs as a short label: `10µs`, `1ms`, `2s`.
fn label(us: f64) -> String {
    if us >= 1e6 {
        format!("{}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{}ms", us / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_per_phase_and_endpoint() {
        let a: Vec<Sample> = (1..=20)
            .map(|i| {
                let v = f64::from(i) * 100.0;
                Sample { run_pod_sandbox: v, create_container: v, start_container: v, first_log_line: v, total: 4.0 * v, teardown: v }
            })
            .collect();
        let svg = cdf(&[("unix:///a.sock", &a), ("unix:///b.sock", &a)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 10);
        assert!(svg.contains("stroke-dasharray=\"7,4\" points="));
        assert!(svg.contains(">1ms<"));
    }
}
