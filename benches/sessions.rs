//! Session throughput and set-up time: `cargo bench --bench sessions` (as root).
//!
//! Uploads and downloads a 1 GiB file through the real sshd and sftp client with the wrapper in
//! syslog mode, in capture mode (the SFTP packets pass through the wrapper's tap), in capture
//! mode with event hooks, and with plain sftp-server as the subsystem (no wrapper, the baseline),
//! and prints throughput ratios against the baseline measured in the same run, and capture
//! mode's against syslog mode's (the median of each round's ratio; `SESSIONS_BENCH_ROUNDS`
//! rounds, 7 unless set). Then the median set-up time of 50 `sftp -b` sessions that only
//! run `pwd`, for those four and for the shell-script wrapper admins write by hand. Run by
//! `cargo test`, it checks the same code with 8 MiB and 3 sessions.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Harness;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

struct Variant {
    name: &'static str,
    harness: Harness,
    user: String,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// The median of `v`, with its least and greatest, as the bench prints them.
fn median_ratio(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.3} x (rounds {:.3}-{:.3})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

fn timed_sftp(v: &Variant, batch: &str, cwd: &Path) -> Duration {
    // Dirty pages left by the previous transfer would otherwise be written back during this one.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let t = Instant::now();
    let out = v.harness.sftp(&v.user, batch, cwd);
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{}: {}",
        v.name,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    if !common::can_run() {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (size, rounds, sessions): (usize, usize, usize) = if full {
        let rounds = std::env::var("SESSIONS_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|&r| r > 0)
            .unwrap_or(7);
        (1 << 30, rounds, 50)
    } else {
        (8 << 20, 1, 3)
    };

    let plain_server = format!("{} -f local5 -l info", common::SFTP_SERVER);
    let syslog = Harness::start("");
    let capture = Harness::start("[sftp_server]\nlog_mode = \"capture\"\n");
    // Event hooks add the hook runner and its events to the tap's work.
    let tapped = Harness::start(
        "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"/bin/true\"]\non_download = [\"/bin/true\"]\n",
    );
    let plain = Harness::start_full("", "", &plain_server);
    let script = Harness::start_full("", "", common::SFTP_SERVER);
    let script_shell = script.root().join("bin/logger-shell");
    fs::write(
        &script_shell,
        format!(
            "#!/bin/sh\nlogger -p local5.info -t sftp-shell \"session start user=$USER client=$SSH_CLIENT\"\nexec {plain_server}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&script_shell, fs::Permissions::from_mode(0o755)).unwrap();

    let mut variants = Vec::new();
    for (name, harness) in [
        ("wrapper, syslog mode", syslog),
        ("wrapper, capture mode", capture),
        ("no wrapper (baseline)", plain),
        ("capture, event hooks", tapped),
    ] {
        let user = harness.user();
        variants.push(Variant {
            name,
            harness,
            user,
        });
    }
    let plain_user = Harness::new_user_name();
    let baseline = &variants[2];
    baseline
        .harness
        .add_user_with_shell(&plain_user, Path::new("/bin/sh"));
    let script_user = Harness::new_user_name();
    script.add_user_with_shell(&script_user, &script_shell);
    let variants = {
        let mut v = variants;
        v[2].user = plain_user;
        v
    };

    let local = tempfile::tempdir_in("/tmp").unwrap();
    {
        let mut f = fs::File::create(local.path().join("big.bin")).unwrap();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..size / chunk.len() {
            for b in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&chunk).unwrap();
        }
    }
    let mib = size as f64 / 1048576.0;
    println!("transfer of {mib:.0} MiB, median of {rounds} rounds, the variants taking turns:");
    // One warm-up transfer, then rounds in which every variant takes its turn, so that page
    // cache, writeback and CPU clock affect all of them alike.
    timed_sftp(&variants[2], "put big.bin warmup.bin\n", local.path());
    let down_dir = tempfile::tempdir_in("/tmp").unwrap();
    let mut ups: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut downs: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let n = variants.len();
    for round in 0..rounds {
        // Each round starts with another variant, so none always goes first or last.
        for i in (0..n).map(|k| (k + round) % n) {
            ups[i].push(timed_sftp(
                &variants[i],
                "put big.bin big.bin\n",
                local.path(),
            ));
        }
        for i in (0..n).map(|k| (k + round) % n) {
            downs[i].push(timed_sftp(&variants[i], "get big.bin\n", down_dir.path()));
            let _ = fs::remove_file(down_dir.path().join("big.bin"));
        }
    }
    let rates: Vec<(&str, f64, f64)> = variants
        .iter()
        .zip(ups.iter().zip(&downs))
        .map(|(v, (up, down))| {
            (
                v.name,
                mib / median(up).as_secs_f64(),
                mib / median(down).as_secs_f64(),
            )
        })
        .collect();
    for v in &variants {
        let _ = fs::remove_file(v.harness.home(&v.user).join("big.bin"));
    }
    let (_, base_up, base_down) = rates[2];
    for (name, up, down) in &rates {
        println!(
            "  {name:<28} upload {up:>8.1} MiB/s ({:.3} x baseline)   download {down:>8.1} MiB/s ({:.3} x baseline)",
            up / base_up,
            down / base_down
        );
    }
    // Against syslog mode, round by round: the two ran minutes apart at most, so a round's
    // ratio is free of the drift (CPU clock, writeback, other load) between rounds that moves
    // the medians of the rates.
    for i in [1, 3] {
        let paired = |times: &[Vec<Duration>]| {
            median_ratio(
                times[0]
                    .iter()
                    .zip(&times[i])
                    .map(|(syslog, this)| syslog.as_secs_f64() / this.as_secs_f64())
                    .collect(),
            )
        };
        println!(
            "  {:<28} against syslog mode (median of the rounds' ratios): upload {}, download {}",
            variants[i].name,
            paired(&ups),
            paired(&downs)
        );
    }

    println!("session set-up (`sftp -b` running only pwd), median of {sessions}:");
    let empty = tempfile::tempdir().unwrap();
    let script_variant = Variant {
        name: "shell-script wrapper",
        harness: script,
        user: script_user,
    };
    let all: Vec<&Variant> = variants
        .iter()
        .chain(std::iter::once(&script_variant))
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); all.len()];
    for round in 0..sessions {
        for i in (0..all.len()).map(|k| (k + round) % all.len()) {
            times[i].push(timed_sftp(all[i], "pwd\n", empty.path()));
        }
    }
    let setups: Vec<(&str, Duration)> = all
        .iter()
        .zip(times)
        .map(|(v, t)| (v.name, median(&t)))
        .collect();
    let base = setups[2].1;
    for (name, d) in &setups {
        println!(
            "  {name:<28} {:>8.1} ms ({:.3} x baseline)",
            d.as_secs_f64() * 1000.0,
            d.as_secs_f64() / base.as_secs_f64()
        );
    }
}
