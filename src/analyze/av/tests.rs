use super::mp4::build::{self, bx, full};
use super::*;
use std::io::Write;

use crate::analyze::fixture;

/// The tags every audio fixture carries.
fn tone_tags() -> BTreeMap<String, String> {
    tags(&[
        ("title", "Test Tone"),
        ("artist", "Mediastore"),
        ("album", "Fixtures"),
    ])
}

/// Probes the file at `path` without the `catch_unwind` guard.
fn probe_unguarded(path: &Path, mime: &str) -> Result<AvInfo, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    super::probe_unguarded(ReadAtCursor::file(file).map_err(|e| e.to_string())?, mime)
}

fn probe_bytes(bytes: &[u8], mime: &str) -> Result<AvInfo, String> {
    super::probe_unguarded(ReadAtCursor::bytes(bytes), mime)
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn assert_near(actual: Option<i64>, expected: i64, tolerance: i64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no duration"));
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: duration {actual} ms, expected {expected} ± {tolerance}"
    );
}

/// A 16-bit PCM WAV with a LIST/INFO chunk before the data.
fn wav(rate: u32, channels: u16, frames: u32, info: &[(&[u8; 4], &str)]) -> Vec<u8> {
    let block = channels * 2;
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&1u16.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&16u16.to_le_bytes());
    let chunk = |id: &[u8], body: &[u8]| {
        let mut c = id.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    let mut list = b"INFO".to_vec();
    for (id, text) in info {
        let mut z = text.as_bytes().to_vec();
        z.push(0);
        list.extend(chunk(*id, &z));
    }
    let samples: Vec<u8> = (0..frames * u32::from(channels))
        .flat_map(|i| (((i % 64) as i16 - 32) * 500).to_le_bytes())
        .collect();
    let mut body = b"WAVE".to_vec();
    body.extend(chunk(b"fmt ", &fmt));
    if !info.is_empty() {
        body.extend(chunk(b"LIST", &list));
    }
    body.extend(chunk(b"data", &samples));
    chunk(b"RIFF", &body)
}

#[test]
fn wav_written_in_code() {
    let bytes = wav(
        8000,
        2,
        12_000,
        &[
            (b"INAM", "Code Tone"),
            (b"IART", "Mediastore"),
            (b"IPRD", "Unit Tests"),
        ],
    );
    let info = probe_bytes(&bytes, "audio/x-wav").unwrap();
    assert_eq!(info.duration_ms, Some(1500));
    assert_eq!(info.audio_codec.as_deref(), Some("pcm_s16le"));
    assert_eq!(info.sample_rate, Some(8000));
    assert_eq!(info.channels, Some(2));
    assert_eq!(info.bitrate, Some(bytes.len() as u64 * 8 * 1000 / 1500));
    assert_eq!(
        info.tags,
        tags(&[
            ("title", "Code Tone"),
            ("artist", "Mediastore"),
            ("album", "Unit Tests")
        ])
    );
    assert_eq!(
        (info.video_codec, info.width, info.height, info.fps),
        (None, None, None, None)
    );
}

#[test]
fn mp4_written_in_code() {
    let bytes = build::sample_mp4();
    let info = probe_bytes(&bytes, "video/mp4").unwrap();
    assert_eq!(
        info,
        AvInfo {
            duration_ms: Some(2000),
            fps: Some(25.0),
            video_codec: Some("h264".to_owned()),
            audio_codec: Some("aac".to_owned()),
            width: Some(160),
            height: Some(120),
            sample_rate: Some(22050),
            channels: Some(1),
            bitrate: Some(bytes.len() as u64 * 8 / 2),
            tags: tags(&[
                ("title", "Hand Made"),
                ("artist", "Mediastore"),
                ("album", "Unit Tests")
            ]),
            ..AvInfo::default()
        }
    );
}

