//! The job queue as the edges see it: enqueue, read, list, cancel, retry,
//! delete and watch. The workers that run jobs are in `crate::jobs`; what
//! they share with this process's API calls is the [`JobBoard`]: a wake-up
//! for idle workers, an event for each change this process makes, and the
//! cancellation flags of the jobs it runs.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, broadcast};

use super::Library;
use crate::{
    domain::{Job, JobFilter, JobId, JobQuery, NewJob, TenantId},
    error::Result,
};

/// How often a watch re-reads a job whose changes it may not hear of (a
/// job run by another replica).
pub const WATCH_POLL: Duration = Duration::from_millis(250);
/// Job changes an idle watcher may fall behind by before it re-reads.
const EVENTS: usize = 1024;

/// What a running job's handler is told from outside.
#[derive(Debug, Default)]
pub struct JobSignals {
    /// A cancellation was asked for: stop at the next checkpoint.
    pub cancel: AtomicBool,
    /// The lease was lost (the job went to another worker): stop without
    /// recording anything.
    pub lost: AtomicBool,
}

/// What this process's workers and API calls share about jobs.
#[derive(Debug)]
pub(super) struct JobBoard {
    /// Idle workers wait on it; an enqueue here wakes them.
    wake: Arc<Notify>,
    /// The id of every job this process changed.
    events: broadcast::Sender<JobId>,
    /// Signals of the jobs this process runs.
    running: Mutex<HashMap<JobId, Arc<JobSignals>>>,
}

impl Default for JobBoard {
    fn default() -> Self {
        Self {
            wake: Arc::new(Notify::new()),
            events: broadcast::channel(EVENTS).0,
            running: Mutex::default(),
        }
    }
}

impl Library {
    /// Enqueues jobs (all or none) and wakes this process's workers; see
    /// `Repo::insert_jobs` for unicity.
    pub async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<Vec<Job>> {
        let made = self.inner.repo.insert_jobs(jobs).await?;
        // One claimer per process waits; a wake-up with nobody waiting is
        // kept for its next wait.
        self.inner.jobs.wake.notify_one();
        Ok(made)
    }

    /// Enqueues one job.
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Job> {
        let mut made = self.enqueue_jobs(std::slice::from_ref(&job)).await?;
        made.pop()
            .ok_or_else(|| crate::error::Error::Database(sea_orm::DbErr::RecordNotInserted))
    }

    /// One job of the tenant.
    pub async fn job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        self.inner.repo.get_job(tenant, id).await
    }

    /// A page of the tenant's jobs, and their total if asked.
    pub async fn list_jobs(
        &self,
        tenant: TenantId,
        query: &JobQuery,
        with_total: bool,
    ) -> Result<(Vec<Job>, Option<u64>)> {
        let page = self.inner.repo.list_jobs(tenant, query).await?;
        let total = if with_total {
            Some(self.inner.repo.count_jobs(tenant, &query.filter).await?)
        } else {
            None
        };
        Ok((page, total))
    }

    /// How many of the tenant's jobs match `filter`.
    pub async fn count_jobs(&self, tenant: TenantId, filter: &JobFilter) -> Result<u64> {
        self.inner.repo.count_jobs(tenant, filter).await
    }

    /// Cancels a job: a queued one at once, a running one at its handler's
    /// next checkpoint (at once if it runs here; within a lease renewal if
    /// it runs on another replica).
    pub async fn cancel_job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        let job = self.inner.repo.cancel_job(tenant, id).await?;
        if let Some(signals) = self.job_signals(id) {
            signals.cancel.store(true, Ordering::Release);
        }
        self.job_changed(id);
        Ok(job)
    }

    /// Queues a failed or cancelled job again with fresh attempts.
    pub async fn retry_job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        let job = self.inner.repo.retry_job(tenant, id).await?;
        self.inner.jobs.wake.notify_one();
        self.job_changed(id);
        Ok(job)
    }

    /// Deletes an ended job.
    pub async fn delete_job(&self, tenant: TenantId, id: JobId) -> Result<()> {
        self.inner.repo.delete_job(tenant, id).await
    }

    /// Changes of job `id` as this process makes them; a receiver that
    /// falls behind or hears nothing re-reads the job every
    /// [`WATCH_POLL`], which also catches changes made by other replicas.
    pub fn job_events(&self) -> broadcast::Receiver<JobId> {
        self.inner.jobs.events.subscribe()
    }

    /// Tells watchers that job `id` changed.
    pub fn job_changed(&self, id: JobId) {
        let _ = self.inner.jobs.events.send(id);
    }

    /// What idle workers wait on: woken by every enqueue in this process.
    pub fn job_wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.jobs.wake)
    }

    /// Registers a job this process's worker starts; its signals.
    pub fn job_started(&self, id: JobId) -> Arc<JobSignals> {
        let signals = Arc::new(JobSignals::default());
        if let Ok(mut running) = self.inner.jobs.running.lock() {
            running.insert(id, Arc::clone(&signals));
        }
        signals
    }

    /// Forgets a job this process's worker ended.
    pub fn job_ended(&self, id: JobId) {
        if let Ok(mut running) = self.inner.jobs.running.lock() {
            running.remove(&id);
        }
    }

    /// The signals of a job this process runs.
    pub fn job_signals(&self, id: JobId) -> Option<Arc<JobSignals>> {
        self.inner.jobs.running.lock().ok()?.get(&id).cloned()
    }
}
