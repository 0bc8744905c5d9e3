//! Reference counts under concurrency: identical bytes uploaded, deleted
//! and read at the same moment never lose a referenced blob nor keep an
//! unreferenced one. After each round a scrub finds every referenced blob
//! present and correct, and garbage collection finds nothing to remove.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::*;
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
                c2.delete_media(DeleteMediaRequest { id, force: false })
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
        assert!(s.blob_path(&second.blake3).exists());
        assert_storage_sound(&s).await;
        let gone = c
            .delete_media(DeleteMediaRequest {
                id: second.id,
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            gone.blob_removed,
            "round {round}: the blob outlived its media"
        );
        assert_eq!(s.blob_files(), 0, "round {round}");
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
    assert_eq!(s.blob_files(), 1);
    assert_storage_sound(s).await;
    let mut c = s.client.clone();
    for (n, id) in ids.iter().enumerate() {
        let gone = c
            .delete_media(DeleteMediaRequest {
                id: id.clone(),
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(gone.blob_removed, n == ids.len() - 1);
    }
    assert_eq!(s.blob_files(), 0);
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
            deleter.delete_media(DeleteMediaRequest { id, force: false }),
        );
        deleted.unwrap();
        match got {
            Ok((_, bytes)) => assert!(
                bytes == data,
                "round {round}: a racing read got wrong bytes"
            ),
            Err(e) => assert_eq!(e.code(), Code::NotFound, "round {round}: {e:?}"),
        }
        assert_eq!(s.blob_files(), 0);
        assert_storage_sound(&s).await;
    }
}
