//! The index of which media use a blob gains the tenant: `(blob_hash,
//! tenant_id)` instead of `(blob_hash)`.
//!
//! A delete now asks whether *its tenant* still holds the bytes (the
//! answer it gives speaks only of the caller's tenant), and a tenant's
//! renditions go once it no longer does. With the tenant in the index,
//! both look-ups descend straight to the tenant's rows of a blob, so their
//! cost does not grow with how many media of other tenants share it (a
//! timing that would tell a tenant what others store). Queries by blob
//! alone (garbage collection, which tenants hold a blob) use its prefix.

/// Statements that read the same on both engines.
const UP: &[&str] = &[
    "CREATE INDEX media_blob_tenant ON media (blob_hash, tenant_id)",
    "DROP INDEX media_blob",
];

const DOWN: &[&str] = &[
    "CREATE INDEX media_blob ON media (blob_hash)",
    "DROP INDEX media_blob_tenant",
];

plain_sql_migration!();
