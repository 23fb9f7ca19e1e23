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
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
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
pub(crate) fn parse_sshd_t(text: &str) -> HashMap<String, Vec<String>> {
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
    let mut audit = Audit {
        settings,
        findings: Vec::new(),
    };
    audit.environment();
    audit.forwarding();
    audit.subsystems(allowed_commands);
    audit.force_command_and_chroot();
    audit.ptrace(hooks, proc_isolation_off, ptrace_scope);
    audit.findings
}

/// One user's effective settings and what was found in them so far.
struct Audit<'a> {
    settings: &'a HashMap<String, Vec<String>>,
    findings: Vec<Finding>,
}

impl<'a> Audit<'a> {
    /// A setting's first value; empty where `sshd -T` printed none.
    fn get(&self, key: &str) -> &'a str {
        self.settings
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("")
    }

    fn add(&mut self, level: Level, setting: &str, problem: String, fix: &str) {
        self.findings.push(Finding {
            level,
            setting: setting.to_owned(),
            problem,
            fix: fix.to_owned(),
        })
    }

    /// The environment the client or the partner's files can set for the wrapper.
    fn environment(&mut self) {
        if self.get("permituserenvironment") != "no" {
            self.add(
                Level::Error,
                "PermitUserEnvironment",
                format!(
                    "is {}: the partner sets the wrapper's environment in ~/.ssh/environment (LD_PRELOAD runs code before the wrapper's main)",
                    self.get("permituserenvironment")
                ),
                "PermitUserEnvironment no (a global setting: it is not allowed in a Match block)",
            );
        }
        for pattern in self.settings.get("acceptenv").into_iter().flatten() {
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
                    self.add(
                        Level::Error,
                        "AcceptEnv",
                        format!("{word} lets the client set {}", hit.join(", ")),
                        "AcceptEnv LANG LC_* (or nothing) in the partners' Match block",
                    );
                }
            }
        }
    }

    /// The channels sshd serves without running the login shell.
    fn forwarding(&mut self) {
        let forwarding_off = self.get("disableforwarding") == "yes";
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
            if !forwarding_off && !matches!(self.get(key), "no" | "") {
                self.add(
                    level,
                    name,
                    format!(
                        "is {}: the partner can use this server as a proxy or relay without the shell ever running",
                        self.get(key)
                    ),
                    "DisableForwarding yes (and AllowTcpForwarding no, AllowStreamLocalForwarding no, X11Forwarding no, AllowAgentForwarding no) in the Match block",
                );
            }
        }
        if !matches!(self.get("permittunnel"), "no" | "") {
            self.add(
                Level::Error,
                "PermitTunnel",
                format!(
                    "is {}: tun/tap forwarding bypasses the shell",
                    self.get("permittunnel")
                ),
                "PermitTunnel no",
            );
        }
        if self.get("permittty") != "no" {
            self.add(
                Level::Warning,
                "PermitTTY",
                "is yes: the wrapper refuses terminal sessions, but sshd allocates the terminal first"
                    .to_owned(),
                "PermitTTY no",
            );
        }
        if self.get("permituserrc") != "no" {
            self.add(
                Level::Warning,
                "PermitUserRC",
                "is yes: sshd runs ~/.ssh/rc through the login shell (the wrapper refuses it and logs a refusal for every session)".to_owned(),
                "PermitUserRC no",
            );
        }
    }

    /// Each subsystem must reach the wrapper with a command it allows.
    fn subsystems(&mut self, allowed_commands: &[String]) {
        let subsystems = self
            .settings
            .get("subsystem")
            .map_or(&[][..], Vec::as_slice);
        for subsystem in subsystems {
            let (name, command) = subsystem
                .trim()
                .split_once(char::is_whitespace)
                .map_or((subsystem.trim(), ""), |(n, c)| (n, c.trim()));
            // sshd serves the subsystem itself when the program (the first word) is exactly this.
            if command.split_whitespace().next() == Some("internal-sftp") {
                self.add(
                    Level::Error,
                    "Subsystem",
                    format!(
                        "{name} is internal-sftp: a client that asks for subsystem {name:?} gets SFTP served by sshd itself, which never runs the login shell (no namespace, no session start or end, no hook)"
                    ),
                    "remove that Subsystem line, or give it the sftp-server program (Subsystem sftp /usr/lib/openssh/sftp-server, the path in sftp_server.allowed_commands)",
                );
            } else if !allowed_commands.iter().any(|c| c == command) {
                self.add(
                    Level::Error,
                    "Subsystem",
                    format!(
                        "{name} is {command:?}, which sftp_server.allowed_commands does not list: {}",
                        if name == "sftp" {
                            "every SFTP session is refused"
                        } else {
                            "sshd runs it through the login shell, which refuses it; it serves the partner nothing"
                        }
                    ),
                    "list it in sftp_server.allowed_commands, or change or remove the Subsystem line",
                );
            }
        }
        if !subsystems
            .iter()
            .any(|s| s.split_whitespace().next() == Some("sftp"))
        {
            self.add(
                Level::Warning,
                "Subsystem",
                "there is no sftp subsystem: SFTP clients are refused".to_owned(),
                "Subsystem sftp /usr/lib/openssh/sftp-server",
            );
        }
    }

    fn force_command_and_chroot(&mut self) {
        let force = self.get("forcecommand");
        if !matches!(force, "none" | "") {
            let level = if force.starts_with("internal-sftp") {
                Level::Error
            } else {
                Level::Warning
            };
            self.add(
                level,
                "ForceCommand",
                format!("is {force:?}: it replaces the subsystem command the wrapper expects"),
                "no ForceCommand for partners whose login shell is the wrapper",
            );
        }
        if matches!(self.get("chrootdirectory"), "none" | "") {
            self.add(
                Level::Warning,
                "ChrootDirectory",
                "is none: the partner sees the whole filesystem, including /proc outside sftp-server's namespace".to_owned(),
                "ChrootDirectory /srv/sftp/%u (sftpd-wrapper --setup-chroot USER)",
            );
        }
    }

    /// Whether the partner's processes can reach the hooks' memory.
    fn ptrace(&mut self, hooks: bool, proc_isolation_off: bool, ptrace_scope: Option<u32>) {
        if ptrace_scope.unwrap_or(0) < 1 {
            let level = if hooks && proc_isolation_off {
                Level::Error
            } else {
                Level::Warning
            };
            self.add(
                level,
                "kernel.yama.ptrace_scope",
                format!(
                    "is {}: processes of one uid may write each other's memory; only sftp-server's private /proc keeps the partner from the hooks",
                    ptrace_scope.map_or("missing (no Yama)".to_owned(), |s| s.to_string())
                ),
                "kernel.yama.ptrace_scope = 1 in /etc/sysctl.d/ (sysctl -w to apply now), and keep sftp_server.proc_isolation = \"require\"",
            );
        }
    }
}

