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

/// Why a call failed: the `reason` of the `google.rpc.ErrorInfo` every
/// error carries. The enum is generated from
/// `proto/mediastore/v1/error_reason.proto`, so the list clients read and
/// the codes the server sends are one list.
pub use crate::pb::v1::ErrorReason as Reason;

/// How long a client is told to wait before retrying a call the server
/// could not take for now (`RetryInfo.retry_delay` of every UNAVAILABLE):
/// about one readiness check.
pub const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Marks an I/O error of the blob store as passing trouble of the store
/// rather than of the data or the server: it could not be reached, timed
/// out, answered 5xx or "slow down", or refused the server's credentials
/// or bucket (what an operator fixes without the client changing
/// anything). Such errors answer UNAVAILABLE with `RetryInfo`; a blob the
/// store answers is missing stays DATA_LOSS, and the rest INTERNAL.
#[derive(Debug, Clone)]
pub struct StoreUnavailable {
    /// What the store said, for logs and the readiness metric: S3's error
    /// code (`SlowDown`, `InvalidAccessKeyId`, `NoSuchBucket`) or the
    /// connection's failure (`ConnectionRefused`, `TimedOut`).
    pub cause: String,
    /// The whole message.
    pub message: String,
}

impl std::fmt::Display for StoreUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreUnavailable {}

impl StoreUnavailable {
    /// An `io::Error` of `kind` carrying the mark.
    pub fn error(
        kind: std::io::ErrorKind,
        cause: impl Into<String>,
        message: impl Into<String>,
    ) -> std::io::Error {
        std::io::Error::new(
            kind,
            Self {
                cause: cause.into(),
                message: message.into(),
            },
        )
    }

    /// The mark of `e`, anywhere in its chain of sources; or, for an error
    /// of a kind only a network causes (a refused or reset connection, a
    /// timeout), a mark made from that kind.
    pub fn of(e: &std::io::Error) -> Option<Self> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = e
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        while let Some(inner) = next {
            if let Some(mark) = inner.downcast_ref::<Self>() {
                return Some(mark.clone());
            }
            if let Some(io) = inner.downcast_ref::<std::io::Error>()
                && let Some(mark) = Self::of(io)
            {
                return Some(mark);
            }
            next = inner.source();
        }
        use std::io::ErrorKind as K;
        matches!(
            e.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::TimedOut
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::NetworkDown
        )
        .then(|| Self {
            cause: format!("{:?}", e.kind()),
            message: e.to_string(),
        })
    }
}

/// A kind of resource an id names, for NOT_FOUND and ALREADY_EXISTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A media.
    Media,
    /// A folder (by id or path).
    Folder,
    /// A resumable upload.
    Upload,
    /// A binding of a media to another service's object.
    Binding,
    /// A tenant.
    Tenant,
    /// An API key.
    ApiKey,
    /// A job.
    Job,
    /// The media in a slot another was to take (ALREADY_EXISTS names it).
    SlotHolder,
    /// The media with a code another was to take (ALREADY_EXISTS names it).
    CodeHolder,
}

