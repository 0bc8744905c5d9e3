//! Media addressed by the client: a slot `(slot_resource, slot_key)` (seed
//! 003's `/medias/files/{resource}/{key}`) and a `code` (seed 001's unique
//! client code), each unique per tenant by a partial unique index, so two
//! replicas can never give one slot or code to two media.
//!
//! `replaced_at` marks a media an upload displaced from its slot, set in
//! the transaction that moved the slot: the server deletes it after the
//! commit, and, should it crash first, at its next start.

/// Statements that read the same on both engines.
const UP: &[&str] = &[
    "ALTER TABLE media ADD COLUMN slot_resource VARCHAR(200)",
    "ALTER TABLE media ADD COLUMN slot_key VARCHAR(200)",
    "ALTER TABLE media ADD COLUMN code VARCHAR(200)",
    "ALTER TABLE media ADD COLUMN replaced_at BIGINT",
    // One media per slot and per code; the slot index also answers
    // listings by resource and key prefix.
    "CREATE UNIQUE INDEX media_slot ON media (tenant_id, slot_resource, slot_key) \
     WHERE slot_resource IS NOT NULL",
    "CREATE UNIQUE INDEX media_code ON media (tenant_id, code) WHERE code IS NOT NULL",
    "CREATE INDEX media_replaced ON media (replaced_at) WHERE replaced_at IS NOT NULL",
];

const DOWN: &[&str] = &[
    "DROP INDEX media_replaced",
    "DROP INDEX media_code",
    "DROP INDEX media_slot",
    "ALTER TABLE media DROP COLUMN replaced_at",
    "ALTER TABLE media DROP COLUMN code",
    "ALTER TABLE media DROP COLUMN slot_key",
    "ALTER TABLE media DROP COLUMN slot_resource",
];

plain_sql_migration!();
