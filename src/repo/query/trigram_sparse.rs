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
//! [`Repo::trigram_page`] asks the index itself: it collects the ids and
//! times of up to [`SPARSE_MATCHES`] matches, sorts them here and fetches
//! the page by id. With more matches than that, matches are common enough
//! that the index walk finds a page quickly, and the caller takes it.

use sea_orm::{QueryFilter, QuerySelect, Select};

use super::{FolderScope, SPARSE_MATCHES, TextMode, created_after, matching};
use crate::{
    domain::{Media, MediaId, MediaQuery, PageCursor, TenantId},
    error::Result,
    repo::{Repo, entity::media},
};

/// Attempts before giving the page to the planner: each fails only when
/// a matched media is deleted between the collection and the fetch.
const ATTEMPTS: usize = 3;

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
        for _ in 0..ATTEMPTS {
            let mut hits: Vec<(i64, uuid::Uuid)> = trigram_hits(tenant, scope, query, cursor)
                .into_tuple()
                .all(&self.read)
                .await?;
            if hits.len() as i64 > SPARSE_MATCHES {
                return Ok(None);
            }
            hits.sort_unstable();
            if !query.ascending {
                hits.reverse();
            }
            hits.truncate(limit as usize);
            let ids: Vec<MediaId> = hits.into_iter().map(|(_, id)| MediaId(id)).collect();
            let page = self.get_media_many(tenant, &ids).await?;
            if page.len() == ids.len() {
                return Ok(Some(page));
            }
        }
        Ok(None)
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
