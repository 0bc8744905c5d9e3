//! Jobs: work the server does after the request that asked for it has
//! returned, tracked in the database so that any replica may run it and a
//! crash loses none of it.

use std::fmt;

use uuid::Uuid;

use super::{JobId, TenantId, check_text, truncate_for_message};
use crate::error::{Error, Reason, Result};

/// Longest unicity key, in characters.
pub const MAX_UNIQUE_KEY_CHARS: usize = 256;
/// Most attempts a job may be given.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Attempts a job gets unless its kind or its caller says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where a job is in its life. The numbers are stored; the partial
/// indexes of the `jobs` table name them (0 and 1 are the active states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker, or for its scheduled time (a retry waits out
    /// its backoff this way).
    Queued = 0,
    /// A worker holds its lease and runs it.
    Running = 1,
    /// Finished; `result` says what it did.
    Succeeded = 2,
    /// Gave up: its last attempt failed, or it cannot succeed.
    Failed = 3,
    /// Cancelled before it finished.
    Cancelled = 4,
}

impl JobStatus {
    /// Every status, in the stored order.
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stored number's status; an unknown number reads as failed,
    /// which no worker picks up.
    pub fn from_i16(v: i16) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| *s as i16 == v)
            .unwrap_or(Self::Failed)
    }

    /// Whether the job has ended (it changes no more, except by a retry).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Whose work it is: the tenant whose media it touches and who may
    /// see it.
    pub tenant: TenantId,
    /// What it does (`reanalyze`, `collect_garbage`, ...): the worker's
    /// handler for it.
    pub kind: String,
    /// Where it is.
    pub status: JobStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Percent done, 0 to 100, as its handler last reported.
    pub progress: u8,
    /// What its handler last said it was doing.
    pub progress_message: String,
    /// Attempts started so far (a claim counts one).
    pub attempts: u32,
    /// Attempts it gets before it fails for good.
    pub max_attempts: u32,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// At most one active job per tenant holds a given key.
    pub unique_key: Option<String>,
    /// Its handler's input.
    pub payload: serde_json::Value,
    /// What it did, once succeeded.
    pub result: Option<serde_json::Value>,
    /// It runs no earlier than this, µs since the epoch.
    pub scheduled_at: i64,
    /// When its first attempt started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// When it was enqueued.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
    /// The worker that runs it (or last ran it).
    pub lease_owner: Option<String>,
    /// Until when that worker holds it unless it renews.
    pub lease_until: Option<i64>,
    /// A cancellation was asked for while it ran; its handler stops at
    /// its next checkpoint.
    pub cancel_requested: bool,
    /// Who enqueued it.
    pub created_by: String,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Whose work it is.
    pub tenant: TenantId,
    /// What it does.
    pub kind: String,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before it fails for good.
    pub max_attempts: u32,
    /// At most one active job per tenant with this key.
    pub unique_key: Option<String>,
    /// Its handler's input.
    pub payload: serde_json::Value,
    /// Not before this, µs since the epoch (now if earlier).
    pub scheduled_at: i64,
    /// Who enqueues it.
    pub created_by: String,
}

impl NewJob {
    /// A job of `kind` for `tenant`, to run now, with default priority and
    /// attempts.
    pub fn new(tenant: TenantId, kind: &str, payload: serde_json::Value, by: &str) -> Self {
        Self {
            tenant,
            kind: kind.to_string(),
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
            payload,
            scheduled_at: 0,
            created_by: by.to_string(),
        }
    }
}

/// The options a caller may set on a job it asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Higher runs first; 0 if unset.
    pub priority: i32,
    /// Attempts; the kind's default if unset.
    pub max_attempts: Option<u32>,
    /// Unicity key.
    pub unique_key: Option<String>,
    /// Not before this, µs since the epoch.
    pub scheduled_at: Option<i64>,
}

