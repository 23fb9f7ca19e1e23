//! sftpd-wrapper: restrict, audit and account OpenSSH SFTP accounts.
//!
//! The login shell (`src/bin/sftpd-wrapper.rs`) uses [`config`], [`invocation`], [`session`],
//! [`hooks`], [`syslog`] and [`logfmt`]; none of them touches a database.

pub mod admin;
pub mod capture;
pub mod chroot;
pub mod cli;
pub mod config;
pub mod docs;
pub mod hooks;
pub mod ingest;
pub mod invocation;
pub mod logfmt;
pub mod logparse;
pub mod report;
pub mod runner;
pub mod session;
pub mod storage;
pub mod syslog;