/// Where sshd looks for an `Include` given as a relative path (Debian's SSHDIR).
const SSHDIR: &str = "/etc/ssh";

/// sshd's own limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// How many `sshd -T` runs the check makes at most (each takes about 20 ms); past that it
/// evaluates each value alone and each Match block's own values together, and says so.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// The client address and host name audited when the config names none (TEST-NET addresses
/// and a name that resolves nowhere: outside any Match block an admin writes).
pub(crate) const OTHER_ADDRESS: &str = "192.0.2.1";
const OTHER_ADDRESS_V6: &str = "2001:db8::1";
pub(crate) const OTHER_HOST: &str = "partner.invalid";

/// The Match criteria sshd knows, as its manual spells them.
const CRITERIA: [&str; 8] = [
    "All",
    "User",
    "Group",
    "Host",
    "LocalAddress",
    "LocalPort",
    "RDomain",
    "Address",
];

/// A `Match` line of sshd_config or of a file it includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchBlock {
    pub file: PathBuf,
    pub line: usize,
    /// Criterion (lower case) and its comma-separated patterns; `all` has none.
    pub criteria: Vec<(String, Vec<String>)>,
}

impl MatchBlock {
    fn describe(&self) -> String {
        let mut text = format!("{}:{}: Match", self.file.display(), self.line);
        for (criterion, patterns) in &self.criteria {
            let name = CRITERIA
                .iter()
                .find(|c| c.eq_ignore_ascii_case(criterion))
                .map_or(criterion.as_str(), |c| c);
            let _ = write!(text, " {name}");
            if !patterns.is_empty() {
                let _ = write!(text, " {}", patterns.join(","));
            }
        }
        text
    }

