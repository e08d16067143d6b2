//! The page frame and the small pieces every page uses: times, sizes, status badges,
//! paging links and the error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::session::Session;

/// What the frame needs to know about where it is.
pub struct Frame<'a> {
    pub base: &'a str,
    pub session: Option<&'a Session>,
    pub title: &'a str,
    /// A `<meta http-equiv=refresh>` for browsers without JS while something runs.
    pub refresh_secs: Option<u32>,
}

/// Wraps a page body in the document.
pub fn page(frame: &Frame<'_>, body: &Markup) -> Markup {
    let base = frame.base;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (frame.title) " · Lakeport" }
                link rel="stylesheet" href={ (base) "/assets/console.css" };
                script src={ (base) "/assets/console.js" } defer {}
                @if let Some(secs) = frame.refresh_secs {
                    noscript { meta http-equiv="refresh" content=(secs); }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href={ (base) "/datasets" } { "Lakeport" }
                    @if let Some(session) = frame.session {
                        @if let Some((org, sandbox)) = &session.tenant {
                            nav aria-label="Main" {
                                a href={ (base) "/datasets" } { "Datasets" }
                                a href={ (base) "/schemas" } { "Schemas" }
                                a href={ (base) "/inlets" } { "Streaming" }
                                a href={ (base) "/sql" } { "SQL" }
                            }
                            span.tenant title="Organization and sandbox" {
                                span.org { (org) } " / " span.sandbox { (sandbox) }
                                " " a href={ (base) "/tenant" } { "switch" }
                            }
                        }
                        form.signout method="post" action={ (base) "/signout" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    (body)
                }
            }
        }
    }
}

/// Renders a page with a status.
pub fn respond(status: StatusCode, frame: &Frame<'_>, body: &Markup) -> Response {
    (
        status,
        [
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", CSP),
            ("referrer-policy", "same-origin"),
        ],
        Html(page(frame, body).into_string()),
    )
        .into_response()
}

/// Only the console's own scripts, styles and images.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An error page.
pub fn error_page(
    base: &str,
    session: Option<&Session>,
    status: StatusCode,
    title: &str,
    detail: &str,
) -> Response {
    let body = html! {
        section.error role="alert" {
            h1 { (title) }
            p { (detail) }
            p { a href={ (base) "/datasets" } { "Back to datasets" } }
        }
    };
    respond(
        status,
        &Frame {
            base,
            session,
            title,
            refresh_secs: None,
        },
        &body,
    )
}

/// The page for an unknown id, or an id of another organization or sandbox.
pub fn not_found(base: &str, session: Option<&Session>, what: &str) -> Response {
    error_page(
        base,
        session,
        StatusCode::NOT_FOUND,
        "Not found",
        &format!(
            "There is no {what} with this id in the organization and sandbox you are signed in to."
        ),
    )
}

/// Milliseconds since the epoch as `2026-12-04 18:22:44 UTC` (the API's RFC 3339 form,
/// without the milliseconds).
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "—".to_owned();
    };
    let stamp = lakeport_api::context::rfc3339(ms);
    match stamp.split_once('T') {
        Some((date, clock)) => format!("{date} {} UTC", clock.get(..8).unwrap_or(clock)),
        None => stamp,
    }
}

/// Bytes as `12.3 MiB`.
pub fn bytes(n: Option<u64>) -> String {
    let Some(n) = n else {
        return "—".to_owned();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A number with thin separators, or a dash.
pub fn count(n: Option<u64>) -> String {
    let Some(n) = n else {
        return "—".to_owned();
    };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Whether a batch in this status may still change by itself.
pub fn running(status: &str) -> bool {
    matches!(
        status,
        "loading" | "loaded" | "queued" | "staging" | "processing" | "staged" | "retrying"
    )
}

/// A status badge; the word is always shown, the colour only helps.
pub fn status(status: &str) -> Markup {
    let class = match status {
        "success" | "active" => "ok",
        "failed" | "failure" | "aborted" | "abandoned" | "stalled" => "bad",
        "inactive" | "deleted" | "archived" | "retained" => "off",
        "" => "none",
        _ => "run",
    };
    let word = if status.is_empty() { "none" } else { status };
    html! { span class={ "badge " (class) } { (word) } }
}

/// Previous/next links of a paged listing.
pub fn pager(prev: Option<String>, next: Option<String>, label: &str) -> Markup {
    html! {
        nav.pager aria-label=(label) {
            @if let Some(href) = prev { a rel="first" href=(href) { "← Newest" } }
            @else { span.disabled { "← Newest" } }
            @if let Some(href) = next { a rel="next" href=(href) { "Older →" } }
            @else { span.disabled { "Older →" } }
        }
    }
}

/// Text as HTML that is known to be safe (our own SVG).
pub fn trusted(text: String) -> Markup {
    PreEscaped(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(Some(1_740_823_312_000)), "2025-03-01 10:01:52 UTC");
        assert_eq!(time(Some(951_782_400_000)), "2000-02-29 00:00:00 UTC");
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(1536)), "1.5 KiB");
        assert_eq!(count(Some(1_234_567)), "1,234,567");
        assert_eq!(count(Some(12)), "12");
    }
}
