//! Uploads and reads through the real server: round trips, ranges, dedupe.

use crate::common::*;
use mediastore::pb::v1::{DeleteMediaRequest, GetMediaRequest};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_mib_round_trip_is_byte_identical_with_both_hashes() {
    let mut s = TestServer::spawn().await;
    let data = content("fifty", 50 * MIB);
    let mut h = header("big.bin", data.len());
    h.title = "Big file".into();
    h.tags = vec!["a".into(), " b ".into(), "a".into()];
    let media = upload(&mut s.client, h, &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(media.size_bytes, data.len() as u64);
    assert_eq!(media.blake3, blake3_hex(&data));
    assert_eq!(media.title, "Big file");
    assert_eq!(media.tags, vec!["a", "b"]);
    assert!(media.ready);

    let (first, bytes) = read(&mut s.client, &media.id, 0, 0).await.unwrap();
    assert_eq!(first.media.unwrap().id, media.id);
    assert!(bytes == data, "downloaded bytes differ");

    // MD5 is filled in the background, after the acknowledgement.
    let want_md5 = md5_hex(&data);
    let mut md5 = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        md5 = s
            .client
            .get_media(GetMediaRequest {
                media_id: media.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .media
            .unwrap()
            .md5;
        if !md5.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(md5, want_md5);
    assert_eq!(s.staged_files(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expected_md5_is_verified_inline_and_returned_at_once() {
    let mut s = TestServer::spawn().await;
    let data = content("md5", 3 * MIB + 5);
    let mut h = header("m.bin", data.len());
    h.expected_md5 = md5_hex(&data);
    h.expected_blake3 = blake3_hex(&data).to_uppercase();
    let media = upload(&mut s.client, h, &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(media.md5, md5_hex(&data));
}

#[tokio::test(flavor = "multi_thread")]
async fn ranged_reads_cover_start_middle_end_and_past_the_end() {
    let mut s = TestServer::spawn().await;
    let len = 3 * MIB + 17;
    let data = content("ranges", len);
    let id = upload(&mut s.client, header("r.bin", len), &data)
        .await
        .unwrap()
        .media
        .unwrap()
        .id;

    let cases: &[(i64, u64, std::ops::Range<usize>)] = &[
        (0, 100, 0..100),                       // start
        (MIB as i64 - 3, 10, MIB - 3..MIB + 7), // middle, across a chunk boundary
        (1000, 2 * MIB as u64, 1000..1000 + 2 * MIB),
        ((len - 10) as i64, 0, len - 10..len), // end, to the end
        ((len - 10) as i64, 1000, len - 10..len), // limit cut at the end
        (-25, 0, len - 25..len),               // suffix
        (-(len as i64) - 5, 10, 0..10),        // suffix longer than the media
        (len as i64, 0, len..len),             // exactly at the end: no bytes
    ];
    for (offset, limit, want) in cases {
        let (first, bytes) = read(&mut s.client, &id, *offset, *limit).await.unwrap();
        let range = first.content_range.unwrap();
        assert_eq!(range.start as usize, want.start, "offset {offset}");
        assert_eq!(range.length as usize, want.len(), "offset {offset}");
        assert_eq!(range.complete_length as usize, len);
        assert!(bytes == data[want.clone()], "offset {offset} limit {limit}");
    }

    let err = read(&mut s.client, &id, len as i64 + 1, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(bad_field(&err).as_deref(), Some("read_offset"));
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_uploads_share_one_blob_until_both_are_deleted() {
    let mut s = TestServer::spawn().await;
    let data = content("dedupe", 2 * MIB + 1);
    let a = upload(&mut s.client, header("a.bin", data.len()), &data)
        .await
        .unwrap();
    let b = upload(&mut s.client, header("b.bin", data.len()), &data)
        .await
        .unwrap();
    assert!(!a.deduplicated);
    assert!(b.deduplicated);
    let (a, b) = (a.media.unwrap(), b.media.unwrap());
    assert_ne!(a.id, b.id);
    assert_eq!(a.blake3, b.blake3);
    assert_eq!(s.stored_blobs().await, 1);
    // The second copy is dropped once the upload is answered.
    eventually("the duplicate's staged copy is dropped", || {
        s.staged_files() == 0
    })
    .await;

    let gone = s
        .client
        .delete_media(DeleteMediaRequest {
            media_id: a.id.clone(),
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!gone.blob_removed);
    let (_, bytes) = read(&mut s.client, &b.id, 0, 0).await.unwrap();
    assert!(bytes == data);
    assert_eq!(s.stored_blobs().await, 1);
    let err = read(&mut s.client, &a.id, 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let gone = s
        .client
        .delete_media(DeleteMediaRequest {
            media_id: b.id.clone(),
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.blob_removed);
    assert_eq!(s.stored_blobs().await, 0);
    assert!(!s.has_blob(&b.blake3).await);
    assert!(list_all(&mut s.client).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn small_and_empty_uploads_work_and_list_newest_first() {
    let mut s = TestServer::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let data = content(&format!("small{i}"), i * 1000);
        let m = upload(
            &mut s.client,
            header(&format!("f{i}.txt"), data.len()),
            &data,
        )
        .await
        .unwrap()
        .media
        .unwrap();
        assert_eq!(m.size_bytes as usize, data.len());
        assert_eq!(m.title, format!("f{i}"));
        let (_, bytes) = read(&mut s.client, &m.id, 0, 0).await.unwrap();
        assert!(bytes == data);
        ids.push(m.id);
    }
    // Pages of 3: newest first, nothing twice, nothing missing.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .client
            .list_media(mediastore::pb::v1::ListMediaRequest {
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.media.len() <= 3);
        seen.extend(page.media.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
}
