//! Configuration: defaults, then `MEDIASTORE_*` environment variables, then
//! command-line flags (clap applies that order).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    domain::{DEFAULT_ALLOWED_TYPES, OnMismatch, TypePolicy},
    library::RenditionSettings,
    render::{Bounds, Fit, OutputFormat, RenditionSpec},
};

/// Default listen address: loopback only, so a fresh start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default largest upload: 10 GiB.
pub const DEFAULT_MAX_UPLOAD_SIZE: &str = "10GiB";
/// Default largest blob stored inline in the database (see
/// `blob::inline`).
pub const DEFAULT_INLINE_MAX_SIZE: &str = "64KiB";
/// Default largest gRPC message: 16 MiB, so clients may send chunks of up
/// to 16 MiB (1 MiB is recommended).
pub const DEFAULT_MAX_MESSAGE_SIZE: &str = "16MiB";
/// Default HTTP/2 flow-control window, per stream and per connection. The
/// protocol's 64 KiB default caps a loopback upload near 1.5 GB/s; 16 MiB
/// lets one stream run at disk speed.
pub const DEFAULT_WINDOW_SIZE: &str = "16MiB";

/// mediastore: a gRPC media storage service.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Runs the gRPC server (the default).
    Serve,
    /// Removes blob files no media references, staged files of crashed
    /// uploads and files of ended resumable uploads, then exits. Safe
    /// beside a running server.
    Gc {
        /// Leave alone files changed in the last this many seconds.
        #[arg(long, default_value_t = 3600)]
        min_age_secs: u64,
    },
    /// Re-reads every referenced blob and checks its hash, quarantining
    /// mismatches, then exits: 0 when all are present and correct, 1 if
    /// not. Safe beside a running server.
    Scrub,
    /// Creates, lists and deletes tenants in the configured database.
    Tenants {
        /// What to do.
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Creates, lists and revokes API keys in the configured database.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `mediastore tenants ...`; each prints JSON on stdout.
#[derive(Debug, Clone, Subcommand)]
pub enum TenantsCommand {
    /// Creates a tenant with its root folder.
    Create {
        /// Its unique name.
        name: String,
        /// Most bytes its media may total (suffixes KiB, MiB, GiB, ...).
        #[arg(long, value_parser = parse_size)]
        max_bytes: Option<u64>,
        /// Most media it may hold.
        #[arg(long)]
        max_media: Option<u64>,
    },
    /// Sets a tenant's quotas (both are replaced; an omitted one is no
    /// limit).
    SetQuota {
        /// Its id or name.
        tenant: String,
        /// Most bytes its media may total (suffixes KiB, MiB, GiB, ...).
        #[arg(long, value_parser = parse_size)]
        max_bytes: Option<u64>,
        /// Most media it may hold.
        #[arg(long)]
        max_media: Option<u64>,
    },
    /// Lists every tenant, oldest first, with what it holds.
    List,
    /// Deletes an empty tenant and its keys.
    Delete {
        /// Its id or name.
        tenant: String,
    },
}

/// `mediastore keys ...`; each prints JSON on stdout.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Creates a key and prints its secret, the only time it is shown.
    Create {
        /// The tenant it acts for, by id or name.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Its name, unique within the tenant; recorded as `created_by`.
        #[arg(long)]
        name: String,
        /// A free label recorded as `created_role`.
        #[arg(long, default_value = "")]
        role: String,
        /// Comma-separated scopes: media:read, media:write, media:delete,
        /// folders:write, folders:delete, uploads:write, admin, jobs:read,
        /// jobs:write.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Days until it stops working; never when omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Lists keys (never their secrets), oldest first.
    List {
        /// Only this tenant's, by id or name.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revokes a key.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Server settings. Every one is `global`, so it may be given before or
/// after the subcommand: `mediastore --listen A serve` and `mediastore
/// serve --listen A` are the same.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(global = true, long, env = "MEDIASTORE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory for blobs, staging files and the default SQLite database.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`.
    /// Default: `sqlite://<data-dir>/mediastore.db`.
    #[arg(global = true, long, env = "MEDIASTORE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest accepted upload (bytes; suffixes KiB, MiB, GiB, KB, MB, GB).
    #[arg(global = true, long, env = "MEDIASTORE_MAX_UPLOAD_SIZE", default_value = DEFAULT_MAX_UPLOAD_SIZE, value_parser = parse_size)]
    pub max_upload_size: u64,
    /// Blobs up to this size are stored inline in the database instead of
    /// as files (one row in the upload's transaction, no file or fsync of
    /// their own); 0 stores every blob as a file. At most 1MiB. Changing
    /// it affects new blobs only; those stored before stay readable.
    #[arg(global = true, long, env = "MEDIASTORE_INLINE_MAX_SIZE", default_value = DEFAULT_INLINE_MAX_SIZE, value_parser = parse_size)]
    pub inline_max_size: u64,
    /// Which uploads share stored bytes: `global` stores identical bytes
    /// once for all tenants; `tenant` once per tenant, so that no two
    /// tenants' media ever share a blob, at the cost of one copy per
    /// tenant holding the same bytes. Changing it affects uploads from
    /// then on; bytes stored before stay where they are.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_DEDUPE_SCOPE",
        default_value = "global"
    )]
    pub dedupe_scope: crate::domain::DedupeScope,
    /// Content types accepted, comma-separated: exact (`image/png`), a
    /// family (`image/*`) or `*` for anything. The type is sniffed from
    /// the bytes, never taken from the name or the declared type.
    #[arg(global = true, long, env = "MEDIASTORE_ALLOWED_TYPES", default_value = DEFAULT_ALLOWED_TYPES)]
    pub allowed_types: String,
    /// Largest image upload.
    #[arg(global = true, long, env = "MEDIASTORE_MAX_IMAGE_SIZE", default_value = "10MB", value_parser = parse_size)]
    pub max_image_size: u64,
    /// Largest video upload.
    #[arg(global = true, long, env = "MEDIASTORE_MAX_VIDEO_SIZE", default_value = "100MB", value_parser = parse_size)]
    pub max_video_size: u64,
    /// Largest audio upload.
    #[arg(global = true, long, env = "MEDIASTORE_MAX_AUDIO_SIZE", default_value = "50MB", value_parser = parse_size)]
    pub max_audio_size: u64,
    /// Largest document upload (PDF, office files, text).
    #[arg(global = true, long, env = "MEDIASTORE_MAX_DOCUMENT_SIZE", default_value = "20MB", value_parser = parse_size)]
    pub max_document_size: u64,
    /// Largest upload of any other allowed type; `--max-upload-size`
    /// alone when unset.
    #[arg(global = true, long, env = "MEDIASTORE_MAX_OTHER_SIZE", value_parser = parse_size)]
    pub max_other_size: Option<u64>,
    /// What an upload whose declared content type contradicts its bytes
    /// does: `reject` it naming both, or `use-content` (store it under the
    /// type the bytes have).
    #[arg(global = true, long, env = "MEDIASTORE_ON_TYPE_MISMATCH", value_enum, default_value_t = OnMismatch::Reject)]
    pub on_type_mismatch: OnMismatch,
    /// Named rendition requests, comma-separated `name=WxH[:fit][:format][:qN]`
    /// (fit: contain, cover, fill, scale-down; format: jpeg, png, webp;
    /// 0 for a side keeps the aspect ratio), e.g.
    /// `thumbnail=256x0,square=512x512:cover:webp`.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_RENDITION_PRESETS",
        default_value = "thumbnail=256x0:scale-down:jpeg:q80"
    )]
    pub rendition_presets: String,
    /// Presets made for every image as it is uploaded, comma-separated;
    /// empty for none.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_EAGER_RENDITIONS",
        default_value = "thumbnail"
    )]
    pub eager_renditions: String,
    /// Largest width or height a rendition request may ask for.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_RENDITION_MAX_DIMENSION",
        default_value_t = 4096
    )]
    pub rendition_max_dimension: u32,
    /// When set, the only sizes a rendition request may ask for (presets
    /// aside), comma-separated `WxH`, e.g. `128x128,256x0,1024x0`: clients
    /// cannot then fill the disk with arbitrary sizes.
    #[arg(global = true, long, env = "MEDIASTORE_RENDITION_SIZES")]
    pub rendition_sizes: Option<String>,
    /// Most pixels an image may have to be decoded for a rendition; its
    /// header is checked before any decoding (decompression bombs).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_MAX_IMAGE_PIXELS",
        default_value_t = 100_000_000
    )]
    pub max_image_pixels: u64,
    /// Most frames a GIF may have to be decoded for a rendition.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_MAX_GIF_FRAMES",
        default_value_t = 1000
    )]
    pub max_gif_frames: u32,
    /// Largest gRPC message, in either direction.
    #[arg(global = true, long, env = "MEDIASTORE_MAX_MESSAGE_SIZE", default_value = DEFAULT_MAX_MESSAGE_SIZE, value_parser = parse_size)]
    pub max_message_size: u64,
    /// HTTP/2 flow-control window per stream and per connection.
    #[arg(global = true, long, env = "MEDIASTORE_WINDOW_SIZE", default_value = DEFAULT_WINDOW_SIZE, value_parser = parse_size)]
    pub window_size: u64,
    /// Seconds a resumable upload may take, from its start, before it is
    /// discarded unfinished (default: a week, as Google Cloud Storage).
    #[arg(global = true, long, env = "MEDIASTORE_UPLOAD_EXPIRY_SECS", default_value_t = 7 * 24 * 3600)]
    pub upload_expiry_secs: u64,
    /// How long a resumable upload's writing stream keeps its hold without
    /// news (it renews it every second while bytes flow); a stream of a
    /// server that died gives way to a new one after this.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_UPLOAD_HOLD_SECS",
        default_value_t = 30
    )]
    pub upload_hold_secs: u64,
    /// Seconds between sweeps that discard expired resumable uploads.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_UPLOAD_SWEEP_SECS",
        default_value_t = 60
    )]
    pub upload_sweep_secs: u64,
    /// Seconds between background garbage collections (blob files no
    /// media references, files of crashed uploads).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_GC_EVERY_SECS",
        default_value_t = 3600
    )]
    pub gc_every_secs: u64,
    /// Jobs this process runs at once (reanalysis, garbage collection,
    /// scrubs); 0 runs none, for a replica that only serves the API.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_WORKERS",
        default_value_t = crate::jobs::DEFAULT_WORKERS
    )]
    pub job_workers: usize,
    /// Seconds a worker holds a job without renewing its lease: a job
    /// whose process died runs again after this.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_LEASE_SECS",
        default_value_t = 30
    )]
    pub job_lease_secs: u64,
    /// Longest milliseconds an idle worker waits before looking for due
    /// jobs again (enqueues wake it sooner: in process, and through
    /// LISTEN/NOTIFY on PostgreSQL).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_POLL_MS",
        default_value_t = 1000
    )]
    pub job_poll_ms: u64,
    /// Milliseconds before a failed job's first retry; each later retry
    /// waits twice as long (with jitter), up to --job-retry-max-secs.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_RETRY_BASE_MS",
        default_value_t = 2000
    )]
    pub job_retry_base_ms: u64,
    /// Longest seconds between a job's retries.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_RETRY_MAX_SECS",
        default_value_t = 3600
    )]
    pub job_retry_max_secs: u64,
    /// Seconds ended jobs are kept (for GetJob and ListJobs) before they
    /// are removed.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_JOB_RETENTION_SECS",
        default_value_t = 7 * 24 * 3600
    )]
    pub job_retention_secs: u64,
    /// Hosts, addresses and CIDR ranges imports may reach although the
    /// address rules refuse them (loopback, private, link-local, ...),
    /// comma-separated: e.g. an internal image server.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_IMPORT_ALLOW",
        default_value = ""
    )]
    pub import_allow: String,
    /// Ports import sources may be on, comma-separated, or `any`.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_IMPORT_PORTS",
        default_value = "80,443"
    )]
    pub import_ports: String,
    /// Redirects an import follows at most (each hop is checked).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_IMPORT_MAX_REDIRECTS",
        default_value_t = crate::fetch::DEFAULT_MAX_REDIRECTS
    )]
    pub import_max_redirects: u32,
    /// Seconds a whole import download may take.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_IMPORT_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub import_timeout_secs: u64,
    /// Seconds to resolve and connect to an import source.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_IMPORT_CONNECT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub import_connect_timeout_secs: u64,
    /// CA certificates (PEM) trusted for https import sources besides the
    /// public roots.
    #[arg(global = true, long, env = "MEDIASTORE_IMPORT_CA_FILE")]
    pub import_ca_file: Option<PathBuf>,
    /// An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, R2) to
    /// keep blobs in instead of the data directory, so that several
    /// replicas share them (with `--database-url` on PostgreSQL). Small
    /// blobs still live in the database; the data directory keeps only a
    /// local spool of bytes being received.
    #[arg(global = true, long, env = "MEDIASTORE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The S3 service's URL, `http(s)://host[:port]`; default
    /// `https://s3.<region>.amazonaws.com`.
    #[arg(global = true, long, env = "MEDIASTORE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The region requests are signed for (`garage` for Garage).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_S3_REGION",
        default_value = "us-east-1"
    )]
    pub s3_region: String,
    /// Prefix of every key the server writes (`mediastore/`, say), to
    /// share a bucket.
    #[arg(global = true, long, env = "MEDIASTORE_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`): default true with
    /// `--s3-endpoint` (MinIO, Garage, Ceph), false for AWS.
    #[arg(global = true, long, env = "MEDIASTORE_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// Access key id (else `AWS_ACCESS_KEY_ID`).
    #[arg(global = true, long, env = "MEDIASTORE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (else `--s3-secret-access-key-file`, else
    /// `AWS_SECRET_ACCESS_KEY`).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// A file holding the secret access key (a mounted Kubernetes
    /// Secret, say).
    #[arg(global = true, long, env = "MEDIASTORE_S3_SECRET_ACCESS_KEY_FILE")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Part size of multipart uploads (at least 5MiB): this times
    /// `--s3-concurrency` bounds an upload's part buffers.
    #[arg(global = true, long, env = "MEDIASTORE_S3_PART_SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub s3_part_size: u64,
    /// Parts (or objects of a batch) sent at once per upload; an upload
    /// holds at most this many parts in memory, the one being filled
    /// among them.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_S3_CONCURRENCY",
        default_value_t = 4
    )]
    pub s3_concurrency: usize,
    /// Seconds one S3 request may take.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_S3_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub s3_timeout_secs: u64,
    /// CA certificates (PEM) trusted for an https S3 endpoint besides the
    /// public roots.
    #[arg(global = true, long, env = "MEDIASTORE_S3_CA_FILE")]
    pub s3_ca_file: Option<PathBuf>,
    /// Seconds that in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_SHUTDOWN_GRACE_SECS",
        default_value_t = 30
    )]
    pub shutdown_grace_secs: u64,
    /// Seconds between health checks of the database and the blob store.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_HEALTH_CHECK_SECS",
        default_value_t = 5
    )]
    pub health_check_secs: u64,
    /// Serve every call without credentials, as the default tenant with
    /// every scope: only for a trusted network or a quick try (the server
    /// logs a warning at start). Health and reflection are open either way.
    #[arg(global = true, long, env = "MEDIASTORE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Calls a second each API key may make on average (a token bucket
    /// per key, per replica); 0 for no limit. Calls over it answer
    /// RESOURCE_EXHAUSTED with a RetryInfo delay.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_RATE_LIMIT_PER_KEY",
        default_value_t = 0.0
    )]
    pub rate_limit_per_key: f64,
    /// Calls a key may make at once above its rate; 0 for one second's
    /// worth of the rate.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_RATE_LIMIT_BURST",
        default_value_t = 0.0
    )]
    pub rate_limit_burst: f64,
    /// Most calls in flight at once on one connection (HTTP/2
    /// SETTINGS_MAX_CONCURRENT_STREAMS); 0 for no limit.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_MAX_CONCURRENT_STREAMS",
        default_value_t = 0
    )]
    pub max_concurrent_streams: u32,
    /// Longest a call may take, uploads and downloads included, before it
    /// answers DEADLINE_EXCEEDED (a client's shorter grpc-timeout wins);
    /// 0 for no limit. Leave it off, or long, when clients move big files.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_REQUEST_TIMEOUT_SECS",
        default_value_t = 0
    )]
    pub request_timeout_secs: u64,
    /// Secret of the admin key made at the first start (a database with no
    /// keys), e.g. from a Kubernetes secret: `msk_` and 43 base64url
    /// characters. When unset, the server makes one, prints it once and
    /// writes it to `<data-dir>/admin.key` (mode 0600).
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_BOOTSTRAP_KEY",
        hide_env_values = true
    )]
    pub bootstrap_key: Option<String>,
    /// The server's TLS certificate chain (PEM, leaf first); with
    /// `--tls-key`, the server speaks only TLS. Reloaded on SIGHUP and when
    /// the file changes.
    #[arg(global = true, long, env = "MEDIASTORE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(global = true, long, env = "MEDIASTORE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) for mutual TLS: clients must present a
    /// certificate that chains to one of them, unless
    /// `--tls-client-optional`.
    #[arg(global = true, long, env = "MEDIASTORE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// With `--tls-client-ca`: also accept clients without a certificate
    /// (they authenticate with bearer keys).
    #[arg(global = true, long, env = "MEDIASTORE_TLS_CLIENT_OPTIONAL")]
    pub tls_client_optional: bool,
    /// JSON file mapping client certificates (by subject, DNS or URI SAN)
    /// to a tenant, role and scopes; see the README's "TLS and mutual
    /// TLS".
    #[arg(global = true, long, env = "MEDIASTORE_TLS_PRINCIPALS")]
    pub tls_principals: Option<PathBuf>,
    /// Seconds between checks of the TLS files for changes; 0 to reload
    /// only on SIGHUP.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_TLS_RELOAD_SECS",
        default_value_t = 10
    )]
    pub tls_reload_secs: u64,
    /// Address of the HTTP listener that serves media to browsers and
    /// CDNs (`/image/{width}x{height}/{media_id}`); off unless set.
    #[arg(global = true, long, env = "MEDIASTORE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Address of the metrics listener: `GET /metrics` in Prometheus'
    /// text format (calls, bytes, blob store timings, rendition cache,
    /// upload sessions, job queue, database pools). Its own port, so the
    /// media port never shows it; off unless set.
    #[arg(global = true, long, env = "MEDIASTORE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// The URL clients reach the HTTP listener at, e.g.
    /// `https://media.example.com` (a proxy or CDN in front strips any
    /// path it adds). With it, media carry a `url` and GetMediaUrl works.
    #[arg(global = true, long, env = "MEDIASTORE_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Keys that sign media URLs, as `KEY_ID=SECRET` pairs separated by
    /// commas or newlines: the first signs, every one verifies (so a key
    /// can rotate: put the new one first, drop the old once its URLs have
    /// expired). Secrets have at least 32 characters. When neither this nor
    /// `--url-keys-file` is set, the server makes one key and keeps it in
    /// `<data-dir>/url-signing.key`; replicas need the same keys.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_URL_KEYS",
        hide_env_values = true
    )]
    pub url_keys: Option<String>,
    /// A file holding the URL signing keys in `--url-keys`' format (one
    /// `KEY_ID=SECRET` per line; `#` starts a comment).
    #[arg(global = true, long, env = "MEDIASTORE_URL_KEYS_FILE")]
    pub url_keys_file: Option<PathBuf>,
    /// Lifetime of a signed URL when the request does not say.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_URL_TTL_SECS",
        default_value_t = 3600
    )]
    pub url_ttl_secs: u64,
    /// Longest lifetime a request may ask for a signed URL.
    #[arg(
        global = true,
        long,
        env = "MEDIASTORE_URL_MAX_TTL_SECS",
        default_value_t = 7 * 24 * 3600
    )]
    pub url_max_ttl_secs: u64,
    /// Origins browsers may fetch media from with scripts (CORS),
    /// comma-separated, or `*` for any; none when unset (`<img>` and
    /// `<video>` need no CORS).
    #[arg(global = true, long, env = "MEDIASTORE_HTTP_CORS_ORIGINS")]
    pub http_cors_origins: Option<String>,
    /// Log format.
    #[arg(global = true, long, env = "MEDIASTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `mediastore=debug,info`.
    #[arg(global = true, long, env = "MEDIASTORE_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// Settings for a server in `data_dir` with every other value at its
    /// default (what the README's run command uses; tests start from it).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut cli = Cli::parse_from(["mediastore"]);
        cli.config.data_dir = data_dir.into();
        cli.config
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("mediastore.db").display()),
        }
    }

    /// How the job workers run.
    pub fn job_settings(&self) -> crate::jobs::WorkerSettings {
        crate::jobs::WorkerSettings {
            workers: self.job_workers,
            lease: Duration::from_secs(self.job_lease_secs),
            poll: Duration::from_millis(self.job_poll_ms),
            retry_base: Duration::from_millis(self.job_retry_base_ms),
            retry_max: Duration::from_secs(self.job_retry_max_secs),
            retention: Duration::from_secs(self.job_retention_secs),
        }
    }

    /// How imports reach their sources; reads `--import-ca-file`.
    pub fn fetch_settings(&self) -> Result<crate::fetch::FetchSettings, String> {
        let extra_roots = match &self.import_ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--import-ca-file {}: {e}", path.display()))?;
                crate::server::tls::pem_certs(&pem)
                    .map_err(|e| format!("--import-ca-file {}: {e}", path.display()))?
            }
        };
        Ok(crate::fetch::FetchSettings {
            allow: crate::fetch::Allowlist::parse(&self.import_allow)
                .map_err(|e| format!("--import-allow: {e}"))?,
            ports: crate::fetch::Ports::parse(&self.import_ports)
                .map_err(|e| format!("--import-ports: {e}"))?,
            max_redirects: self.import_max_redirects,
            timeout: Duration::from_secs(self.import_timeout_secs),
            connect_timeout: Duration::from_secs(self.import_connect_timeout_secs),
            extra_roots,
        })
    }

    /// Where the S3 blob store is, when `--s3-bucket` is set.
    pub fn s3_settings(&self) -> Result<Option<crate::blob::s3::S3Settings>, String> {
        let Some(bucket) = &self.s3_bucket else {
            return Ok(None);
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let access_key = self
            .s3_access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .ok_or("--s3-bucket needs --s3-access-key-id (or AWS_ACCESS_KEY_ID)")?;
        let secret_key = match (&self.s3_secret_access_key, &self.s3_secret_access_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("--s3-secret-access-key-file {}: {e}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => env("AWS_SECRET_ACCESS_KEY").ok_or(
                "--s3-bucket needs --s3-secret-access-key, --s3-secret-access-key-file or \
                 AWS_SECRET_ACCESS_KEY",
            )?,
        };
        let extra_roots = match &self.s3_ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--s3-ca-file {}: {e}", path.display()))?;
                crate::server::tls::pem_certs(&pem)
                    .map_err(|e| format!("--s3-ca-file {}: {e}", path.display()))?
            }
        };
        Ok(Some(crate::blob::s3::S3Settings {
            endpoint: self
                .s3_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.s3_region)),
            region: self.s3_region.clone(),
            bucket: bucket.clone(),
            prefix: self.s3_prefix.clone(),
            path_style: self.s3_path_style.unwrap_or(self.s3_endpoint.is_some()),
            access_key,
            secret_key,
            part_size: usize::try_from(self.s3_part_size).map_err(|e| e.to_string())?,
            concurrency: self.s3_concurrency,
            timeout: Duration::from_secs(self.s3_timeout_secs),
            extra_roots,
        }))
    }

    /// How long in-flight requests get after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Checks values that clap cannot, with messages that say what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.s3_bucket.is_some() {
            if self.s3_part_size < crate::blob::s3::MIN_PART_SIZE as u64
                || self.s3_part_size > 5 << 30
            {
                return Err(format!(
                    "--s3-part-size {} is out of range; S3 takes 5MiB to 5GiB",
                    self.s3_part_size
                ));
            }
            if self.s3_concurrency == 0 {
                return Err("--s3-concurrency must be at least 1".into());
            }
        }
        if self.max_message_size < 64 * 1024 || self.max_message_size > 1 << 30 {
            return Err(format!(
                "--max-message-size {} is out of range; use 64KiB to 1GiB",
                self.max_message_size
            ));
        }
        if self.window_size < 64 * 1024 || self.window_size > (1 << 31) - 1 {
            return Err(format!(
                "--window-size {} is out of range; use 64KiB to 2GiB",
                self.window_size
            ));
        }
        if self.health_check_secs == 0 {
            return Err("--health-check-secs must be at least 1".into());
        }
        crate::fetch::Allowlist::parse(&self.import_allow)
            .map_err(|e| format!("--import-allow: {e}"))?;
        crate::fetch::Ports::parse(&self.import_ports)
            .map_err(|e| format!("--import-ports: {e}"))?;
        if self.import_timeout_secs == 0 || self.import_connect_timeout_secs == 0 {
            return Err(
                "--import-timeout-secs and --import-connect-timeout-secs must be at least 1".into(),
            );
        }
        if self.job_lease_secs == 0 || self.job_poll_ms == 0 || self.job_retry_base_ms == 0 {
            return Err(
                "--job-lease-secs, --job-poll-ms and --job-retry-base-ms must be at least 1".into(),
            );
        }
        if self.upload_expiry_secs == 0
            || self.upload_hold_secs == 0
            || self.upload_sweep_secs == 0
            || self.gc_every_secs == 0
        {
            return Err(
                "--upload-expiry-secs, --upload-hold-secs, --upload-sweep-secs and \
                        --gc-every-secs must be at least 1"
                    .into(),
            );
        }
        if self.max_upload_size == 0 {
            return Err("--max-upload-size must be more than 0".into());
        }
        if self.inline_max_size > crate::blob::inline::INLINE_MAX {
            return Err(format!(
                "--inline-max-size is {} bytes; blobs stored inline in the database may have at most {} (1MiB)",
                self.inline_max_size,
                crate::blob::inline::INLINE_MAX
            ));
        }
        if self.url_keys.is_some() && self.url_keys_file.is_some() {
            return Err("--url-keys and --url-keys-file are alternatives; give one".into());
        }
        if let Some(keys) = &self.url_keys {
            crate::library::UrlKeys::parse(keys).map_err(|e| format!("--url-keys: {e}"))?;
        }
        if self.url_ttl_secs == 0 || self.url_ttl_secs > self.url_max_ttl_secs {
            return Err(format!(
                "--url-ttl-secs is {}; it must be at least 1 and at most --url-max-ttl-secs ({})",
                self.url_ttl_secs, self.url_max_ttl_secs
            ));
        }
        if let Some(base) = &self.public_base_url {
            crate::library::BaseUrl::parse(base)
                .map_err(|e| format!("--public-base-url {base:?}: {e}"))?;
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together; give both or neither".into());
        }
        if self.tls_cert.is_none()
            && (self.tls_client_ca.is_some()
                || self.tls_principals.is_some()
                || self.tls_client_optional)
        {
            return Err(
                "--tls-client-ca, --tls-client-optional and --tls-principals need TLS: give \
                 --tls-cert and --tls-key too"
                    .into(),
            );
        }
        if self.tls_client_ca.is_none()
            && (self.tls_principals.is_some() || self.tls_client_optional)
        {
            return Err(
                "--tls-principals and --tls-client-optional are about client certificates: \
                 give --tls-client-ca too"
                    .into(),
            );
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.rate_limit_per_key) || !non_negative(self.rate_limit_burst) {
            return Err("--rate-limit-per-key and --rate-limit-burst must be 0 or more".into());
        }
        if let Some(key) = &self.bootstrap_key
            && crate::domain::hash_secret(key).is_none()
        {
            return Err(
                "--bootstrap-key must be msk_ followed by 43 base64url characters (32 random \
                 bytes), e.g. `echo msk_$(openssl rand 32 | basenc --base64url | tr -d =)`"
                    .into(),
            );
        }
        self.type_policy()?;
        self.rendition_settings()?;
        Ok(())
    }

    /// The rendition presets and limits these settings describe.
    pub fn rendition_settings(&self) -> Result<RenditionSettings, String> {
        let mut presets = std::collections::BTreeMap::new();
        for item in self
            .rendition_presets
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (name, spec) = item.split_once('=').ok_or_else(|| {
                format!("--rendition-presets: {item:?} is not name=WxH[:fit][:format][:qN]")
            })?;
            let spec =
                parse_rendition(spec).map_err(|e| format!("--rendition-presets: {name}: {e}"))?;
            presets.insert(name.trim().to_string(), spec);
        }
        let eager: Vec<String> = self
            .eager_renditions
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(missing) = eager.iter().find(|e| !presets.contains_key(*e)) {
            return Err(format!(
                "--eager-renditions names {missing:?}, which is not in --rendition-presets"
            ));
        }
        let sizes = match &self.rendition_sizes {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(parse_dimensions)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("--rendition-sizes: {e}"))?,
            ),
        };
        if self.rendition_max_dimension == 0 {
            return Err("--rendition-max-dimension must be at least 1".into());
        }
        Ok(RenditionSettings {
            presets,
            eager,
            max_dimension: self.rendition_max_dimension,
            sizes,
            bounds: Bounds {
                max_pixels: self.max_image_pixels,
                max_frames: self.max_gif_frames,
                ..Bounds::default()
            },
        })
    }

    /// The content policy these settings describe.
    pub fn type_policy(&self) -> Result<TypePolicy, String> {
        TypePolicy::new(
            &self.allowed_types,
            [
                Some(self.max_image_size),
                Some(self.max_video_size),
                Some(self.max_audio_size),
                Some(self.max_document_size),
                self.max_other_size,
            ],
            self.on_type_mismatch,
        )
        .map_err(|e| format!("--allowed-types: {e}"))
    }
}

