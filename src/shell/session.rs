//! The login shell's session: check the invocation, log, run the hooks, run sftp-server with its
//! stdin and stdout inherited (or, in capture mode, through the tap, which reads the SFTP packets
//! and never changes them), supervise it, log the end.

use crate::config::{
    self, Config, Effective, EventFormat, FailurePolicy, LogMode, PostSessionMode,
    PreSessionFailure,
};
use crate::log::wrapper::{
    Bounded, Connection, DropReason, ExitOutcome, FileRecord, HookReport, Totals, WrapperLine,
};
use crate::shell::capture::{self, Counters, Forward};
use crate::shell::hooks::{self, HookOutcome, HookResult};
use crate::shell::invocation;
use crate::shell::isolate;
use crate::shell::lock;
use crate::shell::relay;
use crate::shell::runner::{self, Runner};
use crate::shell::sftp_tap::{Event, Output, Tap};
use crate::shell::syslog::ForwardingSender;
use crate::shell::syslog::{self, Severity, Syslog};
use chrono::{DateTime, Local, SecondsFormat};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::{ForkResult, Pid, User, getpid, getppid, getuid};
use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What a refused user sees on stderr (the SSH client prints it).
pub(crate) const RESTRICTED_MESSAGE: &str = "This account is restricted to SFTP.";

/// Variables passed from sshd's environment to sftp-server; everything else (LD_PRELOAD, PATH
/// and TZ from ~/.ssh/environment, for some) is dropped. The hooks get fewer: see
/// [`hook_environment`].
const SFTP_SERVER_VARIABLES: [&str; 3] = ["SSH_CONNECTION", "SSH_CLIENT", "LANG"];
/// What sshd sets and the hooks always get.
const HOOK_VARIABLES: [&str; 2] = ["SSH_CONNECTION", "SSH_CLIENT"];

fn valid_ip(s: &str) -> Option<String> {
    s.parse::<IpAddr>().ok().map(|_| s.to_owned())
}

fn valid_port(s: &str) -> Option<String> {
    s.parse::<u16>().ok().map(|p| p.to_string())
}

impl Connection {
    /// Reads `SSH_CONNECTION` ("ip port localip localport"), falling back to `SSH_CLIENT`
    /// ("ip port localport"). Values that are not addresses or ports are left out.
    pub(crate) fn from_env_values(
        ssh_connection: Option<&OsStr>,
        ssh_client: Option<&OsStr>,
    ) -> Self {
        let words = |v: &OsStr| -> Vec<String> {
            String::from_utf8_lossy(v.as_bytes())
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect()
        };
        if let Some(v) = ssh_connection {
            let w = words(v);
            if w.len() == 4 {
                return Connection {
                    client_ip: valid_ip(&w[0]),
                    client_port: valid_port(&w[1]),
                    local_ip: valid_ip(&w[2]),
                    local_port: valid_port(&w[3]),
                };
            }
        }
        if let Some(v) = ssh_client {
            let w = words(v);
            if w.len() == 3 {
                return Connection {
                    client_ip: valid_ip(&w[0]),
                    client_port: valid_port(&w[1]),
                    local_ip: None,
                    local_port: valid_port(&w[2]),
                };
            }
        }
        Connection::default()
    }

    /// From the environment the shell started with.
    pub(crate) fn from_vars(vars: &[(OsString, OsString)]) -> Self {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k.as_bytes() == name.as_bytes())
                .map(|(_, v)| v.as_os_str())
        };
        Connection::from_env_values(get("SSH_CONNECTION"), get("SSH_CLIENT"))
    }
}

/// The account the shell runs as, from the password database rather than from $USER, which the
/// user can set in ~/.ssh/environment where that is permitted.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub name: String,
    pub home: PathBuf,
    pub groups: Vec<String>,
}

impl Account {
    /// The account of this process's uid; its groups only `with_groups`. Listing a user's
    /// groups asks every group database in nsswitch.conf (with `systemd` listed, that loads
    /// libnss_systemd and its libraries), and the groups serve only to pick `[groups.NAME]`
    /// sections: a config without any leaves them empty.
    pub fn current(with_groups: bool) -> Result<Account, String> {
        let uid = getuid();
        let user = User::from_uid(uid)
            .map_err(|e| format!("cannot look up uid {uid}: {e}"))?
            .ok_or_else(|| format!("uid {uid} has no passwd entry"))?;
        Ok(Account {
            groups: if with_groups {
                group_names(&user)
            } else {
                Vec::new()
            },
            name: user.name,
            home: user.dir,
        })
    }
}

pub(crate) fn group_names(user: &User) -> Vec<String> {
    let Ok(cname) = std::ffi::CString::new(user.name.clone()) else {
        return Vec::new();
    };
    let gids = nix::unistd::getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
    gids.into_iter()
        .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect()
}

/// The variables of `vars` whose names `keep` accepts.
fn kept(vars: &[(OsString, OsString)], keep: impl Fn(&str) -> bool) -> Vec<(String, OsString)> {
    vars.iter()
        .filter_map(|(k, v)| {
            let k = k.to_str()?;
            keep(k).then(|| (k.to_owned(), v.clone()))
        })
        .collect()
}

/// sftp-server's environment: SSH_CONNECTION, SSH_CLIENT, LANG and `LC_*` from `vars`, the fixed
/// [`config::SECURE_PATH`], and USER, LOGNAME and HOME from the password database. No TZ: the
/// client may have set it.
pub(crate) fn child_environment(
    vars: &[(OsString, OsString)],
    account: &Account,
) -> Vec<(String, OsString)> {
    let mut env = kept(vars, |k| {
        SFTP_SERVER_VARIABLES.contains(&k)
            || (k.starts_with("LC_") && k[3..].bytes().all(|b| b.is_ascii_uppercase()))
    });
    env.push(("PATH".to_owned(), config::SECURE_PATH.into()));
    env.push(("USER".to_owned(), account.name.clone().into()));
    env.push(("LOGNAME".to_owned(), account.name.clone().into()));
    env.push(("HOME".to_owned(), account.home.clone().into_os_string()));
    env.sort();
    env
}

