//! Renditions per tenant: one row per (tenant, source blob, request).
//!
//! Shared across tenants, a cached rendition told one tenant that another
//! had asked for the same rendition of the same bytes (its `cached` flag,
//! its speed, `ListRenditions`). Each tenant now has its own rows and
//! renders its own; the rendition's bytes are still stored once, each row
//! holding one reference on them. Existing rows are copied to every tenant
//! holding their source, and the references follow the copies.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Renditions {
    Table,
    TenantId,
    SourceHash,
    Params,
    BlobHash,
    MimeType,
    Width,
    Height,
    SizeBytes,
    CreatedAt,
}

/// The table under its temporary name while it is rebuilt.
#[derive(DeriveIden)]
enum Rebuilt {
    #[sea_orm(iden = "renditions_rebuilt")]
    Table,
}

/// The renditions table, with or without the tenant column, under the
/// rebuild's name.
fn table(with_tenant: bool) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(Rebuilt::Table);
    let mut key = Index::create();
    if with_tenant {
        t.col(ColumnDef::new(Renditions::TenantId).uuid().not_null());
        key.col(Renditions::TenantId);
    }
    t.col(ColumnDef::new(Renditions::SourceHash).string().not_null())
        .col(ColumnDef::new(Renditions::Params).string().not_null())
        .col(ColumnDef::new(Renditions::BlobHash).string().not_null())
        .col(ColumnDef::new(Renditions::MimeType).string().not_null())
        .col(ColumnDef::new(Renditions::Width).integer().not_null())
        .col(ColumnDef::new(Renditions::Height).integer().not_null())
        .col(
            ColumnDef::new(Renditions::SizeBytes)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Renditions::CreatedAt)
                .big_integer()
                .not_null(),
        )
        .primary_key(key.col(Renditions::SourceHash).col(Renditions::Params));
    t.to_owned()
}

/// Moves the references on rendition blobs from the old rows to the new,
/// then puts the new table in the old one's place.
async fn swap(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in [
        "UPDATE blobs SET refcount = refcount \
           + (SELECT COUNT(*) FROM renditions_rebuilt n WHERE n.blob_hash = blobs.hash) \
           - (SELECT COUNT(*) FROM renditions o WHERE o.blob_hash = blobs.hash) \
         WHERE hash IN (SELECT blob_hash FROM renditions)",
        "DROP TABLE renditions",
        "ALTER TABLE renditions_rebuilt RENAME TO renditions",
    ] {
        db.execute_unprepared(sql).await?;
    }
    // PostgreSQL keeps the primary key's name (SQLite renames its own), and
    // the next rebuild needs the temporary one free.
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared(
            "ALTER TABLE renditions RENAME CONSTRAINT renditions_rebuilt_pkey TO renditions_pkey",
        )
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager.create_table(table(true)).await?;
        db.execute_unprepared(
            "INSERT INTO renditions_rebuilt (tenant_id, source_hash, params, blob_hash, \
               mime_type, width, height, size_bytes, created_at) \
             SELECT DISTINCT m.tenant_id, r.source_hash, r.params, r.blob_hash, r.mime_type, \
               r.width, r.height, r.size_bytes, r.created_at \
             FROM renditions r JOIN media m ON m.blob_hash = r.source_hash",
        )
        .await?;
        swap(manager).await?;
        // A released source's renditions go for every tenant at once.
        manager
            .create_index(
                Index::create()
                    .name("renditions_source")
                    .table(Renditions::Table)
                    .col(Renditions::SourceHash)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager.create_table(table(false)).await?;
        // Every tenant's copy of a rendition has the same bytes; one stays.
        db.execute_unprepared(
            "INSERT INTO renditions_rebuilt (source_hash, params, blob_hash, mime_type, width, \
               height, size_bytes, created_at) \
             SELECT source_hash, params, MIN(blob_hash), MIN(mime_type), MIN(width), \
               MIN(height), MIN(size_bytes), MIN(created_at) \
             FROM renditions GROUP BY source_hash, params",
        )
        .await?;
        swap(manager).await
    }
}
