//! Entry points of the fuzz targets (`fuzz/`) and of the regression tests
//! of what they found: each runs one parser of uploaded bytes as the
//! server does after an upload, with the type the sniffer gives the bytes,
//! but without the `catch_unwind` guard the server keeps around the
//! video and audio readers, so that a panic shows.
//!
//! Inputs that once crashed or hung a target live in
//! `tests/fixtures/fuzzed/`, named after their target; the test below runs
//! each through its target's function.

use std::io::{BufReader, Cursor};

use crate::{
    analyze::{ReadAtCursor, av, image, pdf, sniff},
    domain::Analysis,
    render::{self, Bounds, Fit, OutputFormat, RenditionSpec},
};

/// A target's body: it panics on what it finds wrong.
pub type Target = fn(&[u8]);

/// The targets, by name, as `fuzz/Cargo.toml` lists them.
pub const TARGETS: &[(&str, Target)] = &[
    ("sniff", sniff),
    ("mp4", mp4),
    ("mkv", mkv),
    ("audio", audio),
    ("pdf", pdf),
    ("image", image),
    ("render", render),
];

/// Declared types the sniffer is tried against, picked by the input's
/// last byte so that every pairing of content and declaration is tried.
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

/// The MIME type the server would analyse `data` as (uploaded with no
/// declared type), or `fallback` when sniffing does not accept it.
fn sniffed_mime(data: &[u8], fallback: &str) -> String {
    let head = &data[..data.len().min(sniff::SNIFF_LEN)];
    match sniff::sniff(head, "") {
        sniff::Verdict::Agree(s) => s.mime,
        sniff::Verdict::Mismatch { .. } => fallback.to_owned(),
    }
}

/// The sniffer, against a declared type.
pub fn sniff(data: &[u8]) {
    let declared = DECLARED[usize::from(data.last().copied().unwrap_or(0)) % DECLARED.len()];
    let head = &data[..data.len().min(sniff::SNIFF_LEN)];
    match sniff::sniff(head, declared) {
        sniff::Verdict::Agree(s) => assert!(!s.mime.is_empty()),
        sniff::Verdict::Mismatch { sniffed, .. } => {
            assert!(!sniff::equivalent(declared, &sniffed.mime));
        }
    }
}

/// The MP4 and QuickTime (ISO-BMFF) probe.
pub fn mp4(data: &[u8]) {
    let _ = av::probe_unguarded(ReadAtCursor::bytes(data), "video/mp4");
}

/// The Matroska and WebM (EBML) probe.
pub fn mkv(data: &[u8]) {
    let _ = av::probe_unguarded(ReadAtCursor::bytes(data), "video/x-matroska");
}

/// The audio probe: MP3, WAV, AIFF, FLAC and Ogg through symphonia, M4A
/// through the MP4 reader.
pub fn audio(data: &[u8]) {
    let mime = sniffed_mime(data, "audio/mpeg");
    let _ = av::probe_unguarded(ReadAtCursor::bytes(data), &mime);
}

/// The PDF page counter: never more pages than the file has bytes.
pub fn pdf(data: &[u8]) {
    if let Ok(count) = pdf::page_count_source(ReadAtCursor::bytes(data)) {
        assert!(u64::from(count.pages) <= data.len() as u64);
    }
}

/// Image analysis: header readers, density, lenient EXIF, the HEIF and
/// AVIF container.
pub fn image(data: &[u8]) {
    let mime = sniffed_mime(data, "image/jpeg");
    let mut a = Analysis::default();
    let _ = image::analyze(&mut BufReader::new(Cursor::new(data)), &mime, &mut a);
}

/// A thumbnail: decode (with shrink-on-load), resize, orient, encode,
/// behind the server's bounds scaled down so that one input stays fast.
/// Orientation and fit follow the input's length, leaving its bytes be.
pub fn render(data: &[u8]) {
    let mime = sniffed_mime(data, "image/jpeg");
    let orientation = (data.len() % 8) as u8 + 1;
    let fit = [Fit::Contain, Fit::Cover, Fit::Fill, Fit::ScaleDown][data.len() / 8 % 4];
    let spec = RenditionSpec {
        width: 64,
        height: 48,
        fit,
        format: OutputFormat::Jpeg,
        quality: 80,
    }
    .normalized();
    let bounds = Bounds {
        max_pixels: 4_000_000,
        max_frames: 50,
        max_alloc: 256 << 20,
    };
    if let Ok(r) = render::render(data, &mime, orientation, &spec, &bounds) {
        assert!(r.width > 0 && r.height > 0 && !r.bytes.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::TARGETS;

    /// Every input a fuzz target once crashed or hung on now passes it.
    #[test]
    fn inputs_that_fuzzing_found_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzzed");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // upstream/: dependencies' findings, tested where they are
            // guarded.
            if name.ends_with(".md") || path.is_dir() {
                continue;
            }
            let (_, run) = TARGETS
                .iter()
                .find(|(t, _)| name.starts_with(&format!("{t}-")))
                .unwrap_or_else(|| panic!("{name} names no fuzz target"));
            run(&std::fs::read(&path).unwrap());
            seen += 1;
        }
        assert!(seen > 0, "no inputs in {}", dir.display());
    }

    /// The fuzz crate has one target for each entry point here.
    #[test]
    fn every_entry_point_is_a_fuzz_target() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml");
        let manifest = std::fs::read_to_string(manifest).unwrap();
        let bins: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|n| *n != "mediastore-fuzz")
            .collect();
        let targets: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
        assert_eq!(bins, targets);
    }
}
