//! The accounting: `sftpd-report` reads the log ([`ingest`]) into a database ([`storage`]:
//! SQLite or PostgreSQL) and prints [`report`]s.

pub mod cli;
pub mod html;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod report;
pub mod storage;
