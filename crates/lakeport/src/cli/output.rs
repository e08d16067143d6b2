//! Printing: aligned tables and text for people, JSON for scripts, colours only on a
//! terminal.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// How the current command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`: one JSON document on stdout, nothing else there.
    pub json: bool,
    /// Colours on stdout (stdout is a terminal).
    pub color: bool,
    /// Progress bars and spinners on stderr (stderr is a terminal).
    pub bars: bool,
}

impl Output {
    /// Detects terminals; `NO_COLOR` turns colours off.
    pub fn detect(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Self {
            json,
            color: !json && !no_color && std::io::stdout().is_terminal(),
            bars: std::io::stderr().is_terminal(),
        }
    }

    /// Prints a JSON document on stdout.
    pub fn print_json(&self, value: &Value) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        write_stdout(&text);
        Ok(())
    }

    /// Prints one line on stdout.
    pub fn line(&self, text: impl std::fmt::Display) {
        write_stdout(&format!("{text}\n"));
    }

    /// Returns `text` coloured for a batch status.
    pub fn status(&self, status: &str) -> String {
        let code = match status {
            "success" | "active" => "32",
            "failed" | "failure" | "aborted" | "abandoned" | "stalled" => "31",
            "inactive" | "deleted" => "2",
            _ => "33",
        };
        self.paint(code, status)
    }

    /// Returns `text` in bold.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Returns `text` dimmed.
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A table printed with aligned columns; cells may carry colours, which do not count
/// towards the width.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, String)>>,
}

impl Table {
    /// Returns an empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of plain cells.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|cell| (cell.clone(), cell)).collect());
    }

    /// Adds a row of `(plain, painted)` cells.
    pub fn painted_row(&mut self, cells: Vec<(String, String)>) {
        self.rows.push(cells);
    }

    /// Prints the table on stdout (`empty` instead when there are no rows).
    pub fn print(&self, out: &Output, empty: &str) {
        if self.rows.is_empty() {
            out.line(empty);
            return;
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (index, (plain, _)) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(plain.chars().count());
                }
            }
        }
        let last = self.headers.len().saturating_sub(1);
        let header: Vec<String> = self
            .headers
            .iter()
            .enumerate()
            .map(|(index, h)| pad(h, &out.bold(h), widths[index], index == last))
            .collect();
        out.line(header.join("  ").trim_end());
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(index, (plain, painted))| {
                    pad(
                        plain,
                        painted,
                        widths.get(index).copied().unwrap_or(0),
                        index >= last,
                    )
                })
                .collect();
            out.line(cells.join("  ").trim_end());
        }
    }
}

/// Writes to stdout; a closed pipe (`lakeport … | head`) ends the process quietly, as
/// other command-line tools do.
fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && err.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

fn pad(plain: &str, painted: &str, width: usize, last: bool) -> String {
    if last {
        return painted.to_owned();
    }
    let fill = width.saturating_sub(plain.chars().count());
    format!("{painted}{}", " ".repeat(fill))
}

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn timestamp(millis: Option<i64>) -> String {
    let Some(millis) = millis else {
        return "-".to_owned();
    };
    let seconds = millis.div_euclid(1000);
    let (days, day_seconds) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        day_seconds / 3600,
        day_seconds % 3600 / 60,
        day_seconds % 60
    )
}

/// Formats an optional count.
pub fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Shortens `text` to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(timestamp(Some(1_740_823_312_000)), "2025-03-01 10:01:52");
        assert_eq!(timestamp(Some(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(timestamp(None), "-");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
