//! ChrootDirectory jails. sshd chroots before it runs the login shell, so the wrapper,
//! sftp-server, the hooks and the interpreters of script hooks, their libraries, the config,
//! /dev/null, a /dev/log socket and the user's passwd and group entries must all exist inside
//! the jail. `--check-chroot USER` lists what is missing;
//! `--setup-chroot USER` copies it in (everything but /dev/log, which rsyslog must provide).

use crate::config::Config;
use nix::unistd::User;
use std::fmt::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One thing the jail needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// A copy of a host file at the same path.
    File {
        path: PathBuf,
    },
    /// The user's (and root's) lines of /etc/passwd, or the user's groups of /etc/group.
    Passwd,
    Group,
    /// The config, copied from `from`.
    Config {
        from: PathBuf,
    },
    /// /dev/null.
    DevNull,
    /// A syslog socket at /dev/log: rsyslog's imuxsock must create it.
    LogSocket,
    /// The user's home directory, owned by the user.
    Home {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub need: Need,
    /// The path inside the jail.
    pub path: PathBuf,
    pub present: bool,
}

fn inside(jail: &Path, path: &Path) -> PathBuf {
    jail.join(path.strip_prefix("/").unwrap_or(path))
}

/// The libraries `program` loads, as the dynamic loader resolves them (`ldd`), with the loader.
pub(crate) fn libraries(program: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(program).output() else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let candidate = match line.split_once("=>") {
                Some((_, rest)) => rest.trim().split(' ').next()?,
                None => line.split(' ').next()?,
            };
            candidate.starts_with('/').then(|| PathBuf::from(candidate))
        })
        .collect()
}

/// How many `#!` lines the kernel follows (a script's interpreter may be a script again).
const MAX_INTERPRETER_DEPTH: usize = 4;

/// The interpreter a script names in its `#!` line (the kernel reads at most its first 256
/// bytes), and for `#!/usr/bin/env NAME` also NAME as env finds it in `search_path` (the hooks'
/// PATH); followed when the interpreter is a script too. Empty for a binary.
pub fn interpreters(program: &Path, search_path: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut current = program.to_owned();
    for _ in 0..MAX_INTERPRETER_DEPTH {
        let mut head = [0u8; 256];
        let Ok(n) =
            std::fs::File::open(&current).and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        else {
            break;
        };
        let Some(line) = head[..n].strip_prefix(b"#!") else {
            break;
        };
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        let Some(interpreter) = words.next().map(PathBuf::from) else {
            break;
        };
        found.push(interpreter.clone());
        if interpreter.file_name().is_some_and(|n| n == "env") {
            let name = words.find(|w| !w.starts_with('-'));
            if let Some(target) = name.and_then(|name| {
                search_path
                    .split(':')
                    .map(|dir| Path::new(dir).join(name))
                    .find(|p| p.is_file())
            }) {
                found.push(target.clone());
                current = target;
                continue;
            }
        }
        current = interpreter;
    }
    found
}

