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
//! # Bounds
//!
//! `lopdf` parses from a byte slice, so the file is read into memory: files
//! larger than [`MAX_PDF_BYTES`] are refused rather than read. lopdf bounds
//! decompression itself, and the call runs inside
//! [`std::panic::catch_unwind`] so a panic on a malformed file becomes an
//! error.

use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::ReadAtCursor;

/// Largest PDF whose pages are counted (it is read into memory whole).
pub const MAX_PDF_BYTES: u64 = 256 * 1024 * 1024;

/// Number of pages of the PDF at `path`; a readable error for a broken file.
pub fn page_count(path: &Path) -> Result<u32, String> {
    let file = File::open(path).map_err(|e| format!("cannot open the PDF: {e}"))?;
    page_count_source(ReadAtCursor::file(file).map_err(|e| format!("cannot read the PDF: {e}"))?)
}

/// Number of pages of the PDF read through `source`.
pub fn page_count_source(source: ReadAtCursor) -> Result<u32, String> {
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

/// Number of pages of the PDF in `bytes`.
fn count_pages(bytes: &[u8]) -> Result<u32, String> {
    if !bytes.windows(5).any(|w| w == b"%PDF-") {
        return Err("the file is not a PDF (no %PDF- header)".to_owned());
    }
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        lopdf::Document::load_metadata_mem(bytes)
    }))
    .map_err(|_| "the PDF reader failed on malformed data".to_owned())?;
    let metadata = loaded.map_err(|e| format!("the PDF cannot be read: {e}"))?;
    match metadata.page_count {
        0 if metadata.encrypted => {
            Err("the PDF is encrypted with a password; its pages cannot be counted".to_owned())
        }
        0 => Err("the PDF has no readable page tree (it is truncated or corrupt)".to_owned()),
        n => Ok(n),
    }
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
        page_count(f.path())
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
        assert_eq!(page_count(&fixture("pages5-objstm.pdf")), Ok(5));
    }

    #[test]
    fn encrypted_pdfs() {
        // No user password: lopdf decrypts with the empty password.
        assert_eq!(page_count(&fixture("pages5-ownerpw.pdf")), Ok(5));
        let err = page_count(&fixture("pages5-userpw.pdf")).unwrap_err();
        assert!(err.contains("encrypted"), "{err}");
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
        let err = page_count(Path::new("/nonexistent.pdf")).unwrap_err();
        assert!(err.starts_with("cannot open"), "{err}");
    }

    #[test]
    fn oversized_files_are_refused_without_reading_them() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(MAX_PDF_BYTES + 1).unwrap();
        let err = page_count(f.path()).unwrap_err();
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
            // Cut: an error, or (after lopdf rebuilds the xref) the right count.
            for cut in [original.len() / 2, 100, original.len() - 10] {
                match count_pages(&original[..cut]) {
                    Ok(n) => assert_eq!(n, pages, "cut at {cut}"),
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
