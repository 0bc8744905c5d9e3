//! Text queries in creation order on PostgreSQL.
//!
//! The trigram index answers "which media contain this text" but keeps no
//! order, so a page in creation order is either the newest of the matches,
//! sorted, or the first matches met walking the creation-time index. Left
//! to itself, the planner picks between the two from a guess at how many
//! media match, and its guess for trigrams is poor: for a word in 0.15% of
//! a million titles it guessed 1% and walked the index, reading 35,000
//! rows (40 ms) where sorting the 1,500 matches took 7.
//!
//! [`Repo::trigram_page`] asks the index itself, in one statement (one
//! snapshot): it collects the ids and times of up to [`SPARSE_MATCHES`]
//! matches, sorts those and reads the page's rows by id. With more matches
//! than that, matches are common enough that the index walk finds a page
//! quickly, and the caller takes it.

use sea_orm::{
    ConnectionTrait, FromQueryResult, QueryFilter, QuerySelect, QueryTrait, Select, Statement,
};

use super::{FolderScope, SPARSE_MATCHES, TextMode, created_after, matching};
use crate::{
    domain::{Media, MediaQuery, PageCursor, TenantId},
    error::Result,
    repo::{Repo, entity::media},
};

impl Repo {
    /// One page (`limit` rows) of a text query in creation order, or `None`
    /// when more than [`SPARSE_MATCHES`] media match.
    pub(super) async fn trigram_page(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        cursor: Option<&PageCursor>,
        limit: u64,
    ) -> Result<Option<Vec<Media>>> {
        let backend = self.read.get_database_backend();
        let hits = trigram_hits(tenant, scope, query, cursor).build(backend);
        let dir = if query.ascending { "ASC" } else { "DESC" };
        let sql = format!(
            "WITH hits AS MATERIALIZED ({}) \
             SELECT m.*, (SELECT COUNT(*) FROM hits) AS hit_count FROM media m \
             WHERE m.id IN (SELECT id FROM hits ORDER BY created_at {dir}, id {dir} LIMIT {limit}) \
             ORDER BY m.created_at {dir}, m.id {dir}",
            hits.sql
        );
        let rows = self
            .read
            .query_all(Statement::from_sql_and_values(
                backend,
                sql,
                hits.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await?;
        let matched: i64 = match rows.first() {
            Some(r) => r.try_get("", "hit_count")?,
            None => 0,
        };
        if matched > SPARSE_MATCHES {
            return Ok(None);
        }
        let page = rows
            .iter()
            .map(|r| media::Model::from_query_result(r, ""))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(self.with_md5(page).await?))
    }
}

/// Creation time and id of up to one more than [`SPARSE_MATCHES`] matches
/// after the cursor, in no order.
pub(super) fn trigram_hits(
    tenant: TenantId,
    scope: &FolderScope,
    query: &MediaQuery,
    cursor: Option<&PageCursor>,
) -> Select<media::Entity> {
    let mut q = matching(tenant, scope, &query.filter, TextMode::Trigram);
    if let Some(c) = cursor {
        q = q.filter(created_after(query.ascending, c));
    }
    q.select_only()
        .column(media::Column::CreatedAt)
        .column(media::Column::Id)
        .limit(SPARSE_MATCHES as u64 + 1)
}
