//! Which content a server accepts: allowed types, per-kind size limits, and
//! what a declared type that the bytes contradict does.

use super::MediaType;
use crate::error::{Error, Result};

/// The seed's list (JPEG, PNG, GIF, PDF, Word, Excel, MP4, MP3) and the
/// formats a media library meets every day: WebP, AVIF, HEIF, TIFF and BMP
/// photos; PowerPoint, OpenDocument, RTF, plain text and CSV; MOV, WebM
/// and Matroska video; WAV, FLAC, Ogg and M4A audio. SVG and HTML are left
/// out on purpose: served from the same origin they can run scripts.
pub const DEFAULT_ALLOWED_TYPES: &str = "image/jpeg,image/png,image/gif,image/webp,image/avif,\
image/heif,image/tiff,image/bmp,application/pdf,application/msword,\
application/vnd.ms-excel,application/vnd.ms-powerpoint,\
application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,\
application/vnd.openxmlformats-officedocument.presentationml.presentation,\
application/vnd.oasis.opendocument.text,application/vnd.oasis.opendocument.spreadsheet,\
application/vnd.oasis.opendocument.presentation,application/rtf,text/plain,text/csv,\
video/mp4,video/quicktime,video/webm,video/x-matroska,audio/mpeg,audio/wav,audio/flac,\
audio/ogg,audio/mp4";

/// What to do when the declared content type contradicts the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnMismatch {
    /// Refuse the upload, naming both types.
    Reject,
    /// Store it under the type the bytes have.
    UseContent,
}

/// One entry of the allowed list: `*`, `image/*` or `image/png`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Family(String),
    Exact(String),
}

impl Pattern {
    fn matches(&self, mime: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Family(top) => mime.split('/').next() == Some(top.as_str()),
            Self::Exact(m) => m == mime,
        }
    }
}

/// The content policy, checked as soon as the first bytes of an upload
/// arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct TypePolicy {
    allowed: Vec<Pattern>,
    /// Largest upload per kind; `None` leaves only the server-wide limit.
    limits: [Option<u64>; 5],
    /// What a contradicted declaration does.
    pub on_mismatch: OnMismatch,
}

impl TypePolicy {
    /// Builds a policy from a comma-separated allowed list and limits for
    /// image, video, audio, document and other, in that order.
    pub fn new(allowed: &str, limits: [Option<u64>; 5], on_mismatch: OnMismatch) -> Result<Self> {
        let allowed = allowed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let s = s.to_ascii_lowercase();
                match s.split_once('/') {
                    _ if s == "*" || s == "*/*" => Ok(Pattern::Any),
                    Some((top, "*")) if !top.is_empty() => Ok(Pattern::Family(top.to_string())),
                    Some((top, sub)) if !top.is_empty() && !sub.is_empty() => Ok(Pattern::Exact(s)),
                    _ => Err(Error::invalid(
                        "allowed_types",
                        format!("{s:?} is not a type such as image/png, image/* or *"),
                    )),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            allowed,
            limits,
            on_mismatch,
        })
    }

    /// Any type, no per-kind limit, contradictions rejected.
    pub fn accept_all() -> Self {
        Self {
            allowed: vec![Pattern::Any],
            limits: [None; 5],
            on_mismatch: OnMismatch::Reject,
        }
    }

    /// Whether content of type `mime` may be stored.
    pub fn allows(&self, mime: &str) -> bool {
        self.allowed.iter().any(|p| p.matches(mime))
    }

    /// The size limit for `kind`, if it has its own.
    pub fn limit(&self, kind: MediaType) -> Option<u64> {
        self.limits[kind as usize - 1]
    }
}
