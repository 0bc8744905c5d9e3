//! Garage, a real S3-compatible distributed object store, started on
//! loopback by the tests (one node for the blob-store suite, three for the
//! cluster test) and by the S3 benchmark.
//!
//! The binary comes from `MEDIASTORE_GARAGE_BIN`, else the cache `.ci/run`
//! installs it into (`/var/cache/mediastore-tools/garage-2.5.0`). Without
//! it the Garage tests skip, unless `MEDIASTORE_REQUIRE_GARAGE=1` (set by
//! `.ci/run`, which installs it) makes a missing binary a failure.
//!
//! Not part of the server: compiled in for the test suite and the
//! benchmark, which is why it lives in the library. A harness panics on
//! what goes wrong (a test fails with the message), hence the `unwrap`s.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use super::S3Settings;

/// Where `.ci/run` installs Garage.
const CACHED: &str = "/var/cache/mediastore-tools/garage-2.5.0/bin/garage";
/// The test key, imported into every node (Garage key ids are `GK` and 24
/// hex digits; secrets 64).
pub const KEY_ID: &str = "GK00000000000000000000abcd";
/// Its secret.
pub const SECRET: &str = "00000000000000000000000000000000000000000000000000000000000000ab";
/// The bucket every test uses.
pub const BUCKET: &str = "mediastore-test";

/// The Garage binary, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("MEDIASTORE_GARAGE_BIN") {
        return Some(PathBuf::from(path));
    }
    let cached = PathBuf::from(CACHED);
    if cached.exists() {
        return Some(cached);
    }
    assert!(
        std::env::var("MEDIASTORE_REQUIRE_GARAGE").is_err(),
        "MEDIASTORE_REQUIRE_GARAGE is set but Garage is not installed (see .ci/run)"
    );
    None
}

/// One Garage node.
#[derive(Debug)]
pub struct Node {
    dir: TempDir,
    bin: PathBuf,
    child: Option<Child>,
    /// Its S3 API port.
    pub s3_port: u16,
    /// Its RPC port.
    pub rpc_port: u16,
    /// Its admin API port.
    admin_port: u16,
    /// While killed: its ports, held so that no other test's node takes
    /// them before it starts again.
    held: Vec<HeldPort>,
}

/// A port of a killed node, kept bound. Connections to it are accepted
/// and closed at once, as a store that is down answers (not left hanging,
/// as an unaccepted listener would).
#[derive(Debug)]
struct HeldPort {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldPort {
    fn bind(port: u16) -> Option<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
        listener.set_nonblocking(true).ok()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for HeldPort {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Node {
    /// A new node of a cluster of `replicas`, started. Garage needs its
    /// ports in its configuration, so they are picked here; a node that
    /// stops because one was taken meanwhile starts again on others.
    fn new(bin: &Path, replicas: usize, secret: &str) -> Self {
        let mut why = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let [s3_port, rpc_port, admin_port] = free_ports();
            write_config(dir.path(), replicas, secret, s3_port, rpc_port, admin_port);
            let mut node = Node {
                dir,
                bin: bin.to_path_buf(),
                child: None,
                s3_port,
                rpc_port,
                admin_port,
                held: Vec::new(),
            };
            match node.try_start() {
                Ok(()) => return node,
                Err(e) => why = e,
            }
        }
        panic!("garage did not start in five tries; the last: {why}");
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs a `garage` command against this node; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Restarts the node's server on its ports; panics if it stops.
    pub fn start(&mut self) {
        if let Err(why) = self.try_start() {
            panic!("{why}");
        }
    }

    /// Starts the node's server and waits until it listens. Fails with its
    /// log if it stops first: another socket took one of its ports between
    /// [`free_ports`] and its bind, say.
    fn try_start(&mut self) -> Result<(), String> {
        self.held.clear();
        let log_path = self.dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start garage");
        let child = self.child.insert(child);
        // Up to 30 s: a loaded machine starts it slowly.
        for _ in 0..1200 {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                self.child = None;
                return Err(format!("garage stopped ({status}) before serving:\n{log}"));
            }
            let up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up(self.rpc_port) && up(self.s3_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "garage did not listen on ports {} and {}",
            self.rpc_port, self.s3_port
        ))
    }

    /// Kills the node's server (as a crash would), keeping its ports
    /// until it starts again (see [`HeldPort`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.held = [self.s3_port, self.rpc_port, self.admin_port]
                .into_iter()
                .filter_map(HeldPort::bind)
                .collect();
        }
    }

