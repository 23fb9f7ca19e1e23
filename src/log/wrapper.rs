//! The wrapper's own log lines, as one type: the login shell builds a [`WrapperLine`] and renders
//! it; the accounting wing parses the same type back. No event phrase or field name is spelled
//! anywhere else.

use super::fields::{Field, LogLine, parse_line};

/// Client and server addresses of the SSH connection, as sshd gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub client_ip: Option<String>,
    pub client_port: Option<String>,
    pub local_ip: Option<String>,
    pub local_port: Option<String>,
}

/// A value the partner chose (the refused command), logged as a bounded prefix with the whole
/// value's length and SHA-256, so that a 100 KB command is still one well-formed line that says
/// exactly what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub prefix: Vec<u8>,
    pub len: u64,
    /// Hex SHA-256 of the whole value.
    pub sha256: String,
}

impl Bounded {
    /// How much of the value is logged.
    pub(crate) const PREFIX_BYTES: usize = 256;

    pub fn of(value: &[u8]) -> Bounded {
        use sha2::{Digest, Sha256};
        Bounded {
            prefix: value[..value.len().min(Self::PREFIX_BYTES)].to_vec(),
            len: value.len() as u64,
            sha256: hex::encode(Sha256::digest(value)),
        }
    }
}

/// How sftp-server ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitOutcome {
    Status(i32),
    /// Killed by a signal, by name (`SIGKILL`).
    Signal(String),
}

/// What a capture-mode session moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub files_uploaded: u64,
    pub files_downloaded: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
    pub failed_operations: u64,
}

text_enum! {
    /// A per-file event of capture mode: what its hook (`on_<word>`) and `SFTPD_EVENT` say.
    pub(crate) enum EventKind {
        Upload => "upload",
        Download => "download",
        Copy => "copy",
        Remove => "remove",
        Rename => "rename",
        Mkdir => "mkdir",
        Rmdir => "rmdir",
        Link => "link",
    }
}

text_enum! {
    /// Why an event's hook did not run (`event dropped reason=`).
    pub enum DropReason {
        /// The hook runner's queue was full.
        Full => "full",
        /// The hook runner was gone.
        Closed => "closed",
        /// The event was larger than the runner's socket takes.
        TooLarge => "too_large",
        /// Still queued when `hooks.drain_secs` ran out after the session.
        DrainTimeout => "drain_timeout",
        /// The tap stopped following sftp-server (an answer it did not expect): the files it
        /// followed then have no close it can vouch for.
        TapLost => "tap_lost",
        /// A request sftp-server read past its end (and then exited) was answered OK: what it
        /// did, the packets cannot say.
        UnreadableRequest => "unreadable_request",
    }
}

text_enum! {
    /// What a closed file was, by what the wire moved (`file closed counts_as=`).
    pub enum ClosedAs {
        Upload => "upload",
        Download => "download",
        /// Written by server-side copy (`copy-data`) only: never traffic.
        Copy => "copy",
        /// Opened and closed without moving a byte (a peek).
        Nothing => "none",
    }
}

/// A name the partner chose, logged whole up to [`LoggedPath::MAX`] bytes; a longer one is
/// logged as its first and last half of that (`key=`, `key_tail=`) with the whole name's length
/// and SHA-256. The end is kept because it names the file: a partner who pads a name
/// (`/h/././…/invoice-42.xml`) must not push the file's name out of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPath {
    pub bytes: Vec<u8>,
    /// The whole name's length and hex SHA-256, when `bytes` is only its head.
    pub cut: Option<(u64, String)>,
    /// The name's last bytes, when it was cut (empty in lines of wrappers that kept none).
    pub tail: Vec<u8>,
}

impl LoggedPath {
    /// sftp-server's own paths are at most PATH_MAX (4 KiB) for any open that worked; 1 KiB,
    /// escaped (up to four characters a byte), keeps a line within what rsyslog takes by
    /// default (8 KiB) with the other file's name ([`OtherFile::MAX`]) beside it.
    pub const MAX: usize = 1024;

    pub fn of(path: &[u8]) -> LoggedPath {
        Self::at_most(path, Self::MAX)
    }

    fn at_most(path: &[u8], max: usize) -> LoggedPath {
        if path.len() <= max {
            return LoggedPath {
                bytes: path.to_vec(),
                cut: None,
                tail: Vec::new(),
            };
        }
        let whole = Bounded::of(path);
        LoggedPath {
            bytes: path[..max / 2].to_vec(),
            cut: Some((whole.len, whole.sha256)),
            tail: path[path.len() - max / 2..].to_vec(),
        }
    }

