//! `sftpd-wrapper --check-sshd USER`: what sshd is set to for one partner, and every setting
//! that undermines an SFTP-only account.
//!
//! sshd's settings are part of the wrapper's security boundary: it runs before the wrapper, sets
//! its environment, and serves forwarding, agent, X11, tunnel and terminal requests that never
//! reach a login shell. `sshd -T -C user=…,host=…,addr=…` prints what applies to a connection
//! of that user (Match blocks resolved); each finding names the setting and the fix.
//! `packaging/sshd_config.d/sftpd-wrapper.conf` sets all of them.

use crate::shell::harden;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub setting: String,
    pub problem: String,
    pub fix: String,
}

/// Besides the loader variables the shell refuses ([`harden::LOADER_VARIABLES`] and `LD_*`):
/// variables that change how a shell or interpreter starts, where programs are found, or the
/// clock. None may come from the client.
const CLIENT_SET_VARIABLES: [&str; 16] = [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PATH",
    "TZ",
    "HOME",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
];

/// sshd's pattern matching (`*` and `?`), as AcceptEnv uses it.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// `sshd -T`'s output as setting → values (a setting can appear more than once).
pub fn parse_sshd_t(text: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(' ') {
            out.entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
        }
    }
    out
}

/// The findings for one user's effective sshd settings. `allowed_commands` are the wrapper's;
/// `hooks` says whether any hook is configured, `proc_isolation_off` whether sftp-server sees
/// `/proc`, and `ptrace_scope` is kernel.yama.ptrace_scope where Yama exists.
pub fn audit(
    settings: &HashMap<String, Vec<String>>,
    allowed_commands: &[String],
    hooks: bool,
    proc_isolation_off: bool,
    ptrace_scope: Option<u32>,
) -> Vec<Finding> {
    let get = |key: &str| {
        settings
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("")
    };
    let mut findings = Vec::new();
    let mut add = |level, setting: &str, problem: String, fix: &str| {
        findings.push(Finding {
            level,
            setting: setting.to_owned(),
            problem,
            fix: fix.to_owned(),
        })
    };
    if get("permituserenvironment") != "no" {
        add(
            Level::Error,
            "PermitUserEnvironment",
            format!(
                "is {}: the partner sets the wrapper's environment in ~/.ssh/environment (LD_PRELOAD runs code before the wrapper's main)",
                get("permituserenvironment")
            ),
            "PermitUserEnvironment no (a global setting: it is not allowed in a Match block)",
        );
    }
    for pattern in settings.get("acceptenv").into_iter().flatten() {
        for word in pattern.split_whitespace() {
            let hit: Vec<&str> = CLIENT_SET_VARIABLES
                .iter()
                .chain(harden::LOADER_VARIABLES.iter())
                .copied()
                .filter(|v| matches(word.as_bytes(), v.as_bytes()))
                .chain(
                    (matches(word.as_bytes(), b"LD_X") || word.starts_with("LD_"))
                        .then_some("LD_*"),
                )
                .collect();
            if !hit.is_empty() {
                add(
                    Level::Error,
                    "AcceptEnv",
                    format!("{word} lets the client set {}", hit.join(", ")),
                    "AcceptEnv LANG LC_* (or nothing) in the partners' Match block",
                );
            }
        }
    }
    let forwarding_off = get("disableforwarding") == "yes";
    for (key, name, level) in [
        ("allowtcpforwarding", "AllowTcpForwarding", Level::Error),
        (
            "allowstreamlocalforwarding",
            "AllowStreamLocalForwarding",
            Level::Error,
        ),
        ("x11forwarding", "X11Forwarding", Level::Error),
        (
            "allowagentforwarding",
            "AllowAgentForwarding",
            Level::Warning,
        ),
    ] {
        if !forwarding_off && !matches!(get(key), "no" | "") {
            add(
                level,
                name,
                format!(
                    "is {}: the partner can use this server as a proxy or relay without the shell ever running",
                    get(key)
                ),
                "DisableForwarding yes (and AllowTcpForwarding no, AllowStreamLocalForwarding no, X11Forwarding no, AllowAgentForwarding no) in the Match block",
            );
        }
    }
    if !matches!(get("permittunnel"), "no" | "") {
        add(
            Level::Error,
            "PermitTunnel",
            format!(
                "is {}: tun/tap forwarding bypasses the shell",
                get("permittunnel")
            ),
            "PermitTunnel no",
        );
    }
    if get("permittty") != "no" {
        add(
            Level::Warning,
            "PermitTTY",
            "is yes: the wrapper refuses terminal sessions, but sshd allocates the terminal first"
                .to_owned(),
            "PermitTTY no",
        );
    }
    if get("permituserrc") != "no" {
        add(
            Level::Warning,
            "PermitUserRC",
            "is yes: sshd runs ~/.ssh/rc through the login shell (the wrapper refuses it and logs a refusal for every session)".to_owned(),
            "PermitUserRC no",
        );
    }
    for subsystem in settings.get("subsystem").into_iter().flatten() {
        let mut words = subsystem.split_whitespace();
        if words.next() != Some("sftp") {
            continue;
        }
        let command: Vec<&str> = words.collect();
        let command = command.join(" ");
        if command.starts_with("internal-sftp") {
            add(
                Level::Error,
                "Subsystem",
                "sftp is internal-sftp: sshd serves SFTP itself and never runs the login shell, so there is no session start, end or hook".to_owned(),
                "Subsystem sftp /usr/lib/openssh/sftp-server (the path in sftp_server.allowed_commands)",
            );
        } else if !allowed_commands.contains(&command) {
            add(
                Level::Error,
                "Subsystem",
                format!(
                    "sftp is {command:?}, which sftp_server.allowed_commands does not list: every SFTP session is refused"
                ),
                "list it in sftp_server.allowed_commands, or change the Subsystem line",
            );
        }
    }
    let force = get("forcecommand");
    if !matches!(force, "none" | "") {
        let level = if force.starts_with("internal-sftp") {
            Level::Error
        } else {
            Level::Warning
        };
        add(
            level,
            "ForceCommand",
            format!("is {force:?}: it replaces the subsystem command the wrapper expects"),
            "no ForceCommand for partners whose login shell is the wrapper",
        );
    }
    if matches!(get("chrootdirectory"), "none" | "") {
        add(
            Level::Warning,
            "ChrootDirectory",
            "is none: the partner sees the whole filesystem, including /proc outside sftp-server's namespace".to_owned(),
            "ChrootDirectory /srv/sftp/%u (sftpd-wrapper --setup-chroot USER)",
        );
    }
    if ptrace_scope.unwrap_or(0) < 1 {
        let level = if hooks && proc_isolation_off {
            Level::Error
        } else {
            Level::Warning
        };
        add(
            level,
            "kernel.yama.ptrace_scope",
            format!(
                "is {}: processes of one uid may write each other's memory; only sftp-server's private /proc keeps the partner from the hooks",
                ptrace_scope.map_or("missing (no Yama)".to_owned(), |s| s.to_string())
            ),
            "kernel.yama.ptrace_scope = 1 in /etc/sysctl.d/ (sysctl -w to apply now), and keep sftp_server.proc_isolation = \"require\"",
        );
    }
    findings
}

