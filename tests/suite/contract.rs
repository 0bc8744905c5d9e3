//! The promises a client in any language relies on: an upload is stored
//! only on a positive end (never when the stream is reset, cancelled or
//! cut by its deadline), expired deadlines answer DEADLINE_EXCEEDED, and
//! every error names a documented reason.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use mediastore::pb::v1::{UploadHeader, UploadMediaRequest};
use prost::Message;
use tonic::Code;

use crate::common::*;

/// One gRPC message as it travels in DATA frames: an uncompressed flag, a
/// 4-byte big-endian length, the protobuf bytes.
fn grpc_frame(msg: &UploadMediaRequest) -> Bytes {
    let body = msg.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(body.len()).unwrap());
    out.put_slice(&body);
    out.freeze()
}

/// A new h2 connection to the server, with no gRPC library in between.
async fn raw_client(addr: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.unwrap()
}

/// Opens an UploadMedia call on a raw h2 connection; `timeout` is a
/// `grpc-timeout` value.
fn open_upload(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: std::net::SocketAddr,
    timeout: Option<&str>,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut req = http::Request::post(format!(
        "http://{addr}/mediastore.v1.MediaService/UploadMedia"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {TEST_KEY}"));
    if let Some(t) = timeout {
        req = req.header("grpc-timeout", t);
    }
    client.send_request(req.body(()).unwrap(), false).unwrap()
}

/// Sends a whole upload (header and every byte) in DATA frames on a new
/// connection, then resets the stream with `CANCEL` instead of ending it,
/// at once or after `pause` (so the server has read the bytes first). A
/// connection per upload: h2 servers answer a burst of resets on one
/// connection with GOAWAY (the rapid-reset defence).
async fn upload_then_reset(
    addr: std::net::SocketAddr,
    h: UploadHeader,
    data: &[u8],
    pause: Duration,
) {
    let mut client = raw_client(addr).await;
    let (_response, mut stream) = open_upload(&mut client, addr, None);
    stream.send_data(grpc_frame(&head(h)), false).unwrap();
    stream
        .send_data(grpc_frame(&chunk(Bytes::copy_from_slice(data))), false)
        .unwrap();
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    stream.send_reset(h2::Reason::CANCEL);
}

/// How many media the server lists, after giving in-flight calls time to
/// end (a stored upload would show by then).
async fn settled_media_count(s: &mut TestServer) -> usize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    list_all(&mut s.client).await.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_reset_after_its_last_bytes_is_never_stored() {
    let mut s = TestServer::spawn().await;
    for declared in [false, true] {
        for i in 0..200 {
            let data = content(&format!("reset-{declared}-{i}"), 1000 + i);
            let mut h = header(&format!("r{i}.bin"), data.len());
            if !declared {
                h.size_bytes = None;
            }
            let pause = Duration::from_millis(if i % 2 == 0 { 0 } else { 2 });
            upload_then_reset(s.addr, h, &data, pause).await;
        }
        assert_eq!(
            settled_media_count(&mut s).await,
            0,
            "a reset upload was stored (declared size: {declared})"
        );
    }
    assert_nothing_left(&mut s).await;
}

/// The generated client's own ways of giving up: dropping the call (as
/// `call.cancel()` does in other languages) and a deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_or_timed_out_upload_is_never_stored() {
    let mut s = TestServer::spawn().await;
    // The request streams stay open until the end: a sender dropped
    // earlier would end a stream cleanly (END_STREAM) before the reset,
    // which, after a declared size, is a finished upload.
    let mut open = Vec::new();
    for i in 0..50 {
        let data = content(&format!("cancel-{i}"), 2000);
        let mut h = header("c.bin", data.len());
        if i % 2 == 0 {
            h.size_bytes = None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(4);
        let mut client = s.client.clone();
        let call = tokio::spawn(async move {
            upload_raw(&mut client, tokio_stream::wrappers::ReceiverStream::new(rx)).await
        });
        tx.send(head(h)).await.unwrap();
        tx.send(chunk(data)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        call.abort();
        let _ = call.await;
        open.push(tx);
    }
    assert_eq!(settled_media_count(&mut s).await, 0);

    // A deadline that passes after the last byte, before any positive end.
    for i in 0..20 {
        let data = content(&format!("late-{i}"), 2000);
        let mut h = header("d.bin", 0);
        h.size_bytes = None;
        let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(4);
        tx.send(head(h)).await.unwrap();
        tx.send(chunk(data)).await.unwrap();
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        req.set_timeout(Duration::from_millis(50));
        let err = s.client.upload_media(req).await.unwrap_err();
        // tonic's client keeps the same deadline and, when its own timer
        // fires first, reports CANCELLED 'Timeout expired' itself; the
        // server's answer is tested below with a bare HTTP/2 client.
        assert!(
            matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{err:?}"
        );
        open.push(tx);
    }
    assert_eq!(settled_media_count(&mut s).await, 0);
    assert_nothing_left(&mut s).await;
    drop(open);
}

/// Uploads `msgs` and reads back what was stored.
async fn stored_bytes(s: &mut TestServer, msgs: Vec<UploadMediaRequest>) -> Vec<u8> {
    let m = upload_raw(&mut s.client, tokio_stream::iter(msgs))
        .await
        .unwrap()
        .media
        .unwrap();
    read(&mut s.client, &m.id, 0, 0).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread")]
async fn finish_write_stores_and_a_declared_size_must_match_it() {
    let mut s = TestServer::spawn().await;
    let mut h = header("f.bin", 0);
    h.size_bytes = None;
    let finish = |data: &'static [u8]| UploadMediaRequest {
        data: Bytes::from_static(data),
        finish_write: true,
        ..Default::default()
    };
    // finish_write on the last data message, without a declared size.
    let msgs = vec![head(h.clone()), chunk(&b"hello "[..]), finish(b"world")];
    assert_eq!(stored_bytes(&mut s, msgs).await, b"hello world");
    // finish_write alone, on a message of its own; the header's message
    // may carry bytes too; messages after the finish are ignored.
    let msgs = vec![
        UploadMediaRequest {
            header: Some(h.clone()),
            data: Bytes::from_static(b"one "),
            finish_write: false,
        },
        chunk(&b"two"[..]),
        finish(b""),
        chunk(&b" ignored"[..]),
    ];
    assert_eq!(stored_bytes(&mut s, msgs).await, b"one two");
    // An empty file, finished by its header's message.
    let msgs = vec![UploadMediaRequest {
        header: Some(h),
        finish_write: true,
        ..Default::default()
    }];
    assert!(stored_bytes(&mut s, msgs).await.is_empty());
    // finish_write short of a declared size.
    let err = upload_raw(
        &mut s.client,
        tokio_stream::iter(vec![head(header("short.bin", 10)), finish(b"12345")]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "SIZE_MISMATCH");
    assert_eq!(list_all(&mut s.client).await.len(), 3);
}

/// The status of an answer, read from its headers (a trailers-only
/// answer) or its trailers.
async fn grpc_status(response: h2::client::ResponseFuture) -> tonic::Status {
    let response = response.await.unwrap();
    if let Some(s) = tonic::Status::from_header_map(response.headers()) {
        return s;
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        data.unwrap();
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    tonic::Status::from_header_map(&trailers).expect("a grpc-status")
}

/// 100 calls whose deadlines pass while the server is still waiting on
/// them: every one is answered DEADLINE_EXCEEDED (4) by the server. A bare
/// HTTP/2 client sends them, so the code seen is the server's (tonic's
/// own client would race the server with a timer of its own).
#[tokio::test(flavor = "multi_thread")]
async fn expired_deadlines_answer_deadline_exceeded_every_time() {
    let mut s = TestServer::spawn().await;
    let mut client = raw_client(s.addr).await;
    let mut calls = Vec::new();
    for i in 0..100u64 {
        let timeout = format!("{}m", 1 + i % 40);
        let (response, mut stream) = open_upload(&mut client, s.addr, Some(&timeout));
        // A deadline of a millisecond may have ended the call before its
        // header is sent (h2 then refuses the data: the stream is closed);
        // the answer, read below, is what is checked.
        if let Err(e) = stream.send_data(grpc_frame(&head(header("slow.bin", 10))), false) {
            assert!(
                e.to_string().contains("inactive stream") || e.is_reset(),
                "{e:?}"
            );
        }
        // The stream stays open, without its bytes: only the deadline can
        // end the call.
        calls.push(tokio::spawn(async move {
            let status = grpc_status(response).await;
            drop(stream);
            status
        }));
    }
    for call in calls {
        let status = call.await.unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(reason(&status), "DEADLINE_EXPIRED");
    }
    assert_eq!(list_all(&mut s.client).await.len(), 0);

    // A server stream still running at its deadline ends with
    // DEADLINE_EXCEEDED in its trailers: the client reads slowly, so the
    // server (whose windows hold 16 MiB) is still sending 40 MiB.
    let data = content("long", 40 * MIB);
    let m = upload(&mut s.client, header("long.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    let mut req = tonic::Request::new(mediastore::pb::v1::ReadMediaRequest {
        media_id: m.id,
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(300));
    let mut stream = s.client.read_media(req).await.unwrap().into_inner();
    let mut got = 0;
    let end = loop {
        match stream.next().await {
            Some(Ok(msg)) => {
                got += msg.data.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some(Err(e)) => break e,
            None => panic!("the whole stream arrived after its deadline"),
        }
    };
    assert!(got < data.len());
    assert_eq!(end.code(), Code::DeadlineExceeded, "{end:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reason_the_server_can_send_is_documented() {
    use mediastore::error::Reason;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut missing = Vec::new();
    for n in 1..=i32::from(u8::MAX) {
        if let Ok(r) = Reason::try_from(n)
            && !readme.contains(&format!("`{}`", r.as_str_name()))
        {
            missing.push(r.as_str_name());
        }
    }
    assert!(
        missing.is_empty(),
        "the README's error table lacks {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_cuts_calls_at_its_request_timeout_and_caps_streams_per_connection() {
    let mut s = TestServer::spawn_with(|c| {
        c.request_timeout_secs = 1;
        c.max_concurrent_streams = 3;
    })
    .await;
    // An upload that never sends its bytes ends at the server's limit,
    // without any grpc-timeout of its own, and stores nothing.
    let mut client = raw_client(s.addr).await;
    let (response, mut stream) = open_upload(&mut client, s.addr, None);
    stream
        .send_data(grpc_frame(&head(header("stalled.bin", 10))), false)
        .unwrap();
    let status = grpc_status(response).await;
    drop(stream);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXPIRED");
    assert!(status.message().contains("--request-timeout-secs"));
    assert_eq!(list_all(&mut s.client).await.len(), 0);

    // The connection's settings carry the stream limit.
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    // The server's SETTINGS arrive as the connection is driven; a request
    // makes sure they have been read.
    let (response, _body) = open_upload(&mut send, s.addr, None);
    let limit = tokio::select! {
        _ = &mut conn => panic!("the connection ended"),
        _ = response => conn.max_concurrent_send_streams(),
    };
    assert_eq!(limit, 3);
}
