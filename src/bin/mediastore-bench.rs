//! Foundation benchmark: upload and download throughput, small-upload rate
//! and server memory, each as a ratio to a baseline measured in the same
//! run (the machine is noisy, so only ratios mean much).
//!
//! Run with `cargo run --release --bin mediastore-bench` (it starts the
//! release `mediastore` binary built next to it). Measures:
//!
//! - (a) a 1 GiB upload in 1 MiB chunks vs the smaller of two ceilings:
//!   writing + fsyncing the same bytes straight to the same disk, and the
//!   same client streaming the same chunks to a bare tonic sink (a separate
//!   process with the server's transport settings) that discards them;
//! - (b) downloading it vs the bare server streaming the same bytes from
//!   memory;
//! - (c) 4 KiB uploads per second from 32 concurrent clients vs 32 threads
//!   writing as many plain files (create, write, fsync, rename, directory
//!   fsync), with the same calls to the bare sink as context and the
//!   server's CPU per upload; measured first, before anything else has
//!   written or deleted much (`--only-small`: nothing else);
//! - (d) the server's peak RSS (VmHWM) during (a);
//! - (e) the same 1 GiB sent as a resumable upload (`UploadService`) in
//!   8 MiB pieces over 4 streams, against the same ceiling as (a), and the
//!   server's peak RSS once it is done; and, at the end, how long finishing
//!   such an upload takes with its hash state kept and after a server
//!   restart lost it (the re-hash of everything it holds);
//! - (f) the small uploads of (c) against the server checking every call's
//!   API key, vs a second server run with `--insecure-no-auth`, in
//!   alternating rounds: what authentication costs;
//! - (g) one tenant's lone uploads of bytes another tenant already stored,
//!   vs its lone uploads of new bytes, interleaved, and its deletes of
//!   them: whether an upload's or a delete's time tells a tenant that
//!   someone else holds its bytes (the ratios should be 1).
//!
//! Each measurement is repeated (`--rounds`, 5 by default); a ratio is
//! taken within each round (same disk and page-cache conditions) and the
//! median ratio is reported with the spread of the rounds (min–max).

#[path = "shared/mod.rs"]
mod shared;

