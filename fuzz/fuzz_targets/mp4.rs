//! The MP4 and QuickTime (ISO-BMFF) probe.
//! The body is `mediastore::fuzzing::mp4`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::mp4(data));
