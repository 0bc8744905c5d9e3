//! The one media query engine: folder scope, typed filters, sort orders and
//! keyset pages, for `ListMedia` and every other listing.
//!
//! Every query starts with `tenant_id` and, in the default order, walks an
//! index in order and stops after one page; a page never uses OFFSET.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, JoinType, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Select,
    Statement,
    sea_query::{Alias, Expr, Func, LikeExpr, Query, SimpleExpr},
};

use super::{
    Repo,
    entity::{folder, media, media_tag},
    folders::in_subtree,
};
use crate::{
    domain::{
        FolderId, FolderPath, Media, MediaFilter, MediaQuery, PageCursor, SortKey, SortValue,
        TenantId, TimeRange,
    },
    error::Result,
};

mod fts_walk;
mod sparse;

/// Which folders a query covers, resolved from `MediaQuery::folder`.
#[derive(Debug, Clone)]
pub enum FolderScope {
    /// Every media of the tenant.
    All,
    /// One folder's direct media.
    Folder(FolderId),
    /// A folder's media and its subfolders', by path range.
    Subtree(FolderPath),
}

impl Repo {
    /// One page of media matching `query`, after `cursor`.
    pub async fn list_media(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        cursor: Option<&PageCursor>,
        limit: u64,
    ) -> Result<Vec<Media>> {
        let text = self.text_mode(scope, query).await?;
        if text == TextMode::Trigram
            && walkable(query)
            && let Some(page) = self
                .sparse_page(tenant, scope, query, cursor, limit)
                .await?
        {
            return Ok(page);
        }
        let rows = if text == TextMode::FtsWalk {
            self.fts_walk(tenant, scope, query, cursor, limit).await?
        } else {
            page(tenant, scope, query, text, cursor, limit)
                .all(&self.read)
                .await?
        };
        self.with_md5(rows).await
    }

    /// The database's plan for a page of `query` (for the benchmark and
    /// for anyone checking that a listing uses an index).
    pub async fn explain_list_media(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
        limit: u64,
    ) -> Result<Vec<String>> {
        let backend = self.read.get_database_backend();
        let text = self.text_mode(scope, query).await?;
        if text == TextMode::Trigram && walkable(query) {
            // Unless the text is common (then it is the plan below).
            return self.explain_sparse_page(tenant, scope, query, limit).await;
        }
        let q = if text == TextMode::FtsWalk {
            self.fts_walk_statement(tenant, scope, query, limit)
        } else {
            page(tenant, scope, query, text, None, limit)
        };
        self.explain(q.build(backend)).await
    }

    /// The database's plan for a statement, one line per step.
    pub async fn explain(&self, stmt: Statement) -> Result<Vec<String>> {
        let backend = self.read.get_database_backend();
        let (prefix, column) = match backend {
            DatabaseBackend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            _ => ("EXPLAIN ", "QUERY PLAN"),
        };
        let stmt = Statement {
            sql: format!("{prefix}{}", stmt.sql),
            ..stmt
        };
        self.read
            .query_all(stmt)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String>("", column)?))
            .collect()
    }

    /// How many media match `query` (all pages).
    pub async fn count_media(
        &self,
        tenant: TenantId,
        scope: &FolderScope,
        query: &MediaQuery,
    ) -> Result<u64> {
        let text = self.text_mode(scope, query).await?;
        Ok(matching(tenant, scope, &query.filter, text)
            .count(&self.read)
            .await?)
    }
}

/// How a text query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextMode {
    /// `LIKE` over the columns: queries under 3 characters, which no
    /// trigram index can serve.
    Like,
    /// PostgreSQL: `LIKE` on the generated column `search_text` (title,
    /// filename and tags, lower-cased), which `media_search_trgm` indexes;
    /// in creation order, first the term index ([`sparse`]).
    Trigram,
    /// SQLite, the FTS5 trigram table; `sparse` when few media match, so
    /// the page is built from the matches (sorted) rather than by walking
    /// the sort index until enough of them turn up.
    Fts {
        /// Fewer than [`SPARSE_MATCHES`] matches.
        sparse: bool,
    },
    /// SQLite, creation order, when nothing but the text narrows the query
    /// or few media match: walk the FTS5 index in creation order and stop
    /// after a page ([`fts_walk`]).
    FtsWalk,
}