use std::{
    fs::File,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::Parser;
use futures_util::{Stream, StreamExt};
use mediastore::{
    blob::fs::sync_dir,
    pb::v1::{
        self as pb,
        media_service_client::MediaServiceClient,
        media_service_server::{MediaService, MediaServiceServer},
        upload_service_client::UploadServiceClient,
    },
};
use tonic::{Request, Response, Status, Streaming};

use self::shared::*;

const SMALL: usize = 4096;

#[derive(Debug, Parser)]
#[command(about = "mediastore foundation benchmark")]
struct Args {
    /// Size of the large file, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Repetitions of each measurement (median kept, spread shown).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent clients (and baseline threads) for small uploads.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Small uploads in total.
    #[arg(long, default_value_t = 6400)]
    small_count: usize,
    /// Directory on the disk under test (a temporary folder is made in it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Database URL for the server (default: SQLite in its data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Only (g), the cross-tenant upload and delete timing, with
    /// `--rounds` x 100 pairs of uploads and deletes of each size.
    #[arg(long)]
    only_cross_tenant: bool,
    /// The servers' `--dedupe-scope` (global or tenant).
    #[arg(long, default_value = "global")]
    dedupe_scope: String,
    /// Only (c), the small uploads.
    #[arg(long)]
    only_small: bool,
    /// Only (b), the download (after one upload).
    #[arg(long)]
    only_download: bool,
    /// Internal: run the bare sink server on this address.
    #[arg(long, hide = true)]
    sink: Option<SocketAddr>,
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(addr) = args.sink {
        return rt.block_on(run_sink(addr, args.size_mib));
    }
    rt.block_on(run(args))
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 Hz).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Lets the disk drain what earlier steps wrote (the virtual disk's host
/// cache makes a write right after another 1 GiB write several times
/// slower), so each disk-bound measurement starts from the same state.
async fn settle() {
    rustix::fs::sync();
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Writes and fsyncs the chunks to a new file in `dir`. The file stays until
/// the run ends: this disk is mounted with `discard`, and freeing 1 GiB
/// slows the next large write for a while.
fn raw_write(dir: &Path, round: usize, chunks: &[Bytes]) -> f64 {
    let path = dir.join(format!("raw-{round}.bin"));
    let t = Instant::now();
    let mut f = File::create(&path).unwrap_or_else(|e| panic!("create: {e}"));
    for c in chunks {
        f.write_all(c).unwrap_or_else(|e| panic!("write: {e}"));
    }
    f.sync_all().unwrap_or_else(|e| panic!("fsync: {e}"));
    t.elapsed().as_secs_f64()
}

async fn timed_upload(
    client: &mut MediaServiceClient<Channel>,
    chunks: Vec<Bytes>,
) -> (f64, String) {
    let t = Instant::now();
    let resp = client
        .upload_media(upload_stream(chunks, "big.bin".into()))
        .await
        .unwrap_or_else(|e| panic!("upload: {e}"))
        .into_inner();
    let secs = t.elapsed().as_secs_f64();
    (secs, resp.media.map(|m| m.id).unwrap_or_default())
}

/// Pieces of a resumable upload in (e).
const PIECE: usize = 8 * MIB;
/// Streams a resumable upload in (e) is sent over.
const STREAMS: usize = 4;

/// Sends the chunks as a resumable upload in `PIECE`-sized messages over
/// `STREAMS` streams; returns the time from start to finish and the media.
async fn timed_resumable(
    uploads: &mut UploadServiceClient<Channel>,
    chunks: &[Bytes],
) -> (f64, String) {
    let pieces: Vec<Bytes> = chunks
        .chunks(PIECE / MIB)
        .map(|group| Bytes::from(group.concat()))
        .collect();
    let size: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let t = Instant::now();
    let upload = start_upload(uploads, "resumable.bin", size).await;
    let per_stream = pieces.len().div_ceil(STREAMS);
    let mut offset = 0u64;
    let mut media = String::new();
    for (i, group) in pieces.chunks(per_stream).enumerate() {
        let last_group = (i + 1) * per_stream >= pieces.len();
        let mut msgs = Vec::with_capacity(group.len());
        for (j, p) in group.iter().enumerate() {
            msgs.push(pb::WriteUploadRequest {
                upload_id: upload.id.clone(),
                write_offset: offset,
                data: p.clone(),
                finish_write: last_group && j + 1 == group.len(),
            });
            offset += p.len() as u64;
        }
        let done = write_stream(uploads, msgs).await;
        assert_eq!(done.committed_size, offset, "committed size after a stream");
        if let Some(m) = done.media {
            media = m.id;
        }
    }
    (t.elapsed().as_secs_f64(), media)
}

async fn timed_download(client: &mut MediaServiceClient<Channel>, id: &str) -> (f64, u64) {
    let t = Instant::now();
    let mut stream = client
        .read_media(pb::ReadMediaRequest {
            media_id: id.to_string(),
            read_offset: 0,
            read_limit: 0,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .into_inner();
    let mut n = 0u64;
    while let Some(msg) = stream.next().await {
        n += msg
            .unwrap_or_else(|e| panic!("read stream: {e}"))
            .data
            .len() as u64;
    }
    (t.elapsed().as_secs_f64(), n)
}

/// What (c) measured, round by round.
struct SmallFigures {
    /// Server uploads per second.
    server: Vec<f64>,
    /// Plain files per second.
    plain: Vec<f64>,
    /// Calls per second to the bare sink.
    bare: Vec<f64>,
    /// Server CPU per upload, µs.
    server_cpu: Vec<f64>,
    /// Benchmark client CPU per upload, µs.
    client_cpu: Vec<f64>,
}

impl SmallFigures {
    fn print(&self, clients: usize) {
        let ratio =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
        println!(
            "| (c) 4 KiB uploads, {clients} clients | {} /s | {} /s (plain files, create+write+fsync+rename+dir fsync, {clients} threads) | {} | ≥ 1.0 |",
            spread(&self.server, 0),
            spread(&self.plain, 0),
            spread(&ratio(&self.server, &self.plain), 2),
        );
        println!(
            "| (c) the same, vs the bare sink's call rate | {} /s | {} /s (bare tonic sink) | {} | ≥ 0.3 |",
            spread(&self.server, 0),
            spread(&self.bare, 0),
            spread(&ratio(&self.server, &self.bare), 2),
        );
        println!(
            "| (c) server CPU per small upload | {} µs | | | ≤ 200 µs |",
            spread(&self.server_cpu, 0)
        );
        println!(
            "(c) benchmark client CPU per small upload: {} µs",
            spread(&self.client_cpu, 0)
        );
    }
}

/// (c): in each round, small uploads to the server, as many plain files,
/// and as many calls to the bare sink, one after the other.
async fn small_figures(
    server_addr: SocketAddr,
    sink_addr: SocketAddr,
    pid: u32,
    work: &Path,
    args: &Args,
) -> SmallFigures {
    let per_round = args.small_count / args.rounds.max(1);
    let mut f = SmallFigures {
        server: Vec::new(),
        plain: Vec::new(),
        bare: Vec::new(),
        server_cpu: Vec::new(),
        client_cpu: Vec::new(),
    };
    for round in 0..args.rounds.max(1) {
        let cpu_before = cpu_secs(pid);
        let own_before = cpu_secs(std::process::id());
        let (n, secs) = small_uploads(server_addr, args.clients, per_round).await;
        f.server_cpu
            .push((cpu_secs(pid) - cpu_before) * 1e6 / n as f64);
        f.client_cpu
            .push((cpu_secs(std::process::id()) - own_before) * 1e6 / n as f64);
        let plain_dir = work.join(format!("plain-{round}"));
        let (pn, psecs) = plain_files(&plain_dir, args.clients, per_round);
        // Context: the same calls to the bare sink, i.e. what gRPC alone
        // allows on this machine.
        let (bn, bsecs) = small_uploads(sink_addr, args.clients, per_round).await;
        f.server.push(n as f64 / secs);
        f.plain.push(pn as f64 / psecs);
        f.bare.push(bn as f64 / bsecs);
        println!(
            "small round {round}: {:.0} uploads/s, plain files {:.0}/s, bare sink {:.0} calls/s, server CPU {:.0} µs per upload",
            f.server[round], f.plain[round], f.bare[round], f.server_cpu[round]
        );
    }
    f
}

/// Runs `count` 4 KiB uploads from `clients` concurrent connections;
/// returns how many ran and how long they took.
async fn small_uploads(addr: SocketAddr, clients: usize, count: usize) -> (usize, f64) {
    let per_client = count / clients;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(addr).await);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut client) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let mut data = vec![0u8; SMALL];
                blake3::Hasher::new()
                    .update(format!("small-{c}-{i}-{:?}", Instant::now()).as_bytes())
                    .finalize_xof()
                    .fill(&mut data);
                client
                    .upload_media(upload_stream(
                        vec![Bytes::from(data)],
                        format!("s{c}-{i}.bin"),
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("small upload: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("client task: {e}"));
    }
    (per_client * clients, t.elapsed().as_secs_f64())
}

/// Writes `count` 4 KiB files from `threads` threads the plain durable way;
/// returns how many were written and how long it took.
fn plain_files(dir: &Path, threads: usize, count: usize) -> (usize, f64) {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let per_thread = count / threads;
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let dir = &dir;
            s.spawn(move || {
                for i in 0..per_thread {
                    let mut data = vec![0u8; SMALL];
                    blake3::Hasher::new()
                        .update(format!("plain-{th}-{i}").as_bytes())
                        .finalize_xof()
                        .fill(&mut data);
                    let tmp = dir.join(format!("{th}-{i}.tmp"));
                    let fin = dir.join(format!("{th}-{i}.bin"));
                    let mut f = File::create(&tmp).unwrap_or_else(|e| panic!("create: {e}"));
                    f.write_all(&data).unwrap_or_else(|e| panic!("write: {e}"));
                    f.sync_all().unwrap_or_else(|e| panic!("fsync: {e}"));
                    std::fs::rename(&tmp, &fin).unwrap_or_else(|e| panic!("rename: {e}"));
                    sync_dir(dir).unwrap_or_else(|e| panic!("dir fsync: {e}"));
                }
            });
        }
    });
    (per_thread * threads, t.elapsed().as_secs_f64())
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let work = tempfile::Builder::new()
        .prefix("mediastore-bench-")
        .tempdir_in(&args.dir)?;
    let data_dir = work.path().join("server");
    let gib = args.size_mib as f64 / 1024.0;
    let rate = |secs: f64| args.size_mib as f64 / 1024.0 / secs;
    println!(
        "mediastore-bench: {} MiB file, {} rounds, {} small uploads from {} clients, in {}",
        args.size_mib,
        args.rounds,
        args.small_count,
        args.clients,
        work.path().display()
    );

    if args.only_cross_tenant {
        let addr = free_addr();
        let mut cmd = Command::new(sibling_exe("mediastore"));
        cmd.args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--log", "warn", "--allowed-types", "*"])
            .args(["--dedupe-scope", &args.dedupe_scope])
            .env("MEDIASTORE_BOOTSTRAP_KEY", BENCH_KEY);
        if let Some(url) = &args.database_url {
            cmd.args(["--database-url", url]);
        }
        let _server = Proc(cmd.spawn()?);
        return cross_tenant_timing(addr, &data_dir, args.rounds.max(1)).await;
    }

    let sink_addr = free_addr();
    let _sink = Proc(
        Command::new(std::env::current_exe()?)
            .args(["--sink", &sink_addr.to_string()])
            .args(["--size-mib", &args.size_mib.to_string()])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let server_addr = free_addr();
    let mut server_cmd = Command::new(sibling_exe("mediastore"));
    server_cmd
        .args(["--listen", &server_addr.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--log", "warn"]);
    if let Some(url) = &args.database_url {
        server_cmd.args(["--database-url", url]);
    }
    // A killed server's hold on a resumable upload lapses after this (the
    // restart measurement below); it does not affect anything else.
    server_cmd.args(["--upload-hold-secs", "1"]);
    // The benchmark stores arbitrary bytes of every size, which the default
    // content policy (known types, per-kind limits) refuses.
    server_cmd.args(["--allowed-types", "*"]);
    server_cmd.env("MEDIASTORE_BOOTSTRAP_KEY", BENCH_KEY);
    let server = Proc(server_cmd.spawn()?);
    let pid = server.0.id();
    let mut sink = connect(sink_addr).await;
    let mut client = connect(server_addr).await;
    if args.only_download {
        // (b) alone: one upload, then downloads from the server and from
        // the bare sink in alternation.
        let (_, id) = timed_upload(&mut client, chunks(b"bench", args.size_mib, 0)).await;
        let mut ratios = Vec::new();
        for round in 0..args.rounds.max(1) {
            let (secs, n) = timed_download(&mut client, &id).await;
            assert_eq!(n as usize, args.size_mib * MIB, "download length");
            let bare = timed_download(&mut sink, "").await.0;
            ratios.push(bare / secs);
            println!(
                "download round {round}: {:.2} GiB/s, bare {:.2} GiB/s (ratio {:.2})",
                gib / secs,
                gib / bare,
                bare / secs
            );
        }
        println!("(b) download ratio {}", spread(&ratios, 2));
        return Ok(());
    }
    // (c) first: it creates many small files (the baseline does), and the
    // large rounds below create and delete gigabytes; file creation on
    // this disk slows for a while after mass deletes, so (c) runs on the
    // state the run found, not on what an earlier step left.
    let small = small_figures(server_addr, sink_addr, pid, work.path(), &args).await;
    if args.only_small {
        small.print(args.clients);
        return Ok(());
    }
    let mut uploads = upload_client(server_addr).await;

    let (mut raw, mut bare_up, mut up, mut bare_down, mut down) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ratio_a, mut ratio_b) = (Vec::new(), Vec::new());
    let (mut resumable, mut ratio_e) = (Vec::new(), Vec::new());
    let mut uploaded = Vec::new();
    let mut peak_after_upload = 0;
    for round in 0..args.rounds {
        let data = chunks(b"bench", args.size_mib, round as u8);
        // Odd rounds run the server first, so that neither side always
        // inherits the disk's state from the other.
        let server_first = round % 2 == 1;
        let mut server_upload = None;
        if server_first {
            settle().await;
            server_upload = Some(timed_upload(&mut client, data.clone()).await);
        }
        settle().await;
        raw.push(raw_write(work.path(), round, &data));
        bare_up.push(timed_upload(&mut sink, data.clone()).await.0);
        let (secs, id) = match server_upload {
            Some(done) => done,
            None => {
                settle().await;
                timed_upload(&mut client, data).await
            }
        };
        up.push(secs);
        peak_after_upload = peak_after_upload.max(peak_rss_kib(pid));
        settle().await;
        let variant = chunks(b"bench-resumable", args.size_mib, round as u8);
        let (r_secs, r_id) = timed_resumable(&mut uploads, &variant).await;
        resumable.push(r_secs);
        ratio_e.push(raw[round].max(bare_up[round]) / r_secs);
        uploaded.push(r_id);
        // The uploads' writeback and background MD5 done, so that (b)
        // measures the download path, as its bare baseline after it does.
        md5_done(&mut client, &id).await;
        md5_done(&mut client, uploaded.last().map_or("", String::as_str)).await;
        settle().await;
        let (secs, n) = timed_download(&mut client, &id).await;
        assert_eq!(n as usize, args.size_mib * MIB, "download length");
        down.push(secs);
        bare_down.push(timed_download(&mut sink, "").await.0);
        // Deleted after the last measurement (see `raw_write`).
        uploaded.push(id);
        ratio_a.push(raw[round].max(bare_up[round]) / up[round]);
        ratio_b.push(bare_down[round] / down[round]);
        println!(
            "round {round}: raw {:.2} GiB/s, bare upload {:.2}, upload {:.2} (ratio {:.2}), resumable {:.2} (ratio {:.2}), bare download {:.2}, download {:.2} (ratio {:.2})",
            rate(raw[round]),
            rate(bare_up[round]),
            rate(up[round]),
            ratio_a[round],
            rate(resumable[round]),
            ratio_e[round],
            rate(bare_down[round]),
            rate(down[round]),
            ratio_b[round],
        );
    }
    let (raw, bare_up, up, bare_down, down) = (
        median(raw),
        median(bare_up),
        median(up),
        median(bare_down),
        median(down),
    );
    let resumable = median(resumable);
    let peak_after_resumable = peak_rss_kib(pid);
    let ceiling = raw.max(bare_up);
    let peak_total = peak_rss_kib(pid);

    println!();
    println!("| measurement | mediastore | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| (a) upload {gib} GiB, 1 MiB chunks | {:.2} GiB/s | {:.2} GiB/s ({}; raw write+fsync {:.2}, bare tonic sink {:.2}) | {} | ≥ 0.8 |",
        rate(up),
        rate(ceiling),
        if raw >= bare_up {
            "raw disk"
        } else {
            "bare transport"
        },
        rate(raw),
        rate(bare_up),
        spread(&ratio_a, 2)
    );
    println!(
        "| (b) download {gib} GiB | {:.2} GiB/s | {:.2} GiB/s (bare tonic stream from memory) | {} | ≥ 0.9 |",
        rate(down),
        rate(bare_down),
        spread(&ratio_b, 2)
    );
    small.print(args.clients);
    println!(
        "| (d) server peak RSS during (a) | {:.1} MiB | | | < 100 MiB |",
        peak_after_upload as f64 / 1024.0
    );
    println!(
        "| (e) resumable upload {gib} GiB, {} MiB pieces, {STREAMS} streams | {:.2} GiB/s | {:.2} GiB/s (as (a)) | {} | ≥ 0.8 |",
        PIECE / MIB,
        rate(resumable),
        rate(ceiling),
        spread(&ratio_e, 2)
    );
    println!(
        "| (e) server peak RSS after (a) and (e) | {:.1} MiB | | | < 100 MiB |",
        peak_after_resumable as f64 / 1024.0
    );
    println!(
        "(server peak RSS over the whole run, including (b) and (c): {:.1} MiB)",
        peak_total as f64 / 1024.0
    );
    for id in uploaded {
        client
            .delete_media(pb::DeleteMediaRequest {
                media_id: id,
                force: false,
            })
            .await
            .map_err(|e| format!("delete: {e}"))?;
    }

    // Finishing a resumable upload whose hash state was lost with a
    // restart re-reads and re-hashes what it holds; with the state kept,
    // the finish hashes nothing.
    let data = chunks(b"bench-rehash", args.size_mib, 0);
    let kept = held_upload(&mut uploads, &data).await;
    let warm = timed_finish(&mut uploads, &kept, data.len() * MIB).await;
    let data = chunks(b"bench-rehash-restart", args.size_mib, 0);
    let lost = held_upload(&mut uploads, &data).await;
    drop(server);
    let server = Proc(server_cmd.spawn()?);
    let mut uploads = upload_client(server_addr).await;
    let cold = timed_finish(&mut uploads, &lost, data.len() * MIB).await;
    println!(
        "(e) finishing a {} MiB resumable upload: {warm:.3} s with its hash state kept, {cold:.3} s after a server restart (re-reads and re-hashes it: {:.2} GiB/s)",
        args.size_mib,
        gib / (cold - warm).max(1e-6)
    );

    drop(server);
    if args.database_url.is_some() {
        println!("(f) skipped: it compares two fresh servers on SQLite");
        return Ok(());
    }

    // (f) The same small uploads with and without the key check, on two
    // fresh servers alike but for --insecure-no-auth, in alternating rounds.
    let fresh = |name: &str, auth: bool| -> std::io::Result<(Proc, SocketAddr)> {
        let addr = free_addr();
        let mut cmd = Command::new(sibling_exe("mediastore"));
        cmd.args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(work.path().join(name))
            .args(["--log", "error", "--allowed-types", "*"])
            .args(["--dedupe-scope", &args.dedupe_scope]);
        if auth {
            cmd.env("MEDIASTORE_BOOTSTRAP_KEY", BENCH_KEY);
        } else {
            cmd.arg("--insecure-no-auth");
        }
        Ok((Proc(cmd.stdout(Stdio::null()).spawn()?), addr))
    };
    let per_round = args.small_count / args.rounds.max(1);
    let (server, server_addr) = fresh("server-keys", true)?;
    let (open, open_addr) = fresh("server-no-auth", false)?;
    connect(server_addr).await;
    connect(open_addr).await;
    let (mut keyed, mut open_rate, mut ratio_f) = (Vec::new(), Vec::new(), Vec::new());
    let (mut keyed_cpu, mut open_cpu, mut f_n) = (0.0, 0.0, 0usize);
    for round in 0..args.rounds.max(1) {
        let before = cpu_secs(open.0.id());
        let (on, osecs) = small_uploads(open_addr, args.clients, per_round).await;
        open_cpu += cpu_secs(open.0.id()) - before;
        let before = cpu_secs(server.0.id());
        let (kn, ksecs) = small_uploads(server_addr, args.clients, per_round).await;
        keyed_cpu += cpu_secs(server.0.id()) - before;
        f_n += kn;
        let (k, o) = (kn as f64 / ksecs, on as f64 / osecs);
        println!("auth round {round}: with keys {k:.0} uploads/s, without {o:.0}/s");
        keyed.push(k);
        open_rate.push(o);
        ratio_f.push(k / o);
    }
    println!(
        "| (f) 4 KiB uploads with the key check, {} clients | {:.0} /s | {:.0} /s (--insecure-no-auth) | {:.3} | ≥ 0.97 |",
        args.clients,
        median(keyed),
        median(open_rate),
        median(ratio_f)
    );
    println!(
        "(f) server CPU per small upload: {:.0} µs with keys, {:.0} µs without",
        keyed_cpu * 1e6 / f_n as f64,
        open_cpu * 1e6 / f_n as f64
    );
    drop(open);
    cross_tenant_timing(
        server_addr,
        &work.path().join("server-keys"),
        args.rounds.max(1),
    )
    .await
}

/// Pause before each of (g)'s timed calls: longer than the background
/// work of the call before it (the MD5 of a new 1 MiB blob, the removal
/// of one a delete left unreferenced).
const MD5_QUIET_MS: u64 = 25;

/// Pairs of (g) per round.
const CROSS_TENANT_PAIRS: usize = 100;

/// (g): a second tenant uploads, one at a time, bytes the first tenant has
/// just stored and new bytes, alternately, then deletes them alike; the
/// medians of each pair of kinds should match, or the time would tell the
/// second tenant what the first holds. A ratio per round (held / new), the
/// median of the rounds and their spread. Then what storing the first
/// tenant's bytes again costs the store, from the server's data
/// directory `data`.
async fn cross_tenant_timing(
    addr: SocketAddr,
    data: &Path,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut access = pb::access_service_client::AccessServiceClient::new(channel_to(addr).await);
    let other = access
        .create_tenant(pb::CreateTenantRequest {
            name: "bench-other".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tenant
        .ok_or("no tenant came back")?;
    let secret = access
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: other.id,
            name: "bench".into(),
            scopes: vec!["uploads:write".into(), "media:delete".into()],
            ..Default::default()
        })
        .await?
        .into_inner()
        .secret;
    let mut first = connect(addr).await;
    let mut second = MediaServiceClient::new(channel_with_key(addr, &secret).await);
    for size in [SMALL, MIB] {
        // Per round: the held / new ratio of the upload medians, and of
        // the delete medians.
        let (mut up_ratios, mut del_ratios) = (Vec::new(), Vec::new());
        let (mut up_ms, mut del_ms) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for round in 0..rounds {
            let (mut up, mut del) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
            for i in 0..CROSS_TENANT_PAIRS {
                let bytes = |what: &str| noise(&format!("g-{what}-{size}-{round}-{i}"), size);
                // Both made before the first tenant's upload, so neither
                // is fresher in the caches when sent.
                let (theirs, fresh) = (bytes("theirs"), bytes("fresh"));
                first
                    .upload_media(upload_stream(vec![theirs.clone()], format!("a{i}")))
                    .await?;
                // Alternate which goes first, so neither gets the warmer
                // turn.
                let order = [(true, theirs), (false, fresh)];
                let order = if i % 2 == 0 {
                    order
                } else {
                    let [a, b] = order;
                    [b, a]
                };
                let mut made = Vec::with_capacity(2);
                for (is_held, data) in order {
                    // New bytes get their MD5 in the background after the
                    // answer; let it finish, so that no measured upload
                    // shares the CPU with the previous one's.
                    tokio::time::sleep(Duration::from_millis(MD5_QUIET_MS)).await;
                    let t = Instant::now();
                    let answer = second
                        .upload_media(upload_stream(vec![data], format!("b{i}")))
                        .await?
                        .into_inner();
                    let secs = t.elapsed().as_secs_f64();
                    if answer.deduplicated {
                        return Err("deduplicated reported across tenants".into());
                    }
                    if is_held { &mut up.0 } else { &mut up.1 }.push(secs);
                    let id = answer.media.ok_or("no media came back")?.id;
                    made.push((is_held, id));
                }
                // The deletes, in the same order: the held bytes stay (the
                // first tenant's), the new ones lose their last reference.
                let mut answers = Vec::with_capacity(2);
                for (is_held, id) in made {
                    tokio::time::sleep(Duration::from_millis(MD5_QUIET_MS)).await;
                    let t = Instant::now();
                    let gone = second
                        .delete_media(pb::DeleteMediaRequest {
                            media_id: id,
                            force: false,
                        })
                        .await?
                        .into_inner();
                    let secs = t.elapsed().as_secs_f64();
                    if is_held { &mut del.0 } else { &mut del.1 }.push(secs);
                    answers.push(gone);
                }
                if answers[0] != answers[1] {
                    return Err(format!("deletes answered differently: {answers:?}").into());
                }
            }
            for ((held, new), ratios, all) in [
                (up, &mut up_ratios, &mut up_ms),
                (del, &mut del_ratios, &mut del_ms),
            ] {
                all.0.extend_from_slice(&held);
                all.1.extend_from_slice(&new);
                ratios.push(median(held) / median(new));
            }
        }
        for (what, ratios, (held, new)) in
            [("upload", up_ratios, up_ms), ("delete", del_ratios, del_ms)]
        {
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(0.0, f64::max);
            println!(
                "| (g) {} KiB {what} of bytes another tenant holds vs new bytes, lone | {:.3} ms | {:.3} ms | {:.3} ({lo:.3}–{hi:.3}) | 0.95–1.05 |",
                size / 1024,
                median(held) * 1e3,
                median(new) * 1e3,
                median(ratios),
            );
        }
    }
    // Storage: the second tenant keeps copies of bytes the first holds.
    let before = stored_bytes(data);
    for i in 0..SHARED_COPIES {
        let copy = noise(&format!("g-storage-{i}"), MIB);
        first
            .upload_media(upload_stream(vec![copy.clone()], format!("s{i}")))
            .await?;
        second
            .upload_media(upload_stream(vec![copy], format!("s{i}")))
            .await?;
    }
    let grown = stored_bytes(data) - before;
    println!(
        "(g) storage: two tenants each storing the same {SHARED_COPIES} MiB grew the blobs and database by {:.1} MiB ({:.2} x one copy)",
        grown as f64 / MIB as f64,
        grown as f64 / (SHARED_COPIES * MIB) as f64,
    );
    Ok(())
}

/// Copies of 1 MiB both tenants store in (g)'s storage figure.
const SHARED_COPIES: usize = 32;

/// `size` bytes no other label gives (BLAKE3's output stream of `label`).
fn noise(label: &str, size: usize) -> Bytes {
    let mut data = vec![0u8; size];
    blake3::Hasher::new()
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut data);
    Bytes::from(data)
}

/// Bytes of the files under `dir` that hold stored content: blobs and
/// the database (staging and upload files are not stored content).
fn stored_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !matches!(e.file_name().to_str(), Some("tmp" | "uploads")))
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => stored_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Starts a resumable upload of `size` bytes.
async fn start_upload(
    uploads: &mut UploadServiceClient<Channel>,
    filename: &str,
    size: u64,
) -> pb::Upload {
    uploads
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: filename.into(),
                content_type: "application/octet-stream".into(),
                size_bytes: Some(size),
                ..Default::default()
            }),
        })
        .await
        .unwrap_or_else(|e| panic!("start upload: {e}"))
        .into_inner()
        .upload
        .unwrap_or_default()
}

