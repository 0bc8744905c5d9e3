//! The rendition decoder behind its limits: decode (with shrink-on-load),
//! resize, orient and encode a thumbnail of any bytes sniffed as an image.
//! The bounds are the server's, scaled down so that one input stays fast.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mediastore::render::{self, Bounds, Fit, OutputFormat, RenditionSpec};

fuzz_target!(|data: &[u8]| {
    let mime = common::sniffed_mime(data, "image/jpeg");
    // Orientation and fit follow the input's length, leaving its bytes be.
    let orientation = (data.len() % 8) as u8 + 1;
    let fit = [Fit::Contain, Fit::Cover, Fit::Fill, Fit::ScaleDown][data.len() / 8 % 4];
    let spec = RenditionSpec {
        width: 64,
        height: 48,
        fit,
        format: OutputFormat::Jpeg,
        quality: 80,
    }
    .normalized();
    let bounds = Bounds {
        max_pixels: 4_000_000,
        max_frames: 50,
        max_alloc: 256 << 20,
    };
    if let Ok(r) = render::render(data, &mime, orientation, &spec, &bounds) {
        assert!(r.width > 0 && r.height > 0 && !r.bytes.is_empty());
    }
});
