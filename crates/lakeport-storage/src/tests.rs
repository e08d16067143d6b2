use futures::StreamExt;

use super::*;

#[test]
fn file_paths_are_checked() {
    assert_eq!(
        keys::check_file_path("day=2025-03-01/events.parquet").unwrap(),
        ["day=2025-03-01", "events.parquet"]
    );
    for bad in ["", "/abs", "a/../b", "..", "a//b", "a\\b", "./a", "a\u{0}b"] {
        assert!(keys::check_file_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn keys_are_scoped_by_tenant() {
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "u1");
    assert_eq!(key.as_ref(), "staging/ACME@AdobeOrg/prod/B1/files/u1/file");
    let attempt = keys::attempt("ACME@AdobeOrg", "prod", "D1", "B1", 2);
    assert_eq!(
        attempt.as_ref(),
        "lake/ACME@AdobeOrg/prod/datasets/D1/batches/B1/attempt-2"
    );
    assert_eq!(
        keys::attempt_file(&attempt, "failed/part-00001.json").as_ref(),
        "lake/ACME@AdobeOrg/prod/datasets/D1/batches/B1/attempt-2/failed/part-00001.json"
    );
}

/// A declared length reserves disk ahead of the data, but what is stored is the body, and
/// a body shorter than declared leaves no reserved blocks behind.
#[tokio::test]
async fn a_declared_length_stores_the_body_and_holds_no_disk_past_it() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let body = |chunks: usize| {
        futures::stream::iter(
            (0..chunks).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 100_000]))),
        )
    };
    let expected: Vec<u8> = (0..30u8).flat_map(|i| vec![i; 100_000]).collect();
    for (name, declared) in [("exact", 3_000_000), ("short", 200_000_000), ("none", 0)] {
        let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", name);
        let declared = (declared > 0).then_some(declared);
        let written = storage
            .put_stream_expecting(&key, body(30), 300_000_000, declared)
            .await
            .unwrap();
        assert_eq!(written, 3_000_000, "{name}");
        let local = storage.local_path(&key).unwrap();
        assert_eq!(std::fs::read(&local).unwrap(), expected, "{name}");
        // Blocks of 512 bytes: the data's, with a little slack for the file system's own.
        let held = std::fs::metadata(&local).unwrap().blocks() * 512;
        assert!(
            held <= 3_000_000 + (1 << 20),
            "{name}: {held} bytes held on disk"
        );
    }
    // Over the limit is refused whatever was declared, and nothing is left.
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "over");
    let err = storage
        .put_stream_expecting(&key, body(30), 1_000_000, Some(1_000_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { limit: 1_000_000 }));
    assert!(storage.size(&key).await.is_err());
}

#[tokio::test]
async fn streams_in_and_out_with_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "u2");
    let chunks = (0..10).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 1000])));
    let written = storage
        .put_stream(&key, futures::stream::iter(chunks), 1_000_000)
        .await
        .unwrap();
    assert_eq!(written, 10_000);
    assert_eq!(storage.size(&key).await.unwrap(), 10_000);
    let local = storage.local_path(&key).unwrap();
    assert_eq!(std::fs::metadata(&local).unwrap().len(), 10_000);
    let mut stream = std::pin::pin!(storage.get_stream(&key, Some(1000..1500)).await.unwrap());
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read, vec![1u8; 500]);

    let too_big = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "big");
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 1000])));
    let err = storage
        .put_stream(&too_big, futures::stream::iter(chunks), 5_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { limit: 5_000 }));
    assert!(matches!(
        storage.size(&too_big).await.unwrap_err(),
        StorageError::NotFound { .. }
    ));

    assert_eq!(
        storage
            .delete_prefix(&keys::staged_batch("ACME@AdobeOrg", "prod", "B1"))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        storage.size(&key).await.unwrap_err(),
        StorageError::NotFound { .. }
    ));
}

/// The stores the behaviour tests run on: always a temporary directory, and an S3 prefix of
/// its own when `TEST_S3_ENDPOINT` names a server (bucket `TEST_S3_BUCKET`, default
/// `lakeport-test`, credentials from the `AWS_*` variables).
fn stores() -> Vec<(Storage, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        Storage::open(&format!("file://{}", dir.path().display())).unwrap(),
        Some(dir),
    )];
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "lakeport-test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let url = format!("s3://{bucket}/storage-test-{}-{nanos}", std::process::id());
        let variable = |name: &str| std::env::var(name).ok();
        let settings = S3Settings {
            endpoint: Some(endpoint),
            region: variable("AWS_REGION"),
            access_key_id: variable("AWS_ACCESS_KEY_ID"),
            secret_access_key: variable("AWS_SECRET_ACCESS_KEY"),
            ..S3Settings::default()
        };
        stores.push((Storage::open_with(&url, &settings).unwrap(), None));
    }
    stores
}

