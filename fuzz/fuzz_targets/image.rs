//! Image analysis: header readers (dimensions), density, EXIF (lenient,
//! with GPS and dates) and the HEIF/AVIF container, with the type the
//! sniffer gives the bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use std::io::{BufReader, Cursor};

use libfuzzer_sys::fuzz_target;
use mediastore::{analyze::image, domain::Analysis};

fuzz_target!(|data: &[u8]| {
    let mime = common::sniffed_mime(data, "image/jpeg");
    let mut a = Analysis::default();
    let _ = image::analyze(&mut BufReader::new(Cursor::new(data)), &mime, &mut a);
});
