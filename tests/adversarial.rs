//! The adversarial suite: what a hostile partner can try with an account whose login shell is the
//! wrapper, each attack performed through the real sshd with real clients (OpenSSH's ssh and
//! sftp, and paramiko where the attack needs protocol-level control), grouped by attack class.
//! Prints a table (class, cases, passed, failed) and fails if any case failed.

mod common;

use common::Harness;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

type Outcome = Result<(), String>;
type AttackClass = fn() -> Vec<Case>;

/// One case: its name and whether the attack was stopped.
struct Case {
    name: String,
    outcome: Outcome,
}

/// Runs `check`, turning a panic (a harness step that failed) into a failed case.
fn case(name: &str, check: impl FnOnce() -> Outcome) -> Case {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {text}"))
        });
    Case {
        name: name.to_owned(),
        outcome,
    }
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { Err(why()) }
}

/// No step that reads or writes another process's /proc files worked, and the code did not run.
fn stopped(steps: &[(String, bool)], marker: &Path) -> Outcome {
    let worked: Vec<&String> = steps
        .iter()
        .filter(|(s, ok)| {
            *ok && (s.contains("environ") || s.contains("syscall") || s.contains("mem"))
        })
        .map(|(s, _)| s)
        .collect();
    ensure(worked.is_empty() && !marker.exists(), || {
        format!(
            "the attack got through: {worked:?}, marker exists: {}",
            marker.exists()
        )
    })
}

fn marker(h: &Harness, name: &str) -> PathBuf {
    h.out_dir.join(name)
}

/// Waits until the session of `user` has logged its end; returns the line.
fn session_end(h: &Harness, user: &str) -> String {
    h.wait_for_log(&["session end", &format!("user={user} ")])
}

fn proc_memory() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.push(case(
        "wrapper memory via /proc/self/stat, default config",
        || {
            let h = Harness::start("");
            let user = h.user();
            let m = marker(&h, "pwned-wrapper");
            let steps = h.attack_steps(&user, &m, &["wrapper"]);
            std::thread::sleep(Duration::from_millis(500));
            stopped(&steps, &m)?;
            ensure(
                !steps
                    .iter()
                    .any(|(s, ok)| s == "read /proc/self/stat" && *ok),
                || format!("sftp-server sees /proc: {steps:?}"),
            )?;
            // The wrapper survived its attacker and logged the end.
            session_end(&h, &user);
            Ok(())
        },
    ));
    cases.push(case(
        "wrapper memory with /proc visible (proc_isolation = off)",
        || {
            let h = Harness::start("[sftp_server]\nproc_isolation = \"off\"\n");
            let user = h.user();
            let m = marker(&h, "pwned-wrapper-visible");
            let steps = h.attack_steps(&user, &m, &["wrapper"]);
            std::thread::sleep(Duration::from_millis(500));
            stopped(&steps, &m)?;
            ensure(
                steps
                    .iter()
                    .any(|(s, ok)| s == "read /proc/self/stat" && *ok),
                || format!("the attack did not find the wrapper: {steps:?}"),
            )?;
            session_end(&h, &user);
            Ok(())
        },
    ));
    cases.push(case("a running event hook from a second session", || {
        let h = Harness::start("");
        let pidfile = h.out_dir.join("hook.pid");
        let hook = h.hook_script(
            "slow-upload",
            &format!(
                "echo $$ > {}.tmp; mv {0}.tmp {0}; sleep 8",
                pidfile.display()
            ),
        );
        h.write_config(&format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{}\"]\n",
            hook.display()
        ));
        let user = h.user();
        let local = tempfile::tempdir().unwrap();
        fs::write(local.path().join("f.txt"), "x").unwrap();
        h.sftp_ok(&user, "put f.txt\n", local.path());
        let pid = common::wait_until("the hook's PID", Duration::from_secs(15), || {
            fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
        });
        let m = marker(&h, "pwned-hook");
        let steps = h.attack_steps(&user, &m, &["pid", &pid.to_string()]);
        // The hook sleeps 8 s, then would run the planted code.
        common::wait_until_opt(Duration::from_secs(12), || m.exists().then_some(()));
        stopped(&steps, &m)
    }));
    cases.push(case(
        "/proc/<wrapper>/environ, syscall, mem as the partner's uid",
        || {
            let h = Harness::start("");
            let user = h.user();
            let local = tempfile::tempdir().unwrap();
            let (mut child, wrapper_pid, _) = h.open_session(&user, local.path(), &[]);
            let mut got = Vec::new();
            for (what, script) in [
                ("environ", format!("cat /proc/{wrapper_pid}/environ")),
                ("syscall", format!("cat /proc/{wrapper_pid}/syscall")),
                ("mem", format!(": 1<> /proc/{wrapper_pid}/mem")),
            ] {
                let out = Command::new("runuser")
                    .args(["-u", &user, "--", "/bin/sh", "-c", &script])
                    .output()
                    .unwrap();
                if out.status.success() {
                    got.push(what);
                }
            }
            drop(child.stdin.take());
            let _ = child.wait();
            ensure(got.is_empty(), || {
                format!("the partner's uid opened {got:?}")
            })
        },
    ));
    cases.push(case(
        "hooks while sftp-server sees /proc and ptrace_scope is 0",
        || {
            let h = Harness::start("");
            let hook = h.hook_script("post", "exit 0");
            h.write_config(&format!(
                "[sftp_server]\nproc_isolation = \"off\"\n[hooks]\npost_session = [\"{}\"]\n",
                hook.display()
            ));
            let user = h.user();
            let local = tempfile::tempdir().unwrap();
            let out = h.sftp(&user, "pwd\n", local.path());
            let scope = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .unwrap_or(0);
            if scope >= 1 {
                return ensure(out.status.success(), || {
                    "refused although Yama protects".into()
                });
            }
            let line = h.wait_for_log(&["session refused", &format!("user={user} ")]);
            ensure(
                !out.status.success() && line.contains("reason=hooks_exposed"),
                || format!("not refused: {line}"),
            )
        },
    ));
    cases
}

