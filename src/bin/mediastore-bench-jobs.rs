//! Job queue benchmark: no-op jobs completed per second by the server's
//! workers, against a bare claim-and-finish loop over the same table in
//! the same run.
//!
//! For each database (SQLite in a temporary directory; PostgreSQL when
//! `--database-url` names one), the same number of `probe` jobs, with no
//! work to do, is enqueued through the library, and then run:
//!
//! - **baseline**: `--workers` tasks, each a loop of two autocommitted
//!   statements per job, the least a durable queue can do: claim the next
//!   queued job (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and mark it done;
//! - **workers**: the server's worker pool with `--workers` workers (claims,
//!   leases, progress, finishing), in this process;
//! - **two processes** (PostgreSQL only): two `mediastore` server processes
//!   with `--workers` workers each on the same database, against the
//!   baseline with twice the tasks.
//!
//! It prints jobs per second and the ratio to the baseline.
//!
//! `cargo build --release --bins && ./target/release/mediastore-bench-jobs [--database-url postgres://...]`

use std::time::{Duration, Instant};

use clap::Parser;
use mediastore::{
    config::Config,
    domain::{JobFilter, JobStatus, NewJob, TenantId, now_micros},
    jobs::{Registry, Workers, kinds},
    library::Library,
    repo::Repo,
    server,
};
use sqlx::{Connection, Executor};

#[derive(Debug, Parser)]
#[command(about = "mediastore job queue benchmark")]
struct Args {
    /// Jobs per run.
    #[arg(long, default_value_t = 5000)]
    jobs: usize,
    /// Workers (and baseline tasks) per process.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// PostgreSQL URL (an empty database is made on it per run); without
    /// it only SQLite is measured.
    #[arg(long)]
    database_url: Option<String>,
    /// Directory for the temporary data directories.
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    println!(
        "{} no-op jobs per run, {} workers per process",
        args.jobs, args.workers
    );
    let dir = tempfile::tempdir_in(&args.dir)?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    report(
        "SQLite, 1 process",
        baseline(&args, &sqlite, args.workers).await?,
        in_process(&args, dir.path(), &sqlite).await?,
    );
    if let Some(pg) = &args.database_url {
        let db = FreshDatabase::create(pg).await?;
        report(
            "PostgreSQL, 1 process",
            baseline(&args, &db.url, args.workers).await?,
            in_process(&args, dir.path(), &db.url).await?,
        );
        let db = FreshDatabase::create(pg).await?;
        report(
            "PostgreSQL, 2 processes",
            baseline(&args, &db.url, 2 * args.workers).await?,
            two_processes(&args, dir.path(), &db.url).await?,
        );
    }
    Ok(())
}

fn report(what: &str, base: f64, measured: f64) {
    println!(
        "{what}: workers {measured:.0} jobs/s, bare loop {base:.0} jobs/s, ratio {:.2}",
        measured / base
    );
}

/// No-op jobs for the default tenant, due at `due` (µs).
fn probes(n: usize, due: i64) -> Vec<NewJob> {
    (0..n)
        .map(|_| {
            let mut j = NewJob::new(
                TenantId::DEFAULT,
                kinds::PROBE,
                serde_json::json!({}),
                "bench",
            );
            j.scheduled_at = due;
            j
        })
        .collect()
}

async fn enqueue(repo: &Repo, n: usize, due: i64) -> Result<(), BoxError> {
    for part in probes(n, due).chunks(500) {
        repo.insert_jobs(part).await?;
    }
    Ok(())
}

