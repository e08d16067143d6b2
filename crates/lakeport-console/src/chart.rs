//! The dataset page's chart: one bar per batch, oldest on the left, its height the rows
//! read (ingested plus rejected, on a square-root scale so a small batch stays visible),
//! the rejected part drawn on top, the colour its status. Rendered here as inline SVG;
//! every bar has a `<title>` and the chart a text summary for screen readers.

use std::fmt::Write;

/// One batch of the chart.
pub struct Bar {
    pub id: String,
    pub status: String,
    pub created: Option<i64>,
    pub ingested: u64,
    pub rejected: u64,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 140.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

fn class(status: &str) -> &'static str {
    match status {
        "success" => "ok",
        "failed" | "aborted" | "abandoned" | "stalled" => "bad",
        "inactive" | "deleted" | "archived" | "retained" => "off",
        _ => "run",
    }
}

/// Returns the SVG text; `bars` are newest first, as the listing gives them.
pub fn svg(bars: &[Bar], base: &str) -> String {
    let mut out = String::new();
    // At least 30 slots: a few batches make narrow bars, not slabs.
    let n = bars.len().max(30);
    let slot = WIDTH / n as f64;
    let bar_width = (slot * 0.8).max(1.0);
    let max = bars
        .iter()
        .map(|b| ((b.ingested + b.rejected) as f64).sqrt())
        .fold(1.0_f64, f64::max);
    let plot = HEIGHT - TOP - BOTTOM;
    let (ok, bad) = bars
        .iter()
        .fold((0, 0), |(ok, bad), b| match class(&b.status) {
            "ok" => (ok + 1, bad),
            "bad" => (ok, bad + 1),
            _ => (ok, bad),
        });
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" preserveAspectRatio="none"><title id="chart-title">Last {} batches, oldest left: {ok} succeeded, {bad} failed or aborted, {} other</title>"#,
        bars.len(),
        bars.len() - ok - bad
    );
    let _ = write!(
        out,
        r#"<line class="axis" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}"/>"#,
        y = HEIGHT - BOTTOM
    );
    for (i, bar) in bars.iter().rev().enumerate() {
        let x = i as f64 * slot + (slot - bar_width) / 2.0;
        let total = bar.ingested + bar.rejected;
        let full = if total == 0 {
            3.0
        } else {
            ((total as f64).sqrt() / max * plot).max(3.0)
        };
        let rejected = if total == 0 {
            0.0
        } else {
            full * bar.rejected as f64 / total as f64
        };
        let y = HEIGHT - BOTTOM - full;
        let title = escape(&format!(
            "{} · {} · {} ingested, {} rejected · {}",
            bar.id,
            bar.status,
            bar.ingested,
            bar.rejected,
            crate::html::time(bar.created)
        ));
        let _ = write!(
            out,
            r#"<a href="{base}/batches/{id}"><g><title>{title}</title><rect class="{class}" x="{x:.1}" y="{y:.1}" width="{bar_width:.1}" height="{full:.1}"/>"#,
            id = escape(&bar.id),
            class = class(&bar.status),
        );
        if rejected > 0.0 {
            let _ = write!(
                out,
                r#"<rect class="rejected" x="{x:.1}" y="{y:.1}" width="{bar_width:.1}" height="{rejected:.1}"/>"#
            );
        }
        out.push_str("</g></a>");
    }
    if let (Some(first), Some(last)) = (bars.last(), bars.first()) {
        let _ = write!(
            out,
            r#"<text x="0" y="{y}" class="label">{}</text><text x="{WIDTH}" y="{y}" class="label end">{}</text>"#,
            escape(&crate::html::time(first.created)),
            escape(&crate::html::time(last.created)),
            y = HEIGHT - 4.0
        );
    }
    out.push_str("</svg>");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_is_one_bar_with_its_status() {
        let bars = vec![
            Bar {
                id: "new".into(),
                status: "failed".into(),
                created: Some(2000),
                ingested: 0,
                rejected: 10,
            },
            Bar {
                id: "old<".into(),
                status: "success".into(),
                created: Some(1000),
                ingested: 90,
                rejected: 10,
            },
        ];
        let svg = svg(&bars, "/console");
        assert_eq!(svg.matches("<a href=").count(), 2);
        assert!(svg.contains(r#"class="ok""#) && svg.contains(r#"class="bad""#));
        assert!(svg.contains("old&lt;"), "ids are escaped");
        // Oldest first: the success bar comes before the failed one.
        assert!(svg.find("/batches/old").unwrap() < svg.find("/batches/new").unwrap());
        assert!(svg.contains("1 succeeded, 1 failed"));
    }
}