/// Builds a shared object whose constructor creates `marker`.
fn evil_library(h: &Harness, marker: &Path) -> PathBuf {
    let src = h.root().join("evil.c");
    fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n__attribute__((constructor)) static void evil(void) {{ open(\"{}\", O_CREAT | O_WRONLY, 0644); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let lib = h.root().join("evil.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o755)).unwrap();
    lib
}

fn loader_environment() -> Vec<Case> {
    let mut cases = Vec::new();
    for variable in ["LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "LD_AUDIT"] {
        cases.push(case(&format!("{variable} from ~/.ssh/environment"), || {
            let h = Harness::start_with("", "PermitUserEnvironment yes");
            let user = h.user();
            let m = marker(&h, "preloaded");
            let lib = evil_library(&h, &m);
            let value = match variable {
                "LD_PRELOAD" | "LD_AUDIT" => lib.display().to_string(),
                _ => h.root().display().to_string(),
            };
            let ssh_dir = h.home(&user).join(".ssh");
            fs::create_dir(&ssh_dir).unwrap();
            fs::write(ssh_dir.join("environment"), format!("{variable}={value}\n")).unwrap();
            let local = tempfile::tempdir().unwrap();
            let out = h.sftp(&user, "pwd\n", local.path());
            let line = h.wait_for_log(&["session refused", &format!("user={user} ")]);
            ensure(
                !out.status.success()
                    && line.contains("reason=loader_environment")
                    && line.contains(variable)
                    && !h.log_text().contains("session start sid="),
                || format!("not refused before the session started: {line}"),
            )
        }));
    }
    cases
}

fn client_environment() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.push(case("PATH from ~/.ssh/environment reaches a hook", || {
        let h = Harness::start_with("", "PermitUserEnvironment yes");
        let user = h.user();
        let bin = h.home(&user).join("bin");
        fs::create_dir(&bin).unwrap();
        let m = marker(&h, "fake-date");
        fs::write(
            bin.join("date"),
            format!("#!/bin/sh\ntouch {}\n", m.display()),
        )
        .unwrap();
        fs::set_permissions(bin.join("date"), fs::Permissions::from_mode(0o755)).unwrap();
        let ssh_dir = h.home(&user).join(".ssh");
        fs::create_dir(&ssh_dir).unwrap();
        fs::write(
            ssh_dir.join("environment"),
            format!("PATH={}\n", bin.display()),
        )
        .unwrap();
        Command::new("chown")
            .args(["-R", &format!("{user}:")])
            .arg(h.home(&user))
            .status()
            .unwrap();
        let out_file = h.out_dir.join("hook-date");
        let hook = h.hook_script("post-date", &format!("date > {}", out_file.display()));
        h.write_config(&format!(
            "[hooks]\npost_session = [\"{}\"]\npost_session_mode = \"wait\"\n",
            hook.display()
        ));
        let local = tempfile::tempdir().unwrap();
        h.sftp_ok(&user, "pwd\n", local.path());
        common::wait_until("the hook's output", Duration::from_secs(10), || {
            fs::read_to_string(&out_file).ok().filter(|t| !t.is_empty())
        });
        ensure(!m.exists(), || {
            "the partner's ~/bin/date ran in the hook".into()
        })
    }));
    cases.push(case(
        "a .pth file in the partner's home runs in a Python hook",
        || {
            let h = Harness::start("");
            let user = h.user();
            let home = h.home(&user);
            let out = Command::new("/usr/bin/python3")
                .args(["-c", "import site; print(site.getusersitepackages())"])
                .env("HOME", &home)
                .output()
                .unwrap();
            let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            fs::create_dir_all(&site).unwrap();
            let m = marker(&h, "pth-ran");
            fs::write(
                site.join("evil.pth"),
                format!(
                    "import os; open({:?}, 'w').close()\n",
                    m.display().to_string()
                ),
            )
            .unwrap();
            Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(&home)
                .status()
                .unwrap();
            let done = h.out_dir.join("python-hook-ran");
            h.write_config(&format!(
            "[hooks]\npre_session = [\"/usr/bin/python3\", \"-c\", \"open('{}', 'w').close()\"]\n",
            done.display()
        ));
            let local = tempfile::tempdir().unwrap();
            h.sftp_ok(&user, "pwd\n", local.path());
            ensure(done.exists() && !m.exists(), || {
                format!("hook ran: {}, .pth ran: {}", done.exists(), m.exists())
            })
        },
    ));
    cases.push(case("TZ from the client moves the wrapper's clock", || {
        let h = Harness::start_with("", "AcceptEnv TZ");
        let env_file = h.out_dir.join("post-env");
        let hook = h.hook_script("post-env", &format!("env > {}", env_file.display()));
        h.write_config(&format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\npost_session = [\"{}\"]\npost_session_mode = \"wait\"\n",
            hook.display()
        ));
        let user = h.user();
        let local = tempfile::tempdir().unwrap();
        let batch = h.out_dir.join("tz-batch");
        fs::write(&batch, "pwd\n").unwrap();
        let plain = h.sftp_command(&user, batch.to_str().unwrap(), local.path());
        let out = Command::new("/usr/bin/sftp")
            .args(["-o", "SetEnv=TZ=Pacific/Kiritimati"])
            .args(plain.get_args())
            .current_dir(local.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ensure(out.status.success(), || {
            String::from_utf8_lossy(&out.stderr).into_owned()
        })?;
        let env = common::wait_until("the hook's environment", Duration::from_secs(10), || {
            fs::read_to_string(&env_file)
                .ok()
                .filter(|t| t.contains("SFTPD_START_TIME="))
        });
        let start = env
            .lines()
            .find_map(|l| l.strip_prefix("SFTPD_START_TIME="))
            .unwrap_or_default()
            .to_owned();
        let now = chrono::Local::now();
        let local_offset = now.format("%:z").to_string();
        ensure(
            start.ends_with(&local_offset) && !start.ends_with("+14:00") && !env.contains("TZ="),
            || format!("SFTPD_START_TIME={start}, system offset {local_offset}"),
        )?;
        // The session id's date and time, and the timestamps the capture forwarder writes for
        // sftp-server's lines, are the system's too (Kiritimati is 14 hours ahead of UTC).
        let sid = env
            .lines()
            .find_map(|l| l.strip_prefix("SFTPD_SESSION_ID="))
            .unwrap_or_default()
            .to_owned();
        let hour_now = now.format("%Y%m%dT%H").to_string();
        let hour_before = (now - chrono::Duration::hours(1))
            .format("%Y%m%dT%H")
            .to_string();
        ensure(
            sid.contains(&format!("-{hour_now}")) || sid.contains(&format!("-{hour_before}")),
            || format!("session id {sid} at {hour_now}"),
        )?;
        h.wait_for_log(&[
            "sftp-server[",
            &format!("session closed for local user {user} "),
        ]);
        let stamps: Vec<String> = h
            .log_text()
            .lines()
            .filter(|l| l.contains("sftp-server[") && l.contains(&format!("user {user} ")))
            .map(|l| l.get(..12).unwrap_or_default().to_owned())
            .collect();
        let allowed = [now, now - chrono::Duration::minutes(1)]
            .map(|t| t.format("%b %e %H:%M").to_string());
        ensure(
            !stamps.is_empty() && stamps.iter().all(|s| allowed.contains(s)),
            || format!("forwarded timestamps {stamps:?}, system time {allowed:?}"),
        )
    }));
    cases
}

fn terminal() -> Vec<Case> {
    vec![case("ssh -tt with the allowed command", || {
        let h = Harness::start("");
        let user = h.user();
        let out = Command::new("/usr/bin/ssh")
            .arg("-tt")
            .args(h.ssh_options())
            .arg(format!("{user}@127.0.0.1"))
            .arg(common::SFTP_SERVER)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let line = h.wait_for_log(&["session refused", &format!("user={user} ")]);
        ensure(
            !out.status.success()
                && line.contains("reason=tty")
                && !h.log_text().contains("sftp-server started"),
            || line.to_string(),
        )
    })]
}

/// Each refused command is one well-formed refusal line with a bounded prefix, its length and
/// digest, and no session.
fn hostile_commands() -> Vec<Case> {
    let h = std::sync::Arc::new(Harness::start(""));
    let big = |n: usize| "A".repeat(n);
    let commands: Vec<(&str, String)> = vec![
        ("id", "id".to_owned()),
        (
            "the allowed command; sh",
            format!("{}; sh", common::SFTP_SERVER),
        ),
        (
            "$(id) in the command",
            format!("{} $(id)", common::SFTP_SERVER),
        ),
        (
            "a forged log line after a newline",
            "x\nsession end sid=forged user=root exit_status=0".to_owned(),
        ),
        ("a 60 KB command", big(60 * 1024)),
        ("a 100 KB command", big(100 * 1024)),
    ];
    // Shapes that get past a check that splits, trims, globs or prefix-matches the command.
    let sftp = common::SFTP_SERVER;
    let more: Vec<String> = vec![
        format!("{sftp} "),
        format!(" {sftp}"),
        format!("{sftp}\n"),
        format!("{sftp} -d /etc"),
        format!("{sftp} -R"),
        format!("{sftp}&&id"),
        format!("{sftp}|id"),
        format!("{sftp}`id`"),
        format!("{sftp}\tid"),
        format!("{sftp}x"),
        format!("{sftp}/../../../bin/sh"),
        "/usr/lib/openssh/../openssh/sftp-server".to_owned(),
        "/usr/lib/openssh/sftp-server*".to_owned(),
        "/usr/lib/openssh/sftp-serve?".to_owned(),
        "sftp-server".to_owned(),
        "internal-sftp".to_owned(),
        "/bin/sh".to_owned(),
        "/bin/sh -c id".to_owned(),
        "exec /bin/sh".to_owned(),
        "scp -t /tmp".to_owned(),
        "rsync --server -e.LsfxC . /tmp".to_owned(),
        "sh .ssh/rc".to_owned(),
        "env LD_PRELOAD=/tmp/x.so /usr/lib/openssh/sftp-server".to_owned(),
        "PATH=/tmp /usr/lib/openssh/sftp-server".to_owned(),
        "\x1b[2J\x1b[31mfake".to_owned(),
        "\u{202e}revres-ptfs/hssnepo/bil/rsu/".to_owned(),
        "-c id".to_owned(),
        "--help".to_owned(),
        "'/usr/lib/openssh/sftp-server'".to_owned(),
    ];
    let commands: Vec<(&str, String)> = commands
        .into_iter()
        .chain(
            more.into_iter()
                .map(|c| ("a command that is not the subsystem's", c)),
        )
        .collect();
    commands
        .into_iter()
        .map(|(name, command)| {
            let h = std::sync::Arc::clone(&h);
            case(
                &format!("{name}: {:?}", command.chars().take(40).collect::<String>()),
                move || {
                    let user = h.user();
                    // `--`: the ssh client reads options after the host too.
                    let out = h.ssh(&user, &["--", &command]);
                    let line = h.wait_for_log(&["session refused", &format!("user={user} ")]);
                    let message = line.split_once("]: ").map(|(_, m)| m).unwrap_or_default();
                    let parsed =
                        sftpd_wrapper::log::wrapper::WrapperLine::parse(message.as_bytes());
                    let count = h
                        .log_text()
                        .lines()
                        .filter(|l| l.contains(&format!("user={user} ")))
                        .count();
                    ensure(
                        !out.status.success()
                            && count == 1
                            && line.len() < 2048
                            && line.contains(&format!("command_len={} ", command.len()))
                            && parsed.is_some(),
                        || format!("{count} lines; {}", &line[..line.len().min(300)]),
                    )
                },
            )
        })
        .collect()
}

/// Over 200 more command strings, generated: every shell metacharacter before, inside and after
/// the allowed command, every one-character deletion of it, case and path variants, interpreters
/// and other programs, and lengths around common buffer sizes. Sent over one connection (paramiko,
/// a channel each); every one is refused with nothing on stdout, one refusal line each, and no
/// sftp-server and no marker file.
fn command_sweep() -> Vec<Case> {
    let sftp = common::SFTP_SERVER;
    let marker = tempfile::tempdir().unwrap().keep().join("ran");
    let touch = format!("touch {}", marker.display());
    let metas = [
        ";", "&", "&&", "|", "||", "$(id)", "`id`", ">", "<", "(", ")", "{", "}", "*", "?", "[",
        "~", "!", "#", "'", "\"", "\\", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x7f",
        "\u{a0}", "\u{200b}", "%00", "$IFS", "${IFS}",
    ];
    let mut commands: Vec<String> = Vec::new();
    let (dir, base) = sftp.rsplit_once('/').unwrap();
    for m in metas {
        commands.push(format!("{m}{sftp}"));
        commands.push(format!("{sftp}{m}{touch}"));
        commands.push(format!("{dir}/{m}{base}"));
    }
    for i in 0..sftp.len() {
        commands.push(format!("{}{}", &sftp[..i], &sftp[i + 1..]));
    }
    commands.push(sftp.to_uppercase());
    for (i, part) in sftp.split('/').enumerate().skip(1) {
        let mut parts: Vec<String> = sftp.split('/').map(str::to_owned).collect();
        parts[i] = part.to_uppercase();
        commands.push(parts.join("/"));
    }
    for path in [
        "/usr/lib/openssh//sftp-server",
        "/usr//lib/openssh/sftp-server",
        "//usr/lib/openssh/sftp-server",
        "/./usr/lib/openssh/sftp-server",
        "/usr/lib/./openssh/sftp-server",
        "/usr/lib/openssh/./sftp-server",
        "usr/lib/openssh/sftp-server",
        "../../usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/lib/sftp-server",
        "/usr/lib/openssh/sftp-server.real",
        "/proc/self/root/usr/lib/openssh/sftp-server",
        "/proc/self/exe",
    ] {
        commands.push(path.to_owned());
    }
    for option in [
        "-d /",
        "-l DEBUG3 -f AUTH",
        "-e",
        "-P read",
        "-u 000",
        "-h",
        "-Q requests",
    ] {
        commands.push(format!("{sftp} {option}"));
    }
    for program in [
        "bash -i",
        "bash",
        "sh",
        "dash",
        "rbash",
        "python3",
        "perl",
        "busybox sh",
        "env",
        "env -i sh",
        "exec sh",
        "true",
        "false",
        "cat /etc/passwd",
        "ls -la",
        "echo x",
        "cp /bin/sh sh",
        "scp -f /etc/passwd",
        "rsync --server --sender . /etc",
        "git-upload-pack '/'",
        "git-receive-pack '/'",
        "svnserve -t",
        "sudo sh",
        "su",
        "login",
        "passwd",
        "crontab -l",
        "at now",
        "screen",
        "tmux",
        "vi",
        "less /etc/passwd",
        "tar cf - /etc",
        "timeout 1 id",
        "nice id",
        "nohup id",
        "setsid id",
        "script -c id",
        "unshare id",
        "ld.so /bin/sh",
        "/lib64/ld-linux-x86-64.so.2 /bin/sh",
        "/bin/busybox",
        "nc -l 1234",
        "ssh-agent",
        "xterm",
        "socat - EXEC:sh",
    ] {
        commands.push(program.to_owned());
    }
    commands.push(format!("python3 -c 'import os; os.system(\"{touch}\")'"));
    commands.push(format!("perl -e 'system(\"{touch}\")'"));
    commands.push(format!("awk 'BEGIN{{system(\"{touch}\")}}'"));
    commands.push(format!("find / -maxdepth 0 -exec {touch} ;"));
    commands.push(format!("echo '{touch}' | sh"));
    commands.push(touch.clone());
    for n in [255, 256, 257, 1023, 1024, 1025, 4095, 4096, 4097, 32 * 1024] {
        commands.push("A".repeat(n));
        commands.push(sftp.repeat(n / sftp.len() + 1)[..n].to_owned());
    }
    commands.sort();
    commands.dedup();
    let h = Harness::start("");
    let user = h.user();
    let input = h.out_dir.join("sweep-commands");
    let hexed: String = commands.iter().map(|c| hex::encode(c) + "\n").collect();
    fs::write(&input, hexed).unwrap();
    let out = h.attack(
        &user,
        Path::new("-"),
        &["sweep"],
        fs::File::open(&input).unwrap().into(),
        300,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let answers: std::collections::HashMap<String, serde_json::Value> =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["command"].as_str().unwrap_or_default().to_owned(), v))
            .collect();
    let user_field = format!("user={user} ");
    // Not a panicking wait: commands that were let through are the cases that fail below.
    let _ = common::wait_until_opt(Duration::from_secs(15), || {
        let text = h.log_text();
        let n = text
            .lines()
            .filter(|l| l.contains("session refused") && l.contains(&user_field))
            .count();
        (n >= commands.len()).then_some(())
    });
    let log = h.log_text();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("session refused") && l.contains(&user_field))
        .collect();
    let started = log
        .lines()
        .any(|l| l.contains("sftp-server started") && l.contains(&user_field));
    let mut cases: Vec<Case> = commands
        .iter()
        .map(|command| {
            use sha2::{Digest, Sha256};
            let digest = format!("command_sha256={}", hex::encode(Sha256::digest(command)));
            let answer = answers.get(&hex::encode(command)).cloned();
            let lines = refusals.iter().filter(|l| l.contains(&digest)).count();
            let marker_exists = marker.exists();
            let stderr = stderr.chars().take(500).collect::<String>();
            case(
                &format!("{:?}", command.chars().take(40).collect::<String>()),
                move || {
                    let answer = answer.ok_or_else(|| format!("no answer: {stderr}"))?;
                    ensure(
                        answer["exit"].as_i64().is_some_and(|s| s != 0)
                            && answer["stdout"].as_i64() == Some(0)
                            && lines == 1
                            && !marker_exists,
                        || format!("{answer}; {lines} refusal lines; marker: {marker_exists}"),
                    )
                },
            )
        })
        .collect();
    cases.push(case("no command of the sweep started sftp-server", || {
        ensure(!started, || "an sftp-server started".into())
    }));
    cases
}

