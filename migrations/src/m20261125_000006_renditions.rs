//! Cached renditions: one row per (source blob, request), naming the blob
//! that holds the rendition's bytes.
//!
//! Keyed by the source's content hash, not the media: identical uploads
//! share their renditions, and a rendition lives exactly as long as its
//! source's bytes (the rows go in the transaction that releases them).
//! Each row holds one reference on its rendition's blob, so garbage
//! collection and the scrub treat rendition bytes like any other.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Renditions {
    Table,
    SourceHash,
    Params,
    BlobHash,
    MimeType,
    Width,
    Height,
    SizeBytes,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Renditions::Table)
                    .col(ColumnDef::new(Renditions::SourceHash).string().not_null())
                    // `RenditionSpec::key()`, e.g. `256x0-contain-jpeg-q80`.
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
                    .primary_key(
                        Index::create()
                            .col(Renditions::SourceHash)
                            .col(Renditions::Params),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Renditions::Table).to_owned())
            .await
    }
}
