//! What a closed file counts as: the one place that decides upload, download and complete, used
//! by capture mode (events, session totals) and by the ingest (which stores the answer in
//! `transfers.counts_as` and `transfers.complete`, so the views and reports only read it).

text_enum! {
    /// What an `open` asked for, from its flags.
    pub enum Direction {
        Upload => "upload",
        Download => "download",
        /// Opened for reading and writing.
        Both => "both",
        /// Not known: the flags had neither READ nor WRITE, or the `open` line is missing.
        None => "none",
    }
}

impl Direction {
    /// From sftp-server's flag list, e.g. `WRITE,CREATE,TRUNCATE`.
    pub(crate) fn from_open_flags(flags: &str) -> Direction {
        let read = flags.split(',').any(|f| f == "READ");
        let write = flags.split(',').any(|f| f == "WRITE" || f == "APPEND");
        match (read, write) {
            (true, true) => Direction::Both,
            (false, true) => Direction::Upload,
            (true, false) => Direction::Download,
            (false, false) => Direction::None,
        }
    }
}

text_enum! {
    /// Which total a closed file adds to.
    pub enum CountsAs {
        Upload => "upload",
        Download => "download",
    }
}

/// The verdict on one closed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClosedFile {
    /// The open's direction, or, where that is not known, what the counters show.
    pub direction: Direction,
    /// `None`: a file opened and closed without moving a byte, or read-write nothing.
    pub counts_as: Option<CountsAs>,
    /// Closed normally (not forced by the session's end) and no failure answered it.
    pub complete: bool,
}

/// Decides what a closed file was: by the bytes it moved, and where it moved none by what its
/// open asked for (`opened`, `None` when the `open` line is missing: an empty upload is still an
/// upload). `failed` says a failure answered the open, a read, a write or the close;
/// `reached_eof` that a read was answered with end of file (known from the packets only), which
/// makes a download complete even when the session's end forced its close.
pub(crate) fn classify_close(
    opened: Option<Direction>,
    bytes_read: u64,
    bytes_written: u64,
    forced: bool,
    failed: bool,
    reached_eof: bool,
) -> ClosedFile {
    let direction = match (bytes_read > 0, bytes_written > 0) {
        (true, true) => Direction::Both,
        (false, true) => Direction::Upload,
        (true, false) => Direction::Download,
        (false, false) => opened.unwrap_or(Direction::None),
    };
    let counts_as = match direction {
        Direction::Upload | Direction::Both => Some(CountsAs::Upload),
        Direction::Download if bytes_read > 0 || reached_eof => Some(CountsAs::Download),
        Direction::Download | Direction::None => None,
    };
    let whole_download = reached_eof && counts_as == Some(CountsAs::Download);
    ClosedFile {
        direction,
        counts_as,
        complete: !failed && (!forced || whole_download),
    }
}

/// The verdict on a file whose close line was cut: no byte counts, so it counts by what its open
/// asked for, and is never complete.
pub(crate) fn classify_cut_close(opened: Direction) -> ClosedFile {
    let counts_as = match opened {
        Direction::Upload | Direction::Both => Some(CountsAs::Upload),
        Direction::Download => Some(CountsAs::Download),
        Direction::None => None,
    };
    ClosedFile {
        direction: opened,
        counts_as,
        complete: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_from_flags() {
        assert_eq!(
            Direction::from_open_flags("WRITE,CREATE,TRUNCATE"),
            Direction::Upload
        );
        assert_eq!(Direction::from_open_flags("READ"), Direction::Download);
        assert_eq!(Direction::from_open_flags("READ,WRITE"), Direction::Both);
        assert_eq!(
            Direction::from_open_flags("WRITE,APPEND"),
            Direction::Upload
        );
        assert_eq!(Direction::from_open_flags(""), Direction::None);
        for &d in Direction::ALL {
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
    }

    #[test]
    fn what_a_close_counts_as() {
        let up = classify_close(Some(Direction::Upload), 0, 100, false, false, false);
        assert_eq!(up.counts_as, Some(CountsAs::Upload));
        assert!(up.complete);
        // An upload that wrote nothing (an empty file) is still an uploaded file.
        let empty = classify_close(Some(Direction::Upload), 0, 0, false, false, false);
        assert_eq!(empty.counts_as, Some(CountsAs::Upload));
        let both = classify_close(Some(Direction::Both), 5, 5, false, false, false);
        assert_eq!(both.counts_as, Some(CountsAs::Upload));
        // A read-write handle that only read is a download; one that moved nothing was opened
        // to write.
        let read_only = classify_close(Some(Direction::Both), 5, 0, false, false, false);
        assert_eq!(
            (read_only.direction, read_only.counts_as),
            (Direction::Download, Some(CountsAs::Download))
        );
        let untouched = classify_close(Some(Direction::Both), 0, 0, false, false, false);
        assert_eq!(untouched.counts_as, Some(CountsAs::Upload));
        // A download read to its end is complete even when the session's end closed it, and an
        // empty file read to its end is a download.
        let to_eof = classify_close(Some(Direction::Download), 7, 0, true, false, true);
        assert!(to_eof.complete);
        assert!(!classify_close(Some(Direction::Download), 7, 0, true, false, false).complete);
        assert!(!classify_close(Some(Direction::Upload), 0, 7, true, false, true).complete);
        let empty = classify_close(Some(Direction::Download), 0, 0, false, false, true);
        assert_eq!(empty.counts_as, Some(CountsAs::Download));
        let down = classify_close(Some(Direction::Download), 7, 0, false, false, false);
        assert_eq!(down.counts_as, Some(CountsAs::Download));
        // A file opened for reading and closed unread (a stat-like peek) is nothing.
        assert_eq!(
            classify_close(Some(Direction::Download), 0, 0, false, false, false).counts_as,
            None
        );
        // No open line: the counters decide.
        let missing = classify_close(None, 0, 9, false, false, false);
        assert_eq!(
            (missing.direction, missing.counts_as),
            (Direction::Upload, Some(CountsAs::Upload))
        );
        let missing = classify_close(Some(Direction::None), 3, 0, false, false, false);
        assert_eq!(
            (missing.direction, missing.counts_as),
            (Direction::Download, Some(CountsAs::Download))
        );
        assert!(!classify_close(Some(Direction::Upload), 0, 1, true, false, false).complete);
        assert!(!classify_close(Some(Direction::Upload), 0, 1, false, true, false).complete);
    }
}