/// The hooks' environment before the `SFTPD_*` variables: SSH_CONNECTION and SSH_CLIENT as sshd
/// set them, `hooks.path` as PATH, `hooks.home` as HOME (never the partner's home, where the
/// partner can plant a `.pth` file or a `~/.bashrc`), USER and LOGNAME from the password
/// database, and only the variables the admin listed in `hooks.pass_env`.
pub(crate) fn hook_environment(
    vars: &[(OsString, OsString)],
    account: &Account,
    hooks: &config::HooksSection,
) -> Vec<(String, OsString)> {
    let mut env = kept(vars, |k| {
        HOOK_VARIABLES.contains(&k) || hooks.pass_env.iter().any(|p| p == k)
    });
    env.push(("PATH".to_owned(), hooks.path.clone().into()));
    env.push(("HOME".to_owned(), hooks.home.clone().into()));
    env.push(("USER".to_owned(), account.name.clone().into()));
    env.push(("LOGNAME".to_owned(), account.name.clone().into()));
    env.sort();
    env
}

/// A session id that is unique across hosts and reboots: host name, start time, PID and 32 random
/// bits.
pub(crate) fn new_session_id(now: DateTime<Local>) -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host: String = host
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let host = if host.is_empty() {
        "host".to_owned()
    } else {
        host
    };
    let mut random = [0u8; 4];
    // Without randomness the time and PID still make the id unique on this host.
    let _ = getrandom::fill(&mut random);
    format!(
        "{host}-{}-{}-{:08x}",
        now.format("%Y%m%dT%H%M%S"),
        std::process::id(),
        u32::from_be_bytes(random)
    )
}

/// What the session's log lines and hooks share.
struct Session<'a> {
    id: String,
    account: &'a Account,
    connection: Connection,
    log: Syslog,
    started_at: DateTime<Local>,
    started: Instant,
    /// sftp-server's environment.
    base_env: Vec<(String, OsString)>,
    /// The hooks' environment before the `SFTPD_*` variables.
    hook_base_env: Vec<(String, OsString)>,
}

impl Session<'_> {
    fn log(&self, severity: Severity, line: &WrapperLine) {
        self.log.log(severity, &line.render());
    }

    fn hook_line(
        &self,
        hook: Option<&str>,
        elapsed_ms: Option<u64>,
        result: HookReport,
        stderr: Option<Vec<u8>>,
    ) -> WrapperLine {
        WrapperLine::Hook {
            sid: self.id.clone(),
            user: self.account.name.clone(),
            hook: hook.map(str::to_owned),
            elapsed_ms,
            result,
            stderr,
        }
    }

    /// `session end` for a session that could not run.
    fn failed_end(&self, duration_ms: Option<u64>, error: String) -> WrapperLine {
        WrapperLine::SessionEnd {
            sid: self.id.clone(),
            user: self.account.name.clone(),
            connection: Connection::default(),
            sftp_pid: None,
            duration_ms,
            exit: None,
            totals: None,
            dropped_events: 0,
            dropped_log_lines: 0,
            error: Some(error),
        }
    }

    fn refused(
        &self,
        reason: &str,
        command: Option<Bounded>,
        error: Option<String>,
    ) -> WrapperLine {
        WrapperLine::SessionRefused {
            sid: Some(self.id.clone()),
            user: Some(self.account.name.clone()),
            connection: self.connection.clone(),
            reason: reason.to_owned(),
            command,
            error,
        }
    }

    fn hook_env(&self, hook: &str, end: Option<&SessionEnd>) -> Vec<(String, OsString)> {
        let c = &self.connection;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut env = self.hook_base_env.clone();
        let mut set = |k: &str, v: String| env.push((k.to_owned(), v.into()));
        set("SFTPD_HOOK", hook.to_owned());
        set("SFTPD_SESSION_ID", self.id.clone());
        set("SFTPD_USER", self.account.name.clone());
        set("SFTPD_CLIENT_IP", opt(&c.client_ip));
        set("SFTPD_CLIENT_PORT", opt(&c.client_port));
        set("SFTPD_LOCAL_IP", opt(&c.local_ip));
        set("SFTPD_LOCAL_PORT", opt(&c.local_port));
        set("SFTPD_START_TIME", rfc3339(self.started_at));
        if let Some(end) = end {
            set("SFTPD_END_TIME", rfc3339(end.ended_at));
            set("SFTPD_DURATION_MS", end.duration.as_millis().to_string());
            set("SFTPD_EXIT_STATUS", end.exit_code.to_string());
            set("SFTPD_SFTP_PID", end.sftp_pid.to_string());
            if let Some(t) = &end.totals {
                set("SFTPD_FILES_UPLOADED", t.files_uploaded.to_string());
                set("SFTPD_FILES_DOWNLOADED", t.files_downloaded.to_string());
                set("SFTPD_BYTES_UPLOADED", t.bytes_uploaded.to_string());
                set("SFTPD_BYTES_DOWNLOADED", t.bytes_downloaded.to_string());
                set("SFTPD_FAILED_OPERATIONS", t.failed_operations.to_string());
            }
        }
        env
    }

    /// Runs one event's hook (in the runner process) and logs its result.
    fn run_event_hook(&self, cfg: &Config, event: &Event) {
        let Some(argv) = cfg.hooks.event_hook(event.kind) else {
            return;
        };
        let hook = format!("on_{}", event.kind);
        let mut env = self.hook_env(&hook, None);
        let mut set = |k: &str, v: OsString| env.push((k.to_owned(), v));
        set("SFTPD_EVENT", event.kind.as_str().into());
        set("SFTPD_PATH", OsString::from_vec(event.path.clone()));
        set("SFTPD_BYTES_READ", event.bytes_read.to_string().into());
        set(
            "SFTPD_BYTES_WRITTEN",
            event.bytes_written.to_string().into(),
        );
        set("SFTPD_OPEN_FLAGS", event.open_flags.clone().into());
        set(
            "SFTPD_COMPLETE",
            (if event.complete { "1" } else { "0" }).into(),
        );
        set("SFTPD_ELAPSED_MS", event.elapsed_ms.to_string().into());
        if let Some(target) = &event.target {
            set("SFTPD_TARGET", OsString::from_vec(target.clone()));
        }
        if let Some(name) = &event.uploaded_as {
            set("SFTPD_UPLOADED_AS", OsString::from_vec(name.clone()));
        }
        if let Some(kind) = &event.link_kind {
            set("SFTPD_LINK_KIND", kind.into());
        }
        let stdin = (cfg.hooks.event_format == EventFormat::Json).then(|| {
            let text = |b: &[u8]| crate::log::parse::path_text(b);
            let json = serde_json::json!({
                "event": event.kind.as_str(),
                "session_id": self.id,
                "user": self.account.name,
                "client_ip": self.connection.client_ip,
                "path": text(&event.path),
                "path_hex": hex::encode(&event.path),
                "target": event.target.as_deref().map(text),
                "target_hex": event.target.as_deref().map(hex::encode),
                "uploaded_as": event.uploaded_as.as_deref().map(text),
                "uploaded_as_hex": event.uploaded_as.as_deref().map(hex::encode),
                "link_kind": event.link_kind,
                "bytes_read": event.bytes_read,
                "bytes_written": event.bytes_written,
                "open_flags": event.open_flags,
                "complete": event.complete,
                "elapsed_ms": event.elapsed_ms,
            });
            format!("{json}\n").into_bytes()
        });
        let timeout = Duration::from_secs(cfg.hooks.timeout_secs);
        let result = hooks::run(argv, &env, timeout, stdin.as_deref());
        self.log_hook(&hook, &result);
    }

    /// `event dropped` for an event whose hook did not run (or a close that is no event).
    fn event_dropped(&self, event: &str, path: &[u8], reason: DropReason) -> WrapperLine {
        WrapperLine::EventDropped {
            sid: self.id.clone(),
            user: self.account.name.clone(),
            event: event.to_owned(),
            path: Bounded::of(path),
            reason,
        }
    }

    fn log_hook(&self, hook: &str, result: &HookResult) {
        let report = match &result.outcome {
            HookOutcome::Exited(code) => HookReport::Exit(*code),
            HookOutcome::Signaled(sig) => HookReport::Signal(signal_name(*sig)),
            HookOutcome::TimedOut => HookReport::Timeout,
            HookOutcome::SpawnFailed(msg) => HookReport::SpawnFailed(msg.clone()),
        };
        let stderr = (!result.stderr.is_empty()).then(|| result.stderr.clone());
        let line = self.hook_line(
            Some(hook),
            Some(result.elapsed.as_millis() as u64),
            report,
            stderr,
        );
        let severity = if result.outcome.succeeded() {
            Severity::Info
        } else {
            Severity::Warning
        };
        self.log(severity, &line);
    }
}

