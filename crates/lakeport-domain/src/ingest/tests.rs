use serde_json::json;

use super::*;
use crate::catalog::{Actor, as_object};

#[test]
fn content_ranges() {
    assert_eq!(
        parse_content_range("bytes 0-99/200"),
        Ok(Chunk {
            first: 0,
            last: 99,
            total: Some(200)
        })
    );
    assert_eq!(
        parse_content_range("bytes 100-199/*"),
        Ok(Chunk {
            first: 100,
            last: 199,
            total: None
        })
    );
    assert_eq!(
        parse_content_range("bytes=5-9"),
        Ok(Chunk {
            first: 5,
            last: 9,
            total: None
        })
    );
    assert!(parse_content_range("items 0-1").is_err());
    assert!(parse_content_range("bytes 9-5").is_err());
    assert!(
        parse_content_range("bytes 0-199/100")
            .unwrap_err()
            .contains("past the total")
    );
    assert!(parse_content_range("bytes a-b").is_err());
    // Offsets whose length or sum overflows are refused, not wrapped to an empty chunk.
    assert!(
        parse_content_range("bytes 0-18446744073709551615")
            .unwrap_err()
            .contains("largest supported offset")
    );
    assert!(parse_content_range("bytes 0-18446744073709551616").is_err());
    assert!(parse_content_range("bytes 0-9/18446744073709551615").is_err());
    let huge = Chunk {
        first: 0,
        last: u64::MAX,
        total: None,
    };
    assert_eq!(huge.len(), u64::MAX);
    assert!(check_tiling(&[huge]).is_err());
    assert_eq!(contiguous_end(&[huge]), Some(u64::MAX));
}

#[test]
fn chunks_tile_in_any_order_and_may_be_resent() {
    let mut chunks = Vec::new();
    add_chunk(
        &mut chunks,
        Chunk {
            first: 200,
            last: 299,
            total: Some(300),
        },
    );
    assert_eq!(contiguous_end(&chunks), None);
    add_chunk(
        &mut chunks,
        Chunk {
            first: 0,
            last: 99,
            total: None,
        },
    );
    assert_eq!(contiguous_end(&chunks), Some(99));
    assert_eq!(
        check_tiling(&chunks),
        Err("bytes 100-199 are missing".to_owned())
    );
    add_chunk(
        &mut chunks,
        Chunk {
            first: 100,
            last: 199,
            total: None,
        },
    );
    add_chunk(
        &mut chunks,
        Chunk {
            first: 100,
            last: 199,
            total: None,
        },
    );
    assert_eq!(chunks.len(), 3);
    assert_eq!(contiguous_end(&chunks), Some(299));
    assert_eq!(received_bytes(&chunks), 300);
    assert_eq!(check_tiling(&chunks), Ok(300));
    add_chunk(
        &mut chunks,
        Chunk {
            first: 150,
            last: 249,
            total: None,
        },
    );
    assert!(check_tiling(&chunks).unwrap_err().contains("overlaps"));
    let wrong_total = [Chunk {
        first: 0,
        last: 9,
        total: Some(20),
    }];
    assert!(
        check_tiling(&wrong_total)
            .unwrap_err()
            .contains("announced a total of 20")
    );
    assert!(check_tiling(&[]).is_err());
}

fn ctx_apply(batch: &Doc, action: BatchAction) -> Result<SignalEffect, InvalidTransition> {
    let tenant = Tenant::parse("ACME@AdobeOrg", "prod").unwrap();
    let actor = Actor {
        client_id: "c".into(),
        user: "u".into(),
    };
    apply_signal(
        batch,
        action,
        &WriteContext {
            tenant: &tenant,
            actor: &actor,
            now: 42,
        },
    )
}

