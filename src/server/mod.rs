//! Builds and runs the gRPC server: the services, health, reflection,
//! transport settings and graceful shutdown.
//!
//! Two layers sit between hyper and the services, each mending an answer
//! tonic gets wrong for this service's clients: [`reset`] makes a client's
//! reset of an upload stream an error instead of its clean end, and
//! [`deadline`] answers an expired deadline `DEADLINE_EXCEEDED`. Outside
//! them all, [`observe`] counts every call for the metrics.

pub mod deadline;
pub mod observe;
pub mod reset;
pub mod tls;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

use crate::{
    auth::{self, AuthLayer, Authenticator},
    blob::{BlobStore, fs::FsBlobStore, s3::S3BlobStore},
    config::Config,
    error::{Error, Result},
    library::{BaseUrl, Delivery, Library, Limits, UrlKeys},
    pb::{
        self,
        v1::{
            access_service_server::AccessServiceServer, admin_service_server::AdminServiceServer,
            binding_service_server::BindingServiceServer,
            folder_service_server::FolderServiceServer, job_service_server::JobServiceServer,
            media_service_server::MediaServiceServer, upload_service_server::UploadServiceServer,
        },
    },
    repo::Repo,
    service::{
        access::AccessApi, admin::AdminApi, binding::BindingApi, folder::FolderApi, jobs::JobApi,
        media::MediaApi, resumable::UploadApi,
    },
};

/// Opens the data directory, the database (running migrations) and the
/// blob store, and starts the library's background tasks.
pub async fn open_library(config: &Config) -> Result<Library> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::io(
            format!("creating the data directory {}", config.data_dir.display()),
            e,
        )
    })?;
    let repo = Repo::connect(&config.database_url()).await?;
    let blobs: Arc<dyn BlobStore> = match config
        .s3_settings()
        .map_err(|e| Error::invalid("s3_bucket", e))?
    {
        Some(s3) => Arc::new(
            S3BlobStore::open(&s3, &config.data_dir, tokio::runtime::Handle::current())
                .map_err(|e| Error::io(format!("opening the S3 blob store {}", s3.bucket), e))?,
        ),
        None => Arc::new(FsBlobStore::open(&config.data_dir).map_err(|e| {
            Error::io(
                format!("opening the blob store in {}", config.data_dir.display()),
                e,
            )
        })?),
    };
    Library::start(
        repo,
        blobs,
        Limits {
            max_upload_size: config.max_upload_size,
            policy: config
                .type_policy()
                .map_err(|e| Error::invalid("allowed_types", e))?,
            renditions: config
                .rendition_settings()
                .map_err(|e| Error::invalid("rendition_presets", e))?,
            upload_expiry: Duration::from_secs(config.upload_expiry_secs),
            upload_hold: Duration::from_secs(config.upload_hold_secs),
            upload_sweep: Duration::from_secs(config.upload_sweep_secs),
            gc_every: Duration::from_secs(config.gc_every_secs),
            inline_max_size: config.inline_max_size,
            dedupe_scope: config.dedupe_scope,
            delivery: delivery(config)?,
        },
    )
    .await
}

/// Name of the file in the data directory holding the URL signing key a
/// server made for itself (when given none).
pub const URL_KEY_FILE: &str = "url-signing.key";

/// How media URLs are made: where they point (`--public-base-url`, else
/// the HTTP listener's own address when it is a specific one) and the
/// keys that sign them. Without a base URL the server makes no URLs and
/// needs no keys.
fn delivery(config: &Config) -> Result<Delivery> {
    let base = match (&config.public_base_url, config.http_listen) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(addr)) if !addr.ip().is_unspecified() => Some(format!("http://{addr}")),
        (None, Some(addr)) => {
            tracing::warn!(
                %addr,
                "--http-listen is a wildcard address and --public-base-url is unset, so media \
                 get no URLs; set --public-base-url to the address clients reach"
            );
            None
        }
        (None, None) => None,
    };
    let Some(base) = base else {
        return Ok(Delivery::default());
    };
    let base = BaseUrl::parse(&base).map_err(|e| Error::invalid("public_base_url", e))?;
    let keys = match (&config.url_keys, &config.url_keys_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading --url-keys-file {}", path.display()), e))?,
        (None, None) => own_url_key(&config.data_dir)?,
    };
    let keys = UrlKeys::parse(&keys).map_err(|e| Error::invalid("url_keys", e))?;
    Ok(Delivery {
        base: Some(base),
        keys: Some(keys),
        ttl: Duration::from_secs(config.url_ttl_secs),
        max_ttl: Duration::from_secs(config.url_max_ttl_secs),
    })
}

