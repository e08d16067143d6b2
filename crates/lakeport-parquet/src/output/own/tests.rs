//! Leaves written by Lakeport's encoder against the same batches written by the parquet
//! crate's `ArrowWriter` with the same settings: the same values come back, and each column
//! chunk records the same statistics (texts' truncated min and max, doubles' zeros and NaN,
//! nulls), level histograms, text bytes, encodings and page kinds. Page boundaries may differ (the crate checks its limits
//! every mini-batch, Lakeport every row), so sizes are compared within a margin.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    builder::{Int64Builder, ListBuilder, MapBuilder, StringBuilder},
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

use super::{Dictionary, encode_hybrid, own_path, same, short_words, text_less};
use crate::output::ParquetParts;

/// A small xorshift generator: the same rows on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn schema() -> SchemaRef {
    let inner = Fields::from(vec![Field::new("b", DataType::Utf8, true)]);
    let outer = Fields::from(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("inner", DataType::Struct(inner), true),
        Field::new("n", DataType::Int64, true),
        Field::new("kept", DataType::Utf8, false),
        Field::new("attributes", attributes_type(), true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("constant", DataType::Utf8, true),
        Field::new("s", DataType::Struct(outer), true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("empty", DataType::Utf8, true),
        Field::new(
            "numbers",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
        Field::new(
            "codes",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("score", DataType::Float64, true),
        Field::new("zeros", DataType::Float64, true),
        Field::new("small", DataType::Int32, false),
        Field::new("flag", DataType::Boolean, true),
        // XDM's `short` and `byte`.
        Field::new("short", DataType::Int16, true),
        Field::new("byte", DataType::Int8, false),
    ]))
}

/// A map of texts to texts, whose values may be null.
fn attributes_type() -> DataType {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone()
}

/// Texts longer than the 64 bytes statistics keep, some with characters of 2 to 4 bytes
/// where they would be cut.
fn long_text(rng: &mut Rng) -> String {
    let mut text = String::new();
    let pieces = [
        "é",
        "日本",
        "😀",
        "z",
        "\u{7ff}",
        "\u{ffff}",
        "\u{10ffff}",
        "a",
    ];
    while text.len() < 60 + rng.below(20) as usize {
        text.push_str(pieces[rng.below(pieces.len() as u64) as usize]);
    }
    text
}

fn batch(schema: &SchemaRef, rng: &mut Rng, first: usize, rows: usize) -> RecordBatch {
    let ids: StringArray = (first..first + rows)
        .map(|row| Some(format!("evt-{row:09}-{:x}", rng.next() % 1_000_000)))
        .collect();
    let constant: StringArray = (0..rows)
        .map(|_| (rng.below(50) != 0).then_some("commerce.purchases"))
        .collect();
    let tiers = ["bronze", "silver", "gold", "platinum", ""];
    let a: StringArray = (0..rows)
        .map(|_| (rng.below(10) != 0).then(|| tiers[rng.below(5) as usize]))
        .collect();
    let b: StringArray = (0..rows)
        .map(|_| (rng.below(7) != 0).then(|| long_text(rng)))
        .collect();
    let inner_valid: Vec<bool> = (0..rows).map(|_| rng.below(9) != 0).collect();
    let inner = StructArray::new(
        Fields::from(vec![Field::new("b", DataType::Utf8, true)]),
        vec![Arc::new(b) as ArrayRef],
        Some(NullBuffer::from(inner_valid)),
    );
    let n: Int64Array = (0..rows).map(|_| Some(rng.next() as i64)).collect();
    let kept: StringArray = (0..rows)
        .map(|_| Some(format!("k{}", rng.below(300))))
        .collect();
    let mut attributes = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..rows {
        for key in 0..rng.below(4) {
            attributes.keys().append_value(format!("key{key}"));
            match rng.below(6) {
                0 => attributes.values().append_null(),
                1 => attributes.values().append_value(long_text(rng)),
                _ => attributes
                    .values()
                    .append_value(tiers[rng.below(5) as usize]),
            }
        }
        attributes.append(rng.below(8) != 0).unwrap();
    }
    let attributes = attributes.finish();
    let outer_valid: Vec<bool> = (0..rows).map(|_| rng.below(11) != 0).collect();
    let DataType::Struct(outer_fields) = schema.field(2).data_type().clone() else {
        unreachable!()
    };
    let s = StructArray::new(
        outer_fields,
        vec![
            Arc::new(a) as ArrayRef,
            Arc::new(inner),
            Arc::new(n),
            Arc::new(kept),
            Arc::new(attributes),
        ],
        Some(NullBuffer::from(outer_valid)),
    );
    let mut tags = ListBuilder::new(StringBuilder::new());
    for _ in 0..rows {
        for _ in 0..rng.below(3) {
            tags.values().append_value(tiers[rng.below(5) as usize]);
        }
        if rng.below(9) == 0 {
            tags.values().append_null();
        }
        tags.append(rng.below(5) != 0);
    }
    let mut numbers = ListBuilder::new(Int64Builder::new());
    let mut codes = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        false,
    )));
    for _ in 0..rows {
        for _ in 0..rng.below(3) {
            numbers.values().append_value(rng.next() as i64);
        }
        numbers.append(rng.below(4) != 0);
        for _ in 0..rng.below(4) {
            codes.values().append_value(format!("c{}", rng.below(40)));
        }
        codes.append(true);
    }
    let tags: ListArray = tags.finish();
    let empty = StringArray::from(vec![None::<&str>; rows]);
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ids),
            Arc::new(constant),
            Arc::new(s),
            Arc::new(tags),
            Arc::new(empty),
            Arc::new(numbers.finish()),
            Arc::new(codes.finish()),
            Arc::new(Date32Array::from_iter((0..rows).map(|_| {
                (rng.below(13) != 0).then(|| rng.below(20_000) as i32 - 5_000)
            }))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    (0..rows).map(|_| (rng.below(17) != 0).then(|| rng.next() as i64 >> 12)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter((0..rows).map(
                |_| match rng.below(12) {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(-0.0),
                    3 => Some(0.0),
                    _ => Some((rng.below(2_000) as f64 - 1_000.0) / 7.0),
                },
            ))),
            Arc::new(Float64Array::from_iter((0..rows).map(
                |_| match rng.below(4) {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(-0.0),
                    _ => Some(0.0),
                },
            ))),
            Arc::new(Int32Array::from_iter_values(
                (0..rows).map(|_| rng.below(7) as i32 - 3),
            )),
            Arc::new(BooleanArray::from_iter(
                (0..rows).map(|_| (rng.below(3) != 0).then(|| rng.below(2) == 0)),
            )),
            Arc::new(Int16Array::from_iter((0..rows).map(|_| {
                (rng.below(6) != 0).then(|| match rng.below(5) {
                    0 => i16::MIN,
                    1 => i16::MAX,
                    _ => rng.next() as i16,
                })
            }))),
            Arc::new(Int8Array::from_iter_values(
                (0..rows).map(|_| rng.below(256) as u8 as i8),
            )),
        ],
    )
    .unwrap()
}