/// Below this many matches, a text query sorts its matches; above, it
/// walks the sort index (where matches are then dense enough).
const SPARSE_MATCHES: i64 = 2000;

/// Shortest query a trigram index serves.
const TRIGRAM: usize = 3;

impl Repo {
    async fn text_mode(&self, scope: &FolderScope, query: &MediaQuery) -> Result<TextMode> {
        let f = &query.filter;
        let Some(text) = &f.text else {
            return Ok(TextMode::Like);
        };
        if text.chars().count() < TRIGRAM {
            return Ok(TextMode::Like);
        }
        let backend = self.read.get_database_backend();
        if backend == DatabaseBackend::Postgres {
            return Ok(TextMode::Trigram);
        }
        // A walk in creation order stops once it has a page, so it is short
        // unless other conditions reject most matches. With no other
        // condition it is always right; with some, only when few media
        // match the text (the probe below).
        let walkable = walkable(query);
        let text_only = MediaFilter {
            text: None,
            ..f.clone()
        } == MediaFilter::default();
        if walkable && text_only && matches!(scope, FolderScope::All) {
            return Ok(TextMode::FtsWalk);
        }
        let row = self
            .read
            .query_one(Statement::from_sql_and_values(
                backend,
                "SELECT COUNT(*) FROM (SELECT 1 FROM media_text WHERE media_text MATCH $1 LIMIT $2)",
                [fts_phrase(text).into(), SPARSE_MATCHES.into()],
            ))
            .await?;
        let n: i64 = match row {
            Some(r) => r.try_get_by_index(0)?,
            None => 0,
        };
        let sparse = n < SPARSE_MATCHES;
        Ok(if sparse && walkable {
            TextMode::FtsWalk
        } else {
            TextMode::Fts { sparse }
        })
    }
}

/// Whether a text query can be answered in creation order from the text
/// index alone: creation order, and no tag to walk instead.
fn walkable(query: &MediaQuery) -> bool {
    query.order == SortKey::Created && driving_tag(query).is_none()
}

/// An FTS5 query matching `text` as a literal substring.
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The statement for one page of `query` after `cursor`.
fn page(
    tenant: TenantId,
    scope: &FolderScope,
    query: &MediaQuery,
    text: TextMode,
    cursor: Option<&PageCursor>,
    limit: u64,
) -> Select<media::Entity> {
    let order = if query.ascending {
        Order::Asc
    } else {
        Order::Desc
    };
    // A tag filter in creation order walks the tag's rows in
    // `media_tags_time` (which carry the creation time) and stops after
    // one page, however common or rare the tag; filtering the media index
    // instead would scan past every untagged media.
    let (q, key, id): (Select<media::Entity>, SimpleExpr, SimpleExpr) = match driving_tag(query) {
        Some((tag, rest)) => (
            matching(tenant, scope, &rest, text)
                .join_rev(JoinType::InnerJoin, media_tag::Relation::Media.def())
                .filter(media_tag::Column::TenantId.eq(tenant.0))
                .filter(media_tag::Column::Tag.eq(tag)),
            Expr::col((media_tag::Entity, media_tag::Column::CreatedAt)).into(),
            Expr::col((media_tag::Entity, media_tag::Column::MediaId)).into(),
        ),
        None => (
            matching(tenant, scope, &query.filter, text),
            match text {
                // `+key` is the key, but SQLite can no longer walk an index
                // for it: it fetches the few matches by id and sorts them.
                TextMode::Fts { sparse: true } => {
                    Expr::cust_with_expr("+$1", sort_expr(query.order))
                }
                _ => sort_expr(query.order),
            },
            Expr::col((media::Entity, media::Column::Id)).into(),
        ),
    };
    let q = match cursor {
        Some(c) => q.filter(after(key.clone(), id.clone(), query.ascending, c)),
        None => q,
    };
    q.order_by(key, order.clone())
        .order_by(id, order)
        .limit(limit)
}

