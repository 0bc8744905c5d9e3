//! Admitting content and analysing it: the content policy, checked on the
//! first bytes of an upload, and analysis of the staged bytes before the
//! media's row is written.

use std::sync::Arc;

use super::Library;
use crate::{
    analyze::{
        self, ReadAtCursor, Sniffed,
        sniff::{SNIFF_LEN, Verdict},
    },
    blob::{StagedBlob, UploadFile},
    domain::{Analysis, MediaType, OnMismatch, UploadSpec},
    error::{Error, Reason, Result},
};

/// Content that passed the policy.
#[derive(Debug, Clone)]
pub(super) struct Admitted {
    /// What the bytes are.
    pub(super) sniffed: Sniffed,
    /// Largest size this content may have.
    pub(super) limit: u64,
}

impl Admitted {
    /// The error for an upload that reached `size` bytes, over its limit
    /// (its kind's, or the server's `max` when that is the smaller).
    pub(super) fn over_limit(&self, size: u64, max: u64) -> Error {
        if self.limit < max {
            too_large_for(&self.sniffed, size, self.limit)
        } else {
            super::upload::too_large(size, max)
        }
    }
}

impl Library {
    /// Decides from the first bytes (`head`, up to `SNIFF_LEN`) whether an
    /// upload may go on: its type must be allowed and agree with the
    /// declared one, and its declared size fit its kind's limit.
    pub(super) fn admit(&self, spec: &UploadSpec, head: &[u8]) -> Result<Admitted> {
        let policy = &self.inner.limits.policy;
        // `spec.mime_type` is already a lowercase essence (`convert::parse_mime`).
        let sniffed = match analyze::sniff::sniff(head, &spec.mime_type) {
            Verdict::Agree(s) => s,
            Verdict::Mismatch { declared, sniffed } => match policy.on_mismatch {
                OnMismatch::UseContent => sniffed,
                OnMismatch::Reject => {
                    return Err(Error::InvalidArgument {
                        field: "header.content_type".into(),
                        reason: Reason::TypeMismatch,
                        message: format!(
                            "header.content_type says {declared}, but the content is {}; \
                             send the file's real type, or no type to let the server tell",
                            describe(&sniffed.mime)
                        ),
                    });
                }
            },
        };
        if !policy.allows(&sniffed.mime) {
            return Err(Error::InvalidArgument {
                field: "data".into(),
                reason: Reason::TypeNotAllowed,
                message: format!(
                    "the content is {}, which this server does not accept \
                     (its operator sets the accepted types with --allowed-types)",
                    describe(&sniffed.mime)
                ),
            });
        }
        let limit = policy
            .limit(sniffed.kind)
            .map_or(self.inner.limits.max_upload_size, |l| {
                l.min(self.inner.limits.max_upload_size)
            });
        if let Some(declared) = spec.declared_size
            && declared > limit
        {
            return Err(too_large_for(&sniffed, declared, limit));
        }
        Ok(Admitted { sniffed, limit })
    }

    /// [`Library::admit`] for the whole file of a resumable upload, at its
    /// finish; hands the file back.
    pub(super) async fn admit_file(
        &self,
        spec: &UploadSpec,
        file: Box<dyn UploadFile>,
    ) -> Result<(Box<dyn UploadFile>, Result<Admitted>)> {
        let (file, head) = tokio::task::spawn_blocking(move || {
            let mut head = vec![0u8; SNIFF_LEN];
            let mut n = 0;
            while n < head.len() {
                match file.read_at(&mut head[n..], n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return (file, Err(Error::io("reading an upload file", e))),
                }
            }
            head.truncate(n);
            (file, Ok(head))
        })
        .await
        .map_err(|e| Error::io("reading an upload file", std::io::Error::other(e)))?;
        let size = file.len();
        let admitted = head.and_then(|head| self.admit(spec, &head)).and_then(|a| {
            if size > a.limit {
                Err(too_large_for(&a.sniffed, size, a.limit))
            } else {
                Ok(a)
            }
        });
        Ok((file, admitted))
    }

    /// One of the slots that bound analyses and renders running at once
    /// (each holds a blocking thread and may read a whole file); held
    /// until dropped.
    pub(super) async fn analysis_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.inner.analysis_slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::shutting_down("the server is shutting down"))
    }

    /// Analyses staged bytes on the blocking pool, a few at a time (each
    /// analysis may read a whole file), and hands the staged blob back.
    pub(super) async fn analyze_staged(
        &self,
        staged: Box<dyn StagedBlob>,
        sniffed: &Sniffed,
    ) -> Result<(Box<dyn StagedBlob>, Analysis)> {
        if !analyze::worth_analyzing(sniffed) {
            return Ok((staged, Analysis::default()));
        }
        let _slot = self.analysis_slot().await?;
        let sniffed = sniffed.clone();
        let (staged, analysis) = tokio::task::spawn_blocking(move || {
            // Shared with the parsers, which want an owned source, and
            // taken back once they are done with it.
            let staged: Arc<Box<dyn StagedBlob>> = Arc::new(staged);
            let shared = Arc::clone(&staged);
            let source = ReadAtCursor::new(staged.len(), move |buf, at| shared.read_at(buf, at));
            let analysis = analyze::analyze(source, &sniffed);
            (Arc::try_unwrap(staged).ok(), analysis)
        })
        .await
        .map_err(|e| Error::io("analysing an upload", std::io::Error::other(e)))?;
        let staged = staged.ok_or_else(|| {
            Error::io(
                "analysing an upload",
                std::io::Error::other("a parser kept the staged bytes"),
            )
        })?;
        Ok((staged, analysis))
    }
}

/// The type as a person reads it: "binary data of no known type" rather
/// than `application/octet-stream`.
fn describe(mime: &str) -> String {
    if mime == analyze::sniff::OCTET_STREAM {
        "binary data of no known format".to_string()
    } else {
        mime.to_string()
    }
}

/// The error for content over its kind's size limit.
pub(super) fn too_large_for(sniffed: &Sniffed, size: u64, limit: u64) -> Error {
    let kind = match sniffed.kind {
        MediaType::Image => "image",
        MediaType::Video => "video",
        MediaType::Audio => "audio",
        MediaType::Document => "document",
        MediaType::Other => "other",
    };
    Error::ResourceExhausted {
        reason: Reason::UploadTooLarge,
        subject: format!("max_{kind}_size"),
        message: format!(
            "the upload is {} ({size} bytes or more); this server accepts {kind} files of at most {limit} bytes",
            sniffed.mime
        ),
    }
}
