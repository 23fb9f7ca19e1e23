//! sftpd-report's command line, in the library so that the man page and shell completions are
//! generated from the same definition (`sftpd-docs`), and what the binary runs ([`main`]).
//!
//! This module is the binary's front end: it alone in the library reports errors through
//! `anyhow`, as a binary would; the modules it calls return their own error types.

mod commands;
mod signals;

pub use commands::main;

use crate::accounting::report::{Format, Period};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The sftpd-report default database.
pub(crate) const DEFAULT_DB: &str = "/var/lib/sftpd-wrapper/sftpd.db";

#[derive(Parser)]
#[command(
    name = "sftpd-report",
    version,
    about = "SFTP sessions, transfers and usage from the sftpd-wrapper audit log"
)]
pub(crate) struct ReportCli {
    /// The database: a path, sqlite://PATH or postgres://USER@HOST/DB [default: [report] database
    /// in the config, else /var/lib/sftpd-wrapper/sftpd.db]
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// A file with the PostgreSQL password (mode 0600) [default: [report] password_file, else
    /// the PGPASSWORD environment variable]
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// The sftpd-wrapper config, read for [report] database and [syslog] ident.
    #[arg(long, global = true, default_value = crate::config::CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand)]
pub(crate) enum ReportCommand {
    /// Read syslog files (`-` for stdin, .gz read transparently) into the database.
    Ingest(IngestArgs),
    /// One row per session: who, from where, how long, files and bytes each way.
    Sessions {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One row per file opened: "was invoice-42.xml downloaded, by whom, when, completely?"
    Transfers {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only paths matching this glob (`*` also matches `/`), e.g. '*/invoice-42.xml'.
        #[arg(long)]
        path: Option<String>,
    },
    /// Copy one database into another (e.g. the embedded SQLite file into the central
    /// PostgreSQL store) without duplicates; safe to run again. (Schema upgrades need no
    /// command: every command upgrades the database it opens.)
    // `migrate` was this command's first name.
    #[command(alias = "migrate")]
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Sessions, files (complete and incomplete apart) and bytes per host and user, by day or
    /// month in the system's zone or --tz; --since/--until cut at the exact instants.
    Usage(UsageArgs),
    /// A partner's month as one self-contained HTML page (printable to PDF): totals, bytes per
    /// day, a table per day and host, the largest transfers.
    Statement(StatementArgs),
    /// Totals in the Prometheus text format (sessions, refusals, files and bytes per user,
    /// failures, active sessions, ingest progress), from the database.
    Metrics {
        /// Write them to PATH atomically (a temporary file renamed into place), for
        /// node_exporter's textfile collector (PATH ending in .prom), instead of stdout.
        #[arg(long)]
        textfile: Option<PathBuf>,
    },
    /// Retention: delete the sessions that ended before a cut, with their transfers and
    /// operations, in one transaction (the hourly rollups stay exact). Open sessions and the
    /// ingest's checkpoints are never removed. Prints what it removed.
    Prune(PruneArgs),
    /// The hourly rollups usage reads: every commit keeps them exact; --check compares them with
    /// the rows, --rebuild recomputes them (after the tables were changed by hand).
    Rollups {
        /// Exit 1, naming how many rows differ, when the rollups do not equal the rows.
        #[arg(long, required_unless_present = "rebuild")]
        check: bool,
        /// Recompute every rollup from the rows, in one transaction.
        #[arg(long)]
        rebuild: bool,
    },
}

// `ingest`'s options. No doc comment: the variant's is the command's help.
#[derive(Args)]
pub(crate) struct IngestArgs {
    /// Host name for lines that carry none [default: this machine's name]
    #[arg(long)]
    pub host_default: Option<String>,
    /// The wrapper's syslog ident [default: [syslog] ident in the config]
    #[arg(long)]
    pub wrapper_ident: Option<String>,
    /// Fail at once instead of waiting when another ingest holds the database.
    #[arg(long)]
    pub no_wait: bool,
    /// Exit 0 even when a file had new lines and none was understood (by default that is a
    /// warning and exit status 1: the wrong format, or the wrong facility's log).
    #[arg(long)]
    pub allow_empty: bool,
    /// Lines per transaction.
    #[arg(long, default_value_t = crate::accounting::ingest::IngestOptions::default_batch_lines(), hide = true)]
    pub batch_lines: usize,
    /// Forget everything of the hosts in FILES (sessions, transfers, operations) and the
    /// files' checkpoints, then read the files oldest first: the way to redo a host whose
    /// rotated files were ingested out of order. Give every log of those hosts you still have.
    #[arg(long, conflicts_with = "journal")]
    pub rebuild: bool,
    /// Read files even when their lines are older than what is already ingested from their
    /// host (by default such lines are refused: not billed, named in an error line, exit
    /// status 1; sessions across files would be split).
    #[arg(long)]
    pub any_order: bool,
    /// Read the systemd journal (the [syslog] facility's entries), from where the last
    /// `--journal` run stopped; with files, the files are read first.
    #[arg(long)]
    pub journal: bool,
    /// The journal directory to read instead of the system's (`journalctl --directory`).
    #[arg(long, requires = "journal")]
    pub journal_directory: Option<PathBuf>,
    /// Keep reading as the files grow (like `tail -F`, through logrotate's rename and
    /// copytruncate; the previous file, FILE.1, FILE.1.gz or the latest dated one, is read to
    /// its end first, at start and after each rotation) and the journal, committing new lines
    /// within a second, until SIGTERM or SIGINT, which commit what was read and exit 0.
    #[arg(long, conflicts_with = "rebuild")]
    pub follow: bool,
    /// With --follow: serve the metrics (as `sftpd-report metrics` prints them) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9861.
    #[arg(long, requires = "follow", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[arg(required_unless_present = "journal")]
    pub files: Vec<String>,
}

// The options of `usage`, `statement` and `prune`. No doc comments: the variants' are the
// commands' help.
#[derive(Args)]
pub(crate) struct UsageArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value = "day")]
    pub by: Period,
    /// Sum every session and transfer row instead of reading the hourly rollups: slower,
    /// the same numbers (for checking them).
    #[arg(long)]
    pub from_rows: bool,
}