impl JobOptions {
    /// Checks options a client sent under `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Some(n) = self.max_attempts
            && !(1..=MAX_ATTEMPTS_LIMIT).contains(&n)
        {
            return Err(Error::invalid(
                format!("{field}.max_attempts"),
                format!("max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, not {n}"),
            ));
        }
        if let Some(key) = &self.unique_key {
            let key_field = format!("{field}.unique_key");
            if key.trim().is_empty() {
                return Err(Error::invalid(
                    &key_field,
                    "unique_key must not be blank; leave it unset for no unicity",
                ));
            }
            check_text(&key_field, key, MAX_UNIQUE_KEY_CHARS)?;
        }
        Ok(())
    }

    /// Applies the options to a job.
    pub fn apply(self, job: &mut NewJob) {
        job.priority = self.priority;
        if let Some(n) = self.max_attempts {
            job.max_attempts = n;
        }
        job.unique_key = self.unique_key;
        if let Some(at) = self.scheduled_at {
            job.scheduled_at = at;
        }
    }
}

/// An inclusive range of integers; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Range64 {
    /// At least this.
    pub min: Option<i64>,
    /// At most this.
    pub max: Option<i64>,
}

impl Range64 {
    /// Whether neither end is set.
    pub fn is_open(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    /// Refuses a range whose ends are the wrong way round.
    pub fn validate(&self, field: &str) -> Result<()> {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a > b => Err(Error::invalid(
                field,
                format!("{field} starts after it ends ({a} > {b})"),
            )),
            _ => Ok(()),
        }
    }
}

/// Which jobs a listing returns: every set field must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobFilter {
    /// Only these jobs.
    pub ids: Vec<JobId>,
    /// Only these kinds.
    pub kinds: Vec<String>,
    /// Only these statuses.
    pub statuses: Vec<JobStatus>,
    /// Priority range.
    pub priority: Range64,
    /// Attempts range.
    pub attempts: Range64,
    /// Scheduled time range, µs.
    pub scheduled_at: Range64,
    /// Creation time range, µs.
    pub created_at: Range64,
    /// Last change range, µs.
    pub updated_at: Range64,
    /// Only jobs with this unicity key.
    pub unique_key: Option<String>,
}

/// What a job listing is ordered by; ties go by id, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum JobSortField {
    /// When it was enqueued.
    #[default]
    CreatedAt,
    /// When it last changed.
    UpdatedAt,
    /// When it runs.
    ScheduledAt,
    /// Its priority.
    Priority,
}

/// A page of a job listing: where to start and how many.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobQuery {
    /// Which jobs.
    pub filter: JobFilter,
    /// Order.
    pub sort: JobSortField,
    /// Newest (largest) first.
    pub descending: bool,
    /// Rows to return.
    pub limit: u64,
    /// Start after this (sort value, id).
    pub after: Option<(i64, JobId)>,
}

impl Job {
    /// The value the listing sorts this job by.
    pub fn sort_value(&self, field: JobSortField) -> i64 {
        match field {
            JobSortField::CreatedAt => self.created_at,
            JobSortField::UpdatedAt => self.updated_at,
            JobSortField::ScheduledAt => self.scheduled_at,
            JobSortField::Priority => i64::from(self.priority),
        }
    }

    /// The error for an operation the job's status does not allow.
    pub fn wrong_status(&self, action: &str, allowed: &str) -> Error {
        Error::FailedPrecondition {
            reason: Reason::JobStatus,
            message: format!(
                "job {} is {}; only {allowed} jobs can be {action}",
                self.id, self.status
            ),
        }
    }
}

/// Parses a job kind a client named in `field`, among `known`.
pub fn parse_kind(field: &str, s: &str, known: &[&str]) -> Result<String> {
    if known.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{:?} is not a job kind; kinds are {}",
                truncate_for_message(s),
                known.join(", ")
            ),
        ))
    }
}

/// The JSON of a payload or result as stored, or `null` if it was lost.
pub fn json_or_null(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
}

/// A fresh id for a worker: which process holds a lease.
pub fn worker_id() -> String {
    // The host name tells an operator which pod or machine; the random
    // tail tells apart two processes on one host. At most 64 characters,
    // the column's width.
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(40)
        .collect();
    // The last 12 hex digits of a UUIDv7 are random.
    let tail = &Uuid::now_v7().simple().to_string()[20..];
    if host.is_empty() {
        format!("worker-{tail}")
    } else {
        format!("{host}-{tail}")
    }
}
