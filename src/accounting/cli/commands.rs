//! What sftpd-report runs: the configuration and database it resolves, one function per command.

use super::signals::StopSignals;
use super::{DEFAULT_DB, FilterArgs, IngestArgs, PruneArgs, StatementArgs, UsageArgs};
use super::{ReportCli as Cli, ReportCommand as Command};
use crate::accounting::ingest::{IngestOptions, Ingestor, Input};
use crate::accounting::report::{self, Filter, Format, Reports, RowsReport};
use crate::accounting::storage::{self, DbSpec, Store, StoreError};
use crate::accounting::{metrics_server, retention};
use crate::config;
use crate::log::parse::Micros;
use anyhow::{Context, Result, bail};
use chrono_tz::Tz;
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

impl FilterArgs {
    fn filter(&self) -> Result<Filter> {
        let now = chrono::Utc::now();
        let zone = self
            .tz
            .as_deref()
            .map(parse_zone)
            .transpose()
            .context("--tz")?;
        let bound = |v: &Option<String>, until: bool| -> Result<Option<Micros>> {
            let local = zone.unwrap_or_else(report::system_zone);
            v.as_deref()
                .map(|t| report::parse_time_bound(t, now, until, local))
                .transpose()
                .map_err(anyhow::Error::msg)
        };
        Ok(Filter {
            user: self.user.clone(),
            host: self.host.clone(),
            since: bound(&self.since, false).context("--since")?,
            until: bound(&self.until, true).context("--until")?,
            path: None,
            zone,
        })
    }

    fn format(&self) -> Format {
        self.format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Csv
        })
    }
}

fn parse_zone(name: &str) -> Result<Tz> {
    report::parse_zone(name).map_err(anyhow::Error::msg)
}

/// `--tz`, else the system's zone.
fn zone_or_system(tz: Option<&str>) -> Result<Tz> {
    tz.map_or_else(|| Ok(report::system_zone()), parse_zone)
}

/// The PostgreSQL password from --password-file, [report] password_file or PGPASSWORD. A file
/// that group or others can read is refused, as libpq refuses such a ~/.pgpass.
fn password(cli: &Cli, cfg: &config::Config) -> Result<Option<String>> {
    let file = cli
        .password_file
        .clone()
        .or_else(|| cfg.report.password_file.clone().map(PathBuf::from));
    if let Some(path) = file {
        let name = format!("password file {}", path.display());
        let meta = std::fs::metadata(&path).context(name.clone())?;
        if meta.mode() & 0o077 != 0 {
            bail!(
                "{name} is readable by group or others (mode {:04o}); chmod 600 it",
                meta.mode() & 0o7777
            );
        }
        let text = std::fs::read_to_string(&path).context(name)?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(std::env::var("PGPASSWORD").ok())
}

fn open_store(spec: &DbSpec, password: Option<&str>) -> Result<Box<dyn Store>> {
    storage::open(spec, password).map_err(|e| match e {
        // The error already names the database (without its password).
        StoreError::Postgres(_) => anyhow::Error::new(e),
        other => anyhow::Error::new(other).context(spec.display()),
    })
}

/// The error and its causes on one line, each cause once: libraries repeat their source's text
/// in their own (`database is locked: database is locked: Error code 5: database is locked`).
fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        // Skip a cause already said, or one that only adds a code to what was said
        // (`Error code 5: database is locked`).
        let tail = part.rsplit(": ").next().unwrap_or(&part);
        if text.contains(&part) || (!text.is_empty() && text.ends_with(tail)) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text.replace('\n', " ")
}

/// Writes `path` by renaming a complete temporary file over it, so that a reader (the textfile
/// collector) never sees half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--textfile {}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("--textfile {}", path.display()))
}

/// sftpd-report's `main`: parses the command line, runs the command, and says what failed on
/// one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("sftpd-report: {}", one_line(&e));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Sessions { filter } | Command::Transfers { filter, .. } = &cli.command
        && filter.format == Some(Format::Html)
    {
        bail!("--format html is for usage (and the statement command), not for row reports");
    }
    let cfg = config::load(&cli.config)
        .map_err(anyhow::Error::msg)?
        .config;
    let password = password(&cli, &cfg)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if let Command::Copy { from, to } = &cli.command {
        return copy(from, to, password.as_deref());
    }
    let spec = cli.db.as_ref().or(cfg.report.database.as_ref());
    let spec =
        DbSpec::parse(spec.map_or(DEFAULT_DB, |s| s.as_str())).map_err(anyhow::Error::msg)?;
    // Only an ingest creates a database: a report on a path that holds none is a mistake (a
    // typo in --db), not an empty report, and must not leave an empty database behind.
    if let DbSpec::Sqlite(path) = &spec
        && !matches!(cli.command, Command::Ingest { .. })
        && !path.exists()
    {
        bail!(
            "no database at {} (sftpd-report ingest creates it; check --db or [report] database)",
            path.display()
        );
    }
    // Reports that only read open the database read-only: finance's copy may be theirs to read
    // and not to write.
    let reads_only = match &cli.command {
        Command::Ingest(_) | Command::Prune(_) => false,
        Command::Rollups { rebuild, .. } => !rebuild,
        _ => true,
    };
    let mut store = if reads_only {
        storage::open_for_reading(&spec, password.as_deref()).map_err(anyhow::Error::new)?
    } else {
        open_store(&spec, password.as_deref())?
    };
    let store = store.as_mut();
    match &cli.command {
        Command::Ingest(args) => ingest(args, &cfg, &spec, password, store)?,
        Command::Sessions { filter } => {
            rows_report(RowsReport::Sessions, filter, &None, store, &mut out)?
        }
        Command::Transfers { filter, path } => {
            rows_report(RowsReport::Transfers, filter, path, store, &mut out)?
        }
        Command::Usage(args) => usage(args, store, &mut out)?,
        Command::Statement(args) => statement(args, store, &mut out)?,
        Command::Metrics { textfile } => {
            let text = crate::accounting::metrics::render(store)?;
            match textfile {
                Some(path) => write_atomically(path, text.as_bytes())?,
                None => out.write_all(text.as_bytes())?,
            }
        }
        Command::Rollups { check, rebuild } => rollups(*check, *rebuild, store)?,
        Command::Prune(args) => prune(args, store)?,
        Command::Copy { .. } => unreachable!("handled above"),
    }
    out.flush()?;
    Ok(())
}