async fn read_all(storage: &Storage, key: &Key) -> Vec<u8> {
    let mut stream = std::pin::pin!(storage.get_stream(key, None).await.unwrap());
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    read
}

/// A body larger than one part goes through a multipart upload and reads back whole (as a
/// stream, a blocking reader, or a file); one that breaks the limit midway leaves nothing
/// behind; a remote object is copied into the scratch directory for readers that need a
/// file, and the copy goes with its guard.
#[tokio::test]
async fn large_bodies_use_multipart_uploads_and_read_back_whole() {
    for (storage, _dir) in stores() {
        storage.check().await.unwrap();
        let key = keys::staged_file("ACME@AdobeOrg", "prod", "B2", "big");
        let body: Vec<u8> = (0..(2 * PART_SIZE + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(1_000_003)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let written = storage
            .put_stream(&key, futures::stream::iter(chunks), u64::MAX)
            .await
            .unwrap();
        assert_eq!(written, body.len() as u64, "{}", storage.url_of(&key));
        assert_eq!(storage.size(&key).await.unwrap(), body.len() as u64);
        assert!(
            read_all(&storage, &key).await == body,
            "{}",
            storage.url_of(&key)
        );

        let (mut reader, size) = storage.blocking_reader(&key).await.unwrap();
        assert_eq!(size, body.len() as u64);
        let streamed = tokio::task::spawn_blocking(move || {
            let mut streamed = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut streamed).map(|_| streamed)
        })
        .await
        .unwrap()
        .unwrap();
        assert!(streamed == body, "{}", storage.url_of(&key));

        let scratch = tempfile::tempdir().unwrap();
        let copy = storage.readable_file(&key, scratch.path()).await.unwrap();
        assert!(std::fs::read(copy.path()).unwrap() == body);
        let copied = copy.path().to_owned();
        drop(copy);
        assert_eq!(copied.exists(), storage.is_local(), "{}", copied.display());
        let missing = keys::staged_file("ACME@AdobeOrg", "prod", "B2", "missing");
        assert!(matches!(
            storage.readable_file(&missing, scratch.path()).await,
            Err(StorageError::NotFound { .. })
        ));

        let broken = keys::staged_file("ACME@AdobeOrg", "prod", "B2", "broken");
        let chunks = (0..30).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1 << 20])));
        let err = storage
            .put_stream(&broken, futures::stream::iter(chunks), 20 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::TooLarge { .. }), "{err}");
        assert!(matches!(
            storage.size(&broken).await.unwrap_err(),
            StorageError::NotFound { .. }
        ));
        let listed = storage
            .list_objects(&keys::staged_batch("ACME@AdobeOrg", "prod", "B2"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            storage
                .delete_prefix(&keys::staged_batch("ACME@AdobeOrg", "prod", "B2"))
                .await
                .unwrap(),
            1
        );
    }
}

/// A blocking reader whose stream ends early reports it instead of a short read.
#[test]
fn a_stream_that_ends_early_is_an_error() {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender.try_send(Ok(Bytes::from_static(b"abc"))).unwrap();
    drop(sender);
    let mut reader = BlockingReader {
        receiver,
        current: Bytes::new(),
        read: 0,
        size: 10,
    };
    let mut read = Vec::new();
    let err = std::io::Read::read_to_end(&mut reader, &mut read).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(read, b"abc");
}

#[tokio::test]
async fn a_scratch_file_is_moved_into_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().join("data").display())).unwrap();
    let scratch = dir.path().join("part-00001.parquet");
    std::fs::write(&scratch, b"parquet bytes").unwrap();
    let key = keys::attempt_file(
        &keys::attempt("ACME@AdobeOrg", "prod", "D1", "B1", 1),
        "data/part-00001.parquet",
    );
    assert_eq!(storage.move_file(&key, &scratch).await.unwrap(), 13);
    assert!(!scratch.exists(), "the scratch file was copied, not moved");
    assert_eq!(storage.size(&key).await.unwrap(), 13);
    let local = storage.local_path(&key).unwrap();
    assert_eq!(std::fs::read(local).unwrap(), b"parquet bytes");
    // A file that is gone is an error, not an empty object.
    assert!(storage.move_file(&key, &scratch).await.is_err());
}

