//! /etc/sftpd-wrapper.toml: loading, the ownership checks that make it trustworthy, validation and
//! the effective settings for one user.
//!
//! The path is fixed at build time. Nothing a connecting user controls (the environment, the `-c`
//! string) can select another file; only the admin's `--check-config --config PATH` reads another.

use crate::log::wrapper::EventKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where the login shell always reads its configuration.
pub(crate) const CONFIG_PATH: &str = "/etc/sftpd-wrapper.toml";

/// Where Debian, Fedora and the BSD-style layouts put OpenSSH's sftp-server, in the order tried.
pub(crate) const SFTP_SERVER_CANDIDATES: [&str; 3] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
];

/// PATH for sftp-server and the default PATH of the hooks (like sudo's `secure_path`): only
/// root-owned directories, never one from the client's environment.
pub(crate) const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The config file is larger than any sane configuration; refusing it bounds memory use.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing {path}: {reason}")]
    Insecure { path: PathBuf, reason: String },
    #[error("{path} does not parse: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

crate::log::text_enum! {
    pub(crate) enum Facility {
        User => "user",
        Daemon => "daemon",
        Auth => "auth",
        Authpriv => "authpriv",
        Local0 => "local0",
        Local1 => "local1",
        Local2 => "local2",
        Local3 => "local3",
        Local4 => "local4",
        Local5 => "local5",
        Local6 => "local6",
        Local7 => "local7",
    }
}

impl Facility {
    pub(crate) fn to_libc(self) -> libc::c_int {
        match self {
            Facility::User => libc::LOG_USER,
            Facility::Daemon => libc::LOG_DAEMON,
            Facility::Auth => libc::LOG_AUTH,
            Facility::Authpriv => libc::LOG_AUTHPRIV,
            Facility::Local0 => libc::LOG_LOCAL0,
            Facility::Local1 => libc::LOG_LOCAL1,
            Facility::Local2 => libc::LOG_LOCAL2,
            Facility::Local3 => libc::LOG_LOCAL3,
            Facility::Local4 => libc::LOG_LOCAL4,
            Facility::Local5 => libc::LOG_LOCAL5,
            Facility::Local6 => libc::LOG_LOCAL6,
            Facility::Local7 => libc::LOG_LOCAL7,
        }
    }
}

crate::log::text_enum! {
    #[derive(Default)]
    pub(crate) enum FailurePolicy {
        #[default]
        Allow => "allow",
        Deny => "deny",
    }
}

crate::log::text_enum! {
    #[derive(Default)]
    pub(crate) enum PostSessionMode {
        #[default]
        Detach => "detach",
        Wait => "wait",
    }
}

crate::log::text_enum! {
    /// How sftp-server's own log lines travel.
    #[derive(Default)]
    pub(crate) enum LogMode {
        /// sftp-server logs to syslog itself (`-f <facility> -l info`).
        #[default]
        Syslog => "syslog",
        /// sftp-server logs to stderr (`-e -l info`); the wrapper reads the lines, forwards them to
        /// syslog and fires the per-file event hooks.
        Capture => "capture",
    }
}

crate::log::text_enum! {
    /// Whether sftp-server runs without a view of `/proc`.
    #[derive(Default)]
    pub(crate) enum ProcIsolation {
        /// sftp-server runs in a user and mount namespace of its own with an empty `/proc`, so the
        /// partner cannot reach the memory of the hooks or of sftp-server itself; a session where
        /// that fails while `/proc` is visible is not started.
        #[default]
        Require => "require",
        /// sftp-server sees `/proc`. Sessions with hooks are then refused unless
        /// kernel.yama.ptrace_scope is 1 or more (or `/proc` is not visible, as in a jail without it).
        Off => "off",
    }
}

