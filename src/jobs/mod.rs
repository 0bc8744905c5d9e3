//! Job workers: the pool in each server process that runs the queue's
//! jobs.
//!
//! Four tasks share the work, so that each database round trip serves as
//! many jobs as it can:
//! - the **claimer** waits for idle workers, claims due jobs for them and
//!   up to one batch more, held ahead for the next idle ones (one
//!   statement; `FOR UPDATE SKIP LOCKED` on PostgreSQL), and starts each
//!   on a task of its own; with nothing due it sleeps
//!   until an enqueue wakes it (in this process, or on PostgreSQL through
//!   `LISTEN`), the next scheduled job is due, or the poll interval ends;
//! - each **job** reports progress to memory; its ticker writes the latest
//!   to the database a few times a second and hears of cancellations;
//! - the **finisher** records how attempts ended, every end that is
//!   waiting in one transaction: success, a retry after an exponential
//!   backoff with jitter, failure, or cancellation;
//! - the **heartbeat** renews the leases of everything this process holds,
//!   hears cancellations asked on other replicas, requeues the jobs of
//!   workers that died (their leases expired) and removes ended jobs past
//!   their retention.
//!
//! A job that dies with its process runs again once its lease expires; a
//! handler therefore does work that is safe to repeat (reanalysis, garbage
//! collection and scrubs are).

mod context;
pub mod kinds;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinHandle,
};

pub use self::{
    context::JobContext,
    kinds::{Handler, Registry},
};
use crate::{
    domain::{Job, JobId, now_micros, worker_id},
    error::Error,
    library::Library,
    repo::{Finished, Outcome},
};

/// Default number of jobs a process runs at once.
pub const DEFAULT_WORKERS: usize = 4;
/// Default lease: a worker that stops renewing loses its jobs after this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default longest wait for work between claims when nothing wakes the
/// claimer (other processes on SQLite, a missed notification).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Default delay before the first retry; each later one doubles it.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(2);
/// Default longest delay between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(3600);
/// Default time ended jobs are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a running job's progress is written at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Ended attempts recorded in one transaction at most.
const FINISH_BATCH: usize = 512;
/// Ended jobs removed per statement of the retention sweep.
const PURGE_BATCH: u64 = 1000;
/// How often the retention sweep runs.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Pause after a database error in a worker's loop.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once; 0 runs none (an API-only replica).
    pub workers: usize,
    /// How long a claim holds a job without renewal.
    pub lease: Duration,
    /// Longest sleep of an idle claimer.
    pub poll: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How long ended jobs are kept.
    pub retention: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl WorkerSettings {
    /// How often leases are renewed: three times a lease, so two renewals
    /// may fail before a job is lost.
    fn heartbeat(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }

    /// The delay before retrying after failed attempt `attempt` (1 for the
    /// first): `retry_base` doubled per attempt, at most `retry_max`, then
    /// between half and all of it at random, so jobs that failed together
    /// do not all retry together.
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
        let full = doubled.min(self.retry_max);
        let fraction = 0.5 + (random % 1_000_000) as f64 / 2_000_000.0;
        full.mul_f64(fraction)
    }
}

