//! Content analysis through the server: sniffing and the type policy,
//! image dimensions and EXIF, and files that fail to parse.

use std::time::Duration;

use crate::common::*;
use image::ImageFormat;
use mediastore::{
    config::Config,
    domain::{DEFAULT_ALLOWED_TYPES, OnMismatch},
    pb::v1::{self as pb, Layout, MediaType, UploadHeader, UploadMediaRequest},
};
use tonic::Code;

/// A server with the default content policy (the test default allows
/// anything).
async fn strict(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::spawn_with(|c| {
        c.allowed_types = DEFAULT_ALLOWED_TYPES.into();
        tweak(c);
    })
    .await
}

fn typed(name: &str, content_type: &str, data: &[u8]) -> UploadHeader {
    let mut h = header(name, data.len());
    h.content_type = content_type.into();
    h
}

async fn store(s: &mut TestServer, name: &str, content_type: &str, data: &[u8]) -> pb::Media {
    upload(&mut s.client, typed(name, content_type, data), data)
        .await
        .unwrap()
        .media
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_photo_s_exif_fills_every_typed_field() {
    let mut s = strict(|_| {}).await;
    let m = store(&mut s, "IMG_0001.JPG", "image/jpeg", &jpeg_with_exif()).await;
    assert_eq!(m.media_type, MediaType::Image as i32);
    assert_eq!(m.mime_type, "image/jpeg");
    assert_eq!((m.width, m.height), (64, 32));
    assert_eq!(m.orientation, 6);
    // 64x32 stored, turned a quarter to view: taller than wide.
    assert_eq!(m.layout, Layout::Portrait as i32);
    assert_eq!((m.dpi_x, m.dpi_y), (300.0, 300.0));
    let cam = m.camera.clone().unwrap();
    assert_eq!(cam.make, "FUJIFILM");
    assert_eq!(cam.model, "X100V");
    assert_eq!(cam.lens, "23mm F2");
    assert_eq!(cam.exposure_time_seconds, Some(0.004));
    assert_eq!(cam.f_number, Some(2.8));
    assert_eq!(cam.iso, Some(400));
    assert_eq!(cam.focal_length_mm, Some(23.0));
    assert_eq!(cam.flash_fired, Some(true));
    // 15:30:45 at +02:00 is 13:30:45 UTC.
    let taken = m.taken_time.unwrap();
    assert_eq!(taken.seconds, 1_720_963_845);
    assert_eq!(m.taken_time_offset, "+02:00");
    assert_eq!((m.taken_year, m.taken_month), (2024, 7));
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
    assert!(
        close(m.latitude, 48.0 + 51.0 / 60.0 + 30.24 / 3600.0),
        "{:?}",
        m.latitude
    );
    assert!(
        close(m.longitude, -(2.0 + 17.0 / 60.0 + 40.2 / 3600.0)),
        "{:?}",
        m.longitude
    );
    assert!(close(m.altitude, 35.0));
    assert_eq!(m.exif.get("Model").map(String::as_str), Some("X100V"));
    assert_eq!(m.exif.get("Make").map(String::as_str), Some("FUJIFILM"));
    assert!(m.analysis_error.is_empty(), "{}", m.analysis_error);
    // The same facts come back from a read.
    let again = get_media(&mut s.client, &m.id).await;
    // (A small upload is stored inline, with its MD5 from the start.)
    assert!(!m.md5.is_empty());
    assert_eq!(again, m);
    // And the photo is found by the year it was taken.
    let found = list_filtered(
        &mut s.client,
        pb::MediaFilter {
            year: Some(2024),
            month: Some(7),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(found.len(), 1);
}

/// EXIF as Python's piexif writes it: its Exif and GPS IFDs end without
/// the 4-byte next-IFD offset (tests/fixtures/mkexif.py). A strict reader
/// gives up on the whole block; every field is read here, and what was
/// skipped is a warning, not a failed analysis.
#[tokio::test(flavor = "multi_thread")]
async fn exif_without_next_ifd_offsets_is_read_field_by_field() {
    let data = fixture("piexif-o6.jpg");
    // What a strict reading of this file does (and the server did).
    let strict_read = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&data));
    assert!(strict_read.is_err(), "the fixture no longer needs leniency");

    let mut s = strict(|_| {}).await;
    let m = store(&mut s, "IMG_0006.JPG", "image/jpeg", &data).await;
    assert!(m.analysis_error.is_empty(), "{}", m.analysis_error);
    assert!(
        !m.analysis_warnings.is_empty()
            && m.analysis_warnings.iter().all(|w| w.starts_with("EXIF: ")),
        "{:?}",
        m.analysis_warnings
    );
    assert_eq!((m.width, m.height), (64, 32));
    assert_eq!(m.orientation, 6);
    assert_eq!(m.layout, Layout::Portrait as i32);
    let cam = m.camera.clone().unwrap();
    assert_eq!(
        (cam.make.as_str(), cam.model.as_str()),
        ("Apple", "iPhone 15 Pro")
    );
    assert_eq!(cam.iso, Some(64));
    // 18:30:05 at +02:00 is 16:30:05 UTC.
    assert_eq!(m.taken_time.unwrap().seconds, 1_720_974_605);
    assert_eq!(m.taken_time_offset, "+02:00");
    assert_eq!((m.taken_year, m.taken_month), (2024, 7));
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
    assert!(
        close(m.latitude, 48.0 + 51.0 / 60.0 + 29.31 / 3600.0),
        "{:?}",
        m.latitude
    );
    assert!(
        close(m.longitude, 2.0 + 17.0 / 60.0 + 40.10 / 3600.0),
        "{:?}",
        m.longitude
    );
    // The warnings are kept with the media.
    assert_eq!(
        get_media(&mut s.client, &m.id).await.analysis_warnings,
        m.analysis_warnings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_image_format_reports_its_dimensions() {
    let mut s = strict(|_| {}).await;
    for (format, mime) in [
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::Png, "image/png"),
        (ImageFormat::Gif, "image/gif"),
        (ImageFormat::WebP, "image/webp"),
        (ImageFormat::Tiff, "image/tiff"),
        (ImageFormat::Bmp, "image/bmp"),
    ] {
        let data = encoded(format, 40, 70);
        // Declared by nobody: the bytes decide.
        let m = store(&mut s, "picture", "", &data).await;
        assert_eq!(m.mime_type, mime);
        assert_eq!(m.media_type, MediaType::Image as i32, "{mime}");
        assert_eq!((m.width, m.height), (40, 70), "{mime}");
        assert_eq!(m.layout, Layout::Portrait as i32, "{mime}");
        assert!(m.analysis_error.is_empty(), "{mime}: {}", m.analysis_error);
        assert!(m.camera.is_none());
        // No EXIF: grouped by the upload's date.
        assert!(m.taken_time.is_none());
        assert!(m.taken_year >= 2026);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_images_are_stored_with_the_reason() {
    let mut s = strict(|_| {}).await;
    let jpeg = jpeg_with_exif();
    let png = encoded(ImageFormat::Png, 30, 20);
    let mut flipped = png.clone();
    // Inside IHDR's width: the CRC no longer matches.
    flipped[18] ^= 0xFF;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("jpeg cut in its EXIF", jpeg[..40].to_vec()),
        ("png cut in its header", png[..20].to_vec()),
        ("png with a flipped header byte", flipped),
        ("gif cut after its signature", b"GIF89a\x01".to_vec()),
        (
            "webp cut in its header",
            encoded(ImageFormat::WebP, 30, 20)[..16].to_vec(),
        ),
        (
            "tiff cut in its header",
            encoded(ImageFormat::Tiff, 30, 20)[..10].to_vec(),
        ),
        (
            "bmp cut in its header",
            encoded(ImageFormat::Bmp, 30, 20)[..20].to_vec(),
        ),
    ];
    for (what, data) in cases {
        let m = store(&mut s, "broken", "", &data).await;
        assert_eq!(m.media_type, MediaType::Image as i32, "{what}");
        assert!(!m.analysis_error.is_empty(), "{what}: no error recorded");
        assert_eq!((m.width, m.height), (0, 0), "{what}");
        // Stored all the same, byte for byte.
        assert_eq!(
            read(&mut s.client, &m.id, 0, 0).await.unwrap().1,
            data,
            "{what}"
        );
    }
    // A JPEG cut inside its pixels still has its dimensions and EXIF.
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let m = store(&mut s, "cut.jpg", "image/jpeg", &jpeg[..sos + 20]).await;
    assert_eq!((m.width, m.height), (64, 32));
    assert_eq!(m.camera.unwrap().model, "X100V");
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_types_are_refused_naming_both() {
    let mut s = strict(|_| {}).await;
    let png = encoded(ImageFormat::Png, 8, 8);
    let err = upload(&mut s.client, typed("photo.jpg", "image/jpeg", &png), &png)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(reason(&err), "TYPE_MISMATCH");
    assert_eq!(bad_field(&err).as_deref(), Some("header.content_type"));
    assert!(err.message().contains("image/jpeg"), "{}", err.message());
    assert!(err.message().contains("image/png"), "{}", err.message());

    let elf = elf_executable();
    let err = upload(&mut s.client, typed("cat.png", "image/png", &elf), &elf)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "TYPE_MISMATCH");
    assert!(
        err.message().contains("application/x-executable"),
        "{}",
        err.message()
    );

    // Undeclared, the executable is what it is, and not accepted.
    let err = upload(&mut s.client, typed("cat", "", &elf), &elf)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "TYPE_NOT_ALLOWED");
    assert_eq!(bad_field(&err).as_deref(), Some("data"));

    // Bytes of no known format claiming to be a picture.
    let noise = content("noise", 5000);
    let err = upload(&mut s.client, typed("x.gif", "image/gif", &noise), &noise)
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "TYPE_MISMATCH");
    assert_nothing_left(&mut s).await;

    // Aliases and plain text are fine.
    let jpeg = encoded(ImageFormat::Jpeg, 8, 8);
    assert_eq!(
        store(&mut s, "a.jpg", "image/jpg", &jpeg).await.mime_type,
        "image/jpeg"
    );
    let csv = b"name,size\na,1\n";
    let m = store(&mut s, "a.csv", "text/csv", csv).await;
    assert_eq!(
        (m.mime_type.as_str(), m.media_type),
        ("text/csv", MediaType::Document as i32)
    );
    assert_eq!(
        store(&mut s, "notes", "", b"hello\n").await.mime_type,
        "text/plain"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_use_content_a_contradicted_type_is_corrected() {
    let mut s = strict(|c| c.on_type_mismatch = OnMismatch::UseContent).await;
    let png = encoded(ImageFormat::Png, 8, 8);
    let m = store(&mut s, "photo.jpg", "image/jpeg", &png).await;
    assert_eq!(m.mime_type, "image/png");
    assert_eq!((m.width, m.height), (8, 8));
}

#[tokio::test(flavor = "multi_thread")]
async fn per_kind_size_limits_are_enforced() {
    let mut s = strict(|c| c.max_image_size = 20_000).await;
    // A picture with much detail compresses badly: well over 20,000 bytes.
    let big = encoded(ImageFormat::Bmp, 100, 100);
    assert!(big.len() > 20_000);
    for declared in [Some(big.len() as u64), None] {
        let mut h = typed("big.bmp", "image/bmp", &big);
        h.size_bytes = declared;
        let err = upload(&mut s.client, h, &big).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("20000"), "{}", err.message());
        use tonic_types::StatusExt;
        let quota = err.get_details_quota_failure().unwrap();
        assert_eq!(quota.violations[0].subject, "max_image_size");
    }
    assert_nothing_left(&mut s).await;
    // Other kinds keep their own limits.
    let text = vec![b'a'; 30_000];
    store(&mut s, "big.txt", "text/plain", &text).await;
}

/// The refusal comes from the first bytes: the client has not finished
/// sending (its stream stays open) when it hears of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_comes_before_the_rest_of_the_bytes() {
    let mut s = strict(|c| c.max_image_size = 1_000_000).await;
    let png = encoded(ImageFormat::Png, 64, 64);
    let mut first = png.clone();
    first.resize(64 * 1024, 0);
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(4);
    let mut h = typed("huge.png", "image/png", &png);
    h.size_bytes = Some(50_000_000);
    tx.send(head(h)).await.unwrap();
    tx.send(chunk(first)).await.unwrap();
    let call = s
        .client
        .upload_media(tokio_stream::wrappers::ReceiverStream::new(rx));
    // `tx` is still open: only an early refusal can end the call.
    let err = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the server waited for the rest of the bytes")
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    drop(tx);
    assert_nothing_left(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resumable_uploads_obey_the_policy() {
    let mut s = strict(|_| {}).await;
    let mut up = uploads(s.addr).await;
    let elf = elf_executable();
    let mut big_elf = elf.clone();
    big_elf.resize(20_000, 0);
    // A first write of 8 KiB or more is judged at once.
    let id = start_upload(&mut up, typed("cat.png", "image/png", &big_elf))
        .await
        .id;
    let err = send_pieces(&mut up, vec![piece(&id, 0, &big_elf, false)])
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "TYPE_MISMATCH", "{err:?}");
    let q = query_upload(&mut up, &id).await.unwrap();
    assert_eq!(q.state, pb::UploadState::Cancelled as i32);
    // Small writes are judged at the finish.
    let id = start_upload(&mut up, typed("cat.png", "image/png", &elf))
        .await
        .id;
    send_pieces(&mut up, vec![piece(&id, 0, &elf[..10], false)])
        .await
        .unwrap();
    let err = send_pieces(&mut up, vec![piece(&id, 10, &elf[10..], true)])
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "TYPE_MISMATCH", "{err:?}");
    let q = query_upload(&mut up, &id).await.unwrap();
    assert_eq!(q.state, pb::UploadState::Cancelled as i32);
    assert_eq!(count_files(&s.dir.path().join("uploads")), 0);
    assert_nothing_left(&mut s).await;
    // A photo sent in pieces is analysed like any other.
    let jpeg = jpeg_with_exif();
    let id = start_upload(&mut up, typed("p.jpg", "image/jpeg", &jpeg))
        .await
        .id;
    send_pieces(&mut up, vec![piece(&id, 0, &jpeg[..100], false)])
        .await
        .unwrap();
    let done = send_pieces(&mut up, vec![piece(&id, 100, &jpeg[100..], true)])
        .await
        .unwrap();
    let m = done.media.unwrap();
    assert_eq!((m.width, m.height, m.orientation), (64, 32, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn resumable_uploads_obey_the_kind_limit_as_bytes_arrive() {
    let s = strict(|c| c.max_image_size = 30_000).await;
    let mut up = uploads(s.addr).await;
    let big = encoded(ImageFormat::Bmp, 100, 100);
    assert!(big.len() > 30_000);
    let mut h = typed("big.bmp", "image/bmp", &big);
    h.size_bytes = None;
    // The first stream's first write shows a BMP: its limit holds at once.
    let id = start_upload(&mut up, h.clone()).await.id;
    let err = send_pieces(
        &mut up,
        vec![
            piece(&id, 0, &big[..10_000], false),
            piece(&id, 10_000, &big[10_000..], false),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("30000"), "{}", err.message());
    // A later stream learns the kind from the bytes held.
    let id = start_upload(&mut up, h).await.id;
    send_pieces(&mut up, vec![piece(&id, 0, &big[..100], false)])
        .await
        .unwrap();
    send_pieces(&mut up, vec![piece(&id, 100, &big[100..10_000], false)])
        .await
        .unwrap();
    let err = send_pieces(&mut up, vec![piece(&id, 10_000, &big[10_000..], false)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    use tonic_types::StatusExt;
    let quota = err.get_details_quota_failure().unwrap();
    assert_eq!(quota.violations[0].subject, "max_image_size");
    // What was held before stays, and may still be finished smaller.
    let q = query_upload(&mut up, &id).await.unwrap();
    assert_eq!(q.committed_size, 10_000);
}

/// The start of a 64-bit Linux executable.
fn elf_executable() -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    elf.resize(2000, 0x90);
    elf
}

/// A 16-bit PCM WAV of `secs` seconds of silence.
fn wav(rate: u32, channels: u16, secs: u32) -> Vec<u8> {
    let data_len = rate * u32::from(channels) * 2 * secs;
    let mut w = b"RIFF".to_vec();
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    w.extend_from_slice(&(channels * 2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.resize(w.len() + data_len as usize, 0);
    w
}

/// What one format's analysis must find, through the server.
struct Expect {
    file: &'static str,
    mime: &'static str,
    kind: MediaType,
    duration_ms: (u64, u64),
    video: (&'static str, u32, u32, f64),
    audio: (&'static str, u32, u32),
    title: &'static str,
}

#[tokio::test(flavor = "multi_thread")]
async fn video_audio_and_pdf_are_probed() {
    let mut s = strict(|_| {}).await;
    let none = ("", 0, 0, 0.0);
    let cases = [
        Expect {
            file: "video-h264-aac.mp4",
            mime: "video/mp4",
            kind: MediaType::Video,
            duration_ms: (2000, 2000),
            video: ("h264", 160, 120, 25.0),
            audio: ("aac", 22050, 1),
            title: "Test Video",
        },
        Expect {
            file: "video-hevc.mp4",
            mime: "video/mp4",
            kind: MediaType::Video,
            duration_ms: (1000, 1000),
            video: ("hevc", 128, 96, 24.0),
            audio: ("", 0, 0),
            title: "",
        },
        Expect {
            file: "video-mpeg4-pcm.mov",
            mime: "video/quicktime",
            kind: MediaType::Video,
            duration_ms: (1001, 1001),
            video: ("mpeg4", 96, 64, 29.97),
            audio: ("pcm_s16le", 8000, 1),
            title: "Test Movie",
        },
        Expect {
            file: "video-vp9-opus.webm",
            mime: "video/webm",
            kind: MediaType::Video,
            duration_ms: (2008, 2008),
            video: ("vp9", 160, 120, 25.0),
            audio: ("opus", 48000, 1),
            title: "Test Web",
        },
        Expect {
            file: "video-av1-vorbis.mkv",
            mime: "video/x-matroska",
            kind: MediaType::Video,
            duration_ms: (1003, 1003),
            video: ("av1", 128, 72, 24.0),
            audio: ("vorbis", 44100, 2),
            title: "Test Matroska",
        },
        Expect {
            file: "tone.mp3",
            mime: "audio/mpeg",
            kind: MediaType::Audio,
            duration_ms: (1990, 2100),
            video: none,
            audio: ("mp3", 22050, 1),
            title: "Test Tone",
        },
        Expect {
            file: "tone.flac",
            mime: "audio/flac",
            kind: MediaType::Audio,
            duration_ms: (1500, 1500),
            video: none,
            audio: ("flac", 16000, 2),
            title: "Test Tone",
        },
        Expect {
            file: "tone.ogg",
            mime: "audio/ogg",
            kind: MediaType::Audio,
            duration_ms: (2000, 2000),
            video: none,
            audio: ("vorbis", 22050, 1),
            title: "Test Tone",
        },
        Expect {
            file: "tone.opus",
            mime: "audio/ogg",
            kind: MediaType::Audio,
            duration_ms: (1990, 2010),
            video: none,
            audio: ("opus", 48000, 1),
            title: "Test Tone",
        },
        Expect {
            file: "tone.m4a",
            mime: "audio/mp4",
            kind: MediaType::Audio,
            duration_ms: (1990, 2030),
            video: none,
            audio: ("aac", 22050, 1),
            title: "Test Tone",
        },
    ];
    for e in &cases {
        let data = fixture(e.file);
        let m = store(&mut s, e.file, "", &data).await;
        let f = e.file;
        assert!(m.analysis_error.is_empty(), "{f}: {}", m.analysis_error);
        assert_eq!(
            (m.mime_type.as_str(), m.media_type),
            (e.mime, e.kind as i32),
            "{f}"
        );
        assert!(
            (e.duration_ms.0..=e.duration_ms.1).contains(&m.duration_ms),
            "{f}: {} ms",
            m.duration_ms
        );
        let (codec, w, h, fps) = e.video;
        assert_eq!(
            (m.video_codec.as_str(), m.width, m.height),
            (codec, w, h),
            "{f}"
        );
        assert!((m.fps - fps).abs() < 0.01, "{f}: {} fps", m.fps);
        let (codec, rate, channels) = e.audio;
        assert_eq!(
            (m.audio_codec.as_str(), m.sample_rate, m.channels),
            (codec, rate, channels),
            "{f}"
        );
        let expected_bitrate = data.len() as u64 * 8 * 1000 / m.duration_ms;
        assert!(
            m.bitrate.abs_diff(expected_bitrate) <= expected_bitrate / 50,
            "{f}: {} b/s",
            m.bitrate
        );
        assert_eq!(
            m.embedded_tags.get("title").map_or("", String::as_str),
            e.title,
            "{f}"
        );
        if e.kind == MediaType::Video {
            assert_eq!(m.layout, Layout::Landscape as i32, "{f}");
        }
    }
    // A WAV made here: exact figures.
    let m = store(&mut s, "silence.wav", "audio/wav", &wav(8000, 2, 3)).await;
    assert_eq!(m.mime_type, "audio/wav");
    assert_eq!((m.duration_ms, m.audio_codec.as_str()), (3000, "pcm_s16le"));
    assert_eq!(
        (m.sample_rate, m.channels, m.bitrate),
        (8000, 2, 256_000 + 44 * 8 / 3)
    );
    // A PDF: its pages.
    let m = store(
        &mut s,
        "doc.pdf",
        "application/pdf",
        &fixture("pages5-objstm.pdf"),
    )
    .await;
    assert_eq!(
        (m.media_type, m.page_count),
        (MediaType::Document as i32, 5)
    );
    assert!(m.analysis_error.is_empty(), "{}", m.analysis_error);
    // A PDF whose page tree claims two billion pages over five (written by
    // qpdf, which believes the claim): the pages that are there.
    let m = store(
        &mut s,
        "liar.pdf",
        "application/pdf",
        &fixture("pages5-claims2g.pdf"),
    )
    .await;
    assert_eq!(m.page_count, 5, "{}", m.analysis_error);
    assert_eq!(
        m.analysis_warnings,
        ["PDF: the page tree claims 2000000000 pages; 5 can be reached, and those are counted"]
    );
}

/// HEIF and AVIF photos (tests/fixtures/mkheif.py): size, how they are
/// shown (from irot and imir, not from EXIF's Orientation, which HEIF
/// calls informative), and their EXIF, with no decoder in the build.
#[tokio::test(flavor = "multi_thread")]
async fn heic_and_avif_report_size_orientation_and_exif() {
    let mut s = strict(|_| {}).await;
    for (file, mime, orientation, layout) in [
        ("heic-irot.heic", "image/heic", 6, Layout::Portrait),
        ("heic-grid.heic", "image/heic", 1, Layout::Landscape),
        ("avif-o6.avif", "image/avif", 6, Layout::Portrait),
        ("avif-o5.avif", "image/avif", 5, Layout::Portrait),
        ("avif-o2.avif", "image/avif", 2, Layout::Landscape),
    ] {
        let m = store(&mut s, file, mime, &fixture(file)).await;
        assert!(m.analysis_error.is_empty(), "{file}: {}", m.analysis_error);
        assert_eq!(m.media_type, MediaType::Image as i32, "{file}");
        assert_eq!((m.width, m.height), (64, 32), "{file}");
        assert_eq!(m.orientation, orientation, "{file}");
        assert_eq!(m.layout, layout as i32, "{file}");
        let cam = m.camera.clone().unwrap_or_default();
        assert_eq!(
            (cam.make.as_str(), cam.model.as_str()),
            ("Apple", "iPhone 15 Pro"),
            "{file}"
        );
        assert_eq!(m.taken_time.unwrap().seconds, 1_720_974_605, "{file}");
        assert_eq!(m.taken_time_offset, "+02:00", "{file}");
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(
            close(m.latitude, 48.0 + 51.0 / 60.0 + 29.31 / 3600.0),
            "{file}"
        );
    }
}

/// Portrait video as phones record it: landscape frames (160x90) with a
/// track matrix that turns them a quarter clockwise, and the recorder's
/// make, model, date and place. The MOV carries them as an iPhone does
/// (`com.apple.quicktime.*` keys, written by ffmpeg); the MP4 as Android
/// phones do (`©mak`, `©mod`, `©xyz`, written by exiftool) with the date
/// only in the movie header. tests/fixtures/README.md has the commands.
#[tokio::test(flavor = "multi_thread")]
async fn phone_videos_report_rotation_display_size_camera_date_and_place() {
    let mut s = strict(|_| {}).await;
    for (file, mime, make, model, offset) in [
        (
            "video-portrait-iphone.mov",
            "video/quicktime",
            "Apple",
            "iPhone 15 Pro",
            "+02:00",
        ),
        (
            "video-portrait-android.mp4",
            "video/mp4",
            "Google",
            "Pixel 8",
            "",
        ),
    ] {
        let m = store(&mut s, file, mime, &fixture(file)).await;
        assert!(m.analysis_error.is_empty(), "{file}: {}", m.analysis_error);
        assert_eq!(m.media_type, MediaType::Video as i32, "{file}");
        assert_eq!(m.rotation, 90, "{file}");
        assert_eq!((m.width, m.height), (90, 160), "{file}");
        assert_eq!(m.layout, Layout::Portrait as i32, "{file}");
        let cam = m.camera.clone().unwrap_or_default();
        assert_eq!(
            (cam.make.as_str(), cam.model.as_str()),
            (make, model),
            "{file}"
        );
        // 2024-07-14 16:30:05 UTC (18:30:05 at +02:00 on the iPhone).
        assert_eq!(m.taken_time.unwrap().seconds, 1_720_974_605, "{file}");
        assert_eq!(m.taken_time_offset, offset, "{file}");
        assert_eq!((m.taken_year, m.taken_month), (2024, 7), "{file}");
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(close(m.latitude, 48.8584), "{file}: {:?}", m.latitude);
        assert!(close(m.longitude, 2.2945), "{file}: {:?}", m.longitude);
        assert!(close(m.altitude, 35.0), "{file}: {:?}", m.altitude);
        // The recorder's details are fields, not embedded tags.
        assert!(
            !m.embedded_tags.contains_key("make"),
            "{:?}",
            m.embedded_tags
        );
    }
    // Found on the map's and the calendar's terms, like photos.
    let found = list_filtered(
        &mut s.client,
        pb::MediaFilter {
            year: Some(2024),
            month: Some(7),
            media_types: vec![MediaType::Video as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(found.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_corrupted_media_are_stored_with_the_reason() {
    let mut s = strict(|_| {}).await;
    for file in [
        "video-h264-aac.mp4",
        "video-hevc.mp4",
        "video-mpeg4-pcm.mov",
        "video-vp9-opus.webm",
        "video-av1-vorbis.mkv",
        "tone.mp3",
        "tone.flac",
        "tone.ogg",
        "tone.opus",
        "tone.m4a",
        "silence.wav",
        "pages5-objstm.pdf",
    ] {
        let data = match file {
            "silence.wav" => wav(8000, 1, 1),
            _ => fixture(file),
        };
        let mut corrupted = data.clone();
        // Keep the magic number (so the type stays), wreck what follows.
        for b in &mut corrupted[12..] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        for (what, bytes) in [
            ("cut to 40 bytes", data[..40].to_vec()),
            ("corrupted", corrupted),
        ] {
            let m = store(&mut s, file, "", &bytes).await;
            assert!(
                !m.analysis_error.is_empty(),
                "{file} {what}: no error recorded"
            );
            assert_eq!(m.size_bytes, bytes.len() as u64);
            let (_, back) = read(&mut s.client, &m.id, 0, 0).await.unwrap();
            assert_eq!(back, bytes, "{file} {what}");
        }
    }
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn svg_is_refused_by_default_and_stored_when_allowed() {
    let svg =
        br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>"#;
    let mut s = strict(|_| {}).await;
    let err = upload(&mut s.client, typed("a.svg", "image/svg+xml", svg), svg)
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "TYPE_NOT_ALLOWED", "{err:?}");
    assert!(err.message().contains("image/svg+xml"), "{}", err.message());
    let mut s = strict(|c| c.allowed_types = "image/*".into()).await;
    let m = store(&mut s, "a.svg", "image/svg+xml", svg).await;
    assert_eq!(
        (m.mime_type.as_str(), m.media_type),
        ("image/svg+xml", MediaType::Image as i32)
    );
    assert!(m.analysis_error.is_empty(), "{}", m.analysis_error);
    assert_eq!((m.width, m.height), (4, 4));
    let err = s
        .client
        .get_rendition(pb::GetRenditionRequest {
            media_id: m.id.clone(),
            width: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(reason(&err), "RENDITION_UNSUPPORTED");
}

/// Icons and cursors written by Pillow and icotool (tests/fixtures/README.md):
/// sniffed as icons (a cursor too, which `infer` does not know) and sized
/// by their largest image. The cursor (BMP entries) renders; the icon's
/// entries are RGB PNGs, which the `image` crate's ICO decoder refuses
/// (it wants RGBA), so it is only measured.
#[tokio::test(flavor = "multi_thread")]
async fn icons_and_cursors_report_their_largest_size() {
    let mut s = strict(|c| c.allowed_types = "image/*".into()).await;
    for (file, size) in [("icon-pillow.ico", 64), ("cursor-icotool.cur", 48)] {
        let m = store(&mut s, file, "", &fixture(file)).await;
        assert_eq!(m.mime_type, "image/vnd.microsoft.icon", "{file}");
        assert_eq!(m.media_type, MediaType::Image as i32, "{file}");
        assert!(m.analysis_error.is_empty(), "{file}: {}", m.analysis_error);
        assert_eq!((m.width, m.height), (size, size), "{file}");
        if file.ends_with(".ico") {
            continue;
        }
        let (r, _, _) = rendition(
            &mut s.client,
            pb::GetRenditionRequest {
                media_id: m.id.clone(),
                width: 16,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((r.width, r.height), (16, 16), "{file}");
    }
}
