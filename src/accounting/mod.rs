//! The accounting: `sftpd-report` reads the log ([`ingest`]) into a database ([`storage`]:
//! SQLite or PostgreSQL) and prints [`report`]s.

pub mod cli;
pub mod html;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod metrics_server;
pub mod report;
pub mod retention;
pub mod rollup;
pub mod sql;
pub mod storage;

/// Maps and sets keyed by what sftpd-report or the system assigns (row ids, host names, PIDs,
/// the wrapper's session ids, times), never by what a partner chooses. foldhash hashes these
/// small keys several times faster than std's SipHash, and the ingest hashes some for every
/// line; it resists chosen collisions only minimally, so maps keyed by file names keep SipHash.
pub(crate) type IdMap<K, V> = foldhash::HashMap<K, V>;
pub(crate) type IdSet<T> = foldhash::HashSet<T>;