/// The runner's side of a session: runs the hooks and logs them.
struct RunnerHandler<'a> {
    session: &'a Session<'a>,
    cfg: &'a Config,
}

impl runner::Handler for RunnerHandler<'_> {
    fn event(&mut self, event: Event) {
        self.session.run_event_hook(self.cfg, &event);
    }

    fn post_session(&mut self, vars: Vec<(String, Vec<u8>)>) {
        let Some(argv) = &self.cfg.hooks.post_session else {
            return;
        };
        let mut env = self.session.hook_env("post_session", None);
        for (key, value) in vars {
            env.retain(|(k, _)| *k != key);
            env.push((key, OsString::from_vec(value)));
        }
        let timeout = Duration::from_secs(self.cfg.hooks.timeout_secs);
        let result = hooks::run(argv, &env, timeout, None);
        self.session.log_hook("post_session", &result);
    }

    fn dropped(&mut self, event: &Event, reason: DropReason) {
        self.session.log(
            Severity::Warning,
            &self
                .session
                .event_dropped(event.kind.as_str(), &event.path, reason),
        );
    }
}

struct SessionEnd {
    ended_at: DateTime<Local>,
    duration: Duration,
    exit_code: i32,
    sftp_pid: u32,
    /// Capture mode only: what the session moved.
    totals: Option<Totals>,
}

fn rfc3339(t: DateTime<Local>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_owned())
}

/// The shell's exit code for a child status, as a POSIX shell reports it.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Runs the login shell for `argv` and returns its exit status. `vars` is the environment the
/// process started with (taken out of the process by [`crate::shell::harden::take_environment`]);
/// `hardened` is whether the process could make itself non-dumpable.
pub(crate) fn run_shell(
    argv: &[OsString],
    vars: Vec<(OsString, OsString)>,
    hardened: nix::Result<()>,
) -> i32 {
    run_shell_with_config(argv, &vars, hardened, Path::new(config::CONFIG_PATH))
}

