//! SeaORM entities, one module per table. Only `repo` sees these; the rest
//! of the service works with `domain` types.

/// `tenants`: owners of folders and media.
pub mod tenant {
    use sea_orm::entity::prelude::*;

    /// One tenant.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        /// Tenant id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Display name.
        pub name: String,
        /// µs since the epoch.
        pub created_at: i64,
        /// Most bytes its media may total; `None` for no limit.
        pub max_bytes: Option<i64>,
        /// Most media it may hold; `None` for no limit.
        pub max_media: Option<i64>,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `folders`: the folder tree; a tenant's root has no parent.
pub mod folder {
    use sea_orm::entity::prelude::*;

    /// One folder.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "folders")]
    pub struct Model {
        /// Folder id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Owner.
        pub tenant_id: Uuid,
        /// Parent folder; `None` for the root.
        pub parent_id: Option<Uuid>,
        /// Name among its siblings ("" for the root).
        pub name: String,
        /// Full path with a trailing slash.
        pub path: String,
        /// µs since the epoch.
        pub created_at: i64,
        /// µs since the epoch.
        pub updated_at: i64,
        /// Levels below the root.
        pub depth: i32,
        /// Media directly in the folder.
        pub media_count: i64,
        /// Their total size.
        pub size_bytes: i64,
        /// The folder's subtree is being deleted.
        pub deleting: bool,
        /// Creator's principal.
        pub created_by: String,
        /// Last editor's principal.
        pub updated_by: String,
        /// Creator's role.
        pub created_role: String,
        /// Media in it and below it are public.
        pub public: bool,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `blobs`: stored contents with their reference counts.
pub mod blob {
    use sea_orm::entity::prelude::*;

    /// One stored content.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "blobs")]
    pub struct Model {
        /// The blob's name: its BLAKE3 or a tenant-scoped name, lowercase
        /// hex.
        #[sea_orm(primary_key, auto_increment = false)]
        pub hash: String,
        /// BLAKE3 of the bytes where it differs from `hash`, else NULL.
        pub content_hash: Option<String>,
        /// Bytes.
        pub size: i64,
        /// Media rows naming this blob.
        pub refcount: i64,
        /// MD5 hex, once computed.
        pub md5: Option<String>,
        /// µs since the epoch.
        pub created_at: i64,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `renditions`: cached renditions by source blob and request.
pub mod rendition {
    use sea_orm::entity::prelude::*;

    /// One cached rendition of one tenant.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "renditions")]
    pub struct Model {
        /// Whose it is: each tenant renders and caches its own.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// BLAKE3 of the source, lowercase hex.
        #[sea_orm(primary_key, auto_increment = false)]
        pub source_hash: String,
        /// The request's cache key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub params: String,
        /// The name of the rendition's bytes in the blob store.
        pub blob_hash: String,
        /// Their BLAKE3 where it differs from `blob_hash` (tenant-scoped
        /// names), else NULL.
        pub content_hash: Option<String>,
        /// Its MIME type.
        pub mime_type: String,
        /// Pixels across.
        pub width: i32,
        /// Pixels down.
        pub height: i32,
        /// Bytes.
        pub size_bytes: i64,
        /// µs since the epoch.
        pub created_at: i64,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `media`: one row per media.
pub mod media {
    use sea_orm::entity::prelude::*;

    /// One media.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "media")]
    pub struct Model {
        /// Media id (UUIDv7).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Owner.
        pub tenant_id: Uuid,
        /// Folder.
        pub folder_id: Uuid,
        /// The name of its bytes in the blob store.
        pub blob_hash: String,
        /// Their BLAKE3 where it differs from `blob_hash` (tenant-scoped
        /// names), else NULL.
        pub content_hash: Option<String>,
        /// `domain::MediaType` as an integer.
        pub media_type: i16,
        /// Display name.
        pub filename: String,
        /// Name as sent.
        pub original_filename: String,
        /// Title.
        pub title: String,
        /// MIME type.
        pub mime_type: String,
        /// Bytes.
        pub size_bytes: i64,
        /// Pixels across.
        pub width: Option<i32>,
        /// Pixels down.
        pub height: Option<i32>,
        /// Play time.
        pub duration_ms: Option<i64>,
        /// Frames per second.
        pub fps: Option<f64>,
        /// Video codec.
        pub video_codec: Option<String>,
        /// Audio codec.
        pub audio_codec: Option<String>,
        /// EXIF tags (JSON object).
        pub exif: Option<Json>,
        /// GPS latitude.
        pub latitude: Option<f64>,
        /// GPS longitude.
        pub longitude: Option<f64>,
        /// GPS altitude.
        pub altitude: Option<f64>,
        /// Date taken, µs.
        pub taken_at: Option<i64>,
        /// Year taken (else created).
        pub taken_year: Option<i32>,
        /// Month taken (else created).
        pub taken_month: Option<i32>,
        /// EXIF orientation.
        pub orientation: Option<i32>,
        /// Horizontal dpi.
        pub dpi_x: Option<f64>,
        /// Vertical dpi.
        pub dpi_y: Option<f64>,
        /// `domain::Facts` as JSON.
        pub facts: Option<Json>,
        /// Why analysis failed.
        pub analysis_error: Option<String>,
        /// Tags (JSON array of strings).
        pub tags: Json,
        /// Author credit.
        pub author: Option<String>,
        /// Copyright.
        pub copyright: Option<String>,
        /// Custom metadata (JSON object).
        pub metadata: Option<Json>,
        /// Served without credentials.
        pub public: bool,
        /// Content durable and readable.
        pub ready: bool,
        /// µs since the epoch.
        pub created_at: i64,
        /// µs since the epoch.
        pub updated_at: i64,
        /// Creator.
        pub created_by: String,
        /// Last editor.
        pub updated_by: String,
        /// Creator's role.
        pub created_role: String,
        /// Caller's project.
        pub project_id: String,
        /// The client's slot: its resource.
        pub slot_resource: Option<String>,
        /// The client's slot: its key (empty for a resource's only slot).
        pub slot_key: Option<String>,
        /// The client's unique code.
        pub code: Option<String>,
        /// When an upload displaced it from its slot, to be deleted.
        pub replaced_at: Option<i64>,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `media_tags`: one row per (media, tag), for tag filters.
pub mod media_tag {
    use sea_orm::entity::prelude::*;