/// The sample MP4 with its `mdat` before `moov`, as cameras write it.
fn moov_last(mdat_len: usize) -> Vec<u8> {
    let bytes = build::sample_mp4();
    let ftyp_len = 32;
    let moov_len = bytes.len() - ftyp_len - 1008;
    let ftyp = &bytes[..ftyp_len];
    let moov = &bytes[ftyp_len..ftyp_len + moov_len];
    [ftyp, &bx(b"mdat", &vec![0x55; mdat_len]), moov].concat()
}

#[test]
fn mp4_moov_after_mdat() {
    let info = probe_bytes(&moov_last(5000), "video/quicktime").unwrap();
    assert_eq!(info.duration_ms, Some(2000));
    assert_eq!(info.video_codec.as_deref(), Some("h264"));
    // Cut inside mdat: the moov box is gone.
    let cut = moov_last(5000);
    let err = probe_bytes(&cut[..3000], "video/mp4").unwrap_err();
    assert!(err.contains("no moov box"), "{err}");
    // Cut inside moov.
    let err = probe_bytes(&cut[..cut.len() - 20], "video/mp4").unwrap_err();
    assert!(err.contains("moov box is cut short"), "{err}");
}

#[test]
fn mp4_skips_a_huge_mdat_by_seeking() {
    // A sparse 4 GiB mdat (64-bit size) before moov: read without reading the mdat.
    let bytes = build::sample_mp4();
    let moov = &bytes[32..bytes.len() - 1008];
    let mdat_len: u64 = (4 << 30) + 16;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&bytes[..32]).unwrap();
    f.write_all(&1u32.to_be_bytes()).unwrap();
    f.write_all(b"mdat").unwrap();
    f.write_all(&mdat_len.to_be_bytes()).unwrap();
    f.as_file().set_len(32 + mdat_len).unwrap();
    f.seek(SeekFrom::Start(32 + mdat_len)).unwrap();
    f.write_all(moov).unwrap();
    f.flush().unwrap();
    let info = probe_unguarded(f.path(), "video/mp4").unwrap();
    assert_eq!(info.duration_ms, Some(2000));
    assert_eq!(info.width, Some(160));
    assert_eq!(
        info.bitrate,
        Some((32 + mdat_len + moov.len() as u64) * 8 / 2)
    );
}

