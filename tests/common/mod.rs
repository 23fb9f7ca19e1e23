//! The real-thing test harness: a private sshd on a free 127.0.0.1 port, a private rsyslogd
//! writing local5 to a file, throwaway users whose login shell is the freshly built wrapper, and
//! the real OpenSSH `ssh` and `sftp` clients.
//!
//! The host's /etc/sftpd-wrapper.toml and /dev/log stay untouched: sshd runs in a mount namespace
//! of its own in which the test's config file is bind-mounted over /etc/sftpd-wrapper.toml and a
//! test directory holding the device nodes and rsyslogd's socket is mounted over /dev. So every
//! test has its own config and syslog while the wrapper and sftp-server use their real paths, and
//! tests run in parallel.

#![allow(dead_code)]

pub mod loggen;
pub mod pg;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// True when the e2e tests can run; otherwise prints why they are skipped.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the end-to-end tests need root (they add users and run sshd)");
        return false;
    }
    for tool in [
        "/usr/sbin/sshd",
        "/usr/sbin/rsyslogd",
        "/usr/bin/sftp",
        "/usr/bin/ssh",
        SFTP_SERVER,
    ] {
        if !Path::new(tool).exists() {
            eprintln!(
                "SKIPPED: {tool} is missing (apt-get install openssh-server openssh-client openssh-sftp-server rsyslog)"
            );
            return false;
        }
    }
    true
}

/// Makes the e2e test return early, with the reason printed, when it cannot run here. In CI
/// (CI=true) a skip would hide a broken setup, so it fails instead.
#[macro_export]
macro_rules! require_e2e {
    () => {
        if !common::can_run() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("end-to-end prerequisites missing in CI");
            }
            return;
        }
    };
}

static USER_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Sends `signal` to a daemon the tests started and waits for it to exit.
fn stop_child(mut child: Child, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
    let _ = child.wait();
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn wait_until_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub wrapper: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub out_dir: PathBuf,
    pub client_key: PathBuf,
    sshd: Child,
    rsyslogd: Mutex<Option<Child>>,
    users: Mutex<Vec<String>>,
    /// More syslog sockets for rsyslogd to listen on (a chroot jail's /dev/log).
    extra_sockets: Mutex<Vec<PathBuf>>,
}

impl Harness {
    /// Starts rsyslogd and sshd with `config` as /etc/sftpd-wrapper.toml.
    pub fn start(config: &str) -> Harness {
        Harness::start_with(config, "")
    }

    /// Like [`Harness::start`], with extra sshd_config lines.
    pub fn start_with(config: &str, extra_sshd_config: &str) -> Harness {
        Harness::start_full(config, extra_sshd_config, SFTP_SERVER)
    }