/// Every third batch from the second has no `s` and no `tags` in any row; every third from
/// the third has empty `tags` and `codes` lists and no `s.attributes`: whole batches of
/// missing leaves, as sparse schemas send them.
fn sparse(batch: RecordBatch, index: usize) -> RecordBatch {
    let rows = batch.num_rows();
    let mut columns = batch.columns().to_vec();
    let empty_list = |column: &ArrayRef| -> ArrayRef {
        let list = column.as_any().downcast_ref::<ListArray>().unwrap();
        let DataType::List(field) = list.data_type().clone() else {
            unreachable!()
        };
        Arc::new(ListArray::new(
            field,
            arrow_buffer::OffsetBuffer::new_zeroed(rows),
            list.values().slice(0, 0),
            None,
        ))
    };
    match index % 3 {
        1 => {
            let s = columns[2].as_any().downcast_ref::<StructArray>().unwrap();
            columns[2] = Arc::new(StructArray::new(
                s.fields().clone(),
                s.columns().to_vec(),
                Some(NullBuffer::new_null(rows)),
            ));
            columns[3] = arrow_array::new_null_array(columns[3].data_type(), rows);
        }
        2 => {
            columns[3] = empty_list(&columns[3]);
            columns[6] = empty_list(&columns[6]);
            let s = columns[2].as_any().downcast_ref::<StructArray>().unwrap();
            let mut children = s.columns().to_vec();
            children[4] = arrow_array::new_null_array(children[4].data_type(), rows);
            columns[2] = Arc::new(StructArray::new(
                s.fields().clone(),
                children,
                s.nulls().cloned(),
            ));
        }
        _ => {}
    }
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

fn read_all(path: &std::path::Path) -> (Vec<RecordBatch>, Arc<ParquetMetaData>) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let metadata = reader.metadata().clone();
    let batches = reader.build().unwrap().map(Result::unwrap).collect();
    (batches, metadata)
}

