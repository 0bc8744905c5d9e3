//! Imports from a URL: a file from a local HTTP server (allowlisted),
//! stored with its hash and analysis; every request forgery case refused
//! when not allowlisted, at the call for an address in the URL and by the
//! job for names and redirects; too-large and too-slow downloads refused
//! and cleaned up; an overloaded source retried.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use mediastore::pb::v1::{self as pb, job_service_client::JobServiceClient};
use tonic::Code;

use crate::common::*;

/// The source server's files and behaviours.
fn source_routes(photo: Vec<u8>, big: usize) -> Router {
    let flaky = Arc::new(AtomicUsize::new(0));
    let photo = Bytes::from(photo);
    let p1 = photo.clone();
    let p2 = photo.clone();
    Router::new()
        .route(
            "/photos/beach%20day.jpg",
            get(move || async move { ([(header::CONTENT_TYPE, "image/jpeg")], p1) }),
        )
        .route(
            "/flaky.jpg",
            get(move || {
                let flaky = Arc::clone(&flaky);
                let photo = p2.clone();
                async move {
                    if flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        photo.into_response()
                    }
                }
            }),
        )
        .route("/missing.jpg", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/to-private",
            get(|| async { redirect("http://10.0.0.1/secret.jpg") }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/hop",
            get(|| async { redirect("/photos/beach%20day.jpg") }),
        )
        .route("/loop", get(|| async { redirect("/loop") }))
        .route("/big.bin", get(move || async move { vec![7u8; big] }))
        .route(
            "/big-chunked.bin",
            get(move || async move {
                // No Content-Length: the limit must stop the stream itself.
                let chunks = futures_util::stream::iter(
                    (0..big / 65536 + 1)
                        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 65536]))),
                );
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/slow.bin",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |n| async move {
                    if n >= 100 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(b"slow bytes")),
                        n + 1,
                    ))
                });
                Body::from_stream(chunks)
            }),
        )
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// Serves the source on an ephemeral loopback port.
async fn source(photo: Vec<u8>, big: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, source_routes(photo, big))
            .await
            .unwrap();
    });
    addr
}

/// A server whose imports may reach 127.0.0.1 (the source) on any port.
async fn importing_server(tweak: impl FnOnce(&mut mediastore::config::Config)) -> TestServer {
    TestServer::spawn_with(|c| {
        c.import_allow = "127.0.0.1".into();
        c.import_ports = "any".into();
        c.job_poll_ms = 50;
        c.job_retry_base_ms = 50;
        c.job_retry_max_secs = 1;
        tweak(c);
    })
    .await
}

async fn import(
    s: &TestServer,
    url: &str,
    header: Option<pb::UploadHeader>,
    max_attempts: Option<u32>,
) -> Result<pb::Job, tonic::Status> {
    s.client
        .clone()
        .import_media(pb::ImportMediaRequest {
            source_url: url.to_string(),
            header,
            options: Some(pb::JobOptions {
                max_attempts,
                ..Default::default()
            }),
        })
        .await
        .map(|r| r.into_inner().job.unwrap())
}