    /// Like [`Harness::start_with`], with another `Subsystem sftp` command.
    pub fn start_full(config: &str, extra_sshd_config: &str, subsystem: &str) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("sftpd-e2e-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path().to_owned();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["bin", "home", "keys", "dev", "rsyslog", "hooks"] {
            fs::create_dir(root.join(sub)).unwrap();
            fs::set_permissions(root.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out_dir = root.join("out");
        fs::create_dir(&out_dir).unwrap();
        fs::set_permissions(&out_dir, fs::Permissions::from_mode(0o1777)).unwrap();

        let wrapper = root.join("bin/sftpd-wrapper");
        fs::copy(env!("CARGO_BIN_EXE_sftpd-wrapper"), &wrapper).unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

        let config_path = root.join("sftpd-wrapper.toml");
        fs::write(&config_path, config).unwrap();
        fs::set_permissions(&config_path, fs::Permissions::from_mode(0o644)).unwrap();
        // The bind mount needs a mount point; an empty file means built-in defaults.
        if !Path::new("/etc/sftpd-wrapper.toml").exists() {
            let _ = fs::write("/etc/sftpd-wrapper.toml", "");
        }
        for dev in DEVICES {
            fs::write(root.join("dev").join(dev), "").unwrap();
        }
        // Terminals, for the tests of sessions that ask for one: the host's devpts, and its
        // ptmx (root opens it whatever its mode).
        fs::create_dir(root.join("dev/pts")).unwrap();
        std::os::unix::fs::symlink("pts/ptmx", root.join("dev/ptmx")).unwrap();

        let host_key = root.join("keys/host_ed25519");
        let client_key = root.join("keys/client_ed25519");
        for key in [&host_key, &client_key] {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", ""])
                    .arg("-f")
                    .arg(key),
            );
        }
        fs::create_dir(root.join("keys/authorized")).unwrap();

        let log_path = root.join("sftpd.log");
        let harness_rsyslog = Harness::spawn_rsyslogd(&root, &log_path, &[]);

        let _ = fs::create_dir_all("/run/sshd");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let sshd_config = root.join("sshd_config");
            fs::write(
                &sshd_config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {root}/sshd.pid\n\
                     AuthorizedKeysFile {root}/keys/authorized/%u\nStrictModes no\nUsePAM no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nLogLevel VERBOSE\nMaxStartups 100\n\
                     Subsystem sftp {subsystem}\n{extra_sshd_config}\n",
                    hk = host_key.display(),
                    root = root.display(),
                ),
            )
            .unwrap();
            let mut sshd = spawn_in_namespace(&root, &config_path, &sshd_config);
            let ready = wait_for_port(port, &mut sshd);
            match ready {
                Ok(()) => {
                    return Harness {
                        dir,
                        port,
                        wrapper,
                        config_path,
                        log_path,
                        out_dir,
                        client_key,
                        sshd,
                        rsyslogd: Mutex::new(Some(harness_rsyslog)),
                        users: Mutex::new(Vec::new()),
                        extra_sockets: Mutex::new(Vec::new()),
                    };
                }
                Err(e) => last_err = e,
            }
        }
        panic!(
            "sshd did not start: {last_err}\n{}",
            fs::read_to_string(root.join("sshd.err")).unwrap_or_default()
        );
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    fn spawn_rsyslogd(root: &Path, log_path: &Path, extra_sockets: &[PathBuf]) -> Child {
        let conf = root.join("rsyslog.conf");
        let socket = root.join("dev/log");
        let _ = fs::remove_file(&socket);
        fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{sock}\" RateLimit.Interval=\"0\")\n\
                 {extra}\
                 $RepeatedMsgReduction off\n\
                 template(name=\"severity\" type=\"string\" string=\"%syslogfacility-text%.%syslogseverity-text% %programname%:%msg:::sp-if-no-1st-sp%%msg%\\n\")\n\
                 local5.* action(type=\"omfile\" file=\"{log}\" template=\"RSYSLOG_TraditionalFileFormat\")\n\
                 local5.* action(type=\"omfile\" file=\"{log}.rfc3339\" template=\"RSYSLOG_FileFormat\")\n\
                 local5.* action(type=\"omfile\" file=\"{log}.rfc5424\" template=\"RSYSLOG_SyslogProtocol23Format\")\n\
                 *.* action(type=\"omfile\" file=\"{sev}\" template=\"severity\")\n",
                work = root.join("rsyslog").display(),
                sock = socket.display(),
                log = log_path.display(),
                sev = root.join("severity.log").display(),
                extra = extra_sockets
                    .iter()
                    .map(|p| format!("input(type=\"imuxsock\" Socket=\"{}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n", p.display()))
                    .collect::<String>(),
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(root.join("rsyslog/rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(root.join("rsyslogd.err")).unwrap())
            .spawn()
            .expect("rsyslogd");
        wait_until("rsyslogd's socket", Duration::from_secs(10), || {
            use std::os::unix::fs::FileTypeExt;
            fs::metadata(&socket)
                .ok()
                .filter(|m| m.file_type().is_socket())
        });
        child
    }

    /// rsyslogd's PID, while it runs.
    pub fn rsyslogd_pid(&self) -> Option<i32> {
        self.rsyslogd
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.id() as i32)
    }

    /// Stops rsyslogd (its socket disappears).
    pub fn stop_rsyslogd(&self) {
        if let Some(child) = self.rsyslogd.lock().unwrap().take() {
            stop_child(child, nix::sys::signal::Signal::SIGTERM);
        }
        let _ = fs::remove_file(self.root().join("dev/log"));
    }

    /// Stops rsyslogd and starts a new one on the same socket path and log file.
    pub fn restart_rsyslogd(&self) {
        self.stop_rsyslogd();
        let extra = self.extra_sockets.lock().unwrap().clone();
        let child = Harness::spawn_rsyslogd(self.root(), &self.log_path, &extra);
        *self.rsyslogd.lock().unwrap() = Some(child);
        for socket in &extra {
            wait_until("an extra syslog socket", Duration::from_secs(10), || {
                use std::os::unix::fs::FileTypeExt;
                fs::metadata(socket)
                    .ok()
                    .filter(|m| m.file_type().is_socket())
            });
        }
    }

    /// Makes rsyslogd also listen on `socket` (restarting it).
    pub fn add_log_socket(&self, socket: &Path) {
        self.extra_sockets.lock().unwrap().push(socket.to_owned());
        self.restart_rsyslogd();
    }

    /// Rewrites the config in place (the bind mount follows the inode, so no rename).
    pub fn write_config(&self, config: &str) {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.config_path)
            .unwrap();
        f.write_all(config.as_bytes()).unwrap();
    }

    /// A fresh user name, not yet created.
    pub fn new_user_name() -> String {
        let n = USER_COUNTER.fetch_add(1, Ordering::SeqCst);
        format!("swt{}x{n}", std::process::id() % 100_000)
    }

    /// Creates `name` with the wrapper as login shell, a home directory and the client key.
    pub fn add_user(&self, name: &str) {
        self.add_user_with_shell(name, &self.wrapper.clone());
    }

    /// Creates `name` with `shell` as login shell, a home directory and the client key.
    pub fn add_user_with_shell(&self, name: &str, shell: &Path) {
        let home = self.root().join("home").join(name);
        self.add_user_full(name, shell, &home, true);
    }

    /// Creates `name` with `shell` and `home` (created here when `make_home`) and the client key.
    pub fn add_user_full(&self, name: &str, shell: &Path, home: &Path, make_home: bool) {
        let mut last = String::new();
        let mut created = false;
        for _ in 0..50 {
            let out = Command::new("useradd")
                .args(["-M", "-p", "*", "-s"])
                .arg(shell)
                .arg("-d")
                .arg(home)
                .arg(name)
                .output()
                .unwrap();
            if out.status.success() {
                created = true;
                break;
            }
            // Parallel tests contend for /etc/passwd's lock; useradd says so and gives up.
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(created, "useradd {name}: {last}");
        self.users.lock().unwrap().push(name.to_owned());
        if make_home {
            fs::create_dir(home).unwrap();
            run_ok(Command::new("chown").arg(format!("{name}:")).arg(home));
        }
        let pubkey = fs::read(self.client_key.with_extension("pub")).unwrap();
        fs::write(self.root().join("keys/authorized").join(name), pubkey).unwrap();
    }

    /// Creates a user and returns the name.
    pub fn user(&self) -> String {
        let name = Harness::new_user_name();
        self.add_user(&name);
        name
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.root().join("home").join(user)
    }

    fn client_options(&self, port_flag: &str) -> Vec<String> {
        vec![
            port_flag.to_owned(),
            self.port.to_string(),
            "-i".to_owned(),
            self.client_key.display().to_string(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=no".to_owned(),
            "-o".to_owned(),
            "UserKnownHostsFile=/dev/null".to_owned(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ]
    }

    /// The `sftp -b BATCH` command for `user`, with `cwd` as the local directory.
    pub fn sftp_command(&self, user: &str, batch: &str, cwd: &Path) -> Command {
        let mut cmd = Command::new("/usr/bin/sftp");
        cmd.args(self.client_options("-P"))
            .arg("-b")
            .arg(batch)
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(cwd)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sftp -b` with `commands` as the batch file, in `cwd`.
    pub fn sftp(&self, user: &str, commands: &str, cwd: &Path) -> Output {
        let batch = self.out_dir.join(format!(
            "batch-{}",
            USER_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::write(&batch, commands).unwrap();
        self.sftp_command(user, batch.to_str().unwrap(), cwd)
            .output()
            .unwrap()
    }

    /// [`Harness::sftp`], which must succeed (sftp's stderr is in the failure message).
    pub fn sftp_ok(&self, user: &str, commands: &str, cwd: &Path) -> Output {
        let out = self.sftp(user, commands, cwd);
        assert!(
            out.status.success(),
            "sftp as {user} with {commands:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `sftp -b -` (with `extra` options first) reading commands from a pipe, in its own
    /// process group, and waits until the wrapper has started sftp-server. Returns the client,
    /// the wrapper's PID and sftp-server's PID.
    pub fn open_session(&self, user: &str, cwd: &Path, extra: &[&str]) -> (Child, i32, i32) {
        let mut cmd = Command::new("/usr/bin/sftp");
        cmd.args(extra);
        let full = self.sftp_command(user, "-", cwd);
        cmd.args(full.get_args())
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let offset = self.log_len();
        let child = cmd.spawn().unwrap();
        let line =
            self.wait_for_log_after(offset, &["sftp-server started", &format!("user={user} ")]);
        let wrapper_pid = syslog_pid(&line).unwrap();
        let sftp_pid: i32 = field(&line, "sftp_pid").unwrap().parse().unwrap();
        (child, wrapper_pid, sftp_pid)
    }

    /// Uploads `file` (in `cwd`) at 4 Mbit/s and kills the client half a second after sftp-server
    /// opened it, as a dropped connection would: with a file of some MiB, mid-upload. Returns
    /// sftp-server's PID.
    pub fn kill_client_mid_upload(&self, user: &str, cwd: &Path, file: &str) -> i32 {
        let (mut child, _, sftp_pid) = self.open_session(user, cwd, &["-l", "4000"]);
        let stdin = child.stdin.as_mut().expect("the client's stdin is piped");
        stdin.write_all(format!("put {file}\n").as_bytes()).unwrap();
        self.wait_for_log(&[
            &format!("sftp-server[{sftp_pid}]"),
            &format!("{file}\" flags WRITE"),
        ]);
        std::thread::sleep(Duration::from_millis(500));
        self.kill_client(child);
        sftp_pid
    }

    /// Kills a client started by [`Harness::open_session`] with its ssh, as a crash would.
    pub fn kill_client(&self, mut client: Child) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(client.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = client.wait();
    }

    /// The `ssh` command for `user` running `remote` (no command: an interactive login).
    pub fn ssh_command(&self, user: &str, remote: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/bin/ssh");
        cmd.arg("-T")
            .args(self.client_options("-p"))
            .arg(format!("{user}@127.0.0.1"))
            .args(remote)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ssh(&self, user: &str, remote: &[&str]) -> Output {
        self.ssh_command(user, remote).output().unwrap()
    }

    /// The `-e` option for rsync and the like: ssh with this harness's options.
    pub fn ssh_e_option(&self) -> String {
        let mut parts = vec!["/usr/bin/ssh".to_owned(), "-T".to_owned()];
        parts.extend(self.client_options("-p"));
        parts.join(" ")
    }

    /// Options for ssh (`-p port` and the rest), without `-T`.
    pub fn ssh_options(&self) -> Vec<String> {
        self.client_options("-p")
    }

    /// Options for scp (`-P port` and the rest).
    pub fn scp_options(&self) -> Vec<String> {
        self.client_options("-P")
    }

    /// Every message rsyslogd received, as `facility.severity program: message`.
    pub fn severity_log(&self) -> String {
        fs::read_to_string(self.root().join("severity.log")).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The log's lines, each reduced to `program: message` (no timestamp, host or PID).
    pub fn log_messages(&self) -> Vec<String> {
        self.log_text().lines().map(strip_syslog_prefix).collect()
    }

    /// Waits until some log line contains every one of `needles`, and returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        self.wait_for_log_after(0, needles)
    }

    /// How many bytes the log holds now, for [`Harness::wait_for_log_after`].
    pub fn log_len(&self) -> usize {
        fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize)
    }

    /// Like [`Harness::wait_for_log`], looking only at lines written after byte `offset`.
    pub fn wait_for_log_after(&self, offset: usize, needles: &[&str]) -> String {
        let found = wait_until_opt(Duration::from_secs(15), || {
            let text = self.log_text();
            complete_lines(text.get(offset..).unwrap_or(""))
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
        });
        found.unwrap_or_else(|| {
            panic!(
                "no log line with {needles:?} within 15 s\nlog:\n{}",
                self.log_text()
            )
        })
    }

    /// Waits until `count` log lines contain every one of `needles`.
    pub fn wait_for_log_lines(&self, count: usize, needles: &[&str]) {
        let found = wait_until_opt(Duration::from_secs(15), || {
            let text = self.log_text();
            let n = complete_lines(&text)
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count();
            (n >= count).then_some(())
        });
        if found.is_none() {
            panic!(
                "fewer than {count} log lines with {needles:?} within 15 s\nlog:\n{}",
                self.log_text()
            );
        }
    }

    /// Writes an executable hook script and returns its path.
    pub fn hook_script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.root().join("hooks").join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.sshd.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.sshd.wait();
        for user in self.users.lock().unwrap().iter() {
            let _ = Command::new("pkill").args(["-KILL", "-u", user]).status();
            for _ in 0..50 {
                let out = Command::new("userdel").arg(user).output();
                if matches!(out, Ok(ref o) if o.status.success() || o.status.code() == Some(6)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.stop_rsyslogd();
    }
}

/// Runs the built sftpd-report against `db` (a path or a postgres:// URL), with no config file.
pub fn sftpd_report(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--db", db, "--config", "/nonexistent/sftpd-wrapper.toml"])
        .args(args)
        .output()
        .unwrap()
}

/// `sftpd-report ingest FILES…`, which must succeed; returns its summary line.
pub fn ingest(db: &str, files: &[&Path]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec!["ingest"];
    args.extend(names.iter().map(String::as_str));
    let out = sftpd_report(db, &args);
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_rollups_exact(db);
    String::from_utf8(out.stdout).unwrap()
}

/// The hourly rollups equal the rows (`sftpd-report rollups --check`), and usage read from
/// them equals usage summed from the rows, by day and by month, in zones whole hours from UTC
/// and not.
#[track_caller]
pub fn assert_rollups_exact(db: &str) {
    let out = sftpd_report(db, &["rollups", "--check"]);
    assert!(
        out.status.success(),
        "rollups --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for zone in ["UTC", "Asia/Kathmandu"] {
        for by in ["day", "month"] {
            let args = ["usage", "--by", by, "--tz", zone, "--format", "csv"];
            let rollups = sftpd_report(db, &args);
            let mut scan = args.to_vec();
            scan.push("--from-rows");
            let rows = sftpd_report(db, &scan);
            assert!(rollups.status.success() && rows.status.success());
            assert_eq!(
                String::from_utf8_lossy(&rollups.stdout),
                String::from_utf8_lossy(&rows.stdout),
                "usage --by {by} --tz {zone}: rollups and rows differ"
            );
        }
    }
}

/// `sftpd-report ingest --follow ARGS` on `db`, killed if the test fails before it is stopped.
pub struct Follower(Option<Child>);

impl Follower {
    pub fn start<S: AsRef<std::ffi::OsStr>>(db: &str, args: &[S]) -> Follower {
        Follower(Some(
            Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
                .args([
                    "--db",
                    db,
                    "--config",
                    "/nonexistent/x.toml",
                    "ingest",
                    "--follow",
                ])
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        ))
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGTERM, then its output once it exits.
    pub fn terminate(&mut self) -> Output {
        let child = self.0.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `sftpd-report ARGS --format json`, which must succeed.
pub fn report_json(db: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = sftpd_report(db, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The lines rsyslogd has finished writing (a last line without its newline is still growing).
fn complete_lines(text: &str) -> std::str::Lines<'_> {
    text.get(..text.rfind('\n').map_or(0, |i| i + 1))
        .unwrap_or("")
        .lines()
}

/// `Nov 26 21:06:15 host prog[123]: message` → `prog: message`.
pub fn strip_syslog_prefix(line: &str) -> String {
    let rest = line.splitn(5, ' ').collect::<Vec<_>>();
    // The day of month is space-padded ("Nov  6"), which adds an empty field.
    let rest = if rest.get(1) == Some(&"") {
        line.splitn(6, ' ').nth(5).unwrap_or(line)
    } else {
        rest.get(4).copied().unwrap_or(line)
    };
    match rest.split_once(": ") {
        Some((tag, msg)) => {
            let prog = tag.split('[').next().unwrap_or(tag);
            format!("{prog}: {msg}")
        }
        None => rest.to_owned(),
    }
}

/// The PID in a `prog[PID]:` syslog tag.
pub fn syslog_pid(line: &str) -> Option<i32> {
    let start = line.find('[')? + 1;
    let end = start + line[start..].find(']')?;
    line[start..end].parse().ok()
}

/// The value of `key=` in one of the wrapper's log lines (unquoted values only).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest))
}

pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until `sshd` itself listens on `port`. A port that `free_port` found free may be
/// taken by another test's sshd started at the same moment: then this sshd fails to bind and
/// exits, while a connection to the port still succeeds (to the other one).
fn wait_for_port(port: u16, sshd: &mut Child) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        // Another process's listener: this sshd exits, which the check below sees.
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && listens_on(sshd.id(), port) {
            return Ok(());
        }
        if let Ok(Some(status)) = sshd.try_wait() {
            return Err(format!("sshd exited: {status}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = sshd.kill();
    Err("sshd did not listen within 10 s".to_owned())
}

/// The inode of the socket listening on 127.0.0.1:`port` (from /proc/net/tcp).
fn listener_inode(port: u16) -> Option<String> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // st 0A: LISTEN; the inode is the tenth field.
        (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_owned())
    })
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`.
fn listens_on(pid: u32, port: u16) -> bool {
    let Some(inode) = listener_inode(port) else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == wanted.as_str()))
    })
}

