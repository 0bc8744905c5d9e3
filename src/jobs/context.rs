//! What a job's handler sees while it runs: its job, the library, a cheap
//! way to report progress, and checkpoints where a cancellation stops it.
//!
//! Reporting is synchronous and free: the handler stores its latest
//! progress here, and the job's ticker (see `super::run_one`) writes it to
//! the database a few times a second at most, which is also when a
//! cancellation asked on another replica is heard.

use std::sync::{Arc, Mutex, atomic::Ordering};

use crate::{
    domain::Job,
    error::{Error, Result},
    library::{JobSignals, Library},
};

/// Progress a handler reported and the ticker has not written yet.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Reported {
    /// Percent done.
    pub(super) percent: u8,
    /// What it is doing.
    pub(super) message: String,
    /// Set by each report, cleared by the write.
    pub(super) fresh: bool,
}

/// A running job's handle for its handler.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job, as claimed (its `attempts` counts this attempt).
    pub job: Job,
    /// The library the handler works through.
    pub library: Library,
    signals: Arc<JobSignals>,
    reported: Arc<Mutex<Reported>>,
}

impl JobContext {
    pub(super) fn new(
        job: Job,
        library: Library,
        signals: Arc<JobSignals>,
        reported: Arc<Mutex<Reported>>,
    ) -> Self {
        Self {
            job,
            library,
            signals,
            reported,
        }
    }

    /// Records progress: `percent` done (at most 100), doing `message`.
    pub fn report(&self, percent: u8, message: impl Into<String>) {
        if let Ok(mut r) = self.reported.lock() {
            r.percent = percent.min(100);
            r.message = message.into();
            r.fresh = true;
        }
    }

    /// Records `done` of `total` steps as a percentage.
    pub fn report_steps(&self, done: u64, total: u64, message: impl Into<String>) {
        let percent = (done.min(total).saturating_mul(100))
            .checked_div(total)
            .map_or(0, |p| u8::try_from(p).unwrap_or(100));
        self.report(percent, message);
    }

    /// Stops the handler (with CANCELLED) if its job was cancelled or
    /// taken from this worker; call it between steps.
    pub fn checkpoint(&self) -> Result<()> {
        if self.signals.lost.load(Ordering::Acquire) {
            return Err(Error::Cancelled(format!(
                "job {} was taken over by another worker after its lease expired",
                self.job.id
            )));
        }
        if self.signals.cancel.load(Ordering::Acquire) {
            return Err(Error::Cancelled(format!(
                "job {} was cancelled",
                self.job.id
            )));
        }
        Ok(())
    }

    /// The payload's field `name` as `T`, or `T`'s default when absent.
    pub fn param<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        match self.job.payload.get(name) {
            None | Some(serde_json::Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::invalid(
                    format!("payload.{name}"),
                    format!(
                        "job {}'s payload field {name} is malformed: {e}",
                        self.job.id
                    ),
                )
            }),
        }
    }
}