    /// `id@addr`, as `node connect` takes it.
    fn full_id(&self) -> String {
        self.cli(&["node", "id", "-q"]).trim().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Garage cluster of one or more nodes on loopback, with the test key
/// and bucket.
#[derive(Debug)]
pub struct Garage {
    /// Its nodes; the first is the one clients use.
    pub nodes: Vec<Node>,
}

impl Garage {
    /// One node (replication factor 1); `None` without the binary.
    pub fn single() -> Option<Self> {
        Self::cluster(1)
    }

    /// `n` nodes, each in a zone of its own, every object on `n` of them.
    pub fn cluster(n: usize) -> Option<Self> {
        let bin = binary()?;
        let secret: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Node::new(&bin, n, &secret));
        }
        let first = nodes[0].full_id();
        for node in &nodes[1..] {
            node.cli(&["node", "connect", &first]);
        }
        for (i, node) in nodes.iter().enumerate() {
            let id = node.full_id();
            let id = id.split('@').next().unwrap().to_string();
            nodes[0].cli(&["layout", "assign", "-z", &format!("dc{i}"), "-c", "1G", &id]);
        }
        nodes[0].cli(&["layout", "apply", "--version", "1"]);
        let garage = Self { nodes };
        garage.retry(&["key", "import", "--yes", "-n", "test", KEY_ID, SECRET]);
        garage.retry(&["bucket", "create", BUCKET]);
        garage.retry(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        Some(garage)
    }

    /// A command on the first node, retried (for up to 30 s) while the new
    /// layout spreads.
    fn retry(&self, args: &[&str]) {
        for _ in 0..300 {
            let out = Command::new(&self.nodes[0].bin)
                .arg("-c")
                .arg(self.nodes[0].config())
                .args(args)
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.nodes[0].cli(args);
    }

    /// Settings of a store on node `i`, under `prefix`.
    pub fn settings_on(&self, i: usize, prefix: &str) -> S3Settings {
        S3Settings {
            endpoint: format!("http://127.0.0.1:{}", self.nodes[i].s3_port),
            region: "garage".into(),
            bucket: BUCKET.into(),
            prefix: prefix.into(),
            path_style: true,
            access_key: KEY_ID.into(),
            secret_key: SECRET.into(),
            part_size: super::MIN_PART_SIZE,
            concurrency: 4,
            timeout: Duration::from_secs(30),
            extra_roots: Vec::new(),
        }
    }

    /// Settings of a store on the first node.
    pub fn settings(&self, prefix: &str) -> S3Settings {
        self.settings_on(0, prefix)
    }

    /// The flags that point a server process at this store.
    pub fn flags(&self, prefix: &str) -> Vec<String> {
        let s = self.settings(prefix);
        [
            ("--s3-bucket", s.bucket),
            ("--s3-endpoint", s.endpoint),
            ("--s3-region", s.region),
            ("--s3-prefix", s.prefix),
            ("--s3-access-key-id", s.access_key),
            ("--s3-secret-access-key", s.secret_key),
            ("--s3-part-size", s.part_size.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }

    /// Points a server's configuration at this store.
    pub fn configure(&self, c: &mut crate::config::Config, prefix: &str) {
        let s = self.settings(prefix);
        c.s3_bucket = Some(s.bucket);
        c.s3_endpoint = Some(s.endpoint);
        c.s3_region = s.region;
        c.s3_prefix = s.prefix;
        c.s3_access_key_id = Some(s.access_key);
        c.s3_secret_access_key = Some(s.secret_key);
        c.s3_part_size = s.part_size as u64;
    }
}

fn write_config(dir: &Path, replicas: usize, secret: &str, s3: u16, rpc: u16, admin: u16) {
    let d = dir.display();
    let text = format!(
        r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = {replicas}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "test-admin-token"
"#
    );
    std::fs::write(dir.join("garage.toml"), text).unwrap();
}

/// Three different ports free at the time of asking (held together while
/// asking, so that none is given twice).
fn free_ports() -> [u16; 3] {
    let held = [(); 3].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    held.map(|l| l.local_addr().unwrap().port())
}
