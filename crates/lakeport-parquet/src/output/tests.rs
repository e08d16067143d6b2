//! Row groups cut by their encoded bytes as well as by their rows.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::ParquetParts;

/// Wide rows fill a row group's bytes long before its rows: the group is cut there, and
/// every row is written once, in order.
#[test]
fn wide_rows_cut_row_groups_by_their_bytes() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let mut parts = ParquetParts::new(dir.path(), schema.clone(), 100_000, usize::MAX, 1);
    parts.row_group_bytes = 256 * 1024;
    let mut next = 0i64;
    for _ in 0..20 {
        let numbers: Vec<i64> = (next..next + 50).collect();
        // Distinct text that compresses poorly: 2 KiB of pseudo-random hex a row.
        let texts: Vec<String> = numbers
            .iter()
            .map(|&n| {
                let mut state = (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (0..128)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        format!("{state:016x}")
                    })
                    .collect()
            })
            .collect();
        next += 50;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(numbers)),
            Arc::new(StringArray::from(texts)),
        ];
        parts
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    let files = parts.finish().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].records, 1000);
    let file = std::fs::File::open(dir.path().join(&files[0].relative_path)).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let groups = reader.metadata().num_row_groups();
    assert!(
        (3..=20).contains(&groups),
        "{groups} row groups for about 2 MB of text cut at 256 KiB"
    );
    let mut expected = 0i64;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let numbers = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for n in numbers.values() {
            assert_eq!(*n, expected);
            expected += 1;
        }
        assert_eq!(batch.column(1).null_count(), 0);
    }
    assert_eq!(expected, 1000);
}
