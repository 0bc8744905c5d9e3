//! Renditions: decode (shrinking on load) -> resize (SIMD) -> orient ->
//! encode. Pure: bytes in, bytes out.
//!
//! The cost of a thumbnail is the decoder's. JPEG, the common case, is
//! decoded by libjpeg-turbo's code (through the `mozjpeg` crate, which
//! vendors it and builds it with the C compiler alone) with DCT scaling:
//! a 4000x3000 photo wanted 256 px wide is decoded at 1/8 scale, 500x375,
//! skipping most of the inverse DCT and colour conversion. That is what
//! `vipsthumbnail` and Pillow's draft mode do. `fast_image_resize` then
//! takes the small image to the exact size with Lanczos3 in a few
//! milliseconds, and the result is turned upright per the EXIF
//! orientation (turning the small image, not the big one). HEIC and AVIF
//! go through libheif when the `heif` feature is on (`heif.rs`). Other
//! formats go through the `image` crate with its allocation limits.
//!
//! Renditions carry no metadata but the colour profile: EXIF (with any GPS
//! position), XMP and comments are never copied; an ICC profile is, so a
//! wide-gamut photo's colours mean the same in its thumbnail (without one,
//! pixels are sRGB, as browsers assume).

mod gif;
mod heif;
mod plan;

use std::io::Cursor;

use fast_image_resize::{self as fir, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage, metadata::Orientation};

pub use self::plan::{Fit, OutputFormat, RenditionSpec};

/// Limits that keep a hostile file from taking the server's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most pixels a source may have (its header is checked before any
    /// decoding).
    pub max_pixels: u64,
    /// Most frames a GIF may have.
    pub max_frames: u32,
    /// Most bytes a decoder may allocate.
    pub max_alloc: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_frames: 1000,
            max_alloc: 1 << 30,
        }
    }
}

/// Why a rendition could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The source exceeds a [`Bounds`] limit.
    #[error("{0}")]
    TooLarge(String),
    /// The source's format cannot be rendered.
    #[error("{0}")]
    Unsupported(String),
    /// The source is not a readable image.
    #[error("{0}")]
    Corrupt(String),
}

/// A rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Encoded bytes.
    pub bytes: Vec<u8>,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

/// Decoded pixels and the colour profile they are in.
struct Decoded {
    pixels: Pixels,
    /// The source's ICC profile, carried over to the rendition so its
    /// colours mean the same (a wide-gamut photo stays wide-gamut).
    icc: Option<Vec<u8>>,
}

/// Decoded pixels: RGB, or RGBA when the source has transparency.
enum Pixels {
    Rgb(RgbImage),
    Rgba(RgbaImage),
}

impl Pixels {
    fn dimensions(&self) -> (u32, u32) {
        match self {
            Self::Rgb(i) => i.dimensions(),
            Self::Rgba(i) => i.dimensions(),
        }
    }
}

/// Renders `data` (an image of type `mime`, shown per EXIF
/// `orientation`, 1 when unknown) as `spec` asks.
pub fn render(
    data: &[u8],
    mime: &str,
    orientation: u8,
    spec: &RenditionSpec,
    bounds: &Bounds,
) -> Result<Rendered, RenderError> {
    let (Decoded { pixels, icc }, (tw, th), orientation) =
        decode(data, mime, orientation, spec, bounds)?;
    let pixels = resize(pixels, tw, th, spec.fit == Fit::Cover)?;
    let mut image = match pixels {
        Pixels::Rgb(i) => DynamicImage::ImageRgb8(i),
        Pixels::Rgba(i) => DynamicImage::ImageRgba8(i),
    };
    if let Some(o) = Orientation::from_exif(orientation) {
        image.apply_orientation(o);
    }
    let (width, height) = (image.width(), image.height());
    let bytes = encode(image, icc, spec)?;
    Ok(Rendered {
        bytes,
        width,
        height,
    })
}

