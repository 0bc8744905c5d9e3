//! Renditions through the server: sizes per fit, orientation, no
//! metadata, the cache, removal with the source, decompression bombs and
//! bad requests.

use crate::common::*;
use image::ImageFormat;
use mediastore::pb::v1::{
    self as pb, GetRenditionRequest, RenditionFit, RenditionFormat,
    media_service_client::MediaServiceClient,
};
use tonic::Code;

use crate::common::Channel;

type Client = MediaServiceClient<Channel>;

async fn store(client: &mut Client, name: &str, data: &[u8]) -> pb::Media {
    upload(client, header(name, data.len()), data)
        .await
        .unwrap()
        .media
        .unwrap()
}

fn sized(id: &str, width: u32, height: u32, fit: RenditionFit) -> GetRenditionRequest {
    GetRenditionRequest {
        media_id: id.into(),
        width,
        height,
        fit: fit as i32,
        ..Default::default()
    }
}

/// Decodes a rendition, checking its bytes are what its description says.
fn decode(r: &pb::Rendition, bytes: &[u8]) -> image::DynamicImage {
    assert_eq!(r.size_bytes, bytes.len() as u64);
    assert_eq!(r.blake3, blake3_hex(bytes));
    let format = ImageFormat::from_mime_type(&r.mime_type).unwrap();
    let img = image::load_from_memory_with_format(bytes, format).unwrap();
    assert_eq!((img.width(), img.height()), (r.width, r.height));
    img
}

#[tokio::test(flavor = "multi_thread")]
async fn each_fit_gives_its_exact_size() {
    let mut s = TestServer::spawn().await;
    for format in [ImageFormat::Jpeg, ImageFormat::Png] {
        let m = store(&mut s.client, "wide", &encoded(format, 400, 300)).await;
        use RenditionFit::*;
        for (w, h, fit, want) in [
            (100, 100, Contain, (100, 75)),
            (100, 100, Cover, (100, 100)),
            (100, 100, Fill, (100, 100)),
            (100, 100, ScaleDown, (100, 75)),
            (800, 800, Contain, (800, 600)),
            (800, 800, ScaleDown, (400, 300)),
            (800, 100, Cover, (800, 100)),
            (200, 0, Unspecified, (200, 150)),
            (0, 30, Fill, (40, 30)),
            (0, 0, Contain, (400, 300)),
        ] {
            let (r, _, bytes) = rendition(&mut s.client, sized(&m.id, w, h, fit))
                .await
                .unwrap();
            assert_eq!((r.width, r.height), want, "{format:?} {w}x{h} {fit:?}");
            assert_eq!(r.mime_type, "image/jpeg");
            decode(&r, &bytes);
        }
        // Other encodings.
        for (f, mime) in [
            (RenditionFormat::Png, "image/png"),
            (RenditionFormat::Webp, "image/webp"),
        ] {
            let req = GetRenditionRequest {
                format: f as i32,
                ..sized(&m.id, 50, 0, RenditionFit::Contain)
            };
            let (r, _, bytes) = rendition(&mut s.client, req).await.unwrap();
            assert_eq!((r.mime_type.as_str(), r.width, r.height), (mime, 50, 38));
            decode(&r, &bytes);
        }
    }
    // Cover keeps the centre: a picture whose left and right thirds are
    // black and middle white comes out white in a square crop.
    let bands = image::RgbImage::from_fn(300, 100, |x, _| {
        if (100..200).contains(&x) {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb([0, 0, 0])
        }
    });
    let mut png = std::io::Cursor::new(Vec::new());
    bands.write_to(&mut png, ImageFormat::Png).unwrap();
    let m = store(&mut s.client, "bands", png.get_ref()).await;
    let req = GetRenditionRequest {
        format: RenditionFormat::Png as i32,
        ..sized(&m.id, 10, 10, RenditionFit::Cover)
    };
    let (r, _, bytes) = rendition(&mut s.client, req).await.unwrap();
    let img = decode(&r, &bytes).to_rgb8();
    assert!(img.pixels().all(|p| p.0[0] > 200), "cover lost the centre");
}

