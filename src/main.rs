//! The `mediastore` binary: parse the configuration, start logging, open
//! the storage, bind, serve until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use mediastore::{
    cli,
    config::{Cli, Command},
    server, telemetry,
};

/// Allocations from this size up are mapped and unmapped on their own.
/// glibc otherwise raises its threshold to the largest block freed, so
/// after a few 8 MiB messages every later one comes from a per-thread heap
/// that keeps the memory: the resumable-upload benchmark saw the server's
/// peak RSS grow from 50 to over 100 MiB that way.
const MMAP_THRESHOLD: i32 = 1 << 20;

#[tokio::main]
async fn main() -> ExitCode {
    fix_malloc_threshold();
    let cli = Cli::parse();
    let config = cli.config;
    if let Err(e) = config.validate() {
        eprintln!("mediastore: {e}");
        return ExitCode::from(2);
    }
    let command = cli.command.unwrap_or(Command::Serve);
    let log_to = match command {
        Command::Serve => telemetry::LogTo::Stdout,
        Command::Gc { .. } | Command::Scrub | Command::Tenants { .. } | Command::Keys { .. } => {
            telemetry::LogTo::Stderr
        }
    };
    if let Err(e) = telemetry::init(config.log_format, &config.log, log_to) {
        eprintln!("mediastore: {e}");
        return ExitCode::from(2);
    }
    let result = match command {
        Command::Serve => serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Gc { min_age_secs } => gc(config, min_age_secs).await,
        Command::Scrub => scrub(config).await,
        Command::Tenants { command } => cli::tenants(&config, command)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Keys { command } => cli::keys(&config, command)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "mediastore stopped on an error");
            ExitCode::FAILURE
        }
    }
}

/// `mediastore gc`: one garbage collection, its report on stdout as JSON.
async fn gc(
    config: mediastore::config::Config,
    min_age_secs: u64,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let library = server::open_library(&config).await?;
    let report = library
        .collect_garbage(std::time::Duration::from_secs(min_age_secs))
        .await?;
    println!(
        "{}",
        serde_json::json!({
            "blobs_removed": report.blobs,
            "blob_bytes_removed": report.blob_bytes,
            "staged_files_removed": report.staged,
            "upload_files_removed": report.upload_files,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// `mediastore scrub`: progress on stderr, the report on stdout as JSON;
/// exit code 1 when a blob is missing or corrupt.
async fn scrub(
    config: mediastore::config::Config,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let library = server::open_library(&config).await?;
    let report = library
        .scrub(|r| {
            eprintln!(
                "scrub: {} blobs, {} bytes checked; {} missing, {} corrupt",
                r.checked,
                r.bytes,
                r.missing.len(),
                r.corrupt.len()
            );
            Ok(())
        })
        .await?;
    let hex = |v: &[mediastore::domain::ContentHash]| -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    };
    println!(
        "{}",
        serde_json::json!({
            "blobs_checked": report.checked,
            "bytes_checked": report.bytes,
            "missing_blake3": hex(&report.missing),
            "corrupt_blake3": hex(&report.corrupt),
        })
    );
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(
    mut config: mediastore::config::Config,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Bound first, so that an ephemeral port (`:0`) is known before the
    // library makes URLs that point at it.
    let http = match config.http_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for HTTP on {addr}: {e}"))?;
            config.http_listen = Some(listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let library = server::open_library(&config).await?;
    server::bootstrap_admin_key(&config, &library).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        http_listen = ?config.http_listen,
        metrics_listen = ?metrics.as_ref().map(|l| l.local_addr()).transpose()?,
        data_dir = %config.data_dir.display(),
        "mediastore serving"
    );
    let listeners = server::Listeners {
        grpc: listener,
        http,
        metrics,
    };
    server::run_listeners(listeners, &config, library, server::shutdown_signal()).await
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_malloc_threshold() {
    // SAFETY: mallopt only sets a tunable of the allocator, under the
    // allocator's own lock, so it is sound from any thread at any time; a
    // refusal (it returns 0) leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_malloc_threshold() {}