/// Everything `user`'s jail needs, and whether it is there.
pub(crate) fn requirements(
    user: &User,
    cfg: &Config,
    config_path: &Path,
    jail: &Path,
) -> Vec<Item> {
    let groups = crate::shell::session::group_names(user);
    let effective = cfg.effective_for(&user.name, &groups);
    let mut needs: Vec<(Need, PathBuf)> = Vec::new();
    let mut programs = vec![
        user.shell.clone(),
        PathBuf::from(&effective.sftp_server_path),
    ];
    for argv in [&cfg.hooks.pre_session, &cfg.hooks.post_session]
        .into_iter()
        .flatten()
        .chain(cfg.hooks.event_hooks().into_iter().filter_map(|(_, a)| a))
    {
        programs.push(PathBuf::from(&argv[0]));
        // A script hook runs only if its interpreter is in the jail too.
        programs.extend(interpreters(Path::new(&argv[0]), &cfg.hooks.path));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for program in &programs {
        files.push(program.clone());
        files.extend(libraries(program));
    }
    if Path::new("/etc/localtime").exists() {
        files.push(PathBuf::from("/etc/localtime"));
    }
    files.sort();
    files.dedup();
    for f in files {
        needs.push((Need::File { path: f.clone() }, f));
    }
    needs.push((Need::Passwd, PathBuf::from("/etc/passwd")));
    needs.push((Need::Group, PathBuf::from("/etc/group")));
    needs.push((
        Need::Config {
            from: config_path.to_owned(),
        },
        PathBuf::from(crate::config::CONFIG_PATH),
    ));
    needs.push((Need::DevNull, PathBuf::from("/dev/null")));
    needs.push((
        Need::LogSocket,
        PathBuf::from(crate::shell::syslog::SYSLOG_SOCKET),
    ));
    needs.push((
        Need::Home {
            path: user.dir.clone(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        },
        user.dir.clone(),
    ));
    needs
        .into_iter()
        .map(|(need, path)| {
            let at = inside(jail, &path);
            let present = match &need {
                Need::File { .. } | Need::Config { .. } => at.is_file(),
                Need::Passwd => std::fs::read_to_string(&at).is_ok_and(|t| {
                    t.lines()
                        .any(|l| l.split(':').next() == Some(user.name.as_str()))
                }),
                Need::Group => at.is_file(),
                Need::DevNull => {
                    std::fs::metadata(&at).is_ok_and(|m| m.file_type().is_char_device())
                }
                Need::LogSocket => std::fs::metadata(&at).is_ok_and(|m| m.file_type().is_socket()),
                Need::Home { .. } => at.is_dir(),
            };
            Item {
                need,
                path,
                present,
            }
        })
        .collect()
}

/// sshd refuses a jail any component of which is not owned by root or is writable by others.
pub(crate) fn ownership_problems(jail: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut current = PathBuf::from("/");
    let components: Vec<_> = jail.components().skip(1).collect();
    for c in std::iter::once(None).chain(components.into_iter().map(Some)) {
        if let Some(c) = c {
            current.push(c);
        }
        match std::fs::metadata(&current) {
            Ok(m) if m.uid() != 0 => {
                problems.push(format!("{} is not owned by root", current.display()))
            }
            Ok(m) if m.permissions().mode() & 0o022 != 0 => problems.push(format!(
                "{} is writable by group or others (mode {:04o})",
                current.display(),
                m.permissions().mode() & 0o7777
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", current.display())),
        }
    }
    problems
}

/// The rsyslog lines that give the jail its /dev/log.
pub(crate) fn rsyslog_hint(jail: &Path) -> String {
    format!(
        "input(type=\"imuxsock\" Socket=\"{}\" CreatePath=\"on\")   # in /etc/rsyslog.d/, then restart rsyslog",
        inside(jail, Path::new("/dev/log")).display()
    )
}

/// The report `--check-chroot` prints, and whether the jail is complete.
pub(crate) fn check_report(items: &[Item], jail: &Path) -> (String, bool) {
    let mut text = String::new();
    let mut ok = true;
    for problem in ownership_problems(jail) {
        let _ = writeln!(
            text,
            "problem  {problem} (sshd refuses such a ChrootDirectory)"
        );
        ok = false;
    }
    for item in items {
        let _ = writeln!(
            text,
            "{}  {}",
            if item.present { "ok     " } else { "missing" },
            item.path.display()
        );
        if !item.present {
            ok = false;
            if item.need == Need::LogSocket {
                let _ = writeln!(text, "         {}", rsyslog_hint(jail));
            }
        }
    }
    (text, ok)
}

fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(from, to)?;
    Ok(())
}

/// Creates what is missing. Returns one line per action; /dev/log only gets its directory and
/// the rsyslog hint.
pub fn setup(user: &User, items: &[Item], jail: &Path) -> std::io::Result<Vec<String>> {
    let mut done = Vec::new();
    for item in items.iter().filter(|i| !i.present) {
        let at = inside(jail, &item.path);
        match &item.need {
            Need::File { path } => {
                copy_file(path, &at)?;
                done.push(format!("copied {}", path.display()));
            }
            Need::Config { from } => {
                if from.exists() {
                    copy_file(from, &at)?;
                    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644))?;
                    std::os::unix::fs::chown(&at, Some(0), Some(0))?;
                    done.push(format!(
                        "copied {} to {}",
                        from.display(),
                        item.path.display()
                    ));
                } else {
                    done.push(format!(
                        "no {}: the jail runs with built-in defaults",
                        from.display()
                    ));
                }
            }
            Need::Passwd | Need::Group => {
                let source = std::fs::read_to_string(&item.path)?;
                let groups = crate::shell::session::group_names(user);
                let keep: Vec<&str> = source
                    .lines()
                    .filter(|l| {
                        let name = l.split(':').next().unwrap_or("");
                        match item.need {
                            Need::Passwd => name == "root" || name == user.name,
                            _ => name == "root" || groups.iter().any(|g| g == name),
                        }
                    })
                    .collect();
                if let Some(dir) = at.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&at, format!("{}\n", keep.join("\n")))?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644))?;
                done.push(format!(
                    "wrote {} with {} entries",
                    item.path.display(),
                    keep.len()
                ));
            }
            Need::DevNull => {
                if let Some(dir) = at.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                nix::sys::stat::mknod(
                    &at,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o666),
                    nix::sys::stat::makedev(1, 3),
                )
                .map_err(std::io::Error::from)?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o666))?;
                done.push("created /dev/null".to_owned());
            }
            Need::LogSocket => {
                if let Some(dir) = at.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                done.push(format!("add to rsyslog: {}", rsyslog_hint(jail)));
            }
            Need::Home { uid, gid, .. } => {
                std::fs::create_dir_all(&at)?;
                std::os::unix::fs::chown(&at, Some(*uid), Some(*gid))?;
                done.push(format!("created home {}", item.path.display()));
            }
        }
    }
    Ok(done)
}

