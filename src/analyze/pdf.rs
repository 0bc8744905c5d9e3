//! PDF page count.
//!
//! # Why `lopdf`
//!
//! Counting pages means following the trailer (or the cross-reference
//! stream) to the catalog and its page tree, which in modern files sit in
//! compressed object streams, behind incremental updates, or behind a
//! broken cross-reference table that has to be rebuilt by scanning. `lopdf`
//! does all of that, is actively maintained and pure Rust, and its
//! [`lopdf::Document::load_metadata_mem`] reads only the trailer, the
//! catalog and the page tree root's `/Count` instead of loading every object.
//! It is used with `default-features = false` (no rayon, no chrono).
//!
//! # Counts the file cannot hold
//!
//! The root's `/Count` is only a claim: a file can say two billion pages
//! over one. Small files (up to [`WALK_ALWAYS_BYTES`]), and larger ones
//! whose claim would leave fewer than [`MIN_BYTES_PER_PAGE`] bytes a page,
//! are loaded whole and their page tree walked (each node once, so a cycle
//! ends the walk): the pages reached are the count. A claim that cannot be
//! checked and cannot be true is an error, never a number.
//!
//! # Bounds
//!
//! `lopdf` parses from a byte slice, so the file is read into memory: files
//! larger than [`MAX_PDF_BYTES`] are refused rather than read. lopdf bounds
//! decompression itself, and the call runs inside
//! [`std::panic::catch_unwind`] so a panic on a malformed file becomes an
//! error.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::ReadAtCursor;

/// Largest PDF whose pages are counted (it is read into memory whole).
pub const MAX_PDF_BYTES: u64 = 256 * 1024 * 1024;
/// PDFs up to this size have their page tree walked whatever it claims:
/// loading one whole takes a few milliseconds.
pub const WALK_ALWAYS_BYTES: usize = 1024 * 1024;
/// A claimed page count leaving fewer bytes than this per page is checked
/// by walking the tree: a page object is at least `<</Type/Page>>` and its
/// object header, and real pages carry far more.
pub const MIN_BYTES_PER_PAGE: u64 = 16;

/// Pages of a PDF: those counted, and those its page tree claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCount {
    /// Pages reached by walking the tree, or the claim where it was
    /// plausible and not walked.
    pub pages: u32,
    /// The root's `/Count`.
    pub claimed: u32,
}

impl PageCount {
    /// A note for the media's analysis warnings when the claim was not
    /// what the file holds.
    pub fn warning(&self) -> Option<String> {
        (self.pages != self.claimed).then(|| {
            format!(
                "PDF: the page tree claims {} pages; {} can be reached, and those are counted",
                self.claimed, self.pages
            )
        })
    }
}

/// Pages of the PDF at `path`; a readable error for a broken file.
pub fn page_count(path: &Path) -> Result<PageCount, String> {
    let file = File::open(path).map_err(|e| format!("cannot open the PDF: {e}"))?;
    page_count_source(ReadAtCursor::file(file).map_err(|e| format!("cannot read the PDF: {e}"))?)
}

