//! Small blobs inline: the bytes of a blob at or under the server's inline
//! size live in `inline_blobs`, keyed by the same BLAKE3 as its `blobs`
//! row, which keeps counting its references. A small upload then writes
//! rows in the group commit's transaction and no file: no inode, no
//! directory entry, no fsync of its own.
//!
//! `inline_quarantine` keeps the bytes of inline blobs a scrub found not
//! matching their name, for inspection, as `quarantine/` does for files.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InlineBlobs {
    Table,
    Hash,
    Data,
}

#[derive(DeriveIden)]
enum InlineQuarantine {
    Table,
    Hash,
    QuarantinedAt,
    Data,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InlineBlobs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(InlineBlobs::Hash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(InlineBlobs::Data).blob().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InlineQuarantine::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(InlineQuarantine::Hash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InlineQuarantine::QuarantinedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(InlineQuarantine::Data).blob().not_null())
                    .primary_key(
                        Index::create()
                            .col(InlineQuarantine::Hash)
                            .col(InlineQuarantine::QuarantinedAt),
                    )
                    .to_owned(),
            )
            .await
    }

    /// Drops the tables only while they are empty. Inline bytes cannot be
    /// moved to files from SQL, and dropping them would lose media, so
    /// with inline bytes present the tables stay: a binary of the older
    /// schema ignores them (and cannot read those media), and redoing this
    /// migration finds them again.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let mut held = 0;
        for table in ["inline_blobs", "inline_quarantine"] {
            held += db
                .query_one(Statement::from_string(
                    manager.get_database_backend(),
                    format!("SELECT COUNT(*) FROM {table}"),
                ))
                .await?
                .map(|r| r.try_get_by_index::<i64>(0))
                .transpose()?
                .unwrap_or(0);
        }
        if held > 0 {
            return Ok(());
        }
        manager
            .drop_table(Table::drop().table(InlineQuarantine::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(InlineBlobs::Table).to_owned())
            .await
    }
}