fn run_shell_with_config(
    argv: &[OsString],
    vars: &[(OsString, OsString)],
    hardened: nix::Result<()>,
    config_path: &Path,
) -> i32 {
    let started = Instant::now();
    let started_at = Local::now();
    let connection = Connection::from_vars(vars);
    let loaded = config::load(config_path);
    let log = match &loaded {
        Ok(l) => Syslog::open(&l.config.syslog.ident, l.config.syslog.facility),
        Err(_) => {
            let defaults = config::SyslogSection::default();
            Syslog::open(&defaults.ident, defaults.facility)
        }
    };
    let (account, cfg) = match account_and_config(loaded, &log, &connection) {
        Ok(both) => both,
        Err(code) => return code,
    };
    if !audit_reachable(&cfg) {
        return 1;
    }
    let session = Session {
        id: new_session_id(started_at),
        account: &account,
        connection,
        log,
        started_at,
        started,
        base_env: child_environment(vars, &account),
        hook_base_env: hook_environment(vars, &account, &cfg.hooks),
    };
    let effective = cfg.effective_for(&account.name, &account.groups);
    if let Err(refusal) = invocation::check(argv, &effective.allowed_commands) {
        let line = session.refused(
            refusal.as_str(),
            Some(Bounded::of(&invocation::refused_command(argv))),
            None,
        );
        session.log(Severity::Warning, &line);
        eprintln!("{RESTRICTED_MESSAGE}");
        return 1;
    }
    if let Some((reason, error)) = unsafe_surroundings(vars, &cfg, hardened) {
        session.log(
            Severity::Err,
            &session.refused(reason, None, Some(error.clone())),
        );
        eprintln!("sftpd-wrapper: session refused: {error}");
        return 1;
    }
    // SAFETY: the shell has not started a thread (the capture threads belong to the supervisor).
    unsafe {
        supervised(&session, || {
            session.log(
                Severity::Info,
                &WrapperLine::SessionStart {
                    sid: session.id.clone(),
                    user: account.name.clone(),
                    connection: session.connection.clone(),
                },
            );
            run_accepted(&session, &cfg, &effective)
        })
    }
}

/// The partner's account and the config; on failure, the refusal logged and told, and the exit
/// status.
fn account_and_config(
    loaded: Result<config::LoadedConfig, config::ConfigError>,
    log: &Syslog,
    connection: &Connection,
) -> Result<(Account, Config), i32> {
    let with_groups = loaded.as_ref().is_ok_and(|l| !l.config.groups.is_empty());
    let account = match Account::current(with_groups) {
        Ok(a) => a,
        Err(e) => {
            let line = WrapperLine::SessionRefused {
                sid: None,
                user: None,
                connection: Connection::default(),
                reason: "no_account".to_owned(),
                command: None,
                error: Some(e.clone()),
            };
            log.log(Severity::Err, &line.render());
            eprintln!("sftpd-wrapper: {e}");
            return Err(1);
        }
    };
    let cfg: Config = match loaded {
        Ok(l) => l.config,
        Err(e) => {
            let line = WrapperLine::SessionRefused {
                sid: None,
                user: Some(account.name.clone()),
                connection: Connection {
                    client_ip: connection.client_ip.clone(),
                    ..Connection::default()
                },
                reason: "config_error".to_owned(),
                command: None,
                error: Some(e.to_string()),
            };
            log.log(Severity::Err, &line.render());
            eprintln!("sftpd-wrapper: {e}");
            eprintln!(
                "sftpd-wrapper: the SFTP service is misconfigured; ask the server's admin to run `sftpd-wrapper --check-config`."
            );
            return Err(1);
        }
    };
    Ok((account, cfg))
}

/// Whether the session may go on as far as syslog is concerned: reachable, or not required
/// (`syslog.on_failure = "allow"`, said on stderr).
fn audit_reachable(cfg: &Config) -> bool {
    if let Err(e) = syslog::probe(syslog::SYSLOG_SOCKET) {
        match cfg.syslog.on_failure {
            FailurePolicy::Allow => eprintln!(
                "sftpd-wrapper: syslog is not reachable at {} ({e}); this session is not audited",
                syslog::SYSLOG_SOCKET
            ),
            FailurePolicy::Deny => {
                eprintln!(
                    "sftpd-wrapper: syslog is not reachable at {} ({e}) and syslog.on_failure = \"deny\": session refused",
                    syslog::SYSLOG_SOCKET
                );
                return false;
            }
        }
    }
    true
}

/// Runs `session` (everything from `session start` to the post-session hook) in a process of its
/// own, the supervisor, and waits for it.
///
/// sshd knows only this process: it is the one an SSH `signal` request reaches (sshd refuses those
/// for subsystems, not for `ssh host <allowed command>`), and the one a hangup reaches. So this
/// process passes TERM, INT and HUP on, ignores every other signal it can, and when it is killed
/// anyway (SIGKILL) the supervisor goes on: sshd then closes the channel, sftp-server sees EOF
/// and exits, and the supervisor logs `session end` and runs the post-session hook as always.
///
/// # Safety
///
/// The process must have a single thread: the supervisor goes on using the allocator and std
/// after fork. It ends with `_exit`.
unsafe fn supervised(session: &Session, run: impl FnOnce() -> i32) -> i32 {
    let mut all = SigSet::all();
    // Signals that report a fault of this process must stay deliverable.
    for fault in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGABRT,
    ] {
        all.remove(fault);
    }
    let Some(old) = block_signals(session, &all) else {
        return 1;
    };
    // SAFETY: the caller guarantees a single thread.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            // Out of sshd's process group and session: no group signal reaches it.
            let _ = nix::unistd::setsid();
            let code = run();
            // SAFETY: _exit ends this forked copy without running the parent's exit handlers
            // a second time.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => wait_for_supervisor(session, child, &all),
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            session.log(
                Severity::Err,
                &session.failed_end(None, format!("fork: {e}")),
            );
            1
        }
    }
}

/// The part of the shell sshd knows: forwards TERM, INT and HUP to the supervisor, waits for it
/// and exits as it did. A supervisor killed before it logged its end is logged here.
fn wait_for_supervisor(session: &Session, supervisor: Pid, blocked: &SigSet) -> i32 {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match blocked.wait() {
            Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => {
                let _ = kill(supervisor, sig);
                continue;
            }
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(_) => continue,
        }
        match waitpid(supervisor, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                let line = session.failed_end(
                    Some(session.started.elapsed().as_millis() as u64),
                    format!("the session's supervisor was killed by {}", sig.as_str()),
                );
                session.log(Severity::Err, &line);
                return 128 + sig as i32;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => return 1,
            Err(_) => {}
        }
    }
}