/// What a chunk records that both writers must agree on.
fn summary(chunk: &ColumnChunkMetaData) -> String {
    let mut kinds: Vec<String> = chunk
        .page_encoding_stats()
        .into_iter()
        .flatten()
        .map(|stats| format!("{:?}/{:?}", stats.page_type, stats.encoding))
        .collect();
    kinds.dedup();
    format!(
        "{:?} values {} compression {:?} encodings {:?} pages {kinds:?} text {:?} def {:?} \
         rep {:?} dictionary {}",
        chunk.statistics(),
        chunk.num_values(),
        chunk.compression(),
        chunk.encodings().collect::<Vec<_>>(),
        chunk.unencoded_byte_array_data_bytes(),
        chunk.definition_level_histogram(),
        chunk.repetition_level_histogram(),
        chunk.dictionary_page_offset().is_some(),
    )
}

fn compare(threads: usize, rows: usize, batch_rows: usize, rows_per_row_group: usize) {
    let schema = schema();
    let dir = tempfile::tempdir().unwrap();
    let mut parts = ParquetParts::new(
        dir.path(),
        schema.clone(),
        rows_per_row_group,
        usize::MAX,
        threads,
    );
    let crate_path = dir.path().join("crate.parquet");
    let mut reference = ArrowWriter::try_new(
        File::create(&crate_path).unwrap(),
        schema.clone(),
        Some(parts.properties.clone()),
    )
    .unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut first = 0;
    let mut index = 0;
    while first < rows {
        let take = batch_rows.min(rows - first);
        let batch = sparse(batch(&schema, &mut rng, first, take), index);
        index += 1;
        parts.write(&batch).unwrap();
        reference.write(&batch).unwrap();
        first += take;
    }
    reference.close().unwrap();
    let files = parts.finish().unwrap();
    assert_eq!(files.len(), 1);
    let (ours, our_metadata) = read_all(&dir.path().join(&files[0].relative_path));
    let (theirs, their_metadata) = read_all(&crate_path);
    let ours = arrow_select::concat::concat_batches(&schema, &ours).unwrap();
    let theirs = arrow_select::concat::concat_batches(&schema, &theirs).unwrap();
    assert_eq!(ours.num_rows(), rows);
    assert_eq!(ours, theirs, "the values read back differ");
    assert_eq!(
        our_metadata.num_row_groups(),
        their_metadata.num_row_groups()
    );
    let descriptor = our_metadata.file_metadata().schema_descr();
    let mut own = 0;
    for (group, (mine, reference)) in our_metadata
        .row_groups()
        .iter()
        .zip(their_metadata.row_groups())
        .enumerate()
    {
        assert_eq!(mine.num_rows(), reference.num_rows());
        for leaf in 0..descriptor.num_columns() {
            let (a, b) = (mine.column(leaf), reference.column(leaf));
            assert_eq!(
                summary(a),
                summary(b),
                "row group {group}, leaf {}",
                descriptor.column(leaf).path()
            );
            if own_path(&schema, descriptor.column(leaf).as_ref()).is_some() {
                own += 1;
                let (size, expected) = (a.compressed_size(), b.compressed_size());
                assert!(
                    size <= expected + expected / 10 + 1024,
                    "{}: {size} bytes against the crate's {expected}",
                    descriptor.column(leaf).path()
                );
            }
        }
    }
    // Every leaf, in every row group.
    assert_eq!(own, 20 * our_metadata.num_row_groups());
}

#[test]
fn own_leaves_match_the_crates_writer() {
    // Several row groups, pages cut by rows and by bytes, the ids' dictionary given up.
    compare(1, 70_000, 4096, 30_000);
}

#[test]
fn own_leaves_match_the_crates_writer_on_two_threads() {
    compare(2, 20_000, 1000, 8_192);
}

#[test]
fn a_single_row_and_odd_batches_match_the_crates_writer() {
    compare(1, 1, 1, 10);
    compare(1, 333, 7, 100);
}

/// The leaves planned: those of texts, integers of every width, dates, timestamps, doubles
/// and booleans
/// under structs and in lists and maps.
#[test]
fn the_leaves_lakeport_encodes_are_planned() {
    let schema = schema();
    let descriptor = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&schema)
        .unwrap();
    let planned: Vec<String> = (0..descriptor.num_columns())
        .filter(|&leaf| own_path(&schema, descriptor.column(leaf).as_ref()).is_some())
        .map(|leaf| descriptor.column(leaf).path().string())
        .collect();
    assert_eq!(
        planned,
        [
            "id",
            "constant",
            "s.a",
            "s.inner.b",
            "s.n",
            "s.kept",
            "s.attributes.entries.keys",
            "s.attributes.entries.values",
            "tags.list.item",
            "empty",
            "numbers.list.item",
            "codes.list.item",
            "day",
            "at",
            "score",
            "zeros",
            "small",
            "flag",
            "short",
            "byte"
        ]
    );
}

