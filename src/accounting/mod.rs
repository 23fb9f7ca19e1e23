//! The accounting: `sftpd-report` reads the log ([`ingest`]) into a database ([`storage`]:
//! SQLite or PostgreSQL) and prints [`report`]s.

pub mod cli;
pub(crate) mod html;
pub mod ingest;
pub(crate) mod journal;
pub(crate) mod metrics;
pub(crate) mod metrics_server;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod rollup;
pub(crate) mod sql;
pub mod storage;

/// Maps and sets keyed by what sftpd-report or the system assigns (row ids, host names, PIDs,
/// the wrapper's session ids, times), never by what a partner chooses. foldhash hashes these
/// small keys several times faster than std's SipHash, and the ingest hashes some for every
/// line; it resists chosen collisions only minimally, so maps keyed by file names keep SipHash.
pub(crate) type IdMap<K, V> = foldhash::HashMap<K, V>;
pub(crate) type IdSet<T> = foldhash::HashSet<T>;