/// What makes an allowed session unsafe to run, as (reason, what to fix): the wrapper could not
/// make itself non-dumpable; sshd let the client set loader variables; a terminal; hooks that
/// sftp-server could reach through `/proc`.
fn unsafe_surroundings(
    vars: &[(OsString, OsString)],
    cfg: &Config,
    hardened: nix::Result<()>,
) -> Option<(&'static str, String)> {
    if let Err(e) = hardened {
        return Some((
            "not_hardened",
            format!("cannot make the wrapper non-dumpable: {e}"),
        ));
    }
    let loader = crate::shell::harden::loader_variables(vars);
    if !loader.is_empty() {
        let names: Vec<String> = loader
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        return Some((
            "loader_environment",
            format!(
                "sshd passed the client's loader variables ({}); set PermitUserEnvironment no and keep LD_* out of AcceptEnv (sftpd-wrapper --check-sshd USER)",
                names.join(" ")
            ),
        ));
    }
    if crate::shell::harden::on_a_terminal() {
        return Some((
            "tty",
            "the session has a terminal, which no SFTP client asks for; set PermitTTY no for SFTP accounts".to_owned(),
        ));
    }
    if cfg.hooks.any_hook()
        && cfg.sftp_server.proc_isolation == config::ProcIsolation::Off
        && isolate::proc_visible()
        && isolate::ptrace_scope().unwrap_or(0) < 1
    {
        return Some((
            "hooks_exposed",
            "hooks are configured, sftp-server sees /proc (sftp_server.proc_isolation = \"off\") and kernel.yama.ptrace_scope is 0 or missing: the partner could write the hooks' memory; set proc_isolation = \"require\" or kernel.yama.ptrace_scope = 1".to_owned(),
        ));
    }
    None
}

/// An accepted session, in the supervisor: the pre-session hook, sftp-server, its end, the
/// post-session hook.
fn run_accepted(session: &Session, cfg: &Config, effective: &Effective) -> i32 {
    if !pre_session_hook_allows(session, cfg) {
        return 1;
    }
    // Forked while the supervisor still has a single thread.
    let mut runner = start_runner(session, cfg);
    // Signals are taken synchronously with sigwait: no handlers, no race with the child's exit.
    let mut watched = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        watched.add(sig);
    }
    let Some(old_mask) = block_signals(session, &watched) else {
        return 1;
    };
    let Some((mut child, capture_socket)) = spawn(session, cfg, effective) else {
        return 1;
    };
    let outcome = match capture_socket {
        Some(capture) => {
            let dir = sftp_server_dir(&effective.sftp_server_args, &session.account.home);
            capture_and_supervise(
                session,
                cfg,
                &mut child,
                capture,
                &mut runner,
                &watched,
                dir,
            )
        }
        None => Outcome {
            status: supervise(&mut child, &watched, session),
            ..Outcome::default()
        },
    };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    let end = log_end(session, child.id(), outcome);
    run_post_session_hook(session, cfg, runner, &end);
    end.exit_code
}

/// Blocks `signals` (to be taken with sigwait); returns the mask before, or `None` after logging
/// the session's end when that fails.
fn block_signals(session: &Session, signals: &SigSet) -> Option<SigSet> {
    let mut old = SigSet::empty();
    match sigprocmask(SigmaskHow::SIG_BLOCK, Some(signals), Some(&mut old)) {
        Ok(()) => Some(old),
        Err(e) => {
            session.log(
                Severity::Err,
                &session.failed_end(None, format!("sigprocmask: {e}")),
            );
            None
        }
    }
}

/// Runs the pre-session hook; false when it failed and that refuses the session (logged).
fn pre_session_hook_allows(session: &Session, cfg: &Config) -> bool {
    let Some(argv) = &cfg.hooks.pre_session else {
        return true;
    };
    let timeout = Duration::from_secs(cfg.hooks.timeout_secs);
    let result = hooks::run(argv, &session.hook_env("pre_session", None), timeout, None);
    session.log_hook("pre_session", &result);
    if result.outcome.succeeded() || cfg.hooks.pre_session_failure == PreSessionFailure::Allow {
        return true;
    }
    session.log(
        Severity::Warning,
        &session.refused("pre_session_hook", None, None),
    );
    eprintln!("sftpd-wrapper: session refused by the server's pre-session check");
    false
}

/// The hook runner, in capture mode when a hook will need it.
fn start_runner(session: &Session, cfg: &Config) -> Option<Runner> {
    let capture = cfg.sftp_server.log_mode == LogMode::Capture;
    if !capture || !(cfg.hooks.any_event_hook() || cfg.hooks.post_session.is_some()) {
        return None;
    }
    let handler = RunnerHandler { session, cfg };
    let drain = Duration::from_secs(cfg.hooks.drain_secs);
    // SAFETY: no thread has been started yet in this process (the capture threads come later),
    // so the runner may be forked.
    match unsafe { Runner::start(handler, drain) } {
        Ok(r) => Some(r),
        Err(e) => {
            let line = session.hook_line(
                None,
                None,
                HookReport::SpawnFailed(format!("hook runner: {e}")),
                None,
            );
            session.log(Severity::Warning, &line);
            None
        }
    }
}

