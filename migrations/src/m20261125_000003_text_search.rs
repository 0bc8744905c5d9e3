//! Faster text search.
//!
//! On SQLite, in creation order: the FTS5 table's row ids now
//! encode each media's creation time, so a text query for the newest (or
//! oldest) matches walks the index in row-id order and stops after one
//! page, instead of collecting and sorting every match.
//!
//! A media created at `t` µs gets a row id in `[t * 1024, t * 1024 + 1023]`,
//! the next free one in that range. Media whose time is negative, too large
//! (after year 2255), or whose microsecond already holds 1024 media get a
//! negative row id instead; queries read those separately, so they are
//! slower to find but never missed.
//!
//! On PostgreSQL the searched text becomes a stored generated column with
//! the trigram index on it, in place of the index on the expression: a
//! search re-checks every candidate row against the text, and reading a
//! stored value costs less than lower-casing and joining three fields
//! each time (5.4 ms against 6.8 for a word in 1,500 of a million media).

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

use crate::m20261125_000002_library::{POSTGRES_TEXT, SQLITE_TEXT, SQLITE_TEXT_DROP as DROP_TEXT};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE media ADD COLUMN IF NOT EXISTS search_text TEXT GENERATED ALWAYS AS \
     (LOWER(title || CHR(1) || filename || CHR(1) || tags::text)) STORED",
    "CREATE INDEX IF NOT EXISTS media_search_trgm ON media USING gin (search_text gin_trgm_ops)",
    "DROP INDEX media_text_trgm",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX media_search_trgm",
    "ALTER TABLE media DROP COLUMN search_text",
];

/// `t * 1024 + 1023` fits a signed 64-bit integer for every `t` up to
/// this (2^53 - 1).
const MAX_TIME: &str = "9007199254740991";

fn create_text() -> Vec<String> {
    // The row id for `new`: the next free one in its microsecond's range,
    // else the next negative one.
    let rowid = format!(
        "COALESCE(\
           CASE WHEN new.created_at BETWEEN 0 AND {MAX_TIME} THEN \
             (SELECT CASE WHEN MAX(rowid) IS NULL THEN new.created_at * 1024 \
                          WHEN MAX(rowid) < new.created_at * 1024 + 1023 THEN MAX(rowid) + 1 END \
                FROM media_text \
               WHERE rowid BETWEEN new.created_at * 1024 AND new.created_at * 1024 + 1023) \
           END, \
           COALESCE((SELECT MIN(rowid) FROM media_text WHERE rowid < 0), 0) - 1)"
    );
    vec![
        "CREATE VIRTUAL TABLE media_text USING fts5(\
           media_id UNINDEXED, title, filename, tags, tokenize = 'trigram')"
            .into(),
        "CREATE TABLE media_text_key (media_id BLOB PRIMARY KEY, text_rowid INTEGER NOT NULL)"
            .into(),
        // The key row first, so the text row can take its id from it.
        format!(
            "CREATE TRIGGER media_text_insert AFTER INSERT ON media BEGIN \
               INSERT INTO media_text_key (media_id, text_rowid) VALUES (new.id, {rowid}); \
               INSERT INTO media_text (rowid, media_id, title, filename, tags) \
                 VALUES ((SELECT text_rowid FROM media_text_key WHERE media_id = new.id), \
                         new.id, new.title, new.filename, new.tags); \
             END"
        ),
        "CREATE TRIGGER media_text_delete AFTER DELETE ON media BEGIN \
           DELETE FROM media_text WHERE rowid = \
             (SELECT text_rowid FROM media_text_key WHERE media_id = old.id); \
           DELETE FROM media_text_key WHERE media_id = old.id; \
         END"
        .into(),
        "CREATE TRIGGER media_text_update AFTER UPDATE OF title, filename, tags ON media BEGIN \
           UPDATE media_text SET title = new.title, filename = new.filename, tags = new.tags \
             WHERE rowid = (SELECT text_rowid FROM media_text_key WHERE media_id = new.id); \
         END"
        .into(),
        // Existing media: the n-th of a microsecond gets slot n.
        format!(
            "INSERT INTO media_text_key (media_id, text_rowid) \
               SELECT id, created_at * 1024 + slot FROM \
                 (SELECT id, created_at, \
                         ROW_NUMBER() OVER (PARTITION BY created_at ORDER BY id) - 1 AS slot \
                    FROM media) \
               WHERE created_at BETWEEN 0 AND {MAX_TIME} AND slot < 1024"
        ),
        "INSERT INTO media_text_key (media_id, text_rowid) \
           SELECT id, -ROW_NUMBER() OVER (ORDER BY created_at, id) FROM media \
            WHERE id NOT IN (SELECT media_id FROM media_text_key)"
            .into(),
        "INSERT INTO media_text (rowid, media_id, title, filename, tags) \
           SELECT k.text_rowid, m.id, m.title, m.filename, m.tags \
             FROM media m JOIN media_text_key k ON k.media_id = m.id \
            ORDER BY k.text_rowid"
            .into(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            for sql in POSTGRES_UP {
                db.execute_unprepared(sql).await?;
            }
            return Ok(());
        }
        for sql in DROP_TEXT {
            db.execute_unprepared(sql).await?;
        }
        for sql in create_text() {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let steps: Vec<&str> = if manager.get_database_backend() == DatabaseBackend::Postgres {
            POSTGRES_DOWN.iter().chain(POSTGRES_TEXT).copied().collect()
        } else {
            DROP_TEXT.iter().chain(SQLITE_TEXT).copied().collect()
        };
        for sql in steps {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
