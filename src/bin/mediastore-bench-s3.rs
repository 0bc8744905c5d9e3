//! S3 benchmark: the service on a real Garage node, against Garage itself
//! in the same run (the machine is noisy, so only ratios mean much).
//!
//! Run with `cargo build --release --bins && ./target/release/mediastore-bench-s3`
//! (it starts the release `mediastore` binary built next to it, and Garage
//! from `MEDIASTORE_GARAGE_BIN` or `.ci/run`'s cache). Measures:
//!
//! - (a) a 1 GiB upload through the service into Garage (UploadMedia, 1 MiB
//!   chunks; the server sends it on as a multipart upload to a temporary
//!   key while it arrives, then copies it to its name in the bucket)
//!   against the same bytes put straight into Garage by a multipart client
//!   (8 MiB parts, 4 in flight, from memory);
//! - (a') the same upload through the service on the local directory, to
//!   show what the object store costs the service;
//! - (b) the server's peak RSS (VmHWM) over the whole run;
//! - (c) downloading it through the service (ReadMedia) against ranged GETs
//!   of the object straight from Garage (8 MiB ranges, 4 in flight);
//! - (d) 4 KiB uploads a second from 32 clients with Garage as the blob
//!   store against the same server on the local directory, in alternating
//!   rounds (small blobs stay in the database on both, so the ratio should
//!   be about 1).

#[path = "shared/mod.rs"]
mod shared;