/// A decoder of the hybrid encoding, independent of the encoder, for the runs it writes.
fn decode_hybrid(mut bytes: &[u8], width: usize, count: usize) -> Vec<u32> {
    let mut values = Vec::new();
    let value_bytes = width.div_ceil(8);
    while values.len() < count {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let byte = bytes[0];
            bytes = &bytes[1..];
            header |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
        }
        if header & 1 == 0 {
            let mut value = [0u8; 4];
            value[..value_bytes].copy_from_slice(&bytes[..value_bytes]);
            bytes = &bytes[value_bytes..];
            values.extend(std::iter::repeat_n(
                u32::from_le_bytes(value),
                (header >> 1) as usize,
            ));
        } else {
            let groups = (header >> 1) as usize;
            let packed = &bytes[..groups * width];
            bytes = &bytes[groups * width..];
            for index in 0..groups * 8 {
                let mut value = 0u32;
                for bit in 0..width {
                    let at = index * width + bit;
                    value |= u32::from((packed[at / 8] >> (at % 8)) & 1) << bit;
                }
                values.push(value);
            }
        }
    }
    assert!(bytes.is_empty(), "bytes left after the values");
    values.truncate(count);
    values
}

/// A text's dictionary index is the one it got when first interned, whether it is found in
/// the slots of recent short texts or in the table: thousands of distinct texts of 0 to 19
/// bytes over four byte values (zeros among them), far more than the slots hold.
#[test]
fn interned_texts_keep_the_index_they_first_got() {
    let mut dictionary = Dictionary::new(true);
    let mut first: std::collections::HashMap<Vec<u8>, u32> = std::collections::HashMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..60_000 {
        let len = rng.below(20) as usize;
        let value: Vec<u8> = (0..len)
            .map(|_| [b'a', b'b', 0, 0xff][rng.below(4) as usize])
            .collect();
        let next = first.len() as u32;
        let expected = *first.entry(value.clone()).or_insert(next);
        assert_eq!(dictionary.intern(&value), expected, "{value:?}");
    }
    assert!(first.len() > 10_000, "{} distinct texts", first.len());
    assert_eq!(dictionary.len(), first.len());
}

proptest::proptest! {
    /// Two texts of the same length up to 16 bytes have the same words exactly when they
    /// are the same text; longer texts have none.
    #[test]
    fn short_words_tell_texts_of_one_length_apart(
        a in proptest::collection::vec(0u8..3, 0..=20),
        flip in 0usize..20,
    ) {
        let mut b = a.clone();
        if !b.is_empty() {
            let at = flip % b.len();
            b[at] = b[at].wrapping_add(1);
        }
        match (short_words(&a), short_words(&b)) {
            (Some(x), Some(y)) => proptest::prop_assert_eq!(x == y, a == b),
            (x, y) => proptest::prop_assert!(a.len() > 16 && x.is_none() && y.is_none()),
        }
    }
}

proptest::proptest! {
    /// Any values at any width come back from the hybrid encoding, whatever their runs.
    #[test]
    fn the_hybrid_encoding_round_trips(
        width in 0usize..=20,
        runs in proptest::collection::vec((0u32..8, 1usize..40), 0..60),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut rng = Rng(seed | 1);
        let mask = if width == 0 { 0 } else { (1u64 << width) - 1 } as u32;
        let mut values = Vec::new();
        for (kind, length) in runs {
            let repeated = rng.next() as u32 & mask;
            for _ in 0..length {
                values.push(if kind < 4 { repeated } else { rng.next() as u32 & mask });
            }
        }
        let mut bytes = Vec::new();
        encode_hybrid(&values, width, &mut bytes);
        proptest::prop_assert_eq!(decode_hybrid(&bytes, width, values.len()), values);
    }
}

proptest::proptest! {
    /// The word-wise comparisons of texts answer as the byte strings' own, for lengths
    /// around every word boundary and a second text that differs from the first in one
    /// byte anywhere, is cut or extended anywhere, or is unrelated.
    #[test]
    fn texts_compare_as_byte_strings(
        a in proptest::collection::vec(0u8..4, 0..40),
        edit in 0u8..4,
        at in 0usize..40,
        other in proptest::collection::vec(0u8..4, 0..40),
    ) {
        let mut b = a.clone();
        match edit {
            0 if !a.is_empty() => {
                let at = at % a.len();
                b[at] = b[at].wrapping_add(1 + other.first().copied().unwrap_or(0)) % 5;
            }
            1 => b.truncate(at),
            2 => b.extend_from_slice(&other[..at.min(other.len())]),
            _ => b = other,
        }
        proptest::prop_assert_eq!(same(&a, &b), a == b);
        proptest::prop_assert!(same(&a, &a));
        proptest::prop_assert_eq!(text_less(&a, &b), a < b);
        proptest::prop_assert_eq!(text_less(&b, &a), b < a);
        proptest::prop_assert!(!text_less(&a, &a));
    }
}