#[test]
fn mp4_hostile_sizes_are_errors_not_allocations() {
    let ftyp = bx(b"ftyp", b"isom\0\0\0\0");
    // A top-level box claiming 4 GB in a small file: no moov.
    let mut claim = ftyp.clone();
    claim.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    claim.extend_from_slice(b"moov");
    claim.extend_from_slice(&[0; 64]);
    let err = probe_bytes(&claim, "video/mp4").unwrap_err();
    assert!(err.contains("cut short"), "{err}");
    // A 64-bit size of 2^62.
    let mut huge = ftyp.clone();
    huge.extend_from_slice(&1u32.to_be_bytes());
    huge.extend_from_slice(b"mdat");
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    let err = probe_bytes(&huge, "video/mp4").unwrap_err();
    assert!(err.contains("no moov"), "{err}");
    // A size smaller than its own header.
    let mut tiny = ftyp.clone();
    tiny.extend_from_slice(&4u32.to_be_bytes());
    tiny.extend_from_slice(b"moov");
    let err = probe_bytes(&tiny, "video/mp4").unwrap_err();
    assert!(err.contains("impossible size"), "{err}");
    // A child larger than its parent.
    let mut child = vec![0, 0, 0, 40];
    child.extend_from_slice(b"mvhd");
    let bad_moov = bx(b"moov", &child);
    let err = probe_bytes(&[ftyp.clone(), bad_moov].concat(), "video/mp4").unwrap_err();
    assert!(err.contains("more than its parent"), "{err}");
    // stts and stsd claiming 4 billion entries in a few bytes.
    let mut stts = u32::MAX.to_be_bytes().to_vec();
    stts.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 1]);
    let entry = build::visual_entry(b"avc1", 64, 48, &[]);
    let trak = build::trak(b"vide", 10, 100, &entry, &[], (64, 48));
    let trak = {
        // Replace the empty stts with the lying one.
        let empty = full(b"stts", &0u32.to_be_bytes());
        let pos = trak.windows(empty.len()).position(|w| w == empty).unwrap();
        let mut t = trak[..pos].to_vec();
        t.extend(full(b"stts", &stts));
        // Fix the sizes of trak, mdia, minf and stbl (each grew by 8 bytes).
        for kind in [b"trak", b"mdia", b"minf", b"stbl"] {
            let at = t.windows(4).position(|w| w == kind).unwrap() - 4;
            let size = u32::from_be_bytes(t[at..at + 4].try_into().unwrap()) + 8;
            t[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
        t
    };
    let moov = bx(b"moov", &[build::mvhd(10, 100), trak].concat());
    let info = probe_bytes(&[ftyp, moov].concat(), "video/mp4").unwrap();
    // 10 samples of 1 tick at 10 ticks a second.
    assert_eq!(info.fps, Some(10.0));
    assert_eq!((info.width, info.height), (Some(64), Some(48)));
}

#[test]
fn mp4_with_millions_of_boxes_stops_at_the_read_budget() {
    // 2 million empty `free` boxes (16 MB): bounded work.
    let free = bx(b"free", &[]);
    let many: Vec<u8> = free
        .iter()
        .copied()
        .cycle()
        .take(free.len() * 2_000_000)
        .collect();
    // Inside moov: only the first 4096 children of udta are visited.
    let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
    bytes.extend(bx(
        b"moov",
        &[build::mvhd(1000, 5000), bx(b"udta", &many)].concat(),
    ));
    let info = probe_bytes(&bytes, "video/mp4").unwrap();
    assert_eq!(info.duration_ms, Some(5000));
    // At the top level, with no moov: the walk stops at the child cap.
    let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
    bytes.extend(&many);
    let err = probe_bytes(&bytes, "video/mp4").unwrap_err();
    assert!(err.contains("no moov"), "{err}");
    // 300 tracks of 4096 boxes each: the read budget ends the probe.
    let trak = bx(b"trak", &many[..free.len() * 4096]);
    let traks: Vec<u8> = trak
        .iter()
        .copied()
        .cycle()
        .take(trak.len() * 300)
        .collect();
    let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
    bytes.extend(bx(b"moov", &traks));
    let err = probe_bytes(&bytes, "video/mp4").unwrap_err();
    assert!(err.contains("too many boxes"), "{err}");
}

#[test]
fn mp4_fragmented_duration_comes_from_mehd() {
    let mut mehd = vec![0; 4];
    mehd.extend_from_slice(&4500u32.to_be_bytes());
    let mvex = bx(b"mvex", &full(b"mehd", &mehd[4..]));
    let entry = build::visual_entry(b"vp09", 320, 240, &[]);
    let moov = bx(
        b"moov",
        &[
            build::mvhd(1000, 0),
            build::trak(b"vide", 90000, 0, &entry, &[], (320, 240)),
            mvex,
        ]
        .concat(),
    );
    let info = probe_bytes(&[bx(b"ftyp", b"iso6\0\0\0\0"), moov].concat(), "video/mp4").unwrap();
    assert_eq!(info.duration_ms, Some(4500));
    assert_eq!(info.video_codec.as_deref(), Some("vp9"));
    assert_eq!(info.fps, None);
}

/// A movie with one audio track whose sample entry is `entry`, and `extra` boxes in moov.
fn audio_movie(entry: &[u8], extra: &[u8]) -> Vec<u8> {
    let trak = build::trak(b"soun", 48000, 96000, entry, &[(96000, 1)], (0, 0));
    let moov = bx(
        b"moov",
        &[build::mvhd(600, 1200), trak, extra.to_vec()].concat(),
    );
    [bx(b"ftyp", b"qt  \0\0\0\0"), moov].concat()
}

#[test]
fn mp4_quicktime_v2_lpcm_entry_and_keys_metadata() {
    // A QuickTime version 2 sound description: 48 kHz, 2 channels, 24-bit
    // signed little-endian integers (flags: signed | packed).
    let mut e = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(&[0, 3, 0, 16, 0xFF, 0xFE, 0, 0, 0, 1, 0, 0]);
    e.extend_from_slice(&72u32.to_be_bytes());
    e.extend_from_slice(&48000f64.to_bits().to_be_bytes());
    for v in [2u32, 0x7F00_0000, 24, 0x4 | 0x8, 6, 1] {
        e.extend_from_slice(&v.to_be_bytes());
    }
    // QuickTime `mdta` metadata: a `meta` without version, `keys`, and
    // `ilst` items named by 1-based key index.
    let mut hdlr = vec![0; 8];
    hdlr.extend_from_slice(b"mdta");
    hdlr.extend_from_slice(&[0; 13]);
    let mut keys = vec![0, 0, 0, 0, 0, 0, 0, 2];
    for key in ["com.apple.quicktime.make", "com.apple.quicktime.title"] {
        keys.extend_from_slice(&(key.len() as u32 + 8).to_be_bytes());
        keys.extend_from_slice(b"mdta");
        keys.extend_from_slice(key.as_bytes());
    }
    let data = |text: &str| {
        bx(
            b"data",
            &[&[0, 0, 0, 1, 0, 0, 0, 0][..], text.as_bytes()].concat(),
        )
    };
    let ilst = bx(
        b"ilst",
        &[
            bx(&1u32.to_be_bytes(), &data("Apple")),
            bx(&2u32.to_be_bytes(), &data("Holiday")),
        ]
        .concat(),
    );
    let meta = bx(
        b"meta",
        &[bx(b"hdlr", &hdlr), bx(b"keys", &keys), ilst].concat(),
    );
    let info = probe_bytes(&audio_movie(&bx(b"lpcm", &e), &meta), "video/quicktime").unwrap();
    assert_eq!(info.audio_codec.as_deref(), Some("pcm_s24le"));
    assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(2)));
    assert_eq!(info.duration_ms, Some(2000));
    assert_eq!(info.tags, tags(&[("title", "Holiday")]));
}

