//! The media library: folder depth, counters and deletion state; tags
//! ordered by time; sort indexes; bindings.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MediaBindings {
    Table,
    TenantId,
    MediaId,
    Module,
    ObjectId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Media {
    Table,
    Id,
}

/// Statements that read the same on both engines.
const COMMON: &[&str] = &[
    // Levels below the root, so tree queries can stop at a depth.
    "ALTER TABLE folders ADD COLUMN depth INTEGER NOT NULL DEFAULT 0",
    // Direct media count and size, kept by every write that adds, moves or
    // removes media: a folder tree of 10,000 folders answers without
    // counting a million rows.
    "ALTER TABLE folders ADD COLUMN media_count BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE folders ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0",
    // Set on a whole subtree when its deletion starts: the folders vanish
    // at once while their media go in batches (resumed after a restart).
    "ALTER TABLE folders ADD COLUMN deleting BOOLEAN NOT NULL DEFAULT FALSE",
    "UPDATE folders SET depth = LENGTH(path) - LENGTH(REPLACE(path, '/', '')) - 1 \
     WHERE parent_id IS NOT NULL",
    "UPDATE folders SET \
       media_count = (SELECT COUNT(*) FROM media WHERE media.folder_id = folders.id), \
       size_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM media \
                     WHERE media.folder_id = folders.id)",
    // A tag filter walks this index in the listing's default order (newest
    // first) and stops after one page, however common the tag.
    "ALTER TABLE media_tags ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0",
    "UPDATE media_tags SET created_at = \
       (SELECT created_at FROM media WHERE media.id = media_tags.media_id)",
    "CREATE INDEX media_tags_time ON media_tags (tenant_id, tag, created_at, media_id)",
    // Folder ids are unique across tenants, so the folder listing's index
    // can lead with the folder: then it also serves the foreign-key checks
    // PostgreSQL runs when folders are deleted (one look-up per folder,
    // instead of a scan of every media).
    "DROP INDEX media_folder_created",
    "CREATE INDEX media_folder_created ON media (folder_id, created_at, id)",
    // The same for the parent key, checked when subfolders go.
    "CREATE INDEX folders_parent ON folders (parent_id)",
    // One index per sort order of the tenant-wide listing.
    "CREATE INDEX media_tenant_updated ON media (tenant_id, updated_at, id)",
    "CREATE INDEX media_tenant_taken ON media (tenant_id, (COALESCE(taken_at, created_at)), id)",
    "CREATE INDEX media_tenant_size ON media (tenant_id, size_bytes, id)",
    "CREATE INDEX media_tenant_title ON media (tenant_id, title, id)",
    "CREATE INDEX media_tenant_filename ON media (tenant_id, filename, id)",
];

/// Text search over title, filename and tags on PostgreSQL: a trigram index
/// on one lower-cased expression (fields joined by U+0001, which no field
/// may contain, so a match never spans two fields). `LIKE '%word%'` on
/// that same expression uses it.
pub(crate) const POSTGRES_TEXT: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX media_text_trgm ON media USING gin \
     ((LOWER(title || CHR(1) || filename || CHR(1) || tags::text)) gin_trgm_ops)",
];

/// Text search on SQLite: an FTS5 table with the trigram tokenizer (so any
/// substring of 3 or more characters matches, ignoring case), kept by
/// triggers. FTS5 keys its rows by its own integer ids, which VACUUM keeps;
/// `media_text_key` maps each media to its row for updates and deletes.
pub(crate) const SQLITE_TEXT: &[&str] = &[
    "CREATE VIRTUAL TABLE media_text USING fts5(\
       media_id UNINDEXED, title, filename, tags, tokenize = 'trigram')",
    "CREATE TABLE media_text_key (media_id BLOB PRIMARY KEY, text_rowid INTEGER NOT NULL)",
    "CREATE TRIGGER media_text_insert AFTER INSERT ON media BEGIN \
       INSERT INTO media_text (media_id, title, filename, tags) \
         VALUES (new.id, new.title, new.filename, new.tags); \
       INSERT INTO media_text_key (media_id, text_rowid) VALUES (new.id, last_insert_rowid()); \
     END",
    "CREATE TRIGGER media_text_delete AFTER DELETE ON media BEGIN \
       DELETE FROM media_text WHERE rowid = \
         (SELECT text_rowid FROM media_text_key WHERE media_id = old.id); \
       DELETE FROM media_text_key WHERE media_id = old.id; \
     END",
    "CREATE TRIGGER media_text_update AFTER UPDATE OF title, filename, tags ON media BEGIN \
       UPDATE media_text SET title = new.title, filename = new.filename, tags = new.tags \
         WHERE rowid = (SELECT text_rowid FROM media_text_key WHERE media_id = new.id); \
     END",
    "INSERT INTO media_text (media_id, title, filename, tags) \
       SELECT id, title, filename, tags FROM media",
    "INSERT INTO media_text_key (media_id, text_rowid) SELECT media_id, rowid FROM media_text",
];

/// Undoes [`SQLITE_TEXT`].
pub(crate) const SQLITE_TEXT_DROP: &[&str] = &[
    "DROP TRIGGER media_text_update",
    "DROP TRIGGER media_text_delete",
    "DROP TRIGGER media_text_insert",
    "DROP TABLE media_text_key",
    "DROP TABLE media_text",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Subtree queries select paths by byte range ("/a/" up to
            // "/a0"); only the C collation orders text by bytes.
            db.execute_unprepared(r#"ALTER TABLE folders ALTER COLUMN path TYPE TEXT COLLATE "C""#)
                .await?;
        }
        for sql in COMMON {
            db.execute_unprepared(sql).await?;
        }
        let text: &[&str] = if manager.get_database_backend() == DatabaseBackend::Postgres {
            POSTGRES_TEXT
        } else {
            SQLITE_TEXT
        };
        for sql in text {
            db.execute_unprepared(sql).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(MediaBindings::Table)
                    .col(ColumnDef::new(MediaBindings::TenantId).uuid().not_null())
                    .col(ColumnDef::new(MediaBindings::MediaId).uuid().not_null())
                    .col(
                        ColumnDef::new(MediaBindings::Module)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MediaBindings::ObjectId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MediaBindings::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(MediaBindings::TenantId)
                            .col(MediaBindings::MediaId)
                            .col(MediaBindings::Module)
                            .col(MediaBindings::ObjectId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaBindings::Table, MediaBindings::MediaId)
                            .to(Media::Table, Media::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("media_bindings_object")
                    .table(MediaBindings::Table)
                    .col(MediaBindings::TenantId)
                    .col(MediaBindings::Module)
                    .col(MediaBindings::ObjectId)
                    .col(MediaBindings::MediaId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MediaBindings::Table).to_owned())
            .await?;
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP INDEX media_text_trgm").await?;
        } else {
            for sql in SQLITE_TEXT_DROP {
                db.execute_unprepared(sql).await?;
            }
        }
        for index in [
            "media_tenant_filename",
            "media_tenant_title",
            "media_tenant_size",
            "media_tenant_taken",
            "media_tenant_updated",
            "media_tags_time",
            "folders_parent",
            "media_folder_created",
        ] {
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        db.execute_unprepared(
            "CREATE INDEX media_folder_created ON media (tenant_id, folder_id, created_at, id)",
        )
        .await?;
        for (table, column) in [
            ("media_tags", "created_at"),
            ("folders", "deleting"),
            ("folders", "size_bytes"),
            ("folders", "media_count"),
            ("folders", "depth"),
        ] {
            db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}
