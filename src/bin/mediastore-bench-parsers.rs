//! Our MP4 and Matroska probes against the crates that could replace them
//! (issue 14): Mozilla's `mp4parse` (Firefox's MP4 demuxer) and
//! `matroska-demuxer`. Built only with the `compare-parsers` feature:
//!
//! ```sh
//! cargo run --release --features compare-parsers --bin mediastore-bench-parsers
//! ```
//!
//! Two questions, in one run:
//!
//! - **What they report** on the committed fixtures (files written by
//!   ffmpeg and exiftool, as phones lay them out): duration, size,
//!   rotation, codec, and the recorder's make, model, date and place.
//! - **What they cost** on two long files written here: an MP4 of a
//!   5-hour, 60 fps video (a million samples; its `moov` after a 1 GiB
//!   sparse `mdat`, as cameras write them) and a WebM of the same length
//!   with a cue point per second. For each: time (median of `--rounds`),
//!   peak heap (a counting allocator) and bytes read. Ratios are ours
//!   against theirs, from the same run.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use clap::Parser;
use mediastore::analyze::{ReadAtCursor, av};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Heap in use and its peak since the last reset.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)] // a global allocator is an unsafe trait; this one only counts
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Parser comparison.
#[derive(Debug, Parser)]
struct Args {
    /// Timed passes over each long file.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Samples of the long MP4 (60 per second).
    #[arg(long, default_value_t = 1_080_000)]
    samples: u32,
}

/// Bytes read through a reader.
static READ: AtomicU64 = AtomicU64::new(0);

/// A file reader that counts what it reads.
struct Counted(File);

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        READ.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.seek(to)
    }
}

/// What one run of a parser cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    time: Duration,
    peak: usize,
    read: u64,
}

