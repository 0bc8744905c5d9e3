//! Reference counts under concurrency: identical bytes uploaded, deleted
//! and read at the same moment never lose a referenced blob nor keep an
//! unreferenced one. After each round a scrub finds every referenced blob
//! present and correct, and garbage collection finds nothing to remove.

use std::time::Duration;

use crate::common::*;
use mediastore::pb::v1::DeleteMediaRequest;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn delete_racing_an_upload_of_the_same_bytes_keeps_the_survivor_readable() {
    let s = TestServer::spawn().await;
    for round in 0..25 {
        // Small and large (pipelined) uploads alternate.
        let len = if round % 2 == 0 { 1000 } else { MIB + 1 };
        let data = content(&format!("race-{round}"), len);
        let mut c1 = s.client.clone();
        let first = upload(&mut c1, header("a.bin", len), &data)
            .await
            .unwrap()
            .media
            .unwrap();
        let mut c2 = s.client.clone();
        let mut c3 = s.client.clone();
        let id = first.id.clone();
        let (deleted, second) = tokio::join!(
            async move {
                c2.delete_media(DeleteMediaRequest {
                    media_id: id,
                    force: false,
                })
                .await
            },
            upload(&mut c3, header("b.bin", len), &data),
        );
        deleted.unwrap();
        let second = second.unwrap().media.unwrap();
        let mut c = s.client.clone();
        let (_, bytes) = read(&mut c, &second.id, 0, 0).await.unwrap();
        assert!(
            bytes == data,
            "round {round}: the surviving media reads wrong"
        );
        assert!(s.has_blob(&second.blake3).await);
        assert_storage_sound(&s).await;
        let gone = c
            .delete_media(DeleteMediaRequest {
                media_id: second.id,
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            gone.blob_removed,
            "round {round}: the blob outlived its media"
        );
        assert_eq!(s.stored_blobs().await, 0, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_uploads_share_one_blob() {
    let s = TestServer::spawn().await;
    for round in 0..10 {
        identical_uploads_round(&s, round).await;
    }
}

async fn identical_uploads_round(s: &TestServer, round: usize) {
    // Small (buffered) and large (pipelined) uploads alternate.
    let len = if round.is_multiple_of(2) {
        700 * 1024
    } else {
        1000
    };
    let data = content(&format!("same-{round}"), len);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = s.client.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            upload(&mut c, header(&format!("{i}.bin"), data.len()), &data)
                .await
                .unwrap()
        }));
    }
    let mut fresh = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        fresh += usize::from(!r.deduplicated);
        ids.push(r.media.unwrap().id);
    }
    assert_eq!(
        fresh, 1,
        "round {round}: exactly one upload stores the bytes"
    );
    assert_eq!(s.stored_blobs().await, 1);
    assert_storage_sound(s).await;
    let mut c = s.client.clone();
    for (n, id) in ids.iter().enumerate() {
        let gone = c
            .delete_media(DeleteMediaRequest {
                media_id: id.clone(),
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(gone.blob_removed, n == ids.len() - 1);
    }
    assert_eq!(s.stored_blobs().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_racing_a_read_gives_all_the_bytes_or_not_found() {
    let s = TestServer::spawn().await;
    for round in 0..10 {
        let data = content(&format!("read-race-{round}"), 8 * MIB);
        let mut c = s.client.clone();
        let id = upload(&mut c, header("r.bin", data.len()), &data)
            .await
            .unwrap()
            .media
            .unwrap()
            .id;
        let mut reader = s.client.clone();
        let mut deleter = s.client.clone();
        let rid = id.clone();
        let (got, deleted) = tokio::join!(
            async move { read(&mut reader, &rid, 0, 0).await },
            deleter.delete_media(DeleteMediaRequest {
                media_id: id,
                force: false
            }),
        );
        deleted.unwrap();
        match got {
            Ok((_, bytes)) => assert!(
                bytes == data,
                "round {round}: a racing read got wrong bytes"
            ),
            Err(e) => assert_eq!(e.code(), Code::NotFound, "round {round}: {e:?}"),
        }
        assert_eq!(s.stored_blobs().await, 0);
        assert_storage_sound(&s).await;
    }
}

/// A media deleted while renditions of new sizes are being made, or while
/// it is read, is gone: the answer is the whole result or NOT_FOUND, never
/// DATA_LOSS (which operators alert on, and which must mean corruption).
/// Four renditions at once: those waiting for a decoding slot meet the
/// delete between their look-up of the media and their read of its bytes.
#[tokio::test(flavor = "multi_thread")]
async fn renditions_and_reads_racing_deletes_answer_ok_or_not_found() {
    let s = TestServer::spawn().await;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..60u32 {
        // A new picture each round, so every rendition is decoded afresh.
        let jpeg = encoded(image::ImageFormat::Jpeg, 640 + round, 480);
        let mut c = s.client.clone();
        let id = upload(&mut c, header("race.jpg", jpeg.len()), &jpeg)
            .await
            .unwrap()
            .media
            .unwrap()
            .id;
        let renditions = (0..4u32).map(|k| {
            let mut client = s.client.clone();
            let req = mediastore::pb::v1::GetRenditionRequest {
                media_id: id.clone(),
                width: 20 + 4 * round + k,
                ..Default::default()
            };
            tokio::spawn(async move { rendition(&mut client, req).await })
        });
        let renditions: Vec<_> = renditions.collect();
        let (mut reader, mut deleter) = (s.client.clone(), s.client.clone());
        let rid = id.clone();
        let pause = Duration::from_millis(u64::from(round % 26));
        let (read_back, deleted) = tokio::join!(
            async move { read(&mut reader, &rid, 0, 0).await },
            async move {
                tokio::time::sleep(pause).await;
                deleter
                    .delete_media(DeleteMediaRequest {
                        media_id: id,
                        force: false,
                    })
                    .await
            },
        );
        deleted.unwrap();
        for made in renditions {
            match made.await.unwrap() {
                Ok((r, _, bytes)) => {
                    assert_eq!(r.size_bytes, bytes.len() as u64, "round {round}");
                    *outcomes.entry("rendition ok".into()).or_default() += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), Code::NotFound, "round {round}: {e:?}");
                    *outcomes.entry("rendition not found".into()).or_default() += 1;
                }
            }
        }
        match read_back {
            Ok((_, bytes)) => assert_eq!(bytes, jpeg, "round {round}"),
            Err(e) => assert_eq!(e.code(), Code::NotFound, "round {round}: {e:?}"),
        }
    }
    // Nothing is left of sixty deleted pictures and their renditions.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while s.stored_blobs().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until every blob is released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_storage_sound(&s).await;
    eprintln!("outcomes: {outcomes:?}");
}

/// Many clients upload overlapping contents at once while the background
/// MD5s of the first copies are recorded: blob rows are claimed by the
/// uploads and updated by the MD5 recorder at the same time. Every media
/// ends up with its MD5 (a deadlock, which PostgreSQL resolves by failing
/// one transaction, would leave some without it).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_and_md5_recording_never_leave_an_md5_out() {
    let s = TestServer::spawn().await;
    const CLIENTS: usize = 8;
    const POOL: usize = 40;
    let pool: Vec<Vec<u8>> = (0..POOL)
        .map(|i| content(&format!("md5-pool-{i}"), 4096 + i))
        .collect();
    let pool = std::sync::Arc::new(pool);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = s.client.clone();
        let pool = std::sync::Arc::clone(&pool);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..60 {
                // Each client walks the pool in its own order.
                let data = &pool[(k * (2 * c + 1) + c) % POOL];
                let m = upload(&mut client, header("p.bin", data.len()), data)
                    .await
                    .unwrap()
                    .media
                    .unwrap();
                ids.push((m.id, md5_hex(data)));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut c = s.client.clone();
    for (id, want) in all {
        let mut got = String::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            got = get_media(&mut c, &id).await.md5;
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(got, want, "media {id}");
    }
}

/// The MD5 recorder and an upload's claims lock blob rows in the same
/// (hash) order. Here a claim holds the lower row while the recorder is
/// given both in the other order; the claim then takes the higher row.
/// Were the recorder to lock in the order given, each would wait for the
/// other: PostgreSQL would fail one of them with `deadlock detected`.
#[tokio::test(flavor = "multi_thread")]
async fn md5_recording_and_claims_lock_blob_rows_in_one_order() {
    use mediastore::{domain::ContentHash, repo::BlobClaim};
    let s = TestServer::spawn().await;
    let repo = s.library.repo().clone();
    let (lo, hi) = (ContentHash([1; 32]), ContentHash([2; 32]));
    let claim = |hash| BlobClaim {
        hash,
        content: hash,
        size: 1,
        md5: None,
        count: 1,
    };
    // Two blob rows without an MD5.
    let mut tx = repo.begin().await.unwrap();
    tx.claim_blobs(&[claim(lo), claim(hi)]).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = repo.begin().await.unwrap();
    tx.claim_blobs(&[claim(lo)]).await.unwrap();
    let recorder = {
        let repo = repo.clone();
        tokio::spawn(async move {
            repo.set_md5s(&[(hi, "0".repeat(32)), (lo, "1".repeat(32))])
                .await
        })
    };
    // Time for the recorder to lock what it can before the claim goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.claim_blobs(&[claim(hi)]).await.unwrap();
    tx.commit().await.unwrap();
    recorder.await.unwrap().unwrap();
}