/// Parses `WxH`.
fn parse_dimensions(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?} is not WxH, e.g. 256x0"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not WxH, e.g. 256x0"))
    };
    Ok((n(w)?, n(h)?))
}

/// Parses `WxH[:fit][:format][:qN]`.
fn parse_rendition(s: &str) -> Result<RenditionSpec, String> {
    let mut parts = s.split(':').map(str::trim);
    let (width, height) = parse_dimensions(parts.next().unwrap_or(""))?;
    let mut spec = RenditionSpec {
        width,
        height,
        fit: Fit::Contain,
        format: OutputFormat::Jpeg,
        quality: 80,
    };
    for part in parts {
        match part {
            "contain" => spec.fit = Fit::Contain,
            "cover" => spec.fit = Fit::Cover,
            "fill" => spec.fit = Fit::Fill,
            "scale-down" => spec.fit = Fit::ScaleDown,
            "jpeg" | "jpg" => spec.format = OutputFormat::Jpeg,
            "png" => spec.format = OutputFormat::Png,
            "webp" => spec.format = OutputFormat::Webp,
            q if q.starts_with('q') => {
                spec.quality = q[1..]
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| format!("{q:?} is not a quality q1 to q100"))?;
            }
            other => return Err(format!("{other:?} is not a fit, a format or a quality")),
        }
    }
    Ok(spec)
}