/// Runs `sshd -T -C user=USER,host=HOST,addr=ADDR` (with `-f CONFIG` when given).
pub fn effective_settings(
    user: &str,
    host: &str,
    addr: &str,
    sshd_config: Option<&Path>,
) -> Result<HashMap<String, Vec<String>>, String> {
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-T");
    if let Some(config) = sshd_config {
        cmd.arg("-f").arg(config);
    }
    cmd.arg("-C")
        .arg(format!("user={user},host={host},addr={addr}"));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run /usr/sbin/sshd -T: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sshd -T failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
}

/// The report: one line per finding, errors first.
pub fn report(findings: &[Finding]) -> String {
    let mut text = String::new();
    for level in [Level::Error, Level::Warning] {
        for f in findings.iter().filter(|f| f.level == level) {
            let word = if level == Level::Error {
                "error"
            } else {
                "warning"
            };
            let _ = writeln!(text, "{word}: {} {} (fix: {})", f.setting, f.problem, f.fix);
        }
    }
    if findings.is_empty() {
        text.push_str("ok: nothing in sshd's settings undermines the SFTP-only account\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> HashMap<String, Vec<String>> {
        parse_sshd_t(text)
    }

    const SAFE: &str = "permituserenvironment no\nacceptenv LANG\nacceptenv LC_*\ndisableforwarding yes\nallowtcpforwarding no\nx11forwarding no\nallowagentforwarding no\nallowstreamlocalforwarding no\npermittunnel no\npermittty no\npermituserrc no\nsubsystem sftp /usr/lib/openssh/sftp-server\nforcecommand none\nchrootdirectory /srv/sftp/%u\n";

    #[test]
    fn a_safe_configuration_has_no_findings() {
        let allowed = ["/usr/lib/openssh/sftp-server".to_owned()];
        assert_eq!(audit(&settings(SAFE), &allowed, true, false, Some(1)), []);
    }

    #[test]
    fn each_unsafe_setting_is_found() {
        let allowed = ["/usr/lib/openssh/sftp-server".to_owned()];
        for (line, setting, level) in [
            (
                "permituserenvironment yes",
                "PermitUserEnvironment",
                Level::Error,
            ),
            ("acceptenv LD_*", "AcceptEnv", Level::Error),
            ("acceptenv *", "AcceptEnv", Level::Error),
            ("acceptenv TZ", "AcceptEnv", Level::Error),
            ("acceptenv PAT?", "AcceptEnv", Level::Error),
            (
                "disableforwarding no\nallowtcpforwarding yes",
                "AllowTcpForwarding",
                Level::Error,
            ),
            (
                "disableforwarding no\nallowstreamlocalforwarding all",
                "AllowStreamLocalForwarding",
                Level::Error,
            ),
            (
                "disableforwarding no\nx11forwarding yes",
                "X11Forwarding",
                Level::Error,
            ),
            (
                "disableforwarding no\nallowagentforwarding yes",
                "AllowAgentForwarding",
                Level::Warning,
            ),
            ("permittunnel yes", "PermitTunnel", Level::Error),
            ("permittty yes", "PermitTTY", Level::Warning),
            ("permituserrc yes", "PermitUserRC", Level::Warning),
            ("subsystem sftp internal-sftp", "Subsystem", Level::Error),
            (
                "subsystem sftp /usr/libexec/sftp-server",
                "Subsystem",
                Level::Error,
            ),
            ("forcecommand internal-sftp", "ForceCommand", Level::Error),
            ("chrootdirectory none", "ChrootDirectory", Level::Warning),
        ] {
            // sshd -T prints the first value of a setting that was given twice; put ours first.
            let text = format!("{line}\n{SAFE}");
            let found = audit(&settings(&text), &allowed, true, false, Some(1));
            assert!(
                found
                    .iter()
                    .any(|f| f.setting == setting && f.level == level),
                "{line}: {found:?}"
            );
        }
        let found = audit(&settings(SAFE), &allowed, true, true, None);
        assert!(
            found
                .iter()
                .any(|f| f.setting == "kernel.yama.ptrace_scope" && f.level == Level::Error)
        );
    }

    #[test]
    fn patterns_match_like_sshd() {
        assert!(matches(b"LC_*", b"LC_ALL"));
        assert!(!matches(b"LC_*", b"LD_PRELOAD"));
        assert!(matches(b"*", b"PATH"));
        assert!(matches(b"?Z", b"TZ"));
        assert!(!matches(b"LANG", b"LANGUAGE"));
    }
}