/// The running pool; [`Workers::stop`] ends it.
#[derive(Debug)]
pub struct Workers {
    /// This process's name in leases.
    owner: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the pool's tasks share.
#[derive(Debug)]
struct Shared {
    library: Library,
    registry: Registry,
    settings: WorkerSettings,
    owner: String,
    /// Idle workers.
    idle: Arc<Semaphore>,
    /// Jobs claimed and not yet ended here: what the heartbeat renews and
    /// what stopping gives back.
    held: Mutex<HashSet<JobId>>,
    /// To the finisher.
    ended: mpsc::UnboundedSender<Finished>,
    /// Ends sent to the finisher and not recorded yet: stopping waits for
    /// them, so that it never gives back a job whose end is on its way.
    unrecorded: std::sync::atomic::AtomicUsize,
    /// Running attempts' tasks, aborted if stopping outlasts its grace.
    running: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Starts the pool over `library`'s queue (nothing runs with no
    /// workers).
    pub fn start(library: Library, registry: Registry, settings: WorkerSettings) -> Self {
        let owner = worker_id();
        let (stop, stopped) = watch::channel(false);
        let (ended, ended_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            library,
            registry,
            idle: Arc::new(Semaphore::new(settings.workers)),
            settings,
            owner: owner.clone(),
            held: Mutex::default(),
            ended,
            unrecorded: Default::default(),
            running: Mutex::default(),
        });
        let mut tasks = Vec::new();
        if shared.settings.workers > 0 {
            tasks.push(tokio::spawn(claimer(Arc::clone(&shared), stopped.clone())));
            tasks.push(tokio::spawn(finisher(Arc::clone(&shared), ended_rx)));
            tasks.push(tokio::spawn(heartbeat(Arc::clone(&shared), stopped)));
            tracing::info!(owner = %owner, workers = shared.settings.workers, "job workers started");
        }
        Self {
            owner,
            stop,
            tasks,
            shared,
        }
    }