#[test]
fn signals_change_the_batch_document() {
    let loading = as_object(json!({"id": "B", "status": "loading", "version": "1.0.0"})).unwrap();
    let SignalEffect::Changed {
        batch,
        promote: true,
        cleanup: false,
    } = ctx_apply(&loading, BatchAction::Complete).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            batch["status"].as_str(),
            batch["started"].as_i64(),
            batch["version"].as_str()
        ),
        (Some("staging"), Some(42), Some("1.0.1"))
    );
    assert_eq!(
        ctx_apply(&batch, BatchAction::Complete).unwrap(),
        SignalEffect::NoOp
    );
    let SignalEffect::Changed {
        batch: failed,
        cleanup: true,
        ..
    } = ctx_apply(&loading, BatchAction::Fail).unwrap()
    else {
        panic!()
    };
    assert_eq!(failed["errors"][0]["code"], "INGEST-9005-400");
    assert!(
        ctx_apply(&failed, BatchAction::Complete).is_err(),
        "a batch failed by FAIL was never completed"
    );
    let SignalEffect::Changed { batch: aborted, .. } =
        ctx_apply(&batch, BatchAction::Abort).unwrap()
    else {
        panic!()
    };
    assert_eq!(aborted["status"], "aborted");
    assert_eq!(
        ctx_apply(&aborted, BatchAction::Abort).unwrap(),
        SignalEffect::NoOp
    );
    assert!(ctx_apply(&loading, BatchAction::Revert).is_err());
}

fn counts(input: u64, failed: u64) -> ProcessedCounts {
    ProcessedCounts {
        input_files: 1,
        input_bytes: 1000,
        input_records: input,
        failed_records: failed,
        output_records: input - failed,
        output_bytes: 500,
        output_files: 1,
        error_counts: if failed > 0 {
            vec![("INGEST-1555-400".into(), failed)]
        } else {
            vec![]
        },
    }
}

#[test]
fn partial_ingestion_outcomes() {
    let clean = decide(&counts(100, 0), &[], 0.0, false);
    assert_eq!(
        (clean.status, clean.errors.len(), clean.promote),
        (BatchStatus::Success, 0, true)
    );
    let within = decide(&counts(120, 3), &[], 5.0, true);
    assert_eq!(within.status, BatchStatus::Success);
    assert_eq!(within.errors[0]["code"], "INGEST-1212-400");
    assert_eq!(
        within.errors[0]["description"],
        "3 rows were rejected, 117 rows were ingested; see the diagnostics files."
    );
    assert_eq!(
        within.errors[1],
        json!({"code": "INGEST-1555-400", "description": "A required field is absent or null.", "recordCount": 3})
    );
    let boundary = decide(&counts(100, 5), &[], 5.0, true);
    assert_eq!(
        boundary.status,
        BatchStatus::Success,
        "failures equal to the threshold pass"
    );
    let above = decide(&counts(100, 6), &[], 5.0, true);
    assert_eq!((above.status, above.promote), (BatchStatus::Failed, false));
    assert_eq!(above.errors[0]["code"], "INGEST-1555-400");
    let strict = decide(&counts(100, 1), &[], 0.0, false);
    assert_eq!(strict.errors[0]["code"], "INGEST-1211-400");
    let empty = decide(&counts(0, 0), &[], 50.0, true);
    assert_eq!(empty.errors[0]["code"], "INGEST-9203-400");
    let file = decide(
        &counts(10, 0),
        &[FileLevelError {
            code: "106".into(),
            description: "empty".into(),
        }],
        100.0,
        true,
    );
    assert_eq!(
        (file.status, file.errors[0]["rows"].clone()),
        (BatchStatus::Failed, json!([]))
    );
}

#[test]
fn thresholds_and_diagnostics_come_from_batch_or_dataset() {
    let batch = as_object(json!({"tags": {"acp_partialIngestionPercent": ["5"]}})).unwrap();
    let plain = as_object(json!({})).unwrap();
    let legacy =
        as_object(json!({"tags": {"partialBatchIngestion": ["errorThresholdPercentage:10"]}}))
            .unwrap();
    assert_eq!(threshold(&batch, &plain), 5.0);
    assert_eq!(threshold(&plain, &legacy), 10.0);
    assert_eq!(threshold(&plain, &plain), 0.0);
    assert!(diagnostics_enabled(&batch, &plain));
    assert!(!diagnostics_enabled(&plain, &plain));
    assert!(diagnostics_enabled(
        &plain,
        &as_object(json!({"enableErrorDiagnostics": true})).unwrap()
    ));
}