    fn patterns(&self, criterion: &str) -> impl Iterator<Item = &String> {
        self.criteria
            .iter()
            .filter(move |(c, _)| c == criterion)
            .flat_map(|(_, p)| p)
    }
}

/// A line's words as sshd splits them: whitespace separates, double quotes group, `#` at the
/// start of a word ends the line.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return out,
            _ => {}
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted && matches!(chars.peek(), Some('"' | '\\')) => {
                    word.extend(chars.next());
                }
                c if c.is_whitespace() && !quoted => break,
                c => word.push(c),
            }
        }
        out.push(word);
    }
}

/// The files an `Include` word names: relative to /etc/ssh, with `*` and `?` expanded per
/// path component as glob(3) does, sorted.
fn include_paths(word: &str) -> Vec<PathBuf> {
    let full = if word.starts_with('/') {
        PathBuf::from(word)
    } else {
        Path::new(SSHDIR).join(word)
    };
    let mut found = vec![PathBuf::from("/")];
    for component in full.components().skip(1) {
        let name = component.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if !name.contains(['*', '?']) {
                next.push(dir.join(&*name));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let entry_name = entry.file_name().to_string_lossy().into_owned();
                if !entry_name.starts_with('.') && matches(name.as_bytes(), entry_name.as_bytes()) {
                    next.push(dir.join(entry_name));
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.exists());
    found.sort();
    found
}

/// Every `Match` line of `config` and the files it includes, in the order sshd reads them, and
/// the files that could not be read.
pub(crate) fn read_match_blocks(config: &Path) -> (Vec<MatchBlock>, Vec<String>) {
    fn walk(file: &Path, depth: usize, blocks: &mut Vec<MatchBlock>, unread: &mut Vec<String>) {
        if depth > MAX_INCLUDE_DEPTH {
            unread.push(format!("{}: Include nested too deeply", file.display()));
            return;
        }
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                unread.push(format!("{}: {e}", file.display()));
                return;
            }
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            // The keyword ends at whitespace or at a single `=`.
            let end = line
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(line.len());
            let keyword = line[..end].to_ascii_lowercase();
            let rest = line[end..].trim_start();
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            match keyword.as_str() {
                "include" => {
                    for word in words(rest) {
                        for path in include_paths(&word) {
                            walk(&path, depth + 1, blocks, unread);
                        }
                    }
                }
                "match" => {
                    let mut criteria = Vec::new();
                    let mut args = words(rest).into_iter();
                    while let Some(criterion) = args.next() {
                        let criterion = criterion.to_ascii_lowercase();
                        let patterns = if criterion == "all" {
                            Vec::new()
                        } else {
                            args.next()
                                .map(|a| a.split(',').map(str::to_owned).collect())
                                .unwrap_or_default()
                        };
                        criteria.push((criterion, patterns));
                    }
                    blocks.push(MatchBlock {
                        file: file.to_owned(),
                        line: n + 1,
                        criteria,
                    });
                }
                _ => {}
            }
        }
    }
    let mut blocks = Vec::new();
    let mut unread = Vec::new();
    walk(config, 0, &mut blocks, &mut unread);
    (blocks, unread)
}

/// An address that `pattern` (a wildcard pattern of sshd's) matches, if one is easily found.
fn wildcard_address(pattern: &str) -> Option<String> {
    ["1", "0", "1.1", "1.1.1", "", "10", "1:1"]
        .iter()
        .map(|fill| pattern.replace(['*', '?'], fill))
        .find(|a| a.parse::<IpAddr>().is_ok() && matches(pattern.as_bytes(), a.as_bytes()))
}

