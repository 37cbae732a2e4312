//! Support of the multi-instance tests: private Redis and Postgres servers (own ports, own
//! temporary data directories, stopped when dropped, so also when a test fails), the server
//! binary as a child process, and a small round-robin TCP proxy standing in for a load balancer.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// How long a service may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (bound then released: the child binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rv-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `addr` accepts TCP connections (or panics after `START_TIMEOUT`).
pub async fn wait_listening(addr: SocketAddr, what: &str, child: &mut Child) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

fn tool(name: &str, fallbacks: &[&str]) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    for f in fallbacks {
        for entry in glob_dir(f) {
            if entry.exists() {
                return entry;
            }
        }
    }
    panic!("{name} not found: run `make setup` (it installs redis-server and postgresql)");
}

/// `/usr/lib/postgresql/*/bin/x` → the matching paths, newest version first.
fn glob_dir(pattern: &str) -> Vec<PathBuf> {
    let Some((base, rest)) = pattern.split_once("/*/") else {
        return vec![PathBuf::from(pattern)];
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|d| d.flatten().map(|e| e.path().join(rest)).collect())
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

// ---- Redis -----------------------------------------------------------------------------------

/// A private redis-server (no persistence), killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
            dir: TempDir::new("redis"),
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) on the same port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(tool("redis-server", &["/usr/bin/redis-server"]))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        wait_listening(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            "redis",
            &mut child,
        )
        .await;
        self.child = Some(child);
    }

    /// Kills it (the data is gone with it: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- Postgres --------------------------------------------------------------------------------

/// A private Postgres cluster in a temporary directory, stopped when dropped. `initdb` runs once
/// per machine into a template directory that each instance copies (a copy takes milliseconds,
/// initdb seconds).
pub struct Postgres {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    bin: PathBuf,
    root: bool,
}

const PG_USER: &str = "postgres";

impl Postgres {
    pub async fn start() -> Postgres {
        // Through symlinks (e.g. /usr/local/bin/initdb): `postgres` sits next to the real one.
        let initdb = tool("initdb", &["/usr/lib/postgresql/*/bin/initdb"]);
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        let bin = initdb.parent().expect("bin dir").to_path_buf();
        let root = is_root();
        let template = template(&initdb, root);
        let dir = TempDir::new("pg");
        let data = dir.0.join("data");
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .expect("cp");
        assert!(ok.success(), "copying the postgres template failed");
        if root {
            chown(&dir.0);
        }
        let mut pg = Postgres {
            port: free_port(),
            child: None,
            dir,
            bin,
            root,
        };
        pg.restart().await;
        pg
    }

    fn command(&self, program: &Path) -> Command {
        as_pg_user(program, self.root)
    }

    /// Starts it (again) on the same port and data directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let data = self.dir.0.join("data");
        let mut child = self
            .command(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-k")
            .arg(&self.dir.0)
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        wait_listening(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            "postgres",
            &mut child,
        )
        .await;
        self.child = Some(child);
        // Listening comes a moment before accepting queries: wait for a real answer.
        let url = self.url("postgres");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let u = url.clone();
            let ok = tokio::task::spawn_blocking(move || {
                postgres::Client::connect(&u, postgres::NoTls)
                    .and_then(|mut c| c.simple_query("SELECT 1"))
                    .is_ok()
            })
            .await
            .unwrap_or(false);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_db(&self, name: &str) -> String {
        let admin = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
            c.batch_execute(&sql).expect("create database");
        })
        .await
        .expect("create db task");
        self.url(name)
    }

    /// Runs a query on database `db` and returns the rows' first columns as text.
    pub async fn query_texts(&self, db: &str, sql: &str) -> Vec<String> {
        let url = self.url(db);
        let sql = sql.to_string();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.simple_query(&sql)
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .await
        .expect("query task")
    }

    /// Stops it at once (fast shutdown: sessions are terminated, committed data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "-INT");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_pg_user(program: &Path, root: bool) -> Command {
    if root {
        // Postgres refuses to run as root; setpriv execs (no extra parent to outlive a kill).
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            PG_USER,
            "--regid",
            PG_USER,
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown(p: &Path) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{PG_USER}:{PG_USER}"))
        .arg(p)
        .status()
        .expect("chown");
    assert!(ok.success(), "chown {p:?}");
}

