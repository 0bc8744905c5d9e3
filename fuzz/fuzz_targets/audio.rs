//! The audio probe (MP3, WAV, AIFF, FLAC, Ogg; M4A through the MP4 reader).
//! The body is `mediastore::fuzzing::audio`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::audio(data));
