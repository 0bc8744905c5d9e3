//! Tenants, folders, content-addressed blobs, media and their tags.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Folders {
    Table,
    Id,
    TenantId,
    ParentId,
    Name,
    Path,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Blobs {
    Table,
    Hash,
    Size,
    Refcount,
    Md5,
    CreatedAt,
}

#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names)] // `media.media_type` is the column's name.
enum Media {
    Table,
    Id,
    TenantId,
    FolderId,
    BlobHash,
    MediaType,
    Filename,
    OriginalFilename,
    Title,
    MimeType,
    SizeBytes,
    Width,
    Height,
    DurationMs,
    Fps,
    VideoCodec,
    AudioCodec,
    Exif,
    Latitude,
    Longitude,
    Altitude,
    TakenAt,
    TakenYear,
    TakenMonth,
    Orientation,
    DpiX,
    DpiY,
    Tags,
    Author,
    Copyright,
    Metadata,
    Public,
    Ready,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum MediaTags {
    Table,
    TenantId,
    Tag,
    MediaId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(ColumnDef::new(Tenants::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Tenants::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Tenants::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Folders::Table)
                    .col(ColumnDef::new(Folders::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Folders::TenantId).uuid().not_null())
                    // NULL only for a tenant's root folder.
                    .col(ColumnDef::new(Folders::ParentId).uuid().null())
                    .col(ColumnDef::new(Folders::Name).string_len(255).not_null())
                    // Full path with a trailing slash ("/" for the root), for
                    // path look-ups and subtree queries by prefix.
                    .col(ColumnDef::new(Folders::Path).text().not_null())
                    .col(ColumnDef::new(Folders::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Folders::UpdatedAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Folders::Table, Folders::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Folders::Table, Folders::ParentId)
                            .to(Folders::Table, Folders::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("folders_sibling_name")
                    .table(Folders::Table)
                    .col(Folders::TenantId)
                    .col(Folders::ParentId)
                    .col(Folders::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("folders_path")
                    .table(Folders::Table)
                    .col(Folders::TenantId)
                    .col(Folders::Path)
                    .to_owned(),
            )
            .await?;

        // Blobs are shared across tenants: identical bytes are stored once.
        // `refcount` counts the media rows naming the blob; a blob at 0 is
        // garbage, removed together with its file under the row's lock.
        manager
            .create_table(
                Table::create()
                    .table(Blobs::Table)
                    .col(
                        ColumnDef::new(Blobs::Hash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Blobs::Size).big_integer().not_null())
                    .col(ColumnDef::new(Blobs::Refcount).big_integer().not_null())
                    // Filled after the upload is acknowledged (MD5 is slow).
                    .col(ColumnDef::new(Blobs::Md5).string_len(32).null())
                    .col(ColumnDef::new(Blobs::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("blobs_md5_pending")
                    .table(Blobs::Table)
                    .col(Blobs::Md5)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Media::Table)
                    .col(ColumnDef::new(Media::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Media::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Media::FolderId).uuid().not_null())
                    .col(ColumnDef::new(Media::BlobHash).string_len(64).not_null())
                    .col(ColumnDef::new(Media::MediaType).small_integer().not_null())
                    .col(ColumnDef::new(Media::Filename).string_len(255).not_null())
                    .col(ColumnDef::new(Media::OriginalFilename).text().not_null())
                    .col(ColumnDef::new(Media::Title).text().not_null())
                    .col(ColumnDef::new(Media::MimeType).string_len(255).not_null())
                    .col(ColumnDef::new(Media::SizeBytes).big_integer().not_null())
                    .col(ColumnDef::new(Media::Width).integer().null())
                    .col(ColumnDef::new(Media::Height).integer().null())
                    .col(ColumnDef::new(Media::DurationMs).big_integer().null())
                    .col(ColumnDef::new(Media::Fps).double().null())
                    .col(ColumnDef::new(Media::VideoCodec).string_len(64).null())
                    .col(ColumnDef::new(Media::AudioCodec).string_len(64).null())
                    .col(ColumnDef::new(Media::Exif).json_binary().null())
                    .col(ColumnDef::new(Media::Latitude).double().null())
                    .col(ColumnDef::new(Media::Longitude).double().null())
                    .col(ColumnDef::new(Media::Altitude).double().null())
                    .col(ColumnDef::new(Media::TakenAt).big_integer().null())
                    .col(ColumnDef::new(Media::TakenYear).integer().null())
                    .col(ColumnDef::new(Media::TakenMonth).integer().null())
                    .col(ColumnDef::new(Media::Orientation).integer().null())
                    .col(ColumnDef::new(Media::DpiX).double().null())
                    .col(ColumnDef::new(Media::DpiY).double().null())
                    // Tags as a JSON array for reading the media in one row;
                    // `media_tags` holds the same tags for filtering.
                    .col(ColumnDef::new(Media::Tags).json_binary().not_null())
                    .col(ColumnDef::new(Media::Author).text().null())
                    .col(ColumnDef::new(Media::Copyright).text().null())
                    .col(ColumnDef::new(Media::Metadata).json_binary().null())
                    .col(ColumnDef::new(Media::Public).boolean().not_null())
                    .col(ColumnDef::new(Media::Ready).boolean().not_null())
                    .col(ColumnDef::new(Media::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Media::UpdatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Media::CreatedBy).string_len(255).not_null())
                    .col(ColumnDef::new(Media::UpdatedBy).string_len(255).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Media::Table, Media::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Media::Table, Media::FolderId)
                            .to(Folders::Table, Folders::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Media::Table, Media::BlobHash)
                            .to(Blobs::Table, Blobs::Hash),
                    )
                    .to_owned(),
            )
            .await?;
        // Keyset pagination, newest first, over a tenant and over a folder.
        manager
            .create_index(
                Index::create()
                    .name("media_tenant_created")
                    .table(Media::Table)
                    .col(Media::TenantId)
                    .col(Media::CreatedAt)
                    .col(Media::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("media_folder_created")
                    .table(Media::Table)
                    .col(Media::TenantId)
                    .col(Media::FolderId)
                    .col(Media::CreatedAt)
                    .col(Media::Id)
                    .to_owned(),
            )
            .await?;
        // Which media use a blob (dedupe checks, reference audits).
        manager
            .create_index(
                Index::create()
                    .name("media_blob")
                    .table(Media::Table)
                    .col(Media::BlobHash)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MediaTags::Table)
                    .col(ColumnDef::new(MediaTags::TenantId).uuid().not_null())
                    .col(ColumnDef::new(MediaTags::Tag).string_len(100).not_null())
                    .col(ColumnDef::new(MediaTags::MediaId).uuid().not_null())
                    .primary_key(
                        Index::create()
                            .col(MediaTags::TenantId)
                            .col(MediaTags::Tag)
                            .col(MediaTags::MediaId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaTags::Table, MediaTags::MediaId)
                            .to(Media::Table, Media::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("media_tags_media")
                    .table(MediaTags::Table)
                    .col(MediaTags::MediaId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MediaTags::Table.into_iden(),
            Media::Table.into_iden(),
            Blobs::Table.into_iden(),
            Folders::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
