//! The Matroska and WebM (EBML) probe.
//! The body is `mediastore::fuzzing::mkv`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::mkv(data));
