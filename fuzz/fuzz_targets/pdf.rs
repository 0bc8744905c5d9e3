//! The PDF page counter.
//! The body is `mediastore::fuzzing::pdf`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::pdf(data));