/// The tag a creation-ordered query can walk, and the filter left once
/// that tag is taken care of.
fn driving_tag(query: &MediaQuery) -> Option<(String, MediaFilter)> {
    if query.order != SortKey::Created {
        return None;
    }
    let mut rest = query.filter.clone();
    if !rest.tags_all.is_empty() {
        Some((rest.tags_all.remove(0), rest))
    } else if rest.tags_any.len() == 1 {
        Some((rest.tags_any.remove(0), rest))
    } else {
        None
    }
}

fn sort_expr(order: SortKey) -> SimpleExpr {
    use media::Column as C;
    match order {
        SortKey::Created => Expr::col(C::CreatedAt).into(),
        SortKey::Updated => Expr::col(C::UpdatedAt).into(),
        // Matches the expression index `media_tenant_taken`.
        SortKey::Taken => {
            Func::coalesce([Expr::col(C::TakenAt).into(), Expr::col(C::CreatedAt).into()]).into()
        }
        SortKey::Size => Expr::col(C::SizeBytes).into(),
        SortKey::Title => Expr::col(C::Title).into(),
        SortKey::Filename => Expr::col(C::Filename).into(),
    }
}

/// Rows strictly after the cursor in the listing's order.
fn after(key: SimpleExpr, id: SimpleExpr, ascending: bool, c: &PageCursor) -> Condition {
    let value = sort_value(&c.value);
    let id = Expr::expr(id);
    let key = Expr::expr(key);
    let (beyond, id_beyond) = if ascending {
        (key.clone().gt(value.clone()), id.gt(c.id.0))
    } else {
        (key.clone().lt(value.clone()), id.lt(c.id.0))
    };
    Condition::any()
        .add(beyond)
        .add(Condition::all().add(key.eq(value)).add(id_beyond))
}

/// A cursor's sort key as a bound value.
fn sort_value(v: &SortValue) -> sea_orm::Value {
    match v {
        SortValue::Int(v) => (*v).into(),
        SortValue::Text(s) => s.clone().into(),
    }
}

/// Rows strictly after the cursor in creation order.
fn created_after(ascending: bool, c: &PageCursor) -> Condition {
    after(
        Expr::col((media::Entity, media::Column::CreatedAt)).into(),
        Expr::col((media::Entity, media::Column::Id)).into(),
        ascending,
        c,
    )
}

