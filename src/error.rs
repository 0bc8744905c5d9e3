//! The domain's one error type and its one mapping to `tonic::Status`.
//!
//! Handlers return `Result<_, Error>` and convert with `?`/`into()`; nothing
//! else builds a `Status`. Every status carries a `google.rpc.ErrorInfo`
//! with a stable, machine-readable reason, and a `BadRequest` field
//! violation whenever one request field is at fault, so clients can react
//! without parsing messages.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `google.rpc.ErrorInfo.domain` of every error this service raises.
pub const ERROR_DOMAIN: &str = "mediastore";

/// Result alias for the domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong whatever the server's state: fix `field`.
    #[error("{message}")]
    InvalidArgument {
        /// Path of the field at fault, e.g. `header.filename`.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The content is refused as it is (wrong or unaccepted type, an
    /// image too large to decode): an `InvalidArgument` with its own
    /// reason code, so clients can tell these apart from malformed fields.
    #[error("{message}")]
    ContentRefused {
        /// Path of the field at fault, e.g. `header.content_type`.
        field: String,
        /// Stable reason code, e.g. `TYPE_MISMATCH`.
        reason: &'static str,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// The named resource does not exist (for this tenant).
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// Resource type, e.g. `media`.
        kind: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The resource to create already exists, e.g. a sibling folder with
    /// the same name.
    #[error("{message}")]
    AlreadyExists {
        /// Resource type, e.g. `folder`.
        kind: &'static str,
        /// Its name or id.
        name: String,
        /// What clashes and what to do.
        message: String,
    },
    /// A position lies outside the resource, e.g. a read offset past the end.
    #[error("{message}")]
    OutOfRange {
        /// Path of the field at fault.
        field: String,
        /// What the valid range is.
        message: String,
    },
    /// A configured limit was exceeded (upload size, ...).
    #[error("{message}")]
    ResourceExhausted {
        /// What ran out, e.g. `max_upload_size`.
        subject: String,
        /// The limit and how far the request went over it.
        message: String,
    },
    /// The request is valid but the system's state refuses it.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable reason code for `ErrorInfo`.
        reason: &'static str,
        /// What a person can do about it.
        message: String,
    },
    /// Another request holds what this one needs (e.g. a second stream
    /// writing to the same resumable upload); retry after it ends.
    #[error("{0}")]
    Aborted(String),
    /// Stored bytes are missing or no longer match their hash.
    #[error("{0}")]
    DataLoss(String),
    /// The client went away or the server is shutting down mid-request.
    #[error("{0}")]
    Cancelled(String),
    /// The server cannot take the request now; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// File system trouble while storing or reading bytes.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    /// An `InvalidArgument` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `NotFound` for `kind` `id`.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// A `FailedPrecondition` with a stable `reason`.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what the server was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Stable reason code for `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::ContentRefused { reason, .. } => reason,
            Self::NotFound { .. } => "NOT_FOUND",
            Self::AlreadyExists { .. } => "ALREADY_EXISTS",
            Self::OutOfRange { .. } => "OUT_OF_RANGE",
            Self::ResourceExhausted { .. } => "LIMIT_EXCEEDED",
            Self::FailedPrecondition { reason, .. } => reason,
            Self::Aborted(_) => "CONFLICT",
            Self::DataLoss(_) => "DATA_LOSS",
            Self::Cancelled(_) => "CANCELLED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Io { source, .. } if is_disk_full(source) => "STORAGE_FULL",
            Self::Io { .. } => "STORAGE_IO",
            Self::Database(_) => "DATABASE",
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

/// The single mapping from domain errors to gRPC statuses.
impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let mut details = ErrorDetails::new();
        details.set_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
        let (code, message) = match &err {
            Error::InvalidArgument { field, message } => {
                details.add_bad_request_violation(field.clone(), message.clone());
                (Code::InvalidArgument, err.to_string())
            }
            Error::ContentRefused { field, message, .. } => {
                details.add_bad_request_violation(field.clone(), message.clone());
                (Code::InvalidArgument, err.to_string())
            }
            Error::NotFound { kind, id } => {
                details.set_resource_info(*kind, id.clone(), "", "not found");
                (Code::NotFound, err.to_string())
            }
            Error::AlreadyExists { kind, name, .. } => {
                details.set_resource_info(*kind, name.clone(), "", "already exists");
                (Code::AlreadyExists, err.to_string())
            }
            Error::OutOfRange { field, message } => {
                details.add_bad_request_violation(field.clone(), message.clone());
                (Code::OutOfRange, err.to_string())
            }
            Error::ResourceExhausted { subject, message } => {
                details.add_quota_failure_violation(subject.clone(), message.clone());
                (Code::ResourceExhausted, err.to_string())
            }
            Error::FailedPrecondition { reason, message } => {
                details.add_precondition_failure_violation(*reason, "", message.clone());
                (Code::FailedPrecondition, err.to_string())
            }
            Error::DataLoss(_) => {
                tracing::error!(error = %err, "data loss");
                (Code::DataLoss, err.to_string())
            }
            Error::Aborted(_) => (Code::Aborted, err.to_string()),
            Error::Cancelled(_) => (Code::Cancelled, err.to_string()),
            Error::Unavailable(_) => (Code::Unavailable, err.to_string()),
            Error::Io { source, .. } if is_disk_full(source) => {
                tracing::error!(error = %err, "storage full");
                (
                    Code::ResourceExhausted,
                    "the server's storage is full; try again after space is freed".to_string(),
                )
            }
            Error::Io { .. } => {
                tracing::error!(error = %err, "storage I/O error");
                (
                    Code::Internal,
                    "internal storage error; the server log has the details".to_string(),
                )
            }
            Error::Database(_) => {
                tracing::error!(error = %err, "database error");
                (
                    Code::Unavailable,
                    "database error; retry later (the server log has the details)".to_string(),
                )
            }
        };
        Status::with_error_details(code, message, details)
    }
}
