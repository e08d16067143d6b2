//! Fingerprints of what a batch produced, checked against the ones recorded when the column
//! engine was proven identical to the previous row engine (issue 16: both ran over the same
//! generated files and gave the same Parquet rows and byte-identical `failed/` and `meta/`
//! files; the row engine has since been deleted). A fingerprint covers each file's result,
//! the batch's counts, every Parquet part's rows (read back as JSON Lines, so that a change
//! of Parquet encoding alone keeps it) and the bytes of every rejected-row and diagnostics
//! file.
//!
//! `LAKEPORT_RECORD_GOLDEN=1 cargo test -p lakeport-parquet --test it -- --nocapture` prints
//! the fingerprints instead of checking them, with the line of the test each belongs to.

use std::path::Path;

use lakeport_parquet::{BatchOutput, FileStats, parquet_json_lines};

/// FNV-1a, 64 bits: stable across platforms and Rust versions, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Returns the fingerprint of a batch written into `out`.
pub(crate) fn fingerprint(
    out: &Path,
    output: &BatchOutput,
    files: &[Result<FileStats, String>],
) -> String {
    let mut hash = Fnv::new();
    hash.write(format!("{files:?}").as_bytes());
    hash.write(
        format!(
            "{} {} {} {:?}",
            output.input_records, output.failed_records, output.output_records, output.error_counts
        )
        .as_bytes(),
    );
    for part in &output.parts {
        hash.write(format!("{} {}", part.relative_path, part.records).as_bytes());
        let mut rows = Vec::new();
        parquet_json_lines(
            &part.relative_path,
            &out.join(&part.relative_path),
            &mut rows,
        )
        .unwrap();
        hash.write(&rows);
    }
    for file in output.failed.iter().chain(&output.meta) {
        hash.write(format!("{} {}", file.relative_path, file.records).as_bytes());
        hash.write(&std::fs::read(out.join(&file.relative_path)).unwrap());
    }
    format!("{:016x}", hash.0)
}

/// Checks a fingerprint against the recorded one (or prints it, when recording).
#[track_caller]
pub(crate) fn check(actual: &str, expected: &str) {
    if std::env::var_os("LAKEPORT_RECORD_GOLDEN").is_some() {
        eprintln!("GOLDEN {} {actual}", std::panic::Location::caller());
        return;
    }
    assert_eq!(
        actual, expected,
        "the batch's output changed (rows, counts or rejected-row files); see tests/it/golden.rs"
    );
}