/// Starts sftp-server (and, in capture mode, the socket for its messages) and logs it; `None`
/// when it could not start (logged as the session's end).
fn spawn(
    session: &Session,
    cfg: &Config,
    effective: &Effective,
) -> Option<(Child, Option<Capture>)> {
    let capture = cfg.sftp_server.log_mode == LogMode::Capture;
    let failed = |what: &str, e: nix::Error| {
        let line = session.failed_end(None, format!("{what}: {e}"));
        session.log(Severity::Err, &line);
    };
    // In capture mode the tap is the one source of the events, the totals and the `file closed`
    // lines: sftp-server's stdin and stdout pass through it.
    let relay = capture
        .then(relay::pipes)
        .transpose()
        .map_err(|e| failed("pipe", e))
        .ok()?;
    let (ours, theirs) = if capture {
        let (ours, theirs) = capture::message_socket()
            .map_err(|e| failed("socketpair", e))
            .ok()?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    // A jail without /proc has nothing to hide (and a user namespace cannot be made in a jail).
    let isolation = (cfg.sftp_server.proc_isolation == config::ProcIsolation::Require
        && isolate::proc_visible())
    .then(isolate::ProcIsolation::new);
    let isolating = isolation.is_some();
    let (stdio, relay) = match relay {
        Some(p) => (
            Some((p.sftp_server_stdin, p.sftp_server_stdout)),
            Some(p.ends),
        ),
        None => (None, None),
    };
    let child = match spawn_sftp_server(effective, &session.base_env, theirs, stdio, isolation) {
        Ok(child) => child,
        Err(e) => {
            let why = if isolating {
                format!(
                    "cannot start {} without /proc (sftp_server.proc_isolation = \"require\"; unprivileged user namespaces must be allowed): {e}",
                    effective.sftp_server_path
                )
            } else {
                format!("cannot start {}: {e}", effective.sftp_server_path)
            };
            let line = session.failed_end(
                Some(session.started.elapsed().as_millis() as u64),
                why.clone(),
            );
            session.log(Severity::Err, &line);
            eprintln!("sftpd-wrapper: {why}");
            return None;
        }
    };
    session.log(
        Severity::Info,
        &WrapperLine::SftpServerStarted {
            sid: session.id.clone(),
            user: session.account.name.clone(),
            sftp_pid: Some(child.id()),
            path: effective.sftp_server_path.clone(),
            args: effective.sftp_server_args.join(" "),
            wire: capture,
        },
    );
    let capture = ours
        .zip(relay)
        .map(|(messages, relay)| Capture { messages, relay });
    Some((child, capture))
}

/// The wrapper's ends of what capture mode reads: sftp-server's messages, stdin and stdout.
struct Capture {
    messages: OwnedFd,
    relay: relay::Ends,
}

/// How sftp-server ended and, in capture mode, what the session moved and lost.
#[derive(Default)]
struct Outcome {
    status: ExitStatus,
    totals: Option<Totals>,
    dropped_events: u64,
    dropped_log_lines: u64,
}

/// Capture mode: two relay threads pass the SFTP packets through the tap, which makes the events,
/// the totals and the `file closed` lines; a reader thread forwards sftp-server's messages, a
/// forwarder thread sends every line to syslog, and this thread supervises sftp-server. The
/// threads inherit the blocked signals, so sigwait still gets them all.
fn capture_and_supervise(
    session: &Session,
    cfg: &Config,
    child: &mut Child,
    capture: Capture,
    runner: &mut Option<Runner>,
    watched: &SigSet,
    dir: Option<(Vec<u8>, Option<Vec<u8>>)>,
) -> Outcome {
    let sftp_pid = child.id();
    let shared = relay::SharedTap::new(Tap::new(cfg.hooks.upload_on_rename, dir));
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::sync_channel(capture::FORWARD_QUEUE_LINES);
    let sender = ForwardingSender::new(syslog::SYSLOG_SOCKET, cfg.syslog.facility);
    let relay::Ends {
        to_sftp_server,
        from_sftp_server,
        stop,
        stop_writer,
    } = capture.relay;
    let events = Events {
        session,
        cfg,
        sftp_pid,
        runner: Mutex::new(runner),
        forward: Mutex::new(Some(tx)),
        dropped: AtomicU64::new(0),
    };
    std::thread::scope(|scope| {
        let forwarder = {
            let counters = Arc::clone(&counters);
            let log = session.log;
            scope.spawn(move || capture::forward_lines(rx, sender, log, sftp_pid, counters))
        };
        let (events, shared, counters, stop) = (&events, &shared, &counters, stop.as_fd());
        let requests = scope.spawn(move || {
            relay::pass_requests(std::io::stdin().as_fd(), to_sftp_server, shared, stop)
        });
        let replies = scope.spawn(move || {
            relay::pass_replies(
                from_sftp_server,
                std::io::stdout().as_fd(),
                shared,
                stop,
                |made| events.act(made),
            )
        });
        let reader = {
            let socket = capture.messages;
            let forward = lock(&events.forward).clone();
            scope.spawn(move || {
                if let Some(forward) = forward {
                    capture::read_messages(socket, &forward, counters);
                }
            })
        };
        let status = supervise(child, watched, session);
        drop(stop_writer);
        let _ = reader.join();
        let _ = requests.join();
        let _ = replies.join();
        let (last, totals) = {
            let mut tap = lock(&shared.tap);
            (tap.finish(Instant::now()), tap.totals.clone())
        };
        events.act(last);
        // The last sender: the forwarder sends what is queued and ends.
        lock(&events.forward).take();
        let _ = forwarder.join();
        Outcome {
            status,
            totals: Some(totals),
            dropped_events: events.dropped.load(Ordering::Relaxed),
            dropped_log_lines: counters.dropped_lines.load(Ordering::Relaxed),
        }
    })
}

/// Where the tap's outputs go: `file closed` lines to the log, events to the hook runner when
/// their hook is configured; what could not be queued, or cannot be vouched for, is logged as
/// dropped and counted.
struct Events<'a> {
    session: &'a Session<'a>,
    cfg: &'a Config,
    sftp_pid: u32,
    runner: Mutex<&'a mut Option<Runner>>,
    /// Taken when the session's lines are all queued, so that the forwarder ends.
    forward: Mutex<Option<mpsc::SyncSender<Forward>>>,
    dropped: AtomicU64,
}

