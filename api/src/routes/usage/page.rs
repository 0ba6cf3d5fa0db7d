//! The usage page's HTML: a bar chart of daily requests (errors stacked in
//! red) and a table of totals per kind. Server-rendered, no scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use kiln_infra::usage::UsageRow;

/// Days the page shows, ending today.
pub const DAYS: i64 = 30;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 240.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn human_bytes(bytes: i64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

pub fn render(partner: &str, first_day: DateTime<Utc>, rows: &[UsageRow]) -> String {
    // Per day: (hits, errors).
    let mut per_day = vec![(0i64, 0i64); DAYS as usize];
    // Per kind: (hits, bytes, errors).
    let mut per_kind: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for row in rows {
        let index = (row.period - first_day).num_days();
        if let Some(day) = usize::try_from(index).ok().and_then(|i| per_day.get_mut(i)) {
            day.0 += row.hits;
            day.1 += row.errors;
        }
        let kind = per_kind.entry(row.kind.as_str()).or_default();
        kind.0 += row.hits;
        kind.1 += row.bytes;
        kind.2 += row.errors;
    }
    let peak = per_day.iter().map(|d| d.0).max().unwrap_or(0).max(1) as f64;
    let slot = WIDTH / DAYS as f64;
    let mut bars = String::new();
    for (i, (hits, errors)) in per_day.iter().enumerate() {
        let day = (first_day + TimeDelta::days(i as i64)).format("%Y-%m-%d");
        let x = i as f64 * slot + 2.0;
        let height = *hits as f64 / peak * (HEIGHT - 20.0);
        let error_height = *errors as f64 / peak * (HEIGHT - 20.0);
        let _ = write!(
            bars,
            r#"<g class="day" data-day="{day}" data-hits="{hits}" data-errors="{errors}"><title>{day}: {hits} requests, {errors} errors</title><rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{height:.1}"/><rect class="errors" x="{x:.1}" y="{ey:.1}" width="{w:.1}" height="{error_height:.1}"/></g>"#,
            y = HEIGHT - height,
            ey = HEIGHT - error_height,
            w = slot - 4.0,
        );
    }
    let mut table = String::new();
    for (kind, (hits, bytes, errors)) in &per_kind {
        let _ = write!(
            table,
            "<tr><td>{}</td><td class=\"n\">{hits}</td><td class=\"n\">{}</td><td class=\"n\">{errors}</td></tr>",
            escape(kind),
            human_bytes(*bytes)
        );
    }
    if per_kind.is_empty() {
        table.push_str(r#"<tr><td colspan="4">No requests in these days.</td></tr>"#);
    }
    let total: i64 = per_day.iter().map(|d| d.0).sum();
    let partner = escape(partner);
    let first = first_day.format("%Y-%m-%d");
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Usage — {partner}</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #1d2430; }}
h1 {{ font-size: 1.4rem; }} .muted {{ color: #667085; }}
svg {{ width: 100%; height: auto; background: #f7f8fa; border-radius: 6px; }}
.bar {{ fill: #3d6df2; }} .errors {{ fill: #e5484d; }}
table {{ border-collapse: collapse; margin-top: 1.5rem; min-width: 50%; }}
td, th {{ padding: .35rem .8rem; border-bottom: 1px solid #e4e7ec; text-align: left; }}
.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head>
<body>
<h1>Usage — {partner}</h1>
<p class="muted">Requests per day (UTC) since {first}; errors in red. {total} requests in all.</p>
<svg id="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Requests per day">{bars}</svg>
<table id="kinds"><thead><tr><th>Kind</th><th class="n">Requests</th><th class="n">Bytes</th><th class="n">Errors</th></tr></thead>
<tbody>{table}</tbody></table>
</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_infra::usage::parse_instant;

    #[test]
    fn each_day_gets_a_bar_and_input_is_escaped() {
        let first = parse_instant("2026-11-01").unwrap();
        let row = UsageRow {
            partner: "p".into(),
            kind: "<script>".into(),
            period: parse_instant("2026-11-03").unwrap(),
            hits: 7,
            bytes: 2_500_000,
            errors: 2,
            avg_ms: 1,
        };
        let html = render("acme&co", first, &[row]);
        assert_eq!(html.matches(r#"class="bar""#).count(), DAYS as usize);
        assert!(html.contains(r#"data-day="2026-11-03" data-hits="7" data-errors="2""#));
        assert!(html.contains("acme&amp;co"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("2.5 MB"));
    }
}