    /// This pool's name in the leases it takes.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops claiming, lets running attempts end for up to `grace`, then
    /// stops them and gives back every job still held, so another worker
    /// runs it at once rather than after its lease.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let workers = u32::try_from(self.shared.settings.workers).unwrap_or(u32::MAX);
        // All workers idle means every attempt ended.
        let all_idle = Arc::clone(&self.shared.idle);
        let drained = tokio::time::timeout(grace, all_idle.acquire_many_owned(workers)).await;
        if drained.is_err() {
            let running = std::mem::take(&mut *lock(&self.shared.running));
            for task in running {
                task.abort();
            }
        }
        // Let the finisher record what ended: a job given back with its
        // end still on the way would run again.
        for _ in 0..500 {
            if self
                .shared
                .unrecorded
                .load(std::sync::atomic::Ordering::Acquire)
                == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let held: Vec<JobId> = lock(&self.shared.held).iter().copied().collect();
        match self
            .shared
            .library
            .repo()
            .release_jobs(&self.owner, &held)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "gave back unfinished jobs"),
            Err(e) => {
                tracing::warn!(error = %e, "could not give back unfinished jobs; they run again when their leases expire")
            }
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Claims due jobs for idle workers and starts them.
async fn claimer(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let library = &shared.library;
    let wake = library.job_wakeup();
    let mut listener = match library.repo().listen_for_jobs().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for new jobs; polling instead");
            None
        }
    };
    // Jobs claimed ahead for workers about to be idle: at most one more
    // batch than there are workers, so a claim's round trip serves twice
    // as many jobs and never leaves a worker waiting on it.
    let mut ahead: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        let first = tokio::select! {
            _ = stopped.changed() => return,
            p = Arc::clone(&shared.idle).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while let Ok(p) = Arc::clone(&shared.idle).try_acquire_owned() {
            permits.push(p);
        }
        let now = now_micros();
        if ahead.len() < permits.len() {
            let want = permits.len() - ahead.len() + shared.settings.workers;
            let lease_until = now + micros(shared.settings.lease);
            match library
                .repo()
                .claim_jobs(&shared.owner, now, lease_until, want as u64)
                .await
            {
                Ok(jobs) => {
                    let mut held = lock(&shared.held);
                    for job in &jobs {
                        held.insert(job.id);
                    }
                    drop(held);
                    ahead.extend(jobs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    drop(permits);
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            }
        }
        let got_any = !ahead.is_empty();
        while let Some(permit) = permits.pop() {
            // Skipping those taken from this process while they waited.
            let Some(job) = std::iter::from_fn(|| ahead.pop_front())
                .find(|j| lock(&shared.held).contains(&j.id))
            else {
                break;
            };
            library.job_changed(job.id);
            let task = tokio::spawn(run_one(Arc::clone(&shared), job, permit));
            let mut running = lock(&shared.running);
            running.retain(|t| !t.is_finished());
            running.push(task);
        }
        drop(permits);
        if got_any {
            continue;
        }
        // Nothing due: sleep until woken, the next due time or the poll.
        let mut wait = shared.settings.poll;
        if let Ok(Some(due)) = library.repo().next_due().await {
            let until_due = Duration::from_micros(u64::try_from(due - now).unwrap_or(0));
            wait = wait.min(until_due);
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            n = notified(&mut listener) => {
                if let Err(e) = n {
                    tracing::warn!(error = %e, "lost the job notifications; polling instead");
                    listener = None;
                }
            }
        }
    }
}

/// The next notification of a new job on PostgreSQL; never, without a
/// listener.
async fn notified(listener: &mut Option<sqlx::postgres::PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Runs one attempt of `job` and hands its end to the finisher.
async fn run_one(shared: Arc<Shared>, job: Job, permit: tokio::sync::OwnedSemaphorePermit) {
    let library = shared.library.clone();
    let id = job.id;
    let attempt = job.attempts;
    let signals = library.job_started(id);
    let reported = Arc::new(Mutex::new(context::Reported::default()));
    let ctx = JobContext::new(
        job.clone(),
        library.clone(),
        Arc::clone(&signals),
        Arc::clone(&reported),
    );
    let ticker = AbortOnDrop(tokio::spawn(tick(
        Arc::clone(&shared),
        id,
        attempt,
        Arc::clone(&signals),
        Arc::clone(&reported),
    )));
    let outcome = match shared.registry.get(&job.kind) {
        None => Err(Error::invalid(
            "kind",
            format!("this server has no handler for jobs of kind {:?}", job.kind),
        )),
        Some(handler) => {
            // Its own task, so that a panic fails the job, not the worker;
            // stopped with this one if stopping the pool aborts it.
            let mut run = AbortOnDrop(tokio::spawn(async move { handler.run(&ctx).await }));
            (&mut run.0).await.unwrap_or_else(|e| {
                Err(Error::io(
                    "running a job",
                    std::io::Error::other(format!("the handler stopped abnormally: {e}")),
                ))
            })
        }
    };
    drop(ticker);
    library.job_ended(id);
    let lost = signals.lost.load(std::sync::atomic::Ordering::Acquire);
    let outcome = match outcome {
        _ if lost => None,
        Ok(result) => Some(Outcome::Succeeded(result)),
        Err(Error::Cancelled(_)) if signals.cancel.load(std::sync::atomic::Ordering::Acquire) => {
            Some(Outcome::Cancelled)
        }
        Err(e) => {
            let retry_at = (retryable(&e) && attempt < job.max_attempts).then(|| {
                let random = getrandom::u64().unwrap_or(0);
                now_micros() + micros(shared.settings.backoff(attempt, random))
            });
            tracing::info!(job = %id, kind = %job.kind, attempt, error = %e, retry = retry_at.is_some(), "job attempt failed");
            Some(Outcome::Failed {
                error: e.to_string(),
                retry_at,
            })
        }
    };
    match outcome {
        Some(outcome) => {
            let message = {
                let r = lock(&reported);
                r.fresh.then(|| r.message.clone())
            };
            shared
                .unrecorded
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            let _ = shared.ended.send(Finished {
                id,
                attempt,
                outcome,
                message,
            });
        }
        None => {
            lock(&shared.held).remove(&id);
        }
    }
    drop(permit);
}

/// Whether a failed attempt may succeed if tried again: trouble with the
/// database, the storage or the network may pass; a wrong request, a
/// missing object, a limit or lost bytes will not.
fn retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable { .. }
            | Error::Io { .. }
            | Error::Database(_)
            | Error::DeadlineExpired(_)
            | Error::RateLimited { .. }
            | Error::UploadBusy(_)
    )
}