#[tokio::test(flavor = "multi_thread")]
async fn orientation_is_applied_and_metadata_stripped() {
    let mut s = TestServer::spawn().await;
    // 64x32 stored, orientation 6: shown 32x64, turned a quarter clockwise.
    let m = store(&mut s.client, "phone.jpg", &jpeg_with_exif()).await;
    for format in [
        RenditionFormat::Jpeg,
        RenditionFormat::Png,
        RenditionFormat::Webp,
    ] {
        let req = GetRenditionRequest {
            format: format as i32,
            ..sized(&m.id, 16, 0, RenditionFit::Contain)
        };
        let (r, _, bytes) = rendition(&mut s.client, req).await.unwrap();
        assert_eq!((r.width, r.height), (16, 32), "{format:?}: not upright");
        let img = decode(&r, &bytes).to_rgb8();
        // The stored picture's red grows to the right, green downwards.
        // Turned clockwise, its bottom-left corner is now top-left.
        let top_left = img.get_pixel(1, 1).0;
        let bottom_left = img.get_pixel(1, 30).0;
        let top_right = img.get_pixel(14, 1).0;
        assert!(
            top_left[0] < 60 && top_left[1] > 190,
            "{format:?}: {top_left:?}"
        );
        assert!(
            bottom_left[0] > 190 && bottom_left[1] > 190,
            "{format:?}: {bottom_left:?}"
        );
        assert!(
            top_right[0] < 60 && top_right[1] < 60,
            "{format:?}: {top_right:?}"
        );
        // No EXIF block, so no camera and no position.
        let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&bytes));
        assert!(exif.is_err(), "{format:?}: EXIF in a rendition");
        for needle in [&b"Exif"[..], b"FUJIFILM", b"X100V"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{format:?}: {:?} in a rendition",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Where the stored 64x32 test picture's red, green, blue and white
/// quadrants (top left, top right, bottom left, bottom right as stored)
/// must be shown for each EXIF orientation: top left, top right, bottom
/// left, bottom right. These follow from the EXIF definitions, not from
/// the server's code.
const SHOWN_CORNERS: [(u32, [[u8; 3]; 4]); 8] = {
    const R: [u8; 3] = [255, 0, 0];
    const G: [u8; 3] = [0, 255, 0];
    const B: [u8; 3] = [0, 0, 255];
    const W: [u8; 3] = [255, 255, 255];
    [
        (1, [R, G, B, W]), // as stored
        (2, [G, R, W, B]), // mirrored left to right
        (3, [W, B, G, R]), // turned half
        (4, [B, W, R, G]), // mirrored top to bottom
        (5, [R, B, G, W]), // mirrored along the main diagonal
        (6, [B, R, W, G]), // turned a quarter clockwise
        (7, [W, G, B, R]), // mirrored along the other diagonal
        (8, [G, W, R, B]), // turned a quarter anticlockwise
    ]
};

/// Uploads the fixture `name` (the test picture, shown per
/// `orientation`), checks the orientation the analysis found, and that a
/// rendition `width` pixels wide (0: the source's size) is upright:
/// portrait for 5-8, each quadrant's colour in the corner
/// [`SHOWN_CORNERS`] gives. Returns the rendition's pixels.
async fn assert_upright_rendition(
    s: &mut TestServer,
    name: &str,
    orientation: u32,
    width: u32,
) -> image::DynamicImage {
    let data = fixture(name);
    let m = store(&mut s.client, name, &data).await;
    assert_eq!(m.orientation, orientation, "{name}: {}", m.analysis_error);
    let req = GetRenditionRequest {
        format: RenditionFormat::Png as i32,
        ..sized(&m.id, width, 0, RenditionFit::Contain)
    };
    let (r, _, bytes) = rendition(&mut s.client, req).await.unwrap();
    let shown = if orientation >= 5 { (32, 64) } else { (64, 32) };
    let want = match width {
        0 => shown,
        w => (w, shown.1 * w / shown.0),
    };
    assert_eq!((r.width, r.height), want, "{name}");
    let picture = decode(&r, &bytes);
    let img = picture.to_rgb8();
    let (w, h) = (img.width() - 4, img.height() - 4);
    let got = [(3, 3), (w, 3), (3, h), (w, h)].map(|(x, y)| img.get_pixel(x, y).0);
    let corners = SHOWN_CORNERS[orientation as usize - 1].1;
    for (i, (g, want)) in got.iter().zip(corners).enumerate() {
        let near = g.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 60);
        assert!(near, "{name}: corner {i} is {g:?}, not {want:?}");
    }
    picture
}

