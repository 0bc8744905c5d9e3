//! The Matroska and WebM (EBML) probe, over any bytes, as an upload of `video/x-matroska`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mediastore::analyze::av;

fuzz_target!(|data: &[u8]| {
    let _ = av::probe_source(common::source(data), "video/x-matroska");
});
