//! Image analysis: header readers, density, lenient EXIF, HEIF/AVIF container.
//! The body is `mediastore::fuzzing::image`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::image(data));
