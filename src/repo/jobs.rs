//! Rows of the job queue: enqueuing, claiming with a lease, renewing,
//! finishing, and the API's reads and changes.
//!
//! A claim is one statement: it picks the next queued jobs (highest
//! priority, then earliest scheduled, then oldest id) and marks them
//! running under the claiming worker's lease. On PostgreSQL the pick is
//! `FOR UPDATE SKIP LOCKED`, so replicas claiming at once take different
//! jobs without waiting on each other; on SQLite the single writer
//! connection makes the statement atomic by itself. Every later change a
//! worker makes checks that it still holds the lease (`status = 1 AND
//! lease_owner = $owner`), so a worker that lost its job to the lease
//! reaper cannot overwrite what the job's new holder does.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
    sea_query::Expr,
};

use super::{Repo, WriteTx, entity::job};
use crate::{
    domain::{
        Job, JobFilter, JobId, JobQuery, JobSortField, JobStatus, NewJob, Range64, TenantId,
        json_or_null, now_micros,
    },
    error::{Error, Resource, Result},
};

/// PostgreSQL's channel on which an enqueue wakes waiting workers.
pub const JOBS_CHANNEL: &str = "mediastore_jobs";
/// Job rows per INSERT: 23 columns each, far under both engines' limits.
const INSERT_CHUNK: usize = 500;
/// Successes recorded per statement: at most five parameters each.
const FINISH_CHUNK: usize = 500;

/// An attempt that ended, as its worker records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The job.
    pub id: JobId,
    /// Which attempt (the job's `attempts` when it was claimed).
    pub attempt: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The last progress message its handler reported, if any was not
    /// written yet.
    pub message: Option<String>,
}

/// How an attempt ended, as its worker records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; the handler's result.
    Succeeded(serde_json::Value),
    /// Failed; queued again at `retry_at` (µs) if set, else failed for good.
    Failed {
        /// Why.
        error: String,
        /// When to try again.
        retry_at: Option<i64>,
    },
    /// Stopped at a checkpoint after a cancellation was asked for.
    Cancelled,
}

impl Repo {
    /// Enqueues jobs, all or none: ALREADY_EXISTS, naming the holder, if an
    /// active job of the tenant already holds one's unicity key. On
    /// PostgreSQL, waiting workers of every replica are woken.
    pub async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<Vec<Job>> {
        let now = now_micros();
        let made: Vec<Job> = jobs.iter().map(|j| new_job(j, now)).collect();
        let rows: Vec<job::ActiveModel> = made.iter().map(to_row).collect();
        let tx = self.write.begin().await?;
        if let Err(e) = insert_rows(&tx, &rows).await {
            drop(tx);
            return Err(match e {
                Error::Database(e) => self.unicity_conflict(jobs, e).await,
                e => e,
            });
        }
        tx.commit().await?;
        Ok(made)
    }

    /// What a failed insert of `jobs` means: ALREADY_EXISTS naming the
    /// active job holding a key, or the database's error.
    async fn unicity_conflict(&self, jobs: &[NewJob], e: sea_orm::DbErr) -> Error {
        if !matches!(
            e.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ) {
            return e.into();
        }
        for j in jobs {
            let Some(key) = &j.unique_key else { continue };
            if let Ok(Some(holder)) = self.active_job_with_key(j.tenant, key).await {
                return key_taken(key, &holder);
            }
        }
        e.into()
    }

    /// The tenant's active job holding `key`, if any.
    pub async fn active_job_with_key(&self, tenant: TenantId, key: &str) -> Result<Option<Job>> {
        job::Entity::find()
            .filter(job::Column::TenantId.eq(tenant.0))
            .filter(job::Column::UniqueKey.eq(key))
            .filter(job::Column::Status.is_in(active()))
            .one(&self.read)
            .await?
            .map(to_job)
            .transpose()
    }