/// Media of the tenant in scope that pass the filter.
fn matching(
    tenant: TenantId,
    scope: &FolderScope,
    f: &MediaFilter,
    text_mode: TextMode,
) -> Select<media::Entity> {
    use media::Column as C;
    let mut q = media::Entity::find().filter(C::TenantId.eq(tenant.0));
    q = match scope {
        FolderScope::All => q,
        FolderScope::Folder(id) => q.filter(C::FolderId.eq(id.0)),
        FolderScope::Subtree(path) => q.filter(
            C::FolderId.in_subquery(
                Query::select()
                    .column(folder::Column::Id)
                    .from(folder::Entity)
                    .and_where(folder::Column::TenantId.eq(tenant.0))
                    .cond_where(in_subtree(path))
                    .to_owned(),
            ),
        ),
    };
    if !f.types.is_empty() {
        q = q.filter(C::MediaType.is_in(f.types.iter().map(|t| *t as i16)));
    }
    if !f.mime_types.is_empty() || !f.mime_prefixes.is_empty() {
        let mut any = Condition::any();
        if !f.mime_types.is_empty() {
            any = any.add(C::MimeType.is_in(f.mime_types.iter().cloned()));
        }
        for prefix in &f.mime_prefixes {
            any = any.add(Expr::col(C::MimeType).like(contains_pattern(prefix, false)));
        }
        q = q.filter(any);
    }
    if !f.tags_any.is_empty() {
        q = q.filter(C::Id.in_subquery(tagged(tenant, |s| {
            s.and_where(media_tag::Column::Tag.is_in(f.tags_any.iter().cloned()));
        })));
    }
    for tag in &f.tags_all {
        q = q.filter(C::Id.in_subquery(tagged(tenant, |s| {
            s.and_where(media_tag::Column::Tag.eq(tag.as_str()));
        })));
    }
    for (col, values) in [
        (C::CreatedBy, &f.created_by),
        (C::CreatedRole, &f.created_roles),
        (C::ProjectId, &f.project_ids),
    ] {
        if !values.is_empty() {
            q = q.filter(col.is_in(values.iter().cloned()));
        }
    }
    if let Some(public) = f.public {
        q = q.filter(C::Public.eq(public));
    }
    if let Some(resource) = &f.slot_resource {
        q = q.filter(C::SlotResource.eq(resource.as_str()));
        if let Some(prefix) = &f.slot_key_prefix {
            // Exact on both engines (SQLite's LIKE ignores ASCII case).
            // INTEGER arguments: PostgreSQL has no substr(text, int, bigint).
            let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
            let head = Func::cust(Alias::new("substr"))
                .arg(Expr::col(C::SlotKey))
                .arg(1i32)
                .arg(chars);
            q = q.filter(Expr::expr(head).eq(prefix.as_str()));
        }
    }
    if !f.codes.is_empty() {
        q = q.filter(C::Code.is_in(f.codes.iter().cloned()));
    }
    if let Some(y) = f.year {
        q = q.filter(C::TakenYear.eq(y));
    }
    if let Some(m) = f.month {
        q = q.filter(C::TakenMonth.eq(m));
    }
    q = time_range(q, C::CreatedAt, f.created);
    q = time_range(q, C::TakenAt, f.taken);
    for (col, b) in [
        (C::SizeBytes, f.size),
        (C::Width, f.width),
        (C::Height, f.height),
    ] {
        if let Some(min) = b.min {
            q = q.filter(col.gte(min));
        }
        if let Some(max) = b.max {
            q = q.filter(col.lte(max));
        }
    }
    if let Some(text) = &f.text {
        q = q.filter(match text_mode {
            TextMode::Like => {
                let lower = |c: C| Expr::expr(Func::lower(Expr::col(c)));
                Condition::any()
                    .add(lower(C::Title).like(contains_pattern(text, true)))
                    .add(lower(C::Filename).like(contains_pattern(text, true)))
                    .add(C::Id.in_subquery(tagged(tenant, |s| {
                        s.and_where(
                            Expr::expr(Func::lower(Expr::col(media_tag::Column::Tag)))
                                .like(contains_pattern(text, true)),
                        );
                    })))
            }
            TextMode::Trigram => Condition::all().add(
                Expr::col((media::Entity, Alias::new("search_text")))
                    .like(contains_pattern(text, true)),
            ),
            TextMode::Fts { .. } | TextMode::FtsWalk => Condition::all().add(
                C::Id.in_subquery(
                    Query::select()
                        .column(Alias::new("media_id"))
                        .from(Alias::new("media_text"))
                        .and_where(Expr::cust_with_values(
                            "media_text MATCH ?",
                            [fts_phrase(text)],
                        ))
                        .to_owned(),
                ),
            ),
        });
    }
    q
}

/// `SELECT media_id FROM media_tags WHERE tenant_id = ? AND <more>`.
fn tagged(
    tenant: TenantId,
    more: impl FnOnce(&mut sea_orm::sea_query::SelectStatement),
) -> sea_orm::sea_query::SelectStatement {
    let mut s = Query::select()
        .column(media_tag::Column::MediaId)
        .from(media_tag::Entity)
        .and_where(media_tag::Column::TenantId.eq(tenant.0))
        .to_owned();
    more(&mut s);
    s
}

fn time_range(q: Select<media::Entity>, col: media::Column, r: TimeRange) -> Select<media::Entity> {
    let q = match r.start {
        Some(s) => q.filter(col.gte(s)),
        None => q,
    };
    match r.end {
        Some(e) => q.filter(col.lt(e)),
        None => q,
    }
}

/// A LIKE pattern matching `text` literally: anywhere (`infix`) or as a
/// prefix.
fn contains_pattern(text: &str, infix: bool) -> LikeExpr {
    let mut escaped = String::with_capacity(text.len() + 2);
    if infix {
        escaped.push('%');
    }
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    LikeExpr::new(escaped).escape('\\')
}