crate::log::text_enum! {
    /// How an event hook receives the event besides its environment.
    #[derive(Default)]
    pub(crate) enum EventFormat {
        /// Environment variables only; stdin is /dev/null.
        #[default]
        Env => "env",
        /// Also one JSON object on stdin.
        Json => "json",
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SftpServerSection {
    /// Absolute path of OpenSSH's sftp-server; default: the first of [`SFTP_SERVER_CANDIDATES`]
    /// that exists.
    pub path: Option<String>,
    /// Arguments for sftp-server; default `-f local5 -l info` with the configured facility.
    pub args: Option<Vec<String>>,
    /// The exact `-c` strings accepted from sshd; default: the sftp-server path alone, which is
    /// what `Subsystem sftp /usr/lib/openssh/sftp-server` makes sshd pass.
    pub allowed_commands: Option<Vec<String>>,
    pub log_mode: LogMode,
    pub proc_isolation: ProcIsolation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SyslogSection {
    pub facility: Facility,
    pub ident: String,
    pub on_failure: FailurePolicy,
}

impl Default for SyslogSection {
    fn default() -> Self {
        SyslogSection {
            facility: Facility::Local5,
            ident: "sftpd-wrapper".to_owned(),
            on_failure: FailurePolicy::Allow,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HooksSection {
    pub pre_session: Option<Vec<String>>,
    pub post_session: Option<Vec<String>>,
    pub timeout_secs: u64,
    pub pre_session_failure: PreSessionFailure,
    pub post_session_mode: PostSessionMode,
    pub on_upload: Option<Vec<String>>,
    pub on_download: Option<Vec<String>>,
    pub on_remove: Option<Vec<String>>,
    pub on_rename: Option<Vec<String>>,
    pub on_mkdir: Option<Vec<String>>,
    pub on_rmdir: Option<Vec<String>>,
    pub on_link: Option<Vec<String>>,
    pub on_copy: Option<Vec<String>>,
    pub event_format: EventFormat,
    /// A finished upload of `NAME.filepart` renamed to `NAME` fires `upload` for `NAME`.
    pub upload_on_rename: bool,
    /// The hooks' PATH.
    pub path: String,
    /// The hooks' HOME: by default `/`, never the partner's writable home.
    pub home: String,
    /// How long event hooks still queued when the session ends may go on running; what is left
    /// then is dropped and logged.
    pub drain_secs: u64,
    /// Variables of the session's environment (as sshd set it) passed on to the hooks, e.g.
    /// `["LANG"]`. None by default: the client may have set them.
    pub pass_env: Vec<String>,
}

impl HooksSection {
    /// The event hooks, by event name.
    pub(crate) fn event_hooks(&self) -> [(EventKind, Option<&Vec<String>>); 8] {
        [
            (EventKind::Upload, self.on_upload.as_ref()),
            (EventKind::Download, self.on_download.as_ref()),
            (EventKind::Copy, self.on_copy.as_ref()),
            (EventKind::Remove, self.on_remove.as_ref()),
            (EventKind::Rename, self.on_rename.as_ref()),
            (EventKind::Mkdir, self.on_mkdir.as_ref()),
            (EventKind::Rmdir, self.on_rmdir.as_ref()),
            (EventKind::Link, self.on_link.as_ref()),
        ]
    }

    /// The hook for one event, if configured.
    pub fn event_hook(&self, event: EventKind) -> Option<&Vec<String>> {
        self.event_hooks()
            .into_iter()
            .find(|(kind, _)| *kind == event)
            .and_then(|(_, argv)| argv)
    }

    /// Whether any hook at all is configured (pre, post or event).
    pub(crate) fn any_hook(&self) -> bool {
        self.pre_session.is_some() || self.post_session.is_some() || self.any_event_hook()
    }

    pub(crate) fn any_event_hook(&self) -> bool {
        self.event_hooks().iter().any(|(_, argv)| argv.is_some())
    }
}

crate::log::text_enum! {
    #[derive(Default)]
    pub(crate) enum PreSessionFailure {
        #[default]
        Deny => "deny",
        Allow => "allow",
    }
}

crate::log::deserialize_words!(
    Facility,
    FailurePolicy,
    PostSessionMode,
    LogMode,
    ProcIsolation,
    EventFormat,
    PreSessionFailure,
);

impl Default for HooksSection {
    fn default() -> Self {
        HooksSection {
            pre_session: None,
            post_session: None,
            timeout_secs: 30,
            pre_session_failure: PreSessionFailure::Deny,
            post_session_mode: PostSessionMode::Detach,
            on_upload: None,
            on_download: None,
            on_remove: None,
            on_rename: None,
            on_mkdir: None,
            on_rmdir: None,
            on_link: None,
            on_copy: None,
            event_format: EventFormat::Env,
            upload_on_rename: true,
            path: SECURE_PATH.to_owned(),
            home: "/".to_owned(),
            drain_secs: 300,
            pass_env: Vec::new(),
        }
    }
}

/// Settings of `sftpd-report`; the login shell ignores them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReportSection {
    /// The accounting database: a path (or `sqlite://PATH`), or a `postgres://` URL. Default
    /// /var/lib/sftpd-wrapper/sftpd.db.
    pub database: Option<String>,
    /// A file holding the PostgreSQL password (readable by its owner only), used when the URL
    /// carries none.
    pub password_file: Option<String>,
}

/// Every setting, for the sftpd-wrapper.toml(5) man page: the key, an example value in TOML (the
/// default where it is a literal), and what it means. A unit test parses each example, so the
/// page cannot name a key the parser does not know.
#[cfg(feature = "accounting")]
pub(crate) const REFERENCE: &[(&str, &str, &str)] = &[
    (
        "sftp_server.path",
        "\"/usr/lib/openssh/sftp-server\"",
        "OpenSSH's sftp-server program. Default: the first that exists of /usr/lib/openssh/sftp-server, /usr/libexec/openssh/sftp-server, /usr/libexec/sftp-server.",
    ),
    (
        "sftp_server.args",
        "[\"-f\", \"local5\", \"-l\", \"info\"]",
        "Its arguments. Default: -f FACILITY -l info; in capture mode -e -l info (capture mode requires -e).",
    ),
    (
        "sftp_server.allowed_commands",
        "[\"/usr/lib/openssh/sftp-server\"]",
        "The exact -c strings accepted from sshd, compared byte for byte. Default: the sftp-server path alone, which is what Subsystem sftp /usr/lib/openssh/sftp-server passes. Nothing of the command is passed on.",
    ),
    (
        "sftp_server.log_mode",
        "\"syslog\"",
        "syslog: sftp-server logs to syslog itself. capture: it logs to stderr; the wrapper forwards each line to syslog unchanged and fires the per-file event hooks.",
    ),
    (
        "sftp_server.proc_isolation",
        "\"require\"",
        "require: sftp-server runs in a user and mount namespace of its own with an empty /proc, so the partner can reach neither the hooks' memory nor sftp-server's own through /proc (a session where that fails while /proc is visible is not started); off: sftp-server sees /proc, and sessions with hooks are refused unless kernel.yama.ptrace_scope is 1 or more.",
    ),
    (
        "syslog.facility",
        "\"local5\"",
        "user, daemon, auth, authpriv or local0 to local7.",
    ),
    (
        "syslog.ident",
        "\"sftpd-wrapper\"",
        "The program name in the log.",
    ),
    (
        "syslog.on_failure",
        "\"allow\"",
        "When no syslog daemon answers at /dev/log: allow runs the session and writes one line to stderr; deny refuses it.",
    ),
    (
        "hooks.pre_session",
        "[\"/usr/local/bin/check-partner\"]",
        "Run before sftp-server starts; a failure or timeout refuses the session unless pre_session_failure = allow. Not set by default.",
    ),
    (
        "hooks.post_session",
        "[\"/usr/local/bin/process-uploads\", \"--fast\"]",
        "Run after sftp-server has exited. Not set by default.",
    ),
    (
        "hooks.timeout_secs",
        "30",
        "The time limit of each hook, 1 to 86400 seconds; at the limit the hook's process group gets SIGTERM, then SIGKILL.",
    ),
    (
        "hooks.pre_session_failure",
        "\"deny\"",
        "deny or allow: what a failing pre_session hook does to the session.",
    ),
    (
        "hooks.post_session_mode",
        "\"detach\"",
        "detach: the client is released at once and the hook runs on; wait: the client waits for it.",
    ),
    (
        "hooks.on_upload",
        "[\"/usr/local/bin/process-upload\"]",
        "Capture mode: run when a file written over the wire (or created empty) is closed.",
    ),
    (
        "hooks.on_download",
        "[\"/usr/local/bin/mark-delivered\"]",
        "Capture mode: run when a file is closed after bytes were read from it (and none written).",
    ),
    (
        "hooks.on_copy",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a file written by a server-side copy (copy-data) is closed.",
    ),
    (
        "hooks.on_link",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a symlink or hard link is made.",
    ),
    (
        "hooks.on_remove",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a file is removed.",
    ),
    (
        "hooks.on_rename",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a file is renamed.",
    ),
    (
        "hooks.on_mkdir",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a directory is created.",
    ),
    (
        "hooks.on_rmdir",
        "[\"/usr/local/bin/audit\"]",
        "Capture mode: run when a directory is removed.",
    ),
    (
        "hooks.event_format",
        "\"env\"",
        "env: event hooks get environment variables; json: also one JSON object on stdin.",
    ),
    (
        "hooks.upload_on_rename",
        "true",
        "An upload to NAME.filepart renamed to NAME fires upload for NAME.",
    ),
    (
        "hooks.path",
        "\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"",
        "The hooks' PATH (absolute, root-owned directories); never the client's.",
    ),
    (
        "hooks.drain_secs",
        "300",
        "Capture mode: how long event hooks still queued when the session ends may go on running (1 to 86400 seconds); the rest are dropped and logged (event dropped reason=drain_timeout). Events that do not fit the queue are dropped and counted in session end.",
    ),
    (
        "hooks.home",
        "\"/\"",
        "The hooks' HOME; / by default, never the partner's home (which the partner can write).",
    ),
    (
        "hooks.pass_env",
        "[\"LANG\"]",
        "Variables of the session environment passed on to the hooks. None by default: the client may have set them (TZ, LANG, LC_*). Loader variables and PATH, HOME, USER, LOGNAME, SFTPD_* cannot be listed.",
    ),
    (
        "report.database",
        "\"/var/lib/sftpd-wrapper/sftpd.db\"",
        "sftpd-report's database: a path, sqlite://PATH or postgres://USER@HOST/DB.",
    ),
    (
        "report.password_file",
        "\"/etc/sftpd-wrapper/report.pass\"",
        "A file (mode 0600) with the PostgreSQL password, used when the URL has none.",
    ),
    (
        "users.NAME.args",
        "[\"-e\", \"-l\", \"info\"]",
        "For user NAME: replaces sftp-server's arguments built so far (in capture mode it must contain -e).",
    ),
    (
        "users.NAME.extra_args",
        "[\"-u\", \"027\"]",
        "For user NAME: appended to sftp-server's arguments.",
    ),
    (
        "groups.NAME.args",
        "[\"-f\", \"local5\", \"-l\", \"info\"]",
        "For members of group NAME (groups apply in alphabetical order, before the user's section; in capture mode it must contain -e).",
    ),
    (
        "groups.NAME.extra_args",
        "[\"-R\"]",
        "For members of group NAME, e.g. -R for read-only partners.",
    ),
];

/// Per-user or per-group changes to sftp-server's arguments.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Override {
    /// Replaces the arguments built so far.
    pub args: Option<Vec<String>>,
    /// Appended to the arguments built so far (`["-R"]` for a read-only partner).
    pub extra_args: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub sftp_server: SftpServerSection,
    pub syslog: SyslogSection,
    pub hooks: HooksSection,
    pub report: ReportSection,
    pub users: BTreeMap<String, Override>,
    pub groups: BTreeMap<String, Override>,
}

/// A configuration together with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct LoadedConfig {
    pub config: Config,
    /// `None` when the file does not exist and built-in defaults apply.
    pub source: Option<PathBuf>,
}

/// What applies to one user's session once defaults and overrides are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Effective {
    pub sftp_server_path: String,
    pub sftp_server_args: Vec<String>,
    pub allowed_commands: Vec<String>,
    /// The override sections that applied, in the order they were applied.
    pub applied_overrides: Vec<String>,
}

/// Reads and validates a config file. A missing file means built-in defaults; a file that is not
/// owned by root, or that group or others may write, is refused because whoever can write it
/// decides what every SFTP account may run. So is a file reached through a directory someone
/// else could write (they could rename it away: see [`check_directories`]), a symbolic link that
/// leads nowhere (a renamed-away target must not mean "defaults"), and anything but a regular
/// file (opened without blocking, so a FIFO cannot hang the shell).
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LoadedConfig {
                config: Config::default(),
                source: None,
            });
        }
        Err(e) => return Err(io(e)),
        Ok(link) if link.file_type().is_symlink() => {
            if link.uid() != 0 {
                return Err(ConfigError::Insecure {
                    path: path.to_owned(),
                    reason: format!(
                        "it is a symbolic link owned by uid {}, not root",
                        link.uid()
                    ),
                });
            }
            if let Err(e) = std::fs::metadata(path) {
                return Err(ConfigError::Insecure {
                    path: path.to_owned(),
                    reason: format!(
                        "it is a symbolic link to {}, which cannot be read ({e}); a missing target is not taken to mean defaults",
                        std::fs::read_link(path)
                            .map_or_else(|_| "?".to_owned(), |t| t.display().to_string())
                    ),
                });
            }
        }
        Ok(_) => {}
    }
    check_directories(path)?;
    let real = std::fs::canonicalize(path).map_err(io)?;
    check_directories(&real)?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&real)
        .map_err(io)?;
    // Checked on the open descriptor, so the file cannot be swapped between check and read.
    let meta = file.metadata().map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    check_file_security(path, meta.uid(), meta.mode(), meta.is_file())?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::Insecure {
            path: path.to_owned(),
            reason: format!("it is larger than {MAX_CONFIG_BYTES} bytes"),
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
    let config = parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })?;
    config.validate().map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })?;
    Ok(LoadedConfig {
        config,
        source: Some(path.to_owned()),
    })
}