    /// The name as far as the line shows it: whole, or its head and tail around `…` (which
    /// `transfers --path '*/invoice-42.xml'` still matches).
    pub fn shown(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.cut.is_none() {
            return std::borrow::Cow::Borrowed(&self.bytes);
        }
        std::borrow::Cow::Owned([&self.bytes[..], "\u{2026}".as_bytes(), &self.tail].concat())
    }
}

/// One file handle of a capture-mode session, closed, as the SFTP packets showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub path: LoggedPath,
    pub counts_as: ClosedAs,
    /// The data of the DATA replies to its READs.
    pub bytes_read: u64,
    /// The data of its WRITEs answered OK.
    pub bytes_written: u64,
    /// Closed with OK and nothing on it failed (or, forced, a download that had reached EOF).
    pub complete: bool,
    /// A read (other than EOF), write, copy or the close itself was answered with a failure.
    pub failed: bool,
    /// Still open when sftp-server ended (its `forced close`).
    pub forced: bool,
    pub open_flags: String,
    pub elapsed_ms: u64,
    /// The one other file the line names, if any (two names, escaped, keep the line within
    /// what syslog takes).
    pub other: Option<OtherFile>,
}

/// The other file a `file closed` line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherFile {
    /// A copy (`counts_as=copy`): the file copy-data read from (`copied_from=`).
    CopiedFrom(LoggedPath),
    /// Any other file opened through a name the session's links and renames made: the file it
    /// led to ([`crate::log::reach`], `reached=`).
    Reached(LoggedPath),
}

impl OtherFile {
    const COPIED_FROM: &str = "copied_from";
    const REACHED: &str = "reached";

    /// The other name's bytes logged whole, at most: with the path's 1 KiB, both escaped as
    /// `\xHH`, and the other fields, a line stays under rsyslog's 8 KiB (a longer one is cut
    /// there and parses as nothing: a download through a link unbilled).
    pub const MAX: usize = 512;

    pub fn copied_from(path: &[u8]) -> OtherFile {
        OtherFile::CopiedFrom(LoggedPath::at_most(path, Self::MAX))
    }

    pub fn reached(path: &[u8]) -> OtherFile {
        OtherFile::Reached(LoggedPath::at_most(path, Self::MAX))
    }
}

/// How a hook ended, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookReport {
    Exit(i32),
    Signal(String),
    Timeout,
    SpawnFailed(String),
}

/// One line of the wrapper's. Fields are rendered in the order they are declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrapperLine {
    SessionStart {
        sid: String,
        user: String,
        connection: Connection,
    },
    /// Refused before or instead of sftp-server: no account, a bad config, a command that is not
    /// SFTP, unsafe surroundings (loader variables, a terminal, hooks reachable through `/proc`,
    /// a wrapper left dumpable), a failed pre-session hook.
    SessionRefused {
        sid: Option<String>,
        user: Option<String>,
        connection: Connection,
        reason: String,
        command: Option<Bounded>,
        error: Option<String>,
    },
    SftpServerStarted {
        sid: String,
        user: String,
        sftp_pid: Option<u32>,
        path: String,
        args: String,
        /// Capture mode: the session's transfers are its `file closed` lines (`transfers=wire`).
        wire: bool,
    },
    /// Capture mode: one closed file handle, from the SFTP packets.
    FileClosed {
        sid: String,
        user: String,
        sftp_pid: Option<u32>,
        file: FileRecord,
    },
    SessionEnd {
        sid: String,
        user: String,
        connection: Connection,
        sftp_pid: Option<u32>,
        duration_ms: Option<u64>,
        exit: Option<ExitOutcome>,
        totals: Option<Totals>,
        dropped_events: u64,
        dropped_log_lines: u64,
        /// The session could not run (sftp-server did not start, the wrapper failed).
        error: Option<String>,
    },
    Hook {
        sid: String,
        user: String,
        /// `pre_session`, `post_session`, `on_upload`, …; none when the hook runner itself failed.
        hook: Option<String>,
        elapsed_ms: Option<u64>,
        result: HookReport,
        stderr: Option<Vec<u8>>,
    },
    EventDropped {
        sid: String,
        user: String,
        /// An [`EventKind`]'s word, or `close` for a file whose close is not known.
        event: String,
        path: Bounded,
        reason: DropReason,
    },
    SignalForwarded {
        sid: String,
        user: String,
        signal: String,
    },
}

const SESSION_START: &str = "session start";
const SESSION_REFUSED: &str = "session refused";
const SFTP_SERVER_STARTED: &str = "sftp-server started";
const SESSION_END: &str = "session end";
const HOOK: &str = "hook";
const EVENT_DROPPED: &str = "event dropped";
const FILE_CLOSED: &str = "file closed";
const SIGNAL_FORWARDED: &str = "signal forwarded";