    /// Claims up to `limit` queued jobs due by `now` for `owner` until
    /// `lease_until`, counting an attempt on each.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u64,
    ) -> Result<Vec<Job>> {
        let backend = self.write.get_database_backend();
        let lock = if backend == DatabaseBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE jobs SET status = 1, lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 0 AND scheduled_at <= $3 \
             ORDER BY priority DESC, scheduled_at, id LIMIT $4{lock}) RETURNING *"
        );
        let rows = job::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    owner.into(),
                    lease_until.into(),
                    now.into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            ))
            .all(&self.write)
            .await?;
        let mut jobs = rows.into_iter().map(to_job).collect::<Result<Vec<_>>>()?;
        // RETURNING gives rows in no promised order; run them in the
        // queue's.
        jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.scheduled_at.cmp(&b.scheduled_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    /// The earliest time a queued job is due, if any is queued.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        Ok(job::Entity::find()
            .select_only()
            .column_as(job::Column::ScheduledAt.min(), "due")
            .filter(job::Column::Status.eq(JobStatus::Queued as i16))
            .into_tuple::<Option<i64>>()
            .one(&self.read)
            .await?
            .flatten())
    }

    /// Extends the leases `owner` holds to `until`; returns the jobs it
    /// still holds and whether each was asked to cancel. A job missing
    /// from the answer was taken from it (its lease had expired).
    pub async fn renew_leases(&self, owner: &str, until: i64) -> Result<Vec<(JobId, bool)>> {
        let backend = self.write.get_database_backend();
        let rows = self
            .write
            .query_all(Statement::from_sql_and_values(
                backend,
                "UPDATE jobs SET lease_until = $1 WHERE status = 1 AND lease_owner = $2 \
                 RETURNING id, cancel_requested",
                [until.into(), owner.into()],
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    JobId(r.try_get_by_index::<uuid::Uuid>(0)?),
                    r.try_get_by_index::<bool>(1)?,
                ))
            })
            .collect()
    }

    /// Records a running job's progress if `owner` still holds it; returns
    /// whether it was asked to cancel, or `None` if it was taken away.
    pub async fn set_job_progress(
        &self,
        id: JobId,
        owner: &str,
        attempt: u32,
        progress: u8,
        message: &str,
    ) -> Result<Option<bool>> {
        let backend = self.write.get_database_backend();
        let row = self
            .write
            .query_one(Statement::from_sql_and_values(
                backend,
                "UPDATE jobs SET progress = $1, progress_message = $2, updated_at = $3 \
                 WHERE id = $4 AND status = 1 AND lease_owner = $5 AND attempts = $6 \
                 RETURNING cancel_requested",
                [
                    i16::from(progress.min(100)).into(),
                    message.into(),
                    now_micros().into(),
                    id.0.into(),
                    owner.into(),
                    i64::from(attempt).into(),
                ],
            ))
            .await?;
        row.map(|r| r.try_get_by_index::<bool>(0))
            .transpose()
            .map_err(Into::into)
    }

    /// Records how attempts ended, all in one transaction. An attempt
    /// whose worker no longer holds the job changes nothing. Returns the
    /// ids whose outcome was recorded.
    pub async fn finish_jobs(&self, owner: &str, done: &[Finished]) -> Result<Vec<JobId>> {
        let backend = self.write.get_database_backend();
        let now = now_micros();
        let (succeeded, others): (Vec<&Finished>, Vec<&Finished>) = done
            .iter()
            .partition(|f| matches!(f.outcome, Outcome::Succeeded(_)));
        // The common case, successes alone: one statement (atomic by
        // itself) for the lot, no transaction around it.
        if others.is_empty() {
            return finish_succeeded(&self.write, owner, now, &succeeded).await;
        }
        let tx = self.write.begin().await?;
        let mut recorded = finish_succeeded(&tx, owner, now, &succeeded).await?;
        for f in others {
            let (sql, mut values): (&str, Vec<sea_orm::Value>) = match &f.outcome {
                Outcome::Failed {
                    error,
                    retry_at: Some(at),
                } => (
                    "UPDATE jobs SET status = 0, last_error = $1, scheduled_at = $2, \
                     updated_at = $3, lease_until = NULL",
                    vec![error.as_str().into(), (*at).into(), now.into()],
                ),
                Outcome::Failed {
                    error,
                    retry_at: None,
                } => (
                    "UPDATE jobs SET status = 3, last_error = $1, finished_at = $2, \
                     updated_at = $2, lease_until = NULL",
                    vec![error.as_str().into(), now.into()],
                ),
                Outcome::Cancelled => (
                    "UPDATE jobs SET status = 4, finished_at = $1, updated_at = $1, \
                     lease_until = NULL",
                    vec![now.into()],
                ),
                Outcome::Succeeded(_) => continue,
            };
            let mut sql = sql.to_string();
            if let Some(m) = &f.message {
                values.push(m.as_str().into());
                sql.push_str(&format!(", progress_message = ${}", values.len()));
            }
            // The attempt must be the job's latest: a worker that lost the
            // job and got it back by a new claim must not record the old
            // attempt's end as the new one's.
            let n = values.len();
            sql.push_str(&format!(
                " WHERE id = ${} AND status = 1 AND lease_owner = ${} AND attempts = ${}",
                n + 1,
                n + 2,
                n + 3
            ));
            values.extend([f.id.0.into(), owner.into(), i64::from(f.attempt).into()]);
            let changed = tx
                .execute(Statement::from_sql_and_values(backend, sql, values))
                .await?
                .rows_affected();
            if changed > 0 {
                recorded.push(f.id);
            }
        }
        if backend == DatabaseBackend::Postgres
            && done.iter().any(|f| {
                matches!(
                    f.outcome,
                    Outcome::Failed {
                        retry_at: Some(_),
                        ..
                    }
                )
            })
        {
            tx.execute_unprepared(&format!("NOTIFY {JOBS_CHANNEL}"))
                .await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Gives back jobs `owner` holds but will not finish (a worker
    /// stopping): queued again at once, the interrupted attempt not
    /// counted. Returns how many went back.
    pub async fn release_jobs(&self, owner: &str, ids: &[JobId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = now_micros();
        Ok(job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Queued as i16))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).sub(1),
            )
            .col_expr(job::Column::ScheduledAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .filter(job::Column::Status.eq(JobStatus::Running as i16))
            .filter(job::Column::LeaseOwner.eq(owner))
            .filter(job::Column::Id.is_in(ids.iter().map(|i| i.0)))
            .exec(&self.write)
            .await?
            .rows_affected)
    }

    /// Takes running jobs whose lease expired by `now` from their dead
    /// workers: queued again to run at once, or failed if that was their
    /// last attempt, or cancelled if a cancellation was pending. Returns
    /// how many were taken.
    pub async fn reap_expired_leases(&self, now: i64) -> Result<u64> {
        let backend = self.write.get_database_backend();
        let tx = self.write.begin().await?;
        let mut taken = 0;
        for (sql, values) in [
            (
                "UPDATE jobs SET status = 4, finished_at = $1, updated_at = $1, \
                 lease_until = NULL WHERE status = 1 AND lease_until < $1 AND cancel_requested",
                vec![now.into()],
            ),
            (
                "UPDATE jobs SET status = 3, finished_at = $1, updated_at = $1, lease_until = NULL, \
                 last_error = 'its worker (' || COALESCE(lease_owner, '?') || \
                 ') stopped during its last attempt' \
                 WHERE status = 1 AND lease_until < $1 AND attempts >= max_attempts",
                vec![now.into()],
            ),
            (
                "UPDATE jobs SET status = 0, scheduled_at = $1, updated_at = $1, lease_until = NULL, \
                 last_error = 'its worker (' || COALESCE(lease_owner, '?') || \
                 ') stopped during attempt ' || attempts \
                 WHERE status = 1 AND lease_until < $1",
                vec![now.into()],
            ),
        ] {
            taken += tx
                .execute(Statement::from_sql_and_values(backend, sql, values))
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Removes up to `limit` jobs that ended before `before`; returns how
    /// many went.
    pub async fn purge_finished_jobs(&self, before: i64, limit: u64) -> Result<u64> {
        let ids: Vec<uuid::Uuid> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::Status.gte(JobStatus::Succeeded as i16))
            .filter(job::Column::FinishedAt.lt(before))
            .limit(limit)
            .into_tuple()
            .all(&self.read)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids))
            .filter(job::Column::Status.gte(JobStatus::Succeeded as i16))
            .exec(&self.write)
            .await?
            .rows_affected)
    }

    /// One job of the tenant.
    pub async fn get_job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        job::Entity::find_by_id(id.0)
            .filter(job::Column::TenantId.eq(tenant.0))
            .one(&self.read)
            .await?
            .map(to_job)
            .transpose()?
            .ok_or_else(|| Error::not_found(Resource::Job, id.to_string()))
    }

    /// A page of the tenant's jobs.
    pub async fn list_jobs(&self, tenant: TenantId, q: &JobQuery) -> Result<Vec<Job>> {
        let column = sort_column(q.sort);
        let mut select = job::Entity::find().filter(filter_condition(tenant, &q.filter));
        if let Some((value, id)) = q.after {
            let later = if q.descending {
                Condition::any().add(column.lt(value)).add(
                    Condition::all()
                        .add(column.eq(value))
                        .add(job::Column::Id.lt(id.0)),
                )
            } else {
                Condition::any().add(column.gt(value)).add(
                    Condition::all()
                        .add(column.eq(value))
                        .add(job::Column::Id.gt(id.0)),
                )
            };
            select = select.filter(later);
        }
        let select = if q.descending {
            select.order_by_desc(column).order_by_desc(job::Column::Id)
        } else {
            select.order_by_asc(column).order_by_asc(job::Column::Id)
        };
        select
            .limit(q.limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(to_job)
            .collect()
    }

    /// How many of the tenant's jobs match.
    pub async fn count_jobs(&self, tenant: TenantId, filter: &JobFilter) -> Result<u64> {
        Ok(job::Entity::find()
            .filter(filter_condition(tenant, filter))
            .count(&self.read)
            .await?)
    }

    /// Cancels a job: a queued one at once, a running one at its next
    /// checkpoint (its handler sees the request). Returns the job as it is
    /// now; FAILED_PRECONDITION for a job that already ended.
    pub async fn cancel_job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        let now = now_micros();
        let tx = self.write.begin().await?;
        let current = self.locked_job(&tx, tenant, id).await?;
        let mut am = job::ActiveModel {
            id: Set(id.0),
            updated_at: Set(now),
            ..Default::default()
        };
        match current.status {
            JobStatus::Queued => {
                am.status = Set(JobStatus::Cancelled as i16);
                am.finished_at = Set(Some(now));
            }
            JobStatus::Running => am.cancel_requested = Set(true),
            _ => return Err(current.wrong_status("cancelled", "queued or running")),
        }
        let row = job::Entity::update(am).exec(&tx).await?;
        tx.commit().await?;
        to_job(row)
    }

    /// Queues a failed or cancelled job again, with fresh attempts.
    pub async fn retry_job(&self, tenant: TenantId, id: JobId) -> Result<Job> {
        let now = now_micros();
        let tx = self.write.begin().await?;
        let current = self.locked_job(&tx, tenant, id).await?;
        if !matches!(current.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(current.wrong_status("retried", "failed or cancelled"));
        }
        let am = job::ActiveModel {
            id: Set(id.0),
            status: Set(JobStatus::Queued as i16),
            attempts: Set(0),
            progress: Set(0),
            progress_message: Set(String::new()),
            scheduled_at: Set(now),
            finished_at: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            cancel_requested: Set(false),
            updated_at: Set(now),
            ..Default::default()
        };
        let row = match job::Entity::update(am).exec(&tx).await {
            Ok(row) => row,
            Err(e) => {
                drop(tx);
                let key = current.unique_key.as_deref().unwrap_or_default();
                return Err(match self.active_job_with_key(tenant, key).await {
                    Ok(Some(holder)) => key_taken(key, &holder),
                    _ => e.into(),
                });
            }
        };
        if tx.get_database_backend() == DatabaseBackend::Postgres {
            tx.execute_unprepared(&format!("NOTIFY {JOBS_CHANNEL}"))
                .await?;
        }
        tx.commit().await?;
        to_job(row)
    }

    /// Deletes an ended job; FAILED_PRECONDITION for an active one.
    pub async fn delete_job(&self, tenant: TenantId, id: JobId) -> Result<()> {
        let tx = self.write.begin().await?;
        let current = self.locked_job(&tx, tenant, id).await?;
        if !current.status.is_final() {
            return Err(current.wrong_status("deleted", "succeeded, failed or cancelled"));
        }
        job::Entity::delete_by_id(id.0).exec(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's job `id`, locked until `tx` ends (PostgreSQL; SQLite
    /// has one writer).
    async fn locked_job(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        tenant: TenantId,
        id: JobId,
    ) -> Result<Job> {
        job::Entity::find_by_id(id.0)
            .filter(job::Column::TenantId.eq(tenant.0))
            .lock_exclusive()
            .one(tx)
            .await?
            .map(to_job)
            .transpose()?
            .ok_or_else(|| Error::not_found(Resource::Job, id.to_string()))
    }
}

/// Inserts job rows and, on PostgreSQL, wakes the workers of every
/// replica once `db`'s transaction commits.
async fn insert_rows(db: &impl ConnectionTrait, rows: &[job::ActiveModel]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for part in rows.chunks(INSERT_CHUNK) {
        job::Entity::insert_many(part.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared(&format!("NOTIFY {JOBS_CHANNEL}"))
            .await?;
    }
    Ok(())
}

impl WriteTx {
    /// Enqueues jobs in this transaction: they exist if and only if it
    /// commits (an upload's eager renditions).
    pub async fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<Vec<Job>> {
        let now = now_micros();
        let made: Vec<Job> = jobs.iter().map(|j| new_job(j, now)).collect();
        let rows: Vec<job::ActiveModel> = made.iter().map(to_row).collect();
        insert_rows(&self.tx, &rows).await?;
        Ok(made)
    }
}

/// Records successes, [`FINISH_CHUNK`] per statement: each job's result
/// (and last progress message) by a CASE on its id, each checked to be
/// still held by `owner` in the attempt that ended.
async fn finish_succeeded(
    db: &impl ConnectionTrait,
    owner: &str,
    now: i64,
    succeeded: &[&Finished],
) -> Result<Vec<JobId>> {
    let backend = db.get_database_backend();
    let mut recorded = Vec::with_capacity(succeeded.len());
    for part in succeeded.chunks(FINISH_CHUNK) {
        let mut values: Vec<sea_orm::Value> = vec![now.into(), owner.into()];
        let mut bind = |v: sea_orm::Value| {
            values.push(v);
            format!("${}", values.len())
        };
        let mut results = String::new();
        let mut messages = String::new();
        let mut held = Vec::with_capacity(part.len());
        for f in part {
            let Outcome::Succeeded(result) = &f.outcome else {
                continue;
            };
            let id = bind(f.id.0.into());
            results.push_str(&format!(
                " WHEN {id} THEN {}",
                bind(result.to_string().into())
            ));
            if let Some(m) = &f.message {
                messages.push_str(&format!(" WHEN {id} THEN {}", bind(m.as_str().into())));
            }
            held.push(format!("({id}, {})", bind(i64::from(f.attempt).into())));
        }
        let messages = if messages.is_empty() {
            String::new()
        } else {
            format!(", progress_message = CASE id{messages} ELSE progress_message END")
        };
        let sql = format!(
            "UPDATE jobs SET status = 2, progress = 100, result = CASE id{results} END{messages}, \
             finished_at = $1, updated_at = $1, lease_until = NULL, cancel_requested = FALSE \
             WHERE status = 1 AND lease_owner = $2 AND (id, attempts) IN ({}) RETURNING id",
            held.join(", ")
        );
        for row in db
            .query_all(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            recorded.push(JobId(row.try_get_by_index::<uuid::Uuid>(0)?));
        }
    }
    Ok(recorded)
}

/// The statuses of active jobs, as stored.
fn active() -> [i16; 2] {
    [JobStatus::Queued as i16, JobStatus::Running as i16]
}

/// ALREADY_EXISTS: `holder` is the active job with `key`.
fn key_taken(key: &str, holder: &Job) -> Error {
    Error::AlreadyExists {
        kind: Resource::Job,
        name: holder.id.to_string(),
        message: format!(
            "job {} ({}, {}) already holds unique_key {key:?}; wait for it to end or cancel it",
            holder.id, holder.kind, holder.status
        ),
    }
}

fn sort_column(field: JobSortField) -> job::Column {
    match field {
        JobSortField::CreatedAt => job::Column::CreatedAt,
        JobSortField::UpdatedAt => job::Column::UpdatedAt,
        JobSortField::ScheduledAt => job::Column::ScheduledAt,
        JobSortField::Priority => job::Column::Priority,
    }
}

/// The WHERE of a listing: the tenant, then every set field of `f`.
fn filter_condition(tenant: TenantId, f: &JobFilter) -> Condition {
    let mut c = Condition::all().add(job::Column::TenantId.eq(tenant.0));
    if !f.ids.is_empty() {
        c = c.add(job::Column::Id.is_in(f.ids.iter().map(|i| i.0)));
    }
    if !f.kinds.is_empty() {
        c = c.add(job::Column::Kind.is_in(f.kinds.iter().cloned()));
    }
    if !f.statuses.is_empty() {
        c = c.add(job::Column::Status.is_in(f.statuses.iter().map(|s| *s as i16)));
    }
    if let Some(key) = &f.unique_key {
        c = c.add(job::Column::UniqueKey.eq(key.as_str()));
    }
    for (column, range) in [
        (job::Column::Priority, f.priority),
        (job::Column::Attempts, f.attempts),
        (job::Column::ScheduledAt, f.scheduled_at),
        (job::Column::CreatedAt, f.created_at),
        (job::Column::UpdatedAt, f.updated_at),
    ] {
        c = c.add(in_range(column, range));
    }
    c
}

fn in_range(column: job::Column, r: Range64) -> Condition {
    let mut c = Condition::all();
    if let Some(min) = r.min {
        c = c.add(Expr::col(column).gte(min));
    }
    if let Some(max) = r.max {
        c = c.add(Expr::col(column).lte(max));
    }
    c
}

/// The job `j` becomes when enqueued at `now`.
fn new_job(j: &NewJob, now: i64) -> Job {
    Job {
        id: JobId::new(),
        tenant: j.tenant,
        kind: j.kind.clone(),
        status: JobStatus::Queued,
        priority: j.priority,
        progress: 0,
        progress_message: String::new(),
        attempts: 0,
        max_attempts: j.max_attempts,
        last_error: None,
        unique_key: j.unique_key.clone(),
        payload: j.payload.clone(),
        result: None,
        scheduled_at: j.scheduled_at.max(now),
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        lease_owner: None,
        lease_until: None,
        cancel_requested: false,
        created_by: j.created_by.clone(),
    }
}

fn to_row(j: &Job) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(j.id.0),
        tenant_id: Set(j.tenant.0),
        kind: Set(j.kind.clone()),
        status: Set(j.status as i16),
        priority: Set(j.priority),
        progress: Set(i16::from(j.progress)),
        progress_message: Set(j.progress_message.clone()),
        attempts: Set(i32::try_from(j.attempts).unwrap_or(i32::MAX)),
        max_attempts: Set(i32::try_from(j.max_attempts).unwrap_or(i32::MAX)),
        last_error: Set(j.last_error.clone()),
        unique_key: Set(j.unique_key.clone()),
        payload: Set(j.payload.to_string()),
        result: Set(j.result.as_ref().map(ToString::to_string)),
        scheduled_at: Set(j.scheduled_at),
        started_at: Set(j.started_at),
        finished_at: Set(j.finished_at),
        created_at: Set(j.created_at),
        updated_at: Set(j.updated_at),
        lease_owner: Set(j.lease_owner.clone()),
        lease_until: Set(j.lease_until),
        cancel_requested: Set(j.cancel_requested),
        created_by: Set(j.created_by.clone()),
    }
}

fn to_job(r: job::Model) -> Result<Job> {
    Ok(Job {
        id: JobId(r.id),
        tenant: TenantId(r.tenant_id),
        kind: r.kind,
        status: JobStatus::from_i16(r.status),
        priority: r.priority,
        progress: u8::try_from(r.progress.clamp(0, 100)).unwrap_or(0),
        progress_message: r.progress_message,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
        last_error: r.last_error,
        unique_key: r.unique_key,
        payload: json_or_null(&r.payload),
        result: r.result.as_deref().map(json_or_null),
        scheduled_at: r.scheduled_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
        lease_owner: r.lease_owner,
        lease_until: r.lease_until,
        cancel_requested: r.cancel_requested,
        created_by: r.created_by,
    })
}

impl Repo {
    /// On PostgreSQL, a connection listening on [`JOBS_CHANNEL`]: an
    /// enqueue on any replica wakes this one's workers. `None` on SQLite,
    /// where workers are woken in process and poll for other processes.
    pub async fn listen_for_jobs(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.write.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(None);
        }
        let pool = self.write.get_postgres_connection_pool();
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(JOBS_CHANNEL).await?;
        Ok(Some(listener))
    }
}
