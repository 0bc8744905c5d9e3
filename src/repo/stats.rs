//! What the metrics read from the database when scraped: the state every
//! replica shares (upload sessions, the job queue) and this process's
//! connection pools.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect,
};

use super::{
    Repo,
    entity::{job, upload},
};
use crate::{
    domain::{JobStatus, UploadState},
    error::Result,
};

/// The shared state, counted across all tenants.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Resumable uploads accepting bytes.
    pub upload_sessions: u64,
    /// Jobs queued and due at `now`.
    pub jobs_queued: u64,
    /// Jobs running.
    pub jobs_running: u64,
    /// When the oldest due job was due (µs since the epoch).
    pub oldest_due: Option<i64>,
}

/// One connection pool's use.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// `read` or `write` on SQLite; `main` on PostgreSQL, where reads and
    /// writes share one pool.
    pub pool: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The pool's limit.
    pub max: u32,
}

impl Repo {
    /// Counts of upload sessions and jobs at `now` (µs); four cheap
    /// queries on partial indexes.
    pub async fn queue_stats(&self, now: i64) -> Result<QueueStats> {
        let upload_sessions = upload::Entity::find()
            .filter(upload::Column::State.eq(UploadState::Active as i16))
            .count(&self.read)
            .await?;
        let due = || {
            job::Entity::find()
                .filter(job::Column::Status.eq(JobStatus::Queued as i16))
                .filter(job::Column::ScheduledAt.lte(now))
        };
        let jobs_queued = due().count(&self.read).await?;
        let oldest_due = due()
            .select_only()
            .column_as(job::Column::ScheduledAt.min(), "due")
            .into_tuple::<Option<i64>>()
            .one(&self.read)
            .await?
            .flatten();
        let jobs_running = job::Entity::find()
            .filter(job::Column::Status.eq(JobStatus::Running as i16))
            .count(&self.read)
            .await?;
        Ok(QueueStats {
            upload_sessions,
            jobs_queued,
            jobs_running,
            oldest_due,
        })
    }

    /// The use of this process's connection pools.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        match self.read.get_database_backend() {
            DatabaseBackend::Sqlite => vec![
                sqlite_pool("read", &self.read),
                sqlite_pool("write", &self.write),
            ],
            DatabaseBackend::Postgres => {
                let pool = self.read.get_postgres_connection_pool();
                vec![PoolStats {
                    pool: "main",
                    size: pool.size(),
                    idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                    max: pool.options().get_max_connections(),
                }]
            }
            DatabaseBackend::MySql => Vec::new(),
        }
    }
}

fn sqlite_pool(name: &'static str, db: &DatabaseConnection) -> PoolStats {
    let pool = db.get_sqlite_connection_pool();
    PoolStats {
        pool: name,
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}