#[derive(Args)]
pub(crate) struct StatementArgs {
    #[arg(long)]
    pub user: String,
    /// The month, e.g. 2026-11, in the zone of --tz.
    #[arg(long)]
    pub month: String,
    #[arg(long)]
    pub host: Option<String>,
    /// The zone of the month's days, an IANA name [default: the system's zone]
    #[arg(long)]
    pub tz: Option<String>,
    /// Write the page to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PruneArgs {
    /// Sessions that ended longer ago than this: 400d, 12w, 36h.
    #[arg(long, conflicts_with = "before", required_unless_present_any = ["before", "user"])]
    pub older_than: Option<String>,
    /// Sessions that ended before this instant: 2025-11-01 (midnight in --tz),
    /// "2025-11-01 14:00" or RFC 3339.
    #[arg(long)]
    pub before: Option<String>,
    /// Only this partner's sessions; alone (without --older-than or --before), every ended
    /// session of theirs: the partner is forgotten.
    #[arg(long)]
    pub user: Option<String>,
    /// The zone of a date in --before [default: the system's zone]
    #[arg(long)]
    pub tz: Option<String>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub(crate) struct FilterArgs {
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    /// From: 2026-11-26, "2026-11-26 14:00", RFC 3339, or 7d / 12h / 30m / 2w ago.
    #[arg(long)]
    pub since: Option<String>,
    /// Up to (a bare date includes that day); same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// The zone of dates in --since/--until and of usage's days and months, an IANA name such
    /// as UTC or Europe/Berlin [default: the system's zone]
    #[arg(long)]
    pub tz: Option<String>,
    /// table (aligned, human sizes, local time), csv or json (exact, UTC), html (usage only: one
    /// self-contained page) [default: table on a terminal, csv otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}