/// Client or local addresses that between them fall on each side of every address pattern in
/// `patterns` (CIDR ranges, single addresses, wildcards; `!` ignored): the first address of each
/// range, the first after it and the last before it, so every stretch of the address space that
/// the patterns treat alike has one representative.
pub(crate) fn address_representatives<'a>(
    patterns: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut v4: Vec<u64> = Vec::new();
    let mut v6: Vec<u128> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for pattern in patterns {
        let pattern = pattern.trim_start_matches('!');
        if pattern.contains(['*', '?']) {
            out.extend(wildcard_address(pattern));
            continue;
        }
        let (addr, bits) = match pattern.split_once('/') {
            Some((a, b)) => (a, b.parse::<u32>().ok()),
            None => (pattern, None),
        };
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                let bits = bits.unwrap_or(32).min(32);
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                let start = u32::from(a) & mask;
                let end = u64::from(start | !mask);
                v4.extend([u64::from(start), end + 1]);
                v4.extend(u64::from(start).checked_sub(1));
            }
            Ok(IpAddr::V6(a)) => {
                let bits = bits.unwrap_or(128).min(128);
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                let start = u128::from(a) & mask;
                v6.push(start);
                v6.extend((start | !mask).checked_add(1));
                v6.extend(start.checked_sub(1));
            }
            Err(_) => {}
        }
    }
    out.extend(
        v4.into_iter()
            .filter_map(|a| u32::try_from(a).ok())
            .map(|a| std::net::Ipv4Addr::from(a).to_string()),
    );
    out.extend(
        v6.into_iter()
            .map(|a| std::net::Ipv6Addr::from(a).to_string()),
    );
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.clone()));
    out
}

/// A name `pattern` matches (wildcards filled in), lower case as sshd compares host names.
fn name_representative(pattern: &str) -> String {
    pattern
        .trim_start_matches('!')
        .replace(['*', '?'], "x")
        .to_ascii_lowercase()
}

/// One connection to evaluate: what `sshd -T -C` is told besides the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr: String,
    pub host: String,
    pub laddr: Option<String>,
    pub lport: Option<String>,
    pub rdomain: Option<String>,
}

impl Connection {
    fn spec(&self, user: &str) -> String {
        let mut spec = format!("user={user},host={},addr={}", self.host, self.addr);
        for (key, value) in [
            ("laddr", &self.laddr),
            ("lport", &self.lport),
            ("rdomain", &self.rdomain),
        ] {
            if let Some(v) = value {
                let _ = write!(spec, ",{key}={v}");
            }
        }
        spec
    }

    /// The connection as the report names it.
    pub fn describe(&self) -> String {
        let mut text = format!("addr={}", self.addr);
        if self.host != self.addr {
            let _ = write!(text, " host={}", self.host);
        }
        for (key, value) in [
            ("laddr", &self.laddr),
            ("lport", &self.lport),
            ("rdomain", &self.rdomain),
        ] {
            if let Some(v) = value {
                let _ = write!(text, " {key}={v}");
            }
        }
        text
    }
}

/// Runs `sshd -T [-f CONFIG] -C SPEC`: the settings that apply to one connection of `user`.
pub(crate) fn effective_settings(
    user: &str,
    connection: &Connection,
    sshd_config: Option<&Path>,
) -> Result<HashMap<String, Vec<String>>, String> {
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-T");
    if let Some(config) = sshd_config {
        cmd.arg("-f").arg(config);
    }
    cmd.arg("-C").arg(connection.spec(user));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run /usr/sbin/sshd -T: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sshd -T -C {} failed: {}",
            connection.spec(user),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
}

/// What the admin fixed on the command line; `None` means every value the config names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fixed {
    pub addr: Option<String>,
    pub host: Option<String>,
    pub lport: Option<String>,
}