impl Events<'_> {
    fn act(&self, made: Vec<Output>) {
        for output in made {
            match output {
                Output::File(file) => self.file_closed(file),
                Output::Event(event) => self.deliver(&event),
                Output::Dropped(kind, name, reason) => self.log_dropped(kind, &name, reason),
            }
        }
    }

    fn file_closed(&self, file: FileRecord) {
        let line = WrapperLine::FileClosed {
            sid: self.session.id.clone(),
            user: self.session.account.name.clone(),
            sftp_pid: Some(self.sftp_pid),
            file,
        };
        self.send(Severity::Info, &line);
    }

    fn deliver(&self, event: &Event) {
        if self.cfg.hooks.event_hook(event.kind).is_none() {
            return;
        }
        let sent = lock(&self.runner)
            .as_mut()
            .map_or(Err(runner::SendError::Closed), |r| r.send_event(event));
        if let Err(why) = sent {
            let reason = match why {
                runner::SendError::Full => DropReason::Full,
                runner::SendError::Closed => DropReason::Closed,
                runner::SendError::TooLarge => DropReason::TooLarge,
            };
            self.log_dropped(event.kind.as_str(), &event.path, reason);
        }
    }

    fn log_dropped(&self, kind: &str, name: &[u8], reason: DropReason) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.send(
            Severity::Warning,
            &self.session.event_dropped(kind, name, reason),
        );
    }

    /// A line of the wrapper's, in order with sftp-server's. On a clone of the sender, so that a
    /// full queue never holds the lock.
    fn send(&self, severity: Severity, line: &WrapperLine) {
        let forward = lock(&self.forward).clone();
        if let Some(forward) = forward {
            let _ = forward.send(Forward::Own(severity, line.render()));
        }
    }
}

/// Logs `session end` and returns what the post-session hook is told.
fn log_end(session: &Session, sftp_pid: u32, outcome: Outcome) -> SessionEnd {
    let status = outcome.status;
    let end = SessionEnd {
        ended_at: Local::now(),
        duration: session.started.elapsed(),
        exit_code: exit_code(status),
        sftp_pid,
        totals: outcome.totals,
    };
    let line = WrapperLine::SessionEnd {
        sid: session.id.clone(),
        user: session.account.name.clone(),
        connection: session.connection.clone(),
        sftp_pid: Some(sftp_pid),
        duration_ms: Some(end.duration.as_millis() as u64),
        exit: match (status.code(), status.signal()) {
            (Some(code), _) => Some(ExitOutcome::Status(code)),
            (None, Some(sig)) => Some(ExitOutcome::Signal(signal_name(sig))),
            (None, None) => None,
        },
        totals: end.totals.clone(),
        dropped_events: outcome.dropped_events,
        dropped_log_lines: outcome.dropped_log_lines,
        error: None,
    };
    session.log(Severity::Info, &line);
    end
}

/// The post-session hook: through the runner after the queued event hooks (capture mode), or
/// here; waited for, or detached so the client is released at once.
fn run_post_session_hook(
    session: &Session,
    cfg: &Config,
    runner: Option<Runner>,
    end: &SessionEnd,
) {
    let wait = cfg.hooks.post_session_mode == PostSessionMode::Wait;
    if let Some(runner) = runner {
        let post_session = cfg.hooks.post_session.as_ref().map(|_| {
            session
                .hook_env("post_session", Some(end))
                .into_iter()
                .filter(|(k, _)| k.starts_with("SFTPD_"))
                .map(|(k, v)| (k, v.into_vec()))
                .collect()
        });
        if let Err(why) = runner.finish(post_session, wait) {
            let line = session.hook_line(
                Some("post_session"),
                None,
                HookReport::SpawnFailed(format!("hook runner: {why:?}")),
                None,
            );
            session.log(Severity::Warning, &line);
        }
        return;
    }
    let Some(argv) = &cfg.hooks.post_session else {
        return;
    };
    let env = session.hook_env("post_session", Some(end));
    let timeout = Duration::from_secs(cfg.hooks.timeout_secs);
    if wait {
        let result = hooks::run(argv, &env, timeout, None);
        session.log_hook("post_session", &result);
    } else {
        // SAFETY: the capture threads, if there were any, have been joined: the process has a
        // single thread again.
        unsafe { detach_post_hook(session, argv, &env, timeout) }
    }
}

/// The directory sftp-server takes relative names from: the one it inherits from the wrapper
/// (sshd's, the account's home), unless its arguments name another (`-d`, which sftp-server
/// expands itself: not followed here). With it, the home's own name when that is another name
/// of the same directory (a home that is a symlink: getcwd gives where it leads).
fn sftp_server_dir(args: &[String], home: &Path) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    // Conservative: any option word holding a `d` (`-d`, `-ed`, or `-l debug` written `-ldebug`).
    if args.iter().any(|a| a.starts_with('-') && a.contains('d')) {
        return None;
    }
    let dir = std::env::current_dir().ok()?;
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    let alias = (home != dir && same(home, &dir)).then(|| home.as_os_str().as_bytes().to_vec());
    Some((dir.into_os_string().into_vec(), alias))
}

/// Starts sftp-server with stdin and stdout inherited (or the relay's pipes) and, with
/// `isolation`, without `/proc`.
fn spawn_sftp_server(
    effective: &Effective,
    env: &[(String, OsString)],
    stderr: Option<OwnedFd>,
    stdin_stdout: Option<(OwnedFd, OwnedFd)>,
    isolation: Option<isolate::ProcIsolation>,
) -> std::io::Result<Child> {
    let parent = getpid();
    let mut command = Command::new(&effective.sftp_server_path);
    command
        .args(&effective.sftp_server_args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(fd) = stderr {
        command.stderr(Stdio::from(fd));
    }
    if let Some((stdin, stdout)) = stdin_stdout {
        command
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout));
    }
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (sigprocmask, sigaction, prctl, getppid, and the system calls of
    // `ProcIsolation::enter`); it allocates nothing: the id maps were formatted before the fork.
    unsafe {
        command.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            // A client gone mid-reply makes sftp-server's write fail (EPIPE) instead of killing
            // it: it then ends through its cleanup, which logs the `forced close` of each file
            // still open, so an interrupted transfer is never missing from the log. An ignored
            // signal stays ignored across exec.
            nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn)?;
            // sftp-server must not outlive the wrapper: without it there is no session end.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != parent {
                // The wrapper died before the death signal was armed.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(isolation) = &isolation {
                isolation.enter()?;
            }
            Ok(())
        })
    };
    command.spawn()
}