fn connection_fields(line: LogLine, c: &Connection) -> LogLine {
    line.opt_field("client_ip", c.client_ip.as_ref())
        .opt_field("client_port", c.client_port.as_ref())
        .opt_field("local_ip", c.local_ip.as_ref())
        .opt_field("local_port", c.local_port.as_ref())
}

/// The fields every line but `session refused` starts with.
fn who(line: LogLine, sid: &str, user: &str) -> LogLine {
    line.field("sid", sid).field("user", user)
}

/// A count logged only when there is something to count.
fn nonzero(n: u64) -> Option<String> {
    (n > 0).then(|| n.to_string())
}

/// `key=` the prefix, `key_len=` and `key_sha256=` of a value logged cut to its prefix.
fn bounded_fields(line: LogLine, key: &str, value: Option<&Bounded>) -> LogLine {
    line.opt_field(key, value.map(|b| &b.prefix))
        .opt_field(&format!("{key}_len"), value.map(|b| b.len.to_string()))
        .opt_field(&format!("{key}_sha256"), value.map(|b| &b.sha256))
}

/// A closed file's path, counters and flags.
fn file_fields(line: LogLine, file: &FileRecord) -> LogLine {
    let flag = |b: bool| if b { "1" } else { "0" };
    let line = logged_path(line, "path", &file.path)
        .field("counts_as", file.counts_as.as_str())
        .field("bytes_read", file.bytes_read.to_string())
        .field("bytes_written", file.bytes_written.to_string())
        .field("complete", flag(file.complete))
        .field("failed", flag(file.failed))
        .field("forced", flag(file.forced))
        .field("open_flags", &file.open_flags)
        .field("elapsed_ms", file.elapsed_ms.to_string());
    match &file.other {
        Some(OtherFile::CopiedFrom(from)) => logged_path(line, OtherFile::COPIED_FROM, from),
        Some(OtherFile::Reached(to)) => logged_path(line, OtherFile::REACHED, to),
        None => line,
    }
}

fn exit_fields(line: LogLine, exit: Option<&ExitOutcome>) -> LogLine {
    match exit {
        Some(ExitOutcome::Status(code)) => line.field("exit_status", code.to_string()),
        Some(ExitOutcome::Signal(sig)) => line.field("signal", sig),
        None => line,
    }
}

fn totals_fields(line: LogLine, totals: Option<&Totals>) -> LogLine {
    match totals {
        Some(t) => line
            .field("files_uploaded", t.files_uploaded.to_string())
            .field("files_downloaded", t.files_downloaded.to_string())
            .field("bytes_uploaded", t.bytes_uploaded.to_string())
            .field("bytes_downloaded", t.bytes_downloaded.to_string())
            .field("failed_operations", t.failed_operations.to_string()),
        None => line,
    }
}

fn hook_result_fields(line: LogLine, result: &HookReport) -> LogLine {
    match result {
        HookReport::Exit(code) => line
            .field("result", "exit")
            .field("status", code.to_string()),
        HookReport::Signal(sig) => line.field("result", "signal").field("signal", sig),
        HookReport::Timeout => line.field("result", "timeout"),
        HookReport::SpawnFailed(e) => line.field("result", "spawn_failed").field("error", e),
    }
}

/// `key=` the path, and `key_tail=`, `key_len=`, `key_sha256=` when it was cut.
fn logged_path(line: LogLine, key: &str, path: &LoggedPath) -> LogLine {
    let line = line.field(key, &path.bytes);
    match &path.cut {
        Some((len, sha256)) => line
            .field(&format!("{key}_tail"), &path.tail)
            .field(&format!("{key}_len"), len.to_string())
            .field(&format!("{key}_sha256"), sha256),
        None => line,
    }
}