/// The connections to evaluate for a config with `blocks`, given sshd's global settings
/// (`global`: its ports, listen addresses and UseDNS). The second value lists what was left
/// out when the full product would exceed [`MAX_CONNECTIONS`].
pub fn connections(
    blocks: &[MatchBlock],
    global: &HashMap<String, Vec<String>>,
    fixed: &Fixed,
) -> (Vec<Connection>, Option<String>) {
    let use_dns = global
        .get("usedns")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "yes");
    let listen = global.get("listenaddress").map_or(&[][..], Vec::as_slice);
    let values = Values {
        addresses: client_addresses(blocks, fixed, use_dns),
        hosts: host_names(blocks, fixed, use_dns),
        laddrs: local_addresses(blocks, listen),
        lports: local_ports(blocks, global, listen, fixed),
        rdomains: routing_domains(blocks),
    };
    let total = values.addresses.len()
        * values.hosts.len()
        * values.lports.len()
        * values.laddrs.len()
        * values.rdomains.len();
    if total <= MAX_CONNECTIONS {
        return (values.every_combination(total), None);
    }
    // Too many: every value alone (the others at their first), then each block's own values
    // together.
    let mut some = values.each_alone();
    let mut partial = Vec::new();
    for block in blocks {
        let kinds = ["address", "host", "localaddress", "localport", "rdomain"];
        if kinds
            .iter()
            .filter(|k| block.patterns(k).next().is_some())
            .count()
            < 2
        {
            continue;
        }
        partial.push(block.describe());
        some.push(values.block_together(block, fixed, use_dns));
    }
    let some = dedup(some);
    let note = format!(
        "{total} connections would cover every combination of the addresses, host names, local addresses, ports and routing domains the Match blocks name; {} were evaluated: each value alone, and each block's own values together. Not evaluated in combination with the other blocks: {}",
        some.len(),
        if partial.is_empty() {
            "the blocks' values across blocks".to_owned()
        } else {
            partial.join("; ")
        }
    );
    (some, Some(note))
}

/// The patterns of `criterion` in every block.
fn named<'a>(blocks: &'a [MatchBlock], criterion: &str) -> Vec<&'a String> {
    blocks.iter().flat_map(|b| b.patterns(criterion)).collect()
}

fn client_addresses(blocks: &[MatchBlock], fixed: &Fixed, use_dns: bool) -> Vec<String> {
    // Without UseDNS sshd matches Host patterns against the client address.
    match &fixed.addr {
        Some(a) => vec![a.clone()],
        None => {
            let mut patterns = named(blocks, "address");
            if !use_dns {
                patterns.extend(named(blocks, "host"));
            }
            let mut list = vec![OTHER_ADDRESS.to_owned()];
            if !patterns.is_empty() {
                list.push(OTHER_ADDRESS_V6.to_owned());
            }
            list.extend(address_representatives(patterns));
            dedup(list)
        }
    }
}

/// None: the host name is the address (UseDNS no, or a failed reverse lookup).
fn host_names(blocks: &[MatchBlock], fixed: &Fixed, use_dns: bool) -> Vec<Option<String>> {
    match &fixed.host {
        Some(h) => vec![Some(h.clone())],
        None if use_dns => {
            let mut list = vec![None, Some(OTHER_HOST.to_owned())];
            list.extend(
                named(blocks, "host")
                    .into_iter()
                    .map(|p| Some(name_representative(p))),
            );
            dedup(list)
        }
        None => vec![None],
    }
}

fn local_ports(
    blocks: &[MatchBlock],
    global: &HashMap<String, Vec<String>>,
    listen: &[String],
    fixed: &Fixed,
) -> Vec<Option<String>> {
    let mut ports: Vec<String> = global.get("port").cloned().unwrap_or_default();
    ports.extend(
        listen
            .iter()
            .filter_map(|l| l.rsplit_once(':').map(|(_, p)| p.to_owned())),
    );
    if ports.is_empty() {
        ports.push("22".to_owned());
    }
    match &fixed.lport {
        Some(p) => vec![Some(p.clone())],
        None if named(blocks, "localport").is_empty() => vec![Some(ports[0].clone())],
        None => dedup(
            ports
                .into_iter()
                .chain(named(blocks, "localport").into_iter().cloned())
                .map(Some)
                .collect(),
        ),
    }
}

fn local_addresses(blocks: &[MatchBlock], listen: &[String]) -> Vec<Option<String>> {
    if named(blocks, "localaddress").is_empty() {
        return vec![None];
    }
    let specific: Vec<String> = listen
        .iter()
        .filter_map(|l| {
            l.rsplit_once(':')
                .map(|(a, _)| a.trim_matches(['[', ']']).to_owned())
        })
        .filter(|a| !matches!(a.as_str(), "0.0.0.0" | "::"))
        .collect();
    let mut patterns = named(blocks, "localaddress");
    patterns.extend(specific.iter());
    let mut list = vec![Some("198.51.100.1".to_owned())];
    list.extend(address_representatives(patterns).into_iter().map(Some));
    dedup(list)
}