/// `copy --from --to`.
fn copy(from: &str, to: &str, password: Option<&str>) -> Result<()> {
    let from = DbSpec::parse(from).map_err(anyhow::Error::msg)?;
    let to = DbSpec::parse(to).map_err(anyhow::Error::msg)?;
    if from == to {
        bail!("--from and --to name the same database");
    }
    if let DbSpec::Sqlite(path) = &from
        && !path.exists()
    {
        bail!("--from: no database at {}", path.display());
    }
    let mut source = storage::open_for_reading(&from, password).map_err(anyhow::Error::new)?;
    let mut target = open_store(&to, password)?;
    let (copied, skipped) = storage::copy_database(source.as_mut(), target.as_mut())?;
    println!("sessions copied {copied}, already there {skipped}");
    Ok(())
}

/// `ingest`, once or `--follow`ing; exits 1 when a file was not understood or lines were refused.
fn ingest(
    args: &IngestArgs,
    cfg: &config::Config,
    spec: &DbSpec,
    password: Option<String>,
    store: &mut dyn Store,
) -> Result<()> {
    if args.follow && args.files.iter().any(|f| f == "-") {
        bail!("--follow reads files or the journal, not standard input");
    }
    // Blocked before anything else, so that a SIGTERM from the start on is noticed
    // between two commits rather than killing the process mid-batch.
    let stop = args.follow.then(StopSignals::new).transpose()?;
    // Started after the signals are blocked: its threads inherit the mask, so SIGTERM
    // comes to the ingest's loop only.
    if let Some(addr) = args.metrics_listen {
        metrics_server::start(addr, spec.clone(), password)
            .with_context(|| format!("--metrics-listen {addr}"))?;
    }
    storage::lock_for_writing(store, !args.no_wait)?;
    let mut opts = IngestOptions {
        host_default: args
            .host_default
            .clone()
            .unwrap_or_else(|| IngestOptions::default().host_default),
        wrapper_ident: args
            .wrapper_ident
            .clone()
            .unwrap_or_else(|| cfg.syslog.ident.clone()),
        batch_lines: args.batch_lines.max(1),
        progress: true,
        any_order: args.any_order,
    };
    let inputs: Vec<Input> = args
        .files
        .iter()
        .map(|f| Input { name: f.clone() })
        .collect();
    if args.rebuild {
        let hosts =
            crate::accounting::ingest::forget_for_rebuild(store, &inputs, &opts.host_default)?;
        eprintln!("sftpd-report: rebuilding host(s) {}", hosts.join(", "));
        opts.any_order = true;
    }
    let mut ingestor = Ingestor::new(store, opts)?;
    let source = args
        .journal
        .then(|| crate::accounting::journal::JournalSource {
            directory: args.journal_directory.clone(),
            facility: (cfg.syslog.facility.to_libc() >> 3) as u8,
        });
    if let Some(stop) = &stop {
        ingestor.follow(&inputs, source.as_ref(), &mut |interval| {
            stop.wait(interval)
        })?;
    } else {
        ingestor.ingest_inputs(&inputs)?;
        if let Some(source) = &source {
            ingestor.ingest_journal(source)?;
        }
    }
    println!("{}", ingestor.summary);
    for file in &ingestor.not_understood {
        // ASCII: 200 bytes are 200 characters.
        let mut shown = file.first_line.escape_ascii().to_string();
        shown.truncate(200);
        eprintln!(
            "sftpd-report: warning: {}: none of its {} new lines was understood (wrong format or facility?); the first: \"{shown}\"",
            file.name, file.lines
        );
    }
    // The refused lines were named in error lines as they were met.
    if (!ingestor.not_understood.is_empty() && !args.allow_empty)
        || (ingestor.summary.refused > 0 && stop.is_none())
    {
        std::process::exit(1);
    }
    Ok(())
}