/// Only the decoding step of [`render`] (at the same reduced scale), for
/// benchmarks: the floor under which no rendition can go. Returns the
/// decoded size.
pub fn decode_only(
    data: &[u8],
    mime: &str,
    orientation: u8,
    spec: &RenditionSpec,
    bounds: &Bounds,
) -> Result<(u32, u32), RenderError> {
    decode(data, mime, orientation, spec, bounds).map(|(d, ..)| d.pixels.dimensions())
}

/// Checks the bounds, then decodes as little as the output needs. Returns
/// the pixels, the output size before orientation, and the orientation
/// still to apply (1 where the decoder turned the picture itself).
fn decode(
    data: &[u8],
    mime: &str,
    orientation: u8,
    spec: &RenditionSpec,
    bounds: &Bounds,
) -> Result<(Decoded, (u32, u32), u8), RenderError> {
    if heif::handles(mime) {
        let (decoded, size) = heif::decode(data, bounds, |w, h| spec.output_size(w, h))?;
        return Ok((decoded, size, 1));
    }
    let format = ImageFormat::from_mime_type(mime)
        .ok_or_else(|| RenderError::Unsupported(format!("{mime} content has no renditions")))?;
    let (sw, sh) = match format {
        // `image` would copy the whole file to read a JPEG's header.
        ImageFormat::Jpeg => jpeg_size(data)?,
        _ => header_size(data, format)?,
    };
    check_pixels(sw, sh, bounds)?;
    if format == ImageFormat::Gif {
        gif::check_frames(data, bounds.max_frames)?;
    }
    let turned = matches!(orientation, 5..=8);
    let shown = if turned { (sh, sw) } else { (sw, sh) };
    let (ow, oh) = spec.output_size(shown.0, shown.1);
    // The output's size before turning upright.
    let (tw, th) = if turned { (oh, ow) } else { (ow, oh) };
    let scale = scale_needed((sw, sh), (tw, th));
    let decoded = match format {
        // libjpeg does not turn CMYK (print) JPEGs into RGB; `image` does,
        // without scaling, so such files cost a full decode.
        ImageFormat::Jpeg => match decode_jpeg(data, scale) {
            Ok(d) => d,
            Err(e) => decode_other(data, format, bounds).map_err(|_| e)?,
        },
        _ => decode_other(data, format, bounds)?,
    };
    Ok((decoded, (tw, th), orientation))
}

/// Refuses a source of `sw` x `sh` pixels (by its header) over the bound,
/// before anything is decoded.
fn check_pixels(sw: u32, sh: u32, bounds: &Bounds) -> Result<(), RenderError> {
    if u64::from(sw) * u64::from(sh) > bounds.max_pixels {
        return Err(RenderError::TooLarge(format!(
            "the image is {sw}x{sh} pixels, more than the {} this server decodes",
            bounds.max_pixels
        )));
    }
    Ok(())
}

/// The share of a `source`-sized picture's pixels, across and down, that
/// an `output`-sized rendition needs (a decoder may shrink that far).
fn scale_needed(source: (u32, u32), output: (u32, u32)) -> f64 {
    (f64::from(output.0) / f64::from(source.0)).max(f64::from(output.1) / f64::from(source.1))
}

/// The stored width and height, from the header alone.
fn header_size(data: &[u8], format: ImageFormat) -> Result<(u32, u32), RenderError> {
    image::ImageReader::with_format(Cursor::new(data), format)
        .into_dimensions()
        .map_err(|e| RenderError::Corrupt(format!("the image header is unreadable: {e}")))
}

/// A JPEG's width and height from its frame header, walking the marker
/// segments that precede it.
fn jpeg_size(data: &[u8]) -> Result<(u32, u32), RenderError> {
    let corrupt = || RenderError::Corrupt("the JPEG has no readable frame header".into());
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(corrupt());
    }
    let mut at = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while data.get(at) == Some(&0xFF) && data.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (data.get(at), data.get(at + 1)) else {
            return Err(corrupt());
        };
        let len = data
            .get(at + 2..at + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or_else(corrupt)?;
        // SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = data.get(at + 5..at + 7).ok_or_else(corrupt)?;
            let w = data.get(at + 7..at + 9).ok_or_else(corrupt)?;
            let (w, h) = (
                u32::from(u16::from_be_bytes([w[0], w[1]])),
                u32::from(u16::from_be_bytes([h[0], h[1]])),
            );
            return if w == 0 || h == 0 {
                Err(corrupt())
            } else {
                Ok((w, h))
            };
        }
        if marker == 0xDA || marker == 0xD9 || len < 2 {
            return Err(corrupt());
        }
        at += 2 + len;
    }
}

