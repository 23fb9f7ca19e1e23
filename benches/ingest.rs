//! Ingest throughput: `cargo bench --bench ingest`.
//!
//! Generates a realistic log of 1,000,000 lines and prints lines per second for three stages,
//! each with its ratio to the stage before, all measured in this run on this machine:
//! reading lines (the baseline), parsing them, and ingesting them into SQLite.
//! Run by `cargo test` (without `--bench`) it checks the same code on 20,000 lines.

#[path = "../tests/common/loggen.rs"]
mod loggen;

use chrono::Local;
use sftpd_wrapper::ingest::{IngestOptions, Ingestor};
use sftpd_wrapper::logparse;
use sftpd_wrapper::storage::SqliteStore;
use std::io::{BufRead, BufReader};
use std::time::Instant;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let lines = if full { 1_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sftpd.log");
    let log = loggen::generate(lines, 200, 42);
    std::fs::write(&path, loggen::text(&log.lines)).expect("write log");
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
        if let Some(l) = logparse::parse_syslog_line(line)
            && !matches!(
                logparse::classify(l.program, l.message, "sftpd-wrapper"),
                logparse::Record::Foreign
            )
        {
            understood += 1;
        }
    }
    let parse_rate = raw.len() as f64 / t.elapsed().as_secs_f64();

    let db = dir.path().join("bench.db");
    let mut store = SqliteStore::open(&db).expect("db");
    let t = Instant::now();
    let mut ingestor = Ingestor::new(&mut store, IngestOptions::default()).expect("ingestor");
    let file = std::fs::File::open(&path).expect("open");
    ingestor
        .ingest_reader(
            Box::new(BufReader::with_capacity(1 << 16, file)),
            "bench",
            Local::now(),
            None,
            None,
        )
        .expect("ingest");
    let ingest_rate = raw.len() as f64 / t.elapsed().as_secs_f64();
    let summary = ingestor.summary.clone();

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
    println!("ingest summary: {summary}");
}
