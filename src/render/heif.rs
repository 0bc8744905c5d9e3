//! HEIC and AVIF sources, decoded by libheif when the server is built with
//! the `heif` cargo feature (Debian's `libheif-dev`; it links libde265 for
//! HEVC and dav1d/aom for AV1). Without it, their renditions answer
//! `RENDITION_UNSUPPORTED` naming the feature, and their analysis (size,
//! orientation, EXIF) still works: it reads the container in pure Rust.
//!
//! libheif applies the mandatory `irot`/`imir` (and `clap`) while
//! decoding, so the picture arrives upright and is not turned again.
//!
//! Like `vipsthumbnail`, a small rendition is made from a thumbnail item
//! the file carries (phones write one) when it has at least the pixels
//! the output needs: decoding HEVC or AV1 at full size is the whole cost,
//! and neither codec can decode at a reduced scale as JPEG can.

#[cfg(not(feature = "heif"))]
use super::{Bounds, Decoded, RenderError};

/// Whether `mime` is a format this module decodes.
pub(super) fn handles(mime: &str) -> bool {
    matches!(mime, "image/heif" | "image/avif")
}

/// Decodes the primary image of `data`, upright, with at least the pixels
/// `output` asks of its upright size; returns the decoded pixels and the
/// output size.
#[cfg(not(feature = "heif"))]
pub(super) fn decode(
    _data: &[u8],
    _bounds: &Bounds,
    _output: impl Fn(u32, u32) -> (u32, u32),
) -> Result<(Decoded, (u32, u32)), RenderError> {
    Err(RenderError::Unsupported(
        "this server was built without HEIC and AVIF decoding; build it with the `heif` \
         cargo feature (cargo build --release --features heif, which needs libheif-dev)"
            .into(),
    ))
}

#[cfg(feature = "heif")]
pub(super) use self::libheif::decode;

#[cfg(feature = "heif")]
mod libheif {
    use std::sync::OnceLock;

    use image::{RgbImage, RgbaImage};
    use libheif_rs::{
        ColorSpace, HeifContext, HeifError, HeifErrorCode, ImageHandle, ItemId, LibHeif, RgbChroma,
    };

    use super::super::{Bounds, Decoded, Pixels, RenderError, check_pixels, scale_needed};

    /// Most thumbnail items looked at (phones write one).
    const MAX_THUMBNAILS: usize = 8;