/// Runs `f` `rounds` times: the median time, the largest peak heap above
/// what was in use before, and the bytes read in one run.
fn measure<T>(rounds: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<Cost, String> {
    let mut times = Vec::new();
    let (mut peak, mut read) = (0, 0);
    for _ in 0..rounds {
        let base = IN_USE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        READ.store(0, Ordering::Relaxed);
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
        read = READ.load(Ordering::Relaxed);
    }
    times.sort();
    Ok(Cost {
        time: times[times.len() / 2],
        peak,
        read,
    })
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    println!("What each reports on the fixtures:");
    for name in [
        "video-h264-aac.mp4",
        "video-hevc.mp4",
        "video-mpeg4-pcm.mov",
        "video-portrait-iphone.mov",
        "video-portrait-android.mp4",
        "tone.m4a",
    ] {
        let path = fixtures.join(name);
        println!("  {name}");
        println!("    ours      {}", ours(&path)?);
        println!("    mp4parse  {}", with_mp4parse(&path));
    }
    for name in ["video-vp9-opus.webm", "video-av1-vorbis.mkv"] {
        let path = fixtures.join(name);
        println!("  {name}");
        println!("    ours              {}", ours(&path)?);
        println!("    matroska-demuxer  {}", with_matroska_demuxer(&path));
    }

    let dir = tempfile::tempdir()?;
    let mp4 = dir.path().join("long.mp4");
    long_mp4(&mp4, args.samples)?;
    let webm = dir.path().join("long.webm");
    long_webm(&webm, args.samples / 60)?;
    println!();
    println!(
        "What each costs (median of {} runs; heap is the peak above the start):",
        args.rounds
    );
    let mp4_len = std::fs::metadata(&mp4)?.len();
    println!(
        "  MP4, {} samples, moov after a {:.1} GiB mdat ({:.1} MiB of sample tables):",
        args.samples,
        mp4_len as f64 / f64::from(1u32 << 30),
        f64::from(args.samples) * 16.0 / f64::from(1u32 << 20)
    );
    let a = measure(args.rounds, || probe_counted(&mp4, "video/mp4"))?;
    let b = measure(args.rounds, || {
        let mut r = BufReader::new(Counted(File::open(&mp4).map_err(s)?));
        mp4parse::read_mp4(&mut r).map_err(|e| format!("{e:?}"))
    })?;
    report("ours", a, "mp4parse", b);
    println!(
        "  WebM, {} cue points (one per second of a {}-hour video):",
        args.samples / 60,
        args.samples / 60 / 3600
    );
    let a = measure(args.rounds, || probe_counted(&webm, "video/webm"))?;
    let b = measure(args.rounds, || {
        let r = BufReader::new(Counted(File::open(&webm).map_err(s)?));
        matroska_demuxer::MatroskaFile::open(r).map_err(|e| format!("{e:?}"))
    })?;
    report("ours", a, "matroska-demuxer", b);
    Ok(())
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn report(a_name: &str, a: Cost, b_name: &str, b: Cost) {
    for (name, c) in [(a_name, a), (b_name, b)] {
        println!(
            "    {name:<17} {:9.3} ms  heap {:9.1} KiB  read {:9.1} KiB",
            c.time.as_secs_f64() * 1000.0,
            c.peak as f64 / 1024.0,
            c.read as f64 / 1024.0
        );
    }
    println!(
        "    ours / theirs: time {:.3}, heap {:.3}, bytes read {:.4}",
        a.time.as_secs_f64() / b.time.as_secs_f64(),
        a.peak as f64 / b.peak.max(1) as f64,
        a.read as f64 / b.read.max(1) as f64
    );
}

/// Our probe over a counting positional reader, as the server reads.
fn probe_counted(path: &Path, mime: &str) -> Result<av::AvInfo, String> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(s)?;
    let len = file.metadata().map_err(s)?.len();
    let source = ReadAtCursor::new(len, move |buf, at| {
        let n = file.read_at(buf, at)?;
        READ.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    });
    av::probe_source(source, mime)
}

fn ours(path: &Path) -> Result<String, BoxError> {
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("mov") => "video/quicktime",
        Some("m4a") => "audio/mp4",
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        _ => "video/mp4",
    };
    let i = av::probe(path, mime)?;
    Ok(format!(
        "{} ms, {}x{}, rotation {}, {} / {}, make {:?}, model {:?}, date {}, place {}",
        opt(i.duration_ms),
        opt(i.width),
        opt(i.height),
        opt(i.rotation),
        i.video_codec.as_deref().unwrap_or("-"),
        i.audio_codec.as_deref().unwrap_or("-"),
        i.make.as_deref().unwrap_or("-"),
        i.model.as_deref().unwrap_or("-"),
        if i.recorded.is_some() { "yes" } else { "no" },
        if i.place.is_some() { "yes" } else { "no" },
    ))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn with_mp4parse(path: &Path) -> String {
    let read = File::open(path)
        .map_err(|e| format!("{e:?}"))
        .and_then(|f| mp4parse::read_mp4(&mut BufReader::new(f)).map_err(|e| format!("{e:?}")));
    let ctx = match read {
        Ok(ctx) => ctx,
        Err(e) => return format!("error: {e}"),
    };
    let mut out = Vec::new();
    for t in ctx.tracks.iter() {
        let ms = t
            .duration
            .zip(t.timescale)
            .map(|(d, ts)| d.0 * 1000 / ts.0.max(1));
        let size = t.tkhd.as_ref().map(|h| (h.width >> 16, h.height >> 16));
        let turned = t.tkhd.as_ref().map(|h| (h.matrix.a, h.matrix.b));
        let codec = t
            .stsd
            .as_ref()
            .and_then(|d| d.descriptions.first())
            .map(|e| match e {
                mp4parse::SampleEntry::Video(v) => format!("{:?}", v.codec_type),
                mp4parse::SampleEntry::Audio(a) => format!("{:?}", a.codec_type),
                mp4parse::SampleEntry::Unknown => "unknown entry".to_owned(),
            });
        out.push(format!(
            "{:?}: {} ms, tkhd size {:?}, matrix (a, b) {:?}, {}",
            t.track_type,
            opt(ms),
            size,
            turned,
            codec.as_deref().unwrap_or("-")
        ));
    }
    let userdata = match &ctx.userdata {
        Some(Ok(u)) => format!(
            "udta metadata {}",
            if u.meta.is_some() { "yes" } else { "no" }
        ),
        Some(Err(e)) => format!("udta error {e:?}"),
        None => "no udta".to_owned(),
    };
    // Its `MetadataBox` holds iTunes tags (title, artist, ...) only: no
    // field for a recorder's make, model, date or place.
    format!(
        "{}; {userdata} (iTunes tags only: no make, model, date or place)",
        out.join("; ")
    )
}

fn with_matroska_demuxer(path: &Path) -> String {
    let open = File::open(path)
        .map_err(|e| format!("{e:?}"))
        .and_then(|f| matroska_demuxer::MatroskaFile::open(f).map_err(|e| format!("{e:?}")));
    let m = match open {
        Ok(m) => m,
        Err(e) => return format!("error: {e}"),
    };
    let scale = m.info().timestamp_scale().get() as f64;
    let ms = m.info().duration().map(|d| (d * scale / 1e6) as i64);
    let tracks: Vec<String> = m
        .tracks()
        .iter()
        .map(|t| match t.video() {
            Some(v) => format!(
                "{} {}x{}",
                t.codec_id(),
                v.pixel_width().get(),
                v.pixel_height().get()
            ),
            None => t.codec_id().to_owned(),
        })
        .collect();
    format!("{} ms, {}", opt(ms), tracks.join(", "))
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

fn full(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    bx(kind, &[&[0u8; 4][..], body].concat())
}

/// An MP4 whose one video track has `samples` frames at 60 fps, with
/// `stts` (alternating deltas, so no run-length saving), `stsz` and `stco`
/// entries for each, after a 1 GiB sparse `mdat`.
fn long_mp4(path: &PathBuf, samples: u32) -> Result<(), BoxError> {
    const TIMESCALE: u32 = 60_000;
    let n = samples as usize;
    let ticks = u64::from(samples) * 1000;
    let mut f = File::create(path)?;
    f.write_all(&bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41"))?;
    let mdat_len: u64 = 1 << 30;
    f.write_all(&(mdat_len as u32).to_be_bytes())?;
    f.write_all(b"mdat")?;
    f.seek(SeekFrom::Current(mdat_len as i64 - 8))?;
    let mut mvhd = vec![0u8; 96];
    mvhd[8..12].copy_from_slice(&TIMESCALE.to_be_bytes());
    mvhd[12..16].copy_from_slice(&(ticks as u32).to_be_bytes());
    let mut tkhd = vec![0u8; 80];
    tkhd[8..12].copy_from_slice(&1u32.to_be_bytes());
    tkhd[16..20].copy_from_slice(&(ticks as u32).to_be_bytes());
    for (at, v) in [(36, 0x0001_0000u32), (52, 0x0001_0000), (68, 0x4000_0000)] {
        tkhd[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    tkhd[72..76].copy_from_slice(&(1920u32 << 16).to_be_bytes());
    tkhd[76..80].copy_from_slice(&(1080u32 << 16).to_be_bytes());
    let mut mdhd = vec![0u8; 20];
    mdhd[8..12].copy_from_slice(&TIMESCALE.to_be_bytes());
    mdhd[12..16].copy_from_slice(&(ticks as u32).to_be_bytes());
    let hdlr = [&[0u8; 4][..], b"vide", &[0u8; 13]].concat();
    let mut avc1 = vec![0u8; 78];
    avc1[6..8].copy_from_slice(&1u16.to_be_bytes());
    avc1[24..26].copy_from_slice(&1920u16.to_be_bytes());
    avc1[26..28].copy_from_slice(&1080u16.to_be_bytes());
    avc1[28..32].copy_from_slice(&0x0048_0000u32.to_be_bytes());
    avc1[32..36].copy_from_slice(&0x0048_0000u32.to_be_bytes());
    avc1[40..42].copy_from_slice(&1u16.to_be_bytes());
    avc1[74..76].copy_from_slice(&24u16.to_be_bytes());
    avc1[76..78].copy_from_slice(&0xFFFFu16.to_be_bytes());
    let avcc = bx(b"avcC", &[1, 0x64, 0, 0x28, 0xFF, 0xE0, 0]);
    let stsd = full(
        b"stsd",
        &[
            &1u32.to_be_bytes()[..],
            &bx(b"avc1", &[avc1, avcc].concat()),
        ]
        .concat(),
    );
    let mut stts = (samples).to_be_bytes().to_vec();
    let mut stsz = [0u32.to_be_bytes(), samples.to_be_bytes()].concat();
    let mut stco = samples.to_be_bytes().to_vec();
    stts.reserve(n * 8);
    stsz.reserve(n * 4);
    stco.reserve(n * 4);
    for i in 0..samples {
        stts.extend_from_slice(&1u32.to_be_bytes());
        stts.extend_from_slice(&(if i % 2 == 0 { 999u32 } else { 1001 }).to_be_bytes());
        stsz.extend_from_slice(&900u32.to_be_bytes());
        stco.extend_from_slice(&(40 + i * 900).to_be_bytes());
    }
    let stsc = full(b"stsc", &[1u32, 1, 1, 1].map(u32::to_be_bytes).concat());
    let stbl = bx(
        b"stbl",
        &[
            stsd,
            full(b"stts", &stts),
            stsc,
            full(b"stsz", &stsz),
            full(b"stco", &stco),
        ]
        .concat(),
    );
    let minf = bx(b"minf", &stbl);
    let mdia = bx(
        b"mdia",
        &[full(b"mdhd", &mdhd), full(b"hdlr", &hdlr), minf].concat(),
    );
    let trak = bx(b"trak", &[full(b"tkhd", &tkhd), mdia].concat());
    f.write_all(&bx(b"moov", &[full(b"mvhd", &mvhd), trak].concat()))?;
    Ok(())
}

/// An EBML element: `id` as written, then an 8-byte size.
fn el(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut e = id.to_vec();
    e.push(0x01);
    e.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
    e.extend_from_slice(body);
    e
}

fn uint_el(id: &[u8], v: u64) -> Vec<u8> {
    el(id, &v.to_be_bytes())
}

/// A WebM of `seconds` seconds of VP9 with one cue point per second and a
/// cluster at the end (its frames do not matter to either parser).
fn long_webm(path: &PathBuf, seconds: u32) -> Result<(), BoxError> {
    let ebml = el(
        &[0x1A, 0x45, 0xDF, 0xA3],
        &[
            uint_el(&[0x42, 0x86], 1),
            uint_el(&[0x42, 0xF7], 1),
            uint_el(&[0x42, 0xF2], 4),
            uint_el(&[0x42, 0xF3], 8),
            el(&[0x42, 0x82], b"webm"),
            uint_el(&[0x42, 0x87], 4),
            uint_el(&[0x42, 0x85], 2),
        ]
        .concat(),
    );
    let info = el(
        &[0x15, 0x49, 0xA9, 0x66],
        &[
            uint_el(&[0x2A, 0xD7, 0xB1], 1_000_000),
            el(&[0x44, 0x89], &(f64::from(seconds) * 1000.0).to_be_bytes()),
            el(&[0x4D, 0x80], b"mediastore-bench-parsers"),
            el(&[0x57, 0x41], b"mediastore-bench-parsers"),
        ]
        .concat(),
    );
    let video = el(
        &[0xE0],
        &[uint_el(&[0xB0], 1920), uint_el(&[0xBA], 1080)].concat(),
    );
    let tracks = el(
        &[0x16, 0x54, 0xAE, 0x6B],
        &el(
            &[0xAE],
            &[
                uint_el(&[0xD7], 1),
                uint_el(&[0x73, 0xC5], 1),
                uint_el(&[0x83], 1),
                el(&[0x86], b"V_VP9"),
                video,
            ]
            .concat(),
        ),
    );
    let mut cues = Vec::new();
    for s in 0..u64::from(seconds) {
        let pos = el(
            &[0xB7],
            &[uint_el(&[0xF7], 1), uint_el(&[0xF1], 1000 + s)].concat(),
        );
        cues.extend(el(&[0xBB], &[uint_el(&[0xB3], s * 1000), pos].concat()));
    }
    let cues = el(&[0x1C, 0x53, 0xBB, 0x6B], &cues);
    let cluster = el(
        &[0x1F, 0x43, 0xB6, 0x75],
        &[
            uint_el(&[0xE7], 0),
            el(&[0xA3], &[0x81, 0, 0, 0x80, 0, 0, 0]),
        ]
        .concat(),
    );
    let segment = el(
        &[0x18, 0x53, 0x80, 0x67],
        &[info, tracks, cues, cluster].concat(),
    );
    std::fs::write(path, [ebml, segment].concat())?;
    Ok(())
}