fn cstring(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Starts `sshd -D -e -f sshd_config` in a new mount namespace where `config` is
/// /etc/sftpd-wrapper.toml and `root`/dev (device nodes bound from the host, plus rsyslogd's
/// socket) is /dev.
fn spawn_in_namespace(root: &Path, config: &Path, sshd_config: &Path) -> Child {
    // Everything the child needs is prepared here: between fork and exec only libc calls run.
    let binds: Vec<(CString, CString)> = DEVICES
        .iter()
        .map(|d| {
            (
                cstring(&Path::new("/dev").join(d)),
                cstring(&root.join("dev").join(d)),
            )
        })
        .collect();
    let pts = CString::new("/dev/pts").unwrap();
    let pts_dst = cstring(&root.join("dev/pts"));
    let dev_dir = cstring(&root.join("dev"));
    let dev = CString::new("/dev").unwrap();
    let slash = CString::new("/").unwrap();
    let config_src = cstring(config);
    let config_dst = CString::new("/etc/sftpd-wrapper.toml").unwrap();
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(sshd_config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(root.join("sshd.err")).unwrap());
    // SAFETY: unshare and mount are async-signal-safe system calls on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (src, dst) in &binds {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            check(libc::mount(
                pts.as_ptr(),
                pts_dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                dev_dir.as_ptr(),
                dev.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                config_src.as_ptr(),
                config_dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            Ok(())
        });
    }
    cmd.spawn().expect("sshd")
}

