//! Text queries in creation order on SQLite, answered by walking the FTS5
//! index in row-id order.
//!
//! The migration gives each media's text row an id in
//! `[created_at * 1024, created_at * 1024 + 1023]` (see
//! `m20261125_000003_text_search`), so row-id order is creation order to
//! the microsecond. FTS5 walks a match's row ids in either direction and
//! stops when the page is full: a page costs about the same whether 100 or
//! 100,000 media match, where sorting every match cost time in proportion
//! to their number.
//!
//! Row-id order only breaks ties within one microsecond by insertion, while
//! a listing breaks them by id; and some media (negative or far-future
//! times, or more than 1024 in one microsecond) have negative row ids
//! outside that order. [`Repo::fts_walk`] fetches one row beyond the page,
//! re-reads the boundary microsecond when the page ends inside it, adds the
//! negative-id matches, and sorts exactly; a page is what sorting every
//! match would have given.

use sea_orm::{
    JoinType, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Alias, Expr},
};

use super::{FolderScope, created_after, fts_phrase, matching};
use crate::{
    domain::{MediaFilter, MediaQuery, PageCursor, SortValue, TenantId},
    error::Result,
    repo::{Repo, entity::media},
};

/// Row ids per microsecond.
const SLOTS: i64 = 1024;
/// The last creation time whose row ids fit a signed 64-bit integer.
const MAX_TIME: i64 = (1 << 53) - 1;

/// An inclusive range of text row ids.
type Rowids = (i64, i64);

/// The row ids of media created in `[from, to]` (µs, inclusive), if any
/// fall in the ordered range.
fn rowids_of(from: i64, to: i64) -> Option<Rowids> {
    let (from, to) = (from.max(0), to.min(MAX_TIME));
    (from <= to).then(|| (from * SLOTS, to * SLOTS + (SLOTS - 1)))
}

/// Row ids of media outside creation order.
const UNORDERED: Rowids = (i64::MIN, -1);

/// One walk: the query's conditions, a text match and row-id range.
struct Walk<'a> {
    tenant: TenantId,
    scope: &'a FolderScope,
    rest: MediaFilter,
    phrase: String,
    cursor: Option<&'a PageCursor>,
    ascending: bool,
}

impl Walk<'_> {
    /// Matching media with text row ids in `rowids`, after the cursor.
    fn select(&self, rowids: Rowids) -> sea_orm::Select<media::Entity> {
        let text = Alias::new("media_text");
        let mut q = matching(self.tenant, self.scope, &self.rest, super::TextMode::Like);
        if let Some(c) = self.cursor {
            q = q.filter(created_after(self.ascending, c));
        }
        QueryTrait::query(&mut q)
            .join(
                JoinType::InnerJoin,
                text.clone(),
                Expr::col((text.clone(), Alias::new("media_id")))
                    .equals((media::Entity, media::Column::Id)),
            )
            .and_where(Expr::cust_with_values(
                "media_text MATCH ?",
                [self.phrase.clone()],
            ))
            .and_where(Expr::col((text, Alias::new("rowid"))).between(rowids.0, rowids.1));
        q
    }

    /// The page's direction.
    fn order(&self) -> Order {
        if self.ascending {
            Order::Asc
        } else {
            Order::Desc
        }
    }

    /// The first `n` matches in row-id order within `rowids`.
    fn ordered(&self, rowids: Rowids, n: u64) -> sea_orm::Select<media::Entity> {
        self.select(rowids)
            .order_by(
                Expr::col((Alias::new("media_text"), Alias::new("rowid"))),
                self.order(),
            )
            .limit(n)
    }

    /// The first `n` matches among media outside creation order, sorted
    /// exactly.
    fn unordered(&self, n: u64) -> sea_orm::Select<media::Entity> {
        self.select(UNORDERED)
            .order_by(media::Column::CreatedAt, self.order())
            .order_by(media::Column::Id, self.order())
            .limit(n)
    }

    /// The range the walk covers: from the cursor's microsecond on.
    fn range(&self) -> Option<Rowids> {
        match (self.ascending, self.cursor.map(|c| &c.value)) {
            (true, Some(SortValue::Int(t))) => rowids_of(*t, MAX_TIME),
            (false, Some(SortValue::Int(t))) => rowids_of(0, *t),
            // No cursor, or a text one (which page tokens, bound to their
            // query, never carry here): the whole range; the cursor's own
            // condition still applies.
            _ => rowids_of(0, MAX_TIME),
        }
    }

    /// Whether `created_at` comes strictly before `t` in the walk's order.
    fn before(&self, created_at: i64, t: i64) -> bool {
        if self.ascending {
            created_at < t
        } else {
            created_at > t
        }
    }
}

impl Repo {
    /// One page (`limit` rows) of a text query in creation order; see the
    /// module docs.
    pub(super) async fn fts_walk(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        cursor: Option<&PageCursor>,
        limit: u64,
    ) -> Result<Vec<media::Model>> {
        let walk = Walk::new(tenant, scope, query, cursor);
        let mut rows = Vec::new();
        if let Some(range) = walk.range() {
            rows = walk.ordered(range, limit + 1).all(&self.read).await?;
            // When the walk did not run out, its last row's microsecond `t`
            // bounds the page: every ordered match before `t` has been read,
            // and they and the row at `t` already make more than a page,
            // so nothing unread sorts into it unless the page ends inside
            // `t`, whose rows are then all read (their order in the index
            // is insertion, not id).
            if rows.len() as u64 > limit {
                let t = rows[rows.len() - 1].created_at;
                let settled = rows.iter().filter(|r| walk.before(r.created_at, t)).count();
                if (settled as u64) < limit
                    && let Some(tie) = rowids_of(t, t)
                {
                    rows.extend(walk.select(tie).all(&self.read).await?);
                }
            }
        }
        rows.extend(walk.unordered(limit).all(&self.read).await?);
        rows.sort_by(|a, b| {
            let o = (a.created_at, a.id).cmp(&(b.created_at, b.id));
            if walk.ascending { o } else { o.reverse() }
        });
        rows.dedup_by_key(|r| r.id);
        rows.truncate(limit as usize);
        Ok(rows)
    }

    /// The plan of a text walk's main statement.
    pub(super) fn fts_walk_statement(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        limit: u64,
    ) -> sea_orm::Select<media::Entity> {
        let walk = Walk::new(tenant, scope, query, None);
        walk.ordered(rowids_of(0, MAX_TIME).unwrap_or(UNORDERED), limit + 1)
    }
}

impl<'a> Walk<'a> {
    fn new(
        tenant: TenantId,
        scope: &'a FolderScope,
        query: &MediaQuery,
        cursor: Option<&'a PageCursor>,
    ) -> Self {
        let mut rest = query.filter.clone();
        let text = rest.text.take().unwrap_or_default();
        Walk {
            tenant,
            scope,
            rest,
            phrase: fts_phrase(&text),
            cursor,
            ascending: query.ascending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowid_ranges_stay_in_order_and_in_range() {
        assert_eq!(rowids_of(0, 0), Some((0, 1023)));
        assert_eq!(rowids_of(2, 3), Some((2048, 4095)));
        assert_eq!(rowids_of(-5, -1), None);
        assert_eq!(rowids_of(-5, 0), Some((0, 1023)));
        assert_eq!(
            rowids_of(MAX_TIME, i64::MAX),
            Some((MAX_TIME * 1024, i64::MAX))
        );
        assert_eq!(rowids_of(i64::MAX, i64::MAX), None);
    }
}