/// `usage`: a table (or CSV, JSON) by day or month, or with `--format html` the statement page.
fn usage(args: &UsageArgs, store: &mut dyn Store, out: &mut dyn Write) -> Result<()> {
    let f = args.filter.filter()?;
    if args.filter.format() == Format::Html {
        let shown = |t: Option<Micros>, none: &str| {
            t.and_then(|t| report::local_time(t, f.zone()))
                .unwrap_or_else(|| none.to_owned())
        };
        let period = match (f.since, f.until) {
            (None, None) => "everything".to_owned(),
            (since, until) => format!("{} to {}", shown(since, "the start"), shown(until, "now")),
        };
        let page = statement_page(store, &f, "SFTP usage".to_owned(), period, Vec::new())?;
        out.write_all(page.as_bytes())?;
    } else {
        let r = store.usage_sums(&f, args.by, args.from_rows)?.finish();
        report::render(&r, args.filter.format(), f.zone(), out)?;
    }
    Ok(())
}

/// `statement`: a partner's month as one HTML page, on stdout or in `--output`.
fn statement(args: &StatementArgs, store: &mut dyn Store, out: &mut dyn Write) -> Result<()> {
    let (user, month) = (&args.user, &args.month);
    let zone = zone_or_system(args.tz.as_deref())?;
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .with_context(|| format!("--month {month:?}: use the form 2026-11"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .context("--month: too far in the future")?;
    let bound = |day: chrono::NaiveDate| {
        report::day_start(day, zone)
            .with_context(|| format!("--month {month}: {day} has no start in {zone}"))
    };
    let f = Filter {
        user: Some(user.clone()),
        host: args.host.clone(),
        since: Some(bound(first)?),
        until: Some(bound(next)?),
        path: None,
        zone: Some(zone),
    };
    let period = format!(
        "{} ({} to {})",
        first.format("%B %Y"),
        first.format("%Y-%m-%d"),
        next.pred_opt().unwrap_or(next).format("%Y-%m-%d")
    );
    let page = statement_page(
        store,
        &f,
        format!("SFTP statement for {user}"),
        period,
        first.iter_days().take_while(|d| *d < next).collect(),
    )?;
    match &args.output {
        Some(path) => write_atomically(path, page.as_bytes())
            .with_context(|| format!("--output {}", path.display()))?,
        None => out.write_all(page.as_bytes())?,
    }
    Ok(())
}

/// `rollups --rebuild` and/or `--check`.
fn rollups(check: bool, rebuild: bool, store: &mut dyn Store) -> Result<()> {
    if rebuild {
        storage::lock_for_writing(store, true)?;
        storage::in_transaction(store, |s| s.refresh_rollups(true))?;
        println!("rollups rebuilt");
    }
    if check {
        let differing = store.rollup_differences()?;
        if differing > 0 {
            bail!(
                "{differing} hourly rollup row(s) differ from the rows; `sftpd-report rollups --rebuild` recomputes them"
            );
        }
        println!("rollups exact");
    }
    Ok(())
}

/// `prune`: the sessions that ended before the cut, and what they hold.
fn prune(args: &PruneArgs, store: &mut dyn Store) -> Result<()> {
    let (older_than, before) = (args.older_than.as_deref(), args.before.as_deref());
    let zone = zone_or_system(args.tz.as_deref())?;
    let cut = retention::cut_micros(older_than, before, zone, chrono::Utc::now())
        .map_err(anyhow::Error::msg)?;
    let (user, dry_run) = (args.user.as_deref(), args.dry_run);
    let pruned = storage::prune(store, cut, user, dry_run)?;
    println!("{}", retention::summary(&pruned, cut, user, dry_run));
    Ok(())
}

/// The HTML page of usage by day in the filter's window, with its largest transfers.
fn statement_page(
    store: &mut dyn Store,
    filter: &Filter,
    title: String,
    period: String,
    days: Vec<chrono::NaiveDate>,
) -> Result<String> {
    let daily = store.usage_sums(filter, report::Period::Day, false)?;
    let largest = store.largest_transfers(filter, 10)?;
    let zone = filter.zone();
    Ok(crate::accounting::html::render(
        &crate::accounting::html::Statement {
            title,
            period,
            zone: zone.name().to_owned(),
            generated: chrono::Utc::now()
                .with_timezone(&zone)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            daily: daily.groups(),
            largest: &largest,
            days,
        },
    ))
}

/// `sessions`, or `transfers` with `--path`, written row by row as the database hands the rows
/// out: memory stays flat.
fn rows_report(
    which: RowsReport,
    args: &FilterArgs,
    path: &Option<String>,
    store: &mut dyn Store,
    out: &mut dyn Write,
) -> Result<()> {
    let mut filter = args.filter()?;
    if let Some(p) = path {
        filter.path = Some(
            glob::Pattern::new(p).with_context(|| format!("--path {p:?} is not a valid glob"))?,
        );
    }
    let (columns, zone) = (which.columns(), filter.zone());
    report::render_stream::<StoreError>(&columns, args.format(), zone, out, &mut |sink| {
        store.stream_report(which, &filter, sink)
    })?;
    Ok(())
}