impl WrapperLine {
    /// The event phrase the line starts with.
    pub fn event(&self) -> &'static str {
        match self {
            WrapperLine::SessionStart { .. } => SESSION_START,
            WrapperLine::SessionRefused { .. } => SESSION_REFUSED,
            WrapperLine::SftpServerStarted { .. } => SFTP_SERVER_STARTED,
            WrapperLine::SessionEnd { .. } => SESSION_END,
            WrapperLine::Hook { .. } => HOOK,
            WrapperLine::EventDropped { .. } => EVENT_DROPPED,
            WrapperLine::FileClosed { .. } => FILE_CLOSED,
            WrapperLine::SignalForwarded { .. } => SIGNAL_FORWARDED,
        }
    }

    /// The session id, where the line has one.
    pub fn sid(&self) -> Option<&str> {
        match self {
            WrapperLine::SessionRefused { sid, .. } => sid.as_deref(),
            WrapperLine::SessionStart { sid, .. }
            | WrapperLine::SftpServerStarted { sid, .. }
            | WrapperLine::SessionEnd { sid, .. }
            | WrapperLine::Hook { sid, .. }
            | WrapperLine::EventDropped { sid, .. }
            | WrapperLine::FileClosed { sid, .. }
            | WrapperLine::SignalForwarded { sid, .. } => Some(sid),
        }
    }

    /// The message text: the event phrase and escaped `key=value` fields, pure ASCII, one line.
    pub(crate) fn render(&self) -> String {
        let line = LogLine::new(self.event());
        let line = match self {
            WrapperLine::SessionStart {
                sid,
                user,
                connection,
            } => connection_fields(who(line, sid, user), connection),
            WrapperLine::SessionRefused {
                sid,
                user,
                connection,
                reason,
                command,
                error,
            } => bounded_fields(
                connection_fields(
                    line.opt_field("sid", sid.as_ref())
                        .opt_field("user", user.as_ref()),
                    connection,
                )
                .field("reason", reason),
                "command",
                command.as_ref(),
            )
            .opt_field("error", error.as_ref()),
            WrapperLine::SftpServerStarted {
                sid,
                user,
                sftp_pid,
                path,
                args,
                wire,
            } => who(line, sid, user)
                .opt_field("sftp_pid", sftp_pid.map(|p| p.to_string()))
                .field("path", path)
                .field("args", args)
                .opt_field("transfers", wire.then_some("wire")),
            WrapperLine::FileClosed {
                sid,
                user,
                sftp_pid,
                file,
            } => file_fields(
                who(line, sid, user).opt_field("sftp_pid", sftp_pid.map(|p| p.to_string())),
                file,
            ),
            WrapperLine::SessionEnd {
                sid,
                user,
                connection,
                sftp_pid,
                duration_ms,
                exit,
                totals,
                dropped_events,
                dropped_log_lines,
                error,
            } => {
                let line = connection_fields(who(line, sid, user), connection)
                    .opt_field("sftp_pid", sftp_pid.map(|p| p.to_string()))
                    .opt_field("duration_ms", duration_ms.map(|d| d.to_string()));
                totals_fields(exit_fields(line, exit.as_ref()), totals.as_ref())
                    .opt_field("dropped_events", nonzero(*dropped_events))
                    .opt_field("dropped_log_lines", nonzero(*dropped_log_lines))
                    .opt_field("error", error.as_ref())
            }
            WrapperLine::Hook {
                sid,
                user,
                hook,
                elapsed_ms,
                result,
                stderr,
            } => hook_result_fields(
                who(line, sid, user)
                    .opt_field("hook", hook.as_ref())
                    .opt_field("elapsed_ms", elapsed_ms.map(|e| e.to_string())),
                result,
            )
            .opt_field("stderr", stderr.as_ref()),
            WrapperLine::EventDropped {
                sid,
                user,
                event,
                path,
                reason,
            } => bounded_fields(
                who(line, sid, user).field("event", event),
                "path",
                Some(path),
            )
            .field("reason", reason.as_str()),
            WrapperLine::SignalForwarded { sid, user, signal } => {
                who(line, sid, user).field("signal", signal)
            }
        };
        line.into_string()
    }

    /// Reads a message the wrapper wrote. `None` for anything else: another program's text under
    /// the wrapper's ident, a line cut short, an unknown event, a missing required field.
    /// Unknown fields are ignored, so that older readers accept newer lines.
    pub fn parse(msg: &[u8]) -> Option<WrapperLine> {
        let (event, fields) = parse_line(msg)?;
        // Every line the wrapper writes has fields.
        if fields.is_empty() {
            return None;
        }
        let mut f = Fields(fields);
        Some(match event {
            SESSION_START => WrapperLine::SessionStart {
                sid: f.text("sid")?,
                user: f.text("user")?,
                connection: f.connection(),
            },
            SESSION_REFUSED => WrapperLine::SessionRefused {
                sid: f.text("sid"),
                user: f.text("user"),
                connection: f.connection(),
                reason: f.text("reason")?,
                command: f.bytes("command").map(|prefix| Bounded {
                    len: f.number("command_len").unwrap_or(prefix.len() as u64),
                    sha256: f.text("command_sha256").unwrap_or_default(),
                    prefix,
                }),
                error: f.text("error"),
            },
            SFTP_SERVER_STARTED => WrapperLine::SftpServerStarted {
                sid: f.text("sid")?,
                user: f.text("user")?,
                sftp_pid: f.number("sftp_pid"),
                path: f.text("path").unwrap_or_default(),
                args: f.text("args").unwrap_or_default(),
                wire: f.text("transfers").is_some_and(|t| t == "wire"),
            },
            FILE_CLOSED => parse_file_closed(&mut f)?,
            SESSION_END => parse_session_end(&mut f)?,
            HOOK => parse_hook(&mut f)?,
            EVENT_DROPPED => WrapperLine::EventDropped {
                sid: f.text("sid")?,
                user: f.text("user")?,
                event: f.text("event")?,
                path: f.bytes("path").map(|prefix| Bounded {
                    len: f.number("path_len").unwrap_or(prefix.len() as u64),
                    sha256: f.text("path_sha256").unwrap_or_default(),
                    prefix,
                })?,
                reason: DropReason::parse(&f.text("reason")?)?,
            },
            SIGNAL_FORWARDED => WrapperLine::SignalForwarded {
                sid: f.text("sid")?,
                user: f.text("user")?,
                signal: f.text("signal")?,
            },
            _ => return None,
        })
    }
}

