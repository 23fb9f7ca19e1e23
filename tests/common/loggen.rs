//! A realistic synthetic audit log: many interleaved sessions from several hosts and users, in
//! the exact line shapes the wrapper, sftp-server and rsyslog write, with the totals a correct
//! ingest must arrive at. Used by the ingest tests and the benchmark.

#![allow(dead_code)]

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserTotals {
    pub sessions: i64,
    pub files_up: i64,
    pub files_down: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
}

pub struct GeneratedLog {
    pub lines: Vec<String>,
    /// Keyed by (host, user).
    pub totals: BTreeMap<(String, String), UserTotals>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn stamp(second: u64) -> String {
    // November 1st, 00:00:00 plus `second`; stays within November for up to 29 days.
    let day = 1 + second / 86_400;
    let rem = second % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[10],
        day,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

struct Live {
    host: String,
    user: String,
    sid: String,
    wrapper_pid: u64,
    sftp_pid: u64,
    client_port: u64,
    steps: Vec<String>,
    next: usize,
}

/// Generates at least `min_lines` lines (plus a few foreign ones), `concurrency` sessions open
/// at a time.
pub fn generate(min_lines: usize, concurrency: usize, seed: u64) -> GeneratedLog {
    let mut rng = Rng(seed | 1);
    let hosts = ["sftp1", "sftp2", "sftp3"];
    let users = [
        "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell",
    ];
    let mut totals: BTreeMap<(String, String), UserTotals> = BTreeMap::new();
    let mut lines = Vec::with_capacity(min_lines + 64);
    let mut live: Vec<Live> = Vec::new();
    let mut second = 0u64;
    let mut pid = 1000u64;
    let mut session_no = 0u64;
    while lines.len() < min_lines || !live.is_empty() {
        if live.len() < concurrency && lines.len() < min_lines {
            session_no += 1;
            let host = hosts[rng.below(hosts.len() as u64) as usize].to_owned();
            let user = users[rng.below(users.len() as u64) as usize].to_owned();
            pid += 2;
            let (wrapper_pid, sftp_pid) = (pid, pid + 1);
            // Unique across seeds too, as the wrapper's are (ingest takes a stored sid for the
            // same session).
            let sid = format!("{host}-20261101T000000-{wrapper_pid}-{session_no:04x}{seed:04x}");
            let client_port = 40_000 + rng.below(20_000);
            let ip = format!(
                "192.0.2.{}",
                1 + users.iter().position(|u| *u == user).unwrap_or(0)
            );
            let t = totals.entry((host.clone(), user.clone())).or_default();
            t.sessions += 1;
            let w = format!("{host} sftpd-wrapper[{wrapper_pid}]:");
            let s = format!("{host} sftp-server[{sftp_pid}]:");
            let home = format!("/srv/sftp/{user}");
            let mut steps = vec![
                format!(
                    "{host} sshd[{wrapper_pid}]: Accepted publickey for {user} from {ip} port {client_port} ssh2: ED25519 SHA256:k{session_no}"
                ),
                format!(
                    "{w} session start sid={sid} user={user} client_ip={ip} client_port={client_port} local_ip=198.51.100.1 local_port=22"
                ),
                format!(
                    "{w} sftp-server started sid={sid} user={user} sftp_pid={sftp_pid} path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\""
                ),
                format!("{s} session opened for local user {user} from [{ip}]"),
            ];
            for f in 0..(1 + rng.below(6)) {
                let size = rng.below(5_000_000);
                let name = format!("{home}/in/batch {session_no}-{f}.csv");
                match rng.below(10) {
                    0..=4 => {
                        steps.push(format!(
                            "{s} open \"{name}\" flags WRITE,CREATE,TRUNCATE mode 0644"
                        ));
                        steps.push(format!("{s} close \"{name}\" bytes read 0 written {size}"));
                        t.files_up += 1;
                        t.bytes_up += size as i64;
                    }
                    5..=8 => {
                        steps.push(format!("{s} open \"{name}\" flags READ mode 0666"));
                        steps.push(format!("{s} close \"{name}\" bytes read {size} written 0"));
                        t.files_down += i64::from(size > 0);
                        t.bytes_down += size as i64;
                    }
                    _ => {
                        steps.push(format!("{s} opendir \"{home}/in\""));
                        steps.push(format!("{s} closedir \"{home}/in\""));
                        steps.push(format!(
                            "{s} remove name \"{home}/in/old-{session_no}-{f}\""
                        ));
                        steps.push(format!("{s} sent status No such file"));
                        steps.push(format!(
                            "{s} mkdir name \"{home}/archive-{session_no}-{f}\" mode 0777"
                        ));
                        steps.push(format!(
                            "{s} posix-rename old \"{name}.filepart\" new \"{name}\""
                        ));
                    }
                }
            }
            steps.push(format!(
                "{s} session closed for local user {user} from [{ip}]"
            ));
            steps.push(format!(
                "{w} session end sid={sid} user={user} client_ip={ip} client_port={client_port} local_ip=198.51.100.1 local_port=22 sftp_pid={sftp_pid} duration_ms={} exit_status=0",
                rng.below(100_000)
            ));
            steps.push(format!(
                "{w} hook sid={sid} user={user} hook=post_session elapsed_ms=3 result=exit status=0"
            ));
            live.push(Live {
                host,
                user,
                sid,
                wrapper_pid,
                sftp_pid,
                client_port,
                steps,
                next: 0,
            });
        }
        let i = rng.below(live.len() as u64) as usize;
        let step = live[i].steps[live[i].next].clone();
        live[i].next += 1;
        if rng.below(8) == 0 {
            second += 1;
        }
        lines.push(format!("{} {step}", stamp(second)));
        if rng.below(500) == 0 {
            lines.push(format!(
                "{} sftp1 CRON[{}]: (root) CMD (run-parts /etc/cron.hourly)",
                stamp(second),
                pid + 7
            ));
        }
        if live[i].next == live[i].steps.len() {
            live.swap_remove(i);
        }
    }
    GeneratedLog { lines, totals }
}

/// The log as file content.
pub fn text(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
