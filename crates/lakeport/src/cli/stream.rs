//! `lakeport stream`: sends a JSON Lines file (or stdin) to a streaming inlet, one message
//! per line, in `/collection/batch` requests that stay under the inlet's 1 MiB body limit.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::{Context, EXIT_BATCH_FAILED, Exit};

/// A request body stays below this many bytes (the inlet limit is 1,048,576).
const MAX_REQUEST_BYTES: usize = 1_000_000;
/// The first rejections printed in the summary.
const SHOWN_REJECTIONS: usize = 5;

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The inlet id (`auth.params.inletId` of the streaming connection).
    #[arg(long)]
    inlet: String,
    /// JSON Lines file of messages (XDM envelopes, or objects for a raw inlet); `-` or
    /// nothing reads stdin.
    file: Option<PathBuf>,
    /// At most this many messages per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
}

/// What a run did.
#[derive(Debug, Default)]
struct Summary {
    accepted: u64,
    rejected: u64,
    rejections: Vec<String>,
}

pub fn run(ctx: &Context, args: &StreamArgs) -> anyhow::Result<()> {
    let (reader, total): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().map(|meta| meta.len()).ok();
            (Box::new(file), size)
        }
        _ => (Box::new(std::io::stdin()), None),
    };
    let bar = if ctx.out.bars {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{bar:30} {bytes}/{total_bytes} {msg} {elapsed}"
        } else {
            "{spinner} {bytes} {msg} {elapsed}"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("the template is valid"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut summary = Summary::default();
    let mut pending: Vec<Value> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut pending_lines: Vec<u64> = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.with_context(|| format!("reading line {number}"))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(err) => {
                summary.rejected += 1;
                summary
                    .rejections
                    .push(format!("line {number}: not JSON: {err}"));
                continue;
            }
        };
        if line.len() + 64 > MAX_REQUEST_BYTES {
            summary.rejected += 1;
            summary.rejections.push(format!(
                "line {number}: {} bytes, larger than one request may be",
                line.len()
            ));
            continue;
        }
        if !pending.is_empty()
            && (pending.len() >= args.batch_size as usize
                || pending_bytes + line.len() + 1 > MAX_REQUEST_BYTES)
        {
            send(
                ctx,
                &args.inlet,
                &mut pending,
                &mut pending_lines,
                &mut summary,
            )?;
            pending_bytes = 0;
        }
        pending_bytes += line.len() + 1;
        pending.push(message);
        pending_lines.push(number);
        bar.set_message(format!(
            "{} accepted, {} rejected",
            summary.accepted, summary.rejected
        ));
    }
    if !pending.is_empty() {
        send(
            ctx,
            &args.inlet,
            &mut pending,
            &mut pending_lines,
            &mut summary,
        )?;
    }
    bar.finish_and_clear();
    if ctx.out.json {
        ctx.out.print_json(&json!({
            "inletId": args.inlet,
            "accepted": summary.accepted,
            "rejected": summary.rejected,
            "rejections": summary.rejections,
        }))?;
    } else {
        ctx.out.line(format!(
            "{} accepted, {} rejected (inlet {})",
            summary.accepted, summary.rejected, args.inlet
        ));
        for rejection in summary.rejections.iter().take(SHOWN_REJECTIONS) {
            ctx.out.line(format!("  {rejection}"));
        }
        if summary.rejections.len() > SHOWN_REJECTIONS {
            ctx.out.line(format!(
                "  … and {} more",
                summary.rejections.len() - SHOWN_REJECTIONS
            ));
        }
    }
    if summary.rejected > 0 {
        return Err(anyhow::Error::new(Exit {
            code: EXIT_BATCH_FAILED,
            message: format!("{} messages were rejected", summary.rejected),
        }));
    }
    Ok(())
}

/// Sends the pending messages in one request and counts the answers.
fn send(
    ctx: &Context,
    inlet: &str,
    pending: &mut Vec<Value>,
    lines: &mut Vec<u64>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let answer = ctx
        .client
        .stream_messages(inlet, pending)
        .with_context(|| format!("sending lines {}–{}", lines[0], lines[lines.len() - 1]))?;
    let responses = answer
        .get("responses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, line) in lines.iter().enumerate() {
        match responses.get(index) {
            Some(response) if response.get("xactionId").is_some() => summary.accepted += 1,
            other => {
                summary.rejected += 1;
                let reason = other
                    .and_then(|response| response.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("no answer for this message");
                summary.rejections.push(format!("line {line}: {reason}"));
            }
        }
    }
    pending.clear();
    lines.clear();
    Ok(())
}