/// Sends one write stream of a resumable upload; the upload after it.
async fn write_stream(
    uploads: &mut UploadServiceClient<Channel>,
    msgs: Vec<pb::WriteUploadRequest>,
) -> pb::Upload {
    uploads
        .write_upload(futures_util::stream::iter(msgs))
        .await
        .unwrap_or_else(|e| panic!("write upload: {e}"))
        .into_inner()
        .upload
        .unwrap_or_default()
}

/// Starts a resumable upload and sends all of `chunks` without finishing.
async fn held_upload(uploads: &mut UploadServiceClient<Channel>, chunks: &[Bytes]) -> String {
    let size = (chunks.len() * MIB) as u64;
    let upload = start_upload(uploads, "held.bin", size).await;
    let msgs: Vec<pb::WriteUploadRequest> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| pb::WriteUploadRequest {
            upload_id: upload.id.clone(),
            write_offset: (i * MIB) as u64,
            data: c.clone(),
            finish_write: false,
        })
        .collect();
    let held = write_stream(uploads, msgs).await;
    assert_eq!(held.committed_size, size);
    upload.id
}

/// Times a stream that only finishes an upload holding `size` bytes
/// (retrying while a killed server's hold lapses).
async fn timed_finish(uploads: &mut UploadServiceClient<Channel>, id: &str, size: usize) -> f64 {
    loop {
        let msg = pb::WriteUploadRequest {
            upload_id: id.to_string(),
            write_offset: size as u64,
            data: Bytes::new(),
            finish_write: true,
        };
        let t = Instant::now();
        match uploads
            .write_upload(futures_util::stream::iter([msg]))
            .await
        {
            Ok(_) => return t.elapsed().as_secs_f64(),
            Err(e) if e.code() == tonic::Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("finish: {e}"),
        }
    }
}

