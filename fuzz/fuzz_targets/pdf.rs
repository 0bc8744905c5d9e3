//! The PDF page counter (lopdf, then our bounded walk of the page tree).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mediastore::analyze::pdf;

fuzz_target!(|data: &[u8]| {
    if let Ok(count) = pdf::page_count_source(common::source(data)) {
        // Never more pages than the file has bytes to describe.
        assert!(u64::from(count.pages) <= data.len() as u64);
    }
});
