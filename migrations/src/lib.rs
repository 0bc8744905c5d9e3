//! Schema migrations for mediastore, written once with SeaORM's schema
//! builder so that SQLite and PostgreSQL get the same tables and indexes.
//!
//! Conventions every table follows, and why:
//! - Every row a tenant owns has a `tenant_id`, and every index a tenant's
//!   query uses starts with it, so tenants never scan each other's rows.
//! - Times are `BIGINT` microseconds since the Unix epoch (UTC): they sort the
//!   same way on both engines, which keyset pagination relies on.
//! - Ids are UUIDv7, so primary-key order follows creation order.

pub use sea_orm_migration::prelude::*;

/// The `Migration` of a module whose `UP` and `DOWN` statements read the
/// same on both engines (plain SQL, run in order by [`run`]).
macro_rules! plain_sql_migration {
    () => {
        use sea_orm_migration::prelude::*;

        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::run(manager, UP).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::run(manager, DOWN).await
            }
        }
    };
}

mod m20261124_000001_foundation;
mod m20261125_000002_library;
mod m20261125_000003_text_search;
mod m20261125_000004_uploads;
mod m20261125_000005_analysis;
mod m20261125_000006_renditions;
mod m20261201_000007_text_terms;
mod m20261203_000008_structured_text;
mod m20261203_000009_api_keys;
mod m20261203_000010_authorship;
mod m20261203_000011_quotas;
mod m20261203_000012_public_folders;
mod m20261203_000013_rendition_tenants;
mod m20261204_000014_inline_blobs;
mod m20261204_000015_jobs;
mod m20261204_000016_slots_and_codes;
mod m20261207_000017_media_blob_tenant;
mod m20261207_000018_content_hashes;

/// Longest text query PostgreSQL's term index answers (see migration 000007).
pub use m20261201_000007_text_terms::STEP as TERM_QUERY_CHARS;

/// Runs statements that read the same on both engines, in order: the
/// body of migrations written as plain SQL.
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Runs every migration in order; the server applies pending ones at start-up.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_foundation::Migration),
            Box::new(m20261125_000002_library::Migration),
            Box::new(m20261125_000003_text_search::Migration),
            Box::new(m20261125_000004_uploads::Migration),
            Box::new(m20261125_000005_analysis::Migration),
            Box::new(m20261125_000006_renditions::Migration),
            Box::new(m20261201_000007_text_terms::Migration),
            Box::new(m20261203_000008_structured_text::Migration),
            Box::new(m20261203_000009_api_keys::Migration),
            Box::new(m20261203_000010_authorship::Migration),
            Box::new(m20261203_000011_quotas::Migration),
            Box::new(m20261203_000012_public_folders::Migration),
            Box::new(m20261203_000013_rendition_tenants::Migration),
            Box::new(m20261204_000014_inline_blobs::Migration),
            Box::new(m20261204_000015_jobs::Migration),
            Box::new(m20261204_000016_slots_and_codes::Migration),
            Box::new(m20261207_000017_media_blob_tenant::Migration),
            Box::new(m20261207_000018_content_hashes::Migration),
        ]
    }
}