/// Every directory above `path` must be owned by root and writable by nobody else (like sshd's
/// StrictModes), or be root's sticky directory such as /tmp, where only root can rename or
/// remove root's entries: otherwise whoever can write it can swap or rename the config.
pub(crate) fn check_directories(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    for dir in path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
    {
        let meta = std::fs::metadata(dir).map_err(|source| ConfigError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if meta.uid() != 0 || (mode & 0o022 != 0 && !sticky) {
            return Err(ConfigError::Insecure {
                path: path.to_owned(),
                reason: format!(
                    "the directory {} is {} (owner uid {}, mode {:04o}): whoever can write it can rename the config away or swap it (fix: chown root {0} and chmod go-w {0})",
                    dir.display(),
                    if meta.uid() != 0 {
                        "not owned by root"
                    } else {
                        "writable by group or others"
                    },
                    meta.uid(),
                    mode & 0o7777
                ),
            });
        }
    }
    Ok(())
}

/// The ownership and permission rule, separate from any I/O so it can be tested directly.
pub(crate) fn check_file_security(
    path: &Path,
    uid: u32,
    mode: u32,
    is_file: bool,
) -> Result<(), ConfigError> {
    let refuse = |reason: String| ConfigError::Insecure {
        path: path.to_owned(),
        reason,
    };
    if !is_file {
        return Err(refuse("it is not a regular file".to_owned()));
    }
    if uid != 0 {
        return Err(refuse(format!(
            "it is owned by uid {uid}, not root (fix: chown root:root {})",
            path.display()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!(
            "its mode {:04o} lets group or others write it (fix: chmod 644 {})",
            mode & 0o7777,
            path.display()
        )));
    }
    Ok(())
}

/// Parses TOML text into a config; the message names the line and the offending key.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str::<Config>(text).map_err(|e| e.to_string().trim_end().to_owned())
}

fn check_argv(what: &str, argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err(format!(
            "{what} is an empty list; remove it or name a program"
        ));
    };
    if !program.starts_with('/') {
        return Err(format!(
            "{what} must start with an absolute path (hooks run without a shell and without PATH lookup), got {program:?}"
        ));
    }
    check_no_nul(what, argv)
}

