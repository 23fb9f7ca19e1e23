//! A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in /tmp owned by the
//! `postgres` user, trust authentication on 127.0.0.1 and a free port. One shared server per test
//! process (stopped at exit), or a private one for a test that restarts it.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The newest `bin` directory under /usr/lib/postgresql.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

/// Why PostgreSQL tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(
            "the PostgreSQL tests need root (the server runs as the postgres user)".into(),
        );
    }
    if bin_dir().is_none() {
        return Some(
            "no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)"
                .into(),
        );
    }
    if nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .is_none()
    {
        return Some("no postgres user (apt-get install postgresql)".into());
    }
    None
}

/// Makes the test return early, with the reason printed, when PostgreSQL cannot run here. In CI
/// (CI=true) that is a failure instead.
#[macro_export]
macro_rules! require_pg {
    () => {
        if let Some(why) = common::pg::unavailable() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL prerequisites missing in CI: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);
static SHARED: OnceLock<PgServer> = OnceLock::new();
static SHARED_PID: AtomicI32 = AtomicI32::new(0);
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    let pid = SHARED_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SIGQUIT: immediate shutdown; the cluster is thrown away anyway.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    if let Some(dir) = SHARED_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn postgres_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("postgres user");
    (user.uid.as_raw(), user.gid.as_raw())
}

impl PgServer {
    /// The server every test in this process shares.
    pub fn shared() -> &'static PgServer {
        SHARED.get_or_init(|| {
            let server = PgServer::start();
            SHARED_PID.store(server.pid(), Ordering::SeqCst);
            let _ = SHARED_DIR.set(server.dir.clone());
            // SAFETY: registering a plain extern "C" function with atexit(3).
            unsafe { libc::atexit(stop_shared_at_exit) };
            server
        })
    }

    /// A server of the caller's own, stopped and removed when dropped.
    pub fn start() -> PgServer {
        let bin = bin_dir().expect("PostgreSQL binaries");
        let dir = tempfile::Builder::new()
            .prefix("sftpd-test-pg-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        super::run_ok(
            Command::new(bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(dir.join("data"))
                .uid(uid)
                .gid(gid)
                .current_dir(&dir),
        );
        let server = PgServer {
            port: super::free_port(),
            dir,
            child: Mutex::new(None),
        };
        server.spawn();
        server
    }

    fn spawn(&self) {
        let bin = bin_dir().expect("PostgreSQL binaries");
        let (uid, gid) = postgres_ids();
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=200"])
            .uid(uid)
            .gid(gid)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("postgres");
        *self.child.lock().unwrap() = Some(child);
        let ready = super::wait_until_opt(Duration::from_secs(30), || {
            postgres::Client::connect(&self.url("postgres"), postgres::NoTls).ok()
        });
        assert!(
            ready.is_some(),
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    fn pid(&self) -> i32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |c| c.id() as i32)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn create_db(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }

    /// Stops the server (fast shutdown: sessions are cut, as in a crash of the network).
    pub fn stop(&self) {
        if let Some(child) = self.child.lock().unwrap().take() {
            super::stop_child(child, nix::sys::signal::Signal::SIGINT);
        }
    }

    /// Stops and starts the server on the same port.
    pub fn restart(&self) {
        self.stop();
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