/// Waits for the job's end.
async fn ended(s: &TestServer, id: &str) -> pb::Job {
    let mut jobs = JobServiceClient::new(channel(s.addr).await);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let job = jobs
            .get_job(pb::GetJobRequest {
                job_id: id.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        if matches!(
            pb::JobStatus::try_from(job.status).unwrap(),
            pb::JobStatus::Succeeded | pb::JobStatus::Failed | pb::JobStatus::Cancelled
        ) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job still running: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn result_text(job: &pb::Job, name: &str) -> String {
    match job
        .result
        .as_ref()
        .and_then(|r| r.fields.get(name))
        .and_then(|v| v.kind.clone())
    {
        Some(prost_types::value::Kind::StringValue(s)) => s,
        other => panic!("{name} is {other:?} in {job:?}"),
    }
}

fn status(job: &pb::Job) -> pb::JobStatus {
    pb::JobStatus::try_from(job.status).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_stores_the_file_with_its_hash_and_analysis() {
    let photo = jpeg_with_exif();
    let src = source(photo.clone(), 0).await;
    let mut s = importing_server(|_| {}).await;
    let mut folders = pb::folder_service_client::FolderServiceClient::new(channel(s.addr).await);
    let folder = folders
        .create_folder(pb::CreateFolderRequest {
            name: "imports".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let job = import(
        &s,
        &format!("http://{src}/hop"),
        Some(pb::UploadHeader {
            parent_folder_id: folder.id.clone(),
            title: "Beach".into(),
            tags: vec!["summer".into()],
            ..Default::default()
        }),
        None,
    )
    .await
    .unwrap();
    assert_eq!(job.kind, "import");
    let end = ended(&s, &job.id).await;
    assert_eq!(status(&end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(end.attempts, 1);
    assert_eq!(result_text(&end, "blake3"), blake3_hex(&photo));
    assert_eq!(
        result_text(&end, "source_url"),
        format!("http://{src}/photos/beach%20day.jpg")
    );
    let media = get_media(&mut s.client, &result_text(&end, "media_id")).await;
    assert_eq!(media.blake3, blake3_hex(&photo));
    assert_eq!(media.size_bytes, photo.len() as u64);
    assert_eq!(media.mime_type, "image/jpeg");
    assert_eq!((media.width, media.height), (64, 32));
    assert!(!media.exif.is_empty() && media.taken_time.is_some());
    assert_eq!(media.parent_folder_id, folder.id);
    assert_eq!(media.title, "Beach");
    assert_eq!(media.tags, vec!["summer".to_string()]);
    // Named after the URL's last path segment (the one asked for: the
    // header had no name), decoded.
    assert_eq!(media.filename, "hop");
    let (_, bytes) = read(&mut s.client, &media.id, 0, 0).await.unwrap();
    assert_eq!(bytes, photo);

    // Straight to the file: its name is the URL's.
    let job = import(
        &s,
        &format!("http://{src}/photos/beach%20day.jpg"),
        None,
        None,
    )
    .await
    .unwrap();
    let end = ended(&s, &job.id).await;
    let media = get_media(&mut s.client, &result_text(&end, "media_id")).await;
    assert_eq!(media.filename, "beach day.jpg");
    assert!(matches!(
        end.result.unwrap().fields["deduplicated"].kind,
        Some(prost_types::value::Kind::BoolValue(true))
    ));
    assert_storage_sound(&s).await;
    let _ = &mut s;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_forgery_case_is_refused_when_not_allowlisted() {
    let photo = jpeg_with_exif();
    let src = source(photo, 0).await;
    // Any port, but no allowlist: loopback is refused like the rest.
    let mut s = TestServer::spawn_with(|c| {
        c.import_ports = "any".into();
        c.job_poll_ms = 50;
    })
    .await;
    let port = src.port();
    for url in [
        format!("http://127.0.0.1:{port}/photos/beach%20day.jpg"),
        format!("http://[::1]:{port}/x.jpg"),
        "http://10.0.0.1/x.jpg".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://[::ffff:127.0.0.1]:{port}/x.jpg"),
        "http://[64:ff9b::a9fe:a9fe]/x".to_string(),
        "http://0.0.0.0/x.jpg".to_string(),
        "http://2130706433/x.jpg".to_string(),
        "http://0x7f.1/x.jpg".to_string(),
        "ftp://example.com/x.jpg".to_string(),
        "file:///etc/passwd".to_string(),
        "gopher://example.com/".to_string(),
        "http://user:secret@example.com/x.jpg".to_string(),
        "not a url".to_string(),
        String::new(),
    ] {
        let err = import(&s, &url, None, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{url}: {err:?}");
        assert_eq!(bad_field(&err).as_deref(), Some("source_url"), "{url}");
        if url.starts_with("http://") && !url.contains('@') {
            assert_eq!(
                reason(&err),
                "SOURCE_NOT_ALLOWED",
                "{url}: {}",
                err.message()
            );
        }
    }
    let err = import(&s, "http://[::1]/x.jpg", None, None)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("::1 is a loopback address"),
        "{}",
        err.message()
    );
    let err = import(&s, "http://169.254.169.254/", None, None)
        .await
        .unwrap_err();
    assert!(err.message().contains("link-local"), "{}", err.message());
    // Only the configured ports.
    let default_ports = TestServer::spawn().await;
    let err = import(&default_ports, "http://example.com:8080/x.jpg", None, None)
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "SOURCE_NOT_ALLOWED");
    assert!(err.message().contains("port 8080"), "{}", err.message());

    // A name that resolves to loopback: refused by the job, after
    // resolving, and not retried.
    let job = import(
        &s,
        &format!("http://localhost:{port}/photos/beach%20day.jpg"),
        None,
        None,
    )
    .await
    .unwrap();
    let end = ended(&s, &job.id).await;
    assert_eq!(status(&end), pb::JobStatus::Failed, "{end:?}");
    assert_eq!(end.attempts, 1);
    assert!(
        end.last_error.contains("localhost resolves to") && end.last_error.contains("loopback"),
        "{}",
        end.last_error
    );
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_from_an_allowed_host_to_an_internal_address_is_refused() {
    let src = source(jpeg_with_exif(), 0).await;
    let mut s = importing_server(|_| {}).await;
    for (path, what) in [
        ("/to-private", "10.0.0.1 is a private address"),
        ("/to-metadata", "169.254.169.254 is a link-local address"),
        ("/loop", "more than 5 redirects"),
        ("/missing.jpg", "HTTP 404"),
    ] {
        let job = import(&s, &format!("http://{src}{path}"), None, None)
            .await
            .unwrap();
        let end = ended(&s, &job.id).await;
        assert_eq!(status(&end), pb::JobStatus::Failed, "{path}: {end:?}");
        assert_eq!(end.attempts, 1, "{path}: not worth a retry");
        assert!(end.last_error.contains(what), "{path}: {}", end.last_error);
    }
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_source_is_retried_until_it_answers() {
    let photo = jpeg_with_exif();
    let src = source(photo.clone(), 0).await;
    let s = importing_server(|_| {}).await;
    let job = import(&s, &format!("http://{src}/flaky.jpg"), None, Some(3))
        .await
        .unwrap();
    let end = ended(&s, &job.id).await;
    assert_eq!(status(&end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(end.attempts, 3);
    assert!(end.last_error.contains("503"), "{}", end.last_error);
    assert_eq!(result_text(&end, "blake3"), blake3_hex(&photo));
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_and_too_slow_downloads_are_refused_and_leave_nothing() {
    let big = 2 * MIB;
    let src = source(jpeg_with_exif(), big).await;
    let mut s = importing_server(|c| {
        c.max_upload_size = MIB as u64;
        c.import_timeout_secs = 1;
    })
    .await;
    for path in ["/big.bin", "/big-chunked.bin"] {
        let job = import(&s, &format!("http://{src}{path}"), None, None)
            .await
            .unwrap();
        let end = ended(&s, &job.id).await;
        assert_eq!(status(&end), pb::JobStatus::Failed, "{path}: {end:?}");
        assert_eq!(end.attempts, 1, "{path}: a limit is not worth a retry");
        assert!(
            end.last_error.contains("at most 1048576 bytes"),
            "{path}: {}",
            end.last_error
        );
    }
    let job = import(&s, &format!("http://{src}/slow.bin"), None, Some(1))
        .await
        .unwrap();
    let end = ended(&s, &job.id).await;
    assert_eq!(status(&end), pb::JobStatus::Failed, "{end:?}");
    assert!(end.last_error.contains("timed out"), "{}", end.last_error);
    assert_nothing_left(&mut s).await;
}
