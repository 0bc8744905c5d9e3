//! Resumable uploads through the real server: streams that break and go
//! on, re-sent and missing bytes, competing writers, cancelled, expired
//! and unknown uploads, wrong checksums, a server killed mid-upload, and a
//! large file sent in pieces over several streams.

use std::{net::SocketAddr, time::Duration};

use crate::common::*;
use mediastore::pb::v1::{self as pb, CancelUploadRequest, UploadHeader, UploadState};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

/// Sends `data[from..to]` at its offsets in `chunk`-sized messages as one
/// stream, finishing if asked.
async fn write(
    client: &mut Uploads,
    id: &str,
    data: &[u8],
    from: usize,
    to: usize,
    chunk: usize,
    finish: bool,
) -> Result<pb::Upload, Status> {
    let mut msgs = Vec::new();
    let mut at = from;
    while at < to {
        let end = (at + chunk).min(to);
        msgs.push(piece(id, at, &data[at..end], false));
        at = end;
    }
    if finish {
        match msgs.last_mut() {
            Some(last) => last.finish_write = true,
            None => msgs.push(piece(id, to, &[], true)),
        }
    }
    send_pieces(client, msgs).await
}

/// Checks that the finished upload's media holds exactly `data`.
async fn check_media(s_addr: SocketAddr, upload: &pb::Upload, data: &[u8]) {
    assert_eq!(upload.state, UploadState::Finished as i32);
    let media = upload.media.as_ref().unwrap();
    assert_eq!(media.size_bytes, data.len() as u64);
    assert_eq!(media.blake3, blake3_hex(data));
    let mut client = connect(s_addr).await;
    let (_, bytes) = read(&mut client, &media.id, 0, 0).await.unwrap();
    assert!(bytes == data, "the stored bytes differ from those sent");
}