/// Pages of the PDF read through `source`.
pub fn page_count_source(source: ReadAtCursor) -> Result<PageCount, String> {
    let len = source.len();
    if len > MAX_PDF_BYTES {
        return Err(format!(
            "the PDF is {len} bytes; pages are counted only in PDFs of at most {MAX_PDF_BYTES} bytes"
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    BufReader::new(source)
        .take(MAX_PDF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the PDF: {e}"))?;
    if bytes.len() as u64 > MAX_PDF_BYTES {
        return Err(format!(
            "the PDF grew past {MAX_PDF_BYTES} bytes while being read"
        ));
    }
    count_pages(&bytes)
}

/// Pages of the PDF in `bytes`.
fn count_pages(bytes: &[u8]) -> Result<PageCount, String> {
    if !bytes.windows(5).any(|w| w == b"%PDF-") {
        return Err("the file is not a PDF (no %PDF- header)".to_owned());
    }
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        lopdf::Document::load_metadata_mem(bytes)
    }))
    .map_err(|_| "the PDF reader failed on malformed data".to_owned())?;
    let metadata = loaded.map_err(|e| format!("the PDF cannot be read: {e}"))?;
    let claimed = match metadata.page_count {
        0 if metadata.encrypted => {
            return Err(
                "the PDF is encrypted with a password; its pages cannot be counted".to_owned(),
            );
        }
        0 => {
            return Err(
                "the PDF has no readable page tree (it is truncated or corrupt)".to_owned(),
            );
        }
        n => n,
    };
    let implausible = u64::from(claimed) > bytes.len() as u64 / MIN_BYTES_PER_PAGE;
    let counted = |pages| Ok(PageCount { pages, claimed });
    if bytes.len() > WALK_ALWAYS_BYTES && !implausible {
        return counted(claimed);
    }
    let walked = catch_unwind(AssertUnwindSafe(|| {
        lopdf::Document::load_mem(bytes)
            .ok()
            .and_then(|doc| reachable_pages(&doc))
    }))
    .ok()
    .flatten();
    match walked {
        Some(n) if n > 0 => counted(n),
        _ if implausible => Err(format!(
            "the PDF's page tree claims {claimed} pages, more than its {} bytes can hold, \
             and its pages cannot be reached to count them",
            bytes.len()
        )),
        _ => counted(claimed),
    }
}

/// The page objects reachable from the catalog's page tree, each node
/// visited once; `None` when there is no tree to walk.
fn reachable_pages(doc: &lopdf::Document) -> Option<u32> {
    let root = doc
        .catalog()
        .ok()?
        .get(b"Pages")
        .ok()?
        .as_reference()
        .ok()?;
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    let mut pages: u32 = 0;
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Ok(node) = doc.get_dictionary(id) else {
            continue;
        };
        match node.get(b"Kids").and_then(lopdf::Object::as_array) {
            Ok(kids) => stack.extend(kids.iter().filter_map(|k| k.as_reference().ok())),
            // A leaf: a page, unless it says it is something else.
            Err(_) if node.get_type().map_or(true, |t| t == b"Page") => {
                pages = pages.saturating_add(1);
            }
            Err(_) => {}
        }
    }
    Some(pages)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    use crate::analyze::fixture;

    fn count_file(bytes: &[u8]) -> Result<u32, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        pages(f.path())
    }

    fn pages(path: &Path) -> Result<u32, String> {
        page_count(path).map(|c| c.pages)
    }

    /// A PDF with a classic xref table from numbered object bodies.
    fn pdf(objects: &[&str]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).into_bytes());
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
        for o in offsets {
            out.extend(format!("{o:010} 00000 n \n").into_bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .into_bytes(),
        );
        out
    }

    fn flat(pages: usize) -> Vec<u8> {
        let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 3)).collect();
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {pages} >>",
                kids.join(" ")
            ),
        ];
        for _ in 0..pages {
            objects.push("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>".to_owned());
        }
        pdf(&objects.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn counts_pages_of_a_pdf_written_in_code() {
        assert_eq!(count_file(&flat(3)), Ok(3));
        assert_eq!(count_file(&flat(1)), Ok(1));
    }

    #[test]
    fn counts_a_nested_page_tree() {
        let bytes = pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 4 >>",
            "<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R 7 0 R] /Count 3 >>",
            "<< /Type /Page /Parent 2 0 R >>",
            "<< /Type /Page /Parent 3 0 R >>",
            "<< /Type /Page /Parent 3 0 R >>",
            "<< /Type /Page /Parent 3 0 R >>",
        ]);
        assert_eq!(count_file(&bytes), Ok(4));
    }

    #[test]
    fn counts_pages_in_compressed_object_streams() {
        // Made by qpdf --object-streams=generate: the catalog and the page
        // tree sit in a compressed object stream behind an xref stream.
        let bytes = std::fs::read(fixture("pages5-objstm.pdf")).unwrap();
        assert!(bytes.windows(11).any(|w| w == b"/Type /ObjS"));
        assert!(!bytes.windows(11).any(|w| w == b"/Type /Page"));
        assert_eq!(pages(&fixture("pages5-objstm.pdf")), Ok(5));
    }

    #[test]
    fn encrypted_pdfs() {
        // No user password: lopdf decrypts with the empty password.
        assert_eq!(pages(&fixture("pages5-ownerpw.pdf")), Ok(5));
        let err = pages(&fixture("pages5-userpw.pdf")).unwrap_err();
        assert!(err.contains("encrypted"), "{err}");
    }

    #[test]
    fn a_page_count_the_file_cannot_hold_is_never_reported() {
        // One page under a root that claims two billion.
        let liar = pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 2000000000 >>",
            "<< /Type /Page /Parent 2 0 R >>",
        ]);
        assert_eq!(count_file(&liar), Ok(1));
        // Written by Python as a real writer would lay it out, with an
        // xref table (tests/fixtures/mkpdf.py --count 2000000000).
        let c = page_count(&fixture("pages5-claims2g.pdf")).unwrap();
        assert_eq!((c.pages, c.claimed), (5, 2_000_000_000));
        assert!(c.warning().unwrap().contains("claims 2000000000 pages"));
        // A smaller lie in a small file is walked too.
        let liar = pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 7 >>",
            "<< /Type /Page /Parent 2 0 R >>",
            "<< /Type /Page /Parent 2 0 R >>",
        ]);
        assert_eq!(count_file(&liar), Ok(2));
        // Kids that point back at an ancestor end the walk.
        let cyclic = pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 900000 >>",
            "<< /Type /Page /Parent 2 0 R >>",
        ]);
        assert_eq!(count_file(&cyclic), Ok(1));
    }

    #[test]
    fn broken_files_are_errors() {
        let err = count_file(b"hello, not a pdf").unwrap_err();
        assert!(err.contains("not a PDF"), "{err}");
        assert!(count_file(b"").is_err());
        assert!(count_file(b"%PDF-1.7\n").is_err());
        // A catalog without pages.
        let err = count_file(&pdf(&["<< /Type /Catalog >>"])).unwrap_err();
        assert!(err.contains("no readable page tree"), "{err}");
        // A page tree whose kids point back at their parent, without /Count.
        let cyclic = pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] >>",
            "<< /Type /Pages /Kids [2 0 R] >>",
        ]);
        let _ = count_file(&cyclic);
        let err = pages(Path::new("/nonexistent.pdf")).unwrap_err();
        assert!(err.starts_with("cannot open"), "{err}");
    }

    #[test]
    fn oversized_files_are_refused_without_reading_them() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(MAX_PDF_BYTES + 1).unwrap();
        let err = pages(f.path()).unwrap_err();
        assert!(err.contains("at most"), "{err}");
    }

    #[test]
    fn truncated_and_corrupt_pdfs_give_errors_not_panics() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (original, pages) in [
            (std::fs::read(fixture("pages5-objstm.pdf")).unwrap(), 5),
            (std::fs::read(fixture("pages5-ownerpw.pdf")).unwrap(), 5),
            (flat(4), 4),
        ] {
            // Cut: an error, or (after lopdf rebuilds the xref) the pages
            // still there, with a warning when some are gone.
            for cut in [original.len() / 2, 100, original.len() - 10] {
                match count_pages(&original[..cut]) {
                    Ok(c) => {
                        assert!(c.pages >= 1 && c.pages <= pages, "cut at {cut}: {c:?}");
                        assert_eq!(c.warning().is_some(), c.pages != c.claimed);
                    }
                    Err(e) => assert!(!e.is_empty()),
                }
            }
            // Flipped bits: any answer, but no panic escapes.
            for round in 0..150 {
                let mut v = original.clone();
                for _ in 0..=(round % 6) {
                    let at = (next() % v.len() as u64) as usize;
                    v[at] ^= 1 << (next() % 8);
                }
                let _ = count_pages(&v);
            }
        }
    }
}
