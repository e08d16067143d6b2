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
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", &["day=1", "x.json"]);
    assert_eq!(
        key.as_ref(),
        "staging/ACME@AdobeOrg/prod/B1/files/day=1/x.json"
    );
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

#[tokio::test]
async fn streams_in_and_out_with_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let key = keys::staged_file("ACME@AdobeOrg", "prod", "B1", &["a", "b.json"]);
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

    let too_big = keys::staged_file("ACME@AdobeOrg", "prod", "B1", &["big"]);
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