/// Writes a running job's progress a few times a second, and hears
/// whether it was cancelled or taken away.
async fn tick(
    shared: Arc<Shared>,
    id: JobId,
    attempt: u32,
    signals: Arc<crate::library::JobSignals>,
    reported: Arc<Mutex<context::Reported>>,
) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (percent, message) = {
            let mut r = lock(&reported);
            if !r.fresh {
                continue;
            }
            r.fresh = false;
            (r.percent, r.message.clone())
        };
        match shared
            .library
            .repo()
            .set_job_progress(id, &shared.owner, attempt, percent, &message)
            .await
        {
            Ok(Some(cancel)) => {
                if cancel {
                    signals
                        .cancel
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                shared.library.job_changed(id);
            }
            Ok(None) => signals
                .lost
                .store(true, std::sync::atomic::Ordering::Release),
            Err(e) => tracing::debug!(job = %id, error = %e, "could not record progress"),
        }
    }
}

/// Records ended attempts, as many at once as are waiting.
async fn finisher(shared: Arc<Shared>, mut ended: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while ended.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let mut tries = 0;
        loop {
            match shared
                .library
                .repo()
                .finish_jobs(&shared.owner, &batch)
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 10 => {
                    tries += 1;
                    tracing::warn!(error = %e, jobs = batch.len(), "recording ended jobs failed; retrying");
                    tokio::time::sleep(ERROR_PAUSE * tries).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "could not record ended jobs; they run again when their leases expire");
                    break;
                }
            }
        }
        let mut held = lock(&shared.held);
        for f in &batch {
            held.remove(&f.id);
        }
        drop(held);
        shared
            .unrecorded
            .fetch_sub(batch.len(), std::sync::atomic::Ordering::AcqRel);
        for f in batch.drain(..) {
            shared.library.job_changed(f.id);
        }
    }
}

/// Renews leases, hears cancellations, requeues dead workers' jobs and
/// removes old ended ones.
async fn heartbeat(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let repo = shared.library.repo().clone();
    let mut every = tokio::time::interval(shared.settings.heartbeat());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = every.tick() => {}
        }
        let now = now_micros();
        // Taken before the renewal: every job in it was claimed (and
        // committed) before, so the renewal's answer misses it only if the
        // job was taken from this process (or just ended).
        let before: Vec<JobId> = lock(&shared.held).iter().copied().collect();
        match repo
            .renew_leases(&shared.owner, now + micros(shared.settings.lease))
            .await
        {
            Ok(renewed) => {
                let renewed: std::collections::HashMap<JobId, bool> = renewed.into_iter().collect();
                for id in before {
                    let signals = shared.library.job_signals(id);
                    match (renewed.get(&id), signals) {
                        (Some(true), Some(signals)) => signals
                            .cancel
                            .store(true, std::sync::atomic::Ordering::Release),
                        (Some(_), _) => {}
                        (None, signals) => {
                            // Lost: a running handler stops at its next
                            // checkpoint; one claimed ahead never starts.
                            if let Some(signals) = signals {
                                signals
                                    .lost
                                    .store(true, std::sync::atomic::Ordering::Release);
                            }
                            lock(&shared.held).remove(&id);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing job leases failed"),
        }
        match repo.reap_expired_leases(now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    jobs = n,
                    "took back jobs from workers that stopped renewing their leases"
                );
                shared.library.job_wakeup().notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "requeuing expired jobs failed"),
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = tokio::time::Instant::now();
            let before = now - micros(shared.settings.retention);
            loop {
                match repo.purge_finished_jobs(before, PURGE_BATCH).await {
                    Ok(n) if n == PURGE_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "removing old jobs failed");
                        break;
                    }
                }
            }
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        let s = WorkerSettings {
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            ..WorkerSettings::default()
        };
        assert_eq!(
            s.backoff(1, 999_999),
            Duration::from_secs(2).mul_f64(0.9999995)
        );
        assert_eq!(s.backoff(1, 0), Duration::from_secs(1));
        assert_eq!(s.backoff(2, 0), Duration::from_secs(2));
        assert_eq!(s.backoff(3, 0), Duration::from_secs(4));
        assert_eq!(s.backoff(10, 0), Duration::from_secs(30));
        assert_eq!(s.backoff(u32::MAX, 0), Duration::from_secs(30));
        for r in [1, 12_345, 500_000, 999_999, u64::MAX] {
            let d = s.backoff(3, r);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }
}