fn routing_domains(blocks: &[MatchBlock]) -> Vec<Option<String>> {
    let mut list = vec![None];
    list.extend(
        named(blocks, "rdomain")
            .into_iter()
            .map(|p| Some(name_representative(p))),
    );
    dedup(list)
}

/// The values of each connection property worth evaluating, each list non-empty.
struct Values {
    addresses: Vec<String>,
    hosts: Vec<Option<String>>,
    laddrs: Vec<Option<String>>,
    lports: Vec<Option<String>>,
    rdomains: Vec<Option<String>>,
}

fn make_connection(
    addr: &str,
    host: &Option<String>,
    laddr: &Option<String>,
    lport: &Option<String>,
    rdomain: &Option<String>,
) -> Connection {
    Connection {
        addr: addr.to_owned(),
        host: host.clone().unwrap_or_else(|| addr.to_owned()),
        laddr: laddr.clone(),
        lport: lport.clone(),
        rdomain: rdomain.clone(),
    }
}

impl Values {
    fn every_combination(&self, total: usize) -> Vec<Connection> {
        let mut all = Vec::with_capacity(total);
        for addr in &self.addresses {
            for host in &self.hosts {
                for laddr in &self.laddrs {
                    for lport in &self.lports {
                        for rdomain in &self.rdomains {
                            all.push(make_connection(addr, host, laddr, lport, rdomain));
                        }
                    }
                }
            }
        }
        all
    }

    /// Every value alone, the others at their first.
    fn each_alone(&self) -> Vec<Connection> {
        let (addr, host, laddr, lport, rdomain) = (
            &self.addresses[0],
            &self.hosts[0],
            &self.laddrs[0],
            &self.lports[0],
            &self.rdomains[0],
        );
        let mut some = Vec::new();
        for a in &self.addresses {
            some.push(make_connection(a, host, laddr, lport, rdomain));
        }
        for h in &self.hosts {
            some.push(make_connection(addr, h, laddr, lport, rdomain));
        }
        for l in &self.laddrs {
            some.push(make_connection(addr, host, l, lport, rdomain));
        }
        for p in &self.lports {
            some.push(make_connection(addr, host, laddr, p, rdomain));
        }
        for r in &self.rdomains {
            some.push(make_connection(addr, host, laddr, lport, r));
        }
        some
    }

    /// A connection with `block`'s own values (its first pattern of each criterion that is
    /// not negated), the fixed ones and the first values elsewhere.
    fn block_together(&self, block: &MatchBlock, fixed: &Fixed, use_dns: bool) -> Connection {
        let first = |k: &str| block.patterns(k).find(|p| !p.starts_with('!'));
        let addr = fixed.addr.clone().or_else(|| {
            first("address").and_then(|p| address_representatives([p]).into_iter().next())
        });
        let addr = addr.unwrap_or_else(|| self.addresses[0].clone());
        let host = fixed.host.clone().or_else(|| {
            use_dns
                .then(|| first("host").map(|p| name_representative(p)))
                .flatten()
        });
        let laddr = first("localaddress")
            .and_then(|p| address_representatives([p]).into_iter().next())
            .or_else(|| self.laddrs[0].clone());
        let lport = fixed
            .lport
            .clone()
            .or_else(|| first("localport").cloned())
            .or_else(|| self.lports[0].clone());
        let rdomain = first("rdomain").map(|p| name_representative(p));
        make_connection(&addr, &host, &laddr, &lport, &rdomain)
    }
}

fn dedup<T: PartialEq>(list: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(list.len());
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A finding and the connections it was found for.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub finding: Finding,
    pub connections: Vec<Connection>,
}

/// Settings of the wrapper the audit needs.
pub(crate) struct WrapperFacts<'a> {
    pub allowed_commands: &'a [String],
    pub hooks: bool,
    pub proc_isolation_off: bool,
    pub ptrace_scope: Option<u32>,
}

