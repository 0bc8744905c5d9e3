//! The repository: media, folders and blob references in SQLite or
//! PostgreSQL through SeaORM.
//!
//! One implementation serves both engines (SeaORM and the shared migrations
//! hide the differences), so callers use the concrete [`Repo`]. Reads go
//! through a connection pool; writes go through [`WriteTx`], a transaction
//! the domain drives step by step so it can interleave blob-store work
//! (publish, delete) at the right moment between the database statements.
//!
//! On SQLite the write pool has exactly one connection: writers queue in
//! the process instead of failing with `SQLITE_BUSY`, and the group
//! committer makes that one connection enough. Every tenant-owned query
//! filters on `tenant_id` first, matching the indexes.
//!
//! On PostgreSQL, write transactions lock rows in one order so that they
//! never deadlock: the tenant row (structural folder changes only), then
//! media rows, then blob rows in hash order, then folder rows (counters).

mod access;
mod bindings;
pub mod entity;
mod folders;
mod inline;
mod jobs;
mod media_rows;
mod query;
mod renditions;
mod slots;
mod stats;
mod uploads;

use std::{str::FromStr, time::Duration};

use mediastore_migrations::MigratorTrait;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use self::{
    access::TenantDeletion,
    bindings::BindingScope,
    jobs::{Finished, JOBS_CHANNEL, Outcome},
    media_rows::Removed,
    query::FolderScope,
    slots::{code_taken, slot_taken},
    stats::{PoolStats, QueueStats},
};
use self::{
    entity::{blob, folder, media, media_tag, tenant},
    folders::FolderCounts,
};
use crate::{
    domain::{
        Analysis, ContentHash, FolderId, FolderPath, Media, MediaId, MediaType, Slot, TenantId,
        now_micros,
    },
    error::{Error, Reason, Result},
};

/// How long a SQLite connection waits for a lock held by another process
/// (an admin command) before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections to SQLite; WAL lets them run beside the writer.
const SQLITE_READERS: u32 = 8;
/// Connections to PostgreSQL, for reads and writes alike.
const POSTGRES_CONNECTIONS: u32 = 16;
/// Media rows per INSERT: 36 columns each keeps a statement far below the
/// bound-parameter limits of SQLite (32766) and PostgreSQL (65535).
const INSERT_CHUNK: usize = 200;
/// Most blobs locked by one statement (one placeholder each).
const LOCK_CHUNK: usize = 10_000;

/// References a batch adds to one blob.
#[derive(Debug, Clone, Copy)]
pub struct BlobClaim<'a> {
    /// The blob's name.
    pub hash: ContentHash,
    /// BLAKE3 of its bytes: the name itself unless tenant-scoped.
    pub content: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// Its MD5, if the upload computed one.
    pub md5: Option<&'a str>,
    /// How many new media reference it.
    pub count: i64,
}

/// A referenced blob's row, as the scrub walks them.
#[derive(Debug, Clone, Copy)]
pub struct StoredRow {
    /// Its name in the blob store.
    pub name: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 its bytes must have.
    pub content: ContentHash,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Pool for reads (and for writes on PostgreSQL).
    read: DatabaseConnection,
    /// Pool for write transactions: a single connection on SQLite.
    write: DatabaseConnection,
}

