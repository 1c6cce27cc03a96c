//! The dashboard's two plots as inline SVG strings: a line chart of a series over time and a
//! histogram of live shares drawn over the reference's. Written by hand: each is a few dozen
//! lines of coordinates, and a chart library would mean shipping a script to the page.

use std::fmt::Write;

use super::escape;

const W: f64 = 300.0;
const H: f64 = 110.0;
const PAD: f64 = 24.0;

/// A line chart of `(unix seconds, value)` points, with its title and largest value.
pub(super) fn line_chart(title: &str, points: &[(f64, f64)]) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\"><title>{}</title>\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\" stroke=\"#e5e7eb\"/>\
         <text x=\"6\" y=\"13\">{}</text>",
        escape(title),
        escape(title)
    );
    if points.len() < 2 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\">collecting (a point every 2 s)</text></svg>",
            PAD,
            H / 2.0
        );
        return svg;
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let x = |t: f64| PAD + (t - t0) / (t1 - t0).max(1.0) * (W - PAD - 6.0);
    let y = |v: f64| H - 14.0 - v / top * (H - 34.0);
    let path: Vec<String> = points
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"{}\" y=\"13\" text-anchor=\"end\">max {}</text>\
         <text x=\"{PAD}\" y=\"{}\">&minus;{:.0} s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">now</text></svg>",
        path.join(" "),
        W - 6.0,
        format_value(max),
        H - 3.0,
        t1 - t0,
        W - 6.0,
        H - 3.0,
    );
    svg
}

/// Bars of `live` shares (blue) over outlined `reference` shares, one per bin; `labels` are
/// the interior edges (numeric, one fewer than bins) or the category names.
pub(super) fn histogram(labels: &[String], reference: &[f64], live: &[f64]) -> String {
    let (w, h) = (240.0, 90.0);
    let n = reference.len().max(1) as f64;
    let top = reference
        .iter()
        .chain(live)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let slot = w / n;
    let mut svg = format!(
        "<svg class=\"histogram\" role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    for (i, (&r, &l)) in reference.iter().zip(live).enumerate() {
        let x = i as f64 * slot;
        let bar = |share: f64| share / top * (h - 16.0);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#93c5fd\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#374151\"/>",
            x + 2.0,
            h - 12.0 - bar(l),
            slot - 4.0,
            bar(l),
            x + 1.0,
            h - 12.0 - bar(r),
            slot - 2.0,
            bar(r),
        );
    }
    let short = |s: &String| match s.parse::<f64>() {
        Ok(v) => format_value(v),
        Err(_) => escape(s),
    };
    let first = labels.first().map(short).unwrap_or_default();
    let last = labels.last().map(short).unwrap_or_default();
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\">{first}</text><text x=\"{w}\" y=\"{}\" text-anchor=\"end\">{last}</text></svg>",
        h - 1.0,
        h - 1.0
    );
    svg
}

/// A number in four significant digits or so, for an axis.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 || a == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}
