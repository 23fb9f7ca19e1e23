//! Ingest throughput: `cargo bench --bench ingest`.
//!
//! Generates a realistic log of 1,000,000 lines and prints lines per second for three stages,
//! each with its ratio to the stage before, all measured in this run on this machine:
//! reading lines (the baseline), parsing them, ingesting them into SQLite, and (as root, with
//! PostgreSQL's binaries installed) ingesting them into a throwaway PostgreSQL server; then
//! Debian's mtail, one-shot, with a small sftp program (benches/sftp.mtail) on the same file.
//! Run by `cargo test` (without `--bench`) it checks the same code on 20,000 lines.

#[path = "../tests/common/mod.rs"]
mod common;

// The allocator sftpd-report ships with, so that the figures are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{loggen, pg};

use chrono::Local;
use sftpd_wrapper::accounting::ingest::{IngestOptions, Ingestor, Summary};
use sftpd_wrapper::accounting::storage::{SqliteStore, Store};
use sftpd_wrapper::log::parse;
use std::io::{BufRead, BufReader};
use std::time::Instant;

/// Runs Debian's mtail once over `log` with benches/sftp.mtail; returns its time and the bytes
/// written it counted.
fn mtail_one_shot(log: &std::path::Path) -> Option<(f64, u64)> {
    if !std::path::Path::new("/usr/bin/mtail").exists() {
        return None;
    }
    let t = Instant::now();
    let out = std::process::Command::new("/usr/bin/mtail")
        .args([
            "-one_shot",
            "-one_shot_format",
            "prometheus",
            "-port",
            "0",
            "-progs",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sftp.mtail"))
        .arg("-logs")
        .arg(log)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("mtail");
    let seconds = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "mtail failed");
    let written = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("sftp_bytes_written_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Some((seconds, written as u64))
}

/// The server's own floor for this log: the rows the ingest left in `from`, copied out, then
/// stored into `to` (the same schema: indexes, keys and rollup triggers) with one binary COPY per
/// table in one transaction, as lines of the log per second. No ingest can store them faster:
/// it writes the same rows, in batches, and changes some of them afterwards.
fn pg_floor(from: &str, to: &str, lines: usize) -> f64 {
    use std::io::{Read, Write};
    sftpd_wrapper::accounting::storage::postgres::PgStore::connect(to, None).expect("schema");
    let mut source = postgres::Client::connect(from, postgres::NoTls).expect("connect");
    let tables = ["sessions", "transfers", "operations"];
    let dumps: Vec<Vec<u8>> = tables
        .iter()
        .map(|t| {
            let mut out = Vec::new();
            source
                .copy_out(&format!("COPY {t} TO STDOUT (FORMAT binary)"))
                .expect("copy out")
                .read_to_end(&mut out)
                .expect("read");
            out
        })
        .collect();
    let mut target = postgres::Client::connect(to, postgres::NoTls).expect("connect");
    let t = Instant::now();
    let mut tx = target.transaction().expect("begin");
    for (table, dump) in tables.iter().zip(&dumps) {
        let mut sink = tx
            .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .expect("copy in");
        sink.write_all(dump).expect("write");
        sink.finish().expect("finish");
    }
    tx.commit().expect("commit");
    lines as f64 / t.elapsed().as_secs_f64()
}

/// SQLite's own floor for this log: the rows the ingest left in `from`, inserted into a new
/// database `to` (the same schema, indexes and foreign keys; its rollups not kept, which makes
/// the floor only lower) in one transaction, as lines of the log per second. No ingest can
/// store the same rows faster.
fn sqlite_floor(from: &std::path::Path, to: &std::path::Path, lines: usize) -> f64 {
    drop(SqliteStore::open(to).expect("schema"));
    let conn = rusqlite::Connection::open(to).expect("open");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("pragma");
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
        false,
    )
    .expect("triggers off");
    conn.execute("ATTACH DATABASE ?1 AS src", [from.to_str().expect("path")])
        .expect("attach");
    let columns = |table: &str| -> String {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .expect("columns");
        let names: Vec<String> = stmt
            .query_map([table], |r| r.get(0))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        names.join(", ")
    };
    // The tables under the views `sessions`, … (schema 9). Columns named, not `*`: SQLite
    // copies a table into a like one without looking at its rows, which no ingest can do.
    let inserts: Vec<String> = ["session_rows", "transfer_rows", "operation_rows"]
        .iter()
        .map(|t| {
            let columns = columns(t);
            format!("INSERT INTO main.{t} ({columns}) SELECT {columns} FROM src.{t};")
        })
        .collect();
    let t = Instant::now();
    conn.execute_batch(&format!("BEGIN; {} COMMIT;", inserts.concat()))
        .expect("insert");
    lines as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let lines = if full { 1_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sftpd.log");
    let log = loggen::generate(lines, 200, 42);
    std::fs::write(&path, loggen::text(&log.lines)).expect("write log");
    // For profiling an ingest of the same file outside the bench.
    if let Some(keep) = std::env::var_os("SFTPD_BENCH_KEEP_LOG") {
        std::fs::copy(&path, keep).expect("copy the log");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "log: {} lines, {:.1} MiB",
        log.lines.len(),
        size as f64 / 1048576.0
    );

    let read_lines = || -> Vec<Vec<u8>> {
        let mut reader =
            BufReader::with_capacity(1 << 16, std::fs::File::open(&path).expect("open"));
        let mut out = Vec::with_capacity(log.lines.len());
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).expect("read") > 0 {
            out.push(std::mem::take(&mut buf));
        }
        out
    };

    let t = Instant::now();
    let raw = read_lines();
    let read_rate = raw.len() as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut understood = 0usize;
    for line in &raw {
        if let Some(l) = parse::parse_syslog_line(line)
            && !matches!(
                parse::classify(l.program, l.message, "sftpd-wrapper"),
                parse::Record::Foreign
            )
        {
            understood += 1;
        }
    }
    let parse_rate = raw.len() as f64 / t.elapsed().as_secs_f64();

    let ingest_into = |store: &mut dyn Store| -> (f64, Summary) {
        let t = Instant::now();
        let mut ingestor = Ingestor::new(store, IngestOptions::default()).expect("ingestor");
        let file = std::fs::File::open(&path).expect("open");
        let reader = Box::new(BufReader::with_capacity(1 << 16, file));
        ingestor
            .ingest_reader(reader, None, "bench", Local::now(), None, None)
            .expect("ingest");
        (
            raw.len() as f64 / t.elapsed().as_secs_f64(),
            ingestor.summary.clone(),
        )
    };
    let mut sqlite = SqliteStore::open(&dir.path().join("bench.db")).expect("db");
    let (ingest_rate, summary) = ingest_into(&mut sqlite);
    // Closing the last connection moves the write-ahead log into the file.
    drop(sqlite);
    let db_size = std::fs::metadata(dir.path().join("bench.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let sqlite_floor_rate = sqlite_floor(
        &dir.path().join("bench.db"),
        &dir.path().join("floor.db"),
        raw.len(),
    );
    let postgres = match pg::unavailable() {
        Some(why) => {
            println!("(PostgreSQL skipped: {why})");
            None
        }
        None => {
            let server = pg::PgServer::start();
            let url = server.create_db();
            let mut store =
                sftpd_wrapper::accounting::storage::postgres::PgStore::connect(&url, None)
                    .expect("postgres");
            let (rate, pg_summary) = ingest_into(&mut store);
            assert_eq!(pg_summary, summary);
            drop(store);
            Some((rate, pg_floor(&url, &server.create_db(), raw.len())))
        }
    };

    assert_eq!(summary.lines_read as usize, raw.len());
    assert_eq!(summary.parsed as usize, understood);
    println!("read lines (baseline)   {:>12.0} lines/s", read_rate);
    println!(
        "parse only              {:>12.0} lines/s   {:.3} x read",
        parse_rate,
        parse_rate / read_rate
    );
    println!(
        "ingest into SQLite      {:>12.0} lines/s   {:.3} x parse",
        ingest_rate,
        ingest_rate / parse_rate
    );
    println!(
        "SQLite storing the ingest's final rows, one INSERT … SELECT per table {:>12.0} lines/s   ingest is {:.3} x that",
        sqlite_floor_rate,
        ingest_rate / sqlite_floor_rate
    );
    println!(
        "SQLite database size    {:>12.1} MiB       {:.3} x the log",
        db_size as f64 / 1048576.0,
        db_size as f64 / size as f64
    );
    if let Some((rate, floor)) = postgres {
        println!(
            "ingest into PostgreSQL  {:>12.0} lines/s   {:.3} x SQLite",
            rate,
            rate / ingest_rate
        );
        println!(
            "PostgreSQL storing the ingest's final rows, one COPY per table {:>12.0} lines/s   ingest is {:.3} x that",
            floor,
            rate / floor
        );
    }
    println!("ingest summary: {summary}");
    match mtail_one_shot(&path) {
        Some((seconds, written)) => {
            let rate = raw.len() as f64 / seconds;
            let expected: i64 = log.totals.values().map(|t| t.bytes_up).sum();
            // Its sum of every close's written bytes; ours counts uploads only, and the
            // generated log writes nothing on downloads.
            assert_eq!(written, expected as u64, "mtail's bytes written");
            println!(
                "mtail one-shot, sftp program {:>12.0} lines/s   SQLite ingest is {:.3} x mtail",
                rate,
                ingest_rate / rate
            );
        }
        None => println!("(mtail skipped: /usr/bin/mtail is not installed)"),
    }

    // One session whose opens all fail (`open` + `sent status`): no file is ever closed, and the
    // rate must stay that of the realistic log (it was quadratic in the waiting opens).
    let failed = if full { 100_000 } else { 5_000 };
    let mut text = String::from(
        "2026-11-01T00:00:00+00:00 h sftp-server[7]: session opened for local user acme from [10.0.0.1]\n",
    );
    for i in 0..failed {
        text.push_str(&format!(
            "2026-11-01T00:00:01+00:00 h sftp-server[7]: open \"/in/missing-{i}\" flags READ mode 0666\n\
             2026-11-01T00:00:01+00:00 h sftp-server[7]: sent status No such file\n"
        ));
    }
    text.push_str(
        "2026-11-01T00:00:02+00:00 h sftp-server[7]: session closed for local user acme from [10.0.0.1]\n",
    );
    let failed_path = dir.path().join("failed.log");
    std::fs::write(&failed_path, &text).expect("write");
    let lines = text.lines().count();
    let mut store = SqliteStore::open(&dir.path().join("failed.db")).expect("db");
    let t = Instant::now();
    let mut ingestor = Ingestor::new(&mut store, IngestOptions::default()).expect("ingestor");
    let reader = Box::new(BufReader::new(
        std::fs::File::open(&failed_path).expect("open"),
    ));
    ingestor
        .ingest_reader(reader, None, "failed", Local::now(), None, None)
        .expect("ingest");
    let failed_rate = lines as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ingestor.summary.lines_read as usize, lines);
    println!(
        "{failed} failed opens in one session, SQLite  {:>12.0} lines/s   {:.3} x the realistic log",
        failed_rate,
        failed_rate / ingest_rate
    );
    drop(ingestor);

    // What a follower's commit costs in an hour that already holds those files: one short
    // session, its rollups moved by the triggers' deltas, against recomputing the hour's cell
    // from its rows.
    let late = "2026-11-01T00:30:00+00:00 h sftp-server[8]: session opened for local user acme from [10.0.0.1]\n\
                2026-11-01T00:30:01+00:00 h sftp-server[8]: open \"/in/late\" flags WRITE,CREATE,TRUNCATE mode 0644\n\
                2026-11-01T00:30:02+00:00 h sftp-server[8]: close \"/in/late\" bytes read 0 written 9\n\
                2026-11-01T00:30:03+00:00 h sftp-server[8]: session closed for local user acme from [10.0.0.1]\n";
    let t = Instant::now();
    let mut ingestor = Ingestor::new(&mut store, IngestOptions::default()).expect("ingestor");
    ingestor
        .ingest_reader(
            Box::new(std::io::Cursor::new(late.as_bytes().to_vec())),
            None,
            "late",
            Local::now(),
            None,
            None,
        )
        .expect("ingest");
    let delta_commit = t.elapsed().as_secs_f64();
    assert_eq!(ingestor.summary.transfers, 1);
    drop(ingestor);
    use sftpd_wrapper::accounting::storage::Database;
    let t = Instant::now();
    store.begin().expect("begin");
    store
        .connection()
        .expect("connection")
        .execute(
            "INSERT INTO usage_dirty (hour, host) SELECT hour, host FROM usage_hourly",
            [],
        )
        .expect("dirty");
    store.refresh_rollups(false).expect("recompute");
    store.commit().expect("commit");
    let recompute = t.elapsed().as_secs_f64();
    assert_eq!(store.rollup_differences().expect("check"), 0);
    println!(
        "one session committed into that hour {:>9.4} s   {:.3} x recomputing the hour ({:.4} s)",
        delta_commit,
        delta_commit / recompute,
        recompute
    );
}