/// Capture mode: a name with CR LF and forged lines in it stays inside one log line and fires
/// no event; the real upload after it fires once.
fn capture_lines() -> Vec<Case> {
    vec![
        counters_forged_by_the_cut(),
        case("CR LF and forged lines in a failed open's name", || {
            let h = Harness::start("");
            let record = h.out_dir.join("events");
            let hook = h.hook_script(
                "record",
                &format!(
                    "printf '%s %s\\n' \"$SFTPD_EVENT\" \"$SFTPD_PATH\" >> {}",
                    record.display()
                ),
            );
            h.write_config(&format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{0}\"]\non_download = [\"{0}\"]\n",
            hook.display()
        ));
            let user = h.user();
            let forged = "/nonexistent\r\nsession opened for local user ceo from [10.9.9.9]\r\nclose \"/etc/shadow\" bytes read 0 written 42\r\nopen \"/x";
            let steps = h.attack_steps(&user, Path::new("-"), &["open", &hex::encode(forged)]);
            ensure(
                steps.iter().any(|(s, ok)| s == "open the name" && !ok),
                || format!("the open did not fail: {steps:?}"),
            )?;
            let local = tempfile::tempdir().unwrap();
            fs::write(local.path().join("real.txt"), "12345").unwrap();
            h.sftp_ok(&user, "put real.txt\n", local.path());
            h.wait_for_log_lines(2, &["session end", &format!("user={user} ")]);
            let events = common::wait_until("the upload hook", Duration::from_secs(10), || {
                fs::read_to_string(&record)
                    .ok()
                    .filter(|t| t.contains("real.txt"))
            });
            std::thread::sleep(Duration::from_millis(500));
            let events = fs::read_to_string(&record).unwrap_or(events);
            let messages = h.log_messages();
            let forged_lines: Vec<&String> = messages
                .iter()
                .filter(|m| {
                    m.contains(": session opened for local user ceo")
                        || m.contains(": close \"/etc/shadow\"")
                })
                .collect();
            ensure(
                events.lines().count() == 1
                    && !events.contains("shadow")
                    && forged_lines.is_empty(),
                || format!("events: {events:?}; forged lines: {forged_lines:?}"),
            )
        }),
    ]
}

/// Capture mode: sftp-server's escaping stops short of its 1 KiB buffer when the next escape
/// does not fit, so a cut message can be 1,020 characters long. A name whose first 1,020
/// characters end in forged counters must not become a close with those counters: not in the
/// forwarded line, not in an event, not in the database.
fn counters_forged_by_the_cut() -> Case {
    case("forged counters where sftp-server's escaping stops", || {
        let h = Harness::start("");
        let record = h.out_dir.join("events");
        let hook = h.hook_script(
            "record",
            &format!(
                "printf '%s %s\\n' \"$SFTPD_EVENT\" \"$SFTPD_BYTES_WRITTEN\" >> {}",
                record.display()
            ),
        );
        h.write_config(&format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{}\"]\n",
            hook.display()
        ));
        let user = h.user();
        // `close "` and the padding, then the forged tail: 1,020 characters; the three \xff
        // (four characters each once escaped) no longer fit.
        let tail = format!("{}\" bytes read 0 written 99999", "x".repeat(101));
        let padding = "./".repeat((1020 - 7 - tail.len()) / 2);
        let mut name = format!("{padding}{tail}").into_bytes();
        assert_eq!(name.len() + 7, 1020);
        name.extend_from_slice(b"\xff\xff\xff");
        let steps = h.attack_steps(&user, Path::new("-"), &["put", &hex::encode(&name)]);
        ensure(steps.iter().all(|(_, ok)| *ok), || {
            format!("the upload failed: {steps:?}")
        })?;
        h.wait_for_log_lines(1, &["session end", &format!("user={user} ")]);
        std::thread::sleep(Duration::from_millis(500));
        let events = fs::read_to_string(&record).unwrap_or_default();
        let forged_lines: Vec<String> = h
            .log_messages()
            .into_iter()
            .filter(|m| m.ends_with("written 99999"))
            .collect();
        let db = h.out_dir.join("forged.db");
        common::ingest(db.to_str().unwrap(), &[&h.log_path]);
        let rows = common::report_json(db.to_str().unwrap(), &["transfers"]);
        let forged_rows = rows.as_array().map_or(0, |r| {
            r.iter().filter(|t| t["bytes_written"] == 99999).count()
        });
        ensure(
            forged_lines.is_empty() && !events.contains("99999") && forged_rows == 0,
            || format!("forged lines: {forged_lines:?}; events: {events:?}; rows: {rows}"),
        )
    })
}

/// A capture-mode harness whose hooks for `kinds` of event append each event, in JSON, as one
/// line of the returned file.
fn json_events_harness(kinds: &[&str]) -> (Harness, PathBuf) {
    let h = Harness::start("");
    let record = h.out_dir.join("events");
    let hook = h.hook_script(
        "record",
        &format!("cat >> {0}; echo >> {0}", record.display()),
    );
    let hooks: String = kinds
        .iter()
        .map(|k| format!("on_{k} = [\"{}\"]\n", hook.display()))
        .collect();
    h.write_config(&format!(
        "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\nevent_format = \"json\"\n{hooks}"
    ));
    (h, record)
}

