//! Renditions: decode with shrink-on-load, resize, orient, encode, bounded.
//! The body is `mediastore::fuzzing::render`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::render(data));