/// Waits for sftp-server, forwarding SIGTERM, SIGINT and SIGHUP to it.
fn supervise(child: &mut Child, watched: &SigSet, session: &Session) -> ExitStatus {
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match watched.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                let _ = kill(pid, sig);
                session.log(
                    Severity::Notice,
                    &WrapperLine::SignalForwarded {
                        sid: session.id.clone(),
                        user: session.account.name.clone(),
                        signal: sig.as_str().to_owned(),
                    },
                );
                continue;
            }
            Err(_) => {}
        }
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            // Only fails if the child was reaped elsewhere; a blocking wait gives the best answer.
            Err(_) => {
                return child
                    .wait()
                    .unwrap_or_else(|_| ExitStatus::from_raw(1 << 8));
            }
        }
    }
}

/// Runs the post-session hook in a process of its own session, with stdio on /dev/null, so the
/// wrapper can exit at once and sshd can close the channel while the hook still runs.
///
/// # Safety
///
/// The process must have a single thread: the child goes on using the allocator and std after
/// fork. The child ends with `_exit`.
unsafe fn detach_post_hook(
    session: &Session,
    argv: &[String],
    env: &[(String, OsString)],
    timeout: Duration,
) {
    // SAFETY: the caller guarantees a single thread.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => {}
        Ok(ForkResult::Child) => {
            runner::detach_from_channel();
            let result = hooks::run(argv, env, timeout, None);
            session.log_hook("post_session", &result);
            // SAFETY: _exit ends this forked copy without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        Err(e) => {
            let line = session.hook_line(
                Some("post_session"),
                None,
                HookReport::SpawnFailed(format!("fork: {e}")),
                None,
            );
            session.log(Severity::Warning, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_from_ssh_connection() {
        let c = Connection::from_env_values(
            Some(OsStr::new("192.0.2.7 50022 198.51.100.1 22")),
            Some(OsStr::new("10.9.9.9 1 22")),
        );
        assert_eq!(c.client_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(c.client_port.as_deref(), Some("50022"));
        assert_eq!(c.local_ip.as_deref(), Some("198.51.100.1"));
        assert_eq!(c.local_port.as_deref(), Some("22"));
        let v6 = Connection::from_env_values(Some(OsStr::new("2001:db8::5 4000 ::1 2222")), None);
        assert_eq!(v6.client_ip.as_deref(), Some("2001:db8::5"));
    }

    #[test]
    fn connection_falls_back_to_ssh_client() {
        let c = Connection::from_env_values(None, Some(OsStr::new("192.0.2.7 50022 22")));
        assert_eq!(c.client_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(c.local_ip, None);
        assert_eq!(c.local_port.as_deref(), Some("22"));
        let c = Connection::from_env_values(
            Some(OsStr::new("garbage")),
            Some(OsStr::new("192.0.2.7 1 22")),
        );
        assert_eq!(c.client_ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn connection_ignores_what_is_not_an_address() {
        let c = Connection::from_env_values(Some(OsStr::new("x\"y 99999 1.2.3.4 22")), None);
        assert_eq!(c.client_ip, None);
        assert_eq!(c.client_port, None);
        assert_eq!(c.local_ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(
            Connection::from_env_values(None, None),
            Connection::default()
        );
    }

    #[test]
    fn child_environment_is_an_allow_list() {
        let account = Account {
            name: "acme".to_owned(),
            home: PathBuf::from("/srv/sftp/acme"),
            groups: vec![],
        };
        let vars = [
            ("LD_PRELOAD", "/home/acme/evil.so"),
            ("LD_LIBRARY_PATH", "/tmp"),
            ("USER", "root"),
            ("HOME", "/root"),
            ("PATH", "/usr/bin:/bin"),
            ("SSH_CONNECTION", "192.0.2.7 50022 198.51.100.1 22"),
            ("SSH_CLIENT", "192.0.2.7 50022 22"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("LC_evil", "x"),
            ("TZ", "Europe/Berlin"),
            ("BASH_ENV", "/tmp/x"),
            ("SSH_ORIGINAL_COMMAND", "id"),
            ("SHELL", "/bin/sh"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = child_environment(&vars, &account);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "HOME",
                "LANG",
                "LC_ALL",
                "LOGNAME",
                "PATH",
                "SSH_CLIENT",
                "SSH_CONNECTION",
                "USER"
            ]
        );
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("USER"), Some(OsString::from("acme")));
        assert_eq!(get("HOME"), Some(OsString::from("/srv/sftp/acme")));
        assert_eq!(get("PATH"), Some(OsString::from(config::SECURE_PATH)));

        // The hooks: no client-settable variable unless listed, a fixed PATH and HOME.
        let mut hooks = config::HooksSection::default();
        let env = hook_environment(&vars, &account, &hooks);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "HOME",
                "LOGNAME",
                "PATH",
                "SSH_CLIENT",
                "SSH_CONNECTION",
                "USER"
            ]
        );
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("HOME"), Some(OsString::from("/")));
        assert_eq!(get("PATH"), Some(OsString::from(config::SECURE_PATH)));
        hooks.pass_env = vec!["LANG".to_owned(), "TZ".to_owned()];
        hooks.home = "/var/lib/hooks".to_owned();
        let env = hook_environment(&vars, &account, &hooks);
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("TZ"), Some(OsString::from("Europe/Berlin")));
        assert_eq!(get("LANG"), Some(OsString::from("C.UTF-8")));
        assert_eq!(get("HOME"), Some(OsString::from("/var/lib/hooks")));
        assert_eq!(get("LC_ALL"), None);
    }

    #[test]
    fn session_ids_are_distinct_and_tidy() {
        let now = Local::now();
        let a = new_session_id(now);
        let b = new_session_id(now);
        assert_ne!(a, b);
        assert!(
            a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{a}"
        );
        assert!(a.contains(&std::process::id().to_string()));
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(2 << 8)), 2);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
