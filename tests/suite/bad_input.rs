//! Every bad upload and bad id gets the right code and leaves nothing
//! behind: no media row, no blob, no staged file.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::common::*;
use bytes::Bytes;
use futures_util::StreamExt;
use mediastore::pb::v1::{DeleteMediaRequest, GetMediaRequest, UploadMediaRequest};
use tonic::Code;

/// A header followed by `chunks` chunks of 1 MiB, counting how many the
/// client actually pulled (sent or buffered).
fn endless(
    h: mediastore::pb::v1::UploadHeader,
    chunks: usize,
    pulled: Arc<AtomicUsize>,
) -> impl futures_util::Stream<Item = UploadMediaRequest> + Send + 'static {
    let block = Bytes::from(content("endless", MIB));
    futures_util::stream::iter(std::iter::once(head(h))).chain(
        futures_util::stream::iter(0..chunks).map(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
            chunk(block.clone())
        }),
    )
}

async fn expect_upload_error(
    s: &mut TestServer,
    msgs: Vec<UploadMediaRequest>,
    code: Code,
    why: &str,
    field: Option<&str>,
) {
    let err = upload_raw(&mut s.client, tokio_stream::iter(msgs))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(reason(&err), why, "{err:?}");
    assert!(!err.message().is_empty());
    if let Some(field) = field {
        assert_eq!(bad_field(&err).as_deref(), Some(field), "{err:?}");
    }
    assert_nothing_left(s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_shape_errors() {
    let mut s = TestServer::spawn().await;
    // No header at all: an empty stream.
    expect_upload_error(
        &mut s,
        vec![],
        Code::InvalidArgument,
        "STREAM_INVALID",
        Some("header"),
    )
    .await;
    // A chunk before the header.
    expect_upload_error(
        &mut s,
        vec![chunk(vec![1; 10]), head(header("a.bin", 10))],
        Code::InvalidArgument,
        "STREAM_INVALID",
        Some("header"),
    )
    .await;
    // The header twice (after some bytes, so a pipeline may have started).
    expect_upload_error(
        &mut s,
        vec![
            head(header("a.bin", 2 * MIB)),
            chunk(content("x", MIB)),
            head(header("a.bin", 2 * MIB)),
            chunk(content("y", MIB)),
        ],
        Code::InvalidArgument,
        "STREAM_INVALID",
        Some("header"),
    )
    .await;
    // A clean end with neither finish_write nor a declared size, after
    // some bytes or none: nothing tells a whole upload from a cut one.
    let mut h = header("a.bin", 0);
    h.size_bytes = None;
    for data in [&b""[..], b"some bytes", &content("big", 3 * MIB)] {
        let mut msgs = upload_messages(h.clone(), data, MIB);
        for m in &mut msgs {
            m.finish_write = false;
        }
        expect_upload_error(
            &mut s,
            msgs,
            Code::InvalidArgument,
            "FINISH_WRITE_MISSING",
            Some("finish_write"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn size_and_checksum_errors() {
    let mut s = TestServer::spawn().await;
    let data = content("sizes", 3 * MIB);
    // Fewer bytes than declared, small and large.
    for len in [100, 3 * MIB] {
        expect_upload_error(
            &mut s,
            upload_messages(header("a.bin", len + 1), &data[..len], MIB),
            Code::InvalidArgument,
            "SIZE_MISMATCH",
            Some("header.size_bytes"),
        )
        .await;
    }
    // More bytes than declared.
    expect_upload_error(
        &mut s,
        upload_messages(header("a.bin", 10), &data[..11], MIB),
        Code::InvalidArgument,
        "SIZE_MISMATCH",
        Some("header.size_bytes"),
    )
    .await;
    // Checksum mismatches.
    let mut h = header("a.bin", data.len());
    h.expected_blake3 = blake3_hex(b"something else");
    expect_upload_error(
        &mut s,
        upload_messages(h, &data, MIB),
        Code::InvalidArgument,
        "CHECKSUM_MISMATCH",
        Some("header.expected_blake3"),
    )
    .await;
    let mut h = header("a.bin", 100);
    h.expected_md5 = md5_hex(b"something else");
    expect_upload_error(
        &mut s,
        upload_messages(h, &data[..100], MIB),
        Code::InvalidArgument,
        "CHECKSUM_MISMATCH",
        Some("header.expected_md5"),
    )
    .await;
    // Malformed checksums are refused up front.
    let mut h = header("a.bin", 1);
    h.expected_blake3 = "abc".into();
    expect_upload_error(
        &mut s,
        upload_messages(h, b"x", MIB),
        Code::InvalidArgument,
        "FIELD_INVALID",
        Some("header.expected_blake3"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn going_over_the_declared_size_is_refused_before_the_stream_ends() {
    let mut s = TestServer::spawn().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let err = upload_raw(
        &mut s.client,
        endless(header("a.bin", MIB), 400, Arc::clone(&pulled)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("header.size_bytes"));
    let n = pulled.load(Ordering::SeqCst);
    assert!(
        n < 100,
        "the client got to send {n} of 400 MiB before the refusal"
    );
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_over_the_maximum_are_refused_early() {
    let mut s = TestServer::spawn_with(|c| c.max_upload_size = 4 * MIB as u64).await;
    // Declared too large: refused on the header.
    let pulled = Arc::new(AtomicUsize::new(0));
    let err = upload_raw(
        &mut s.client,
        endless(header("a.bin", 400 * MIB), 400, Arc::clone(&pulled)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("4194304"), "{}", err.message());
    assert!(pulled.load(Ordering::SeqCst) < 100);
    assert_nothing_left(&mut s).await;

    // Undeclared size: refused once the bytes pass the limit.
    let mut h = header("a.bin", 0);
    h.size_bytes = None;
    let pulled = Arc::new(AtomicUsize::new(0));
    let err = upload_raw(&mut s.client, endless(h, 400, Arc::clone(&pulled)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(pulled.load(Ordering::SeqCst) < 100);
    assert_nothing_left(&mut s).await;

    // A chunk over the max message size.
    let mut s = TestServer::spawn_with(|c| c.max_message_size = 1024 * 1024).await;
    let mut h = header("a.bin", 0);
    h.size_bytes = None;
    let err = upload_raw(
        &mut s.client,
        tokio_stream::iter(vec![head(h), chunk(vec![0; 2 * MIB])]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cancelling_mid_stream_leaves_nothing() {
    let mut s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(4);
    let call = tokio::spawn(async move {
        upload_raw(&mut client, tokio_stream::wrappers::ReceiverStream::new(rx)).await
    });
    tx.send(head(header("a.bin", 64 * MIB))).await.unwrap();
    for i in 0..4 {
        tx.send(chunk(content(&format!("c{i}"), MIB)))
            .await
            .unwrap();
    }
    // The pipeline has started: a staged file exists.
    eventually("the upload is being staged", || s.staged_files() == 1).await;
    call.abort();
    drop(tx);
    eventually("the staged file is removed", || s.staged_files() == 0).await;
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_ids() {
    let mut s = TestServer::spawn().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let err = s
        .client
        .get_media(GetMediaRequest {
            media_id: unknown.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "MEDIA_NOT_FOUND");
    assert!(err.message().contains(&unknown));
    let err = read(&mut s.client, &unknown, 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = s
        .client
        .delete_media(DeleteMediaRequest {
            media_id: unknown,
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for bad in [
        "",
        "not-a-uuid",
        "../../etc/passwd",
        "0193a5c2-7c1e-7b3a-9f1e",
    ] {
        let err = s
            .client
            .get_media(GetMediaRequest {
                media_id: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(bad_field(&err).as_deref(), Some("media_id"));
        let why = if bad.is_empty() {
            "FIELD_REQUIRED"
        } else {
            "FIELD_INVALID"
        };
        assert_eq!(reason(&err), why, "{bad}");
        let err = read(&mut s.client, bad, 0, 0).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        let err = s
            .client
            .delete_media(DeleteMediaRequest {
                media_id: bad.into(),
                force: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }

    // An unknown folder in the header.
    let mut h = header("a.bin", 1);
    h.parent_folder_id = uuid::Uuid::now_v7().to_string();
    expect_upload_error(
        &mut s,
        upload_messages(h, b"x", MIB),
        Code::NotFound,
        "FOLDER_NOT_FOUND",
        None,
    )
    .await;
    let mut h = header("a.bin", 1);
    h.parent_folder_id = "nope".into();
    expect_upload_error(
        &mut s,
        upload_messages(h, b"x", MIB),
        Code::InvalidArgument,
        "FIELD_INVALID",
        Some("header.parent_folder_id"),
    )
    .await;

    // Page tokens and sizes.
    let err = s
        .client
        .list_media(mediastore::pb::v1::ListMediaRequest {
            page_size: 10,
            page_token: "forged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("page_token"));
    assert_eq!(reason(&err), "PAGE_TOKEN_INVALID");
    let err = s
        .client
        .list_media(mediastore::pb::v1::ListMediaRequest {
            page_size: -1,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "FIELD_INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn filenames_are_stored_safely_or_refused() {
    let mut s = TestServer::spawn().await;
    // Paths are reduced to their last component; the original is kept.
    for (sent, stored) in [
        ("../../etc/passwd", "passwd"),
        ("a/b/../c.txt", "c.txt"),
        (r"C:\Users\me\photo.jpg", "photo.jpg"),
        ("/abs/olute.png", "olute.png"),
    ] {
        let m = upload(&mut s.client, header(sent, 3), b"abc")
            .await
            .unwrap()
            .media
            .unwrap();
        assert_eq!(m.filename, stored);
        assert_eq!(m.original_filename, sent);
        // Nothing was written outside the blob store.
        assert!(!s.dir.path().join(stored).exists());
        s.client
            .delete_media(DeleteMediaRequest {
                media_id: m.id,
                force: false,
            })
            .await
            .unwrap();
    }
    let long = "x".repeat(10_000);
    for bad in ["", "..", "a/..", "dir/", "a\0b", "tab\there", long.as_str()] {
        let why = if bad.is_empty() {
            "FIELD_REQUIRED"
        } else {
            "FIELD_INVALID"
        };
        expect_upload_error(
            &mut s,
            upload_messages(header(bad, 3), b"abc", MIB),
            Code::InvalidArgument,
            why,
            Some("header.filename"),
        )
        .await;
    }
}