/// Whether sftp-server, given `args`, logs to stderr: `-e` as its getopt(3) reads it (options
/// may be grouped, `-l -e` makes `-e` the log level, glibc's getopt takes options after other
/// words until `--`). The option letters are OpenSSH 9's: `d:f:l:P:p:Q:u:cehR`.
pub(crate) fn sftp_server_logs_to_stderr(args: &[String]) -> bool {
    const WITH_VALUE: &[u8] = b"dflPpQu";
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            return false;
        }
        let Some(letters) = word.strip_prefix('-').filter(|l| !l.is_empty()) else {
            continue;
        };
        for (i, letter) in letters.bytes().enumerate() {
            if letter == b'e' {
                return true;
            }
            if WITH_VALUE.contains(&letter) {
                if i + 1 == letters.len() {
                    words.next();
                }
                break;
            }
        }
    }
    false
}

fn check_no_nul(what: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(|v| v.contains('\0')) {
        return Err(format!("{what} contains a NUL character"));
    }
    Ok(())
}

impl Config {
    /// Checks what TOML types alone cannot; the message says what to fix.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.check_sftp_server()?;
        self.check_ident()?;
        self.check_hook_commands()?;
        self.check_capture_args()?;
        self.check_hook_environment()?;
        self.check_overrides()
    }

    /// `[sftp_server]`: the path, the arguments and the commands a session may ask for.
    fn check_sftp_server(&self) -> Result<(), String> {
        if let Some(path) = &self.sftp_server.path
            && !path.starts_with('/')
        {
            return Err(format!(
                "sftp_server.path must be an absolute path, got {path:?}"
            ));
        }
        if let Some(path) = &self.sftp_server.path {
            check_no_nul("sftp_server.path", std::slice::from_ref(path))?;
        }
        if let Some(args) = &self.sftp_server.args {
            check_no_nul("sftp_server.args", args)?;
        }
        if let Some(cmds) = &self.sftp_server.allowed_commands {
            if cmds.is_empty() {
                return Err(
                    "sftp_server.allowed_commands is empty, so every session would be refused; list the Subsystem command from sshd_config"
                        .to_owned(),
                );
            }
            if cmds.iter().any(|c| c.trim().is_empty()) {
                return Err("sftp_server.allowed_commands contains an empty command".to_owned());
            }
            check_no_nul("sftp_server.allowed_commands", cmds)?;
        }
        Ok(())
    }

    /// `syslog.ident`, the tag of every line the wrapper logs.
    fn check_ident(&self) -> Result<(), String> {
        let ident = &self.syslog.ident;
        if ident.is_empty()
            || ident.len() > 48
            || !ident
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "syslog.ident must be 1 to 48 characters of letters, digits, '-', '_' or '.', got {ident:?}"
            ));
        }
        Ok(())
    }

    /// The hooks' command lines, and the log mode the event hooks need.
    fn check_hook_commands(&self) -> Result<(), String> {
        if let Some(argv) = &self.hooks.pre_session {
            check_argv("hooks.pre_session", argv)?;
        }
        if let Some(argv) = &self.hooks.post_session {
            check_argv("hooks.post_session", argv)?;
        }
        for (event, argv) in self.hooks.event_hooks() {
            if let Some(argv) = argv {
                check_argv(&format!("hooks.on_{event}"), argv)?;
            }
        }
        if self.hooks.any_event_hook() && self.sftp_server.log_mode != LogMode::Capture {
            return Err(
                "the hooks.on_* event hooks need sftp_server.log_mode = \"capture\": only then does the wrapper see sftp-server's lines"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// In capture mode, every argument list a session can end up with makes sftp-server log to
    /// stderr.
    fn check_capture_args(&self) -> Result<(), String> {
        if self.sftp_server.log_mode != LogMode::Capture {
            return Ok(());
        }
        // An override's `args` replaces the list built so far and later sections only append,
        // so -e in the global list and in every replacement (with its own extra_args) puts -e
        // in every list a user can end up with.
        let mut lists: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(args) = &self.sftp_server.args {
            lists.push(("sftp_server.args".to_owned(), args.clone()));
        }
        for (kind, table) in [("users", &self.users), ("groups", &self.groups)] {
            for (name, ov) in table {
                if let Some(args) = &ov.args {
                    let mut list = args.clone();
                    list.extend(ov.extra_args.iter().cloned());
                    lists.push((format!("{kind}.{name}.args"), list));
                }
            }
        }
        for (what, list) in lists {
            if !sftp_server_logs_to_stderr(&list) {
                return Err(format!(
                    "sftp_server.log_mode = \"capture\" needs \"-e\" in {what} (sftp-server must log to stderr, or that partner's transfers fire no event and count nothing), got {list:?}"
                ));
            }
        }
        Ok(())
    }

    /// What hooks run with: their PATH, HOME, passed variables and time limits.
    fn check_hook_environment(&self) -> Result<(), String> {
        for dir in self.hooks.path.split(':') {
            if !dir.starts_with('/') {
                return Err(format!(
                    "hooks.path must list absolute directories only, got {:?}",
                    self.hooks.path
                ));
            }
        }
        if !self.hooks.home.starts_with('/') {
            return Err(format!(
                "hooks.home must be an absolute path, got {:?}",
                self.hooks.home
            ));
        }
        check_no_nul("hooks.path", std::slice::from_ref(&self.hooks.path))?;
        check_no_nul("hooks.home", std::slice::from_ref(&self.hooks.home))?;
        for name in &self.hooks.pass_env {
            let reserved = ["PATH", "HOME", "USER", "LOGNAME"].contains(&name.as_str())
                || name.starts_with("SFTPD_")
                || crate::shell::harden::is_loader_variable(name.as_bytes());
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || reserved
            {
                return Err(format!(
                    "hooks.pass_env: {name:?} cannot be passed on (a variable name; not PATH, HOME, USER, LOGNAME, SFTPD_* or a loader variable)"
                ));
            }
        }
        if !(1..=86_400).contains(&self.hooks.drain_secs) {
            return Err(format!(
                "hooks.drain_secs must be between 1 and 86400, got {}",
                self.hooks.drain_secs
            ));
        }
        if !(1..=86_400).contains(&self.hooks.timeout_secs) {
            return Err(format!(
                "hooks.timeout_secs must be between 1 and 86400, got {}",
                self.hooks.timeout_secs
            ));
        }
        Ok(())
    }

    /// The `[users.NAME]` and `[groups.NAME]` sections: their names and arguments.
    fn check_overrides(&self) -> Result<(), String> {
        for (kind, table) in [("users", &self.users), ("groups", &self.groups)] {
            for (name, ov) in table {
                if name.is_empty() || name.contains(['\0', '/']) {
                    return Err(format!("[{kind}.{name:?}] is not a valid name"));
                }
                if let Some(args) = &ov.args {
                    check_no_nul(&format!("{kind}.{name}.args"), args)?;
                }
                check_no_nul(&format!("{kind}.{name}.extra_args"), &ov.extra_args)?;
            }
        }
        Ok(())
    }

    /// The sftp-server path: configured, or the first candidate that exists, or the Debian path
    /// (so the error at spawn time names the path that was tried).
    pub(crate) fn sftp_server_path(&self) -> String {
        if let Some(path) = &self.sftp_server.path {
            return path.clone();
        }
        SFTP_SERVER_CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or(&SFTP_SERVER_CANDIDATES[0])
            .to_string()
    }

    /// Resolves the settings for `user`, who is a member of `groups`. Group sections apply in
    /// alphabetical order of group name, then the user's own section, each either replacing
    /// (`args`) or extending (`extra_args`) what came before.
    pub(crate) fn effective_for(&self, user: &str, groups: &[String]) -> Effective {
        let sftp_server_path = self.sftp_server_path();
        let mut args =
            self.sftp_server
                .args
                .clone()
                .unwrap_or_else(|| match self.sftp_server.log_mode {
                    LogMode::Syslog => vec![
                        "-f".to_owned(),
                        self.syslog.facility.as_str().to_owned(),
                        "-l".to_owned(),
                        "info".to_owned(),
                    ],
                    LogMode::Capture => vec!["-e".to_owned(), "-l".to_owned(), "info".to_owned()],
                });
        let mut applied = Vec::new();
        let mut apply = |label: String, ov: &Override| {
            if let Some(replacement) = &ov.args {
                args = replacement.clone();
            }
            args.extend(ov.extra_args.iter().cloned());
            applied.push(label);
        };
        for (name, ov) in &self.groups {
            if groups.iter().any(|g| g == name) {
                apply(format!("groups.{name}"), ov);
            }
        }
        if let Some(ov) = self.users.get(user) {
            apply(format!("users.{user}"), ov);
        }
        let allowed_commands = self
            .sftp_server
            .allowed_commands
            .clone()
            .unwrap_or_else(|| vec![sftp_server_path.clone()]);
        Effective {
            sftp_server_path,
            sftp_server_args: args,
            allowed_commands,
            applied_overrides: applied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_key_parses() {
        for (key, example, _) in REFERENCE {
            let (table, field) = key.rsplit_once('.').unwrap();
            let text = format!("[{table}]\n{field} = {example}\n");
            let cfg = parse(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
            // Event hooks are only valid in capture mode; the rest validate alone.
            if !field.starts_with("on_") {
                cfg.validate().unwrap_or_else(|e| panic!("{key}: {e}"));
            }
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let cfg = parse("").unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.syslog.facility, Facility::Local5);
        assert_eq!(cfg.syslog.ident, "sftpd-wrapper");
        assert_eq!(cfg.syslog.on_failure, FailurePolicy::Allow);
        assert_eq!(cfg.hooks.timeout_secs, 30);
        assert_eq!(cfg.hooks.pre_session_failure, PreSessionFailure::Deny);
        assert_eq!(cfg.hooks.post_session_mode, PostSessionMode::Detach);
        let eff = cfg.effective_for("alice", &[]);
        assert_eq!(eff.sftp_server_args, ["-f", "local5", "-l", "info"]);
        assert_eq!(
            eff.allowed_commands,
            std::slice::from_ref(&eff.sftp_server_path)
        );
    }

    #[test]
    fn full_config_parses() {
        let cfg = parse(
            r#"
            [sftp_server]
            path = "/opt/openssh/sftp-server"
            args = ["-f", "local3", "-l", "verbose"]
            allowed_commands = ["/opt/openssh/sftp-server", "/opt/openssh/sftp-server -l info"]

            [syslog]
            facility = "local3"
            ident = "sftp-audit"
            on_failure = "deny"

            [hooks]
            pre_session = ["/usr/local/bin/check-partner"]
            post_session = ["/usr/local/bin/ingest-upload", "--fast"]
            timeout_secs = 5
            pre_session_failure = "allow"
            post_session_mode = "wait"

            [users.acme]
            extra_args = ["-u", "027"]

            [groups.readonly]
            extra_args = ["-R"]
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.syslog.facility, Facility::Local3);
        assert_eq!(cfg.syslog.on_failure, FailurePolicy::Deny);
        assert_eq!(cfg.hooks.post_session_mode, PostSessionMode::Wait);
        assert_eq!(
            cfg.hooks.post_session.as_deref().unwrap(),
            ["/usr/local/bin/ingest-upload", "--fast"]
        );
        let eff = cfg.effective_for("acme", &["readonly".to_owned(), "other".to_owned()]);
        assert_eq!(eff.sftp_server_path, "/opt/openssh/sftp-server");
        assert_eq!(
            eff.sftp_server_args,
            ["-f", "local3", "-l", "verbose", "-R", "-u", "027"]
        );
        assert_eq!(eff.applied_overrides, ["groups.readonly", "users.acme"]);
        assert_eq!(eff.allowed_commands.len(), 2);
    }

    #[test]
    fn capture_mode_and_event_hooks() {
        let cfg = parse(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"/usr/local/bin/ingest\"]\nevent_format = \"json\"\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.effective_for("u", &[]).sftp_server_args,
            ["-e", "-l", "info"]
        );
        assert_eq!(
            cfg.hooks.event_hook(EventKind::Upload).unwrap(),
            &["/usr/local/bin/ingest"]
        );
        assert!(cfg.hooks.event_hook(EventKind::Download).is_none());
        assert!(cfg.hooks.upload_on_rename);
        assert_eq!(cfg.hooks.event_format, EventFormat::Json);

        let err = parse("[hooks]\non_upload = [\"/bin/true\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.contains("log_mode = \"capture\""), "{err}");
        let err = parse("[sftp_server]\nlog_mode = \"capture\"\nargs = [\"-l\", \"info\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.contains("-e"), "{err}");
        let err = parse("[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_rmdir = [\"rel\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.contains("hooks.on_rmdir"), "{err}");
        assert!(parse("[sftp_server]\nlog_mode = \"tee\"\n").is_err());
    }

    #[test]
    fn capture_mode_needs_e_in_every_argument_list() {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (args, stderr) in [
            (&["-e", "-l", "info"][..], true),
            (&["-el", "info"], true),
            (&["-Re"], true),
            (&["-l", "info", "x", "-e"], true),
            (&["-l", "-e"], false),
            (&["-le"], false),
            (&["-f", "local5", "-l", "info"], false),
            (&["--", "-e"], false),
            (&[], false),
        ] {
            assert_eq!(
                sftp_server_logs_to_stderr(&strings(args)),
                stderr,
                "{args:?}"
            );
        }
        let capture = "[sftp_server]\nlog_mode = \"capture\"\n";
        for (text, bad) in [
            (
                "[users.acme]\nargs = [\"-l\", \"info\"]\n",
                Some("users.acme.args"),
            ),
            ("[groups.ro]\nargs = [\"-R\"]\n", Some("groups.ro.args")),
            (
                "[groups.ro]\nargs = [\"-R\"]\nextra_args = [\"-e\"]\n",
                None,
            ),
            ("[users.acme]\nextra_args = [\"-R\"]\n", None),
            ("[users.acme]\nargs = [\"-e\"]\n", None),
        ] {
            let result = parse(&format!("{capture}{text}")).unwrap().validate();
            match bad {
                Some(name) => {
                    let err = result.unwrap_err();
                    assert!(err.contains(name) && err.contains("-e"), "{text}: {err}");
                }
                None => result.unwrap_or_else(|e| panic!("{text}: {e}")),
            }
        }
        // Syslog mode asks nothing of the overrides.
        parse("[users.acme]\nargs = [\"-l\", \"info\"]\n")
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn default_args_follow_the_facility() {
        let cfg = parse("[syslog]\nfacility = \"local2\"\n").unwrap();
        assert_eq!(
            cfg.effective_for("u", &[]).sftp_server_args,
            ["-f", "local2", "-l", "info"]
        );
    }

    #[test]
    fn user_args_replace_group_args() {
        let cfg = parse(
            "[groups.a]\nextra_args = [\"-R\"]\n[groups.b]\nextra_args = [\"-u\", \"022\"]\n[users.x]\nargs = [\"-e\"]\n",
        )
        .unwrap();
        let eff = cfg.effective_for("x", &["b".to_owned(), "a".to_owned()]);
        assert_eq!(eff.sftp_server_args, ["-e"]);
        assert_eq!(eff.applied_overrides, ["groups.a", "groups.b", "users.x"]);
        let eff = cfg.effective_for("y", &["b".to_owned(), "a".to_owned()]);
        assert_eq!(
            eff.sftp_server_args,
            ["-f", "local5", "-l", "info", "-R", "-u", "022"]
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let err = parse("[hooks]\npost_sesion = [\"/bin/true\"]\n").unwrap_err();
        assert!(err.contains("post_sesion"), "{err}");
        let err = parse("[syslog]\nfacility = \"local9\"\n").unwrap_err();
        assert!(err.contains("local9"), "{err}");
        let err = parse("[hooks]\ntimeout_secs = \"ten\"\n").unwrap_err();
        assert!(err.contains("timeout_secs"), "{err}");
        let err = parse("[hooks\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = parse("[hooks]\npost_session_mode = \"later\"\n").unwrap_err();
        assert!(err.contains("later"), "{err}");
    }

    #[test]
    fn validation_errors() {
        let bad = [
            ("[sftp_server]\npath = \"sftp-server\"\n", "absolute"),
            ("[sftp_server]\nallowed_commands = []\n", "empty"),
            (
                "[sftp_server]\nallowed_commands = [\" \"]\n",
                "empty command",
            ),
            ("[sftp_server]\nargs = [\"a\\u0000b\"]\n", "NUL"),
            ("[syslog]\nident = \"\"\n", "ident"),
            ("[syslog]\nident = \"has space\"\n", "ident"),
            ("[hooks]\npost_session = []\n", "empty list"),
            ("[hooks]\npre_session = [\"check\"]\n", "absolute"),
            ("[hooks]\ntimeout_secs = 0\n", "timeout_secs"),
            ("[hooks]\ntimeout_secs = 100000\n", "timeout_secs"),
            ("[users.\"\"]\nextra_args = [\"-R\"]\n", "valid name"),
        ];
        for (text, needle) in bad {
            let cfg = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn security_rule() {
        let p = Path::new("/etc/sftpd-wrapper.toml");
        check_file_security(p, 0, 0o100644, true).unwrap();
        check_file_security(p, 0, 0o100600, true).unwrap();
        let e = check_file_security(p, 1000, 0o100644, true).unwrap_err();
        assert!(e.to_string().contains("chown root:root"), "{e}");
        let e = check_file_security(p, 0, 0o100664, true).unwrap_err();
        assert!(e.to_string().contains("0664"), "{e}");
        assert!(check_file_security(p, 0, 0o100646, true).is_err());
        assert!(check_file_security(p, 0, 0o100644, false).is_err());
    }

    #[test]
    fn load_missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&dir.path().join("absent.toml")).unwrap();
        assert!(loaded.source.is_none());
    }

    #[test]
    fn load_checks_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[hooks]\ntimeout_secs = 7\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let result = load(&path);
        if nix::unistd::geteuid().is_root() {
            assert_eq!(result.unwrap().config.hooks.timeout_secs, 7);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            assert!(matches!(load(&path), Err(ConfigError::Insecure { .. })));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::chown(&path, Some(1), None).unwrap();
            assert!(matches!(load(&path), Err(ConfigError::Insecure { .. })));
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
            std::fs::write(&path, "[hooks\n").unwrap();
            assert!(matches!(load(&path), Err(ConfigError::Parse { .. })));
            std::fs::write(&path, "[hooks]\ntimeout_secs = 0\n").unwrap();
            assert!(matches!(load(&path), Err(ConfigError::Invalid { .. })));
        } else {
            assert!(matches!(result, Err(ConfigError::Insecure { .. })));
        }
    }
}