const ATTACK_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/attacks/sftp_proc_attack.py"
);

impl Harness {
    /// Runs tests/attacks/sftp_proc_attack.py (paramiko) as `user` with `marker` and `args`
    /// (its mode and theirs), killed after `timeout_secs`: a hang is a failure too.
    pub fn attack(
        &self,
        user: &str,
        marker: &Path,
        args: &[&str],
        stdin: Stdio,
        timeout_secs: u32,
    ) -> Output {
        Command::new("timeout")
            .arg(timeout_secs.to_string())
            .args(["/usr/bin/python3", ATTACK_SCRIPT])
            .arg(self.port.to_string())
            .arg(user)
            .arg(&self.client_key)
            .arg(marker)
            .args(args)
            .stdin(stdin)
            .output()
            .expect("python3")
    }

    /// The steps of an attack (see [`Harness::attack`]): each one's name and whether it worked.
    pub fn attack_steps(&self, user: &str, marker: &Path, args: &[&str]) -> Vec<(String, bool)> {
        let out = self.attack(user, marker, args, Stdio::null(), 60);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the attack script failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["step"].as_str().unwrap_or_default().to_owned(),
                    v["ok"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }
}

/// A real systemd-journald of the test's own: in a mount namespace where its sockets and its
/// journal files are the test's directories, so the host's journal (if any) is untouched.
pub struct Journald {
    child: Child,
    dir: PathBuf,
}

impl Journald {
    pub fn start(dir: &Path) -> Journald {
        Journald::start_as(dir, None)
    }

