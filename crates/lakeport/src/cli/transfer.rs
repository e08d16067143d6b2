//! What uploads and downloads share: running several transfers on threads and showing
//! their progress.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakeport_client::Progress;

use super::output::{Output, truncate};

/// Runs `work` over `items`, `parallel` at a time, on scoped threads, and returns the
/// results in order. After the first failure no new item starts; that failure is returned.
pub fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    work: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<anyhow::Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let workers = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        break;
                    };
                    let result = work(item);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    results.lock().expect("no transfer thread panics")[index] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().expect("no transfer thread panics");
    let mut done = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results.into_iter().flatten() {
        match result {
            Ok(value) => done.push(value),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(done),
    }
}

/// The overall bar and one bar per file in flight, on stderr when it is a terminal; a
/// plain line per finished file otherwise (except with `--json`).
pub struct Bars {
    multi: Option<MultiProgress>,
    overall: ProgressBar,
    lines: bool,
}

const FILE_TEMPLATE: &str =
    "{prefix:>26} [{bar:30.cyan/white}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}";
const TOTAL_TEMPLATE: &str = "{prefix:>26.bold} [{bar:30.green/white}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}";

impl Bars {
    /// Starts the overall bar for `files` files of `total` bytes.
    pub fn new(out: &Output, total: u64, files: usize) -> Self {
        if !out.bars {
            return Self {
                multi: None,
                overall: ProgressBar::hidden(),
                lines: !out.json,
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(style(TOTAL_TEMPLATE));
        overall.set_prefix(format!("total ({files} files)"));
        Self {
            multi: Some(multi),
            overall,
            lines: false,
        }
    }

    /// Returns the progress of one file, shown above the overall bar.
    pub fn file(&self, name: &str, size: u64) -> FileProgress<'_> {
        let bar = match &self.multi {
            Some(multi) => {
                let bar = multi.insert_before(&self.overall, ProgressBar::new(size));
                bar.set_style(style(FILE_TEMPLATE));
                bar.set_prefix(truncate(name, 26));
                bar
            }
            None => ProgressBar::hidden(),
        };
        FileProgress {
            bar,
            overall: &self.overall,
            bytes: AtomicU64::new(0),
        }
    }

    /// Removes a file's bar and prints `line` about it.
    pub fn finish_file(&self, progress: FileProgress<'_>, line: &str) {
        progress.bar.finish_and_clear();
        match &self.multi {
            Some(multi) => {
                multi.remove(&progress.bar);
                let _ = multi.println(line);
            }
            None if self.lines => eprintln!("{line}"),
            None => {}
        }
    }

    /// Removes the overall bar.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
}

/// Reports transferred bytes to a file's bar and to the overall bar.
pub struct FileProgress<'a> {
    bar: ProgressBar,
    overall: &'a ProgressBar,
    bytes: AtomicU64,
}

impl FileProgress<'_> {
    /// Forgets every byte reported so far (the transfer starts over).
    pub fn restart(&self) {
        let bytes = self.bytes.swap(0, Ordering::Relaxed);
        self.bar.dec(bytes);
        self.overall.dec(bytes);
    }
}

impl Progress for FileProgress<'_> {
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc(bytes);
        self.overall.inc(bytes);
    }

    fn rewind(&self, bytes: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                Some(total.saturating_sub(bytes))
            });
        self.bar.dec(bytes);
        self.overall.dec(bytes);
    }
}