/// The URL signing key kept in the data directory, made at the first
/// start that needs one. A single server needs nothing more; replicas
/// must share keys through `--url-keys` or `--url-keys-file` instead.
fn own_url_key(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join(URL_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("reading {}", path.display()), e));
        }
        Err(_) => {}
    }
    let key = UrlKeys::generate()
        .map_err(|e| Error::io("making a URL signing key", std::io::Error::other(e)))?;
    write_private(&path, format!("{key}\n").as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tracing::info!(path = %path.display(), "made a URL signing key");
    Ok(key)
}

/// Name of the file in the data directory that receives the admin key
/// made at the first start.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// On a database without keys, unless authentication is off, makes the
/// first admin key (every scope, the default tenant). Unless its secret
/// came from `--bootstrap-key`, prints it once and writes it to
/// `<data-dir>/admin.key`, readable by the server's user only. Returns the
/// secret when a key was made.
pub async fn bootstrap_admin_key(config: &Config, library: &Library) -> Result<Option<String>> {
    // Without authentication no key is needed; the first start with it
    // makes one.
    if config.insecure_no_auth {
        return Ok(None);
    }
    let Some(made) = library
        .bootstrap_admin_key(config.bootstrap_key.as_deref())
        .await?
    else {
        return Ok(None);
    };
    if config.bootstrap_key.is_none() {
        let path = config.data_dir.join(ADMIN_KEY_FILE);
        write_private(&path, format!("{}\n", made.secret).as_bytes())
            .map_err(|e| Error::io(format!("writing the admin key to {}", path.display()), e))?;
        println!(
            "mediastore: created the admin key (every scope, tenant \"default\"); it is shown \
             only now and kept in {} (mode 0600):\n{}",
            path.display(),
            made.secret
        );
    }
    tracing::info!(prefix = %made.shown_prefix, "created the first admin key");
    Ok(Some(made.secret))
}

/// Writes `bytes` to a file only its owner can read, replacing one left by
/// an earlier database.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    // `mode` applies only to a new file; an old one gets it here.
    #[cfg(unix)]
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Serves gRPC on `listener` until `shutdown` resolves, then stops
/// accepting and gives in-flight requests `config.shutdown_grace()` to
/// finish.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    library: Library,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run_with_http(listener, None, config, library, shutdown).await
}

/// [`run`], with the HTTP edge ([`crate::http`]) on `http` when given: it
/// starts and stops with the gRPC server, under the same grace period.
pub async fn run_with_http(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: &Config,
    library: Library,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listeners = Listeners {
        grpc: listener,
        http,
        metrics: None,
    };
    run_listeners(listeners, config, library, shutdown).await
}

/// The sockets a server serves on, bound by the caller (tests bind port 0
/// and read the address back).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// The HTTP edge (`--http-listen`), if on.
    pub http: Option<TcpListener>,
    /// The metrics listener (`--metrics-listen`), if on.
    pub metrics: Option<TcpListener>,
}