use std::{net::SocketAddr, process::Command, time::Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use futures_util::{StreamExt, TryStreamExt, stream};
use http::Method;
use mediastore::{
    blob::s3::{
        client::{Call, Client, Endpoint},
        garage::Garage,
        sign::Signer,
    },
    pb::v1 as pb,
};

use self::shared::*;

/// Part size of the direct client, as the server's default.
const PART: usize = 8 * MIB;
/// Parts (or ranges) in flight on the direct client, as the server's.
const IN_FLIGHT: usize = 4;
const SMALL: usize = 4096;

/// One round's figures.
struct Round {
    /// Upload seconds: Garage direct, the service on Garage, the service
    /// on the local directory.
    up_direct: f64,
    up_service: f64,
    up_local: f64,
    /// Download seconds: Garage direct, the service.
    down_direct: f64,
    down_service: f64,
    /// 4 KiB uploads a second: local directory, Garage.
    small_local: f64,
    small_s3: f64,
}

#[derive(Debug, Parser)]
#[command(about = "mediastore S3 benchmark (Garage)")]
struct Args {
    /// Size of the large file, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Repetitions of each measurement (median kept, spread shown).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent clients for small uploads.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Small uploads per round and server.
    #[arg(long, default_value_t = 3200)]
    small_count: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// A client of the bucket, straight to Garage.
fn direct_client(garage: &Garage) -> std::io::Result<Client> {
    let s = garage.settings("");
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Client::new(
        Endpoint {
            https: false,
            host: "127.0.0.1".into(),
            port: garage.nodes[0].s3_port,
            bucket: s.bucket,
            path_style: true,
        },
        Signer {
            access_key: s.access_key,
            secret_key: s.secret_key,
            region: s.region,
        },
        roots,
        std::time::Duration::from_secs(120),
    )
}

/// Puts `parts` as one object by a multipart upload, `IN_FLIGHT` parts
/// at a time; seconds taken.
async fn direct_put(client: &Client, key: &str, parts: &[Bytes]) -> f64 {
    let start = Instant::now();
    let made = client
        .send(Method::POST, &Call::on(key).query("uploads", ""))
        .await
        .expect("CreateMultipartUpload");
    let body = String::from_utf8_lossy(&made.body);
    let id = mediastore::blob::s3::xml::first(&body, "UploadId").expect("an UploadId");
    let etags: Vec<String> = stream::iter(parts.iter().enumerate())
        .map(|(i, part)| {
            let call = Call::on(key)
                .query("partNumber", (i + 1).to_string())
                .query("uploadId", id.clone())
                .body(part.clone());
            async move {
                let a = client.send(Method::PUT, &call).await?;
                Ok::<_, std::io::Error>(
                    a.headers
                        .get(http::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                )
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
        .expect("UploadPart");
    let mut doc = String::from("<CompleteMultipartUpload>");
    for (i, tag) in etags.iter().enumerate() {
        doc.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            tag.replace('"', "&quot;")
        ));
    }
    doc.push_str("</CompleteMultipartUpload>");
    client
        .send(
            Method::POST,
            &Call::on(key).query("uploadId", id).body(Bytes::from(doc)),
        )
        .await
        .expect("CompleteMultipartUpload");
    start.elapsed().as_secs_f64()
}

/// Reads `len` bytes of `key` by ranged GETs, `IN_FLIGHT` at a time;
/// seconds taken.
async fn direct_get(client: &Client, key: &str, len: usize) -> f64 {
    let start = Instant::now();
    let got: usize = stream::iter((0..len).step_by(PART))
        .map(|at| {
            let last = (at + PART).min(len) - 1;
            let call = Call::on(key).header("range", format!("bytes={at}-{last}"));
            async move { client.send(Method::GET, &call).await.map(|a| a.body.len()) }
        })
        .buffered(IN_FLIGHT)
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await
        .expect("ranged GET");
    assert_eq!(got, len);
    start.elapsed().as_secs_f64()
}

/// Uploads `chunks` through the service; seconds taken and the media id.
async fn service_put(addr: SocketAddr, chunks: Vec<Bytes>, name: &str) -> (f64, String) {
    let mut client = connect(addr).await;
    let start = Instant::now();
    let media = client
        .upload_media(upload_stream(chunks, name.to_string()))
        .await
        .expect("upload through the service")
        .into_inner()
        .media
        .expect("a media");
    (start.elapsed().as_secs_f64(), media.id)
}

/// Reads media `id` whole through the service; seconds taken.
async fn service_get(addr: SocketAddr, id: &str, len: usize) -> f64 {
    let mut client = connect(addr).await;
    let start = Instant::now();
    let mut stream = client
        .read_media(pb::ReadMediaRequest {
            media_id: id.to_string(),
            ..Default::default()
        })
        .await
        .expect("ReadMedia")
        .into_inner();
    let mut got = 0;
    while let Some(msg) = stream.next().await {
        got += msg.expect("a message").data.len();
    }
    assert_eq!(got, len);
    start.elapsed().as_secs_f64()
}

/// `count` 4 KiB uploads from `clients` clients; uploads a second.
async fn small_rate(addr: SocketAddr, clients: usize, count: usize, round: usize) -> f64 {
    let start = Instant::now();
    let per = count / clients;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = connect(addr).await;
                for i in 0..per {
                    let mut data = vec![0u8; SMALL];
                    let tag = format!("{round}/{c}/{i}");
                    data[..tag.len()].copy_from_slice(tag.as_bytes());
                    client
                        .upload_media(upload_stream(vec![Bytes::from(data)], format!("{tag}.bin")))
                        .await
                        .expect("a small upload");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client task");
    }
    (per * clients) as f64 / start.elapsed().as_secs_f64()
}

/// Starts a release server on `dir` with `extra` flags.
fn server(dir: &std::path::Path, extra: &[String]) -> (Proc, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(sibling_exe("mediastore"))
        .args(["--listen", &addr.to_string(), "--log", "warn"])
        .args(["--allowed-types", "*", "--eager-renditions", ""])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("MEDIASTORE_BOOTSTRAP_KEY", BENCH_KEY)
        .spawn()
        .expect("start the release mediastore binary (cargo build --release --bins)");
    (Proc(child), addr)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let garage = tokio::task::block_in_place(Garage::single)
        .ok_or("Garage is not installed: run .ci/run once, or set MEDIASTORE_GARAGE_BIN")?;
    let direct = direct_client(&garage)?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut s3_flags = garage.flags("bench/");
    // The server's own part size, as an operator would run it.
    let at = s3_flags
        .iter()
        .position(|f| f == "--s3-part-size")
        .unwrap_or(0);
    s3_flags[at + 1] = PART.to_string();
    let (s3_proc, s3_addr) = server(dirs[0].path(), &s3_flags);
    let (_local_proc, local_addr) = server(dirs[1].path(), &[]);
    let len = args.size_mib * MIB;
    println!(
        "mediastore S3 benchmark: {} MiB, {} rounds, Garage 1 node on loopback",
        args.size_mib, args.rounds
    );

    let (mut up, mut up_local, mut down, mut small) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut figures: Vec<Round> = Vec::new();
    for round in 0..args.rounds {
        let chunks = chunks(b"s3 bench", args.size_mib, round as u8);
        // The direct client sends 8 MiB parts made beforehand (from memory,
        // as a client holding the file would).
        let parts: Vec<Bytes> = chunks
            .chunks(PART / MIB)
            .map(|group| {
                let mut part = BytesMut::with_capacity(PART);
                for c in group {
                    part.extend_from_slice(c);
                }
                part.freeze()
            })
            .collect();
        let key = format!("direct/{round}");
        let t_direct = direct_put(&direct, &key, &parts).await;
        drop(parts);
        let (t_local, local_id) =
            service_put(local_addr, chunks.clone(), &format!("big-{round}.bin")).await;
        // Each server's background MD5 digest reads the upload back: let it
        // finish before the next measurement, so that it takes no CPU from it.
        md5_done(&mut connect(local_addr).await, &local_id).await;
        let (t_service, id) = service_put(s3_addr, chunks, &format!("big-{round}.bin")).await;
        md5_done(&mut connect(s3_addr).await, &id).await;
        up.push(t_direct / t_service);
        up_local.push(t_local / t_service);
        let g_direct = direct_get(&direct, &key, len).await;
        let g_service = service_get(s3_addr, &id, len).await;
        down.push(g_direct / g_service);
        let r_local = small_rate(local_addr, args.clients, args.small_count, round).await;
        let r_s3 = small_rate(s3_addr, args.clients, args.small_count, round).await;
        small.push(r_s3 / r_local);
        figures.push(Round {
            up_direct: t_direct,
            up_service: t_service,
            up_local: t_local,
            down_direct: g_direct,
            down_service: g_service,
            small_local: r_local,
            small_s3: r_s3,
        });
        println!(
            "round {round}: upload {t_direct:.2} s direct, {t_service:.2} s service, {t_local:.2} s \
             service on the local directory; download {g_direct:.2} s direct, {g_service:.2} s \
             service; 4 KiB uploads/s {r_local:.0} local, {r_s3:.0} S3"
        );
    }
    let rss = peak_rss_kib(s3_proc.0.id()) as f64 / 1024.0;
    let mib_s = |t: f64| args.size_mib as f64 / t;
    let med = |f: fn(&Round) -> f64| median(figures.iter().map(f).collect::<Vec<_>>());
    println!();
    println!(
        "| measurement | service | Garage direct / local | ratio (median, min–max) | target |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| (a) 1 GiB upload into Garage | {:.0} MiB/s | {:.0} MiB/s (multipart, 8 MiB x 4) | {} | ≥ 0.8 |",
        mib_s(med(|f| f.up_service)),
        mib_s(med(|f| f.up_direct)),
        spread(&up, 2)
    );
    println!(
        "| (a') the same upload into the local directory | {:.0} MiB/s (Garage) | {:.0} MiB/s (local directory) | {} | |",
        mib_s(med(|f| f.up_service)),
        mib_s(med(|f| f.up_local)),
        spread(&up_local, 2)
    );
    println!("| (b) server peak RSS during (a)-(d) | {rss:.1} MiB | | | < 100 MiB |");
    println!(
        "| (c) 1 GiB download | {:.0} MiB/s | {:.0} MiB/s (ranged GETs, 8 MiB x 4) | {} | |",
        mib_s(med(|f| f.down_service)),
        mib_s(med(|f| f.down_direct)),
        spread(&down, 2)
    );
    println!(
        "| (d) 4 KiB uploads/s, {} clients | {:.0} (S3) | {:.0} (local directory) | {} | ≈ 1 |",
        args.clients,
        med(|f| f.small_s3),
        med(|f| f.small_local),
        spread(&small, 2)
    );
    Ok(())
}