impl Repo {
    /// Connects, applies pending migrations and makes sure the default
    /// tenant and its root folder exist.
    pub async fn connect(url: &str) -> Result<Self> {
        let repo = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed transaction survives power loss, not
                // only a killed process; the blob files get the same care.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(opts.clone())
                .await
                .map_err(sqlx_err)?;
            let read = SqlitePoolOptions::new()
                .max_connections(SQLITE_READERS)
                .test_before_acquire(false)
                .connect_with(opts)
                .await
                .map_err(sqlx_err)?;
            Self {
                read: sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(read),
                write: sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(write),
            }
        } else {
            let mut opts = ConnectOptions::new(url);
            opts.max_connections(POSTGRES_CONNECTIONS)
                .min_connections(1)
                .sqlx_logging(false);
            let db = Database::connect(opts).await?;
            Self {
                read: db.clone(),
                write: db,
            }
        };
        mediastore_migrations::Migrator::up(&repo.write, None).await?;
        repo.ensure_tenant(TenantId::DEFAULT, "default").await?;
        Ok(repo)
    }

    /// Creates the tenant and its root folder if they do not exist yet.
    /// The root's id is the tenant's, so replicas starting together insert
    /// the same rows and all but one do nothing.
    pub async fn ensure_tenant(&self, tenant: TenantId, name: &str) -> Result<FolderId> {
        let root = FolderId(tenant.0);
        let now = now_micros();
        let tx = self.write.begin().await?;
        tenant::Entity::insert(tenant::ActiveModel {
            id: Set(tenant.0),
            name: Set(name.to_string()),
            created_at: Set(now),
            max_bytes: Set(None),
            max_media: Set(None),
        })
        .on_conflict(
            OnConflict::column(tenant::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&tx)
        .await?;
        folder::Entity::insert(root_folder_row(tenant, now))
            .on_conflict(
                OnConflict::column(folder::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(root)
    }

    /// The tenant's root folder, if the tenant exists.
    pub async fn root_folder(&self, tenant: TenantId) -> Result<Option<FolderId>> {
        Ok(folder::Entity::find()
            .filter(folder::Column::TenantId.eq(tenant.0))
            .filter(folder::Column::ParentId.is_null())
            .one(&self.read)
            .await?
            .map(|f| FolderId(f.id)))
    }

    /// Whether the tenant has this folder, live (not being deleted).
    pub async fn folder_exists(&self, tenant: TenantId, id: FolderId) -> Result<bool> {
        Ok(self.folder(tenant, id).await?.is_some())
    }

    /// The tenant owning media `id`, whoever that is (for a URL whose
    /// signature the server made for that tenant).
    pub async fn media_tenant(&self, id: MediaId) -> Result<Option<TenantId>> {
        Ok(media::Entity::find_by_id(id.0)
            .select_only()
            .column(media::Column::TenantId)
            .into_tuple::<uuid::Uuid>()
            .one(&self.read)
            .await?
            .map(TenantId))
    }

    /// The tenant of media `id` if the media is public. The one look-up
    /// that is not scoped by a tenant: it is how a caller without
    /// credentials finds a public media's owner, and it returns nothing
    /// about a private one.
    ///
    /// A media is public by its own flag or through a public folder: its
    /// own, or one above it (found by path, among the prefixes of its
    /// folder's path).
    pub async fn public_media_owner(&self, id: MediaId) -> Result<Option<TenantId>> {
        let Some((tenant, public, folder_id)) = media::Entity::find_by_id(id.0)
            .select_only()
            .column(media::Column::TenantId)
            .column(media::Column::Public)
            .column(media::Column::FolderId)
            .into_tuple::<(uuid::Uuid, bool, uuid::Uuid)>()
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        if public {
            return Ok(Some(TenantId(tenant)));
        }
        let Some(path) = folder::Entity::find_by_id(folder_id)
            .select_only()
            .column(folder::Column::Path)
            .filter(folder::Column::TenantId.eq(tenant))
            .into_tuple::<String>()
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let path = FolderPath::from_stored(path);
        let public_above = folder::Entity::find()
            .select_only()
            .column(folder::Column::Id)
            .filter(folder::Column::TenantId.eq(tenant))
            .filter(folder::Column::Path.is_in(path.lineage()))
            .filter(folder::Column::Public.eq(true))
            .into_tuple::<uuid::Uuid>()
            .one(&self.read)
            .await?;
        Ok(public_above.map(|_| TenantId(tenant)))
    }

    /// One media of the tenant.
    pub async fn get_media(&self, tenant: TenantId, id: MediaId) -> Result<Option<Media>> {
        Ok(self.get_media_many(tenant, &[id]).await?.pop())
    }

    /// Records computed MD5s, all in one transaction (one commit however
    /// many small uploads finished meanwhile). Rows are updated in hash
    /// order, the order every other writer locks blob rows in, so this
    /// never deadlocks with an upload's claims.
    pub async fn set_md5s(&self, digests: &[(ContentHash, String)]) -> Result<()> {
        let mut sorted: Vec<&(ContentHash, String)> = digests.iter().collect();
        sorted.sort_unstable_by_key(|(h, _)| *h);
        sorted.dedup_by_key(|(h, _)| *h);
        let tx = self.write.begin().await?;
        for (hash, md5) in sorted {
            // A row with this MD5 already is written again all the same
            // (the MD5 of a copy of bytes another tenant stored first): the
            // write costs what recording a new blob's does.
            blob::Entity::update_many()
                .col_expr(blob::Column::Md5, Expr::value(md5.as_str()))
                .filter(blob::Column::Hash.eq(hash.to_hex()))
                .filter(
                    sea_orm::Condition::any()
                        .add(blob::Column::Md5.is_null())
                        .add(blob::Column::Md5.eq(md5.as_str())),
                )
                .exec(&tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    /// Does what PostgreSQL's autovacuum does on its own after large
    /// changes, for admin tools, benchmarks and tests that load many rows
    /// at once and query at once: refreshes the planner's statistics and,
    /// on PostgreSQL, vacuums, which also merges the text index's pending
    /// list (every search scans that list until it is merged).
    pub async fn analyze(&self) -> Result<()> {
        let sql = match self.write.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "VACUUM (ANALYZE)",
            _ => "ANALYZE",
        };
        self.write.execute_unprepared(sql).await?;
        Ok(())
    }

    /// Checks that the database answers (for the health service).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.read.ping().await?)
    }

    /// Referenced blobs whose MD5 is still missing (after a restart).
    pub async fn blobs_missing_md5(&self, limit: u64) -> Result<Vec<ContentHash>> {
        blob::Entity::find()
            .filter(blob::Column::Md5.is_null())
            .filter(blob::Column::Refcount.gt(0))
            .limit(limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(|b| parse_hash(&b.hash))
            .collect()
    }

    /// Blobs that no media references any more (left by a crash between
    /// a delete's commit and its file removal).
    pub async fn unreferenced_blobs(&self, limit: u64) -> Result<Vec<ContentHash>> {
        blob::Entity::find()
            .filter(blob::Column::Refcount.lte(0))
            .limit(limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(|b| parse_hash(&b.hash))
            .collect()
    }

    /// Those of `hashes` that media reference.
    pub async fn referenced_among(
        &self,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let mut found = std::collections::HashSet::new();
        for part in hashes.chunks(INSERT_CHUNK) {
            for row in blob::Entity::find()
                .filter(blob::Column::Hash.is_in(part.iter().map(ContentHash::to_hex)))
                .filter(blob::Column::Refcount.gt(0))
                .all(&self.read)
                .await?
            {
                found.insert(parse_hash(&row.hash)?);
            }
        }
        Ok(found)
    }

    /// Referenced blobs in name order after `after`, with their sizes
    /// and the BLAKE3 of their bytes: a walk of every blob that must be
    /// stored, a page at a time.
    pub async fn referenced_blobs_after(
        &self,
        after: Option<ContentHash>,
        limit: u64,
    ) -> Result<Vec<StoredRow>> {
        let mut q = blob::Entity::find()
            .filter(blob::Column::Refcount.gt(0))
            .order_by_asc(blob::Column::Hash)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(blob::Column::Hash.gt(a.to_hex()));
        }
        q.all(&self.read)
            .await?
            .into_iter()
            .map(|b| {
                let name = parse_hash(&b.hash)?;
                Ok(StoredRow {
                    name,
                    size: u64::try_from(b.size).unwrap_or(0),
                    content: parse_content(name, b.content_hash.as_deref())?,
                })
            })
            .collect()
    }

    /// A blob's reference count, if it has a row.
    pub async fn blob_refcount(&self, hash: &ContentHash) -> Result<Option<i64>> {
        Ok(blob::Entity::find_by_id(hash.to_hex())
            .one(&self.read)
            .await?
            .map(|b| b.refcount))
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<WriteTx> {
        Ok(WriteTx {
            tx: self.write.begin().await?,
        })
    }
}

/// The row of a tenant's root folder, whose id is the tenant's.
fn root_folder_row(tenant: TenantId, now: i64) -> folder::ActiveModel {
    folder::ActiveModel {
        id: Set(tenant.0),
        tenant_id: Set(tenant.0),
        parent_id: Set(None),
        name: Set(String::new()),
        path: Set("/".to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls back.
#[derive(Debug)]
pub struct WriteTx {
    tx: DatabaseTransaction,
}

impl WriteTx {
    /// Adds references to blobs, creating their rows where needed, and
    /// locks the rows until commit. `claims` must name each hash once, in
    /// hash order (so concurrent replicas lock in the same order and never
    /// deadlock). Returns each blob's reference count after the claim: equal
    /// to the claim's `count` means no committed media referenced the blob
    /// before, so its bytes must be published; more means they are in place.
    pub async fn claim_blobs(&mut self, claims: &[BlobClaim<'_>]) -> Result<Vec<i64>> {
        let backend = self.tx.get_database_backend();
        let now = now_micros();
        let mut after = std::collections::HashMap::with_capacity(claims.len());
        for part in claims.chunks(INSERT_CHUNK) {
            // One statement for the lot, the same on both engines (SQLite
            // accepts `$n` placeholders).
            let mut sql = String::from(
                "INSERT INTO blobs (hash, size, refcount, md5, created_at, content_hash) VALUES ",
            );
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(part.len() * 6);
            for (i, c) in part.iter().enumerate() {
                let n = i * 6;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                ));
                values.extend([
                    c.hash.to_hex().into(),
                    to_i64(c.size).into(),
                    c.count.into(),
                    c.md5.map(str::to_string).into(),
                    now.into(),
                    content_column(&c.hash, &c.content).into(),
                ]);
            }
            sql.push_str(
                " ON CONFLICT (hash) DO UPDATE SET refcount = blobs.refcount + excluded.refcount, \
                 md5 = COALESCE(blobs.md5, excluded.md5), \
                 content_hash = COALESCE(blobs.content_hash, excluded.content_hash) \
                 RETURNING hash, refcount",
            );
            let rows = self
                .tx
                .query_all(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            for row in rows {
                let hash: String = row.try_get_by_index(0)?;
                let refcount: i64 = row.try_get_by_index(1)?;
                after.insert(hash, refcount);
            }
        }
        claims
            .iter()
            .map(|c| {
                after.get(&c.hash.to_hex()).copied().ok_or_else(|| {
                    Error::Database(sea_orm::DbErr::RecordNotFound(format!(
                        "blob {} after its upsert",
                        c.hash
                    )))
                })
            })
            .collect()
    }

    /// Which tenants have media with these blobs, as (tenant, blob) pairs.
    pub async fn tenants_holding(
        &mut self,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<(TenantId, ContentHash)>> {
        let mut held = std::collections::HashSet::new();
        for part in hashes.chunks(INSERT_CHUNK) {
            let rows: Vec<(uuid::Uuid, String)> = media::Entity::find()
                .select_only()
                .column(media::Column::TenantId)
                .column(media::Column::BlobHash)
                .distinct()
                .filter(media::Column::BlobHash.is_in(part.iter().map(ContentHash::to_hex)))
                .into_tuple()
                .all(&self.tx)
                .await?;
            for (tenant, hash) in rows {
                held.insert((TenantId(tenant), parse_hash(&hash)?));
            }
        }
        Ok(held)
    }

    /// Inserts media rows and their tags, a few statements for the lot.
    /// Fails with NOT_FOUND, before inserting anything, if a target folder
    /// is gone or being deleted.
    pub async fn insert_media(&mut self, batch: &[&Media]) -> Result<()> {
        let mut counts = FolderCounts::default();
        for m in batch {
            counts.add(m.tenant, m.folder, 1, to_i64(m.size));
        }
        self.apply_counts(counts).await?;
        // Each statement stays under SQLite's 32766 bound parameters.
        for part in batch.chunks(INSERT_CHUNK) {
            media::Entity::insert_many(part.iter().map(|m| to_row(m)))
                .exec_without_returning(&self.tx)
                .await?;
        }
        let tags: Vec<media_tag::ActiveModel> = batch
            .iter()
            .flat_map(|m| tag_rows(m.tenant, m.id, m.created_at, &m.tags))
            .collect();
        for part in tags.chunks(INSERT_CHUNK * 10) {
            media_tag::Entity::insert_many(part.to_vec())
                .exec_without_returning(&self.tx)
                .await?;
        }
        Ok(())
    }

    /// Locks the rows of these blobs (and, with `renditions`, of their
    /// renditions' blobs) that exist, all in hash order, in one statement
    /// (PostgreSQL; SQLite has one writer). A writer that then updates
    /// those rows one at a time, in whatever order, takes no lock out of
    /// hash order, so it cannot deadlock with an upload claiming the same
    /// rows in hash order.
    pub async fn lock_blobs(&mut self, hashes: &[ContentHash], renditions: bool) -> Result<()> {
        let backend = self.tx.get_database_backend();
        if backend != sea_orm::DatabaseBackend::Postgres || hashes.is_empty() {
            return Ok(());
        }
        // One statement for any batch a delete makes (at most 1000 media),
        // so the order holds across all of it; far within PostgreSQL's
        // 65,535 parameters.
        for part in hashes.chunks(LOCK_CHUNK) {
            let (list, values) = placeholders(1, part.iter().map(|h| h.to_hex().into()));
            let also = if renditions {
                format!(
                    " OR hash IN (SELECT blob_hash FROM renditions WHERE source_hash IN ({list}))"
                )
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT hash FROM blobs WHERE hash IN ({list}){also} ORDER BY hash FOR UPDATE"
            );
            self.tx
                .execute(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }

    /// Deletes the rows of these blobs that nothing references, holding
    /// their locks until commit so no upload can claim them meanwhile.
    /// Returns the blobs whose rows went: the caller removes their bytes
    /// before committing.
    pub async fn remove_unused_blobs(
        &mut self,
        hashes: &[ContentHash],
    ) -> Result<Vec<ContentHash>> {
        self.hashes_returned(hashes, |list| {
            format!("DELETE FROM blobs WHERE hash IN ({list}) AND refcount <= 0 RETURNING hash")
        })
        .await
    }

    /// Runs the statement `sql(list)` for `hashes` a chunk at a time
    /// (`list` is the chunk's placeholders) and collects the hashes it
    /// returns.
    pub(super) async fn hashes_returned(
        &mut self,
        hashes: &[ContentHash],
        sql: impl Fn(&str) -> String,
    ) -> Result<Vec<ContentHash>> {
        self.hashes_returned_after(&[], hashes, sql).await
    }

    /// [`Self::hashes_returned`] with `leading` bound first, as `$1`...,
    /// and the chunk's placeholders after them.
    pub(super) async fn hashes_returned_after(
        &mut self,
        leading: &[sea_orm::Value],
        hashes: &[ContentHash],
        sql: impl Fn(&str) -> String,
    ) -> Result<Vec<ContentHash>> {
        let backend = self.tx.get_database_backend();
        let mut out = Vec::new();
        for part in hashes.chunks(INSERT_CHUNK) {
            let (list, chunk) =
                placeholders(leading.len() + 1, part.iter().map(|h| h.to_hex().into()));
            let values = leading.iter().cloned().chain(chunk).collect::<Vec<_>>();
            let rows = self
                .tx
                .query_all(Statement::from_sql_and_values(backend, sql(&list), values))
                .await?;
            for row in rows {
                out.push(parse_hash(&row.try_get_by_index::<String>(0)?)?);
            }
        }
        Ok(out)
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

/// The `media_tags` rows of one media (they carry its creation time for
/// newest-first tag filters).
fn tag_rows<'a>(
    tenant: TenantId,
    media: MediaId,
    created_at: i64,
    tags: &'a [String],
) -> impl Iterator<Item = media_tag::ActiveModel> + 'a {
    tags.iter().map(move |t| media_tag::ActiveModel {
        tenant_id: Set(tenant.0),
        tag: Set(t.clone()),
        media_id: Set(media.0),
        created_at: Set(created_at),
    })
}

/// `$first, $first+1, ...` for the values, and the values.
fn placeholders(
    first: usize,
    values: impl Iterator<Item = sea_orm::Value>,
) -> (String, Vec<sea_orm::Value>) {
    let values: Vec<sea_orm::Value> = values.collect();
    let list = (first..first + values.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (list, values)
}

fn sqlx_err(e: sqlx::Error) -> Error {
    Error::Database(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        sqlx_err(e)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn parse_hash(hex: &str) -> Result<ContentHash> {
    blake3::Hash::from_hex(hex)
        .map(ContentHash::from)
        .map_err(|_| {
            Error::data_loss(
                Reason::RecordCorrupt,
                format!("the database holds a malformed blob hash {hex:?}"),
            )
        })
}

/// The BLAKE3 to record beside a blob's name: none when it is the name.
fn content_column(name: &ContentHash, content: &ContentHash) -> Option<String> {
    (name != content).then(|| content.to_hex())
}

/// The BLAKE3 recorded beside a blob's name, or the name itself.
fn parse_content(name: ContentHash, column: Option<&str>) -> Result<ContentHash> {
    column.map_or(Ok(name), parse_hash)
}

fn to_row(m: &Media) -> media::ActiveModel {
    let mut row = media::ActiveModel {
        id: Set(m.id.0),
        tenant_id: Set(m.tenant.0),
        folder_id: Set(m.folder.0),
        blob_hash: Set(m.blob.to_hex()),
        content_hash: Set(content_column(&m.blob, &m.content)),
        media_type: Set(m.media_type as i16),
        filename: Set(m.filename.clone()),
        original_filename: Set(m.original_filename.clone()),
        title: Set(m.title.clone()),
        mime_type: Set(m.mime_type.clone()),
        size_bytes: Set(to_i64(m.size)),
        tags: Set(serde_json::Value::from(m.tags.clone())),
        author: Set(m.author.clone()),
        copyright: Set(m.copyright.clone()),
        metadata: Set(m.metadata.clone()),
        public: Set(m.public),
        ready: Set(m.ready),
        created_at: Set(m.created_at),
        updated_at: Set(m.updated_at),
        created_by: Set(m.created_by.clone()),
        updated_by: Set(m.updated_by.clone()),
        created_role: Set(m.created_role.clone()),
        project_id: Set(m.project_id.clone()),
        slot_resource: Set(m.slot.as_ref().map(|s| s.resource.clone())),
        slot_key: Set(m.slot.as_ref().map(|s| s.key.clone())),
        code: Set(m.code.clone()),
        replaced_at: Set(None),
        ..Default::default()
    };
    set_analysis(&mut row, &m.analysis);
    row
}

/// Sets the columns an analysis fills: for a new row, and for a new
/// analysis of a stored one.
fn set_analysis(row: &mut media::ActiveModel, a: &Analysis) {
    row.width = Set(a.width);
    row.height = Set(a.height);
    row.duration_ms = Set(a.duration_ms);
    row.fps = Set(a.fps);
    row.video_codec = Set(a.video_codec.clone());
    row.audio_codec = Set(a.audio_codec.clone());
    row.exif = Set(a.exif.clone());
    row.latitude = Set(a.latitude);
    row.longitude = Set(a.longitude);
    row.altitude = Set(a.altitude);
    row.taken_at = Set(a.taken_at);
    row.taken_year = Set(a.taken_year);
    row.taken_month = Set(a.taken_month);
    row.orientation = Set(a.orientation);
    row.dpi_x = Set(a.dpi_x);
    row.dpi_y = Set(a.dpi_y);
    row.facts = Set((!a.facts.is_empty())
        .then(|| serde_json::to_value(&a.facts).ok())
        .flatten());
    row.analysis_error = Set(a.error.clone());
}

fn to_domain(r: media::Model, md5: Option<String>) -> Result<Media> {
    let tags = match r.tags {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let blob = parse_hash(&r.blob_hash)?;
    Ok(Media {
        id: MediaId(r.id),
        tenant: TenantId(r.tenant_id),
        folder: FolderId(r.folder_id),
        blob,
        content: parse_content(blob, r.content_hash.as_deref())?,
        media_type: MediaType::from_i16(r.media_type),
        filename: r.filename,
        original_filename: r.original_filename,
        title: r.title,
        mime_type: r.mime_type,
        size: u64::try_from(r.size_bytes).unwrap_or(0),
        md5,
        analysis: Analysis {
            width: r.width,
            height: r.height,
            duration_ms: r.duration_ms,
            fps: r.fps,
            video_codec: r.video_codec,
            audio_codec: r.audio_codec,
            exif: r.exif,
            latitude: r.latitude,
            longitude: r.longitude,
            altitude: r.altitude,
            taken_at: r.taken_at,
            taken_year: r.taken_year,
            taken_month: r.taken_month,
            orientation: r.orientation,
            dpi_x: r.dpi_x,
            dpi_y: r.dpi_y,
            // Facts written by this version always parse; anything else
            // reads as unknown rather than failing the read.
            facts: r
                .facts
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            error: r.analysis_error,
        },
        tags,
        author: r.author,
        copyright: r.copyright,
        metadata: r.metadata,
        public: r.public,
        ready: r.ready,
        created_at: r.created_at,
        updated_at: r.updated_at,
        created_by: r.created_by,
        updated_by: r.updated_by,
        created_role: r.created_role,
        project_id: r.project_id,
        slot: r.slot_resource.map(|resource| Slot {
            resource,
            key: r.slot_key.unwrap_or_default(),
        }),
        code: r.code,
    })
}