#[test]
fn mp4_quicktime_v1_entry_with_wave_esds() {
    // Version 1 sound description: 16 more bytes before the children, and
    // the esds inside a `wave` box. The entry says 22050 Hz mono; the
    // AudioSpecificConfig (AAC LC, 44100 Hz, stereo) wins, as for a decoder.
    let mut e = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(&[0, 1, 0, 16, 0xFF, 0xFE, 0, 0]);
    e.extend_from_slice(&(22050u32 << 16).to_be_bytes());
    e.extend_from_slice(&[0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let frma = b"mp4a".to_vec();
    let wave = bx(
        b"wave",
        &[
            bx(b"frma", &frma),
            build::esds(0x40, &[0x12, 0x10]),
            vec![0; 8],
        ]
        .concat(),
    );
    e.extend(wave);
    let info = probe_bytes(&audio_movie(&bx(b"mp4a", &e), &[]), "video/quicktime").unwrap();
    assert_eq!(info.audio_codec.as_deref(), Some("aac"));
    assert_eq!((info.sample_rate, info.channels), (Some(44100), Some(2)));
}

#[test]
fn fixture_mp3_with_xing_header() {
    let info = probe_unguarded(&fixture("tone.mp3"), "audio/mpeg").unwrap();
    // ffprobe says 2.096 s; symphonia subtracts the encoder delay and padding
    // that the LAME tag declares.
    assert_near(info.duration_ms, 2095, 10, "tone.mp3");
    assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
    assert_eq!(info.sample_rate, Some(22050));
    assert_eq!(info.channels, Some(1));
    let kbps = info.bitrate.unwrap() / 1000;
    assert!((30..=36).contains(&kbps), "{kbps} kb/s");
    assert_eq!(info.tags, tone_tags());
    assert_eq!(info.video_codec, None);
}

#[test]
fn fixture_mp3_without_xing_header_is_estimated() {
    let info = probe_unguarded(&fixture("tone-noxing.mp3"), "audio/mpeg").unwrap();
    // ffprobe: 2.064 s, also estimated.
    assert_near(info.duration_ms, 2064, 10, "tone-noxing.mp3");
    assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
    assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
    assert_eq!(
        info.tags.get("title").map(String::as_str),
        Some("Test Tone")
    );
}

#[test]
fn fixture_flac() {
    let info = probe_unguarded(&fixture("tone.flac"), "audio/x-flac").unwrap();
    assert_eq!(info.duration_ms, Some(1500));
    assert_eq!(info.audio_codec.as_deref(), Some("flac"));
    assert_eq!((info.sample_rate, info.channels), (Some(16000), Some(2)));
    assert_eq!(info.bitrate, Some(32633 * 8 * 1000 / 1500));
    assert_eq!(info.tags, tone_tags());
}

#[test]
fn fixture_ogg_vorbis() {
    let info = probe_unguarded(&fixture("tone.ogg"), "audio/ogg").unwrap();
    assert_near(info.duration_ms, 2000, 1, "tone.ogg");
    assert_eq!(info.audio_codec.as_deref(), Some("vorbis"));
    assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
    assert_eq!(info.tags, tone_tags());
}

#[test]
fn fixture_ogg_opus() {
    let info = probe_unguarded(&fixture("tone.opus"), "audio/ogg").unwrap();
    // ffprobe: 2.0065 s.
    assert_near(info.duration_ms, 2006, 2, "tone.opus");
    assert_eq!(info.audio_codec.as_deref(), Some("opus"));
    assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(1)));
    assert_eq!(info.tags, tone_tags());
}

