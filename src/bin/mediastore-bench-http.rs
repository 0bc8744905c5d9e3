//! HTTP delivery benchmark (issue 17), against nginx serving the same
//! bytes from files on the same disk, in the same run:
//!
//! - (h1) a 1 GiB download (`curl` to /dev/null): the server's public
//!   original URL against nginx's static file (with `sendfile`);
//! - (h2) a cached 256 px thumbnail under `wrk -c64` (two threads):
//!   requests per second and p99 latency of the server's public
//!   thumbnail URL against nginx serving the thumbnail's bytes.
//!
//! Rounds alternate between the two servers; each figure is the median of
//! `--rounds` with its min–max, and each ratio compares medians of the
//! same run (the machine is noisy; absolute figures mean little). The
//! server runs in this process on the release build, with its HTTP
//! listener; nginx (Debian's, `apt-get install nginx wrk`) runs with
//! `worker_processes auto`, as the server's runtime uses every core.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use clap::Parser;
use mediastore::{
    config::Config,
    pb::v1::{self as pb, media_service_client::MediaServiceClient},
    server,
};
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// HTTP delivery benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Size of the large download, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Rounds per figure (each server once per round).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of each `wrk` run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connections `wrk` keeps open.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Where the data directory and nginx's files go (the same disk as
    /// the build, by default).
    #[arg(long, default_value = "target")]
    work_dir: PathBuf,
    /// Only the thumbnail figures (h2).
    #[arg(long)]
    only_thumbnail: bool,
}

/// Bytes per gRPC message of the upload that stores the large file.
const CHUNK: usize = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let Some(nginx) = which("nginx") else {
        return Err("nginx is missing (apt-get install -y nginx)".into());
    };
    for tool in ["wrk", "curl"] {
        if which(tool).is_none() {
            return Err(format!("{tool} is missing (apt-get install -y wrk curl)").into());
        }
    }
    std::fs::create_dir_all(&args.work_dir)?;
    let dir = tempfile::Builder::new()
        .prefix("bench-http-")
        .tempdir_in(&args.work_dir)?;
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;

    // The server, with its HTTP listener.
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.health_check_secs = 3600;
    config.insecure_no_auth = true;
    config.allowed_types = "*".into();
    config.eager_renditions = String::new();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    config.http_listen = Some(http.local_addr()?);
    let library = server::open_library(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = config.clone();
    tokio::spawn(async move {
        let _ = server::run_with_http(listener, Some(http), &cfg, library, std::future::pending())
            .await;
    });
    let mut client = MediaServiceClient::new(server::connect_when_up(addr).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);

    // The same bytes for both: the thumbnail the server made, and the
    // large file.
    let photo = photo(1600, 1200)?;
    let photo_id = upload(
        &mut client,
        "photo.jpg",
        photo.len(),
        std::iter::once(photo.clone()),
    )
    .await?;
    let thumb_url = media_url(&mut client, &photo_id, "thumbnail").await?;
    let thumb = fetch(&thumb_url)?;
    std::fs::write(www.join("thumb.jpg"), &thumb)?;
    let mut big_url = String::new();
    if !args.only_thumbnail {
        let big = www.join("big.bin");
        write_big(&big, args.size_mib)?;
        let chunks = (0..args.size_mib).map(|i| {
            let mut c = vec![0u8; CHUNK];
            fill(&mut c, i);
            c
        });
        let big_id = upload(&mut client, "big.bin", args.size_mib * CHUNK, chunks).await?;
        big_url = media_url(&mut client, &big_id, "").await?;
    }

    let nginx = Nginx::start(&nginx, dir.path(), &www)?;
    let nginx_base = format!("http://{}", nginx.addr);
    println!(
        "server {} and nginx {nginx_base}, {} rounds, thumbnail {} bytes",
        config
            .http_listen
            .map(|a| a.to_string())
            .unwrap_or_default(),
        args.rounds,
        thumb.len()
    );

    if !args.only_thumbnail {
        let copying = format!("http://{}/big.bin", nginx.copying);
        let (mut ours, mut sendfile, mut copied) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            ours.push(download_speed(&big_url)? / 1e9);
            sendfile.push(download_speed(&format!("{nginx_base}/big.bin"))? / 1e9);
            copied.push(download_speed(&copying)? / 1e9);
        }
        // The baseline is nginx at its best here.
        let best = median(&sendfile).max(median(&copied));
        println!(
            "(h1) {} MiB download, GB/s: mediastore {}, nginx with sendfile {}, without {}; \
             ratio to the faster nginx {:.2}",
            args.size_mib,
            spread(&ours, 2),
            spread(&sendfile, 2),
            spread(&copied, 2),
            median(&ours) / best
        );
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        ours.push(wrk(&thumb_url, &args)?);
        theirs.push(wrk(&format!("{nginx_base}/thumb.jpg"), &args)?);
    }
    let rate = |v: &[(f64, f64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    let p99 = |v: &[(f64, f64)]| v.iter().map(|r| r.1).collect::<Vec<_>>();
    println!(
        "(h2) cached thumbnail, {} connections: requests/s mediastore {}, nginx {}; ratio {:.2}",
        args.connections,
        spread(&rate(&ours), 0),
        spread(&rate(&theirs), 0),
        median(&rate(&ours)) / median(&rate(&theirs))
    );
    println!(
        "     p99 ms: mediastore {}, nginx {}",
        spread(&p99(&ours), 2),
        spread(&p99(&theirs), 2)
    );
    drop(nginx);
    Ok(())
}

/// A photo-like JPEG (smooth gradients with detail), `w`x`h`.
fn photo(w: u32, h: u32) -> Result<Vec<u8>, BoxError> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 7 + y * 3) % 251) as u8;
        image::Rgb([(x % 256) as u8, (y % 256) as u8, v])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

