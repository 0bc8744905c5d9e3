//! The job queue: work that runs after its request returned (imports,
//! reanalysis, garbage collection, scrubs), shared by every replica on one
//! database.
//!
//! A worker claims queued jobs by setting `status` to running and taking a
//! lease (`lease_owner`, `lease_until`) that it renews while the job runs;
//! a job whose lease ran out belongs to a worker that died and is queued
//! again. Three partial indexes answer the queue's hot questions without
//! scanning finished jobs, of which there may be many:
//! - `jobs_claim`: the next queued jobs, highest priority then earliest
//!   scheduled;
//! - `jobs_leases`: running jobs whose lease expired;
//! - `jobs_unicity`: at most one active (queued or running) job per
//!   tenant and unicity key, enforced by the database, so two replicas
//!   enqueuing the same work at once make one job.
//!
//! Listing goes by `(tenant_id, created_at, id)`, the keyset order; the
//! retention sweep by `finished_at`.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    TenantId,
    Kind,
    Status,
    Priority,
    Progress,
    ProgressMessage,
    Attempts,
    MaxAttempts,
    LastError,
    UniqueKey,
    Payload,
    Result,
    ScheduledAt,
    StartedAt,
    FinishedAt,
    CreatedAt,
    UpdatedAt,
    LeaseOwner,
    LeaseUntil,
    CancelRequested,
    CreatedBy,
}

/// Partial indexes, the same SQL on SQLite and PostgreSQL. Status numbers:
/// 0 queued, 1 running (the active ones), then the ended ones.
const INDEXES: &[&str] = &[
    "CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at, id) WHERE status = 0",
    "CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 1",
    "CREATE UNIQUE INDEX jobs_unicity ON jobs (tenant_id, unique_key) \
     WHERE status IN (0, 1) AND unique_key IS NOT NULL",
    "CREATE INDEX jobs_listing ON jobs (tenant_id, created_at, id)",
    "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status >= 2",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Jobs::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Jobs::Kind).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::Status).small_integer().not_null())
                    .col(ColumnDef::new(Jobs::Priority).integer().not_null())
                    .col(ColumnDef::new(Jobs::Progress).small_integer().not_null())
                    .col(ColumnDef::new(Jobs::ProgressMessage).text().not_null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::LastError).text())
                    .col(ColumnDef::new(Jobs::UniqueKey).string_len(256))
                    // JSON as text: read back whole by the worker and the
                    // API, never queried inside.
                    .col(ColumnDef::new(Jobs::Payload).text().not_null())
                    .col(ColumnDef::new(Jobs::Result).text())
                    .col(ColumnDef::new(Jobs::ScheduledAt).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::StartedAt).big_integer())
                    .col(ColumnDef::new(Jobs::FinishedAt).big_integer())
                    .col(ColumnDef::new(Jobs::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::UpdatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::LeaseOwner).string_len(64))
                    .col(ColumnDef::new(Jobs::LeaseUntil).big_integer())
                    .col(ColumnDef::new(Jobs::CancelRequested).boolean().not_null())
                    .col(ColumnDef::new(Jobs::CreatedBy).string_len(200).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Jobs::Table, Jobs::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}
