//! The sniffer: what an upload's first bytes are, against a declared type.
//! The body is `mediastore::fuzzing::sniff`, which the regression tests of
//! `tests/fixtures/fuzzed/` run too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mediastore::fuzzing::sniff(data));