#[test]
fn processed_fields_follow_the_spec() {
    let outcome = decide(&counts(120, 3), &[], 5.0, true);
    let fields = processed_fields(&counts(120, 3), &outcome, 10, 20);
    assert_eq!(fields["recordCount"], 117);
    assert_eq!(fields["metrics"]["inputRecordCount"], 120);
    assert_eq!(fields["metrics"]["recordsWritten"], 117);
    let failed = decide(&counts(100, 50), &[], 5.0, true);
    let fields = processed_fields(&counts(100, 50), &failed, 10, 20);
    assert_eq!(
        (fields["recordCount"].as_u64(), fields["size"].as_u64()),
        (Some(0), Some(0))
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Offsets near 0, near the supported maximum and near `u64::MAX`, where arithmetic
    /// on client numbers overflows.
    fn offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..1_000u64,
            (MAX_CHUNK_OFFSET - 2)..=(MAX_CHUNK_OFFSET + 2),
            (u64::MAX - 2)..=u64::MAX,
            any::<u64>(),
        ]
    }

    /// `Content-Range` values: well-formed ones with hostile numbers, and noise.
    fn header() -> impl Strategy<Value = String> {
        prop_oneof![
            (offset(), offset(), proptest::option::of(offset())).prop_map(|(a, b, t)| match t {
                Some(t) => format!("bytes {a}-{b}/{t}"),
                None => format!("bytes {a}-{b}"),
            }),
            "bytes[ =]?[0-9a-z*/ -]{0,40}",
            ".{0,60}",
        ]
    }

    /// Splits `[0, total)` into chunks at the given cut points.
    fn tiling(total: u64, mut cuts: Vec<u64>) -> Vec<Chunk> {
        cuts.retain(|cut| *cut > 0 && *cut < total);
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut first = 0;
        for cut in cuts.into_iter().chain([total]) {
            chunks.push(Chunk {
                first,
                last: cut - 1,
                total: Some(total),
            });
            first = cut;
        }
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Parsing never panics; a parsed chunk is ordered, bounded and has a length that
        /// does not overflow.
        #[test]
        fn content_range_parses_or_says_why(text in header()) {
            match parse_content_range(&text) {
                Ok(chunk) => {
                    prop_assert!(chunk.first <= chunk.last);
                    prop_assert!(chunk.last <= MAX_CHUNK_OFFSET);
                    prop_assert_eq!(chunk.len(), chunk.last - chunk.first + 1);
                    if let Some(total) = chunk.total {
                        prop_assert!(chunk.last < total);
                    }
                }
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }

        /// Any set of parsed chunks, in any order: the tiler never panics, and when it
        /// accepts, the chunks cover `[0, N)` exactly once.
        #[test]
        fn tiler_accepts_only_exact_tilings(texts in proptest::collection::vec(header(), 0..12)) {
            let mut chunks = Vec::new();
            for text in &texts {
                if let Ok(chunk) = parse_content_range(text) {
                    add_chunk(&mut chunks, chunk);
                }
            }
            let received = received_bytes(&chunks);
            let end = contiguous_end(&chunks);
            if let Ok(total) = check_tiling(&chunks) {
                prop_assert_eq!(received, total);
                prop_assert_eq!(end, Some(total - 1));
                prop_assert_eq!(chunks[0].first, 0);
                for pair in chunks.windows(2) {
                    prop_assert_eq!(pair[0].last + 1, pair[1].first);
                }
            }
        }

        /// A random tiling sent in a random order (with resent chunks) is accepted with
        /// its total; dropping one chunk is refused.
        #[test]
        fn shuffled_tilings_are_accepted_and_gaps_refused(
            total in 1..=MAX_CHUNK_OFFSET,
            cuts in proptest::collection::vec(any::<u64>(), 0..8),
            order in proptest::collection::vec(any::<usize>(), 0..16),
            drop in any::<prop::sample::Index>(),
        ) {
            let cuts: Vec<u64> = cuts.into_iter().map(|c| c % total).collect();
            let tiles = tiling(total, cuts);
            let mut chunks = Vec::new();
            for pick in order.iter().copied().chain(0..tiles.len()).map(|i| i % tiles.len()) {
                add_chunk(&mut chunks, tiles[pick]);
            }
            let text = |c: &Chunk| format!("bytes {}-{}/{}", c.first, c.last, total);
            for chunk in &chunks {
                prop_assert_eq!(parse_content_range(&text(chunk)), Ok(*chunk));
            }
            prop_assert_eq!(check_tiling(&chunks), Ok(total));
            if chunks.len() > 1 {
                chunks.remove(drop.index(chunks.len()));
                prop_assert!(check_tiling(&chunks).is_err());
            }
        }
    }
}