    /// [`Journald::start`], in a UTS namespace of its own with `hostname` (its `_HOSTNAME`).
    pub fn start_as(dir: &Path, hostname: Option<&str>) -> Journald {
        for sub in ["run", "log", "var"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for mount_point in ["/run/systemd", "/run/log", "/var/log/journal"] {
            let _ = fs::create_dir_all(mount_point);
        }
        let script = format!(
            "mount --make-rprivate / && mount --bind {d}/run /run/systemd && \
             mount --bind {d}/log /run/log && mount --bind {d}/var /var/log/journal && \
             {h}exec /lib/systemd/systemd-journald",
            d = dir.display(),
            h = hostname.map_or(String::new(), |h| format!("hostname {h} && "))
        );
        let child = Command::new("unshare")
            .args([
                if hostname.is_some() { "-mu" } else { "-m" },
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("journald.err")).unwrap())
            .spawn()
            .expect("systemd-journald");
        let journald = Journald {
            child,
            dir: dir.to_owned(),
        };
        wait_until("journald's syslog socket", Duration::from_secs(10), || {
            use std::os::unix::fs::FileTypeExt;
            fs::metadata(journald.dev_log())
                .ok()
                .filter(|m| m.file_type().is_socket())
        });
        journald
    }

    /// The socket that takes syslog(3) datagrams: what /dev/log is for a systemd machine.
    pub fn dev_log(&self) -> PathBuf {
        self.dir.join("run/journal/dev-log")
    }

    /// The directory of its journal files, once it has written one.
    pub fn journal_directory(&self) -> PathBuf {
        wait_until("journald's journal file", Duration::from_secs(10), || {
            fs::read_dir(self.dir.join("log/journal"))
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("system.journal").exists())
        })
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
