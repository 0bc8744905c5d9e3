//! Test harness: a real server on an ephemeral port with a temporary data
//! directory, reached through the generated client.
//!
//! With `MEDIASTORE_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB` set, each
//! server gets a fresh PostgreSQL database (created from that URL's server,
//! dropped afterwards), so tests never share rows; otherwise it uses SQLite
//! in its data directory.

pub use mediastore::blob::s3::garage;
pub use process::{ServerProcess, start_process};

mod process;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use mediastore::{
    config::Config,
    library::Library,
    pb::v1::{
        self as pb, QueryUploadRequest, ReadMediaRequest, StartUploadRequest, UploadHeader,
        UploadMediaRequest, WriteUploadRequest, media_service_client::MediaServiceClient,
        upload_service_client::UploadServiceClient,
    },
    server,
};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
};

/// Env var naming the PostgreSQL server to test against.
pub const PG_ENV: &str = "MEDIASTORE_TEST_DATABASE_URL";
/// Client-side message limit, above any chunk the tests send.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// One MiB.
pub const MIB: usize = 1024 * 1024;
/// Secret of the admin key every test server starts with (every scope,
/// the default tenant), given as `--bootstrap-key`.
pub const TEST_KEY: &str = "msk_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY";

/// Adds `authorization: Bearer <key>` to every call, as a client stub's
/// interceptor does; `None` sends no credentials.
#[derive(Clone, Debug)]
pub struct Bearer(pub Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Credentials carrying `key`, sent as given (malformed ones too).
    pub fn key(key: &str) -> Self {
        Self(Some(
            format!("Bearer {key}").parse().expect("ASCII metadata"),
        ))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry credentials: what every client of the
/// tests is built on.
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// A throwaway PostgreSQL database, dropped with this value.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDatabase {
    /// Creates a fresh database on the server named by `MEDIASTORE_TEST_DATABASE_URL`.
    pub async fn create() -> Option<Self> {
        let admin_url = std::env::var(PG_ENV).ok()?;
        let name = format!("mstest_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL test server");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("URL with a database path");
        Some(Self {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await; a short-lived runtime on its own thread does it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = conn.execute(sql.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// A database for one test server: the URL to pass, and the guard that
/// drops it.
pub async fn test_database(data_dir: &Path) -> (String, Option<PgDatabase>) {
    match PgDatabase::create().await {
        Some(db) => (db.url.clone(), Some(db)),
        None => (
            format!("sqlite://{}", data_dir.join("mediastore.db").display()),
            None,
        ),
    }
}

/// A server running inside the test process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its HTTP edge listens, when the test's configuration set
    /// `http_listen` (to any address: the server gets an ephemeral port).
    pub http: Option<SocketAddr>,
    /// Its data directory.
    pub dir: TempDir,
    /// A connected client.
    pub client: MediaServiceClient<Channel>,
    /// The server's configuration.
    pub config: Config,
    /// The server's library, for seeding rows directly.
    pub library: Library,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _db: Option<PgDatabase>,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server after `tweak` has adjusted the configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_connecting(tweak, async |addr| channel(addr).await).await
    }

    /// Starts a server after `tweak` has adjusted the configuration, its
    /// `client` on the channel `connect` opens (a TLS one, say).
    pub async fn spawn_connecting(
        tweak: impl FnOnce(&mut Config),
        connect: impl AsyncFnOnce(SocketAddr) -> Channel,
    ) -> Self {
        // The server's warnings and errors go to the test's output, which
        // nextest shows when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let (url, db) = test_database(dir.path()).await;
        let mut config = Config::with_data_dir(dir.path());
        config.database_url = Some(url);
        config.shutdown_grace_secs = 5;
        // The health probe stages a blob; keep it out of the tests that
        // count staged files, unless a test asks for it.
        config.health_check_secs = 3600;
        // Most tests store arbitrary bytes; the content policy's own tests
        // put the default list back.
        config.allowed_types = "*".into();
        // Eager renditions run after the upload returns; tests that want
        // them turn them on and wait for them.
        config.eager_renditions = String::new();
        config.bootstrap_key = Some(TEST_KEY.to_string());
        tweak(&mut config);
        let http = match config.http_listen {
            Some(_) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                config.http_listen = Some(listener.local_addr().unwrap());
                Some(listener)
            }
            None => None,
        };
        let http_addr = config.http_listen;
        let metrics = match config.metrics_listen {
            Some(_) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                config.metrics_listen = Some(listener.local_addr().unwrap());
                Some(listener)
            }
            None => None,
        };
        let library = server::open_library(&config).await.unwrap();
        server::bootstrap_admin_key(&config, &library)
            .await
            .unwrap();
        let lib = library.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            let listeners = server::Listeners {
                grpc: listener,
                http,
                metrics,
            };
            server::run_listeners(listeners, &cfg, library, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = MediaServiceClient::new(connect(addr).await)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Self {
            addr,
            http: http_addr,
            dir,
            client,
            config,
            library: lib,
            stop: Some(stop),
            task: Some(task),
            _db: db,
        }
    }

    /// Asks the server to shut down gracefully, without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Asks the server to shut down gracefully and waits until it has.
    pub async fn shutdown(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Staged uploads: named files in the staging directory, plus unnamed
    /// (`O_TMPFILE`) ones, which only show as this process's open file
    /// descriptors (the server runs in the test process).
    pub fn staged_files(&self) -> usize {
        let staging = self.dir.path().join("tmp");
        let unnamed = std::fs::read_dir("/proc/self/fd")
            .map(|fds| {
                fds.filter_map(Result::ok)
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .filter(|target| target.starts_with(&staging))
                    .count()
            })
            .unwrap_or(0);
        count_files(&staging) + unnamed
    }

    /// Blob files in the store.
    pub fn blob_files(&self) -> usize {
        blob_files(self.dir.path())
    }

    /// Blobs stored: files in the store and rows inline in the database.
    pub async fn stored_blobs(&self) -> usize {
        // Bytes a delete left unreferenced go after it answers.
        self.library.deletions_settled().await;
        let inline = self.library.repo().inline_blob_count().await.unwrap();
        self.blob_files() + usize::try_from(inline).unwrap()
    }

    /// Flips one bit of a blob's byte at `at`, wherever the blob is (as a
    /// failing disk, or a damaged database page, would).
    pub async fn flip_a_byte(&self, blake3_hex: &str, at: usize) {
        let path = self.blob_path(blake3_hex);
        if path.exists() {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
            return;
        }
        let mut data = self
            .inline_bytes(blake3_hex)
            .await
            .unwrap_or_else(|| panic!("blob {blake3_hex} is neither a file nor inline"));
        data[at] ^= 0x01;
        self.sql(
            "UPDATE inline_blobs SET data = $1 WHERE hash = $2",
            [data.into(), blake3_hex.into()],
        )
        .await;
    }

    /// Whether a blob's bytes are stored, as a file or inline.
    pub async fn has_blob(&self, blake3_hex: &str) -> bool {
        self.library.deletions_settled().await;
        self.blob_path(blake3_hex).exists() || self.inline_bytes(blake3_hex).await.is_some()
    }

    /// Removes a blob's bytes, wherever they are, leaving its row (what
    /// an operator's mistake or a lost disk leaves).
    pub async fn remove_blob_bytes(&self, blake3_hex: &str) {
        let path = self.blob_path(blake3_hex);
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        } else {
            self.sql(
                "DELETE FROM inline_blobs WHERE hash = $1",
                [blake3_hex.into()],
            )
            .await;
        }
    }

    /// A blob's bytes if they are stored inline.
    pub async fn inline_bytes(&self, blake3_hex: &str) -> Option<Vec<u8>> {
        self.library
            .repo()
            .inline_blob(&blake3::Hash::from_hex(blake3_hex).unwrap().into())
            .await
            .unwrap()
    }

    /// Runs one SQL statement on the server's database, behind its back.
    pub async fn sql<const N: usize>(&self, sql: &str, values: [sea_orm::Value; N]) -> u64 {
        use sea_orm::{ConnectionTrait, Statement};
        let db = sea_orm::Database::connect(self.config.database_url.clone().unwrap())
            .await
            .unwrap();
        let backend = db.get_database_backend();
        db.execute(Statement::from_sql_and_values(backend, sql, values))
            .await
            .unwrap()
            .rows_affected()
    }

    /// Path of a blob's file.
    pub fn blob_path(&self, blake3_hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("blobs")
            .join(&blake3_hex[..2])
            .join(blake3_hex)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Connects a client with large windows and message limits.
pub async fn connect(addr: SocketAddr) -> MediaServiceClient<Channel> {
    let channel = channel(addr).await;
    MediaServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// A channel to `addr` with the admin key, retried briefly while the
/// server comes up.
pub async fn channel(addr: SocketAddr) -> Channel {
    channel_with(addr, Bearer::key(TEST_KEY)).await
}

/// A channel to `addr` with the given credentials.
pub async fn channel_with(addr: SocketAddr, creds: Bearer) -> Channel {
    InterceptedService::new(raw_channel(addr).await, creds)
}

/// A channel to `addr` without credentials, retried briefly while the
/// server comes up.
pub async fn raw_channel(addr: SocketAddr) -> tonic::transport::Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(16 * MIB as u32)
        .initial_connection_window_size(16 * MIB as u32);
    for _ in 0..200 {
        if let Ok(ch) = endpoint.connect().await {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {addr} did not accept connections");
}

/// Regular files below `dir` (recursively).
pub fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                count_files(&e.path())
            } else {
                usize::from(ft.is_file())
            }
        })
        .sum()
}

/// Blob files under a data directory.
pub fn blob_files(data_dir: &Path) -> usize {
    count_files(&data_dir.join("blobs"))
}

/// Deterministic pseudo-random bytes (BLAKE3's XOF), different per seed.
pub fn content(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// `data` starting with the magic number of `mime`, so the server's
/// sniffing agrees with that declared type (the rest stays arbitrary and
/// fails analysis, which does not stop it from being stored).
pub fn with_magic(mime: &str, mut data: Vec<u8>) -> Vec<u8> {
    let magic: &[u8] = match mime {
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "image/jpeg" => b"\xff\xd8\xff\xe0",
        "image/gif" => b"GIF89a",
        "video/mp4" => b"\0\0\0\x18ftypisom\0\0\x02\0",
        "application/pdf" => b"%PDF-1.4\n",
        _ => b"",
    };
    let n = magic.len().min(data.len());
    data[..n].copy_from_slice(&magic[..n]);
    data
}

/// A header for `filename` declaring `len` bytes.
pub fn header(filename: &str, len: usize) -> UploadHeader {
    UploadHeader {
        filename: filename.to_string(),
        content_type: "application/octet-stream".to_string(),
        size_bytes: Some(len as u64),
        ..Default::default()
    }
}

/// The first message of an upload: its header.
pub fn head(h: UploadHeader) -> UploadMediaRequest {
    UploadMediaRequest {
        header: Some(h),
        ..Default::default()
    }
}

/// A message of an upload carrying `data`.
pub fn chunk(data: impl Into<Bytes>) -> UploadMediaRequest {
    UploadMediaRequest {
        data: data.into(),
        ..Default::default()
    }
}

/// Upload messages: the header, then `data` in `chunk`-sized pieces. A
/// header that declares no size gets `finish_write` on the last message
/// (the server stores nothing without one of the two); one that declares
/// its size ends with the stream's clean end, the other positive end.
pub fn upload_messages(h: UploadHeader, data: &[u8], piece: usize) -> Vec<UploadMediaRequest> {
    let finish = h.size_bytes.is_none();
    let mut msgs = vec![head(h)];
    msgs.extend(
        data.chunks(piece.max(1))
            .map(|c| chunk(Bytes::copy_from_slice(c))),
    );
    if let Some(last) = msgs.last_mut() {
        last.finish_write = finish;
    }
    msgs
}

/// Uploads `data` in 1 MiB chunks.
pub async fn upload(
    client: &mut MediaServiceClient<Channel>,
    h: UploadHeader,
    data: &[u8],
) -> Result<pb::UploadMediaResponse, Status> {
    let msgs = upload_messages(h, data, MIB);
    client
        .upload_media(tokio_stream::iter(msgs))
        .await
        .map(tonic::Response::into_inner)
}

/// Uploads arbitrary messages.
pub async fn upload_raw(
    client: &mut MediaServiceClient<Channel>,
    msgs: impl Stream<Item = UploadMediaRequest> + Send + 'static,
) -> Result<pb::UploadMediaResponse, Status> {
    client
        .upload_media(msgs)
        .await
        .map(tonic::Response::into_inner)
}

/// Reads a media's range: the first message and the bytes.
pub async fn read(
    client: &mut MediaServiceClient<Channel>,
    id: &str,
    offset: i64,
    limit: u64,
) -> Result<(pb::ReadMediaResponse, Vec<u8>), Status> {
    let mut stream = client
        .read_media(ReadMediaRequest {
            media_id: id.to_string(),
            read_offset: offset,
            read_limit: limit,
            ..Default::default()
        })
        .await?
        .into_inner();
    let first = stream.next().await.expect("a first message")?;
    let mut bytes = first.data.to_vec();
    while let Some(msg) = stream.next().await {
        bytes.extend_from_slice(&msg?.data);
    }
    Ok((first, bytes))
}

/// A rendition: its description, whether it was cached, and its bytes.
pub async fn rendition(
    client: &mut MediaServiceClient<Channel>,
    req: pb::GetRenditionRequest,
) -> Result<(pb::Rendition, bool, Vec<u8>), Status> {
    let mut stream = client.get_rendition(req).await?.into_inner();
    let first = stream.next().await.expect("a first message")?;
    let mut bytes = Vec::new();
    while let Some(msg) = stream.next().await {
        bytes.extend_from_slice(&msg?.data);
    }
    Ok((first.rendition.expect("a rendition"), first.cached, bytes))
}

/// Uploads a `width` x `height` JPEG through `first` and asks `first`
/// for a rendition at half the width (made now), then `second` (found
/// cached, the same bytes): the rendition cache seen from two clients,
/// or two replicas. Returns the photo.
pub async fn rendered_then_cached(
    first: &mut MediaServiceClient<Channel>,
    second: &mut MediaServiceClient<Channel>,
    width: u32,
    height: u32,
) -> pb::Media {
    let jpeg = encoded(image::ImageFormat::Jpeg, width, height);
    let photo = upload(first, header("photo.jpg", jpeg.len()), &jpeg)
        .await
        .unwrap()
        .media
        .unwrap();
    let req = pb::GetRenditionRequest {
        media_id: photo.id.clone(),
        width: width / 2,
        ..Default::default()
    };
    let (r, cached, bytes) = rendition(first, req.clone()).await.unwrap();
    assert!(!cached, "a new rendition was found cached");
    assert_eq!((r.width, r.height), (width / 2, height / 2));
    let (_, cached, again) = rendition(second, req).await.unwrap();
    assert!(cached, "the rendition was made again");
    assert_eq!(again, bytes);
    photo
}

/// The first page (50) of the media `filter` selects.
pub async fn list_filtered(
    client: &mut MediaServiceClient<Channel>,
    filter: pb::MediaFilter,
) -> Vec<pb::Media> {
    client
        .list_media(pb::ListMediaRequest {
            filter: Some(filter),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
}

/// One media, by GetMedia.
pub async fn get_media(client: &mut MediaServiceClient<Channel>, id: &str) -> pb::Media {
    client
        .get_media(pb::GetMediaRequest {
            media_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap()
}

/// Every media, walking all pages.
pub async fn list_all(client: &mut MediaServiceClient<Channel>) -> Vec<pb::Media> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_media(pb::ListMediaRequest {
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.media);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// How long a test waits for background work (an MD5, an eager
/// rendition, ...) before calling it lost. Generous: on a machine loaded
/// with other work (CI beside fuzzers) background work is slow, not lost,
/// and no test may fail on time alone.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `cond` every 20 ms for up to [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The `BadRequest` field named in a status's details, if any.
pub fn bad_field(status: &Status) -> Option<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
}

/// Hex BLAKE3 of bytes.
pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Hex MD5 of bytes.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Inserts media rows straight through the repository, 1000 per
/// transaction, claiming their blobs (which must exist) as uploads do.
pub async fn seed_rows(s: &TestServer, rows: &[mediastore::domain::Media]) {
    use mediastore::repo::BlobClaim;
    for batch in rows.chunks(1000) {
        let mut hashes: Vec<_> = batch.iter().map(|m| m.blob).collect();
        hashes.sort();
        hashes.dedup();
        let claims: Vec<BlobClaim<'_>> = hashes
            .iter()
            .map(|h| {
                let first = batch.iter().find(|m| m.blob == *h).unwrap();
                BlobClaim {
                    hash: first.blob,
                    content: first.content,
                    size: first.size,
                    md5: None,
                    count: batch.iter().filter(|m| m.blob == *h).count() as i64,
                }
            })
            .collect();
        let mut tx = s.library.repo().begin().await.unwrap();
        tx.claim_blobs(&claims).await.unwrap();
        tx.insert_media(&batch.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

// Resumable uploads.

/// A client of the resumable upload service.
pub type Uploads = UploadServiceClient<Channel>;

pub async fn uploads(addr: SocketAddr) -> Uploads {
    UploadServiceClient::new(channel(addr).await)
        .max_decoding_message_size(64 * MIB)
        .max_encoding_message_size(64 * MIB)
}

pub async fn start_upload(client: &mut Uploads, h: UploadHeader) -> pb::Upload {
    client
        .start_upload(StartUploadRequest { header: Some(h) })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap()
}

pub async fn query_upload(client: &mut Uploads, id: &str) -> Result<pb::Upload, Status> {
    client
        .query_upload(QueryUploadRequest {
            upload_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().upload.unwrap())
}

/// One message: `data` at `offset`.
pub fn piece(id: &str, offset: usize, data: &[u8], finish: bool) -> WriteUploadRequest {
    WriteUploadRequest {
        upload_id: id.into(),
        write_offset: offset as u64,
        data: Bytes::copy_from_slice(data),
        finish_write: finish,
    }
}

/// Sends `msgs` as one write stream.
pub async fn send_pieces(
    client: &mut Uploads,
    msgs: Vec<WriteUploadRequest>,
) -> Result<pb::Upload, Status> {
    client
        .write_upload(tokio_stream::iter(msgs))
        .await
        .map(|r| r.into_inner().upload.unwrap())
}

/// Asserts that no media, blob or staged file exists: what a refused
/// upload must leave.
pub async fn assert_nothing_left(s: &mut TestServer) {
    assert!(
        list_all(&mut s.client).await.is_empty(),
        "a media row was left"
    );
    assert_eq!(s.blob_files(), 0, "a blob was left");
    assert_eq!(s.staged_files(), 0, "a staged file was left");
}

/// The `ErrorInfo` reason of a status.
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// An RGB test picture `w` x `h`: a gradient, so encoders have detail to
/// keep and resizers something to average.
pub fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// `picture(w, h)` encoded as `format`.
pub fn encoded(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let img = image::DynamicImage::ImageRgb8(picture(w, h));
    match format {
        image::ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            img.write_with_encoder(enc).unwrap();
        }
        _ => img.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

/// A 64x32 JPEG whose EXIF records what a phone camera would: maker,
/// model, lens, 1/250 s at f/2.8, ISO 400, 23 mm, flash fired,
/// orientation 6 (turn 90° clockwise to view), 300 dpi, taken
/// 2024-07-14 15:30:45 at +02:00, at 48°51'30.24"N 2°17'40.2"W, 35 m up.
pub fn jpeg_with_exif() -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value, experimental::Writer};
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let rat = |n: u32, d: u32| Rational { num: n, denom: d };
    let field = |tag, value| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    };
    let fields = vec![
        field(Tag::Make, ascii("FUJIFILM")),
        field(Tag::Model, ascii("X100V")),
        field(Tag::LensModel, ascii("23mm F2")),
        field(Tag::Orientation, Value::Short(vec![6])),
        field(Tag::XResolution, Value::Rational(vec![rat(300, 1)])),
        field(Tag::YResolution, Value::Rational(vec![rat(300, 1)])),
        field(Tag::ResolutionUnit, Value::Short(vec![2])),
        field(Tag::ExposureTime, Value::Rational(vec![rat(1, 250)])),
        field(Tag::FNumber, Value::Rational(vec![rat(28, 10)])),
        field(Tag::PhotographicSensitivity, Value::Short(vec![400])),
        field(Tag::FocalLength, Value::Rational(vec![rat(23, 1)])),
        field(Tag::Flash, Value::Short(vec![1])),
        field(Tag::DateTimeOriginal, ascii("2024:07:14 15:30:45")),
        field(Tag::OffsetTimeOriginal, ascii("+02:00")),
        field(Tag::GPSLatitudeRef, ascii("N")),
        field(
            Tag::GPSLatitude,
            Value::Rational(vec![rat(48, 1), rat(51, 1), rat(3024, 100)]),
        ),
        field(Tag::GPSLongitudeRef, ascii("W")),
        field(
            Tag::GPSLongitude,
            Value::Rational(vec![rat(2, 1), rat(17, 1), rat(402, 10)]),
        ),
        field(Tag::GPSAltitudeRef, Value::Byte(vec![0])),
        field(Tag::GPSAltitude, Value::Rational(vec![rat(35, 1)])),
    ];
    let mut writer = Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let tiff = tiff.into_inner();
    let jpeg = encoded(image::ImageFormat::Jpeg, 64, 32);
    // SOI, then an APP1 "Exif" segment, then the rest of the JPEG.
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(tiff.len() + 8).unwrap().to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Checks the store against the database: a scrub finds every referenced
/// blob present and correct, garbage collection (with no grace period)
/// finds no blob to remove, and a second scrub still finds all of them.
pub async fn assert_storage_sound(s: &TestServer) {
    let first = s.library.scrub(|_| Ok(())).await.unwrap();
    assert!(first.is_clean(), "scrub: {first:?}");
    let gc = s.library.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(gc.blobs, 0, "garbage collection removed blobs: {gc:?}");
    let second = s.library.scrub(|_| Ok(())).await.unwrap();
    assert!(second.is_clean(), "scrub after gc: {second:?}");
    assert_eq!(second.checked, first.checked);
}

/// A committed test file (tests/fixtures/README.md says what made each).
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// Creates an API key through `AccessService` (with the admin key) and
/// returns its secret; `tenant` empty for the default tenant.
pub async fn new_key(
    addr: SocketAddr,
    tenant: &str,
    name: &str,
    role: &str,
    scopes: &[&str],
) -> String {
    pb::access_service_client::AccessServiceClient::new(channel(addr).await)
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: tenant.into(),
            name: name.into(),
            role: role.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

/// Creates a tenant without quotas through `AccessService`.
pub async fn new_tenant(addr: SocketAddr, name: &str) -> pb::Tenant {
    pb::access_service_client::AccessServiceClient::new(channel(addr).await)
        .create_tenant(pb::CreateTenantRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap()
}

// Administration.

/// A client of the admin service.
pub async fn admin(s: &TestServer) -> pb::admin_service_client::AdminServiceClient<Channel> {
    pb::admin_service_client::AdminServiceClient::new(channel(s.addr).await)
}

/// Every progress message of a scrub; the last one says `done`.
pub async fn scrub(s: &TestServer) -> Vec<pb::ScrubResponse> {
    let mut stream = admin(s)
        .await
        .scrub(pb::ScrubRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut msgs = Vec::new();
    while let Some(m) = stream.next().await {
        msgs.push(m.unwrap());
    }
    assert!(msgs.last().unwrap().done, "the last message says done");
    msgs
}

// HTTP.

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// Sends `method` to an absolute `http://` URL with `headers`, over a
/// connection of its own, and reads the whole answer.
pub async fn http_request(method: &str, url: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    use http_body_util::BodyExt as _;
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(method)
        .uri(if path.is_empty() { "/" } else { path })
        .header("host", host);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = sender
        .send_request(request.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    HttpAnswer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// `GET url` with `headers`.
pub async fn http_get(url: &str, headers: &[(&str, &str)]) -> HttpAnswer {
    http_request("GET", url, headers).await
}
