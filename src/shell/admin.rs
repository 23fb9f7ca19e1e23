//! `sftpd-wrapper --check-config`: validate a config as it will be deployed and show what it
//! means for one user, like `sshd -t`/`sshd -T`.

use crate::config::{self, LoadedConfig};
use crate::shell::syslog;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The outcome of a check: the report to print and whether the config is fit to deploy.
pub(crate) struct CheckReport {
    pub text: String,
    pub problems: Vec<String>,
}

fn executable(path: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{path} is not an executable file")),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

fn quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(", "))
}

/// Checks the config at `path` for `user` (a name from the password database, or `None` for a
/// user with no per-user or per-group settings).
pub(crate) fn check_config(path: &Path, user: Option<&str>) -> Result<CheckReport, String> {
    let LoadedConfig {
        config: cfg,
        source,
    } = config::load(path).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let mut text = String::new();
    write_source(&mut text, source.as_deref(), path);
    let (name, groups) = user_and_groups(user)?;
    let eff = cfg.effective_for(&name, &groups);
    if user.is_some() {
        write_user(&mut text, &name, &groups, &eff);
    }
    write_sftp_server_and_syslog(&mut text, &mut problems, &cfg, &eff);
    write_hooks(&mut text, &mut problems, &cfg);
    write_syslog_warning(&mut text, &cfg);
    Ok(CheckReport { text, problems })
}

/// Where the config came from.
fn write_source(text: &mut String, source: Option<&Path>, path: &Path) {
    match source {
        Some(p) => {
            let _ = writeln!(
                text,
                "# config: {} (owner and mode OK, parses, valid)",
                p.display()
            );
        }
        None => {
            let _ = writeln!(
                text,
                "# config: {} does not exist: built-in defaults apply",
                path.display()
            );
        }
    }
}

/// `user`'s name and groups from the password database; none for no user.
fn user_and_groups(user: Option<&str>) -> Result<(String, Vec<String>), String> {
    match user {
        Some(name) => {
            let entry = nix::unistd::User::from_name(name)
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
                .ok_or_else(|| format!("no such user: {name:?}"))?;
            let groups = crate::shell::session::group_names(&entry);
            Ok((name.to_owned(), groups))
        }
        None => Ok((String::new(), Vec::new())),
    }
}

fn write_user(text: &mut String, name: &str, groups: &[String], eff: &config::Effective) {
    let _ = writeln!(text, "user = {name:?}");
    let _ = writeln!(text, "groups = {}", quoted_list(groups));
    let _ = writeln!(
        text,
        "overrides_applied = {}",
        quoted_list(&eff.applied_overrides)
    );
}

fn write_sftp_server_and_syslog(
    text: &mut String,
    problems: &mut Vec<String>,
    cfg: &config::Config,
    eff: &config::Effective,
) {
    if let Err(e) = executable(&eff.sftp_server_path) {
        problems.push(format!("sftp-server: {e}"));
    }
    let _ = writeln!(text, "\n[sftp_server]");
    let _ = writeln!(text, "path = {:?}", eff.sftp_server_path);
    let _ = writeln!(text, "args = {}", quoted_list(&eff.sftp_server_args));
    let _ = writeln!(
        text,
        "allowed_commands = {}",
        quoted_list(&eff.allowed_commands)
    );
    let _ = writeln!(text, "log_mode = {:?}", cfg.sftp_server.log_mode.as_str());
    let _ = writeln!(text, "\n[syslog]");
    let _ = writeln!(text, "facility = {:?}", cfg.syslog.facility.as_str());
    let _ = writeln!(text, "ident = {:?}", cfg.syslog.ident);
    let _ = writeln!(text, "on_failure = {:?}", cfg.syslog.on_failure.as_str());
}

/// Every hook, set or not; a set one's program must be executable.
fn write_hooks(text: &mut String, problems: &mut Vec<String>, cfg: &config::Config) {
    let _ = writeln!(text, "\n[hooks]");
    let event_keys: Vec<(String, Option<&Vec<String>>)> = cfg
        .hooks
        .event_hooks()
        .into_iter()
        .map(|(event, argv)| (format!("on_{event}"), argv))
        .collect();
    let session_keys = [
        ("pre_session".to_owned(), cfg.hooks.pre_session.as_ref()),
        ("post_session".to_owned(), cfg.hooks.post_session.as_ref()),
    ];
    for (key, hook) in session_keys.into_iter().chain(event_keys) {
        match hook {
            Some(argv) => {
                let _ = writeln!(text, "{key} = {}", quoted_list(argv));
                if let Err(e) = executable(&argv[0]) {
                    problems.push(format!("hooks.{key}: {e}"));
                }
            }
            None => {
                let _ = writeln!(text, "# {key}: not set");
            }
        }
    }
    let _ = writeln!(text, "timeout_secs = {}", cfg.hooks.timeout_secs);
    let _ = writeln!(
        text,
        "pre_session_failure = {:?}",
        cfg.hooks.pre_session_failure.as_str()
    );
    let _ = writeln!(
        text,
        "post_session_mode = {:?}",
        cfg.hooks.post_session_mode.as_str()
    );
    let _ = writeln!(text, "event_format = {:?}", cfg.hooks.event_format.as_str());
    let _ = writeln!(text, "upload_on_rename = {}", cfg.hooks.upload_on_rename);
}

/// Warns when no syslog daemon answers now: sessions depend on it.
fn write_syslog_warning(text: &mut String, cfg: &config::Config) {
    if let Err(e) = syslog::probe(syslog::SYSLOG_SOCKET) {
        let _ = writeln!(
            text,
            "\n# warning: no syslog daemon answers at {} ({e}); sessions will {}",
            syslog::SYSLOG_SOCKET,
            match cfg.syslog.on_failure {
                config::FailurePolicy::Allow => "run unaudited",
                config::FailurePolicy::Deny => "be refused",
            }
        );
    }
}