/// Waits until no job is queued or running; polls every 20 ms.
async fn drained(library_or_repo: &Repo) -> Result<(), BoxError> {
    let active = JobFilter {
        statuses: vec![JobStatus::Queued, JobStatus::Running],
        ..JobFilter::default()
    };
    while library_or_repo
        .count_jobs(TenantId::DEFAULT, &active)
        .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn library_config(data_dir: &std::path::Path, url: &str, workers: usize) -> Config {
    let mut config = Config::with_data_dir(data_dir);
    config.database_url = Some(url.to_string());
    config.job_workers = workers;
    config.insecure_no_auth = true;
    config
}

/// The server's worker pool in this process.
async fn in_process(args: &Args, dir: &std::path::Path, url: &str) -> Result<f64, BoxError> {
    let data = tempfile::tempdir_in(dir)?;
    let config = library_config(data.path(), url, args.workers);
    let library: Library = server::open_library(&config).await?;
    enqueue(library.repo(), args.jobs, 0).await?;
    let started = Instant::now();
    let pool = Workers::start(library.clone(), Registry::default(), config.job_settings());
    drained(library.repo()).await?;
    let rate = args.jobs as f64 / started.elapsed().as_secs_f64();
    pool.stop(Duration::from_secs(5)).await;
    check_all_succeeded(library.repo(), args.jobs).await?;
    Ok(rate)
}

/// Two server processes sharing the queue.
async fn two_processes(args: &Args, dir: &std::path::Path, url: &str) -> Result<f64, BoxError> {
    let binary = std::env::current_exe()?.with_file_name("mediastore");
    let repo = Repo::connect(url).await?;
    let mut children = Vec::new();
    for _ in 0..2 {
        let data = tempfile::tempdir_in(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(&binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--database-url", url, "--log", "warn", "--insecure-no-auth"])
            .args(["--job-workers", &args.workers.to_string()])
            .spawn()
            .map_err(|e| format!("starting {}: {e} (build it with --bins)", binary.display()))?;
        children.push((Child(child), data));
    }
    // Due in the future, so both are waiting when the jobs are: the clock
    // starts at the due time.
    let due = now_micros() + 3_000_000;
    enqueue(&repo, args.jobs, due).await?;
    let wait = due - now_micros();
    tokio::time::sleep(Duration::from_micros(u64::try_from(wait).unwrap_or(0))).await;
    let started = Instant::now();
    drained(&repo).await?;
    let rate = args.jobs as f64 / started.elapsed().as_secs_f64();
    drop(children);
    check_all_succeeded(&repo, args.jobs).await?;
    Ok(rate)
}

/// Kills the server process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn check_all_succeeded(repo: &Repo, n: usize) -> Result<(), BoxError> {
    let done = JobFilter {
        statuses: vec![JobStatus::Succeeded],
        ..JobFilter::default()
    };
    let got = repo.count_jobs(TenantId::DEFAULT, &done).await?;
    if got != n as u64 {
        return Err(format!("{got} of {n} jobs succeeded").into());
    }
    Ok(())
}

/// The bare loop: `tasks` connections, each claiming one job and marking
/// it done, two autocommitted statements per job.
async fn baseline(args: &Args, url: &str, tasks: usize) -> Result<f64, BoxError> {
    let repo = Repo::connect(url).await?;
    enqueue(&repo, args.jobs, 0).await?;
    let postgres = url.starts_with("postgres");
    let claim = if postgres {
        "UPDATE jobs SET status = 1, lease_owner = 'bare', lease_until = $1, \
         attempts = attempts + 1, started_at = $1, updated_at = $1 \
         WHERE id = (SELECT id FROM jobs WHERE status = 0 AND scheduled_at <= $1 \
         ORDER BY priority DESC, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
    } else {
        "UPDATE jobs SET status = 1, lease_owner = 'bare', lease_until = $1, \
         attempts = attempts + 1, started_at = $1, updated_at = $1 \
         WHERE id = (SELECT id FROM jobs WHERE status = 0 AND scheduled_at <= $1 \
         ORDER BY priority DESC, scheduled_at, id LIMIT 1) RETURNING id"
    };
    let finish = "UPDATE jobs SET status = 2, progress = 100, result = '{}', finished_at = $1, \
                  updated_at = $1, lease_until = NULL WHERE id = $2";
    let started = Instant::now();
    let mut handles = Vec::new();
    if postgres {
        for _ in 0..tasks {
            let url = url.to_string();
            handles.push(tokio::spawn(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                loop {
                    let now = now_micros();
                    let row: Option<(uuid::Uuid,)> = sqlx::query_as(claim)
                        .bind(now)
                        .fetch_optional(&mut conn)
                        .await?;
                    let Some((id,)) = row else { break };
                    sqlx::query(finish)
                        .bind(now_micros())
                        .bind(id)
                        .execute(&mut conn)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            }));
        }
    } else {
        // SQLite has one writer: the tasks share one connection, as the
        // server's write pool does, with the same durability settings.
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10)),
            )
            .await?;
        for _ in 0..tasks {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let now = now_micros();
                    let row: Option<(uuid::Uuid,)> = sqlx::query_as(claim)
                        .bind(now)
                        .fetch_optional(&pool)
                        .await?;
                    let Some((id,)) = row else { break };
                    pool.execute(sqlx::query(finish).bind(now_micros()).bind(id))
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            }));
        }
    }
    for h in handles {
        h.await??;
    }
    let rate = args.jobs as f64 / started.elapsed().as_secs_f64();
    check_all_succeeded(&repo, args.jobs).await?;
    // The next run starts from an empty queue.
    while repo.purge_finished_jobs(i64::MAX, 5000).await? > 0 {}
    Ok(rate)
}

/// A fresh database on a PostgreSQL server, dropped at the end.
struct FreshDatabase {
    admin: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create(admin: &str) -> Result<Self, BoxError> {
        let name = format!("msbench_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Ok(Self {
            url: format!("{base}/{name}"),
            admin: admin.to_string(),
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = conn.execute(sql.as_str()).await;
                }
            });
        })
        .join();
    }
}