#[test]
fn fixture_m4a() {
    let info = probe_unguarded(&fixture("tone.m4a"), "audio/mp4").unwrap();
    assert_eq!(info.duration_ms, Some(2000));
    assert_eq!(info.audio_codec.as_deref(), Some("aac"));
    assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
    assert_eq!((info.video_codec, info.fps, info.width), (None, None, None));
    assert_eq!(info.bitrate, Some(9483 * 8 / 2));
    assert_eq!(info.tags, tone_tags());
}

#[test]
fn fixture_mp4_h264_aac() {
    let info = probe_unguarded(&fixture("video-h264-aac.mp4"), "video/mp4").unwrap();
    assert_eq!(
        info,
        AvInfo {
            duration_ms: Some(2000),
            fps: Some(25.0),
            video_codec: Some("h264".to_owned()),
            audio_codec: Some("aac".to_owned()),
            width: Some(160),
            height: Some(120),
            sample_rate: Some(22050),
            channels: Some(1),
            bitrate: Some(14596 * 8 / 2),
            tags: tags(&[
                ("title", "Test Video"),
                ("artist", "Mediastore"),
                ("album", "Fixtures")
            ]),
            ..AvInfo::default()
        }
    );
}

#[test]
fn fixture_mp4_hevc_without_audio() {
    let info = probe_unguarded(&fixture("video-hevc.mp4"), "video/mp4").unwrap();
    assert_eq!(info.duration_ms, Some(1000));
    assert_eq!(info.fps, Some(24.0));
    assert_eq!(info.video_codec.as_deref(), Some("hevc"));
    assert_eq!((info.width, info.height), (Some(128), Some(96)));
    assert_eq!(
        (info.audio_codec, info.sample_rate, info.channels),
        (None, None, None)
    );
}

#[test]
fn fixture_mov_mpeg4_pcm() {
    let info = probe_unguarded(&fixture("video-mpeg4-pcm.mov"), "video/quicktime").unwrap();
    assert_eq!(info.duration_ms, Some(1001));
    assert_eq!(info.fps, Some(29.97));
    assert_eq!(info.video_codec.as_deref(), Some("mpeg4"));
    assert_eq!(info.audio_codec.as_deref(), Some("pcm_s16le"));
    assert_eq!((info.width, info.height), (Some(96), Some(64)));
    assert_eq!((info.sample_rate, info.channels), (Some(8000), Some(1)));
    assert_eq!(info.tags, tags(&[("title", "Test Movie")]));
}