/// Decodes a JPEG at the smallest DCT scale (n/8) that still has at least
/// `scale` of the source's pixels, so the resizer only ever shrinks.
fn decode_jpeg(data: &[u8], scale: f64) -> Result<Decoded, RenderError> {
    let eighths = (scale * 8.0).ceil().clamp(1.0, 8.0) as u8;
    // libjpeg reports errors by unwinding (see `mozjpeg`'s docs).
    type Out = (usize, usize, Vec<u8>, Option<Vec<u8>>);
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<Out> {
        let mut d = mozjpeg::Decompress::builder()
            .with_markers(&[mozjpeg::Marker::APP(2)])
            .from_mem(data)?;
        let icc = jpeg_icc(&d);
        d.scale(eighths);
        if eighths < 8 {
            // The scaled IDCTs are exact enough for a downscale; the fast
            // integer method and plain upsampling save a third of the time.
            d.dct_method(mozjpeg::DctMethod::IntegerFast);
            d.do_fancy_upsampling(false);
        }
        let mut started = d.rgb()?;
        let (w, h) = (started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines()?;
        // A truncated file still gives its rows (the rest grey), as
        // browsers show it.
        let _ = started.finish();
        Ok((w, h, pixels, icc))
    });
    let (w, h, pixels, icc) = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(RenderError::Corrupt(format!("the JPEG is unreadable: {e}"))),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "libjpeg failed".into());
            return Err(RenderError::Corrupt(format!(
                "the JPEG is unreadable: {why}"
            )));
        }
    };
    let (w, h) = (
        u32::try_from(w).map_err(|_| corrupt_size())?,
        u32::try_from(h).map_err(|_| corrupt_size())?,
    );
    let pixels = RgbImage::from_raw(w, h, pixels)
        .map(Pixels::Rgb)
        .ok_or_else(corrupt_size)?;
    Ok(Decoded { pixels, icc })
}

/// The ICC profile of a JPEG: APP2 segments tagged `ICC_PROFILE`, each
/// with its sequence number, joined in order.
fn jpeg_icc<R>(d: &mozjpeg::Decompress<R>) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut parts: Vec<(u8, &[u8])> = d
        .markers()
        .filter(|m| m.marker == mozjpeg::Marker::APP(2) && m.data.len() > TAG.len() + 2)
        .filter(|m| m.data.starts_with(TAG))
        .map(|m| (m.data[TAG.len()], &m.data[TAG.len() + 2..]))
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort_by_key(|(seq, _)| *seq);
    Some(
        parts
            .into_iter()
            .flat_map(|(_, p)| p.iter().copied())
            .collect(),
    )
}

fn corrupt_size() -> RenderError {
    RenderError::Corrupt("the decoder returned fewer pixels than the image's size".into())
}

/// Decodes any other format (the first frame of an animation), within
/// the allocation limit.
fn decode_other(data: &[u8], format: ImageFormat, bounds: &Bounds) -> Result<Decoded, RenderError> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::with_format(Cursor::new(data), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(bounds.max_alloc);
    reader.limits(limits);
    let decoded = reader.into_decoder().and_then(|mut decoder| {
        let icc = decoder.icc_profile().ok().flatten();
        DynamicImage::from_decoder(decoder).map(|image| (image, icc))
    });
    let (image, icc) = decoded.map_err(|e| match e {
        image::ImageError::Limits(l) => RenderError::TooLarge(format!(
            "decoding the image would take more memory than this server allows: {l}"
        )),
        image::ImageError::Unsupported(u) => RenderError::Unsupported(u.to_string()),
        other => RenderError::Corrupt(format!("the image is unreadable: {other}")),
    })?;
    let pixels = if image.color().has_alpha() {
        Pixels::Rgba(image.into_rgba8())
    } else {
        Pixels::Rgb(image.into_rgb8())
    };
    Ok(Decoded { pixels, icc })
}

