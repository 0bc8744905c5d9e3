//! Thumbnail benchmark (issue 5): 256 px wide JPEG (q80) thumbnails of
//! generated 12 MP photos, made
//!
//! - by the in-process rendition function (`render::render`),
//! - through `GetRendition` on a real server (uncached),
//! - by `vipsthumbnail` (libvips, one thread) and by Pillow with draft
//!   mode (`Image.draft`, then `thumbnail`), on the same files,
//! - and, as the floor, by the decoding step alone (`render::decode_only`:
//!   the same DCT-scaled decode, no resize, no encode).
//!
//! Every method runs `--rounds` times over all photos; a method's figure
//! is the median round's mean time per image, and the ratios compare
//! figures of the same run (the machine is noisy; absolute times mean
//! little). Round r asks for quality 80 - r, so that each round's
//! `GetRendition` misses the cache. Then the cache: p50 and p99 of
//! `--cached-samples` repeated requests for one cached thumbnail.
//!
//! Needs `vipsthumbnail` (Debian's libvips-tools) and a Python with
//! Pillow (`--python`); without them the run says so and skips them.
//!
//! Built with the `heif` feature, it then thumbnails `--heif-photos` of
//! the photos converted by `heif-enc` (Debian's libheif-examples) to HEIC
//! with a 320 px thumbnail item (as iPhones write them), to HEIC without
//! one, and to AVIF, in-process and with `vipsthumbnail`, which decodes
//! them with the same libheif and uses the thumbnail item too.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::StreamExt;
use mediastore::{
    config::Config,
    pb::v1::{self as pb, media_service_client::MediaServiceClient},
    render::{self, Bounds, Fit, OutputFormat, RenditionSpec},
    server,
};
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Thumbnail benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Photos to generate and thumbnail.
    #[arg(long, default_value_t = 50)]
    photos: usize,
    /// Photo width.
    #[arg(long, default_value_t = 4000)]
    width: u32,
    /// Width of the renditions made of them (JPEG, q80): 256 for
    /// thumbnails; larger ones decode at 1/2 or 1/4 scale and encode more
    /// pixels, where libjpeg-turbo's SIMD code matters.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Photo height.
    #[arg(long, default_value_t = 3000)]
    height: u32,
    /// Passes over all photos per method.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests for the cached-hit latency.
    #[arg(long, default_value_t = 1000)]
    cached_samples: usize,
    /// Where generated photos are kept between runs.
    #[arg(long, default_value = "target/bench-photos")]
    photos_dir: PathBuf,
    /// Python with Pillow installed.
    #[arg(long, default_value = ".venv-bench/bin/python")]
    python: PathBuf,
    /// The libvips thumbnailer.
    #[arg(long, default_value = "vipsthumbnail")]
    vipsthumbnail: PathBuf,
    /// Photos converted to HEIC and AVIF (with the `heif` feature; x265
    /// and aom take tens of seconds per 12 MP photo, once: the files are
    /// kept in `--photos-dir`).
    #[arg(long, default_value_t = 5)]
    heif_photos: usize,
    /// libheif's encoder, to make the HEIC and AVIF files.
    #[arg(long, default_value = "heif-enc")]
    heif_enc: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let photos = generate(&args)?;
    let sizes: Vec<usize> = photos.iter().map(|(_, d)| d.len()).collect();
    println!(
        "{} photos of {}x{}, JPEG q90, {:.1} MiB on average",
        photos.len(),
        args.width,
        args.height,
        sizes.iter().sum::<usize>() as f64 / sizes.len() as f64 / (1 << 20) as f64
    );
    let spec = |round: usize| RenditionSpec {
        width: args.size,
        height: 0,
        fit: Fit::Contain,
        format: OutputFormat::Jpeg,
        quality: 80 - round as u8,
    };
    let bounds = Bounds::default();

    // The in-process function and its floor, interleaved per photo so that
    // both see the same moments of the machine.
    let mut floor = Vec::new();
    let mut inproc = Vec::new();
    for round in 0..args.rounds {
        let (mut f, mut p) = (Duration::ZERO, Duration::ZERO);
        for (_, data) in &photos {
            let t = Instant::now();
            render::decode_only(data, "image/jpeg", 1, &spec(round), &bounds)?;
            f += t.elapsed();
            let t = Instant::now();
            let out = render::render(data, "image/jpeg", 1, &spec(round), &bounds)?;
            p += t.elapsed();
            assert_eq!(out.width, args.size);
        }
        floor.push(f / photos.len() as u32);
        inproc.push(p / photos.len() as u32);
    }

    // Through the server.
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_data_dir(dir.path());
    config.health_check_secs = 3600;
    config.eager_renditions = String::new();
    // What is measured here is rendering; what the key check costs is
    // mediastore-bench's (f).
    config.insecure_no_auth = true;
    config.max_image_size = 1 << 30;
    let library = server::open_library(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = config.clone();
    tokio::spawn(async move {
        let _ = server::run(listener, &cfg, library, std::future::pending()).await;
    });
    let mut client = MediaServiceClient::new(server::connect_when_up(addr).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut ids = Vec::new();
    for (name, data) in &photos {
        ids.push(upload(&mut client, name, data).await?);
    }
    let mut grpc = Vec::new();
    for round in 0..args.rounds {
        let mut total = Duration::ZERO;
        for id in &ids {
            let t = Instant::now();
            let (cached, _) = rendition(&mut client, id, &spec(round)).await?;
            total += t.elapsed();
            if cached {
                return Err("a benchmark request hit the cache".into());
            }
        }
        grpc.push(total / ids.len() as u32);
    }
    let mut hits = Vec::with_capacity(args.cached_samples);
    for i in 0..args.cached_samples + 20 {
        let t = Instant::now();
        let (cached, _) = rendition(&mut client, &ids[0], &spec(0)).await?;
        if i >= 20 {
            hits.push(t.elapsed());
        }
        if !cached {
            return Err("a repeated request missed the cache".into());
        }
    }
    hits.sort();

    let files: Vec<PathBuf> = photos.iter().map(|(p, _)| p.clone()).collect();
    let vips = vipsthumbnail(&args, &files)?;
    let pillow = pillow(&args, &files)?;

    let floor = median(floor);
    let inproc = median(inproc);
    let grpc = median(grpc);
    println!();
    println!("per image (median of {} rounds):", args.rounds);
    println!("  decode only (floor)      {:8.2} ms", ms(floor));
    println!("  in-process render        {:8.2} ms", ms(inproc));
    println!("  GetRendition (uncached)  {:8.2} ms", ms(grpc));
    match vips {
        Some(v) => println!("  vipsthumbnail            {:8.2} ms", ms(v)),
        None => println!("  vipsthumbnail            not found (apt-get install libvips-tools)"),
    }
    match pillow {
        Some(p) => println!("  Pillow draft+thumbnail   {:8.2} ms", ms(p)),
        None => println!("  Pillow                   not found (pip install pillow)"),
    }
    let at = |q: f64| hits[((hits.len() as f64 * q) as usize).min(hits.len() - 1)];
    println!(
        "  cached GetRendition      p50 {:.3} ms, p99 {:.3} ms ({} requests)",
        ms(at(0.5)),
        ms(at(0.99)),
        hits.len()
    );
    println!();
    println!("ratios (target):");
    if let Some(fastest) = [vips, pillow].into_iter().flatten().min() {
        println!(
            "  in-process / faster of vips and Pillow  {:.2}  (<= 1.0)",
            ratio(inproc, fastest)
        );
    }
    println!(
        "  in-process / decode floor               {:.2}  (<= 1.15)",
        ratio(inproc, floor)
    );
    println!(
        "  GetRendition / in-process               {:.2}  (<= 1.3)",
        ratio(grpc, inproc)
    );
    println!(
        "  cached p99                              {:.3} ms  (< 2 ms)",
        ms(at(0.99))
    );
    heif(&args, &files, &bounds)?;
    Ok(())
}

/// HEIC and AVIF thumbnails, in-process and by `vipsthumbnail`.
#[cfg(feature = "heif")]
fn heif(args: &Args, photos: &[PathBuf], bounds: &Bounds) -> Result<(), BoxError> {
    let photos = &photos[..args.heif_photos.min(photos.len())];
    println!();
    println!(
        "HEIC and AVIF, {} of the photos converted by heif-enc (q80), {} px wide (median of {} rounds):",
        photos.len(),
        args.size,
        args.rounds
    );
    let spec = RenditionSpec {
        width: args.size,
        height: 0,
        fit: Fit::Contain,
        format: OutputFormat::Jpeg,
        quality: 80,
    };
    for (label, ext, mime, options) in [
        (
            "HEIC, 320 px thumbnail item",
            "thumb.heic",
            "image/heif",
            &["-t", "320"][..],
        ),
        ("HEIC, no thumbnail item", "heic", "image/heif", &[][..]),
        ("AVIF", "avif", "image/avif", &["-A"][..]),
    ] {
        let mut files = Vec::new();
        for jpeg in photos {
            let path = jpeg.with_extension(ext);
            if !path.exists() {
                let status = Command::new(&args.heif_enc)
                    .args(["-q", "80"])
                    .args(options)
                    .arg("-o")
                    .arg(&path)
                    .arg(jpeg)
                    .stdout(std::process::Stdio::null())
                    .status();
                match status {
                    Ok(s) if s.success() => {}
                    _ => {
                        println!(
                            "  heif-enc failed or is missing (apt-get install libheif-examples)"
                        );
                        return Ok(());
                    }
                }
            }
            files.push((path.clone(), std::fs::read(&path)?));
        }
        let mut rounds = Vec::new();
        for _ in 0..args.rounds {
            let t = Instant::now();
            for (_, data) in &files {
                let out = render::render(data, mime, 1, &spec, bounds)?;
                assert_eq!(out.width, args.size);
            }
            rounds.push(t.elapsed() / files.len() as u32);
        }
        let inproc = median(rounds);
        let paths: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
        let vips = vipsthumbnail(args, &paths)?;
        let size = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>() as f64
            / paths.len() as f64
            / 1024.0;
        match vips {
            Some(v) => println!(
                "  {label:<28} ({size:5.0} KiB)  in-process {:7.2} ms, vipsthumbnail {:7.2} ms, ratio {:.2}",
                ms(inproc),
                ms(v),
                ratio(inproc, v)
            ),
            None => println!(
                "  {label:<28} ({size:5.0} KiB)  in-process {:7.2} ms, vipsthumbnail not found",
                ms(inproc)
            ),
        }
    }
    Ok(())
}

#[cfg(not(feature = "heif"))]
fn heif(_: &Args, _: &[PathBuf], _: &Bounds) -> Result<(), BoxError> {
    println!();
    println!("HEIC and AVIF: build with --features heif to measure them");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Photos with the statistics of real ones where JPEG is concerned:
/// smooth shapes (large DCT coefficients at low frequencies) and sensor
/// noise (many small ones at high frequencies), 4:2:0, q90. Kept in
/// `--photos-dir`, so later runs skip the encoding.
fn generate(args: &Args) -> Result<Vec<(PathBuf, Vec<u8>)>, BoxError> {
    std::fs::create_dir_all(&args.photos_dir)?;
    let mut out = Vec::new();
    for i in 0..args.photos {
        let path = args
            .photos_dir
            .join(format!("photo-{i:03}-{}x{}.jpg", args.width, args.height));
        if !path.exists() {
            let jpeg = photo(i as u64, args.width, args.height)?;
            std::fs::write(&path, jpeg)?;
        }
        out.push((path.clone(), std::fs::read(&path)?));
    }
    Ok(out)
}

fn photo(seed: u64, w: u32, h: u32) -> Result<Vec<u8>, BoxError> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 25) as i32 - 12
    };
    let (cx, cy) = (
        (w / 3 + (seed as u32 * 97) % (w / 3)) as f32,
        (h / 3 + (seed as u32 * 61) % (h / 3)) as f32,
    );
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let d = ((xf - cx).powi(2) + (yf - cy).powi(2)).sqrt();
        let ring = ((d / 37.0).sin() * 60.0) as i32;
        let sky = (yf / h as f32 * 120.0) as i32;
        let base = [90 + ring + sky, 110 + ring / 2, 160 - sky + ring / 3];
        image::Rgb(base.map(|c| (c + noise()).clamp(0, 255) as u8))
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img)?;
    Ok(jpeg)
}