#[test]
fn fixture_webm_vp9_opus() {
    let info = probe_unguarded(&fixture("video-vp9-opus.webm"), "video/webm").unwrap();
    assert_eq!(info.duration_ms, Some(2008));
    assert_eq!(info.fps, Some(25.0));
    assert_eq!(info.video_codec.as_deref(), Some("vp9"));
    assert_eq!(info.audio_codec.as_deref(), Some("opus"));
    assert_eq!((info.width, info.height), (Some(160), Some(120)));
    assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(1)));
    assert_eq!(info.bitrate, Some(10838 * 8 * 1000 / 2008));
    assert_eq!(
        info.tags,
        tags(&[
            ("title", "Test Web"),
            ("artist", "Mediastore"),
            ("album", "Fixtures")
        ])
    );
}

#[test]
fn fixture_mkv_av1_vorbis() {
    let info = probe_unguarded(&fixture("video-av1-vorbis.mkv"), "video/x-matroska").unwrap();
    assert_eq!(info.duration_ms, Some(1003));
    assert_eq!(info.fps, Some(24.0));
    assert_eq!(info.video_codec.as_deref(), Some("av1"));
    assert_eq!(info.audio_codec.as_deref(), Some("vorbis"));
    assert_eq!((info.width, info.height), (Some(128), Some(72)));
    assert_eq!((info.sample_rate, info.channels), (Some(44100), Some(2)));
    assert_eq!(
        info.tags,
        tags(&[("title", "Test Matroska"), ("artist", "Mediastore")])
    );
}

#[test]
fn mime_only_decides_when_the_bytes_do_not() {
    // An MP4 labelled as WebM is still read as an MP4.
    let info = probe_unguarded(&fixture("video-hevc.mp4"), "video/webm").unwrap();
    assert_eq!(info.video_codec.as_deref(), Some("hevc"));
    let err = probe_unguarded(&fixture("pages5-objstm.pdf"), "application/pdf").unwrap_err();
    assert!(err.contains("not a video or audio type"), "{err}");
    let err = probe_bytes(b"", "video/mp4").unwrap_err();
    assert_eq!(err, "the file is empty");
    let err = probe(Path::new("/nonexistent/x.mp4"), "video/mp4").unwrap_err();
    assert!(err.starts_with("cannot open the file"), "{err}");
}

/// A tiny deterministic generator for the corruption tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Truncated and bit-flipped versions of `bytes`.
fn corrupted(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut variants: Vec<Vec<u8>> = vec![
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..100.min(bytes.len())].to_vec(),
        bytes[..10.min(bytes.len())].to_vec(),
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64);
    for round in 0..150 {
        let mut v = bytes.to_vec();
        for _ in 0..=(round % 8) {
            // Most headers are near the start: flip there more often.
            let span = if round % 2 == 0 {
                v.len().min(600)
            } else {
                v.len()
            };
            let at = (rng.next() % span as u64) as usize;
            v[at] ^= 1 << (rng.next() % 8);
        }
        if round % 5 == 0 {
            let at = (rng.next() % v.len() as u64) as usize;
            let n = (rng.next() % 4) as usize + 1;
            for b in v.iter_mut().skip(at).take(n) {
                *b = 0xFF;
            }
        }
        variants.push(v);
    }
    variants
}

#[test]
fn corrupt_and_truncated_containers_never_panic_in_our_readers() {
    // Our MP4 and EBML readers run unguarded here: a panic fails the test.
    let cases = [
        ("tone.m4a", "audio/mp4"),
        ("video-h264-aac.mp4", "video/mp4"),
        ("video-hevc.mp4", "video/mp4"),
        ("video-mpeg4-pcm.mov", "video/quicktime"),
        ("video-vp9-opus.webm", "video/webm"),
        ("video-av1-vorbis.mkv", "video/x-matroska"),
    ];
    let mut inputs: Vec<(Vec<u8>, &str)> = cases
        .iter()
        .map(|(name, mime)| (std::fs::read(fixture(name)).unwrap(), *mime))
        .collect();
    inputs.push((build::sample_mp4(), "video/mp4"));
    for (bytes, mime) in inputs {
        for v in corrupted(&bytes) {
            let _ = probe_bytes(&v, mime);
        }
    }
    // Our WAV LIST/INFO reader, unguarded too.
    let bytes = wav(8000, 1, 800, &[(b"INAM", "x"), (b"IART", "y")]);
    for v in corrupted(&bytes) {
        let len = v.len() as u64;
        let _ = audio::riff_info_tags(&mut Input::new(std::io::Cursor::new(v), len));
    }
}