/// [`run`] on every listener given: the HTTP edge and the metrics
/// listener start and stop with the gRPC server, under the same grace
/// period.
pub async fn run_listeners(
    listeners: Listeners,
    config: &Config,
    library: Library,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Listeners {
        grpc: listener,
        http,
        metrics,
    } = listeners;
    let max_message = usize::try_from(config.max_message_size)?;
    let unruled = auth::rules::rpcs_without_rule();
    if !unruled.is_empty() {
        return Err(format!(
            "no scope is defined for {}; add them to auth::rules::RPC_SCOPES",
            unruled.join(", ")
        )
        .into());
    }
    let mode = if config.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: every caller acts as the default tenant with every scope; \
             anyone who can reach the port can read, change and delete everything"
        );
        auth::Mode::Off
    } else {
        auth::Mode::Keys
    };
    let mut authenticator = Authenticator::new(library.clone(), mode);
    if config.rate_limit_per_key > 0.0 {
        let burst = if config.rate_limit_burst > 0.0 {
            config.rate_limit_burst
        } else {
            config.rate_limit_per_key
        };
        authenticator = authenticator.with_rate_limit(config.rate_limit_per_key, burst);
    }
    let tls = match tls::TlsFiles::from_config(config) {
        Some(files) => Some(tls::Tls::load(files, library.clone()).await?),
        None => None,
    };
    if let Some(tls) = &tls {
        authenticator = authenticator.with_certificates(tls.principals());
    }
    let request_timeout =
        (config.request_timeout_secs > 0).then(|| Duration::from_secs(config.request_timeout_secs));
    let window = u32::try_from(config.window_size)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    // Checked before serving, so a server whose store is down starts
    // NOT_SERVING rather than for the first interval SERVING.
    let serving = check_health(&library, true).await;
    set_health(&health, serving).await;
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let watcher = tokio::spawn(watch_health(
        health.clone(),
        library.clone(),
        std::time::Duration::from_secs(config.health_check_secs),
        serving,
    ));
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let stopped_http = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut http_tasks = Vec::new();
    if let Some(listener) = http {
        let router = crate::http::router(
            library.clone(),
            crate::http::Cors::parse(config.http_cors_origins.as_deref()),
        );
        http_tasks.push(tokio::spawn(crate::http::serve(
            listener,
            router,
            stopped_http(http_stopped.clone()),
            config.shutdown_grace(),
        )));
    }
    if let Some(listener) = metrics {
        http_tasks.push(tokio::spawn(crate::http::serve(
            listener,
            crate::http::scrape::router(library.clone()),
            stopped_http(http_stopped.clone()),
            config.shutdown_grace(),
        )));
    }
    let observed = Arc::clone(library.metrics());
    let known = Arc::new(observe::KnownRpcs::served());
    let folders = FolderServiceServer::new(FolderApi::new(library.clone()));
    let bindings = BindingServiceServer::new(BindingApi::new(library.clone()));
    let admin = AdminServiceServer::new(AdminApi::new(library.clone()));
    let access = AccessServiceServer::new(AccessApi::new(library.clone()));
    let uploads = UploadServiceServer::new(UploadApi::new(library.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let jobs = JobServiceServer::new(JobApi::new(library.clone()));
    let fetcher = crate::fetch::Fetcher::new(config.fetch_settings()?)?;
    let workers = crate::jobs::Workers::start(
        library.clone(),
        crate::jobs::Registry::new(Some(fetcher.clone())),
        config.job_settings(),
    );
    let media = MediaServiceServer::new(MediaApi::new(library, fetcher))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stop_rx.await;
    };
    let router = Server::builder()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .max_concurrent_streams(
            (config.max_concurrent_streams > 0).then_some(config.max_concurrent_streams),
        )
        .layer(tower_layer::layer_fn(move |inner| {
            observe::Observe::new(inner, Arc::clone(&observed), Arc::clone(&known))
        }))
        .layer(tower_layer::layer_fn(move |inner| {
            deadline::Deadline::new(inner, request_timeout)
        }))
        .layer(tower_layer::layer_fn(reset::ResetVisible::new))
        .layer(AuthLayer(authenticator))
        .trace_fn(|req| {
            tracing::info_span!(
                "rpc",
                method = %req.uri().path(),
                media_id = tracing::field::Empty,
                folder_id = tracing::field::Empty
            )
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(media)
        .add_service(folders)
        .add_service(bindings)
        .add_service(uploads)
        .add_service(admin)
        .add_service(access)
        .add_service(jobs);
    type Serving<'a> =
        Pin<Box<dyn Future<Output = std::result::Result<(), tonic::transport::Error>> + Send + 'a>>;
    let (mut server, tls_watcher): (Serving<'_>, _) = match tls {
        Some(tls) => {
            let every =
                (config.tls_reload_secs > 0).then(|| Duration::from_secs(config.tls_reload_secs));
            let watcher = tokio::spawn(tls::watch(Arc::clone(&tls), every));
            (
                Box::pin(
                    router.serve_with_incoming_shutdown(tls::incoming(listener, tls), stopped),
                ),
                Some(watcher),
            )
        }
        None => (
            Box::pin(router.serve_with_incoming_shutdown(incoming(listener), stopped)),
            None,
        ),
    };
    let stop_watchers = || {
        watcher.abort();
        if let Some(w) = &tls_watcher {
            w.abort();
        }
    };

    tokio::select! {
        res = &mut server => {
            stop_watchers();
            for task in &http_tasks {
                task.abort();
            }
            workers.stop(Duration::ZERO).await;
            return Ok(res?);
        }
        () = shutdown => {}
    }
    tracing::info!(
        grace_secs = config.shutdown_grace_secs,
        "shutting down: no new connections; in-flight requests may finish"
    );
    stop_watchers();
    set_health(&health, false).await;
    let _ = stop_tx.send(());
    let _ = http_stop.send(true);
    // Running jobs get the same grace as requests, at the same time; what
    // is left is given back to the queue for another worker.
    let (served, ()) = tokio::join!(
        tokio::time::timeout(config.shutdown_grace(), &mut server),
        workers.stop(config.shutdown_grace()),
    );
    match served {
        Ok(res) => res?,
        Err(_) => tracing::warn!("grace period over; abandoning the requests still running"),
    }
    for task in http_tasks {
        // Each stops within the same grace period on its own.
        task.await??;
    }
    Ok(())
}

/// Names `grpc.health.v1` answers for: the server as a whole (`""`) and
/// every mediastore service. They share the storage, so they are healthy
/// together.
pub const HEALTH_NAMES: &[&str] = &[
    "",
    <MediaServiceServer<MediaApi> as tonic::server::NamedService>::NAME,
    <FolderServiceServer<FolderApi> as tonic::server::NamedService>::NAME,
    <BindingServiceServer<BindingApi> as tonic::server::NamedService>::NAME,
    <UploadServiceServer<UploadApi> as tonic::server::NamedService>::NAME,
    <AdminServiceServer<AdminApi> as tonic::server::NamedService>::NAME,
    <AccessServiceServer<AccessApi> as tonic::server::NamedService>::NAME,
    <JobServiceServer<JobApi> as tonic::server::NamedService>::NAME,
];

/// Reports the server and every mediastore service as serving or not.
async fn set_health(health: &tonic_health::server::HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    for name in HEALTH_NAMES {
        health.set_service_status(*name, status).await;
    }
}

/// Keeps `grpc.health.v1` truthful: the services are NOT_SERVING while
/// the database does not answer or the blob store cannot be written, so a
/// load balancer stops sending it uploads it would fail; and SERVING again
/// by themselves once both answer.
async fn watch_health(
    health: tonic_health::server::HealthReporter,
    library: Library,
    every: std::time::Duration,
    mut serving: bool,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let now = check_health(&library, !serving).await;
        if now != serving {
            if now {
                tracing::info!("storage answers again; serving");
            }
            set_health(&health, now).await;
            serving = now;
        }
    }
}

/// Longest a readiness check waits for the storage (a store that hangs
/// is as unready as one that refuses).
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks the storage, and records the outcome in the metrics: whether it
/// serves, and if not which component failed and why. Logs a failure when
/// `log_failure` (the first of a run of failures, or the start-up check).
async fn check_health(library: &Library, log_failure: bool) -> bool {
    let checked = tokio::time::timeout(HEALTH_TIMEOUT, library.check_health()).await;
    let m = &library.metrics().health;
    m.unready.clear();
    let (component, cause, e) = match checked {
        Ok(Ok(())) => {
            m.serving.set(1);
            return true;
        }
        Ok(Err(e)) => {
            let (component, cause) = match &e {
                Error::Io { source, .. } => (
                    "blob_store",
                    crate::error::StoreUnavailable::of(source)
                        .map_or_else(|| "error".to_string(), |u| u.cause),
                ),
                _ => ("database", "error".to_string()),
            };
            (component, cause, e)
        }
        // The database or the store hangs: which, the log of the calls
        // that time out says.
        Err(_) => (
            "storage",
            "TimedOut".to_string(),
            Error::io("checking the storage", timed_out(HEALTH_TIMEOUT)),
        ),
    };
    if log_failure {
        tracing::error!(error = %e, component, cause, "storage check failed; reporting NOT_SERVING");
    }
    m.serving.set(0);
    m.unready
        .get_or_create(&crate::metrics::UnreadyLabels { component, cause })
        .set(1);
    false
}

/// The error of a check that took longer than `limit`.
fn timed_out(limit: std::time::Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {limit:?}"),
    )
}

/// Accepted connections with Nagle's algorithm off: a small response must
/// not wait for the client's delayed ACK (about 40 ms per call otherwise),
/// and with TCP keepalive so dead peers are noticed.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)))
}

/// Reflection over every service served here, in either protocol version
/// (grpcurl speaks only v1alpha; newer tools prefer v1), and over the
/// `google.rpc` error details, so that grpcurl prints an error's
/// `ErrorInfo` and `BadRequest` instead of their raw bytes.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A channel to a server just started on `addr`, retrying for up to 5 s
/// while it comes up (for benchmarks and tools that start one).
pub async fn connect_when_up(
    addr: std::net::SocketAddr,
) -> std::result::Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?;
    for _ in 0..100 {
        if let Ok(ch) = endpoint.connect().await {
            return Ok(ch);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("the server on {addr} did not come up").into())
}