fn upload_files(dir: &std::path::Path) -> usize {
    count_files(&dir.join("uploads"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_resumes_from_the_committed_size() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("broken", 5 * MIB + 123);
    let up = start_upload(&mut c, header("broken.bin", data.len())).await;
    assert_eq!(up.state, UploadState::Active as i32);
    assert_eq!(up.committed_size, 0);

    // Three pieces, then the client goes away mid-stream.
    let (tx, rx) = mpsc::channel(8);
    let mut writer = c.clone();
    let call = tokio::spawn(async move { writer.write_upload(ReceiverStream::new(rx)).await });
    for i in 0..3 {
        tx.send(piece(&up.id, i * MIB, &data[i * MIB..(i + 1) * MIB], false))
            .await
            .unwrap();
    }
    // The server holds the three pieces once it has recorded them, which
    // it does when the stream ends, however it ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    drop(tx);
    let mut held = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        held = query_upload(&mut c, &up.id).await.unwrap().committed_size;
        if held == 3 * MIB as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held, 3 * MIB as u64, "the server recorded what it received");

    // Go on from there; the hold of the dropped stream is released.
    let mut done = None;
    for _ in 0..100 {
        match write(&mut c, &up.id, &data, held as usize, data.len(), MIB, true).await {
            Ok(u) => {
                done = Some(u);
                break;
            }
            Err(e) if e.code() == Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("resuming failed: {e}"),
        }
    }
    let done = done.unwrap();
    check_media(s.addr, &done, &data).await;
    assert_eq!(done.committed_size, data.len() as u64);

    // Finishing again is refused; QueryUpload tells what became of it.
    let again = write(&mut c, &up.id, &data, data.len(), data.len(), MIB, true)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let q = query_upload(&mut c, &up.id).await.unwrap();
    assert_eq!(q.state, UploadState::Finished as i32);
    let media_id = done.media.unwrap().id;
    assert_eq!(q.media.unwrap().id, media_id);
    assert_eq!(
        upload_files(s.dir.path()),
        0,
        "the upload's file became the blob"
    );

    // Once its media is deleted, the upload is still described, without it.
    connect(s.addr)
        .await
        .delete_media(pb::DeleteMediaRequest {
            media_id,
            force: false,
        })
        .await
        .unwrap();
    let q = query_upload(&mut c, &up.id).await.unwrap();
    assert_eq!(q.state, UploadState::Finished as i32);
    assert!(q.media.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_bytes_are_skipped_gaps_and_changed_bytes_refused() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("overlap", 1000);
    let up = start_upload(&mut c, header("overlap.bin", data.len())).await;

    let u = write(&mut c, &up.id, &data, 0, 300, 100, false)
        .await
        .unwrap();
    assert_eq!(u.committed_size, 300);
    // A re-send overlapping what is held: the overlap is skipped.
    let u = write(&mut c, &up.id, &data, 150, 500, 120, false)
        .await
        .unwrap();
    assert_eq!(u.committed_size, 500);
    // Wholly below what is held: nothing new.
    let u = write(&mut c, &up.id, &data, 0, 200, 200, false)
        .await
        .unwrap();
    assert_eq!(u.committed_size, 500);

    // A gap: refused, naming the committed size.
    let gap = write(&mut c, &up.id, &data, 600, 700, 100, false)
        .await
        .unwrap_err();
    assert_eq!(gap.code(), Code::OutOfRange, "{gap:?}");
    assert!(
        gap.message().contains("resume from write_offset 500"),
        "{}",
        gap.message()
    );
    assert_eq!(bad_field(&gap).as_deref(), Some("write_offset"));

    // Bytes re-sent that differ from those held: refused.
    let mut changed = data.clone();
    changed[420] ^= 0xff;
    let bad = write(&mut c, &up.id, &changed, 400, 550, 150, false)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(bad_field(&bad).as_deref(), Some("data"));
    assert_eq!(
        query_upload(&mut c, &up.id).await.unwrap().committed_size,
        500
    );

    // Past the declared size: refused, and nothing of it kept.
    let mut longer = data.clone();
    longer.extend_from_slice(b"extra");
    let past = write(&mut c, &up.id, &longer, 500, longer.len(), 1000, false)
        .await
        .unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument, "{past:?}");
    assert_eq!(
        query_upload(&mut c, &up.id).await.unwrap().committed_size,
        500
    );

    // Finishing short of the declared size: refused, still resumable.
    let short = write(&mut c, &up.id, &data, 500, 900, 400, true)
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument, "{short:?}");
    assert_eq!(bad_field(&short).as_deref(), Some("finish_write"));
    let q = query_upload(&mut c, &up.id).await.unwrap();
    assert_eq!(
        (q.state, q.committed_size),
        (UploadState::Active as i32, 900)
    );

    let done = write(&mut c, &up.id, &data, 850, 1000, 100, true)
        .await
        .unwrap();
    check_media(s.addr, &done, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_writer_is_aborted_with_the_committed_size() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("two-writers", 3000);
    let up = start_upload(&mut c, header("two.bin", data.len())).await;
    write(&mut c, &up.id, &data, 0, 1000, 1000, false)
        .await
        .unwrap();

    // Two writers, each keeping its stream open after one message: the
    // second to claim the upload is refused at once, the first goes on.
    let mut senders = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = mpsc::channel(4);
        let mut w = c.clone();
        calls.push(tokio::spawn(async move {
            w.write_upload(ReceiverStream::new(rx)).await
        }));
        tx.send(piece(&up.id, 1000, &data[1000..2000], false))
            .await
            .unwrap();
        senders.push(tx);
    }
    let loser = loop {
        if let Some(i) = calls.iter().position(|c| c.is_finished()) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let refused = calls.remove(loser).await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(
        refused.message().contains("holds 1000 bytes"),
        "{}",
        refused.message()
    );
    drop(senders.remove(loser));
    let winner = senders.pop().unwrap();
    winner
        .send(piece(&up.id, 2000, &data[2000..], true))
        .await
        .unwrap();
    drop(winner);
    let done = calls
        .pop()
        .unwrap()
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    check_media(s.addr, &done, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_expired_and_unknown_uploads_are_refused() {
    let s = TestServer::spawn_with(|c| c.upload_expiry_secs = 1).await;
    let mut c = uploads(s.addr).await;
    let data = content("refused", 2000);

    // Unknown and malformed ids.
    let unknown = query_upload(&mut c, &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = write(
        &mut c,
        &uuid::Uuid::now_v7().to_string(),
        &data,
        0,
        10,
        10,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = query_upload(&mut c, "not-an-id").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&bad).as_deref(), Some("upload_id"));

    // Cancelled: writes refused, the bytes gone, cancelling again is fine.
    let up = start_upload(&mut c, header("cancel.bin", data.len())).await;
    write(&mut c, &up.id, &data, 0, 500, 500, false)
        .await
        .unwrap();
    let cancelled = c
        .cancel_upload(CancelUploadRequest {
            upload_id: up.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(cancelled.state, UploadState::Cancelled as i32);
    let e = write(&mut c, &up.id, &data, 500, 1000, 500, false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("cancelled"), "{}", e.message());
    c.cancel_upload(CancelUploadRequest {
        upload_id: up.id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(upload_files(s.dir.path()), 0);

    // Expired (after 1 s): writes refused; the sweep discards it.
    let up = start_upload(&mut c, header("expire.bin", data.len())).await;
    write(&mut c, &up.id, &data, 0, 500, 500, false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        query_upload(&mut c, &up.id).await.unwrap().state,
        UploadState::Expired as i32
    );
    let e = write(&mut c, &up.id, &data, 500, 1000, 500, false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("expired"), "{}", e.message());
    assert_eq!(s.library.sweep_uploads().await.unwrap(), 1);
    assert_eq!(upload_files(s.dir.path()), 0);
    assert_eq!(
        query_upload(&mut c, &up.id).await.unwrap().state,
        UploadState::Expired as i32
    );

    // A finished upload cannot be cancelled.
    let s2 = TestServer::spawn().await;
    let mut c2 = uploads(s2.addr).await;
    let up = start_upload(&mut c2, header("done.bin", data.len())).await;
    write(&mut c2, &up.id, &data, 0, data.len(), 700, true)
        .await
        .unwrap();
    let e = c2
        .cancel_upload(CancelUploadRequest { upload_id: up.id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_with_a_wrong_checksum_cancels_the_upload() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("checksum", 4000);
    for (field, h) in [
        (
            "header.expected_blake3",
            UploadHeader {
                expected_blake3: blake3_hex(b"something else"),
                ..header("wrong-b3.bin", data.len())
            },
        ),
        (
            "header.expected_md5",
            UploadHeader {
                expected_md5: md5_hex(b"something else"),
                ..header("wrong-md5.bin", data.len())
            },
        ),
    ] {
        let up = start_upload(&mut c, h).await;
        write(&mut c, &up.id, &data, 0, 1500, 1500, false)
            .await
            .unwrap();
        let e = write(&mut c, &up.id, &data, 1500, data.len(), 1000, true)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(bad_field(&e).as_deref(), Some(field));
        assert_eq!(
            query_upload(&mut c, &up.id).await.unwrap().state,
            UploadState::Cancelled as i32
        );
        assert_eq!(upload_files(s.dir.path()), 0);
    }
    // The right checksums pass, MD5 hashed across streams.
    let up = start_upload(
        &mut c,
        UploadHeader {
            expected_blake3: blake3_hex(&data),
            expected_md5: md5_hex(&data),
            ..header("right.bin", data.len())
        },
    )
    .await;
    write(&mut c, &up.id, &data, 0, 1500, 1500, false)
        .await
        .unwrap();
    let done = write(&mut c, &up.id, &data, 1500, data.len(), 1000, true)
        .await
        .unwrap();
    check_media(s.addr, &done, &data).await;
    assert_eq!(done.media.unwrap().md5, md5_hex(&data));
    assert_eq!(s.stored_blobs().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_mib_in_seven_mib_pieces_over_five_streams_is_byte_identical() {
    let s = TestServer::spawn().await;
    let mut c = uploads(s.addr).await;
    let data = content("big", 300 * MIB);
    let up = start_upload(&mut c, header("big.bin", data.len())).await;
    let piece_size = 7 * MIB;
    let pieces = data.len().div_ceil(piece_size);
    let per_stream = pieces.div_ceil(5);
    let mut streams = 0;
    let mut at = 0;
    let mut last = None;
    while at < data.len() {
        let to = (at + per_stream * piece_size).min(data.len());
        let u = write(&mut c, &up.id, &data, at, to, piece_size, to == data.len())
            .await
            .unwrap();
        assert_eq!(u.committed_size, to as u64);
        streams += 1;
        at = to;
        last = Some(u);
    }
    assert_eq!(streams, 5);
    check_media(s.addr, &last.unwrap(), &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_survives_sigkill_of_the_server_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    // A short hold: on PostgreSQL the killed server's hold must lapse.
    let flags = ["--upload-hold-secs", "1"];
    let mut server = start_process(dir.path(), &db_url, &flags);
    let mut c = uploads(server.addr).await;
    let data = content("killed", 6 * MIB + 7);
    let up = start_upload(&mut c, header("killed.bin", data.len())).await;

    // One stream sends 4 MiB slowly (the server records every second), and
    // the server is killed while it is still open.
    let (tx, rx) = mpsc::channel(8);
    let mut writer = c.clone();
    let call = tokio::spawn(async move { writer.write_upload(ReceiverStream::new(rx)).await });
    for i in 0..4 {
        tx.send(piece(&up.id, i * MIB, &data[i * MIB..(i + 1) * MIB], false))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(tx);
    let _ = call.await;

    let server = start_process(dir.path(), &db_url, &flags);
    let mut c = uploads(server.addr).await;
    let q = query_upload(&mut c, &up.id).await.unwrap();
    assert_eq!(q.state, UploadState::Active as i32);
    let held = q.committed_size as usize;
    assert!(held > 0 && held <= 4 * MIB, "held {held}");
    let mut done = None;
    for _ in 0..100 {
        match write(&mut c, &up.id, &data, held, data.len(), MIB, true).await {
            Ok(u) => {
                done = Some(u);
                break;
            }
            Err(e) if e.code() == Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("resuming after the restart failed: {e}"),
        }
    }
    check_media(server.addr, &done.unwrap(), &data).await;
}
