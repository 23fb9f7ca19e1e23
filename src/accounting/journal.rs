//! The systemd journal as an input: `journalctl -o json` (argv only, no shell) from a cursor kept
//! in the database, and the journal's own fields about who wrote each line, which no line's
//! text can forge.

use serde_json::Value;
use std::path::PathBuf;

/// Which journal to read.
#[derive(Debug, Clone, Default)]
pub struct JournalSource {
    /// `journalctl --directory`; none: the system's journal.
    pub directory: Option<PathBuf>,
    /// The syslog facility of the wrapper's and sftp-server's lines (local5 = 21).
    pub facility: u8,
}

impl JournalSource {
    /// The key of this source's cursor in the database.
    pub fn key(&self) -> String {
        match &self.directory {
            Some(d) => format!("journal:{}", d.display()),
            None => "journal:system".to_owned(),
        }
    }

    /// journalctl's arguments: every entry of the facility after `cursor`, as JSON lines.
    pub(crate) fn journalctl_args(&self, cursor: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = ["--output=json", "--no-pager", "--quiet", "--all"]
            .map(String::from)
            .into();
        if let Some(d) = &self.directory {
            args.push(format!("--directory={}", d.display()));
        }
        if let Some(c) = cursor {
            args.push(format!("--after-cursor={c}"));
        }
        args.push(format!("SYSLOG_FACILITY={}", self.facility));
        args
    }
}

/// One journal entry, as far as the ingest needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalEntry {
    pub cursor: String,
    /// Microseconds since the epoch, when journald received it.
    pub realtime_us: i64,
    pub host: Option<String>,
    /// What the line says wrote it (`SYSLOG_IDENTIFIER`).
    pub identifier: String,
    /// The PID the line names (`SYSLOG_PID`), else the sender's.
    pub pid: Option<u32>,
    /// Trusted: the sender's UID, PID, command and executable, as journald found them.
    pub uid: Option<i64>,
    pub sender_pid: Option<u32>,
    pub command: Option<String>,
    /// `_EXE`: the sender's executable file, as /proc showed it to journald.
    pub exe: Option<String>,
    pub message: Vec<u8>,
}

/// A field that is text, or (for bytes that are not UTF-8) an array of byte values.
fn bytes_field(entry: &Value, key: &str) -> Option<Vec<u8>> {
    match entry.get(key)? {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => None,
    }
}

fn text_field(entry: &Value, key: &str) -> Option<String> {
    entry.get(key)?.as_str().map(str::to_owned)
}

/// Parses one line of `journalctl -o json`; `None` when it is not an entry with a message.
pub(crate) fn parse_entry(line: &[u8]) -> Option<JournalEntry> {
    let entry: Value = serde_json::from_slice(line).ok()?;
    let number = |key: &str| text_field(&entry, key)?.parse::<i64>().ok();
    let pid = |key: &str| text_field(&entry, key)?.parse::<u32>().ok();
    let command = text_field(&entry, "_COMM").or_else(|| {
        text_field(&entry, "_EXE").map(|exe| exe.rsplit('/').next().unwrap_or(&exe).to_owned())
    });
    Some(JournalEntry {
        cursor: text_field(&entry, "__CURSOR")?,
        realtime_us: number("__REALTIME_TIMESTAMP")?,
        host: text_field(&entry, "_HOSTNAME"),
        identifier: text_field(&entry, "SYSLOG_IDENTIFIER").unwrap_or_default(),
        pid: pid("SYSLOG_PID").or_else(|| pid("_PID")),
        uid: number("_UID"),
        sender_pid: pid("_PID"),
        command,
        exe: text_field(&entry, "_EXE"),
        message: bytes_field(&entry, "MESSAGE")?,
    })
}

