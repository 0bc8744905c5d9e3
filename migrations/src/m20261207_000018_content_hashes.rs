//! Blob names may differ from the content's BLAKE3: `content_hash` on
//! `media`, `renditions` and `blobs`.
//!
//! Under `--dedupe-scope tenant` each tenant stores its bytes under a name
//! of its own (derived from the tenant and the BLAKE3), so that no two
//! tenants share a blob. The API still reports the content's BLAKE3 and the
//! scrub still checks bytes against it, so the rows keep it. The column is
//! NULL where the name is the BLAKE3 itself (every row written before, and
//! every row under the default global scope), which costs nothing and
//! needs no backfill.

/// Statements that read the same on both engines.
const UP: &[&str] = &[
    "ALTER TABLE media ADD COLUMN content_hash TEXT",
    "ALTER TABLE renditions ADD COLUMN content_hash TEXT",
    "ALTER TABLE blobs ADD COLUMN content_hash TEXT",
];

const DOWN: &[&str] = &[
    "ALTER TABLE blobs DROP COLUMN content_hash",
    "ALTER TABLE renditions DROP COLUMN content_hash",
    "ALTER TABLE media DROP COLUMN content_hash",
];

plain_sql_migration!();