    /// One tag of one media.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "media_tags")]
    pub struct Model {
        /// Owner (leads every index).
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The tag.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag: String,
        /// The media.
        #[sea_orm(primary_key, auto_increment = false)]
        pub media_id: Uuid,
        /// The media's creation time, µs (for newest-first tag filters).
        pub created_at: i64,
    }

    /// A tag filter in the default order is a join that walks this table.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// The tagged media.
        #[sea_orm(
            belongs_to = "super::media::Entity",
            from = "Column::MediaId",
            to = "super::media::Column::Id"
        )]
        Media,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `media_bindings`: which object of which module uses a media.
pub mod media_binding {
    use sea_orm::entity::prelude::*;

    /// One binding.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "media_bindings")]
    pub struct Model {
        /// Owner.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The media used.
        #[sea_orm(primary_key, auto_increment = false)]
        pub media_id: Uuid,
        /// The using module.
        #[sea_orm(primary_key, auto_increment = false)]
        pub module: String,
        /// The using object.
        #[sea_orm(primary_key, auto_increment = false)]
        pub object_id: String,
        /// µs since the epoch.
        pub created_at: i64,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `uploads`: resumable uploads.
pub mod upload {
    use sea_orm::entity::prelude::*;

    /// One resumable upload.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "uploads")]
    pub struct Model {
        /// Upload id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Owner.
        pub tenant_id: Uuid,
        /// The validated header, as JSON.
        pub spec: String,
        /// Declared size, if any.
        pub declared_size: Option<i64>,
        /// Bytes held durably.
        pub committed_size: i64,
        /// `UploadState` as a number.
        pub state: i16,
        /// The media, once finished.
        pub media_id: Option<Uuid>,
        /// µs since the epoch.
        pub expires_at: i64,
        /// The stream allowed to write.
        pub writer_id: Option<Uuid>,
        /// µs since the epoch until which that stream holds the upload.
        pub writer_until: Option<i64>,
        /// µs since the epoch.
        pub created_at: i64,
        /// µs since the epoch.
        pub updated_at: i64,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `api_keys`: API keys, by the hash of their secret.
pub mod api_key {
    use sea_orm::entity::prelude::*;

    /// One key.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        /// Key id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The tenant it acts for.
        pub tenant_id: Uuid,
        /// Unique within the tenant.
        pub name: String,
        /// Free label.
        pub role: String,
        /// Space-separated scope names.
        pub scopes: String,
        /// Hex of the secret's hash.
        pub secret_hash: String,
        /// The secret's first characters.
        pub shown_prefix: String,
        /// µs since the epoch.
        pub created_at: i64,
        /// µs since the epoch; `None` for never.
        pub expires_at: Option<i64>,
        /// µs since the epoch; `None` while valid.
        pub revoked_at: Option<i64>,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `jobs`: the job queue (see migration 000015 for its indexes).
pub mod job {
    use sea_orm::entity::prelude::*;

    /// One job.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        /// Job id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Owner.
        pub tenant_id: Uuid,
        /// Its handler's name.
        pub kind: String,
        /// `JobStatus` as a number.
        pub status: i16,
        /// Higher runs first.
        pub priority: i32,
        /// Percent done.
        pub progress: i16,
        /// What the handler last said.
        pub progress_message: String,
        /// Attempts started.
        pub attempts: i32,
        /// Attempts allowed.
        pub max_attempts: i32,
        /// Why the last attempt failed.
        pub last_error: Option<String>,
        /// Unique per tenant among active jobs.
        pub unique_key: Option<String>,
        /// Input, as JSON.
        pub payload: String,
        /// Output, as JSON.
        pub result: Option<String>,
        /// µs since the epoch.
        pub scheduled_at: i64,
        /// µs since the epoch.
        pub started_at: Option<i64>,
        /// µs since the epoch.
        pub finished_at: Option<i64>,
        /// µs since the epoch.
        pub created_at: i64,
        /// µs since the epoch.
        pub updated_at: i64,
        /// The worker holding it.
        pub lease_owner: Option<String>,
        /// µs since the epoch.
        pub lease_until: Option<i64>,
        /// Cancellation asked while running.
        pub cancel_requested: bool,
        /// Who enqueued it.
        pub created_by: String,
    }

    /// No relations are navigated through SeaORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
