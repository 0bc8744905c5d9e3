//! Text queries in creation order on PostgreSQL.
//!
//! Neither text index keeps creation order across terms, so a page in
//! creation order is either the newest of the matches, sorted, or the first
//! matches met walking the creation-time index. Left to itself, the planner
//! picks between the two from a guess at how many media match, and its
//! guess for trigrams is poor: for a word in 0.15% of a million titles it
//! guessed 1% and walked the index, reading 35,000 rows (40 ms) where
//! sorting the 1,500 matches took 7.
//!
//! So the service asks the index itself, in one statement (one snapshot):
//! it collects the creation times and ids of up to [`SPARSE_MATCHES`]
//! matches after the cursor, sorts those and reads the page's rows by id.
//! With more matches than that, matches are common enough that the index
//! walk finds a page quickly, and the caller takes it.
//!
//! The matches come from one of two indexes:
//!
//! - the term index (migration 000007), for a query that fits inside one
//!   term: the vocabulary's trigram index finds the terms, and each term's
//!   media come from `media_terms` with their creation times, so no media
//!   row is read but the page's;
//! - otherwise the trigram index on `media.search_text`, which re-checks
//!   each candidate against its row.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Order, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select,
    sea_query::{
        Alias, CommonTableExpression, Expr, JoinType, Query, SelectStatement, SimpleExpr,
        WithClause, WithQuery,
    },
};

use super::{
    FolderScope, SPARSE_MATCHES, TRIGRAM, TextMode, contains_pattern, matching, sort_value,
};
use crate::{
    domain::{Media, MediaFilter, MediaQuery, PageCursor, TenantId},
    error::Result,
    repo::{Repo, entity::media},
};

/// Whether every media matching `text` holds it inside one term, so the
/// term index finds them all.
///
/// A term is a whitespace-free run of the title, the filename or a tag, so
/// a query without whitespace lies inside one wherever it matches. Only
/// letters, digits and ASCII punctuation count as surely not whitespace to
/// the database; `"`, `[`, `]`, `,` and `\` are left out too, since the
/// trigram path also matches them in the tags' JSON spelling, and the two
/// paths must agree. The trigram index needs three letters or digits in a
/// row to narrow the vocabulary, and long terms are stored in chunks that
/// hold every query of up to [`mediastore_migrations::TERM_QUERY_CHARS`].
fn fits_a_term(text: &str) -> bool {
    let allowed = |c: char| {
        c.is_alphanumeric()
            || (c.is_ascii_punctuation() && !matches!(c, '"' | '[' | ']' | ',' | '\\'))
    };
    let mut run = 0;
    let mut longest_run = 0;
    for c in text.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        longest_run = longest_run.max(run);
    }
    text.chars().count() <= mediastore_migrations::TERM_QUERY_CHARS
        && longest_run >= TRIGRAM
        && text.chars().all(allowed)
}