/// A local upload is written beside its target and renamed into place: a failed, too large
/// or abandoned one leaves no file behind, and a whole one replaces the object.
#[tokio::test]
async fn a_local_upload_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let batch = keys::staged_batch("ACME@AdobeOrg", "prod", "B3");
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B3", "u1");
    let files = || {
        let parent = storage.local_path(&key).unwrap();
        let parent = parent.parent().unwrap().to_owned();
        let mut names: Vec<String> = std::fs::read_dir(parent)
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    // A body whose reading fails part-way.
    let chunks = vec![
        Ok(Bytes::from(vec![1u8; 1000])),
        Err(std::io::Error::other("connection reset")),
    ];
    let err = storage
        .put_stream(&key, futures::stream::iter(chunks), u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Body(ref m) if m.contains("connection reset")),
        "{err}"
    );
    assert!(files().is_empty(), "{:?}", files());

    // A body over the limit.
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![5u8; 1000])));
    let err = storage
        .put_stream(&key, futures::stream::iter(chunks), 4_500)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::TooLarge { limit: 4_500 }),
        "{err}"
    );
    assert!(files().is_empty(), "{:?}", files());

    // A body that stops arriving: the upload waits, and once it is abandoned (its future
    // dropped) nothing is left.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    sender.send(Ok(Bytes::from(vec![2u8; 1000]))).await.unwrap();
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let upload = storage.put_stream(&key, body, u64::MAX);
    let abandoned = tokio::time::timeout(std::time::Duration::from_millis(200), upload).await;
    assert!(
        abandoned.is_err(),
        "the upload waits for the rest of its body"
    );
    assert!(files().is_empty(), "{:?}", files());
    drop(sender);

    // A whole body replaces what was there, and only the object is left.
    for fill in [3u8, 4u8] {
        let chunks = (0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![fill; 1000])));
        let written = storage
            .put_stream(&key, futures::stream::iter(chunks), u64::MAX)
            .await
            .unwrap();
        assert_eq!(written, 5000);
    }
    let local = storage.local_path(&key).unwrap();
    let name = local.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(files(), vec![name]);
    assert_eq!(std::fs::read(local).unwrap(), vec![4u8; 5000]);
    let listed = storage.list_objects(&batch).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

/// Chunks that arrive while a write is in flight are written together: thousands of chunks
/// of every size (empty ones too) read back whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_chunks_are_written_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B4", "u1");
    let mut body = Vec::new();
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..5_000u32)
        .map(|i| {
            let chunk: Vec<u8> = (0..(i * 7919) % 3001).map(|j| (i + j) as u8).collect();
            body.extend_from_slice(&chunk);
            Ok(Bytes::from(chunk))
        })
        .collect();
    let written = storage
        .put_stream(&key, futures::stream::iter(chunks), u64::MAX)
        .await
        .unwrap();
    assert_eq!(written, body.len() as u64);
    assert_eq!(read_all(&storage, &key).await, body);
}

/// A body of `count` chunks of 100,000 bytes, each filled with its index, sent one at a time
/// with a pause between them, so that a reader catches up with the upload.
fn trickled(count: u8) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::iter(0..count).then(|index| async move {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        Ok(Bytes::from(vec![index; 100_000]))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_upload_is_read_whole_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "watched");
    let watch = UploadWatch::new();
    // The reader starts before the upload does and reads small pieces.
    let mut reader = watch.reader();
    let reading = std::thread::spawn(move || {
        let mut read = Vec::new();
        let mut buffer = [0u8; 7_777];
        loop {
            match std::io::Read::read(&mut reader, &mut buffer) {
                Ok(0) => return Ok(read),
                Ok(count) => read.extend_from_slice(&buffer[..count]),
                Err(err) => return Err(err.to_string()),
            }
        }
    });
    let written = storage
        .put_stream_watched(&key, trickled(40), u64::MAX, None, Some(watch.clone()))
        .await
        .unwrap();
    let read = reading.join().unwrap().unwrap();
    assert_eq!(written, 4_000_000);
    assert!(watch.ended());
    assert_eq!(read, read_all(&storage, &key).await);
    assert_eq!(read[3_999_999], 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_upload_that_fails_fails_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "too-large");
    let watch = UploadWatch::new();
    let reader = watch.reader();
    let reading = std::thread::spawn(move || {
        std::io::copy(&mut { reader }, &mut std::io::sink()).map_err(|err| err.to_string())
    });
    let err = storage
        .put_stream_watched(&key, trickled(40), 2_500_000, None, Some(watch.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { .. }), "{err}");
    let failed = reading.join().unwrap().unwrap_err();
    assert!(failed.contains("did not complete"), "{failed}");
    // A reader started after the failure fails at once, though bytes were written.
    assert!(std::io::Read::read(&mut watch.reader(), &mut [0u8; 16]).is_err());
    assert!(storage.size(&key).await.is_err());
}

/// Only a local directory is watched; on S3 (when the tests have a server) the watch fails
/// at once and the upload is stored as usual.
#[tokio::test]
async fn a_watch_follows_local_uploads_only() {
    for (storage, _dir) in stores() {
        let watch = UploadWatch::new();
        let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", "either");
        storage
            .put_stream_watched(&key, trickled(2), u64::MAX, None, Some(watch.clone()))
            .await
            .unwrap();
        assert_eq!(read_all(&storage, &key).await.len(), 200_000);
        let mut read = Vec::new();
        let result = std::io::Read::read_to_end(&mut watch.reader(), &mut read);
        if storage.is_local() {
            assert_eq!(result.unwrap(), 200_000);
        } else {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("local directory"), "{err}");
        }
    }
}
