//! `GET /dashboard`: one page, rendered by the server as HTML with inline SVG (no script, no
//! CDN, nothing fetched): per model version, traffic, failures and latency over the last ten
//! minutes ([`history`]), and for a monitored version each feature's live histogram over its
//! reference with the drift score. The page reloads itself every ten seconds.

pub(crate) mod history;
mod svg;

use std::fmt::Write;

use crate::monitor::{ColumnReport, Status};
use crate::repository::Repository;
use history::History;

/// The page.
pub(crate) fn render(repository: &Repository, history: &History) -> String {
    let mut body = String::new();
    let versions = repository.ready_versions();
    if versions.is_empty() {
        body.push_str("<p class=\"empty\">No model is loaded.</p>");
    }
    for v in &versions {
        let points = history.points(&v.model_name, v.version);
        let times: Vec<f64> = points.iter().map(|p| p.at as f64).collect();
        let series = |f: fn(&history::Point) -> Option<f64>| -> Vec<(f64, f64)> {
            times
                .iter()
                .zip(&points)
                .filter_map(|(t, p)| Some((*t, f(p)?)))
                .collect()
        };
        let s = v.stats.snapshot();
        let _ = write!(
            body,
            "<section class=\"model\"><h2>{} <span class=\"version\">version {} &middot; {}</span></h2>\
             <p class=\"totals\">{} answered, {} failed since load</p><div class=\"charts\">{}{}{}</div>",
            escape(&v.model_name),
            v.version,
            escape(v.runtime),
            s.success.count,
            s.fail.count,
            svg::line_chart("Requests per second", &series(|p| Some(p.requests_per_s))),
            svg::line_chart("Failures per second", &series(|p| Some(p.failures_per_s))),
            svg::line_chart("Mean latency, ms", &series(|p| p.mean_latency_ms)),
        );
        if let Some(monitor) = &v.monitor {
            let report = monitor.report();
            let _ = write!(
                body,
                "<h3>Data drift <span class=\"note\">against {} reference rows ({}); window of {} rows; alert above PSI {}</span></h3>",
                report.reference_rows,
                escape(&report.reference_source),
                report.settings.window,
                report.settings.psi_alert
            );
            for (title, columns) in [("Inputs", &report.inputs), ("Outputs", &report.outputs)] {
                let _ = write!(body, "<h4>{title}</h4><div class=\"features\">");
                for c in columns.iter() {
                    body.push_str(&feature(c));
                }
                body.push_str("</div>");
            }
        }
        body.push_str("</section>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>ferroserve dashboard</title>\
         <style>{STYLE}</style></head><body><header><h1>ferroserve</h1>\
         <span>version {}</span> <a href=\"/metrics\">metrics</a></header><main>{body}</main></body></html>",
        env!("CARGO_PKG_VERSION")
    )
}

/// One feature's card: its histogram, live over reference, and its scores.
fn feature(c: &ColumnReport) -> String {
    let status = match c.status {
        Status::Collecting => "collecting",
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Alert => "alert",
    };
    let score = |name: &str, v: Option<f64>| match v {
        Some(v) => format!("{name} {v:.3}"),
        None => format!("{name} &ndash;"),
    };
    format!(
        "<figure class=\"feature {status}\"><figcaption><b>{}</b> <span class=\"status\">{status}</span><br>{} &middot; {} &middot; {} values, {} missing, {} out of range</figcaption>{}</figure>",
        escape(&c.name),
        score("PSI", c.psi),
        if c.kind == "numeric" {
            score("KS", c.ks)
        } else {
            score("&chi;&sup2;", c.chi_square)
        },
        c.count,
        c.missing,
        c.out_of_range,
        svg::histogram(&c.bins.labels, &c.bins.reference, &c.bins.live),
    )
}

/// `text` safe inside HTML and SVG text and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
header{background:#1f2937;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:baseline}\
header h1{font-size:18px;margin:0}header a{color:#93c5fd}main{padding:10px 20px}\
section.model{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:10px 16px;margin:12px 0}\
h2{font-size:16px;margin:4px 0}.version,.note{font-weight:normal;color:#6b7280;font-size:13px}\
h3{font-size:15px;margin:14px 0 4px}h4{font-size:13px;margin:10px 0 4px;color:#374151}\
.charts,.features{display:flex;flex-wrap:wrap;gap:12px}.totals{color:#6b7280;margin:2px 0 8px}\
figure.feature{margin:0;padding:6px;border:1px solid #e5e7eb;border-radius:4px;width:250px}\
figcaption{font-size:12px;color:#374151;margin-bottom:4px}.status{font-size:11px;padding:1px 5px;border-radius:3px;background:#e5e7eb}\
.ok .status{background:#dcfce7}.warn .status{background:#fef9c3}.alert .status{background:#fee2e2;color:#991b1b}\
.alert{border-color:#fca5a5}svg text{font:10px system-ui,sans-serif;fill:#6b7280}";