/// `file closed`: the path, counters and flags are required; the rest may be missing.
fn parse_file_closed(f: &mut Fields<'_>) -> Option<WrapperLine> {
    Some(WrapperLine::FileClosed {
        sid: f.text("sid")?,
        user: f.text("user")?,
        sftp_pid: f.number("sftp_pid"),
        file: FileRecord {
            path: f.logged_path("path")?,
            counts_as: ClosedAs::parse(&f.text("counts_as")?)?,
            bytes_read: f.number("bytes_read")?,
            bytes_written: f.number("bytes_written")?,
            complete: f.flag("complete")?,
            failed: f.flag("failed")?,
            forced: f.flag("forced")?,
            open_flags: f.text("open_flags").unwrap_or_default(),
            elapsed_ms: f.number("elapsed_ms").unwrap_or(0),
            other: match f.logged_path(OtherFile::COPIED_FROM) {
                Some(from) => Some(OtherFile::CopiedFrom(from)),
                None => f.logged_path(OtherFile::REACHED).map(OtherFile::Reached),
            },
        },
    })
}

fn parse_session_end(f: &mut Fields<'_>) -> Option<WrapperLine> {
    let exit = match (f.number("exit_status"), f.text("signal")) {
        (Some(code), _) => Some(ExitOutcome::Status(code)),
        (None, Some(sig)) => Some(ExitOutcome::Signal(sig)),
        (None, None) => None,
    };
    let totals = f.number("files_uploaded").map(|files_uploaded| Totals {
        files_uploaded,
        files_downloaded: f.number("files_downloaded").unwrap_or(0),
        bytes_uploaded: f.number("bytes_uploaded").unwrap_or(0),
        bytes_downloaded: f.number("bytes_downloaded").unwrap_or(0),
        failed_operations: f.number("failed_operations").unwrap_or(0),
    });
    Some(WrapperLine::SessionEnd {
        sid: f.text("sid")?,
        user: f.text("user")?,
        connection: f.connection(),
        sftp_pid: f.number("sftp_pid"),
        duration_ms: f.number("duration_ms"),
        exit,
        totals,
        dropped_events: f.number("dropped_events").unwrap_or(0),
        dropped_log_lines: f.number("dropped_log_lines").unwrap_or(0),
        error: f.text("error"),
    })
}

fn parse_hook(f: &mut Fields<'_>) -> Option<WrapperLine> {
    Some(WrapperLine::Hook {
        sid: f.text("sid")?,
        user: f.text("user")?,
        hook: f.text("hook"),
        elapsed_ms: f.number("elapsed_ms"),
        result: match f.text("result")?.as_str() {
            "exit" => HookReport::Exit(f.number("status")?),
            "signal" => HookReport::Signal(f.text("signal")?),
            "timeout" => HookReport::Timeout,
            "spawn_failed" => HookReport::SpawnFailed(f.text("error").unwrap_or_default()),
            _ => return None,
        },
        stderr: f.bytes("stderr"),
    })
}

/// Field look-up: the first field of a name wins. Values are moved out, so that a quoted one
/// (already owned) is not copied again.
struct Fields<'a>(Vec<Field<'a>>);

