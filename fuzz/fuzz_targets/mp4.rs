//! The MP4 and QuickTime (ISO-BMFF) probe, over any bytes, as an upload of `video/mp4`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mediastore::analyze::av;

fuzz_target!(|data: &[u8]| {
    let _ = av::probe_source(common::source(data), "video/mp4");
});
