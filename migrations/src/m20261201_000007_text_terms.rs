//! Text search in creation order on PostgreSQL: a term index.
//!
//! The trigram index on `search_text` answers "which media contain this
//! text" but keeps no order, so the newest matches of a word could only
//! be found by visiting every match's row (about 1,500 for a word in one
//! title of 700) and sorting them: 5 ms or more per page.
//!
//! This migration adds two tables that triggers keep in step with `media`:
//!
//! - `media_terms` holds one row per (term, media): the lower-cased words
//!   of the title, the filename and each tag, split at whitespace. Its key
//!   is `(tenant_id, term, created_at, media_id)`, so the media holding a
//!   term come out of the index already in creation order.
//! - `search_vocab` holds every term once, with a trigram index. A query
//!   that contains no whitespace lies inside one term wherever it matches,
//!   so the terms it matches are found in the vocabulary (where a word
//!   shared by 1,500 media is one row) and their media read from
//!   `media_terms`, without touching `media` until the page is fetched.
//!
//! Terms longer than [`CHUNK`] characters are stored as overlapping chunks
//! of that length, starting every [`STEP`] characters, so every substring
//! of up to [`STEP`] characters lies inside one chunk and no key outgrows a
//! B-tree page. Queries longer than that use the trigram index.
//!
//! Terms whose media are all gone stay in `search_vocab`: a vocabulary row
//! costs a few bytes, and removing it would need a count per term that
//! every upload of a common word would contend on.
//!
//! SQLite needs none of this: its FTS5 row ids already follow creation
//! order (migration 000003).

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest term stored whole, in characters.
pub const CHUNK: usize = 200;
/// Distance between the starts of a long term's chunks: the longest query
/// the term index can answer.
pub const STEP: usize = 100;

fn up_statements() -> Vec<String> {
    vec![
        // The terms of one media, each once. `[[:space:]]` is the database's
        // own notion of whitespace. The fields are joined by a space, so no
        // term spans two. (Splitting into an array, not with
        // `regexp_split_to_table` in a select list, keeps the planner's
        // estimate small: the first version's estimate of 100 million rows
        // had every call JIT-compiled, 76 ms a call.)
        format!(
            "CREATE FUNCTION media_search_terms(title text, filename text, tags jsonb) \
             RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ \
               SELECT COALESCE(array_agg(DISTINCT CASE WHEN length(w) <= {CHUNK} THEN w \
                                                  ELSE substr(w, s, {CHUNK}) END), '{{}}') \
                 FROM unnest(regexp_split_to_array(lower(title || ' ' || filename || ' ' || \
                        array_to_string(ARRAY(SELECT jsonb_array_elements_text(tags)), ' ')), \
                        '[[:space:]]+')) AS w, \
                      generate_series(1, GREATEST(length(w) - {last}, 1), {STEP}) AS s \
                WHERE w <> '' \
             $$",
            last = STEP - 1,
        ),
        "CREATE TABLE search_vocab (term text COLLATE \"C\" NOT NULL)".into(),
        "CREATE TABLE media_terms (\
           tenant_id uuid NOT NULL, \
           term text COLLATE \"C\" NOT NULL, \
           created_at bigint NOT NULL, \
           media_id uuid NOT NULL)"
            .into(),
        // Each media's terms are computed once: the vocabulary takes them
        // from the rows just added. New terms go into it in sorted order, so
        // two concurrent statements never wait on each other's terms in a
        // cycle.
        "CREATE FUNCTION media_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           WITH stored AS ( \
             INSERT INTO media_terms (tenant_id, term, created_at, media_id) \
               SELECT added.tenant_id, t, added.created_at, added.id \
                 FROM added, unnest(media_search_terms(added.title, added.filename, added.tags)) AS t \
               RETURNING term) \
           INSERT INTO search_vocab (term) \
             SELECT DISTINCT term FROM stored ORDER BY term ON CONFLICT DO NOTHING; \
           RETURN NULL; \
         END $$"
            .into(),
        "CREATE FUNCTION media_terms_remove() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           DELETE FROM media_terms p \
             USING removed, unnest(media_search_terms(removed.title, removed.filename, removed.tags)) AS t \
            WHERE p.tenant_id = removed.tenant_id AND p.term = t \
              AND p.created_at = removed.created_at AND p.media_id = removed.id; \
           RETURN NULL; \
         END $$"
            .into(),
        // An update moves the terms of a row whose text changed. This one
        // is a row trigger, so that its `WHEN` leaves every other update
        // (moves, flags, analysis) alone at no cost; a statement trigger
        // had to join the old and new rows to tell, and the planner joined
        // them pairwise (7 s for 1,000 moved media).
        "CREATE FUNCTION media_terms_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           DELETE FROM media_terms \
            WHERE tenant_id = OLD.tenant_id \
              AND term = ANY (media_search_terms(OLD.title, OLD.filename, OLD.tags)) \
              AND created_at = OLD.created_at AND media_id = OLD.id; \
           WITH stored AS ( \
             INSERT INTO media_terms (tenant_id, term, created_at, media_id) \
               SELECT NEW.tenant_id, t, NEW.created_at, NEW.id \
                 FROM unnest(media_search_terms(NEW.title, NEW.filename, NEW.tags)) AS t \
               RETURNING term) \
           INSERT INTO search_vocab (term) \
             SELECT term FROM stored ORDER BY term ON CONFLICT DO NOTHING; \
           RETURN NULL; \
         END $$"
            .into(),
        "CREATE TRIGGER media_terms_insert AFTER INSERT ON media \
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION media_terms_add()"
            .into(),
        "CREATE TRIGGER media_terms_delete AFTER DELETE ON media \
           REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION media_terms_remove()"
            .into(),
        "CREATE TRIGGER media_terms_update \
           AFTER UPDATE OF title, filename, tags, created_at, tenant_id ON media FOR EACH ROW \
           WHEN ((OLD.title, OLD.filename, OLD.tags, OLD.created_at, OLD.tenant_id) \
                 IS DISTINCT FROM (NEW.title, NEW.filename, NEW.tags, NEW.created_at, NEW.tenant_id)) \
           EXECUTE FUNCTION media_terms_change()"
            .into(),
        // The media already there; the triggers, created first, hold off
        // writers until this commits. Keys and indexes are built after the
        // rows are in, which is several times faster than row by row.
        "INSERT INTO media_terms (tenant_id, term, created_at, media_id) \
           SELECT tenant_id, t, created_at, id FROM media, unnest(media_search_terms(title, filename, tags)) AS t"
            .into(),
        "INSERT INTO search_vocab (term) SELECT DISTINCT term FROM media_terms".into(),
        "ALTER TABLE media_terms ADD PRIMARY KEY (tenant_id, term, created_at, media_id)".into(),
        "ALTER TABLE search_vocab ADD PRIMARY KEY (term)".into(),
        "CREATE INDEX search_vocab_trgm ON search_vocab USING gin (term gin_trgm_ops)".into(),
        "ANALYZE media_terms".into(),
        "ANALYZE search_vocab".into(),
    ]
}

const DOWN: &[&str] = &[
    "DROP TRIGGER media_terms_update ON media",
    "DROP TRIGGER media_terms_delete ON media",
    "DROP TRIGGER media_terms_insert ON media",
    "DROP FUNCTION media_terms_change()",
    "DROP FUNCTION media_terms_remove()",
    "DROP FUNCTION media_terms_add()",
    "DROP TABLE media_terms",
    "DROP TABLE search_vocab",
    "DROP FUNCTION media_search_terms(text, text, jsonb)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for sql in up_statements() {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for sql in DOWN {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