/// Deterministic, incompressible-looking bytes for chunk `i`.
fn fill(buf: &mut [u8], i: usize) {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(i as u64).to_le_bytes());
    hasher.finalize_xof().fill(buf);
}

/// Writes the large file nginx serves: the bytes the server stores.
fn write_big(path: &Path, mib: usize) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; CHUNK];
    for i in 0..mib {
        fill(&mut chunk, i);
        file.write_all(&chunk)?;
    }
    file.into_inner()?.sync_all()
}

/// Uploads `chunks` (of `len` bytes in all) as a public media; its id.
async fn upload(
    client: &mut MediaServiceClient<Channel>,
    name: &str,
    len: usize,
    chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> Result<String, BoxError> {
    let header = pb::UploadMediaRequest {
        header: Some(pb::UploadHeader {
            filename: name.into(),
            size_bytes: Some(len as u64),
            public: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let data = std::iter::once(header).chain(chunks.map(|c| pb::UploadMediaRequest {
        data: c.into(),
        ..Default::default()
    }));
    let media = client
        .upload_media(tokio_stream::iter(data))
        .await?
        .into_inner()
        .media
        .ok_or("no media in the answer")?;
    Ok(media.id)
}

/// The media's URL, or its preset's when `preset` is not empty.
async fn media_url(
    client: &mut MediaServiceClient<Channel>,
    id: &str,
    preset: &str,
) -> Result<String, BoxError> {
    Ok(client
        .get_media_url(pb::GetMediaUrlRequest {
            media_id: id.into(),
            preset: preset.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .url)
}

/// The body at `url`, by curl.
fn fetch(url: &str) -> Result<Vec<u8>, BoxError> {
    let out = Command::new("curl").args(["-sf", url]).output()?;
    if !out.status.success() {
        return Err(format!("curl {url} failed").into());
    }
    Ok(out.stdout)
}

/// Bytes a second curl downloads `url` at, to /dev/null.
fn download_speed(url: &str) -> Result<f64, BoxError> {
    let out = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-w", "%{speed_download}", url])
        .output()?;
    if !out.status.success() {
        return Err(format!("curl {url} failed").into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// `wrk` on `url`: requests per second and p99 latency in ms.
fn wrk(url: &str, args: &Args) -> Result<(f64, f64), BoxError> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.seconds),
            "--latency",
            url,
        ])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}").into());
    }
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .ok_or_else(|| format!("no rate in wrk's output:\n{text}"))?
        .trim()
        .parse()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .ok_or_else(|| format!("no p99 in wrk's output:\n{text}"))?;
    Ok((rate, millis(p99.trim())?))
}

/// wrk's latency ("812.00us", "1.20ms", "2.01s") in ms.
fn millis(s: &str) -> Result<f64, BoxError> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        return Err(format!("wrk latency {s:?}").into());
    };
    Ok(num.parse::<f64>()? * factor)
}

/// nginx serving `www` on a free port, stopped on drop.
struct Nginx {
    child: Child,
    /// With `sendfile`.
    addr: std::net::SocketAddr,
    /// Without it (1 MiB output buffers): on loopback, copying can win.
    copying: std::net::SocketAddr,
}

impl Nginx {
    fn start(binary: &Path, dir: &Path, www: &Path) -> Result<Self, BoxError> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let copying = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let conf = prefix.join("nginx.conf");
        // As a CDN origin would be set up: sendfile, keep-alive, no
        // logging, the same caching headers the server sends.
        std::fs::write(
            &conf,
            format!(
                "daemon off;
user root;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  types {{ image/jpeg jpg; application/octet-stream bin; }}
  server {{
    listen {addr};
    root {www};
    add_header Cache-Control \"public, max-age=31536000, immutable\";
    add_header X-Content-Type-Options nosniff;
  }}
  server {{
    listen {copying};
    root {www};
    sendfile off;
    output_buffers 2 1m;
  }}
}}
",
                prefix = prefix.display(),
                www = www.display(),
            ),
        )?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(Self {
                    child,
                    addr,
                    copying,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("nginx did not come up".into())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// "median (min–max)".
fn spread(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.d$} ({lo:.d$}–{hi:.d$})", median(v), d = decimals)
}