#[test]
fn corrupt_and_truncated_audio_gives_errors_not_panics() {
    // symphonia can panic on corrupt input (e.g. an arithmetic overflow
    // in its WAV fmt chunk check in debug builds): `probe` must turn that
    // into an error.
    let cases = [
        ("tone.mp3", "audio/mpeg"),
        ("tone-noxing.mp3", "audio/mpeg"),
        ("tone.flac", "audio/x-flac"),
        ("tone.ogg", "audio/ogg"),
        ("tone.opus", "audio/ogg"),
    ];
    let mut inputs: Vec<(Vec<u8>, &str)> = cases
        .iter()
        .map(|(name, mime)| (std::fs::read(fixture(name)).unwrap(), *mime))
        .collect();
    inputs.push((wav(8000, 1, 800, &[(b"INAM", "x")]), "audio/x-wav"));
    for (bytes, mime) in inputs {
        for v in corrupted(&bytes) {
            let _ = probe_source(ReadAtCursor::bytes(v), mime);
        }
    }
}

#[test]
fn truncated_files_give_errors_or_partial_information() {
    // A faststart MP4 cut in half keeps its moov: full information.
    let bytes = std::fs::read(fixture("video-h264-aac.mp4")).unwrap();
    let info = probe_bytes(&bytes[..bytes.len() / 2], "video/mp4").unwrap();
    assert_eq!(info.video_codec.as_deref(), Some("h264"));
    assert_eq!(info.duration_ms, Some(2000));
    let err = probe_bytes(&bytes[..100], "video/mp4").unwrap_err();
    assert!(err.contains("moov"), "{err}");
    // A WebM cut in half keeps its headers.
    let bytes = std::fs::read(fixture("video-vp9-opus.webm")).unwrap();
    let info = probe_bytes(&bytes[..bytes.len() / 2], "video/webm").unwrap();
    assert_eq!(info.video_codec.as_deref(), Some("vp9"));
    assert_eq!((info.width, info.height), (Some(160), Some(120)));
    let err = probe_bytes(&bytes[..100], "video/webm").unwrap_err();
    assert!(err.contains("WebM/Matroska"), "{err}");
    // Audio cut at 100 bytes: no audio frames left to describe.
    for (name, mime) in [("tone.flac", "audio/x-flac"), ("tone.ogg", "audio/ogg")] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        assert!(probe_bytes(&bytes[..40], mime).is_err(), "{name}");
    }
}

/// An EBML element with a one- or more-byte ID and an 8-byte size.
fn ebml(id: u32, body: &[u8]) -> Vec<u8> {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().position(|&b| b != 0).unwrap_or(3);
    let mut out = id_bytes[skip..].to_vec();
    out.push(0x01);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn ebml_uint(id: u32, v: u64) -> Vec<u8> {
    ebml(id, &v.to_be_bytes())
}

fn webm_header() -> Vec<u8> {
    ebml(0x1A45_DFA3, &ebml(0x4282, b"webm"))
}

#[test]
fn ebml_live_stream_with_unknown_sizes() {
    // MediaRecorder-style: unknown-size Segment and Cluster, no Duration.
    let tracks = ebml(
        0x1654_AE6B,
        &ebml(
            0xAE,
            &[
                ebml_uint(0x83, 1),
                ebml(0x86, b"V_VP8"),
                ebml(0xE0, &[ebml_uint(0xB0, 640), ebml_uint(0xBA, 480)].concat()),
            ]
            .concat(),
        ),
    );
    let mut bytes = webm_header();
    bytes.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    bytes.extend(ebml(0x1549_A966, &ebml_uint(0x2A_D7B1, 1_000_000)));
    bytes.extend(tracks);
    bytes.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0xFF]);
    bytes.extend_from_slice(&[0; 200]);
    let info = probe_bytes(&bytes, "video/webm").unwrap();
    assert_eq!(info.video_codec.as_deref(), Some("vp8"));
    assert_eq!((info.width, info.height), (Some(640), Some(480)));
    assert_eq!(
        (info.duration_ms, info.bitrate, info.fps),
        (None, None, None)
    );
}