impl Fields<'_> {
    fn bytes(&mut self, key: &str) -> Option<Vec<u8>> {
        self.0
            .iter_mut()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| std::mem::take(v).into_owned())
    }

    fn text(&mut self, key: &str) -> Option<String> {
        self.bytes(key).map(|v| {
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }

    fn number<N: std::str::FromStr>(&self, key: &str) -> Option<N> {
        let v = &self.0.iter().find(|(k, _)| *k == key.as_bytes())?.1;
        if v.is_empty() || !v.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    }

    fn flag(&self, key: &str) -> Option<bool> {
        match self
            .0
            .iter()
            .find(|(k, _)| *k == key.as_bytes())?
            .1
            .as_ref()
        {
            b"1" => Some(true),
            b"0" => Some(false),
            _ => None,
        }
    }

    /// A [`LoggedPath`] under `key`, with its `_len` and `_sha256` fields when it was cut.
    fn logged_path(&mut self, key: &str) -> Option<LoggedPath> {
        let bytes = self.bytes(key)?;
        let cut = match self.number(&format!("{key}_len")) {
            Some(len) => Some((len, self.text(&format!("{key}_sha256"))?)),
            None => None,
        };
        let tail = match cut {
            Some(_) => self.bytes(&format!("{key}_tail")).unwrap_or_default(),
            None => Vec::new(),
        };
        Some(LoggedPath { bytes, cut, tail })
    }

    fn connection(&mut self) -> Connection {
        Connection {
            client_ip: self.text("client_ip"),
            client_port: self.text("client_port"),
            local_ip: self.text("local_ip"),
            local_port: self.text("local_port"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Any UTF-8, including quotes, '=', newlines and control characters.
        any::<String>()
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..48)
    }

    fn connection() -> impl Strategy<Value = Connection> {
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(
                |(client_ip, client_port, local_ip, local_port)| Connection {
                    client_ip,
                    client_port,
                    local_ip,
                    local_port,
                },
            )
    }

    /// Short names whole, and names past [`LoggedPath::MAX`] cut.
    fn logged_path() -> impl Strategy<Value = LoggedPath> {
        prop_oneof![
            bytes().prop_map(|b| LoggedPath::of(&b)),
            proptest::collection::vec(any::<u8>(), 1025..1100).prop_map(|b| LoggedPath::of(&b)),
        ]
    }

    fn exit() -> impl Strategy<Value = Option<ExitOutcome>> {
        prop_oneof![
            Just(None),
            any::<i32>().prop_map(|c| Some(ExitOutcome::Status(c))),
            text().prop_map(|s| Some(ExitOutcome::Signal(s))),
        ]
    }

    fn totals() -> impl Strategy<Value = Option<Totals>> {
        proptest::option::of(any::<[u64; 5]>().prop_map(|t| Totals {
            files_uploaded: t[0],
            files_downloaded: t[1],
            bytes_uploaded: t[2],
            bytes_downloaded: t[3],
            failed_operations: t[4],
        }))
    }

    fn hook_report() -> impl Strategy<Value = HookReport> {
        prop_oneof![
            any::<i32>().prop_map(HookReport::Exit),
            text().prop_map(HookReport::Signal),
            Just(HookReport::Timeout),
            text().prop_map(HookReport::SpawnFailed),
        ]
    }

    fn wrapper_line() -> impl Strategy<Value = WrapperLine> {
        prop_oneof![
            (text(), text(), connection()).prop_map(|(sid, user, connection)| {
                WrapperLine::SessionStart {
                    sid,
                    user,
                    connection,
                }
            }),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                connection(),
                text(),
                proptest::option::of((bytes(), any::<u64>(), text()).prop_map(
                    |(prefix, len, sha256)| Bounded {
                        prefix,
                        len,
                        sha256
                    }
                )),
                proptest::option::of(text())
            )
                .prop_map(|(sid, user, connection, reason, command, error)| {
                    WrapperLine::SessionRefused {
                        sid,
                        user,
                        connection,
                        reason,
                        command,
                        error,
                    }
                }),
            (
                text(),
                text(),
                proptest::option::of(any::<u32>()),
                text(),
                text(),
                any::<bool>()
            )
                .prop_map(|(sid, user, sftp_pid, path, args, wire)| {
                    WrapperLine::SftpServerStarted {
                        sid,
                        user,
                        sftp_pid,
                        path,
                        args,
                        wire,
                    }
                }),
            (
                (text(), text(), proptest::option::of(any::<u32>())),
                (
                    logged_path(),
                    proptest::sample::select(ClosedAs::ALL),
                    any::<[u64; 3]>(),
                    any::<[bool; 3]>(),
                    text(),
                    proptest::option::of(prop_oneof![
                        logged_path().prop_map(OtherFile::CopiedFrom),
                        logged_path().prop_map(OtherFile::Reached),
                    ])
                ),
            )
                .prop_map(
                    |((sid, user, sftp_pid), (path, counts_as, n, flags, open_flags, other))| {
                        WrapperLine::FileClosed {
                            sid,
                            user,
                            sftp_pid,
                            file: FileRecord {
                                path,
                                counts_as,
                                bytes_read: n[0],
                                bytes_written: n[1],
                                complete: flags[0],
                                failed: flags[1],
                                forced: flags[2],
                                open_flags,
                                elapsed_ms: n[2],
                                other,
                            },
                        }
                    }
                ),
            (
                (
                    text(),
                    text(),
                    connection(),
                    proptest::option::of(any::<u32>())
                ),
                (proptest::option::of(any::<u64>()), exit(), totals()),
                (any::<u64>(), any::<u64>(), proptest::option::of(text())),
            )
                .prop_map(
                    |(
                        (sid, user, connection, sftp_pid),
                        (duration_ms, exit, totals),
                        (dropped_events, dropped_log_lines, error),
                    )| WrapperLine::SessionEnd {
                        sid,
                        user,
                        connection,
                        sftp_pid,
                        duration_ms,
                        exit,
                        totals,
                        dropped_events,
                        dropped_log_lines,
                        error,
                    }
                ),
            (
                text(),
                text(),
                proptest::option::of(text()),
                proptest::option::of(any::<u64>()),
                hook_report(),
                proptest::option::of(bytes())
            )
                .prop_map(|(sid, user, hook, elapsed_ms, result, stderr)| {
                    WrapperLine::Hook {
                        sid,
                        user,
                        hook,
                        elapsed_ms,
                        result,
                        stderr,
                    }
                }),
            (
                text(),
                text(),
                text(),
                bytes().prop_map(|b| Bounded::of(&b)),
                proptest::sample::select(DropReason::ALL)
            )
                .prop_map(|(sid, user, event, path, reason)| {
                    WrapperLine::EventDropped {
                        sid,
                        user,
                        event,
                        path,
                        reason,
                    }
                }),
            (text(), text(), text()).prop_map(|(sid, user, signal)| {
                WrapperLine::SignalForwarded { sid, user, signal }
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_line_round_trips(line in wrapper_line()) {
            let text = line.render();
            prop_assert!(text.is_ascii());
            prop_assert!(!text.contains('\n') && !text.contains('\r'));
            prop_assert_eq!(WrapperLine::parse(text.as_bytes()), Some(line));
        }

        #[test]
        fn parsing_never_panics(msg in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = WrapperLine::parse(&msg);
        }
    }

    #[test]
    fn the_lines_read_as_before() {
        let start = WrapperLine::SessionStart {
            sid: "vm-20261126T211511-4887-0a1b2c3d".into(),
            user: "acme".into(),
            connection: Connection {
                client_ip: Some("127.0.0.1".into()),
                client_port: Some("50022".into()),
                local_ip: Some("127.0.0.1".into()),
                local_port: Some("22".into()),
            },
        };
        assert_eq!(
            start.render(),
            "session start sid=vm-20261126T211511-4887-0a1b2c3d user=acme client_ip=127.0.0.1 client_port=50022 local_ip=127.0.0.1 local_port=22"
        );
        let end = WrapperLine::SessionEnd {
            sid: "s".into(),
            user: "acme".into(),
            connection: Connection::default(),
            sftp_pid: Some(4888),
            duration_ms: Some(1234),
            exit: Some(ExitOutcome::Status(0)),
            totals: None,
            dropped_events: 0,
            dropped_log_lines: 0,
            error: None,
        };
        assert_eq!(
            end.render(),
            "session end sid=s user=acme sftp_pid=4888 duration_ms=1234 exit_status=0"
        );
        let refused = WrapperLine::SessionRefused {
            sid: Some("s".into()),
            user: Some("acme".into()),
            connection: Connection::default(),
            reason: "not_sftp".into(),
            command: Some(Bounded::of(b"id; sh")),
            error: None,
        };
        assert_eq!(
            refused.render(),
            "session refused sid=s user=acme reason=not_sftp command=\"id; sh\" command_len=6 command_sha256=add4f0e77bd3f007d39464a296d54149e8d60d91badcfb92bdc1750a6a8e9a72"
        );
    }

    #[test]
    fn a_long_command_is_one_bounded_line() {
        let command = vec![b'\n'; 100_000];
        let line = WrapperLine::SessionRefused {
            sid: None,
            user: Some("acme".into()),
            connection: Connection::default(),
            reason: "command_not_allowed".into(),
            command: Some(Bounded::of(&command)),
            error: None,
        };
        let text = line.render();
        assert!(text.len() < 1200, "{}", text.len());
        assert!(text.contains("command_len=100000"));
        assert_eq!(WrapperLine::parse(text.as_bytes()), Some(line));
    }

    /// Two names of non-ASCII bytes (each escaped to four characters) past the cut, a download
    /// through a link: the line, with the syslog header glibc adds (`<PRI>Mmm dd hh:mm:ss
    /// sftpd-wrapper[pid]: `, under 64 bytes), must stay within rsyslog's default 8 KiB, or
    /// rsyslog cuts it and the download is lost (or billed without the name it reached).
    #[test]
    fn a_download_through_a_link_with_two_long_names_fits_a_syslog_message() {
        let name = |b: u8| {
            let part = [b; 255];
            let mut p = b"/home/partner-with-a-long-name".to_vec();
            for _ in 0..5 {
                p.push(b'/');
                p.extend_from_slice(&part);
            }
            p
        };
        let line = WrapperLine::FileClosed {
            sid: "sftp-host-with-a-long-name-20261207T152354-4294967-f52702a5".into(),
            user: "a".repeat(32),
            sftp_pid: Some(4_194_304),
            file: FileRecord {
                path: LoggedPath::of(&name(0xff)),
                counts_as: ClosedAs::Download,
                bytes_read: u64::MAX,
                bytes_written: 0,
                complete: true,
                failed: false,
                forced: false,
                open_flags: "READ,WRITE,APPEND,CREATE,TRUNCATE,EXCL".into(),
                elapsed_ms: u64::MAX,
                other: Some(OtherFile::reached(&name(0xfe))),
            },
        };
        let text = line.render();
        let cut = &text.as_bytes()[..text.len().min(8192 - 64)];
        let parsed = WrapperLine::parse(cut).is_some();
        assert!(
            text.len() + 64 <= 8192,
            "a file closed line of {} bytes is cut by rsyslog at 8192 (and, cut, parses: {parsed})",
            text.len() + 64
        );
    }

    #[test]
    fn a_closed_file_reads_as_documented() {
        let line = WrapperLine::FileClosed {
            sid: "s".into(),
            user: "acme".into(),
            sftp_pid: Some(7),
            file: FileRecord {
                path: LoggedPath::of(b"/h/a b.csv"),
                counts_as: ClosedAs::Upload,
                bytes_read: 0,
                bytes_written: 42,
                complete: true,
                failed: false,
                forced: false,
                open_flags: "WRITE,CREATE,TRUNCATE".into(),
                elapsed_ms: 5,
                other: None,
            },
        };
        assert_eq!(
            line.render(),
            "file closed sid=s user=acme sftp_pid=7 path=\"/h/a b.csv\" counts_as=upload bytes_read=0 bytes_written=42 complete=1 failed=0 forced=0 open_flags=WRITE,CREATE,TRUNCATE elapsed_ms=5"
        );
        // A name of 100 KB is one bounded line that still says which name it was.
        let long = LoggedPath::of(&[0xff; 100_000]);
        assert_eq!(long.bytes.len() + long.tail.len(), LoggedPath::MAX);
        assert_eq!(long.cut.as_ref().map(|c| c.0), Some(100_000));

        let WrapperLine::FileClosed { mut file, .. } = line else {
            unreachable!()
        };
        file.counts_as = ClosedAs::Download;
        file.other = Some(OtherFile::Reached(LoggedPath::of(b"/h/invoice-42.xml")));
        let line = WrapperLine::FileClosed {
            sid: "s".into(),
            user: "acme".into(),
            sftp_pid: None,
            file,
        };
        let text = line.render();
        assert!(
            text.ends_with(" elapsed_ms=5 reached=/h/invoice-42.xml"),
            "{text}"
        );
        assert_eq!(WrapperLine::parse(text.as_bytes()), Some(line));
    }

    /// A cut name in a line of a wrapper that logged no tail (`path_len` without `path_tail`):
    /// read as its head with no tail, and shown as that head and `…`, never as a whole name;
    /// a line with a tail that is not a cut name's keeps the name whole.
    #[test]
    fn a_cut_name_without_a_tail_reads_as_its_head() {
        let head = "a".repeat(1024);
        let old = format!(
            "file closed sid=s user=u path={head} path_len=2000 path_sha256=ab counts_as=download bytes_read=1 bytes_written=0 complete=1 failed=0 forced=0 reached=/h/x reached_tail=/y"
        );
        let Some(WrapperLine::FileClosed { file, .. }) = WrapperLine::parse(old.as_bytes()) else {
            panic!("{old}");
        };
        assert_eq!(file.path.bytes, head.as_bytes());
        assert!(file.path.tail.is_empty());
        assert_eq!(file.path.cut, Some((2000, "ab".to_owned())));
        assert_eq!(&*file.path.shown(), format!("{head}\u{2026}").as_bytes());
        let Some(OtherFile::Reached(to)) = &file.other else {
            panic!("{:?}", file.other);
        };
        assert_eq!((&*to.shown(), to.tail.is_empty()), (&b"/h/x"[..], true));
    }

    #[test]
    fn foreign_and_malformed_lines_are_not_read() {
        assert_eq!(WrapperLine::parse(b"session start"), None);
        assert_eq!(WrapperLine::parse(b"something else sid=1 user=a"), None);
        assert_eq!(WrapperLine::parse(b"session start user=a"), None);
        assert_eq!(WrapperLine::parse(b"session end sid=\"cut"), None);
    }
}