/// `--check-sshd USER`: evaluates `sshd -T` for every connection the config's Match blocks set
/// apart and returns the report and whether it holds an error.
pub fn check(
    user: &str,
    sshd_config: Option<&Path>,
    fixed: &Fixed,
    facts: &WrapperFacts,
) -> Result<(String, bool), String> {
    for value in [&fixed.addr, &fixed.host, &fixed.lport]
        .into_iter()
        .flatten()
    {
        if value.is_empty() || value.contains([',', '=']) || value.contains(char::is_whitespace) {
            return Err(format!("{value:?} cannot be passed to sshd -T -C"));
        }
    }
    let config_path = sshd_config.unwrap_or(Path::new("/etc/ssh/sshd_config"));
    let (blocks, unread) = read_match_blocks(config_path);
    // sshd -T needs lport whenever a Match LocalPort exists; the globals do not depend on it.
    let probe = Connection {
        addr: fixed
            .addr
            .clone()
            .unwrap_or_else(|| OTHER_ADDRESS.to_owned()),
        host: fixed.host.clone().unwrap_or_else(|| OTHER_HOST.to_owned()),
        laddr: None,
        lport: Some(fixed.lport.clone().unwrap_or_else(|| "22".to_owned())),
        rdomain: None,
    };
    let global = effective_settings(user, &probe, sshd_config)?;
    let (connections, note) = connections(&blocks, &global, fixed);
    let (found, failures) = audit_connections(user, &connections, sshd_config, facts);
    let mut text = String::new();
    write_connections(&mut text, user, config_path, &connections, note.is_some());
    write_blocks(&mut text, &blocks);
    if let Some(note) = &note {
        let _ = writeln!(text, "# not every combination evaluated: {note}");
    }
    let error = write_findings(&mut text, &found, &failures, &unread, connections.len());
    Ok((text, error))
}

/// The findings of every connection, each with the connections it was found for, in the order
/// first found; and the `sshd -T` runs that failed.
fn audit_connections(
    user: &str,
    connections: &[Connection],
    sshd_config: Option<&Path>,
    facts: &WrapperFacts,
) -> (Vec<Found>, Vec<String>) {
    let mut found: Vec<Found> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for connection in connections {
        let settings = match effective_settings(user, connection, sshd_config) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let findings = audit(
            &settings,
            facts.allowed_commands,
            facts.hooks,
            facts.proc_isolation_off,
            facts.ptrace_scope,
        );
        for finding in findings {
            match found.iter_mut().find(|f| f.finding == finding) {
                Some(f) => f.connections.push(connection.clone()),
                None => found.push(Found {
                    finding,
                    connections: vec![connection.clone()],
                }),
            }
        }
    }
    (found, failures)
}

/// The report's head: how many connections, and the values they took.
fn write_connections(
    text: &mut String,
    user: &str,
    config_path: &Path,
    connections: &[Connection],
    partial: bool,
) {
    let _ = writeln!(
        text,
        "# sshd -T -C for user={user} ({}): {} connection{}, {} of",
        config_path.display(),
        connections.len(),
        if connections.len() == 1 { "" } else { "s" },
        if partial {
            "some combinations (see below)"
        } else {
            "every combination"
        }
    );
    let values = |get: &dyn Fn(&Connection) -> Option<String>| -> String {
        let list: Vec<String> = dedup(connections.iter().filter_map(get).collect());
        list.join(", ")
    };
    let _ = writeln!(text, "#   addr: {}", values(&|c| Some(c.addr.clone())));
    for (key, list) in [
        (
            "host",
            values(&|c| {
                Some(if c.host == c.addr {
                    "(the address)".to_owned()
                } else {
                    c.host.clone()
                })
            }),
        ),
        ("laddr", values(&|c| c.laddr.clone())),
        ("lport", values(&|c| c.lport.clone())),
        (
            "rdomain",
            values(&|c| c.rdomain.clone().or(Some("(none)".to_owned()))),
        ),
    ] {
        if !list.is_empty() && list != "(none)" {
            let _ = writeln!(text, "#   {key}: {list}");
        }
    }
}

