//! The sniffer: what an upload's first bytes are, against what the client
//! declared. The declared type comes from the input's last byte, so every
//! pairing of content and declaration is tried.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediastore::analyze::sniff;

const DECLARED: &[&str] = &[
    "",
    "application/octet-stream",
    "image/jpeg",
    "image/heic",
    "video/mp4",
    "audio/m4a",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "image/svg+xml",
    "application/json",
    "text/html",
];

fuzz_target!(|data: &[u8]| {
    let declared = DECLARED[usize::from(data.last().copied().unwrap_or(0)) % DECLARED.len()];
    let head = &data[..data.len().min(sniff::SNIFF_LEN)];
    match sniff::sniff(head, declared) {
        sniff::Verdict::Agree(s) => assert!(!s.mime.is_empty()),
        sniff::Verdict::Mismatch { sniffed, .. } => {
            assert!(!sniff::equivalent(declared, &sniffed.mime));
        }
    }
});