impl Repo {
    /// One page (`limit` rows) of a text query in creation order, or `None`
    /// when more than [`SPARSE_MATCHES`] media match.
    pub(super) async fn sparse_page(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        cursor: Option<&PageCursor>,
        limit: u64,
    ) -> Result<Option<Vec<Media>>> {
        let (page, filtered_hits) = statement(tenant, scope, query, cursor, limit);
        let backend = self.read.get_database_backend();
        let rows = self.read.query_all(backend.build(&page)).await?;
        let matched: i64 = match (rows.first(), filtered_hits) {
            (Some(r), _) => r.try_get("", "hit_count")?,
            // No row on the page, yet the other filters may have turned
            // down a great many matches.
            (None, Some(hits)) => {
                let count = Query::select()
                    .expr(Expr::cust("COUNT(*)"))
                    .from_subquery(hits, Alias::new("hits"))
                    .to_owned();
                match self.read.query_one(backend.build(&count)).await? {
                    Some(r) => r.try_get_by_index(0)?,
                    None => 0,
                }
            }
            (None, None) => 0,
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

    /// The database's plan for the first page of a sparse text query.
    pub(super) async fn explain_sparse_page(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        limit: u64,
    ) -> Result<Vec<String>> {
        let (page, _) = statement(tenant, scope, query, None, limit);
        let backend = self.read.get_database_backend();
        self.explain(backend.build(&page)).await
    }
}

/// The statement for one sparse page, and its hits alone when other
/// filters apply to them (to count them should the page be empty).
fn statement(
    tenant: TenantId,
    scope: &FolderScope,
    query: &MediaQuery,
    cursor: Option<&PageCursor>,
    limit: u64,
) -> (WithQuery, Option<SelectStatement>) {
    let (hits, rest) = hits(tenant, scope, query, cursor);
    let filtered_hits = rest.is_some().then(|| hits.clone());
    let page = page_of_hits(
        tenant,
        hits,
        rest.as_ref().map(|f| (scope, f)),
        query.ascending,
        limit,
    );
    (page, filtered_hits)
}

/// `created_at, media_id` of up to one more than [`SPARSE_MATCHES`]
/// matches after the cursor, in no order, and the filter still to apply
/// to them (`None` when they pass every condition of the query).
fn hits(
    tenant: TenantId,
    scope: &FolderScope,
    query: &MediaQuery,
    cursor: Option<&PageCursor>,
) -> (SelectStatement, Option<MediaFilter>) {
    let Some(text) = query.filter.text.as_deref().filter(|t| fits_a_term(t)) else {
        return (trigram_hits(tenant, scope, query, cursor), None);
    };
    let rest = MediaFilter {
        text: None,
        ..query.filter.clone()
    };
    let hits = term_hits(tenant, text, query.ascending, cursor);
    let all = matches!(scope, FolderScope::All) && rest == MediaFilter::default();
    (hits, (!all).then_some(rest))
}

/// Matches of every condition of `query`, by the trigram index.
fn trigram_hits(
    tenant: TenantId,
    scope: &FolderScope,
    query: &MediaQuery,
    cursor: Option<&PageCursor>,
) -> SelectStatement {
    let mut q = matching(tenant, scope, &query.filter, TextMode::Trigram);
    if let Some(c) = cursor {
        q = q.filter(super::created_after(query.ascending, c));
    }
    q.select_only()
        .column(media::Column::CreatedAt)
        .column_as(media::Column::Id, "media_id")
        .limit(SPARSE_MATCHES as u64 + 1)
        .into_query()
}

/// Media holding a term that contains `text`, by the term index:
///
/// ```sql
/// SELECT p.created_at, p.media_id
///   FROM (SELECT term FROM search_vocab WHERE term LIKE '%text%') AS v
///   JOIN LATERAL (SELECT created_at, media_id FROM media_terms
///                  WHERE tenant_id = $1 AND term = v.term
///                    AND (created_at, media_id) < ($2, $3) LIMIT 2001) AS p ON TRUE
///  LIMIT 2001
/// ```
///
/// The lateral join makes each term one range of the key, wherever the
/// planner's guess of how many terms match lands.
fn term_hits(
    tenant: TenantId,
    text: &str,
    ascending: bool,
    cursor: Option<&PageCursor>,
) -> SelectStatement {
    let col = |c: &str| Expr::col(Alias::new(c));
    let mut postings = Query::select()
        .columns([Alias::new("created_at"), Alias::new("media_id")])
        .from(Alias::new("media_terms"))
        .and_where(col("tenant_id").eq(tenant.0))
        .and_where(col("term").equals((Alias::new("v"), Alias::new("term"))))
        .limit(SPARSE_MATCHES as u64 + 1)
        .to_owned();
    if let Some(c) = cursor {
        // A row comparison, which the key's B-tree takes as a range.
        let key = Expr::tuple([col("created_at").into(), col("media_id").into()]);
        let at = Expr::tuple([
            Expr::val(sort_value(&c.value)).into(),
            Expr::val(c.id.0).into(),
        ]);
        postings.and_where(if ascending { key.gt(at) } else { key.lt(at) });
    }
    let vocabulary = Query::select()
        .column(Alias::new("term"))
        .from(Alias::new("search_vocab"))
        .and_where(col("term").like(contains_pattern(text, true)))
        .to_owned();
    Query::select()
        .column((Alias::new("p"), Alias::new("created_at")))
        .column((Alias::new("p"), Alias::new("media_id")))
        .from_subquery(vocabulary, Alias::new("v"))
        .join_lateral(
            JoinType::InnerJoin,
            postings,
            Alias::new("p"),
            Expr::cust("TRUE"),
        )
        .limit(SPARSE_MATCHES as u64 + 1)
        .to_owned()
}

/// The page's media rows, each with `hit_count`, the number of hits:
///
/// ```sql
/// WITH hits AS MATERIALIZED (<hits>)
/// SELECT media.*, (SELECT COUNT(*) FROM hits) AS hit_count FROM media
///  WHERE tenant_id = $1 AND id IN (<the page's hits>) AND <rest>
///  ORDER BY created_at DESC, id DESC LIMIT 50
/// ```
///
/// With no filter left, the page's hits are the newest `limit` (ties by
/// id), and only their rows are read; otherwise every hit's row is checked.
fn page_of_hits(
    tenant: TenantId,
    hits: SelectStatement,
    rest: Option<(&FolderScope, &MediaFilter)>,
    ascending: bool,
    limit: u64,
) -> WithQuery {
    let (order, dir) = if ascending {
        (Order::Asc, "ASC")
    } else {
        (Order::Desc, "DESC")
    };
    let (q, among): (Select<media::Entity>, String) = match rest {
        None => (
            media::Entity::find().filter(media::Column::TenantId.eq(tenant.0)),
            format!(
                "SELECT media_id FROM hits GROUP BY created_at, media_id \
                 ORDER BY created_at {dir}, media_id {dir} LIMIT {limit}"
            ),
        ),
        Some((scope, filter)) => (
            matching(tenant, scope, filter, TextMode::Like),
            "SELECT media_id FROM hits".into(),
        ),
    };
    let id_in: SimpleExpr = Expr::cust(format!("\"media\".\"id\" IN ({among})"));
    let page = q
        .filter(id_in)
        .column_as(Expr::cust("(SELECT COUNT(*) FROM hits)"), "hit_count")
        .order_by(media::Column::CreatedAt, order.clone())
        .order_by(media::Column::Id, order)
        .limit(limit)
        .into_query();
    let cte = CommonTableExpression::new()
        .query(hits)
        .table_name(Alias::new("hits"))
        .materialized(true)
        .to_owned();
    page.with(WithClause::new().cte(cte).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_inside_one_term_goes_to_the_term_index() {
        for text in ["dawn", "IMG_0042.jpg", "été", "abc-d_e%f.g", "x1y"] {
            assert!(fits_a_term(text), "{text}");
        }
        let longest = "a".repeat(mediastore_migrations::TERM_QUERY_CHARS);
        assert!(fits_a_term(&longest));
        let too_long = format!("{longest}a");
        for text in [
            "two words",
            "tab\there",
            "no\u{a0}break",
            "\"quoted\"",
            "[tag]",
            "a,b,c",
            "back\\slash",
            "a.b.c",
            "ab-cd",
            "emoji🙂abc",
            too_long.as_str(),
        ] {
            assert!(!fits_a_term(text), "{text}");
        }
    }
}
