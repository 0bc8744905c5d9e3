//! What the benchmark programs share: the child processes they start,
//! channels that carry the benchmark's key with the server's transport
//! windows, the large file's chunks, and the figures' medians and spreads.
//! Each program includes it with `#[path = "shared/mod.rs"] mod shared;`
//! and uses what it needs.
#![allow(dead_code)]

use std::{net::SocketAddr, path::PathBuf, process::Child, time::Duration};

use bytes::Bytes;
use futures_util::Stream;
use mediastore::pb::v1::{
    self as pb, media_service_client::MediaServiceClient,
    upload_service_client::UploadServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
};

/// One MiB.
pub const MIB: usize = 1024 * 1024;
/// Transport window used by the server by default, and so by every side
/// of every measurement here.
pub const WINDOW: u32 = 16 * MIB as u32;
/// The admin key the benchmarked server starts with (`--bootstrap-key`).
pub const BENCH_KEY: &str = "msk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// Sends the benchmark's key with every call, as a client stub's
/// interceptor would.
#[derive(Clone)]
pub struct Bearer(pub MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel whose calls carry the key.
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

pub fn sibling_exe(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    me.with_file_name(name)
}

/// A channel to `addr` with the server's transport windows, once it answers.
pub async fn channel_to(addr: SocketAddr) -> Channel {
    channel_with_key(addr, BENCH_KEY).await
}

/// [`channel_to`] with another key.
pub async fn channel_with_key(addr: SocketAddr, key: &str) -> Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("endpoint: {e}"))
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW);
    let bearer = Bearer(
        format!("Bearer {key}")
            .parse()
            .unwrap_or_else(|e| panic!("key metadata: {e}")),
    );
    for _ in 0..600 {
        if let Ok(ch) = endpoint.connect().await {
            return InterceptedService::new(ch, bearer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answers at {addr}");
}

pub async fn connect(addr: SocketAddr) -> MediaServiceClient<Channel> {
    MediaServiceClient::new(channel_to(addr).await)
        .max_decoding_message_size(64 * MIB)
        .max_encoding_message_size(64 * MIB)
}

pub async fn upload_client(addr: SocketAddr) -> UploadServiceClient<Channel> {
    UploadServiceClient::new(channel_to(addr).await).max_encoding_message_size(64 * MIB)
}

/// The large file as shared 1 MiB chunks; `variant` changes one byte so
/// each round uploads new content (no dedupe).
pub fn chunks(seed: &[u8], size_mib: usize, variant: u8) -> Vec<Bytes> {
    let mut xof = blake3::Hasher::new().update(seed).finalize_xof();
    (0..size_mib)
        .map(|i| {
            let mut buf = vec![0u8; MIB];
            xof.fill(&mut buf);
            if i == 0 {
                buf[0] = variant;
            }
            Bytes::from(buf)
        })
        .collect()
}

pub fn upload_stream(
    chunks: Vec<Bytes>,
    filename: String,
) -> impl Stream<Item = pb::UploadMediaRequest> + Send + 'static {
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let header = pb::UploadMediaRequest {
        header: Some(pb::UploadHeader {
            filename,
            content_type: "application/octet-stream".into(),
            size_bytes: Some(size),
            ..Default::default()
        }),
        ..Default::default()
    };
    futures_util::stream::iter(
        std::iter::once(header).chain(chunks.into_iter().map(|data| pb::UploadMediaRequest {
            data,
            ..Default::default()
        })),
    )
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// "median (min–max)" of the rounds' figures, with `decimals`.
pub fn spread(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.d$} ({lo:.d$}–{hi:.d$})",
        median(v.to_vec()),
        d = decimals
    )
}

pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the background MD5 of media `id` is recorded (a 1 GiB
/// file takes the digest thread about 2 s).
pub async fn md5_done(client: &mut MediaServiceClient<Channel>, id: &str) {
    for _ in 0..600 {
        let media = client
            .get_media(pb::GetMediaRequest {
                media_id: id.to_string(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("get media: {e}"))
            .into_inner()
            .media;
        if media.is_some_and(|m| !m.md5.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the MD5 of media {id} was not recorded within a minute");
}