/// Every EXIF orientation, written by piexif (tests/fixtures/mkexif.py),
/// gives an upright rendition.
#[tokio::test(flavor = "multi_thread")]
async fn every_exif_orientation_gives_an_upright_rendition() {
    let mut s = TestServer::spawn().await;
    for (orientation, _) in SHOWN_CORNERS {
        assert_upright_rendition(
            &mut s,
            &format!("piexif-o{orientation}.jpg"),
            orientation,
            0,
        )
        .await;
    }
}

/// HEIC and AVIF written by libheif and libavif (tests/fixtures/mkheif.py)
/// render upright: each AVIF orientation as irot and imir, an iPhone-style
/// HEIC turned by irot (whose EXIF also says 6: it must not turn twice), a
/// grid HEIC, and one with a thumbnail item, from which a rendition of the
/// thumbnail's size is made.
#[cfg(feature = "heif")]
#[tokio::test(flavor = "multi_thread")]
async fn heif_and_avif_render_upright() {
    let mut s = TestServer::spawn().await;
    for (orientation, _) in SHOWN_CORNERS {
        let name = format!("avif-o{orientation}.avif");
        assert_upright_rendition(&mut s, &name, orientation, 0).await;
    }
    assert_upright_rendition(&mut s, "heic-irot.heic", 6, 0).await;
    assert_upright_rendition(&mut s, "heic-irot.heic", 6, 16).await;
    assert_upright_rendition(&mut s, "heic-grid.heic", 1, 0).await;
    assert_upright_rendition(&mut s, "heic-thumb.heic", 1, 32).await;
    assert_upright_rendition(&mut s, "heic-thumb.heic", 1, 0).await;
}

/// A 10-bit HEIC with an alpha plane keeps its transparency in a PNG
/// rendition (its white quadrant is transparent).
#[cfg(feature = "heif")]
#[tokio::test(flavor = "multi_thread")]
async fn a_10_bit_heic_with_alpha_keeps_its_transparency() {
    let mut s = TestServer::spawn().await;
    let png = assert_upright_rendition(&mut s, "heic-10bit-alpha.heic", 1, 0).await;
    let rgba = png.to_rgba8();
    assert_eq!(rgba.get_pixel(3, 3).0[3], 255);
    assert!(
        rgba.get_pixel(60, 28).0[3] < 10,
        "{:?}",
        rgba.get_pixel(60, 28)
    );
}

/// A build without the `heif` feature refuses HEIC and AVIF renditions
/// with a reason and a message that says how to get them.
#[cfg(not(feature = "heif"))]
#[tokio::test(flavor = "multi_thread")]
async fn heif_renditions_name_the_feature_they_need() {
    let mut s = TestServer::spawn().await;
    for name in ["heic-irot.heic", "avif-o1.avif"] {
        let data = fixture(name);
        let m = store(&mut s.client, name, &data).await;
        let err = rendition(&mut s.client, sized(&m.id, 32, 0, RenditionFit::Contain))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{name}: {err:?}");
        assert_eq!(reason(&err), "RENDITION_UNSUPPORTED", "{name}");
        assert!(err.message().contains("--features heif"), "{name}: {err:?}");
    }
}

/// A stand-in ICC profile: what matters is that it arrives unchanged.
fn icc() -> Vec<u8> {
    let mut icc = vec![0u8; 300];
    icc[36..40].copy_from_slice(b"acsp");
    for (i, b) in icc.iter_mut().enumerate().skip(128) {
        *b = i as u8;
    }
    icc
}