/// Each Match block, and the criteria sshd -T could not be told.
fn write_blocks(text: &mut String, blocks: &[MatchBlock]) {
    if blocks.is_empty() {
        let _ = writeln!(text, "# no Match blocks");
    }
    for block in blocks {
        let unknown: Vec<&str> = block
            .criteria
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| !CRITERIA.iter().any(|k| k.eq_ignore_ascii_case(c)))
            .collect();
        let how = if unknown.is_empty() {
            "evaluated"
        } else {
            "not evaluated for its"
        };
        let _ = write!(text, "# {}: {how}", block.describe());
        if !unknown.is_empty() {
            let _ = write!(
                text,
                " {} (sshd decides it with its default)",
                unknown.join(", ")
            );
        }
        text.push('\n');
    }
}

/// Unread includes, failed runs and the findings, errors first; whether any is an error.
fn write_findings(
    text: &mut String,
    found: &[Found],
    failures: &[String],
    unread: &[String],
    connections: usize,
) -> bool {
    let mut error = false;
    for problem in unread {
        let _ = writeln!(
            text,
            "warning: Include {problem}: its Match blocks were not evaluated"
        );
    }
    for failure in failures {
        error = true;
        let _ = writeln!(text, "error: {failure}");
    }
    error |= found.iter().any(|f| f.finding.level == Level::Error);
    for level in [Level::Error, Level::Warning] {
        for f in found.iter().filter(|f| f.finding.level == level) {
            let mut line = report(std::slice::from_ref(&f.finding));
            if f.connections.len() < connections {
                line.pop();
                let names: Vec<String> = f
                    .connections
                    .iter()
                    .take(4)
                    .map(Connection::describe)
                    .collect();
                let _ = write!(line, " [only for {}", names.join("; "));
                if f.connections.len() > names.len() {
                    let _ = write!(line, " and {} more", f.connections.len() - names.len());
                }
                line.push_str("]\n");
            }
            text.push_str(&line);
        }
    }
    if found.is_empty() && failures.is_empty() {
        text.push_str(&report(&[]));
    }
    error
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
                "subsystem backup internal-sftp -d /",
                "Subsystem",
                Level::Error,
            ),
            ("subsystem backup /bin/sh", "Subsystem", Level::Error),
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
    fn address_ranges_get_one_address_on_each_side() {
        let patterns = ["10.0.0.0/8".to_owned(), "!10.1.0.0/16".to_owned()];
        let reps = address_representatives(&patterns);
        for a in [
            "10.0.0.0",
            "11.0.0.0",
            "9.255.255.255",
            "10.1.0.0",
            "10.2.0.0",
        ] {
            assert!(reps.contains(&a.to_owned()), "{a}: {reps:?}");
        }
        assert_eq!(
            address_representatives(&["0.0.0.0/0".to_owned()]),
            ["0.0.0.0"]
        );
        assert_eq!(
            address_representatives(&["192.168.*".to_owned()]),
            ["192.168.1.1"]
        );
    }

    #[test]
    fn too_many_combinations_are_named() {
        let block = |n: usize, criteria: &[(&str, &str)]| MatchBlock {
            file: PathBuf::from("/etc/ssh/sshd_config"),
            line: n,
            criteria: criteria
                .iter()
                .map(|(c, p)| (c.to_string(), vec![p.to_string()]))
                .collect(),
        };
        let mut blocks: Vec<MatchBlock> = (0..40)
            .map(|i| block(i, &[("address", &format!("10.{i}.0.0/16"))]))
            .collect();
        blocks.push(block(
            50,
            &[("localport", "2222"), ("address", "172.16.0.0/12")],
        ));
        blocks.extend((0..3).map(|i| block(60 + i, &[("localaddress", &format!("10.9.{i}.1"))])));
        let global = parse_sshd_t("port 22\nusedns no\n");
        let (list, note) = connections(&blocks, &global, &Fixed::default());
        assert!(list.len() <= MAX_CONNECTIONS, "{}", list.len());
        let note = note.unwrap();
        assert!(
            note.contains("sshd_config:50: Match LocalPort 2222 Address 172.16.0.0/12"),
            "{note}"
        );
        assert!(
            list.iter()
                .any(|c| c.addr == "172.16.0.0" && c.lport.as_deref() == Some("2222"))
        );
        let (list, note) = connections(&blocks[..2], &global, &Fixed::default());
        assert!(note.is_none());
        assert!(list.iter().all(|c| c.host == c.addr));
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