impl Resource {
    /// The name clients see in messages and `ResourceInfo.resource_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Media => "media",
            Self::Folder => "folder",
            Self::Upload => "upload",
            Self::Binding => "binding",
            Self::Tenant => "tenant",
            Self::ApiKey => "API key",
            Self::Job => "job",
            Self::SlotHolder | Self::CodeHolder => "media",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong, grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong whatever the server's state: fix `field`.
    #[error("{message}")]
    InvalidArgument {
        /// What kind of mistake, e.g. `FIELD_REQUIRED`, `SIZE_MISMATCH`.
        reason: Reason,
        /// Path of the field at fault, e.g. `header.filename`.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The named resource does not exist (for this tenant).
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// Resource type.
        kind: Resource,
        /// The id (or path) that was asked for.
        id: String,
    },
    /// The resource to create already exists, e.g. a sibling folder with
    /// the same name.
    #[error("{message}")]
    AlreadyExists {
        /// Resource type.
        kind: Resource,
        /// Its name or id.
        name: String,
        /// What clashes and what to do.
        message: String,
    },
    /// A position lies outside the resource, e.g. a read offset past the end.
    #[error("{message}")]
    OutOfRange {
        /// Which position, e.g. `READ_OFFSET_PAST_END`.
        reason: Reason,
        /// Path of the field at fault.
        field: String,
        /// What the valid range is.
        message: String,
    },
    /// A limit was exceeded (upload size, message size, folders, disk).
    #[error("{message}")]
    ResourceExhausted {
        /// Which limit, e.g. `UPLOAD_TOO_LARGE`.
        reason: Reason,
        /// What ran out, e.g. `max_upload_size`.
        subject: String,
        /// The limit and how far the request went over it.
        message: String,
    },
    /// The request is valid but the system's state refuses it.
    #[error("{message}")]
    FailedPrecondition {
        /// Which state, e.g. `MEDIA_BOUND`.
        reason: Reason,
        /// What a person can do about it.
        message: String,
    },
    /// Another stream holds the resumable upload this one writes; retry
    /// after it ends.
    #[error("{0}")]
    UploadBusy(String),
    /// Stored bytes or records of something that still exists are missing
    /// or malformed. Never raised for something deleted meanwhile: that is
    /// a `NotFound`.
    #[error("{message}")]
    DataLoss {
        /// What was lost, e.g. `BLOB_MISSING`.
        reason: Reason,
        /// What is missing, named so an operator can find it.
        message: String,
    },
    /// The client's stream broke or was cancelled before a positive end.
    #[error("{0}")]
    Cancelled(String),
    /// The call's deadline (`grpc-timeout`) passed before it completed.
    #[error("{0}")]
    DeadlineExpired(String),
    /// The server cannot take the request now (shutting down, database
    /// trouble); retrying later, or on another replica, may work.
    #[error("{message}")]
    Unavailable {
        /// Why, e.g. `SHUTTING_DOWN`.
        reason: Reason,
        /// What happened and what to do.
        message: String,
    },
    /// File system trouble while storing or reading bytes.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's key is over its request rate; retry after the delay.
    #[error("{message}")]
    RateLimited {
        /// When a call will be let through again.
        retry_after: std::time::Duration,
        /// The limit and the delay.
        message: String,
    },
    /// The call has no valid credentials: none, malformed, or a key that
    /// is unknown, revoked or expired.
    #[error("{message}")]
    Unauthenticated {
        /// Which, e.g. `KEY_REVOKED`.
        reason: Reason,
        /// What is wrong and what to do.
        message: String,
    },
    /// The caller is known but may not make this call.
    #[error("{message}")]
    PermissionDenied {
        /// The scope the call needs.
        scope: crate::domain::Scope,
        /// Which scope is missing and what to do.
        message: String,
    },
    /// The database failed, or refused a change it should have taken.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    /// An `InvalidArgument` for a malformed or out-of-range `field`
    /// (`FIELD_INVALID`).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::bad(Reason::FieldInvalid, field, message)
    }

    /// An `InvalidArgument` for an empty required `field` (`FIELD_REQUIRED`).
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::bad(Reason::FieldRequired, field, message)
    }

    /// An `InvalidArgument` naming `field`, with its own `reason`.
    pub fn bad(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `NotFound` for `kind` `id`.
    pub fn not_found(kind: Resource, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// A `FailedPrecondition` with a stable `reason`.
    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// A `DataLoss` with its `reason`.
    pub fn data_loss(reason: Reason, message: impl Into<String>) -> Self {
        Self::DataLoss {
            reason,
            message: message.into(),
        }
    }

    /// An `Unavailable` because the server is shutting down.
    pub fn shutting_down(message: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: Reason::ShuttingDown,
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

    /// A failed read of stored bytes (`context` says which): bytes that end
    /// before they should are DATA_LOSS (`BLOB_TRUNCATED`), any other
    /// failure an I/O error.
    pub fn reading(context: impl Into<String>, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            Self::data_loss(
                Reason::BlobTruncated,
                format!("{}: {source}", context.into()),
            )
        } else {
            Self::io(context, source)
        }
    }

    /// True for a blob store that could not take the call for now (see
    /// [`StoreUnavailable`]).
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, Self::Io { source, .. } if StoreUnavailable::of(source).is_some())
    }

    /// Stable reason code for `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidArgument { reason, .. }
            | Self::OutOfRange { reason, .. }
            | Self::ResourceExhausted { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::DataLoss { reason, .. }
            | Self::Unavailable { reason, .. } => *reason,
            Self::NotFound { kind, .. } => match kind {
                Resource::Media | Resource::SlotHolder | Resource::CodeHolder => {
                    Reason::MediaNotFound
                }
                Resource::Folder => Reason::FolderNotFound,
                Resource::Upload => Reason::UploadNotFound,
                Resource::Binding => Reason::BindingNotFound,
                Resource::Tenant => Reason::TenantNotFound,
                Resource::ApiKey => Reason::ApiKeyNotFound,
                Resource::Job => Reason::JobNotFound,
            },
            Self::AlreadyExists { kind, .. } => match kind {
                Resource::Tenant => Reason::TenantAlreadyExists,
                Resource::ApiKey => Reason::ApiKeyAlreadyExists,
                Resource::Job => Reason::JobAlreadyExists,
                Resource::SlotHolder => Reason::SlotTaken,
                Resource::CodeHolder => Reason::CodeTaken,
                _ => Reason::FolderAlreadyExists,
            },
            Self::Unauthenticated { reason, .. } => *reason,
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::PermissionDenied { .. } => Reason::ScopeMissing,
            Self::UploadBusy(_) => Reason::UploadBusy,
            Self::Cancelled(_) => Reason::StreamCancelled,
            Self::DeadlineExpired(_) => Reason::DeadlineExpired,
            Self::Io { source, .. } if is_disk_full(source) => Reason::StorageFull,
            Self::Io { source, .. } if StoreUnavailable::of(source).is_some() => {
                Reason::StorageUnavailable
            }
            Self::Io { .. } => Reason::StorageIo,
            Self::Database(_) => Reason::DatabaseUnavailable,
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
        details.set_error_info(err.reason().as_str_name(), ERROR_DOMAIN, HashMap::new());
        let (code, message) = match &err {
            Error::InvalidArgument { field, message, .. } => {
                details.add_bad_request_violation(field.clone(), message.clone());
                (Code::InvalidArgument, err.to_string())
            }
            Error::NotFound { kind, id } => {
                details.set_resource_info(kind.as_str(), id.clone(), "", "not found");
                (Code::NotFound, err.to_string())
            }
            Error::AlreadyExists { kind, name, .. } => {
                details.set_resource_info(kind.as_str(), name.clone(), "", "already exists");
                (Code::AlreadyExists, err.to_string())
            }
            Error::OutOfRange { field, message, .. } => {
                details.add_bad_request_violation(field.clone(), message.clone());
                (Code::OutOfRange, err.to_string())
            }
            Error::ResourceExhausted {
                subject, message, ..
            } => {
                details.add_quota_failure_violation(subject.clone(), message.clone());
                (Code::ResourceExhausted, err.to_string())
            }
            Error::FailedPrecondition { reason, message } => {
                details.add_precondition_failure_violation(
                    reason.as_str_name(),
                    "",
                    message.clone(),
                );
                (Code::FailedPrecondition, err.to_string())
            }
            Error::DataLoss { .. } => {
                tracing::error!(error = %err, "data loss");
                (Code::DataLoss, err.to_string())
            }
            Error::Unauthenticated { .. } => (Code::Unauthenticated, err.to_string()),
            Error::RateLimited { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
                details.add_quota_failure_violation("rate_limit_per_key", err.to_string());
                (Code::ResourceExhausted, err.to_string())
            }
            Error::PermissionDenied { scope, .. } => {
                details.set_error_info(
                    err.reason().as_str_name(),
                    ERROR_DOMAIN,
                    HashMap::from([("scope".to_string(), scope.as_str().to_string())]),
                );
                (Code::PermissionDenied, err.to_string())
            }
            Error::UploadBusy(_) => (Code::Aborted, err.to_string()),
            Error::Cancelled(_) => (Code::Cancelled, err.to_string()),
            Error::DeadlineExpired(_) => (Code::DeadlineExceeded, err.to_string()),
            Error::Unavailable { .. } => {
                details.set_retry_info(Some(RETRY_DELAY));
                (Code::Unavailable, err.to_string())
            }
            Error::Io { source, .. } if is_disk_full(source) => {
                tracing::error!(error = %err, "storage full");
                (
                    Code::ResourceExhausted,
                    "the server's storage is full; try again after space is freed".to_string(),
                )
            }
            Error::Io { source, .. } if StoreUnavailable::of(source).is_some() => {
                tracing::warn!(error = %err, "the blob store is unavailable");
                details.set_retry_info(Some(RETRY_DELAY));
                (
                    Code::Unavailable,
                    "the server's storage is unavailable for now; retry the call (the server \
                     log has the details)"
                        .to_string(),
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
                details.set_retry_info(Some(RETRY_DELAY));
                (
                    Code::Unavailable,
                    "database error; retry later (the server log has the details)".to_string(),
                )
            }
        };
        Status::with_error_details(code, message, details)
    }
}