#[tokio::test(flavor = "multi_thread")]
async fn the_colour_profile_is_kept() {
    use image::{ImageDecoder, ImageEncoder};
    let mut s = TestServer::spawn().await;
    let pic = picture(60, 40);
    let mut png = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut png);
    enc.set_icc_profile(icc()).unwrap();
    enc.write_image(pic.as_raw(), 60, 40, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mut jpeg = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new(&mut jpeg);
    enc.set_icc_profile(icc()).unwrap();
    enc.write_image(pic.as_raw(), 60, 40, image::ExtendedColorType::Rgb8)
        .unwrap();
    for (name, data) in [("p.png", png), ("p.jpg", jpeg)] {
        let m = store(&mut s.client, name, &data).await;
        for (format, out) in [
            (RenditionFormat::Jpeg, ImageFormat::Jpeg),
            (RenditionFormat::Png, ImageFormat::Png),
            (RenditionFormat::Webp, ImageFormat::WebP),
        ] {
            let req = GetRenditionRequest {
                format: format as i32,
                ..sized(&m.id, 30, 0, RenditionFit::Contain)
            };
            let (_, _, bytes) = rendition(&mut s.client, req).await.unwrap();
            let mut decoder = image::ImageReader::with_format(std::io::Cursor::new(&bytes), out)
                .into_decoder()
                .unwrap();
            assert_eq!(
                decoder.icc_profile().unwrap(),
                Some(icc()),
                "{name} as {format:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_request_is_served_from_the_cache() {
    let mut s = TestServer::spawn().await;
    let m = store(
        &mut s.client,
        "p.jpg",
        &encoded(ImageFormat::Jpeg, 300, 200),
    )
    .await;
    let before = s.library.renders();
    let (first, cached, bytes) =
        rendition(&mut s.client, sized(&m.id, 90, 0, RenditionFit::Contain))
            .await
            .unwrap();
    assert!(!cached);
    assert_eq!(s.library.renders(), before + 1);
    // The same request, and one that means the same (the fit does not
    // matter when a side is free): no decoding.
    for fit in [RenditionFit::Contain, RenditionFit::Cover] {
        let (again, cached, again_bytes) = rendition(&mut s.client, sized(&m.id, 90, 0, fit))
            .await
            .unwrap();
        assert!(cached);
        assert_eq!(again, first);
        assert_eq!(again_bytes, bytes);
    }
    assert_eq!(s.library.renders(), before + 1);
    // The same bytes uploaded again share the cache.
    let twin = store(
        &mut s.client,
        "twin.jpg",
        &encoded(ImageFormat::Jpeg, 300, 200),
    )
    .await;
    let (_, cached, _) = rendition(&mut s.client, sized(&twin.id, 90, 0, RenditionFit::Contain))
        .await
        .unwrap();
    assert!(cached);
    assert_eq!(s.library.renders(), before + 1);
    let listed = list_renditions(&mut s.client, &m.id).await;
    assert_eq!(listed, vec![first]);
    assert_eq!(get_media(&mut s.client, &m.id).await.renditions, listed);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renditions_go_with_their_source() {
    let mut s = TestServer::spawn().await;
    let data = encoded(ImageFormat::Png, 120, 80);
    let a = store(&mut s.client, "a.png", &data).await;
    let b = store(&mut s.client, "b.png", &data).await;
    for w in [10, 20, 30] {
        rendition(&mut s.client, sized(&a.id, w, 0, RenditionFit::Contain))
            .await
            .unwrap();
    }
    assert_eq!(s.stored_blobs().await, 4);
    // Another media still holds the source: the renditions stay.
    delete(&mut s.client, &a.id).await;
    assert_eq!(s.stored_blobs().await, 4);
    let (_, cached, _) = rendition(&mut s.client, sized(&b.id, 10, 0, RenditionFit::Contain))
        .await
        .unwrap();
    assert!(cached);
    // The last one goes: so do its renditions, rows and bytes.
    delete(&mut s.client, &b.id).await;
    assert_eq!(s.stored_blobs().await, 0);
    assert_storage_sound(&s).await;
    // Uploaded again, it renders afresh.
    let c = store(&mut s.client, "c.png", &data).await;
    let (_, cached, _) = rendition(&mut s.client, sized(&c.id, 10, 0, RenditionFit::Contain))
        .await
        .unwrap();
    assert!(!cached);
}

async fn list_renditions(client: &mut Client, id: &str) -> Vec<pb::Rendition> {
    client
        .list_renditions(pb::ListRenditionsRequest {
            media_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .renditions
}

async fn delete(client: &mut Client, id: &str) {
    client
        .delete_media(pb::DeleteMediaRequest {
            media_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn eager_presets_are_made_at_upload() {
    let mut s = TestServer::spawn_with(|c| c.eager_renditions = "thumbnail".into()).await;
    let m = store(
        &mut s.client,
        "p.jpg",
        &encoded(ImageFormat::Jpeg, 1000, 500),
    )
    .await;
    let mut listed = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        listed = list_renditions(&mut s.client, &m.id).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(listed.len(), 1, "no eager thumbnail");
    assert_eq!(listed[0].key, "256x0-scale-down-jpeg-q80");
    // They were made by a job the upload's commit queued, which any
    // replica could have run and which a crash would not have lost.
    let mut jobs =
        mediastore::pb::v1::job_service_client::JobServiceClient::new(channel(s.addr).await);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let job = loop {
        let page = jobs
            .list_jobs(mediastore::pb::v1::ListJobsRequest {
                filter: Some(mediastore::pb::v1::JobFilter {
                    kinds: vec!["eager_renditions".into()],
                    statuses: vec![mediastore::pb::v1::JobStatus::Succeeded as i32],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(job) = page.jobs.into_iter().next() {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no eager renditions job ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(job.priority, -10);
    assert!(
        job.payload.unwrap().fields["media_id"].kind
            == Some(prost_types::value::Kind::StringValue(m.id.clone()))
    );
    assert_eq!((listed[0].width, listed[0].height), (256, 128));
    let renders = s.library.renders();
    let req = GetRenditionRequest {
        media_id: m.id.clone(),
        preset: "thumbnail".into(),
        ..Default::default()
    };
    let (r, cached, _) = rendition(&mut s.client, req).await.unwrap();
    assert!(cached);
    assert_eq!(r, listed[0]);
    assert_eq!(s.library.renders(), renders);
    // A small picture's thumbnail is not enlarged.
    let small = store(&mut s.client, "s.jpg", &encoded(ImageFormat::Jpeg, 100, 50)).await;
    let req = GetRenditionRequest {
        media_id: small.id.clone(),
        preset: "thumbnail".into(),
        ..Default::default()
    };
    let (r, _, _) = rendition(&mut s.client, req).await.unwrap();
    assert_eq!((r.width, r.height), (100, 50));
}

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A PNG whose header claims `w` x `h` pixels, with one tiny IDAT.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let crc = crc32(&[kind, data]);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes: far fewer than the header promises.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// CRC-32 as PNG computes it.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A JPEG whose frame header claims `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = encoded(ImageFormat::Jpeg, 16, 16);
    let sof = jpeg.windows(2).position(|x| x == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

/// A 1x1 GIF with `frames` frames.
fn gif_with_frames(frames: usize) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    for _ in 0..frames {
        gif.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    gif.push(0x3b);
    gif
}

#[tokio::test(flavor = "multi_thread")]
async fn decompression_bombs_are_refused_in_bounded_memory() {
    let mut s = TestServer::spawn().await;
    let before = peak_rss();
    let bombs = [
        (
            "a PNG claiming 100000x100000",
            png_claiming(100_000, 100_000),
        ),
        ("a JPEG claiming 60000x60000", jpeg_claiming(60_000, 60_000)),
        ("a GIF of 5000 frames", gif_with_frames(5000)),
    ];
    for (what, data) in bombs {
        let m = store(&mut s.client, "bomb", &data).await;
        assert_eq!(m.media_type, pb::MediaType::Image as i32, "{what}");
        let err = rendition(&mut s.client, sized(&m.id, 64, 0, RenditionFit::Contain))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
        assert_eq!(reason(&err), "IMAGE_TOO_LARGE", "{what}: {err:?}");
        assert!(!err.message().is_empty());
    }
    // A decoded 100000x100000 RGB picture would take 30 GB.
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 256 * 1024 * 1024, "memory grew by {grown} bytes");
    // A truthful GIF of a few frames renders (its first frame).
    let m = store(&mut s.client, "ok.gif", &gif_with_frames(3)).await;
    let (r, _, _) = rendition(&mut s.client, sized(&m.id, 4, 4, RenditionFit::Fill))
        .await
        .unwrap();
    assert_eq!((r.width, r.height), (4, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pixel_limit_is_configurable() {
    let mut s = TestServer::spawn_with(|c| c.max_image_pixels = 10_000).await;
    let m = store(&mut s.client, "p.png", &encoded(ImageFormat::Png, 200, 100)).await;
    let err = rendition(&mut s.client, sized(&m.id, 10, 0, RenditionFit::Contain))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "IMAGE_TOO_LARGE", "{err:?}");
    assert!(err.message().contains("200x100"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rendition_requests_are_refused() {
    let mut s = TestServer::spawn_with(|c| {
        c.rendition_max_dimension = 1000;
        c.rendition_sizes = Some("100x0,64x64".into());
    })
    .await;
    let img = store(&mut s.client, "p.png", &encoded(ImageFormat::Png, 200, 100)).await;
    let text = store(&mut s.client, "t.txt", b"hello").await;
    let cases: Vec<(GetRenditionRequest, Code, &str)> = vec![
        (
            GetRenditionRequest {
                preset: "thumbnail".into(),
                ..sized(&img.id, 10, 0, RenditionFit::Contain)
            },
            Code::InvalidArgument,
            "preset",
        ),
        (
            GetRenditionRequest {
                media_id: img.id.clone(),
                preset: "poster".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "preset",
        ),
        (
            sized(&img.id, 2000, 0, RenditionFit::Contain),
            Code::InvalidArgument,
            "width",
        ),
        (
            sized(&img.id, 0, 1001, RenditionFit::Contain),
            Code::InvalidArgument,
            "height",
        ),
        (
            sized(&img.id, 50, 50, RenditionFit::Contain),
            Code::InvalidArgument,
            "width",
        ),
        (
            GetRenditionRequest {
                quality: 101,
                ..sized(&img.id, 100, 0, RenditionFit::Contain)
            },
            Code::InvalidArgument,
            "quality",
        ),
        (
            GetRenditionRequest {
                fit: 99,
                ..sized(&img.id, 100, 0, RenditionFit::Contain)
            },
            Code::InvalidArgument,
            "fit",
        ),
        (
            GetRenditionRequest {
                format: 99,
                ..sized(&img.id, 100, 0, RenditionFit::Contain)
            },
            Code::InvalidArgument,
            "format",
        ),
        (
            sized("nope", 100, 0, RenditionFit::Contain),
            Code::InvalidArgument,
            "media_id",
        ),
        (
            sized(
                "01a2a3a4-a5a6-7a7a-8a8a-a9aaabacadae",
                100,
                0,
                RenditionFit::Contain,
            ),
            Code::NotFound,
            "",
        ),
        (
            sized(&text.id, 100, 0, RenditionFit::Contain),
            Code::FailedPrecondition,
            "",
        ),
    ];
    for (req, code, field) in cases {
        let err = rendition(&mut s.client, req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
        assert!(!err.message().is_empty());
        if !field.is_empty() {
            assert_eq!(bad_field(&err).as_deref(), Some(field), "{req:?}: {err:?}");
        }
    }
    // Allowed sizes and presets work.
    rendition(&mut s.client, sized(&img.id, 100, 0, RenditionFit::Contain))
        .await
        .unwrap();
    let preset = GetRenditionRequest {
        media_id: img.id.clone(),
        preset: "thumbnail".into(),
        ..Default::default()
    };
    rendition(&mut s.client, preset).await.unwrap();
    // Nothing was made for the refused requests.
    assert_eq!(s.stored_blobs().await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_rendition_whose_bytes_are_gone_is_made_again() {
    let mut s = TestServer::spawn().await;
    let m = store(&mut s.client, "p.png", &encoded(ImageFormat::Png, 80, 40)).await;
    let req = sized(&m.id, 20, 0, RenditionFit::Contain);
    let (first, _, bytes) = rendition(&mut s.client, req.clone()).await.unwrap();
    // What a scrub's quarantine, or an operator's mistake, leaves.
    let blob = &first.blake3;
    s.remove_blob_bytes(blob).await;
    let (again, cached, again_bytes) = rendition(&mut s.client, req.clone()).await.unwrap();
    assert!(!cached);
    assert_eq!(
        (again.key, again.blake3),
        (first.key.clone(), first.blake3.clone())
    );
    assert_eq!(again_bytes, bytes);
    let (_, cached, _) = rendition(&mut s.client, req).await.unwrap();
    assert!(cached);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cmyk_jpegs_render_too() {
    let mut s = TestServer::spawn().await;
    // Cyan everywhere (C=255, M=Y=K=0; Adobe writes CMYK inverted, which
    // decoders undo), as print workflows make them.
    let (w, h) = (64usize, 32usize);
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
    c.set_size(w, h);
    c.set_quality(90.0);
    let mut started = c.start_compress(Vec::new()).unwrap();
    started
        .write_scanlines(&[0u8, 255, 255, 255].repeat(w * h))
        .unwrap();
    let cmyk = started.finish().unwrap();
    let m = store(&mut s.client, "print.jpg", &cmyk).await;
    assert_eq!((m.width, m.height), (64, 32));
    let (r, _, bytes) = rendition(&mut s.client, sized(&m.id, 16, 0, RenditionFit::Contain))
        .await
        .unwrap();
    assert_eq!((r.width, r.height), (16, 8));
    decode(&r, &bytes);
}