/// The events [`json_events_harness`] recorded so far.
fn recorded_events(record: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Names too long for sftp-server's log messages (a few hundred bytes needing escapes, or about
/// a thousand that do not): every operation still fires its event once, with the whole name
/// and the bytes that moved.
fn long_names() -> Vec<Case> {
    vec![
        long_name_totals(),
        case("uploads, downloads and operations of long names", || {
            let (h, record) =
                json_events_harness(&["upload", "download", "remove", "rename", "mkdir", "rmdir"]);
            let user = h.user();
            let pad = |n: usize| "./".repeat(n).into_bytes();
            let name = |parts: &[&[u8]]| parts.concat();
            // About 1.3 KB and 3.8 KB of plain bytes; 250 bytes of \xff in a directory of 250.
            let up = name(&[&pad(650), b"up.bin"]);
            let down = name(&[&pad(1900), b"down.bin"]);
            let dir = vec![0xffu8; 250];
            let in_dir = name(&[&dir, b"/", &[0xfe; 250]]);
            let part = name(&[&pad(600), b"renamed-later.filepart"]);
            let renamed = name(&[&pad(700), b"renamed-later"]);
            let gone = name(&[&pad(800), b"gone"]);
            let empty = name(&[&dir, b"/", &[0xfd; 240]]);
            fs::write(h.home(&user).join("down.bin"), vec![7u8; 70_000]).unwrap();
            let ops = serde_json::json!([
                ["put", hex::encode(&up), 100_000],
                ["get", hex::encode(&down)],
                ["mkdir", hex::encode(&dir)],
                ["put", hex::encode(&in_dir), 5],
                ["put", hex::encode(&part), 40_000],
                ["posix_rename", hex::encode(&part), hex::encode(&renamed)],
                ["put", hex::encode(&gone), 1],
                ["remove", hex::encode(&gone)],
                ["mkdir", hex::encode(&empty)],
                ["rmdir", hex::encode(&empty)],
            ]);
            let steps = h.attack_steps(&user, Path::new("-"), &["ops", &ops.to_string()]);
            ensure(steps.len() == 10 && steps.iter().all(|(_, ok)| *ok), || {
                format!("the client's operations failed: {steps:?}")
            })?;
            h.wait_for_log_lines(1, &["session end", &format!("user={user} ")]);
            let expected: Vec<(&str, &[u8], u64)> = vec![
                ("upload", &up, 100_000),
                ("download", &down, 70_000),
                ("mkdir", &dir, 0),
                ("upload", &in_dir, 5),
                ("upload", &renamed, 40_000),
                ("rename", &part, 0),
                ("upload", &gone, 1),
                ("remove", &gone, 0),
                ("mkdir", &empty, 0),
                ("rmdir", &empty, 0),
            ];
            let fired = common::wait_until_opt(Duration::from_secs(15), || {
                let events = recorded_events(&record);
                (events.len() >= expected.len()).then_some(events)
            })
            .unwrap_or_default();
            std::thread::sleep(Duration::from_millis(500));
            let summary: Vec<String> = fired
                .iter()
                .map(|e| {
                    let path =
                        hex::decode(e["path_hex"].as_str().unwrap_or_default()).unwrap_or_default();
                    format!(
                        "{} {} bytes, name of {} ending {:?}",
                        e["event"],
                        e["bytes_read"].as_u64().unwrap_or(0)
                            + e["bytes_written"].as_u64().unwrap_or(0),
                        path.len(),
                        String::from_utf8_lossy(&path[path.len().saturating_sub(12)..])
                    )
                })
                .collect();
            let dropped: Vec<String> = h
                .log_messages()
                .into_iter()
                .filter(|m| m.contains("event dropped"))
                .map(|m| m.chars().take(200).collect())
                .collect();
            for (kind, path, bytes) in &expected {
                let matching = fired
                    .iter()
                    .filter(|e| {
                        e["event"] == *kind
                            && e["path_hex"] == hex::encode(path)
                            && e["bytes_read"].as_u64().unwrap_or(0)
                                + e["bytes_written"].as_u64().unwrap_or(0)
                                == *bytes
                    })
                    .count();
                ensure(matching == 1, || {
                    format!(
                        "{kind} of a name of {} bytes fired {matching} times; events: {summary:?}; dropped: {dropped:?}",
                        path.len()
                    )
                })?;
            }
            let completes = fired.iter().filter(|e| e["complete"] == true).count();
            ensure(
                fired.len() == expected.len() && dropped.is_empty() && completes == fired.len(),
                || format!("events: {summary:?}; dropped: {dropped:?}"),
            )
        }),
    ]
}

/// A post-session hook (and no event hook) is told what the session moved, long names included.
fn long_name_totals() -> Case {
    case("the post-session hook's totals with long names", || {
        let h = Harness::start("");
        let record = h.out_dir.join("totals");
        let hook = h.hook_script(
            "totals",
            &format!(
                "echo \"$SFTPD_FILES_UPLOADED $SFTPD_BYTES_UPLOADED $SFTPD_FILES_DOWNLOADED $SFTPD_BYTES_DOWNLOADED\" > {}",
                record.display()
            ),
        );
        h.write_config(&format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\npost_session = [\"{}\"]\npost_session_mode = \"wait\"\n",
            hook.display()
        ));
        let user = h.user();
        let up = [&b"./".repeat(650)[..], b"up.bin"].concat();
        let down = [&b"./".repeat(1900)[..], b"down.bin"].concat();
        fs::write(h.home(&user).join("down.bin"), vec![7u8; 70_000]).unwrap();
        let ops = serde_json::json!([
            ["put", hex::encode(&up), 100_000],
            ["get", hex::encode(&down)],
            ["put", "73686f72742e62696e", 5],
        ]);
        let steps = h.attack_steps(&user, Path::new("-"), &["ops", &ops.to_string()]);
        ensure(steps.iter().all(|(_, ok)| *ok), || format!("{steps:?}"))?;
        let totals = common::wait_until_opt(Duration::from_secs(15), || {
            fs::read_to_string(&record)
                .ok()
                .filter(|t| t.ends_with('\n'))
        })
        .unwrap_or_default();
        ensure(totals == "2 100005 1 70000\n", || {
            format!("post-session totals (files up, bytes up, files down, bytes down): {totals:?}")
        })
    })
}

/// Requests written ahead of their answers with handles guessed before sftp-server gave them,
/// and a request whose fields run past its length: the tap still counts what the guessed handle
/// moved, once, and the file of the unreadable request fires nothing. (The
/// malformed request is sent once the others are answered: sftp-server exits on it without
/// sending the answers it still holds, so the first file's event would depend on timing.)
fn pipelined_requests() -> Vec<Case> {
    let run = |malformed: bool| {
        let (h, record) = json_events_harness(&["upload"]);
        let user = h.user();
        let name = [&b"./".repeat(700)[..], b"pipelined.bin"].concat();
        let mut args = vec!["raw".to_owned(), hex::encode(&name)];
        if malformed {
            args.push("malformed".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let steps = h.attack_steps(&user, Path::new("-"), &args);
        ensure(steps.iter().all(|(_, ok)| *ok), || format!("{steps:?}"))?;
        h.wait_for_log_lines(1, &["session end", &format!("user={user} ")]);
        std::thread::sleep(Duration::from_millis(500));
        let events = recorded_events(&record);
        let whole = events
            .iter()
            .filter(|e| e["path_hex"] == hex::encode(&name) && e["bytes_written"] == 1000)
            .count();
        let dropped = h
            .log_messages()
            .iter()
            .filter(|m| m.contains("event dropped") && m.contains("event=close"))
            .count();
        let summary: Vec<String> = events
            .iter()
            .map(|e| format!("{} {}", e["event"], e["bytes_written"]))
            .collect();
        // The malformed open still creates a second file, open when sftp-server exits on it.
        // The wire decides: that OPEN cannot be read, so its file is no transfer the tap can
        // name and fires nothing (whether the loss is logged as dropped is not asserted:
        // sftp-server's forced close line no longer decides anything).
        ensure(
            whole == 1 && events.len() == 1 && (malformed || dropped == 0),
            || format!("events: {summary:?}; dropped closes: {dropped}"),
        )
    };
    vec![
        case(
            "writes to a handle guessed ahead of its answer",
            move || run(false),
        ),
        case("a request that runs past its length", move || run(true)),
    ]
}

/// An SSH `signal` request to the wrapper of an exec session: every session that logged its
/// start still logs its end and runs its post hook.
fn session_signals() -> Vec<Case> {
    let h = std::sync::Arc::new(Harness::start(""));
    let post = h.hook_script(
        "post-marker",
        &format!("touch {}/post-$SFTPD_USER", h.out_dir.display()),
    );
    h.write_config(&format!(
        "[hooks]\npost_session = [\"{}\"]\n",
        post.display()
    ));
    ["KILL", "USR1", "TERM", "HUP"]
        .into_iter()
        .map(|signal| {
            let h = std::sync::Arc::clone(&h);
            case(&format!("SIG{signal} through an exec session"), move || {
                let user = h.user();
                h.attack_steps(
                    &user,
                    Path::new("-"),
                    &["signal", common::SFTP_SERVER, signal],
                );
                let started = h
                    .log_text()
                    .lines()
                    .any(|l| l.contains("session start") && l.contains(&format!("user={user} ")));
                ensure(started, || "the session did not start".into())?;
                let end = common::wait_until_opt(Duration::from_secs(15), || {
                    let text = h.log_text();
                    text.lines()
                        .find(|l| l.contains("session end") && l.contains(&format!("user={user} ")))
                        .map(str::to_owned)
                });
                let marker = h.out_dir.join(format!("post-{user}"));
                common::wait_until_opt(Duration::from_secs(10), || marker.exists().then_some(()));
                ensure(end.is_some() && marker.exists(), || {
                    format!("session end: {end:?}, post hook ran: {}", marker.exists())
                })
            })
        })
        .collect()
}

/// The Match block shipped in packaging/, for every user of the harness (its Subsystem line is
/// the harness's own).
fn shipped_match_block() -> String {
    let snippet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/sshd_config.snippet"
    ))
    .unwrap();
    // ADVERSARIAL_NO_MATCH_BLOCK=1: to see the cases fail without the block.
    // Debian's stock sshd_config allows X11 forwarding, and agent forwarding is sshd's default:
    // the Match block must turn them off.
    let stock = "X11Forwarding yes\nAllowAgentForwarding yes\n";
    if std::env::var("ADVERSARIAL_NO_MATCH_BLOCK").is_ok() {
        return stock.to_owned();
    }
    stock.to_owned()
        + &snippet
            .lines()
            .filter(|l| !l.starts_with("Subsystem"))
            .map(|l| l.replace("Match Group sftp-partners", "Match User *"))
            .collect::<Vec<_>>()
            .join("\n")
}

/// A listener that records whether anything connected to it within `wait`.
fn connected_within(listener: &std::net::TcpListener, wait: Duration) -> bool {
    listener.set_nonblocking(true).unwrap();
    common::wait_until_opt(wait, || listener.accept().ok().map(|_| ())).is_some()
}

fn ssh_background(h: &Harness, user: &str, args: &[&str]) -> std::process::Child {
    Command::new("/usr/bin/ssh")
        .args(h.ssh_options())
        .args(args)
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sshd_settings() -> Vec<Case> {
    let h = std::sync::Arc::new(Harness::start_with("", &shipped_match_block()));
    let sshd_config = h.root().join("sshd_config");
    let mut cases = Vec::new();
    {
        let h = std::sync::Arc::clone(&h);
        let sshd_config = sshd_config.clone();
        cases.push(case(
            "--check-sshd passes the shipped Match block",
            move || {
                let user = h.user();
                let out = Command::new(&h.wrapper)
                    .args(["--check-sshd", &user, "--sshd-config"])
                    .arg(&sshd_config)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                ensure(out.status.success() && !text.contains("error:"), || {
                    text.into_owned()
                })
            },
        ));
    }
    cases.push(case(
        "--check-sshd names what a bare sshd_config allows",
        || {
            let bare = Harness::start("");
            let user = bare.user();
            let out = Command::new(&bare.wrapper)
                .args(["--check-sshd", &user, "--sshd-config"])
                .arg(bare.root().join("sshd_config"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            ensure(
                out.status.code() == Some(1)
                    && [
                        "AllowTcpForwarding",
                        "AllowStreamLocalForwarding",
                        "PermitTTY",
                        "PermitUserRC",
                    ]
                    .iter()
                    .all(|s| text.contains(s)),
                || text.into_owned(),
            )
        },
    ));
    {
        let h = std::sync::Arc::clone(&h);
        cases.push(case("ssh -L", move || {
            let user = h.user();
            let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let tport = target.local_addr().unwrap().port();
            let lport = common::free_port();
            let mut ssh = ssh_background(
                &h,
                &user,
                &["-N", "-L", &format!("{lport}:127.0.0.1:{tport}")],
            );
            let opened = common::wait_until_opt(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", lport)).ok()
            });
            let reached = opened.is_some() && connected_within(&target, Duration::from_secs(2));
            let _ = ssh.kill();
            let _ = ssh.wait();
            ensure(!reached, || {
                "the forwarded connection reached its target".into()
            })
        }));
    }
    {
        let h = std::sync::Arc::clone(&h);
        cases.push(case("ssh -D", move || {
            let user = h.user();
            let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let tport = target.local_addr().unwrap().port();
            let lport = common::free_port();
            let mut ssh = ssh_background(&h, &user, &["-N", "-D", &lport.to_string()]);
            let socks = common::wait_until_opt(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", lport)).ok()
            });
            if let Some(mut s) = socks {
                use std::io::{Read, Write};
                let _ = s.write_all(&[5, 1, 0]);
                let mut reply = [0u8; 2];
                let _ = s.read_exact(&mut reply);
                let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
                req.extend_from_slice(&tport.to_be_bytes());
                let _ = s.write_all(&req);
            }
            let reached = connected_within(&target, Duration::from_secs(2));
            let _ = ssh.kill();
            let _ = ssh.wait();
            ensure(!reached, || {
                "the SOCKS connection reached its target".into()
            })
        }));
    }
    {
        let h = std::sync::Arc::clone(&h);
        cases.push(case("ssh -R", move || {
            let user = h.user();
            let rport = common::free_port();
            let out = Command::new("timeout")
                .args(["20", "/usr/bin/ssh"])
                .args(h.ssh_options())
                .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R"])
                .arg(format!("{rport}:127.0.0.1:9"))
                .arg(format!("{user}@127.0.0.1"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let listening = std::net::TcpStream::connect(("127.0.0.1", rport)).is_ok();
            ensure(out.status.code() == Some(255) && !listening, || {
                format!(
                    "status {:?}, listening {listening}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        }));
    }
    for (name, flag, refusal) in [
        ("ssh -X", "-X", "X11 forwarding request failed"),
        ("ssh -A", "-A", "agent"),
        ("ssh -tt", "-tt", "PTY allocation request failed"),
    ] {
        let h = std::sync::Arc::clone(&h);
        cases.push(case(name, move || {
            let user = h.user();
            let agent_dir = tempfile::tempdir().unwrap();
            let agent_sock = agent_dir.path().join("agent");
            let mut agent = Command::new("ssh-agent")
                .args(["-D", "-a"])
                .arg(&agent_sock)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            common::wait_until_opt(Duration::from_secs(5), || agent_sock.exists().then_some(()));
            let uid = nix::unistd::User::from_name(&user).unwrap().unwrap().uid;
            let agent_socket_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut client = Command::new("timeout")
                .args(["20", "/usr/bin/ssh", "-v", flag])
                .args(h.ssh_options())
                .arg(format!("{user}@127.0.0.1"))
                .arg(common::SFTP_SERVER)
                .env("DISPLAY", "127.0.0.1:99")
                .env("SSH_AUTH_SOCK", &agent_sock)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // While the session runs: does sshd hold an agent socket for this user in /tmp?
            let end = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < end {
                use std::os::unix::fs::MetadataExt;
                let found = fs::read_dir("/tmp")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| {
                        e.file_name().to_string_lossy().starts_with("ssh-")
                            && e.metadata().is_ok_and(|m| m.uid() == uid.as_raw())
                    });
                if found {
                    agent_socket_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(client.stdin.take());
            let out = client.wait_with_output().unwrap();
            let _ = agent.kill();
            let _ = agent.wait();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let refused = match flag {
                // The client does not ask for a reply to an agent request; what shows sshd took it
                // is the agent socket it makes for the session (checked while it runs, below).
                "-A" => !agent_socket_seen.load(std::sync::atomic::Ordering::SeqCst),
                _ => stderr.contains(refusal),
            };
            ensure(refused, || {
                stderr
                    .lines()
                    .filter(|l| !l.starts_with("debug1: Reading") && !l.contains("kex"))
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }));
    }
    cases
}

/// `--check-config` (and the shell, which loads the config the same way) on configs the partner
/// could swap, rename away or block on.
fn config_trust() -> Vec<Case> {
    let check = |path: &Path| {
        Command::new("timeout")
            .arg("10")
            .arg(env!("CARGO_BIN_EXE_sftpd-wrapper"))
            .arg("--check-config")
            .arg("--config")
            .arg(path)
            .output()
            .unwrap()
    };
    let mut cases = Vec::new();
    cases.push(case(
        "a config in a directory the partner can write, renamed away over SFTP",
        || {
            let h = Harness::start("");
            let user = h.user();
            let dir = h.home(&user).join("conf");
            fs::create_dir(&dir).unwrap();
            Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&dir)
                .status()
                .unwrap();
            let cfg = dir.join("sftpd-wrapper.toml");
            fs::write(&cfg, "[hooks]\ntimeout_secs = 5\n").unwrap();
            let out = check(&cfg);
            let refused = out.status.code() == Some(1)
                && String::from_utf8_lossy(&out.stderr).contains("conf");
            // What the partner can then do to it.
            let local = tempfile::tempdir().unwrap();
            h.sftp_ok(
                &user,
                "rename conf/sftpd-wrapper.toml conf/gone\n",
                local.path(),
            );
            ensure(refused && !cfg.exists(), || {
                format!(
                    "--check-config said: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        },
    ));
    cases.push(case("a dangling symbolic link", || {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("sftpd-wrapper.toml");
        std::os::unix::fs::symlink(dir.path().join("renamed-away"), &link).unwrap();
        let out = check(&link);
        ensure(
            out.status.code() == Some(1)
                && String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
            || String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }));
    cases.push(case("a FIFO in the config's place", || {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("sftpd-wrapper.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let out = check(&fifo);
        ensure(
            out.status.code() == Some(1)
                && String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
            || format!("{:?} {}", out.status, String::from_utf8_lossy(&out.stderr)),
        )
    }));
    cases.push(case("a world-writable directory above the config", || {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let cfg = open.join("sftpd-wrapper.toml");
        fs::write(&cfg, "").unwrap();
        let out = check(&cfg);
        ensure(out.status.code() == Some(1), || {
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }));
    cases
}

/// The event-hook queue: a slow hook and thousands of events never make the client wait in
/// detach mode, the queued work is bounded and every dropped event is in the log; long and
/// non-UTF-8 names fire their hooks (JSON on stdin included).
fn hook_queue() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.push(case(
        "4,000 events, a slow hook, detach mode: the client does not wait",
        || {
            let h = Harness::start("");
            let slow = h.hook_script("slow-mkdir", "sleep 1");
            let post = h.hook_script("post", &format!("touch {}/post-ran", h.out_dir.display()));
            h.write_config(&format!(
                "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_mkdir = [\"{}\"]\npost_session = [\"{}\"]\ndrain_secs = 3\ntimeout_secs = 5\n",
                slow.display(),
                post.display()
            ));
            let user = h.user();
            let local = tempfile::tempdir().unwrap();
            let batch: String = (0..4000).map(|i| format!("mkdir d{i}\n")).collect();
            let start = std::time::Instant::now();
            h.sftp_ok(&user, &batch, local.path());
            let end_line = h.wait_for_log(&["session end", &format!("user={user} ")]);
            let client_secs = start.elapsed().as_secs_f64();
            // Hooks run one a second while the session lasts, then for at most drain_secs; the
            // post hook runs after them.
            let post_ran = common::wait_until_opt(Duration::from_secs(15), || {
                h.out_dir.join("post-ran").exists().then_some(())
            })
            .is_some();
            std::thread::sleep(Duration::from_millis(500));
            let text = h.log_text();
            let ran = text
                .lines()
                .filter(|l| l.contains("hook=on_mkdir") && l.contains(&format!("user={user} ")))
                .count();
            let drained = text
                .lines()
                .filter(|l| l.contains("event dropped") && l.contains("reason=drain_timeout"))
                .count();
            let full: usize = common::field(&end_line, "dropped_events")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            ensure(
                post_ran
                    && client_secs < 60.0
                    && (ran as f64) <= client_secs + 3.0 + 2.0
                    && ran + drained + full == 4000,
                || {
                    format!(
                        "client {client_secs:.1} s, post hook ran {post_ran}, hooks run {ran}, drained {drained}, dropped when full {full}"
                    )
                },
            )
        },
    ));
    cases.push(case(
        "460-byte, 215 x \\xff and JSON-on-stdin names fire once each",
        || {
            let h = Harness::start("");
            let record = h.out_dir.join("events");
            let hook = h.hook_script(
                "record",
                &format!("cat > /dev/null; printf '%s\\n' \"$SFTPD_PATH\" | wc -c >> {}", record.display()),
            );
            h.write_config(&format!(
                "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{}\"]\nevent_format = \"json\"\n",
                hook.display()
            ));
            let user = h.user();
            let long = format!("{}/{}", "d".repeat(200), "f".repeat(250));
            let ff = vec![0xffu8; 215];
            let steps = h.attack_steps(
                &user,
                Path::new("-"),
                &["put", &hex::encode(long.as_bytes()), &hex::encode(&ff)],
            );
            ensure(steps.iter().all(|(_, ok)| *ok), || format!("{steps:?}"))?;
            let got = common::wait_until_opt(Duration::from_secs(15), || {
                fs::read_to_string(&record)
                    .ok()
                    .filter(|t| t.lines().count() >= 2)
            });
            std::thread::sleep(Duration::from_millis(500));
            let lens: Vec<usize> = fs::read_to_string(&record)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            // sftp-server logs the names as the client sent them (relative here), plus the newline
            // printf adds.
            let mut want = vec![long.len() + 1, ff.len() + 1];
            want.sort();
            let mut lens_sorted = lens.clone();
            lens_sorted.sort();
            ensure(got.is_some() && lens_sorted == want, || {
                format!("hook saw path lengths {lens:?}, expected {want:?}")
            })
        },
    ));
    cases
}

/// 200 sessions at once (20 partners, 10 each): one `session start` and one `session end` per
/// session id, and no process of those partners left afterwards.
fn concurrency() -> Vec<Case> {
    vec![case("200 concurrent sessions", || {
        let h = Harness::start_with("", "MaxStartups 300\nMaxSessions 20");
        let users: Vec<String> = (0..20).map(|_| h.user()).collect();
        let local = tempfile::tempdir().unwrap();
        let mut clients = Vec::new();
        for i in 0..200 {
            let user = &users[i % users.len()];
            let mut cmd = h.sftp_command(user, "-", local.path());
            let child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            clients.push(child);
            std::thread::sleep(Duration::from_millis(10));
        }
        let ours = |l: &&str| users.iter().any(|u| l.contains(&format!("user={u} ")));
        let started = common::wait_until_opt(Duration::from_secs(90), || {
            let text = h.log_text();
            let n = text
                .lines()
                .filter(|l| l.contains("sftp-server started"))
                .filter(ours)
                .count();
            (n >= 200).then_some(n)
        });
        for mut c in clients {
            if let Some(mut stdin) = c.stdin.take() {
                use std::io::Write;
                let _ = stdin.write_all(b"pwd\n");
            }
            let _ = c.wait();
        }
        let ended = common::wait_until_opt(Duration::from_secs(60), || {
            let text = h.log_text();
            let n = text
                .lines()
                .filter(|l| l.contains("session end"))
                .filter(ours)
                .count();
            (n >= 200).then_some(n)
        });
        let text = h.log_text();
        let mut per_sid: std::collections::HashMap<String, (u32, u32)> = Default::default();
        for line in text.lines().filter(ours) {
            let Some(sid) = common::field(line, "sid") else {
                continue;
            };
            let e = per_sid.entry(sid.to_owned()).or_default();
            if line.contains("session start") {
                e.0 += 1;
            }
            if line.contains("session end") {
                e.1 += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let left: Vec<String> = users
            .iter()
            .filter(|u| {
                // Live processes only: this machine's init does not reap sshd's orphaned
                // zombies, which are not the wrapper's.
                Command::new("ps")
                    .args(["-o", "stat=", "-u", u])
                    .output()
                    .is_ok_and(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .any(|st| !st.trim_start().starts_with('Z'))
                    })
            })
            .cloned()
            .collect();
        ensure(
            started.is_some()
                && ended.is_some()
                && per_sid.len() == 200
                && per_sid.values().all(|&(s, e)| s == 1 && e == 1)
                && left.is_empty(),
            || {
                format!(
                    "started {started:?}, ended {ended:?}, {} session ids, bad {:?}, processes left for {left:?}",
                    per_sid.len(),
                    per_sid
                        .iter()
                        .filter(|(_, v)| **v != (1, 1))
                        .take(5)
                        .collect::<Vec<_>>()
                )
            },
        )
    })]
}

/// Peak resident memory of `pid`, in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Capture mode while the syslog daemon is stalled (SIGSTOP) and the partner keeps logging:
/// the supervisor's peak memory grows by less than 1 MiB (a queue as deep as the old one,
/// 100,000 lines, grew it by 3.5 MiB in the same test; sftp-server now waits instead), and once
/// the daemon runs again every line arrives.
fn syslog_stall() -> Vec<Case> {
    vec![case("30,000 log lines while rsyslogd is stopped", || {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let h = Harness::start("[sftp_server]\nlog_mode = \"capture\"\n");
        let user = h.user();
        let local = tempfile::tempdir().unwrap();
        let (mut client, supervisor, sftp_pid) = h.open_session(&user, local.path(), &[]);
        let before = vm_hwm_kib(supervisor);
        let rsyslogd = Pid::from_raw(h.rsyslogd_pid().expect("rsyslogd runs"));
        kill(rsyslogd, Signal::SIGSTOP).unwrap();
        let mut stdin = client.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let batch: String = (0..15_000)
                .map(|i| format!("mkdir d{i}\nrmdir d{i}\n"))
                .collect();
            let _ = stdin.write_all(batch.as_bytes());
        });
        std::thread::sleep(Duration::from_secs(6));
        let stalled = vm_hwm_kib(supervisor);
        kill(rsyslogd, Signal::SIGCONT).unwrap();
        let _ = writer.join();
        let _ = client.wait();
        let end = h.wait_for_log(&["session end", &format!("user={user} ")]);
        let mkdirs = common::wait_until_opt(Duration::from_secs(30), || {
            let n = h
                .log_text()
                .lines()
                .filter(|l| l.contains(&format!("sftp-server[{sftp_pid}]: mkdir name")))
                .count();
            (n == 15_000).then_some(n)
        });
        let grew = stalled.saturating_sub(before);
        ensure(
            grew < 1024 && mkdirs.is_some() && !end.contains("dropped_log_lines"),
            || {
                format!(
                    "peak memory grew {grew} KiB while stalled; all mkdir lines logged: {}; {end}",
                    mkdirs.is_some()
                )
            },
        )
    })]
}

/// tests/attacks/sftp_wire_attack.py: raw SFTP over paramiko, for the wire-truth classes.
const WIRE_ATTACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/attacks/sftp_wire_attack.py"
);

/// The hook that records every `SFTPD_*` variable it was given (and its JSON stdin) as a line.
const RECORDER: &str = include_str!("attacks/record_event.py");

/// The event hooks of the six kinds every capture-mode config knows.
const FILE_OPERATIONS: [&str; 6] = ["upload", "download", "remove", "rename", "mkdir", "rmdir"];

/// A harness whose event hooks (and post-session hook, which the client waits for) record what
/// they were told, through tests/attacks/record_event.py.
struct Recorded {
    h: Harness,
    events: PathBuf,
    post: PathBuf,
}

/// One step of a wire attack: its name, whether sftp-server answered OK, and its detail.
type Step = (String, bool, String);

impl Recorded {
    /// Capture mode with hooks for `kinds` of event, or (`capture` false) syslog mode with the
    /// post-session hook alone.
    fn start(capture: bool, kinds: &[&str]) -> Recorded {
        let h = Harness::start("");
        let recorder = h.root().join("hooks/record_event.py");
        fs::write(&recorder, RECORDER).unwrap();
        fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).unwrap();
        let events = h.out_dir.join("wire-events");
        let post = h.out_dir.join("wire-post");
        let argv = |file: &Path| format!("[\"{}\", \"{}\"]", recorder.display(), file.display());
        let hooks: String = kinds
            .iter()
            .map(|k| format!("on_{k} = {}\n", argv(&events)))
            .collect();
        let mode = if capture {
            "log_mode = \"capture\"\n"
        } else {
            ""
        };
        h.write_config(&format!(
            "[sftp_server]\n{mode}[hooks]\nevent_format = \"json\"\n{hooks}post_session = {}\npost_session_mode = \"wait\"\n",
            argv(&post)
        ));
        Recorded { h, events, post }
    }

    fn command(&self, user: &str, args: &[&str], timeout_secs: u32) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(timeout_secs.to_string())
            .args(["/usr/bin/python3", WIRE_ATTACK])
            .arg(self.h.port.to_string())
            .arg(user)
            .arg(&self.h.client_key)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the wire attack `args` as `user` to its end; its steps.
    fn attack(&self, user: &str, args: &[&str]) -> Vec<Step> {
        let out = self.command(user, args, 120).output().expect("python3");
        assert!(
            out.status.success(),
            "the attack script failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        steps_of(&out.stdout)
    }

    /// Starts the wire attack `args` as `user` in the background.
    fn spawn(&self, user: &str, args: &[&str], timeout_secs: u32) -> std::process::Child {
        self.command(user, args, timeout_secs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3")
    }

    /// Waits for `user`'s session end and its post-session hook (which runs after the event
    /// hooks); the events recorded, the post hook's record and the `session end` line.
    fn finish(&self, user: &str) -> (Vec<serde_json::Value>, serde_json::Value, String) {
        let end = session_end(&self.h, user);
        let post = common::wait_until_opt(Duration::from_secs(30), || {
            fs::read_to_string(&self.post)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned))
                .and_then(|l| serde_json::from_str(&l).ok())
        })
        .unwrap_or(serde_json::Value::Null);
        std::thread::sleep(Duration::from_millis(300));
        let events = fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (events, post, end)
    }

    /// The transfers `sftpd-report` stores from this harness's log.
    fn report_transfers(&self) -> Vec<serde_json::Value> {
        let db = self.h.out_dir.join("wire.db");
        common::ingest(db.to_str().unwrap(), &[&self.h.log_path]);
        common::report_json(db.to_str().unwrap(), &["transfers"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn steps_of(stdout: &[u8]) -> Vec<Step> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["step"].as_str().unwrap_or_default().to_owned(),
                v["ok"].as_bool().unwrap_or(false),
                v["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The steps that answered OK are exactly those named in `ok`, and every step of `all` ran.
fn steps_as_expected(steps: &[Step], all: usize, ok: &[&str]) -> Outcome {
    let wrong: Vec<&Step> = steps
        .iter()
        .filter(|(name, worked, _)| *worked != ok.contains(&name.as_str()))
        .collect();
    ensure(steps.len() == all && wrong.is_empty(), || {
        format!("the client's steps did not go as planned: {steps:?}")
    })
}

/// `SFTPD_<key>` as the hook got it.
fn var(record: &serde_json::Value, key: &str) -> String {
    record["env"][format!("SFTPD_{key}")]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `SFTPD_<key>`'s exact bytes, hex-encoded.
fn var_hex(record: &serde_json::Value, key: &str) -> String {
    record["hex"][format!("SFTPD_{key}")]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn var_u64(record: &serde_json::Value, key: &str) -> Option<u64> {
    var(record, key).parse().ok()
}

/// The events, one short line each, for failure messages.
fn summary(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let short = |key: &str| {
                let v = var(e, key);
                if v.len() > 48 {
                    format!("…{} ({} bytes)", &v[v.len() - 24..], v.len())
                } else {
                    v
                }
            };
            format!(
                "{} {:?} target={:?} kind={} uploaded_as={:?} read={} written={} complete={}",
                var(e, "EVENT"),
                short("PATH"),
                short("TARGET"),
                var(e, "LINK_KIND"),
                short("UPLOADED_AS"),
                var(e, "BYTES_READ"),
                var(e, "BYTES_WRITTEN"),
                var(e, "COMPLETE")
            )
        })
        .collect()
}

/// The events of `kind` for the name `path`.
fn events_for<'a>(
    events: &'a [serde_json::Value],
    kind: &str,
    path: &[u8],
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| var(e, "EVENT") == kind && var_hex(e, "PATH") == hex::encode(path))
        .collect()
}

/// The post-session hook's session totals: files and bytes up, files and bytes down, failed
/// operations.
fn post_totals(post: &serde_json::Value) -> [Option<u64>; 5] {
    [
        "FILES_UPLOADED",
        "BYTES_UPLOADED",
        "FILES_DOWNLOADED",
        "BYTES_DOWNLOADED",
        "FAILED_OPERATIONS",
    ]
    .map(|k| var_u64(post, k))
}

/// A file of `len` bytes in `user`'s home, owned by `user`.
fn partner_file(h: &Harness, user: &str, name: &str, len: usize) -> PathBuf {
    let path = h.home(user).join(name);
    fs::write(&path, vec![b'p'; len]).unwrap();
    Command::new("chown")
        .arg(format!("{user}:"))
        .arg(&path)
        .status()
        .unwrap();
    path
}

/// Finding 1: sftp-server logs a rename, remove, mkdir or rmdir before it tries it; capture mode
/// fired on that line, so refused operations fired events, and a `.filepart` renamed onto
/// another partner's file (refused) fired an upload under that partner's name.
fn refused_operations() -> Vec<Case> {
    vec![case(
        "a .filepart renamed onto another partner's file; remove, rmdir, rename and mkdir refused",
        || {
            let r = Recorded::start(true, &FILE_OPERATIONS);
            let user = r.h.user();
            let other = r.h.user();
            let payroll = partner_file(&r.h, &other, "payroll.csv", 12);
            fs::write(r.h.home(&user).join("exists.xml"), "old data").unwrap();
            let steps = r.attack(
                &user,
                &[
                    "refused",
                    &hex::encode(payroll.as_os_str().as_encoded_bytes()),
                ],
            );
            steps_as_expected(
                &steps,
                13,
                &[
                    "put evil.filepart",
                    "put exists.xml.filepart",
                    "put fresh.xml.filepart",
                    "rename fresh.xml.filepart to fresh.xml",
                ],
            )?;
            let (events, _, _) = r.finish(&user);
            // The one rename that worked fires its upload under both names, then itself.
            let fresh = events_for(&events, "upload", b"fresh.xml");
            let renamed = events_for(&events, "rename", b"fresh.xml.filepart");
            let others: Vec<&serde_json::Value> = events
                .iter()
                .filter(|e| var(e, "EVENT") != "upload" && var(e, "EVENT") != "rename")
                .collect();
            let evil = events_for(&events, "upload", b"evil.filepart");
            let curl = events_for(&events, "upload", b"exists.xml.filepart");
            ensure(
                others.is_empty()
                    && events.len() == 4
                    && fresh.len() == 1
                    && var(fresh[0], "UPLOADED_AS") == "fresh.xml.filepart"
                    && var_u64(fresh[0], "BYTES_WRITTEN") == Some(300)
                    && renamed.len() == 1
                    && var(renamed[0], "TARGET") == "fresh.xml"
                    && evil.len() == 1
                    && var_u64(evil[0], "BYTES_WRITTEN") == Some(123)
                    && curl.len() == 1
                    && var_u64(curl[0], "BYTES_WRITTEN") == Some(200)
                    && fs::read(&payroll).unwrap() == vec![b'p'; 12],
                || format!("events: {:?}", summary(&events)),
            )
        },
    )]
}

/// Finding 2: the tap kept each pending request's handle (up to 256 KiB) until its answer
/// passed; a client that reads no answers and keeps sending READs with 250 KB handles grew the
/// supervisor without limit. Its peak RSS must stay under 16 MiB.
fn reply_flood() -> Vec<Case> {
    vec![case(
        "READs with 250 KB handles for 20 s, no answer read: the supervisor's peak RSS",
        || {
            // Hooks configured: the build before issue 26 runs the tap only then.
            let r = Recorded::start(true, &["upload"]);
            let user = r.h.user();
            let offset = r.h.log_len();
            partner_file(&r.h, &user, "big.bin", 1 << 20);
            let mut client = r.spawn(
                &user,
                &["flood", "20", "32768", &hex::encode("big.bin")],
                60,
            );
            let line =
                r.h.wait_for_log_after(offset, &["sftp-server started", &format!("user={user} ")]);
            let sftp_pid: i32 = common::field(&line, "sftp_pid").unwrap().parse().unwrap();
            // The supervisor is sftp-server's parent.
            let supervisor = fs::read_to_string(format!("/proc/{sftp_pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or_else(|| common::syslog_pid(&line).unwrap());
            let comm = fs::read_to_string(format!("/proc/{supervisor}/comm")).unwrap_or_default();
            let at_start = vm_hwm_kib(supervisor);
            let mut peak = 0;
            let end = std::time::Instant::now() + Duration::from_secs(90);
            let user_field = format!("user={user} ");
            while std::time::Instant::now() < end {
                peak = peak.max(vm_hwm_kib(supervisor));
                let exited = client.try_wait().ok().flatten().is_some();
                if exited
                    && r.h
                        .log_text()
                        .lines()
                        .any(|l| l.contains("session end") && l.contains(&user_field))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = client.kill();
            let out = client.wait_with_output().unwrap();
            let steps = steps_of(&out.stdout);
            println!(
                "reply flood: peak RSS (VmHWM) of the supervisor {supervisor} ({}): {at_start} KiB at the start, {peak} KiB at the end; client: {steps:?}",
                comm.trim()
            );
            ensure(
                comm.trim() == "sftpd-wrapper" && peak > 0 && peak < 16 * 1024,
                || {
                    format!(
                        "peak RSS of the supervisor ({}) {peak} KiB; client: {steps:?} {}",
                        comm.trim(),
                        String::from_utf8_lossy(&out.stderr)
                    )
                },
            )
        },
    )]
}

/// Finding 3: log lines carry no handle, so a `close` was paired with the first open of the
/// same name. The writer closed first must be billed with its bytes.
fn wrong_close() -> Vec<Case> {
    vec![case(
        "open for reading, open for writing, 1,015,808 bytes, the writer closed first",
        || {
            let r = Recorded::start(true, &FILE_OPERATIONS);
            let user = r.h.user();
            partner_file(&r.h, &user, "paired.bin", 10);
            let steps = r.attack(&user, &["wrong_close", &hex::encode("paired.bin")]);
            ensure(steps.len() == 4 && steps.iter().all(|s| s.1), || {
                format!("{steps:?}")
            })?;
            let (events, post, _) = r.finish(&user);
            let uploads = events_for(&events, "upload", b"paired.bin");
            ensure(
                events.len() == 1
                    && uploads.len() == 1
                    && var_u64(uploads[0], "BYTES_WRITTEN") == Some(1_015_808)
                    && var(uploads[0], "COMPLETE") == "1"
                    && post_totals(&post)[..4] == [Some(1), Some(1_015_808), Some(0), Some(0)],
                || {
                    format!(
                        "events: {:?}; post-session totals {:?}",
                        summary(&events),
                        post_totals(&post)
                    )
                },
            )
        },
    )]
}

/// Finding 4: a write that fails on a short-named file (its failure status ties to no open in
/// the log) left the upload complete.
fn failed_writes() -> Vec<Case> {
    vec![case("a write at an offset lseek refuses", || {
        let r = Recorded::start(true, &FILE_OPERATIONS);
        let user = r.h.user();
        let steps = r.attack(&user, &["bad_write", &hex::encode("badoff.bin")]);
        steps_as_expected(&steps, 4, &["open", "write 5 bytes", "close"])?;
        let (events, post, _) = r.finish(&user);
        let uploads = events_for(&events, "upload", b"badoff.bin");
        ensure(
            events.len() == 1
                && uploads.len() == 1
                && var(uploads[0], "COMPLETE") == "0"
                && var_u64(uploads[0], "BYTES_WRITTEN") == Some(5)
                && post_totals(&post) == [Some(1), Some(5), Some(0), Some(0), Some(1)],
            || {
                format!(
                    "events: {:?}; post-session totals {:?}",
                    summary(&events),
                    post_totals(&post)
                )
            },
        )
    })]
}

/// Findings 5 and 9: `copy-data` (a server-side copy) moved no byte over the wire: no upload,
/// no download, nothing in the byte totals or the report, and one `copy` event.
fn server_side_copy() -> Vec<Case> {
    let copy_data = |with_copy_hook: bool| {
        move || {
            let kinds: Vec<&str> = if with_copy_hook {
                FILE_OPERATIONS.iter().copied().chain(["copy"]).collect()
            } else {
                FILE_OPERATIONS.to_vec()
            };
            let r = Recorded::start(true, &kinds);
            let user = r.h.user();
            partner_file(&r.h, &user, "ten.bin", 10);
            let steps = r.attack(
                &user,
                &[
                    "copy",
                    &hex::encode("ten.bin"),
                    &hex::encode("copied.bin"),
                    "50",
                    "65536",
                ],
            );
            ensure(steps.len() == 4 && steps.iter().all(|s| s.1), || {
                format!("{steps:?}")
            })?;
            let (events, post, _) = r.finish(&user);
            let totals = post_totals(&post);
            ensure(
                totals[..4] == [Some(0), Some(0), Some(0), Some(0)]
                    && events.iter().all(|e| var(e, "EVENT") == "copy"),
                || {
                    format!(
                        "events: {:?}; post-session totals {totals:?}",
                        summary(&events)
                    )
                },
            )?;
            if !with_copy_hook {
                let rows = r.report_transfers();
                let billed: u64 = rows
                    .iter()
                    .map(|t| {
                        t["bytes_read"].as_u64().unwrap_or(0)
                            + t["bytes_written"].as_u64().unwrap_or(0)
                    })
                    .sum();
                return ensure(billed == 0, || {
                    format!("the report bills {billed} bytes: {rows:?}")
                });
            }
            let copies = events_for(&events, "copy", b"copied.bin");
            ensure(
                events.len() == 1
                    && copies.len() == 1
                    && var_hex(copies[0], "TARGET") == hex::encode("ten.bin")
                    && var_u64(copies[0], "BYTES_WRITTEN").unwrap_or(0) == 0
                    && var_u64(copies[0], "BYTES_READ").unwrap_or(0) == 0,
                || format!("events: {:?}", summary(&events)),
            )
        }
    };
    let sftp_cp = |with_copy_hook: bool| {
        move || {
            let kinds: Vec<&str> = if with_copy_hook {
                FILE_OPERATIONS.iter().copied().chain(["copy"]).collect()
            } else {
                FILE_OPERATIONS.to_vec()
            };
            let r = Recorded::start(true, &kinds);
            let user = r.h.user();
            partner_file(&r.h, &user, "src.bin", 1 << 20);
            let local = tempfile::tempdir().unwrap();
            let out = r.h.sftp(&user, "cp src.bin dst.bin\n", local.path());
            ensure(out.status.success(), || {
                format!("sftp cp: {}", String::from_utf8_lossy(&out.stderr))
            })?;
            let (events, post, _) = r.finish(&user);
            let totals = post_totals(&post);
            ensure(
                totals[..4] == [Some(0), Some(0), Some(0), Some(0)]
                    && events.iter().all(|e| var(e, "EVENT") == "copy"),
                || {
                    format!(
                        "events: {:?}; post-session totals {totals:?}",
                        summary(&events)
                    )
                },
            )?;
            if !with_copy_hook {
                return Ok(());
            }
            // OpenSSH's sftp sends absolute names.
            ensure(
                events.len() == 1
                    && var(&events[0], "PATH").ends_with("/dst.bin")
                    && var(&events[0], "TARGET").ends_with("/src.bin"),
                || format!("events: {:?}", summary(&events)),
            )
        }
    };
    let copy_then_read = || {
        let r = Recorded::start(true, &FILE_OPERATIONS);
        let user = r.h.user();
        partner_file(&r.h, &user, "empty.bin", 0);
        partner_file(&r.h, &user, "invoice-42.xml", 54_321);
        let steps = r.attack(
            &user,
            &[
                "copy_read",
                &hex::encode("empty.bin"),
                &hex::encode("invoice-42.xml"),
            ],
        );
        ensure(steps.len() == 5 && steps.iter().all(|s| s.1), || {
            format!("{steps:?}")
        })?;
        let (events, post, _) = r.finish(&user);
        let totals = post_totals(&post);
        let downloads = events_for(&events, "download", b"invoice-42.xml");
        ensure(
            totals[2..4] == [Some(1), Some(54_321)]
                && downloads.len() == 1
                && var_u64(downloads[0], "BYTES_READ") == Some(54_321),
            || {
                format!(
                    "events: {:?}; post-session totals {totals:?}",
                    summary(&events)
                )
            },
        )?;
        let rows = r.report_transfers();
        let billed: Vec<_> = rows
            .iter()
            .filter(|t| t["direction"] == "download" && t["bytes_read"] == 54_321)
            .collect();
        ensure(billed.len() == 1, || format!("the report: {rows:?}"))
    };
    vec![
        case(
            "copy-data of nothing into a file, then a read of all of it: a download, billed",
            copy_then_read,
        ),
        case(
            "50 copy-data of 65,536 bytes from a 10-byte file: nothing billed",
            copy_data(false),
        ),
        case(
            "50 copy-data of 65,536 bytes from a 10-byte file: one copy event",
            copy_data(true),
        ),
        case("OpenSSH sftp cp of 1 MiB: nothing billed", sftp_cp(false)),
        case("OpenSSH sftp cp of 1 MiB: one copy event", sftp_cp(true)),
        case(
            "copy-data to the end from a source name of 961 bytes: one copy event",
            || {
                let kinds: Vec<&str> = FILE_OPERATIONS.iter().copied().chain(["copy"]).collect();
                let r = Recorded::start(true, &kinds);
                let user = r.h.user();
                partner_file(&r.h, &user, "padded-src.bin", 1 << 20);
                let src = [&b"./".repeat(473)[..], b"padded-src.bin"].concat();
                let steps = r.attack(
                    &user,
                    &[
                        "copy",
                        &hex::encode(&src),
                        &hex::encode("from-padded.bin"),
                        "1",
                        "0",
                    ],
                );
                ensure(steps.len() == 4 && steps.iter().all(|s| s.1), || {
                    format!("{steps:?}")
                })?;
                let (events, post, _) = r.finish(&user);
                let totals = post_totals(&post);
                let copies = events_for(&events, "copy", b"from-padded.bin");
                ensure(
                    totals[..4] == [Some(0), Some(0), Some(0), Some(0)]
                        && events.len() == 1
                        && copies.len() == 1
                        && var_hex(copies[0], "TARGET") == hex::encode(&src),
                    || {
                        format!(
                            "events: {:?}; post-session totals {totals:?}",
                            summary(&events)
                        )
                    },
                )
            },
        ),
    ]
}

/// Finding 6: a WRITE whose handle was longer than the 277 bytes the tap kept made it stop
/// following; the long-named uploads after it fired nothing.
fn handle_length() -> Vec<Case> {
    vec![case(
        "WRITEs with 300- and 250,000-byte handles, then long and short uploads",
        || {
            let r = Recorded::start(true, &FILE_OPERATIONS);
            let user = r.h.user();
            let long = [&b"./".repeat(700)[..], b"after-long.bin"].concat();
            let steps = r.attack(
                &user,
                &[
                    "blind",
                    &hex::encode(&long),
                    &hex::encode("after-short.bin"),
                ],
            );
            steps_as_expected(&steps, 4, &["put the long name", "put the short name"])?;
            let (events, post, _) = r.finish(&user);
            let up_long = events_for(&events, "upload", &long);
            let up_short = events_for(&events, "upload", b"after-short.bin");
            let dropped: Vec<String> =
                r.h.log_messages()
                    .into_iter()
                    .filter(|m| m.contains("event dropped"))
                    .collect();
            ensure(
                events.len() == 2
                    && up_long.len() == 1
                    && var_u64(up_long[0], "BYTES_WRITTEN") == Some(100_000)
                    && var(up_long[0], "COMPLETE") == "1"
                    && up_short.len() == 1
                    && var_u64(up_short[0], "BYTES_WRITTEN") == Some(5_000)
                    && post_totals(&post)[..2] == [Some(2), Some(105_000)]
                    && dropped.is_empty(),
                || {
                    format!(
                        "events: {:?}; post-session totals {:?}; dropped: {dropped:?}",
                        summary(&events),
                        post_totals(&post)
                    )
                },
            )
        },
    )]
}

/// Sends SIGCONT to a stopped process when dropped, so a failed case never leaves it stopped.
struct Resume(nix::unistd::Pid);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// Finding 7: with syslog slow the log reader lags behind the tap; the tap fired a long-named
/// close, stopped following, and the reader later met the same file's whole close line and
/// fired it again. Each file fires exactly once.
fn lagging_log() -> Vec<Case> {
    vec![case(
        "uploads of names of 13 to 1,309 bytes while rsyslogd is stopped",
        || {
            use nix::sys::signal::{Signal, kill};
            let r = Recorded::start(true, &["upload"]);
            let user = r.h.user();
            // Names whose close message is whole (under 1,020 characters) though the tap
            // followed them (their longest close message would not be), a short and a long one.
            let names: Vec<Vec<u8>> = [6usize, 470, 475, 480, 485, 650]
                .iter()
                .enumerate()
                .map(|(i, &k)| [&b"./".repeat(k)[..], format!("lag{i}.bin").as_bytes()].concat())
                .collect();
            let rsyslogd = nix::unistd::Pid::from_raw(r.h.rsyslogd_pid().expect("rsyslogd runs"));
            kill(rsyslogd, Signal::SIGSTOP).unwrap();
            let resume = Resume(rsyslogd);
            // 1,100 lines: more than the forwarding queue (1,024) and the syslog socket's
            // backlog hold, far fewer than sftp-server's stderr socket then still takes.
            let mut args = vec!["lagging".to_owned(), "550".to_owned()];
            args.extend(names.iter().map(hex::encode));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut client = r.spawn(&user, &args, 120);
            // With the log reader stalled and sftp-server not (its stderr socket still has room),
            // the client finishes before syslog runs again.
            let before_resume = common::wait_until_opt(Duration::from_secs(20), || {
                client.try_wait().ok().flatten()
            })
            .is_some();
            drop(resume);
            let out = client.wait_with_output().unwrap();
            let steps = steps_of(&out.stdout);
            ensure(steps.len() == 2 + 2 * names.len(), || {
                format!("{steps:?} {}", String::from_utf8_lossy(&out.stderr))
            })?;
            let (events, _, _) = r.finish(&user);
            let mut wrong = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let after = [&name[..], b".after"].concat();
                for (n, bytes) in [(name.clone(), 1000 + i as u64), (after, 7)] {
                    let fired = events_for(&events, "upload", &n);
                    if fired.len() != 1 || var_u64(fired[0], "BYTES_WRITTEN") != Some(bytes) {
                        wrong.push(format!(
                            "{} bytes named …{}: fired {} times",
                            n.len(),
                            String::from_utf8_lossy(&n[n.len() - 14..]),
                            fired.len()
                        ));
                    }
                }
            }
            ensure(wrong.is_empty() && events.len() == 2 * names.len(), || {
                format!(
                    "{wrong:?}; events: {:?}; the client finished before syslog resumed: {before_resume}",
                    summary(&events)
                )
            })
        },
    )]
}

/// Finding 8: a client that vanishes mid-upload (writes still in flight) made sftp-server die of
/// SIGPIPE before it logged the forced close; a client that read a file to its EOF and left
/// without CLOSE had its whole download billed incomplete.
fn vanished_clients() -> Vec<Case> {
    let vanish_upload = |capture: bool| {
        move || {
            let r = if capture {
                Recorded::start(true, &FILE_OPERATIONS)
            } else {
                Recorded::start(false, &[])
            };
            let user = r.h.user();
            let steps = r.attack(&user, &["vanish_upload", &hex::encode("partial.bin")]);
            ensure(steps.len() == 3 && steps.iter().all(|s| s.1), || {
                format!("{steps:?}")
            })?;
            let (events, post, end) = r.finish(&user);
            ensure(!end.contains("SIGPIPE"), || {
                format!("sftp-server died: {end}")
            })?;
            let acknowledged = 10 * 32768;
            let sent = 30 * 32768;
            let forced = common::wait_until_opt(Duration::from_secs(10), || {
                r.h.log_messages()
                    .into_iter()
                    .find(|m| m.contains("forced close \"partial.bin\""))
            });
            let rows = r.report_transfers();
            let row = rows.iter().find(|t| {
                t["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("partial.bin"))
            });
            let row_bytes = row.and_then(|t| t["bytes_written"].as_u64());
            let billed = |n: Option<u64>| n.is_some_and(|n| (acknowledged..=sent).contains(&n));
            ensure(
                billed(row_bytes) && row.is_some_and(|t| t["complete"] == false),
                || format!("the report's row: {row:?}; sftp-server's line: {forced:?}"),
            )?;
            if !capture {
                return ensure(forced.is_some(), || "no forced close line".into());
            }
            let uploads = events_for(&events, "upload", b"partial.bin");
            let written = uploads.first().and_then(|e| var_u64(e, "BYTES_WRITTEN"));
            let wrapper_line = r.h.log_messages().into_iter().find(|m| {
                m.contains("file closed")
                    && m.contains("path=partial.bin ")
                    && m.contains("forced=1")
            });
            ensure(
                events.len() == 1
                    && uploads.len() == 1
                    && var(uploads[0], "COMPLETE") == "0"
                    && billed(written)
                    && post_totals(&post)[..2] == [Some(1), written]
                    && row_bytes == written
                    && wrapper_line.is_some(),
                || {
                    format!(
                        "events: {:?}; post-session totals {:?}; report row {row:?}; wrapper line {wrapper_line:?}",
                        summary(&events),
                        post_totals(&post)
                    )
                },
            )
        }
    };
    vec![
        case(
            "capture mode: the client vanishes with writes in flight",
            vanish_upload(true),
        ),
        case(
            "syslog mode: the client vanishes with writes in flight",
            vanish_upload(false),
        ),
        case(
            "a client reads 1 MiB to its EOF and leaves without CLOSE",
            || {
                let r = Recorded::start(true, &FILE_OPERATIONS);
                let user = r.h.user();
                partner_file(&r.h, &user, "whole.bin", 1 << 20);
                let steps = r.attack(&user, &["vanish_download", &hex::encode("whole.bin")]);
                ensure(steps.len() == 2 && steps.iter().all(|s| s.1), || {
                    format!("{steps:?}")
                })?;
                let (events, post, _) = r.finish(&user);
                let downloads = events_for(&events, "download", b"whole.bin");
                ensure(
                    events.len() == 1
                        && downloads.len() == 1
                        && var(downloads[0], "COMPLETE") == "1"
                        && var_u64(downloads[0], "BYTES_READ") == Some(1 << 20)
                        && post_totals(&post)[..4] == [Some(0), Some(0), Some(1), Some(1 << 20)],
                    || {
                        format!(
                            "events: {:?}; post-session totals {:?}",
                            summary(&events),
                            post_totals(&post)
                        )
                    },
                )
            },
        ),
    ]
}

/// Finding 10: hardlink@openssh.com and SYMLINK put a file under a new name and no hook heard
/// of it. Each fires `link` with both names; the refused ones fire nothing.
fn links() -> Vec<Case> {
    vec![case(
        "hardlink into inbox/, a symlink to /etc/passwd, two refused links",
        || {
            let kinds: Vec<&str> = FILE_OPERATIONS.iter().copied().chain(["link"]).collect();
            let r = Recorded::start(true, &kinds);
            let user = r.h.user();
            partner_file(&r.h, &user, "order.xml", 100);
            let steps = r.attack(&user, &["links"]);
            steps_as_expected(
                &steps,
                5,
                &[
                    "mkdir inbox",
                    "hardlink order.xml to inbox/order.xml",
                    "symlink passwd-link to /etc/passwd",
                ],
            )?;
            let points_to = fs::read_link(r.h.home(&user).join("passwd-link")).ok();
            ensure(points_to == Some(PathBuf::from("/etc/passwd")), || {
                format!("the symlink points to {points_to:?}")
            })?;
            let (events, _, _) = r.finish(&user);
            let hard = events_for(&events, "link", b"inbox/order.xml");
            let soft = events_for(&events, "link", b"passwd-link");
            ensure(
                events.len() == 3
                    && events_for(&events, "mkdir", b"inbox").len() == 1
                    && hard.len() == 1
                    && var(hard[0], "TARGET") == "order.xml"
                    && var(hard[0], "LINK_KIND") == "hardlink"
                    && soft.len() == 1
                    && var(soft[0], "TARGET") == "/etc/passwd"
                    && var(soft[0], "LINK_KIND") == "symlink",
                || format!("events: {:?}", summary(&events)),
            )
        },
    )]
}

/// Finding 11: failed_operations counted every "No such file" answer to an existence probe.
fn failed_operations() -> Vec<Case> {
    let run = |refused: bool| {
        move || {
            let r = Recorded::start(true, &FILE_OPERATIONS);
            let user = r.h.user();
            let mut args = vec!["probes", "200"];
            if refused {
                args.push("refused");
            }
            let steps = r.attack(&user, &args);
            ensure(
                steps.len() == 2 + usize::from(refused)
                    && steps.iter().all(|s| s.1 != s.0.starts_with("remove")),
                || format!("{steps:?}"),
            )?;
            let (events, post, end) = r.finish(&user);
            let want = u64::from(refused);
            let in_end: Option<u64> =
                common::field(&end, "failed_operations").and_then(|v| v.parse().ok());
            ensure(
                post_totals(&post)[4] == Some(want) && in_end == Some(want) && events.is_empty(),
                || {
                    format!(
                        "SFTPD_FAILED_OPERATIONS={:?}, session end: {end}; events: {:?}",
                        post_totals(&post)[4],
                        summary(&events)
                    )
                },
            )
        }
    };
    vec![
        case(
            "200 lstat probes and stat, opendir, realpath of missing names",
            run(false),
        ),
        case("the same probes and a refused remove", run(true)),
    ]
}

#[test]
fn adversarial_suite() {
    require_e2e!();
    let classes: [(&str, AttackClass); 25] = [
        ("/proc memory", proc_memory),
        ("loader environment", loader_environment),
        ("client environment", client_environment),
        ("terminal", terminal),
        ("hostile commands", hostile_commands),
        ("command sweep", command_sweep),
        ("capture-mode lines", capture_lines),
        ("long names", long_names),
        ("pipelined requests", pipelined_requests),
        ("session signals", session_signals),
        ("sshd settings", sshd_settings),
        ("config trust", config_trust),
        ("hook queue", hook_queue),
        ("concurrency", concurrency),
        ("syslog stall", syslog_stall),
        ("refused operations", refused_operations),
        ("reply flood", reply_flood),
        ("close pairing", wrong_close),
        ("failed writes", failed_writes),
        ("server-side copy", server_side_copy),
        ("handle length", handle_length),
        ("lagging log", lagging_log),
        ("vanished clients", vanished_clients),
        ("links", links),
        ("failed operations", failed_operations),
    ];
    // ADVERSARIAL_ONLY=WORD runs only the classes whose name contains WORD.
    let only = std::env::var("ADVERSARIAL_ONLY").unwrap_or_default();
    // The load tests run after the others, one at a time, so that the others' timing is not
    // theirs to disturb.
    let heavy = [
        "hook queue",
        "concurrency",
        "syslog stall",
        "reply flood",
        "lagging log",
    ];
    let (light, load): (Vec<_>, Vec<_>) = classes
        .into_iter()
        .filter(|(class, _)| class.contains(only.as_str()))
        .partition(|(class, _)| !heavy.contains(class));
    let mut results: Vec<(&str, std::thread::Result<Vec<Case>>)> = light
        .into_iter()
        .map(|(class, run)| (class, std::thread::spawn(run)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(class, handle)| (class, handle.join()))
        .collect();
    for (class, run) in load {
        results.push((class, std::thread::spawn(run).join()));
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (class, result) in results {
        let cases = result.unwrap_or_else(|_| {
            vec![Case {
                name: "the class itself".into(),
                outcome: Err("panicked".into()),
            }]
        });
        let failed: Vec<&Case> = cases.iter().filter(|c| c.outcome.is_err()).collect();
        rows.push((class, cases.len(), cases.len() - failed.len(), failed.len()));
        for c in failed {
            failures.push(format!(
                "{class}: {}: {}",
                c.name,
                c.outcome.as_ref().unwrap_err()
            ));
        }
    }
    println!(
        "\n{:<24} {:>6} {:>7} {:>7}",
        "attack class", "cases", "passed", "failed"
    );
    for (class, n, passed, failed) in &rows {
        println!("{class:<24} {n:>6} {passed:>7} {failed:>7}");
    }
    assert!(
        failures.is_empty(),
        "attacks that got through:\n{}",
        failures.join("\n")
    );
}
