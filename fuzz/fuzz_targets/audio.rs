//! The audio probe (MP3, WAV, AIFF, FLAC, Ogg through symphonia, M4A
//! through the MP4 reader), with the type the sniffer gives the bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mediastore::analyze::av;

fuzz_target!(|data: &[u8]| {
    let mime = common::sniffed_mime(data, "audio/mpeg");
    let _ = av::probe_source(common::source(data), &mime);
});
