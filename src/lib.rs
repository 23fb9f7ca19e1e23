//! sftpd-wrapper: restrict, audit and account OpenSSH SFTP accounts.
//!
//! Two wings and the contract between them:
//!
//! - [`shell`]: the login shell (`sftpd-wrapper`). Small and paranoid; it links no database code.
//! - [`accounting`]: `sftpd-report`, which turns the log into a database and reports. Behind the
//!   `accounting` feature (on by default), so that
//!   `cargo build --no-default-features --bin sftpd-wrapper` builds the shell alone.
//! - [`log`]: what both read and write: the wrapper's own log lines, the parser of sftp-server,
//!   internal-sftp and sshd lines, and the one rule that says what a closed file counts as.
//!
//! [`config`] is the one configuration file both wings read.

// The library exists for its two binaries: its docs are read with `--document-private-items`,
// where links to the crate's own items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod config;
pub mod log;
pub mod shell;

#[cfg(feature = "accounting")]
pub mod accounting;
#[cfg(feature = "accounting")]
pub mod docs;