    /// The library, initialised once (`heif_init` loads the codec plugins).
    fn lib() -> &'static LibHeif {
        static LIB: OnceLock<LibHeif> = OnceLock::new();
        LIB.get_or_init(LibHeif::new)
    }

    pub(in super::super) fn decode(
        data: &[u8],
        bounds: &Bounds,
        output: impl Fn(u32, u32) -> (u32, u32),
    ) -> Result<(Decoded, (u32, u32)), RenderError> {
        let ctx = HeifContext::read_from_bytes(data).map_err(error)?;
        let primary = ctx.primary_image_handle().map_err(error)?;
        // libheif gives the size after the turns and the crop.
        let (sw, sh) = (primary.width(), primary.height());
        if sw == 0 || sh == 0 {
            return Err(RenderError::Corrupt("the image has no pixels".into()));
        }
        check_pixels(sw, sh, bounds)?;
        let (tw, th) = output(sw, sh);
        let scale = scale_needed((sw, sh), (tw, th));
        let source = thumbnail(&primary, sw, sh, scale).unwrap_or(primary);
        let alpha = source.has_alpha_channel();
        let chroma = if alpha {
            RgbChroma::Rgba
        } else {
            RgbChroma::Rgb
        };
        // No decoding options: the bindings describe libheif 1.14's options
        // struct, and writing a field of it through them was seen to turn
        // off the transformations of Debian's 1.15. The defaults apply
        // irot, imir and clap, and an 8-bit interleaved chroma makes 8-bit
        // pixels of 10-bit sources.
        let image = lib()
            .decode(&source, ColorSpace::Rgb(chroma), None)
            .map_err(error)?;
        let plane = image
            .planes()
            .interleaved
            .ok_or_else(|| RenderError::Corrupt("libheif returned no pixels".into()))?;
        let channels = if alpha { 4 } else { 3 };
        let row = plane.width as usize * channels;
        let mut pixels = Vec::with_capacity(row * plane.height as usize);
        for y in 0..plane.height as usize {
            let line = plane
                .data
                .get(y * plane.stride..y * plane.stride + row)
                .ok_or_else(short)?;
            pixels.extend_from_slice(line);
        }
        let (w, h) = (plane.width, plane.height);
        let pixels = if alpha {
            Pixels::Rgba(RgbaImage::from_raw(w, h, pixels).ok_or_else(short)?)
        } else {
            Pixels::Rgb(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
        };
        // An ICC profile (`colr` of type `prof`, as iPhones write Display
        // P3); an `nclx` description has no profile to carry.
        let icc = source
            .color_profile_raw()
            .map(|p| p.data)
            .filter(|d| !d.is_empty());
        Ok((Decoded { pixels, icc }, (tw, th)))
    }

    /// The smallest thumbnail item with at least `scale` of the primary
    /// image's pixels across and down.
    pub(super) fn thumbnail(
        primary: &ImageHandle,
        sw: u32,
        sh: u32,
        scale: f64,
    ) -> Option<ImageHandle> {
        let mut ids: [ItemId; MAX_THUMBNAILS] = [0; MAX_THUMBNAILS];
        let n = primary.thumbnail_ids(&mut ids);
        let (need_w, need_h) = (f64::from(sw) * scale, f64::from(sh) * scale);
        ids[..n.min(MAX_THUMBNAILS)]
            .iter()
            .filter_map(|&id| primary.thumbnail(id).ok())
            .filter(|t| f64::from(t.width()) >= need_w && f64::from(t.height()) >= need_h)
            // A thumbnail of another shape (cropped differently) would
            // show another picture.
            .filter(|t| {
                let (a, b) = (
                    f64::from(t.width()) / f64::from(t.height()),
                    f64::from(sw) / f64::from(sh),
                );
                (a / b - 1.0).abs() < 0.02
            })
            .min_by_key(|t| u64::from(t.width()) * u64::from(t.height()))
    }

    fn error(e: HeifError) -> RenderError {
        let why = format!("libheif: {}", e.message);
        match e.code {
            HeifErrorCode::UnsupportedFeature
            | HeifErrorCode::UnsupportedFileType
            | HeifErrorCode::PluginLoadingError => RenderError::Unsupported(why),
            HeifErrorCode::MemoryAllocationError => RenderError::TooLarge(why),
            _ => RenderError::Corrupt(format!("the image is unreadable: {why}")),
        }
    }

    fn short() -> RenderError {
        RenderError::Corrupt("libheif returned fewer pixels than the image's size".into())
    }
}

#[cfg(all(test, feature = "heif"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use libheif_rs::HeifContext;

    use super::libheif::thumbnail;

    /// heif-enc's 32x16 thumbnail of a 64x32 picture serves renditions of
    /// up to its size, and no larger.
    #[test]
    fn a_thumbnail_item_serves_small_renditions() {
        let data = std::fs::read(crate::analyze::fixture("heic-thumb.heic")).unwrap();
        let ctx = HeifContext::read_from_bytes(&data).unwrap();
        let primary = ctx.primary_image_handle().unwrap();
        let thumb = thumbnail(&primary, 64, 32, 0.5).expect("the 32x16 thumbnail");
        assert_eq!((thumb.width(), thumb.height()), (32, 16));
        assert!(thumbnail(&primary, 64, 32, 0.51).is_none());
        assert!(thumbnail(&primary, 64, 32, 1.0).is_none());
    }
}
