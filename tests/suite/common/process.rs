//! The real `mediastore` binary as a child process, for the tests that
//! kill it, restart it or run two of them on one database.
//!
//! A child listens on a port it picks itself (`--listen 127.0.0.1:0`) and
//! the harness reads the address from its "mediastore serving" log line.
//! Picking a free port in the test and handing it over raced with every
//! other socket of the suite: a port free when asked could be taken before
//! the child bound it, and the child then stopped with a log line nobody
//! read. Here a child that stops before serving fails the test at once,
//! with its exit status and everything it printed.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use super::TEST_KEY;

/// How long a child may take to serve: a loaded machine (the whole suite
/// beside it, a store to reach) may take tens of seconds.
const STARTUP: Duration = Duration::from_secs(120);

/// The message of the log line that announces the listening address.
const SERVING: &str = "mediastore serving";

/// A server process, killed when dropped so that a failing test leaves
/// none behind.
pub struct ServerProcess {
    pub child: Child,
    /// Where it serves gRPC, as it announced.
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Runs `command` (the binary and its flags, without `--listen` and
    /// `--log`) on an ephemeral port, logging JSON lines at `info`, and
    /// waits until it serves. Every line it prints is kept (see
    /// [`Self::output`]) and copied to the test's standard error, marked
    /// with its process id, which the harness shows when the test fails.
    pub fn spawn(mut command: Command) -> Self {
        command
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            .args(["--log-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the mediastore binary");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, announced) = mpsc::channel();
        let pid = child.id();
        let copies = [
            copy_lines(child.stdout.take(), pid, output.clone(), Some(tx)),
            copy_lines(child.stderr.take(), pid, output.clone(), None),
        ];
        let mut process = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            output,
        };
        match announced.recv_timeout(STARTUP) {
            Ok(addr) => process.addr = addr,
            // Standard output closed: the process ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = process.child.wait().expect("wait for the server");
                // All it printed, standard error included.
                copies.into_iter().flatten().for_each(|c| drop(c.join()));
                panic!(
                    "the server stopped before serving ({status}); it printed:\n{}",
                    process.output()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the server did not serve within {STARTUP:?}; it printed:\n{}",
                process.output()
            ),
        }
        process
    }

    /// Everything the process printed so far, one line per line.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `from`'s lines into `kept` and to the test's standard error on a
/// thread of their own (which inherits the test's output capture), until
/// it closes. With `announce`, sends the address of the first "mediastore
/// serving" line.
fn copy_lines(
    from: Option<impl Read + Send + 'static>,
    pid: u32,
    kept: Arc<Mutex<Vec<String>>>,
    mut announce: Option<mpsc::Sender<SocketAddr>>,
) -> Option<JoinHandle<()>> {
    let from = from?;
    Some(std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("[server {pid}] {line}");
            if let Some(addr) = announce.as_ref().and_then(|_| serving_at(&line)) {
                let _ = announce.take().unwrap().send(addr);
            }
            kept.lock().unwrap().push(line);
        }
    }))
}

/// The gRPC address a JSON log line announces, if it is the one that does.
fn serving_at(line: &str) -> Option<SocketAddr> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["message"] != SERVING {
        return None;
    }
    event["listen"].as_str()?.parse().ok()
}

/// The binary with a data directory, a database, every type allowed and
/// the tests' admin key: what most process tests start.
fn server_command(dir: &Path, db_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mediastore"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", db_url, "--allowed-types", "*"])
        .env("MEDIASTORE_BOOTSTRAP_KEY", TEST_KEY);
    command
}

/// Starts the binary on `dir` and `db_url` with `extra` flags.
pub fn start_process(dir: &Path, db_url: &str, extra: &[&str]) -> ServerProcess {
    let mut command = server_command(dir, db_url);
    command.args(extra);
    ServerProcess::spawn(command)
}