/// The bare sink: the same service and transport settings as the server,
/// with no storage behind it.
#[derive(Debug)]
struct Sink {
    data: Arc<Vec<Bytes>>,
}

/// The sink answers only the two streaming calls it measures; every other
/// call is refused as UNIMPLEMENTED.
macro_rules! sink_refuses {
    ($($method:ident($req:ident) -> $resp:ident),* $(,)?) => {
        // Spelled out as `#[async_trait]` would expand them: the attribute
        // does not see inside a macro call.
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<pb::$req>,
            ) -> Pin<
                Box<
                    dyn std::future::Future<Output = Result<Response<pb::$resp>, Status>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async { Err(Status::unimplemented("the benchmark sink only streams")) })
            }
        )*
    };
}

#[tonic::async_trait]
impl MediaService for Sink {
    async fn upload_media(
        &self,
        request: Request<Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::UploadMediaResponse>, Status> {
        let mut stream = request.into_inner();
        let mut n = 0u64;
        while let Some(msg) = stream.message().await? {
            n += msg.data.len() as u64;
        }
        Ok(Response::new(pb::UploadMediaResponse {
            media: Some(pb::Media {
                size_bytes: n,
                ..Default::default()
            }),
            deduplicated: false,
        }))
    }

    type ReadMediaStream =
        Pin<Box<dyn Stream<Item = Result<pb::ReadMediaResponse, Status>> + Send + 'static>>;

    async fn read_media(
        &self,
        _request: Request<pb::ReadMediaRequest>,
    ) -> Result<Response<Self::ReadMediaStream>, Status> {
        let first = pb::ReadMediaResponse {
            media: Some(pb::Media::default()),
            content_range: None,
            data: Bytes::new(),
        };
        let data = Arc::clone(&self.data);
        let rest = (0..data.len()).map(move |i| {
            Ok(pb::ReadMediaResponse {
                media: None,
                content_range: None,
                data: data[i].clone(),
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            std::iter::once(Ok(first)).chain(rest),
        ))))
    }

    type GetRenditionStream =
        Pin<Box<dyn Stream<Item = Result<pb::GetRenditionResponse, Status>> + Send + 'static>>;

    async fn get_rendition(
        &self,
        _request: Request<pb::GetRenditionRequest>,
    ) -> Result<Response<Self::GetRenditionStream>, Status> {
        Err(Status::unimplemented(
            "the benchmark sink only streams media",
        ))
    }

    sink_refuses!(
        list_renditions(ListRenditionsRequest) -> ListRenditionsResponse,
        get_media(GetMediaRequest) -> GetMediaResponse,
        batch_get_media(BatchGetMediaRequest) -> BatchGetMediaResponse,
        list_media(ListMediaRequest) -> ListMediaResponse,
        update_media(UpdateMediaRequest) -> UpdateMediaResponse,
        move_media(MoveMediaRequest) -> MoveMediaResponse,
        batch_move_media(BatchMoveMediaRequest) -> BatchMoveMediaResponse,
        delete_media(DeleteMediaRequest) -> DeleteMediaResponse,
        batch_delete_media(BatchDeleteMediaRequest) -> BatchDeleteMediaResponse,
        get_media_url(GetMediaUrlRequest) -> GetMediaUrlResponse,
        reanalyze_media(ReanalyzeMediaRequest) -> ReanalyzeMediaResponse,
        import_media(ImportMediaRequest) -> ImportMediaResponse,
    );
}

async fn run_sink(
    addr: SocketAddr,
    size_mib: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sink = Sink {
        data: Arc::new(chunks(b"bench", size_mib, 0)),
    };
    tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .add_service(
            MediaServiceServer::new(sink)
                .max_decoding_message_size(16 * MIB)
                .max_encoding_message_size(16 * MIB),
        )
        .serve(addr)
        .await?;
    Ok(())
}