/// The initdb'd template directory, created once (atomically renamed into place).
fn template(initdb: &Path, root: bool) -> PathBuf {
    let version = initdb
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = std::env::temp_dir().join(format!("rv-pg-template-{version}"));
    if base.join("PG_VERSION").exists() {
        return base;
    }
    let tmp = TempDir::new("pg-init");
    if root {
        chown(&tmp.0);
    }
    let data = tmp.0.join("data");
    let out = as_pg_user(initdb, root)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", PG_USER, "-E", "UTF8", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test process may have won the race: either copy is good.
    if std::fs::rename(&data, &base).is_err() && !base.join("PG_VERSION").exists() {
        panic!("could not place the postgres template at {base:?}");
    }
    base
}

// ---- the server binary -----------------------------------------------------------------------

/// One `realtime-voice-server` process, killed when dropped.
pub struct Instance {
    pub addr: SocketAddr,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Instance {
    /// Starts the binary with `--dev` and `env`, and waits for its "listening" line.
    pub async fn start(env: &[(&str, String)]) -> Instance {
        Self::start_with(&["--dev"], env).await
    }

    /// Starts the binary with `args` and `env`, and waits for its "listening" line.
    pub async fn start_with(args: &[&str], env: &[(&str, String)]) -> Instance {
        let dir = TempDir::new("server");
        let log = dir.0.join("server.log");
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_realtime-voice-server"));
        cmd.args(args)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env_remove("DATABASE_PATH")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("OPENAI_API_KEY")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("server binary");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads the listening line, then keeps draining so the child never blocks on the pipe.
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = tokio::time::timeout(START_TIMEOUT, rx)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let addr = line
            .as_deref()
            .and_then(|l| l.split("http://").nth(1))
            .and_then(|a| a.trim_end_matches('/').parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Instance {
            addr,
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Kills the process at once (SIGKILL: a crash; nothing is cleaned up).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it to exit (a graceful shutdown).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        signal(&c, "-TERM");
        c.wait().expect("wait")
    }

    /// The process id (while it runs; 0 after a kill).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The server's log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn ws_url(&self, interview: &str, query: &str) -> String {
        ws_url(self.addr, interview, query)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The realtime URL of `interview` at `addr`.
pub fn ws_url(addr: SocketAddr, interview: &str, query: &str) -> String {
    format!("ws://{addr}/api/v1/interviews/{interview}/realtime/connect{query}")
}

// ---- the round-robin proxy -------------------------------------------------------------------

/// A TCP proxy that sends each new connection to the next backend in turn, skipping backends
/// that refuse (as a load balancer's health check would), like a load balancer without sticky
/// sessions.
pub struct RoundRobin {
    pub addr: SocketAddr,
    next: Arc<AtomicUsize>,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    pub async fn start(backends: Vec<SocketAddr>) -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let next = Arc::new(AtomicUsize::new(0));
        let backends = Arc::new(Mutex::new(backends));
        let (n, b) = (next.clone(), backends.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let list = b.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let start = n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for i in 0..list.len() {
                        let target = list[(start + i) % list.len()];
                        if let Ok(mut up) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                            return;
                        }
                    }
                });
            }
        });
        RoundRobin {
            addr,
            next,
            backends,
            task,
        }
    }

    /// The backend the next connection goes to (if it is up).
    pub fn next_backend(&self) -> SocketAddr {
        let list = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        list[self.next.load(Ordering::SeqCst) % list.len()]
    }

    pub fn ws_url(&self, interview: &str, query: &str) -> String {
        ws_url(self.addr, interview, query)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