#[test]
fn ebml_hostile_sizes() {
    // Tracks claiming 2^55 bytes inside a small segment.
    let mut bytes = webm_header();
    let mut seg = vec![0x16, 0x54, 0xAE, 0x6B, 0x01, 0x7F, 0, 0, 0, 0, 0, 0];
    seg.extend_from_slice(&[0; 32]);
    bytes.extend(ebml(0x1853_8067, &seg));
    let err = probe_bytes(&bytes, "video/webm").unwrap_err();
    assert!(
        err.contains("Tracks element is truncated or corrupt"),
        "{err}"
    );
    // An invalid element ID (a zero first byte).
    let mut bytes = webm_header();
    bytes.extend(ebml(0x1853_8067, &[0, 0, 0, 0]));
    assert!(probe_bytes(&bytes, "video/webm").is_err());
    // A doc type that is not Matroska.
    let bytes = ebml(0x1A45_DFA3, &ebml(0x4282, b"other"));
    let err = probe_bytes(&bytes, "video/webm").unwrap_err();
    assert!(err.contains("'other'"), "{err}");
    // An integer element of 100 bytes.
    let mut bytes = webm_header();
    let info = ebml(0x1549_A966, &ebml(0x2A_D7B1, &[1; 100]));
    bytes.extend(ebml(0x1853_8067, &info));
    let err = probe_bytes(&bytes, "video/webm").unwrap_err();
    assert!(err.contains("100 bytes long"), "{err}");
}

#[test]
fn ebml_duration_falls_back_to_track_tags() {
    let tracks = ebml(
        0x1654_AE6B,
        &ebml(
            0xAE,
            &[ebml_uint(0x83, 2), ebml(0x86, b"A_OPUS"), ebml(0xE1, &[])].concat(),
        ),
    );
    let simple = |name: &str, value: &str| {
        ebml(
            0x67C8,
            &[
                ebml(0x45A3, name.as_bytes()),
                ebml(0x4487, value.as_bytes()),
            ]
            .concat(),
        )
    };
    let tag_elems = ebml(
        0x1254_C367,
        &[
            ebml(
                0x7373,
                &[
                    ebml(0x63C0, &ebml_uint(0x63C5, 7)),
                    simple("DURATION", "00:01:02.500000000"),
                ]
                .concat(),
            ),
            ebml(
                0x7373,
                &[
                    ebml(0x63C0, &[]),
                    simple("ARTIST", "Someone"),
                    simple("COMMENT", "x"),
                ]
                .concat(),
            ),
        ]
        .concat(),
    );
    let mut bytes = webm_header();
    bytes.extend(ebml(0x1853_8067, &[tracks, tag_elems].concat()));
    let info = probe_bytes(&bytes, "audio/webm").unwrap();
    assert_eq!(info.duration_ms, Some(62_500));
    assert_eq!(info.audio_codec.as_deref(), Some("opus"));
    // Matroska defaults: 8000 Hz, one channel.
    assert_eq!((info.sample_rate, info.channels), (Some(8000), Some(1)));
    assert_eq!(info.tags, tags(&[("artist", "Someone")]));
}

/// Inputs the audio fuzz target found to trip symphonia's debug
/// assertions (tests/fixtures/fuzzed/upstream/): the server's guarded
/// probe reports an error, whatever the build.
#[test]
fn fuzzed_inputs_that_trip_symphonia_are_errors() {
    let dir = fixture("fuzzed/upstream");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let got = probe_source(ReadAtCursor::bytes(bytes), "audio/wav");
        assert!(got.is_err(), "{}: {got:?}", path.display());
    }
}