/// The jail sshd would use for `user`: `sshd -T -C user=USER,…`'s chrootdirectory (for a
/// connection from 127.0.0.1 to sshd's first port), with %u, %h and %% expanded. `None` when sshd
/// gives none.
pub(crate) fn jail_from_sshd(user: &User) -> Option<PathBuf> {
    use crate::shell::sshd_audit::{Connection, effective_settings};
    let mut connection = Connection {
        addr: "127.0.0.1".to_owned(),
        host: "localhost".to_owned(),
        laddr: None,
        // sshd -T refuses a config with Match LocalPort unless it is told the port.
        lport: Some("22".to_owned()),
        rdomain: None,
    };
    let mut settings = effective_settings(&user.name, &connection, None).ok()?;
    if let Some(port) = settings.get("port").and_then(|p| p.first())
        && connection.lport.as_ref() != Some(port)
    {
        connection.lport = Some(port.clone());
        settings = effective_settings(&user.name, &connection, None).ok()?;
    }
    let value = settings.get("chrootdirectory")?.first()?.trim();
    if value == "none" || value.is_empty() {
        return None;
    }
    let expanded = value
        .replace("%%", "\u{0}")
        .replace("%u", &user.name)
        .replace("%h", &user.dir.display().to_string())
        .replace('\u{0}', "%");
    Some(PathBuf::from(expanded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_of_a_real_program() {
        let libs = libraries(Path::new("/bin/sh"));
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(libs.iter().all(|l| l.is_absolute()));
    }

    #[test]
    fn interpreters_of_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        assert_eq!(
            interpreters(&script("a", "#!/bin/sh -e\nexit 0\n"), "/usr/bin:/bin"),
            [PathBuf::from("/bin/sh")]
        );
        assert_eq!(
            interpreters(&script("b", "#! /usr/bin/perl\n"), "/usr/bin"),
            [PathBuf::from("/usr/bin/perl")]
        );
        assert_eq!(
            interpreters(&script("c", "#!/usr/bin/env sh\n"), "/nonexistent:/bin"),
            [PathBuf::from("/usr/bin/env"), PathBuf::from("/bin/sh")]
        );
        // An interpreter that is a script itself.
        let inner = script("inner", "#!/bin/sh\n");
        let outer = script("outer", &format!("#!{}\n", inner.display()));
        assert_eq!(
            interpreters(&outer, "/bin"),
            [inner, PathBuf::from("/bin/sh")]
        );
        assert!(interpreters(Path::new("/bin/sh"), "/bin").is_empty());
        assert!(interpreters(&script("d", "echo\n"), "/bin").is_empty());
    }

    #[test]
    fn paths_inside_the_jail() {
        assert_eq!(
            inside(Path::new("/srv/jail"), Path::new("/dev/log")),
            PathBuf::from("/srv/jail/dev/log")
        );
    }

    #[test]
    fn a_tmp_jail_is_refused_as_sshd_would() {
        let problems = ownership_problems(Path::new("/tmp"));
        assert!(
            problems.iter().any(|p| p.contains("/tmp is writable")),
            "{problems:?}"
        );
        assert!(
            ownership_problems(Path::new("/usr")).is_empty() || !nix::unistd::geteuid().is_root()
        );
    }
}