/// The user an entry's own text is about: the wrapper's `user=`, sftp-server's `session
/// opened`/`closed for local user NAME`, sshd's `Accepted METHOD for NAME`.
pub(crate) fn named_user(entry: &JournalEntry, wrapper_ident: &str) -> Option<String> {
    use crate::log::parse::{SftpEvent, parse_accepted, parse_sftp_message};
    use crate::log::wrapper::WrapperLine;
    match entry.identifier.as_str() {
        id if id == wrapper_ident => match WrapperLine::parse(&entry.message)? {
            WrapperLine::SessionRefused { user, .. } => user,
            WrapperLine::SessionStart { user, .. }
            | WrapperLine::SftpServerStarted { user, .. }
            | WrapperLine::FileClosed { user, .. }
            | WrapperLine::SessionEnd { user, .. }
            | WrapperLine::Hook { user, .. }
            | WrapperLine::EventDropped { user, .. }
            | WrapperLine::SignalForwarded { user, .. } => Some(user),
        },
        "sftp-server" | "internal-sftp" => match parse_sftp_message(&entry.message) {
            SftpEvent::SessionOpened { user, .. } | SftpEvent::SessionClosed { user, .. } => {
                Some(user)
            }
            _ => None,
        },
        "sshd" | "sshd-session" => parse_accepted(&entry.message).map(|a| a.user),
        _ => None,
    }
}

/// The UID of the local user `name`.
fn uid_of(name: &str) -> Option<i64> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| i64::from(u.uid.as_raw()))
}

/// Whether `exe` (journald's `_EXE`) is one of `programs` as installed: its file name is the
/// program's, and the file, where it is on this host, belongs to root and no one else may write
/// it (a local user's copy of `logger` named `sftpd-wrapper` is theirs).
fn installed_program(exe: &str, programs: &[&str]) -> bool {
    use std::os::unix::fs::MetadataExt;
    // A program replaced on disk (an upgrade) while it runs.
    let path = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let name = path.rsplit('/').next().unwrap_or(path);
    if !programs.contains(&name) {
        return false;
    }
    match std::fs::metadata(path) {
        Ok(m) => m.uid() == 0 && m.mode() & 0o022 == 0,
        // The journal of another host (`--journal-directory`): its name is all there is.
        Err(_) => true,
    }
}