async fn upload(
    client: &mut MediaServiceClient<Channel>,
    path: &Path,
    data: &[u8],
) -> Result<String, BoxError> {
    use pb::UploadMediaRequest;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut msgs = vec![UploadMediaRequest {
        header: Some(pb::UploadHeader {
            filename: name,
            content_type: "image/jpeg".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for c in data.chunks(1 << 20) {
        msgs.push(UploadMediaRequest {
            data: bytes::Bytes::copy_from_slice(c),
            ..Default::default()
        });
    }
    if let Some(last) = msgs.last_mut() {
        last.finish_write = true;
    }
    let media = client
        .upload_media(tokio_stream::iter(msgs))
        .await?
        .into_inner()
        .media
        .ok_or("no media in the upload's answer")?;
    Ok(media.id)
}

/// One `GetRendition`, all of its bytes received: whether it was cached,
/// and its size.
async fn rendition(
    client: &mut MediaServiceClient<Channel>,
    id: &str,
    spec: &RenditionSpec,
) -> Result<(bool, usize), BoxError> {
    let mut stream = client
        .get_rendition(pb::GetRenditionRequest {
            media_id: id.into(),
            width: spec.width,
            height: spec.height,
            quality: u32::from(spec.quality),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut cached = false;
    let mut size = 0;
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        cached |= msg.cached;
        size += msg.data.len();
    }
    Ok((cached, size))
}

/// Mean time per image of `vipsthumbnail` over all files in one command
/// (its start-up shared by all), on one thread: the median of the rounds.
fn vipsthumbnail(args: &Args, files: &[PathBuf]) -> Result<Option<Duration>, BoxError> {
    let out = tempfile::tempdir()?;
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let t = Instant::now();
        let status = Command::new(&args.vipsthumbnail)
            .env("VIPS_CONCURRENCY", "1")
            .arg("--size")
            .arg(format!("{}x", args.size))
            .arg("-o")
            .arg(format!("{}/%s.jpg[Q=80,strip]", out.path().display()))
            .args(files)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => rounds.push(t.elapsed() / files.len() as u32),
            Ok(s) => return Err(format!("vipsthumbnail failed: {s}").into()),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(median(rounds)))
}

/// Mean time per image of Pillow's fastest common path, timed inside
/// Python (no interpreter start-up): the median of the rounds.
fn pillow(args: &Args, files: &[PathBuf]) -> Result<Option<Duration>, BoxError> {
    const SCRIPT: &str = r#"
import io, sys, time
from PIL import Image
rounds, width, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
for _ in range(rounds):
    t = time.perf_counter()
    for f in files:
        im = Image.open(f)
        w, h = im.size
        size = (width, max(1, round(h * width / w)))
        im.draft("RGB", size)
        im.thumbnail(size)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
    print((time.perf_counter() - t) / len(files))
"#;
    let output = Command::new(&args.python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(args.rounds.to_string())
        .arg(args.size.to_string())
        .args(files)
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        _ => return Ok(None),
    };
    let rounds: Vec<Duration> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    Ok((!rounds.is_empty()).then(|| median(rounds)))
}
