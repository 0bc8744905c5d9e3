//! Inline blobs: the bytes of small blobs, in `inline_blobs` beside their
//! `blobs` row (see `blob::inline`). Written and removed only inside the
//! transaction that claims or releases that row, so the bytes exist
//! exactly while the row counts references to them.

use sea_orm::{ConnectionTrait, Statement};

use super::{INSERT_CHUNK, Repo, WriteTx};
use crate::{
    domain::{ContentHash, now_micros},
    error::Result,
};

/// Bytes per statement of inline rows: a batch of 256 uploads of 64 KiB
/// would otherwise bind 16 MiB at once.
const INLINE_STATEMENT_BYTES: usize = 4 * 1024 * 1024;

impl Repo {
    /// The bytes of blob `hash` if they are stored inline.
    pub async fn inline_blob(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>> {
        let backend = self.read.get_database_backend();
        let row = self
            .read
            .query_one(Statement::from_sql_and_values(
                backend,
                "SELECT data FROM inline_blobs WHERE hash = $1",
                [hash.to_hex().into()],
            ))
            .await?;
        Ok(row.map(|r| r.try_get_by_index::<Vec<u8>>(0)).transpose()?)
    }
}

impl Repo {
    /// How many blobs are stored inline (for operators and tests).
    pub async fn inline_blob_count(&self) -> Result<u64> {
        let backend = self.read.get_database_backend();
        let row = self
            .read
            .query_one(Statement::from_string(
                backend,
                "SELECT COUNT(*) FROM inline_blobs",
            ))
            .await?;
        let n: i64 = match row {
            Some(r) => r.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl WriteTx {
    /// Stores blobs' bytes inline, each hash once. The caller has claimed
    /// their `blobs` rows in this transaction; bytes already under such a
    /// name (a row left at zero references, or a copy another tenant
    /// stored) are replaced by the same bytes, or by the right ones where a
    /// scrub had quarantined them.
    pub async fn put_inline(&mut self, blobs: Vec<(ContentHash, Vec<u8>)>) -> Result<()> {
        let backend = self.tx.get_database_backend();
        let mut rest = blobs.into_iter().peekable();
        while rest.peek().is_some() {
            let mut sql = String::from("INSERT INTO inline_blobs (hash, data) VALUES ");
            let mut values: Vec<sea_orm::Value> = Vec::new();
            let mut bytes = 0;
            while let Some((hash, data)) = rest.next_if(|(_, d)| {
                values.is_empty()
                    || (bytes + d.len() <= INLINE_STATEMENT_BYTES
                        && values.len() < INSERT_CHUNK * 2)
            }) {
                let n = values.len();
                if n > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${})", n + 1, n + 2));
                bytes += data.len();
                values.push(hash.to_hex().into());
                values.push(data.into());
            }
            sql.push_str(" ON CONFLICT (hash) DO UPDATE SET data = excluded.data");
            self.tx
                .execute(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }

    /// Removes the inline bytes of blobs whose rows went; returns those
    /// that were inline (the others' bytes are in the blob store).
    pub async fn remove_inline(&mut self, hashes: &[ContentHash]) -> Result<Vec<ContentHash>> {
        self.hashes_returned(hashes, |list| {
            format!("DELETE FROM inline_blobs WHERE hash IN ({list}) RETURNING hash")
        })
        .await
    }

    /// Moves the inline bytes of blob `hash` to `inline_quarantine`, for
    /// inspection; reads of it then find nothing. Returns whether there
    /// were any.
    pub async fn quarantine_inline(&mut self, hash: &ContentHash) -> Result<bool> {
        let backend = self.tx.get_database_backend();
        let moved = self
            .tx
            .execute(Statement::from_sql_and_values(
                backend,
                "INSERT INTO inline_quarantine (hash, quarantined_at, data) \
                 SELECT hash, $2, data FROM inline_blobs WHERE hash = $1",
                [hash.to_hex().into(), now_micros().into()],
            ))
            .await?
            .rows_affected();
        self.tx
            .execute(Statement::from_sql_and_values(
                backend,
                "DELETE FROM inline_blobs WHERE hash = $1",
                [hash.to_hex().into()],
            ))
            .await?;
        Ok(moved > 0)
    }
}