/// Resizes to exactly `w` x `h`; `cover` first crops the source, centred,
/// to the output's aspect ratio.
fn resize(pixels: Pixels, w: u32, h: u32, cover: bool) -> Result<Pixels, RenderError> {
    if pixels.dimensions() == (w, h) {
        return Ok(pixels);
    }
    let (sw, sh) = pixels.dimensions();
    let (buffer, kind) = match pixels {
        Pixels::Rgb(i) => (i.into_raw(), PixelType::U8x3),
        Pixels::Rgba(i) => (i.into_raw(), PixelType::U8x4),
    };
    let failed = |e: &dyn std::fmt::Display| RenderError::Corrupt(format!("resizing failed: {e}"));
    let src = fir::images::Image::from_vec_u8(sw, sh, buffer, kind).map_err(|e| failed(&e))?;
    let mut dst = fir::images::Image::new(w, h, kind);
    let mut options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(fir::FilterType::Lanczos3));
    if cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| failed(&e))?;
    let out = dst.into_vec();
    let bad = || RenderError::Corrupt("the resizer returned a short buffer".into());
    Ok(match kind {
        PixelType::U8x4 => Pixels::Rgba(RgbaImage::from_raw(w, h, out).ok_or_else(bad)?),
        _ => Pixels::Rgb(RgbImage::from_raw(w, h, out).ok_or_else(bad)?),
    })
}

/// Encodes with the colour profile `icc`, and no other metadata.
fn encode(
    image: DynamicImage,
    icc: Option<Vec<u8>>,
    spec: &RenditionSpec,
) -> Result<Vec<u8>, RenderError> {
    use image::{
        ImageEncoder,
        codecs::{jpeg::JpegEncoder, png, webp::WebPEncoder},
    };
    let mut out = Vec::new();
    let failed = |e: image::ImageError| RenderError::Corrupt(format!("encoding failed: {e}"));
    match spec.format {
        OutputFormat::Jpeg => {
            // JPEG has no transparency: flatten onto white, as browsers
            // show a transparent picture on a white page.
            let rgb = match image {
                DynamicImage::ImageRgba8(rgba) => flatten(&rgba),
                other => other.into_rgb8(),
            };
            let mut enc = JpegEncoder::new_with_quality(&mut out, spec.quality);
            with_icc(&mut enc, icc);
            enc.write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(failed)?;
        }
        OutputFormat::Png => {
            let mut enc = png::PngEncoder::new_with_quality(
                &mut out,
                png::CompressionType::Fast,
                png::FilterType::Adaptive,
            );
            with_icc(&mut enc, icc);
            image.write_with_encoder(enc).map_err(failed)?;
        }
        OutputFormat::Webp => {
            let mut enc = WebPEncoder::new_lossless(&mut out);
            with_icc(&mut enc, icc);
            image.write_with_encoder(enc).map_err(failed)?;
        }
    }
    Ok(out)
}

/// Gives the encoder the source's colour profile; an encoder that cannot
/// carry one writes the pixels as they are.
fn with_icc(enc: &mut impl image::ImageEncoder, icc: Option<Vec<u8>>) {
    if let Some(icc) = icc {
        let _ = enc.set_icc_profile(icc);
    }
}

/// Composites RGBA over white.
fn flatten(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_size_reads_the_frame_header() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(37, 21));
        let mut jpeg = Cursor::new(Vec::new());
        assert!(img.write_to(&mut jpeg, ImageFormat::Jpeg).is_ok());
        let jpeg = jpeg.into_inner();
        assert_eq!(jpeg_size(&jpeg).ok(), Some((37, 21)));
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap_or(0);
        for cut in [0, 1, 2, 3, sof, sof + 6] {
            assert!(jpeg_size(&jpeg[..cut]).is_err(), "cut at {cut}");
        }
        assert!(jpeg_size(b"\xFF\xD8\xFF\xDA\x00\x02").is_err());
    }
}
