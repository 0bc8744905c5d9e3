//! Small blobs stored inline in the database: where the threshold falls,
//! dedupe, ranges, renditions, resumable uploads, the scrub, garbage
//! collection, and blobs stored inline before the threshold was lowered.
//! (A kill -9 during small uploads is in `durability`.)

use std::sync::Arc;

use crate::common::*;
use mediastore::{
    blob::fs::FsBlobStore,
    library::{Library, Limits},
    pb::v1::{CollectGarbageRequest, DeleteMediaRequest},
    repo::Repo,
};
use tonic::Code;

/// The default inline size.
const INLINE: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_at_the_threshold_is_inline_and_one_byte_over_is_a_file() {
    let mut s = TestServer::spawn().await;
    for (len, inline) in [(INLINE, true), (INLINE + 1, false), (0, true), (1, true)] {
        let data = content(&format!("edge-{len}"), len);
        let m = upload(&mut s.client, header("e.bin", len), &data)
            .await
            .unwrap()
            .media
            .unwrap();
        assert_eq!(
            s.inline_bytes(&m.blake3).await.is_some(),
            inline,
            "{len} bytes inline"
        );
        assert_eq!(
            s.blob_path(&m.blake3).exists(),
            !inline,
            "{len} bytes a file"
        );
        // Small uploads know their MD5 at once.
        assert_eq!(!m.md5.is_empty(), inline, "{len} bytes: md5 {:?}", m.md5);
        let (_, bytes) = read(&mut s.client, &m.id, 0, 0).await.unwrap();
        assert!(bytes == data, "{len} bytes read back");
    }
    assert_eq!(s.staged_files(), 0);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inline_blob_is_shared_by_a_second_upload_until_both_go() {
    let mut s = TestServer::spawn().await;
    let data = content("shared", 4096);
    let a = upload(&mut s.client, header("a.bin", data.len()), &data)
        .await
        .unwrap();
    let b = upload(&mut s.client, header("b.bin", data.len()), &data)
        .await
        .unwrap();
    assert!(!a.deduplicated && b.deduplicated);
    let (a, b) = (a.media.unwrap(), b.media.unwrap());
    assert_eq!(a.md5, b.md5);
    assert_eq!((s.stored_blobs().await, s.blob_files()), (1, 0));
    let mut deleted = Vec::new();
    for m in [&a, &b] {
        let gone = s
            .client
            .delete_media(DeleteMediaRequest {
                media_id: m.id.clone(),
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        deleted.push(gone.blob_removed);
        if !gone.blob_removed {
            let (_, bytes) = read(&mut s.client, &b.id, 0, 0).await.unwrap();
            assert!(bytes == data, "the survivor reads");
        }
    }
    assert_eq!(deleted, [false, true]);
    assert_eq!(s.stored_blobs().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_of_an_inline_blob() {
    let mut s = TestServer::spawn().await;
    let data = content("ranges", 10_000);
    let m = upload(&mut s.client, header("r.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert!(s.inline_bytes(&m.blake3).await.is_some());
    for (offset, limit, want) in [
        (0i64, 1u64, &data[..1]),
        (1234, 4000, &data[1234..5234]),
        (9_000, 5_000, &data[9_000..]),
        (-100, 0, &data[9_900..]),
        (-100, 10, &data[9_900..9_910]),
        (-20_000, 0, &data[..]),
        (10_000, 0, &data[10_000..]),
    ] {
        let (first, bytes) = read(&mut s.client, &m.id, offset, limit).await.unwrap();
        assert!(bytes == want, "offset {offset} limit {limit}");
        let range = first.content_range.unwrap();
        assert_eq!(
            (range.length, range.complete_length),
            (want.len() as u64, 10_000)
        );
    }
    let e = read(&mut s.client, &m.id, 10_001, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_inline_blob_is_quarantined_by_the_scrub_and_reads_as_data_loss() {
    let mut s = TestServer::spawn().await;
    let good = content("good", 3000);
    let bad = content("bad", 5000);
    let good_m = upload(&mut s.client, header("g.bin", good.len()), &good)
        .await
        .unwrap()
        .media
        .unwrap();
    let bad_m = upload(&mut s.client, header("b.bin", bad.len()), &bad)
        .await
        .unwrap()
        .media
        .unwrap();
    s.flip_a_byte(&bad_m.blake3, 4321).await;
    let found = scrub(&s).await.pop().unwrap();
    assert_eq!(found.blobs_checked, 2);
    assert_eq!(found.corrupt_blake3, vec![bad_m.blake3.clone()]);
    // Kept aside for inspection, out of reach of reads.
    assert!(s.inline_bytes(&bad_m.blake3).await.is_none());
    let kept = s
        .sql(
            "UPDATE inline_quarantine SET hash = hash WHERE hash = $1",
            [bad_m.blake3.clone().into()],
        )
        .await;
    assert_eq!(kept, 1);
    let e = read(&mut s.client, &bad_m.id, 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    let e = read(&mut s.client, &bad_m.id, 10, 10).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    let (_, bytes) = read(&mut s.client, &good_m.id, 0, 0).await.unwrap();
    assert!(bytes == good);
    // Missing from then on, and nothing else.
    let again = scrub(&s).await.pop().unwrap();
    assert_eq!(again.missing_blake3, vec![bad_m.blake3]);
    assert!(again.corrupt_blake3.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_an_unreferenced_inline_blob() {
    let mut s = TestServer::spawn().await;
    let kept = content("kept", 2000);
    let kept_m = upload(&mut s.client, header("k.bin", kept.len()), &kept)
        .await
        .unwrap()
        .media
        .unwrap();
    // What a crash between a delete's commit and the release of its bytes
    // leaves: a row at no references, and its inline bytes.
    let orphan = content("orphan", 3000);
    let hash = blake3_hex(&orphan);
    s.sql(
        "INSERT INTO blobs (hash, size, refcount, md5, created_at) VALUES ($1, 3000, 0, NULL, 0)",
        [hash.clone().into()],
    )
    .await;
    s.sql(
        "INSERT INTO inline_blobs (hash, data) VALUES ($1, $2)",
        [hash.clone().into(), orphan.clone().into()],
    )
    .await;
    assert_eq!(s.stored_blobs().await, 2);
    let r = admin(&s)
        .await
        .collect_garbage(CollectGarbageRequest { min_age: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.blobs_removed, 1);
    assert!(s.inline_bytes(&hash).await.is_none());
    assert_eq!(s.stored_blobs().await, 1);
    let (_, bytes) = read(&mut s.client, &kept_m.id, 0, 0).await.unwrap();
    assert!(bytes == kept);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renditions_of_inline_sources_are_inline_too() {
    let mut s = TestServer::spawn().await;
    let png = encoded(image::ImageFormat::Png, 120, 80);
    assert!(png.len() <= INLINE);
    let m = upload(&mut s.client, header("p.png", png.len()), &png)
        .await
        .unwrap()
        .media
        .unwrap();
    let req = mediastore::pb::v1::GetRenditionRequest {
        media_id: m.id.clone(),
        width: 30,
        ..Default::default()
    };
    let (r, cached, bytes) = rendition(&mut s.client, req.clone()).await.unwrap();
    assert!(!cached);
    assert_eq!((r.width, r.height), (30, 20));
    assert_eq!(s.inline_bytes(&r.blake3).await.as_deref(), Some(&bytes[..]));
    assert_eq!(s.blob_files(), 0, "no file for either");
    let (_, cached, again) = rendition(&mut s.client, req).await.unwrap();
    assert!(cached && again == bytes);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_resumable_upload_ends_inline_and_its_file_goes() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("resumable-small", 20_000);
    let u = start_upload(&mut c, header("r.bin", data.len())).await;
    let first = send_pieces(&mut c, vec![piece(&u.id, 0, &data[..7000], false)])
        .await
        .unwrap();
    assert_eq!(first.committed_size, 7000);
    let done = send_pieces(&mut c, vec![piece(&u.id, 7000, &data[7000..], true)])
        .await
        .unwrap();
    let m = done.media.unwrap();
    assert_eq!(m.blake3, blake3_hex(&data));
    assert!(!m.md5.is_empty());
    assert!(s.inline_bytes(&m.blake3).await.is_some());
    assert_eq!(count_files(&s.dir.path().join("uploads")), 0);
    assert_eq!(s.blob_files(), 0);
    let mut client = connect(s.addr).await;
    let (_, bytes) = read(&mut client, &m.id, 0, 0).await.unwrap();
    assert!(bytes == data);
}

/// Lowering the inline size (to 0: files only) keeps blobs stored inline
/// before readable, shareable and deletable; new small blobs are files.
#[tokio::test(flavor = "multi_thread")]
async fn blobs_stored_inline_stay_readable_after_the_threshold_is_lowered() {
    let mut s = TestServer::spawn().await;
    let data = content("before", 30_000);
    let before = upload(&mut s.client, header("b.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert!(s.inline_bytes(&before.blake3).await.is_some());

    // A second library on the same database and directory, as a restart
    // with `--inline-max-size 0` would open.
    let repo = Repo::connect(&s.config.database_url()).await.unwrap();
    let store = Arc::new(FsBlobStore::open(s.dir.path()).unwrap());
    let limits = Limits {
        inline_max_size: 0,
        ..Limits::new(1 << 30)
    };
    let files_only = Library::start(repo, store, limits).await.unwrap();
    let id = mediastore::domain::MediaId::parse("id", &before.id).unwrap();
    let opened = files_only
        .open(mediastore::domain::TenantId::DEFAULT, id, 0, 0)
        .await
        .unwrap();
    let mut buf = vec![0u8; data.len()];
    let n = opened.reader.read_at(&mut buf, 0).unwrap();
    assert!(n == data.len() && buf == data);
    let report = files_only.scrub(|_| Ok(())).await.unwrap();
    assert!(report.is_clean() && report.checked == 1, "{report:?}");
    assert!(
        files_only
            .delete(mediastore::domain::TenantId::DEFAULT, id, false)
            .await
            .unwrap()
    );
    // The bytes go after the delete answers, by the library that deleted.
    files_only.deletions_settled().await;
    assert_eq!(s.stored_blobs().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_storage_can_be_turned_off() {
    let mut s = TestServer::spawn_with(|c| c.inline_max_size = 0).await;
    let data = content("off", 100);
    let m = upload(&mut s.client, header("o.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert!(s.blob_path(&m.blake3).exists());
    assert!(s.inline_bytes(&m.blake3).await.is_none());
    let (_, bytes) = read(&mut s.client, &m.id, 0, 0).await.unwrap();
    assert!(bytes == data);
}

/// Two tenants storing the same new small bytes at the same moment (so in
/// one batch, often): one inline row, each tenant told it is the first to
/// hold them exactly once, and both read them back.
#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_storing_the_same_small_bytes_at_once_share_one_row() {
    use mediastore::pb::v1::media_service_client::MediaServiceClient;
    let s = TestServer::spawn().await;
    let other = new_tenant(s.addr, "other").await;
    let key = new_key(s.addr, &other.id, "k", "", &["uploads:write", "media:read"]).await;
    let theirs = MediaServiceClient::new(channel_with(s.addr, Bearer::key(&key)).await);
    let ours = connect(s.addr).await;
    let data = content("together", 3000);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let mut c = if i % 2 == 0 {
            ours.clone()
        } else {
            theirs.clone()
        };
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let r = upload(&mut c, header("t.bin", data.len()), &data)
                .await
                .unwrap();
            let (_, bytes) = read(&mut c, &r.media.unwrap().id, 0, 0).await.unwrap();
            assert!(bytes == data);
            (i % 2, r.deduplicated)
        }));
    }
    let mut firsts = [0, 0];
    for t in tasks {
        let (tenant, deduplicated) = t.await.unwrap();
        if !deduplicated {
            firsts[tenant] += 1;
        }
    }
    assert_eq!(
        firsts,
        [1, 1],
        "each tenant's first upload, and only it, is new to it"
    );
    assert_eq!((s.stored_blobs().await, s.blob_files()), (1, 0));
    assert_storage_sound(&s).await;
}