/// Why an entry that claims to come from the wrapper, sftp-server or sshd is not taken: the
/// journal says another program wrote it, or cannot say who did (journald reads the command from
/// /proc, and a sender that exits at once leaves it out: a forger's way to pass unchecked).
/// `sender_verified` says an earlier entry of the same sender process, under the same name, was
/// checked (its last line, `session end` or `session closed`, is written as it exits, and may
/// come without its command). `session_user` is the user of the live session the entry goes on
/// with, if any. The sender's UID must be root's or that of the user the entry is about (the
/// wrapper and sftp-server run as the partner; sshd's lines come from root), and its executable
/// the program it claims to be. `None`: taken (the claim fits, or the entry claims none of them).
pub fn forged(
    entry: &JournalEntry,
    wrapper_ident: &str,
    sender_verified: bool,
    session_user: Option<&str>,
) -> Option<String> {
    let id = entry.identifier.as_str();
    let others = ["sftp-server", "internal-sftp", "sshd", "sshd-session"];
    if id != wrapper_ident && !others.contains(&id) {
        return None;
    }
    let pid = entry.pid.map_or("?".to_owned(), |p| p.to_string());
    let uid = entry.uid.map_or("?".to_owned(), |u| u.to_string());
    let named = named_user(entry, wrapper_ident);
    let about = [named.as_deref(), session_user];
    if entry.uid != Some(0) {
        for name in about.into_iter().flatten() {
            let theirs = uid_of(name);
            if entry.uid.is_none() || theirs != entry.uid {
                return Some(format!(
                    "{id}[{pid}] written by uid {uid}, not by {name}'s ({})",
                    theirs.map_or("no such user here".to_owned(), |u| format!("uid {u}"))
                ));
            }
        }
    }
    let (Some(command), Some(exe)) = (entry.command.as_deref(), entry.exe.as_deref()) else {
        if sender_verified {
            return None;
        }
        return Some(format!(
            "{id}[{pid}] of uid {uid}, whose program the journal does not know"
        ));
    };
    // journald keeps the first 15 bytes of a command name.
    let is = |name: &str| command == &name[..name.len().min(15)];
    let installed = |programs: &[&str]| installed_program(exe, programs);
    let allowed = match id {
        _ if id == wrapper_ident => is("sftpd-wrapper") && installed(&["sftpd-wrapper"]),
        // In capture mode the wrapper forwards sftp-server's lines under sftp-server's name.
        "sftp-server" => {
            is("sftp-server") && entry.pid == entry.sender_pid && installed(&["sftp-server"])
                || is("sftpd-wrapper") && installed(&["sftpd-wrapper"])
        }
        _ => (is("sshd") || is("sshd-session")) && installed(&["sshd", "sshd-session"]),
    };
    (!allowed).then(|| format!("{id}[{pid}] written by {command} ({exe}, uid {uid})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(identifier: &str, command: Option<&str>, pid: u32, sender: u32) -> JournalEntry {
        // Programs of these names are nowhere on the test host: only their names are checked.
        let exe = command.map(|c| format!("/nonexistent/{c}"));
        JournalEntry {
            cursor: "c".into(),
            realtime_us: 0,
            host: None,
            identifier: identifier.into(),
            pid: Some(pid),
            uid: Some(1000),
            sender_pid: Some(sender),
            command: command.map(str::to_owned),
            exe,
            message: b"x".to_vec(),
        }
    }

    fn forged_(entry: &JournalEntry, wrapper_ident: &str) -> Option<String> {
        forged(entry, wrapper_ident, false, None)
    }

    #[test]
    fn the_sender_is_the_user_the_line_is_about_running_the_installed_program() {
        let w = "sftpd-wrapper";
        let mut e = entry(w, Some("sftpd-wrapper"), 5, 5);
        e.message = b"session start sid=s user=root client_ip=10.0.0.1".to_vec();
        // uid 1000 writes a line about root.
        assert!(forged_(&e, w).unwrap().contains("not by root's (uid 0)"));
        e.uid = Some(0);
        assert_eq!(forged_(&e, w), None);
        // A line about no one, going on with root's session.
        let mut e = entry("sftp-server", Some("sftpd-wrapper"), 6, 5);
        assert!(forged(&e, w, false, Some("root")).is_some());
        e.uid = Some(0);
        assert_eq!(forged(&e, w, false, Some("root")), None);
        // The right name, but a file a user may write, or another program's name.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("sftpd-wrapper");
        std::fs::write(&copy, b"").unwrap();
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        e.exe = Some(copy.display().to_string());
        assert!(
            forged(&e, w, false, None).is_some(),
            "anyone may write {copy:?}"
        );
        e.exe = Some("/usr/bin/logger".into());
        assert!(
            forged(&e, w, false, None)
                .unwrap()
                .contains("/usr/bin/logger")
        );
    }

    #[test]
    fn a_line_is_what_the_journal_says_wrote_it() {
        let w = "sftpd-wrapper";
        assert_eq!(forged_(&entry(w, Some("sftpd-wrapper"), 5, 5), w), None);
        assert_eq!(
            forged_(&entry("sftp-server", Some("sftp-server"), 6, 6), w),
            None
        );
        assert_eq!(
            forged_(&entry("sftp-server", Some("sftpd-wrapper"), 6, 5), w),
            None
        );
        assert_eq!(forged_(&entry("sshd", Some("sshd"), 6, 6), w), None);
        assert_eq!(forged_(&entry("cron", Some("cron"), 6, 6), w), None);
        assert!(forged_(&entry("sftp-server", None, 6, 6), w).is_some());
        // The same process's earlier entry was checked: its last one may lack the command.
        assert_eq!(
            forged(&entry("sftp-server", None, 6, 6), w, true, None),
            None
        );
        assert!(forged_(&entry(w, Some("logger"), 5, 5), w).is_some());
        assert!(forged_(&entry("sftp-server", Some("logger"), 6, 6), w).is_some());
        // sftp-server itself naming another PID.
        assert!(forged_(&entry("sftp-server", Some("sftp-server"), 6, 7), w).is_some());
    }

    #[test]
    fn entries_from_journalctl_json() {
        let line = br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795777334230568","_HOSTNAME":"vm","SYSLOG_IDENTIFIER":"sftp-server","SYSLOG_PID":"23289","_PID":"23289","_UID":"1001","_COMM":"sftp-server","MESSAGE":[114,101,109,111,118,101,32,255]}"#;
        let e = parse_entry(line).unwrap();
        assert_eq!(e.message, b"remove \xff");
        assert_eq!(
            (e.pid, e.uid, e.command.as_deref()),
            (Some(23289), Some(1001), Some("sftp-server"))
        );
        assert_eq!(parse_entry(b"not json"), None);
    }
}
