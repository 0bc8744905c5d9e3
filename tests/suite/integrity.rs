//! Scrub and garbage collection, through the admin service and the
//! `mediastore gc` / `mediastore scrub` commands.

use crate::common::*;
use mediastore::pb::v1::CollectGarbageRequest;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_quarantines_a_flipped_byte_and_reads_then_fail_with_data_loss() {
    let mut s = TestServer::spawn().await;
    let good = content("good", 3 * MIB);
    let bad = content("bad", 2 * MIB + 5);
    let good_m = upload(&mut s.client, header("good.bin", good.len()), &good)
        .await
        .unwrap()
        .media
        .unwrap();
    let bad_m = upload(&mut s.client, header("bad.bin", bad.len()), &bad)
        .await
        .unwrap()
        .media
        .unwrap();
    let clean = scrub(&s).await;
    let last = clean.last().unwrap();
    assert_eq!(
        (last.blobs_checked, last.bytes_checked),
        (2, (good.len() + bad.len()) as u64)
    );
    assert!(last.corrupt_blake3.is_empty() && last.missing_blake3.is_empty());

    s.flip_a_byte(&bad_m.blake3, MIB + 17).await;
    let found = scrub(&s).await;
    let last = found.last().unwrap();
    assert_eq!(last.blobs_checked, 2);
    assert_eq!(last.corrupt_blake3, vec![bad_m.blake3.clone()]);
    assert!(
        !s.blob_path(&bad_m.blake3).exists(),
        "moved out of the store"
    );
    assert_eq!(count_files(&s.dir.path().join("quarantine")), 1);

    let e = read(&mut s.client, &bad_m.id, 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    let (_, bytes) = read(&mut s.client, &good_m.id, 0, 0).await.unwrap();
    assert!(bytes == good);

    // The lost blob is reported as missing from now on, and nothing else.
    let again = scrub(&s).await;
    let last = again.last().unwrap();
    assert_eq!(last.missing_blake3, vec![bad_m.blake3]);
    assert!(last.corrupt_blake3.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_orphans_and_stale_files_and_keeps_what_is_referenced() {
    let mut s = TestServer::spawn().await;
    let kept = content("kept", 5000);
    let kept_m = upload(&mut s.client, header("kept.bin", kept.len()), &kept)
        .await
        .unwrap()
        .media
        .unwrap();
    // A blob file no row names (as a crash between publish and commit
    // leaves), a staged file of a crashed upload, and the file of an
    // upload that has no row.
    let orphan = content("orphan", 4096);
    let orphan_path = s.blob_path(&blake3_hex(&orphan));
    std::fs::write(&orphan_path, &orphan).unwrap();
    std::fs::write(s.dir.path().join("tmp").join("crashed.part"), b"partial").unwrap();
    std::fs::write(
        s.dir
            .path()
            .join("uploads")
            .join(uuid::Uuid::now_v7().to_string()),
        b"abandoned",
    )
    .unwrap();

    let mut a = admin(&s).await;
    // With the default grace period of an hour, nothing is old enough.
    let young = a
        .collect_garbage(CollectGarbageRequest { min_age: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(young, Default::default());
    assert!(orphan_path.exists());

    let zero = Some(prost_types::Duration::default());
    let r = a
        .collect_garbage(CollectGarbageRequest { min_age: zero })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            r.blobs_removed,
            r.blob_bytes_removed,
            r.staged_files_removed,
            r.upload_files_removed
        ),
        (1, 4096, 1, 1)
    );
    assert!(!orphan_path.exists());
    assert_eq!(count_files(&s.dir.path().join("tmp")), 0);
    assert_eq!(count_files(&s.dir.path().join("uploads")), 0);
    let (_, bytes) = read(&mut s.client, &kept_m.id, 0, 0).await.unwrap();
    assert!(bytes == kept);
    assert_storage_sound(&s).await;

    // An orphan whose bytes are then uploaded is stored again, not lost.
    std::fs::write(&orphan_path, &orphan).unwrap();
    a.collect_garbage(CollectGarbageRequest { min_age: zero })
        .await
        .unwrap();
    let again = upload(&mut s.client, header("orphan.bin", orphan.len()), &orphan)
        .await
        .unwrap()
        .media
        .unwrap();
    let (_, bytes) = read(&mut s.client, &again.id, 0, 0).await.unwrap();
    assert!(bytes == orphan);

    let negative = a
        .collect_garbage(CollectGarbageRequest {
            min_age: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&negative).as_deref(), Some("min_age"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gc_and_scrub_commands_report_as_json_with_exit_codes() {
    let mut s = TestServer::spawn().await;
    let data = content("cli", 10_000);
    let m = upload(&mut s.client, header("cli.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    let url = s.config.database_url();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"))
            .arg("--data-dir")
            .arg(s.dir.path())
            .args(["--database-url", &url, "--log", "warn"])
            .args(args)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: {e}; stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), json)
    };
    // Beside the running server.
    let (code, json) = run(&["scrub"]);
    assert_eq!(code, Some(0));
    assert_eq!(json["blobs_checked"], 1);
    let (code, json) = run(&["gc", "--min-age-secs", "0"]);
    assert_eq!(code, Some(0));
    assert_eq!(json["blobs_removed"], 0);

    s.flip_a_byte(&m.blake3, 3).await;
    let (code, json) = run(&["scrub"]);
    assert_eq!(code, Some(1), "a corrupt blob fails the command");
    assert_eq!(json["corrupt_blake3"][0], m.blake3.as_str());
    let e = read(&mut s.client, &m.id, 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss);
}