/// Parses a byte size such as `1048576`, `512KiB`, `16MiB`, `10GiB` or `5MB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 1048576, 16MiB or 10GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::with_data_dir("/tmp/x");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/mediastore.db");
        assert_eq!(c.validate(), Ok(()));
        let r = c.rendition_settings().expect("valid");
        assert_eq!(r, RenditionSettings::default());
    }

    #[test]
    fn tls_flags_come_in_working_sets() {
        let with = |args: &[&str]| {
            let mut all = vec!["mediastore"];
            all.extend_from_slice(args);
            Cli::parse_from(all).config.validate()
        };
        let (cert, key) = (["--tls-cert", "c.pem"], ["--tls-key", "k.pem"]);
        assert_eq!(with(&[&cert[..], &key[..]].concat()), Ok(()));
        let err = with(&cert).expect_err("a certificate without its key");
        assert!(err.contains("--tls-key"), "{err}");
        let err = with(&["--tls-client-ca", "ca.pem"]).expect_err("mTLS without TLS");
        assert!(err.contains("--tls-cert"), "{err}");
        let err = with(&[&cert[..], &key[..], &["--tls-principals", "p.json"]].concat())
            .expect_err("principals without a client CA");
        assert!(err.contains("--tls-client-ca"), "{err}");
        let full = [
            &cert[..],
            &key[..],
            &["--tls-client-ca", "ca.pem", "--tls-principals", "p.json"],
            &["--tls-client-optional"],
        ]
        .concat();
        assert_eq!(with(&full), Ok(()));
    }

    #[test]
    fn rendition_presets_parse() {
        let mut c = Config::with_data_dir("/tmp/x");
        c.rendition_presets = "sq=512x512:cover:webp, small=300x0:q60".into();
        c.eager_renditions = "sq".into();
        let r = c.rendition_settings().expect("valid");
        let sq = r.presets.get("sq").copied();
        assert_eq!(
            sq.map(|s| (s.width, s.fit, s.format)),
            Some((512, Fit::Cover, OutputFormat::Webp))
        );
        assert_eq!(r.presets.get("small").map(|s| s.quality), Some(60));
        for bad in ["x=1", "x=10x10:round", "x=10x10:q0", "=", "10x10"] {
            c.rendition_presets = bad.into();
            assert!(c.rendition_settings().is_err(), "{bad:?} accepted");
        }
        c.rendition_presets = "a=1x1".into();
        c.eager_renditions = "b".into();
        assert!(c.rendition_settings().is_err());
    }
}
