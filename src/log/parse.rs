//! Pure parsing of syslog lines from the wrapper, sftp-server, internal-sftp and sshd.
//!
//! Everything here works on byte lines and returns borrowed or owned values; no I/O. Names are
//! decoded from OpenSSH's vis(3) escaping back into their original bytes. sftp-server does not
//! escape `"`, so every message with a name is parsed from the right, where the fixed suffix is:
//! a file named `x" bytes read 0 written 9` cannot forge byte counters.

use crate::log::wrapper::WrapperLine;
use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// One syslog line split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    pub timestamp: Timestamp,
    /// `None` when the line has no host field.
    pub host: Option<&'a str>,
    pub program: &'a str,
    pub pid: Option<u32>,
    pub message: &'a [u8],
}

/// A syslog timestamp: RFC 3339 ones are complete; traditional ones lack the year and zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    Full(DateTime<FixedOffset>),
    /// Month (1-12), day, and time of day; local time of the logging host.
    NoYear {
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    },
}

impl Timestamp {
    /// Resolves to UTC. A traditional stamp gets the year of `reference` (the file's mtime), or
    /// the year before when that would put it more than a day after `reference` (a file that
    /// spans New Year), and is read as local time of this machine.
    pub(crate) fn resolve(&self, reference: DateTime<Local>) -> Option<Micros> {
        self.resolve_in(reference, &mut ZoneMinutes::new(Local))
    }

    /// [`Timestamp::resolve`] with the local times of this machine read through `local`, which
    /// remembers the last minute's offset (for a file's lines, one after another).
    pub(crate) fn resolve_in(
        &self,
        reference: DateTime<Local>,
        local: &mut ZoneMinutes<Local>,
    ) -> Option<Micros> {
        self.resolve_after(reference, local, None)
    }

    /// [`Timestamp::resolve_in`] for a line that follows others: a local time the zone's fall
    /// back repeats names its later instant when the earlier one plus the slack is before the
    /// instant in `after` (the latest line so far): the second 01:xx after the first is the
    /// later offset.
    pub(crate) fn resolve_after(
        &self,
        reference: DateTime<Local>,
        local: &mut ZoneMinutes<Local>,
        after: Option<(Micros, chrono::TimeDelta)>,
    ) -> Option<Micros> {
        let after = match after {
            Some((t, slack)) => Some((t.time()?, slack)),
            None => None,
        };
        match *self {
            Timestamp::Full(t) => Some(Micros::of(t.with_timezone(&Utc))),
            Timestamp::NoYear {
                month,
                day,
                hour,
                minute,
                second,
            } => {
                let mut build = |year: i32| -> Option<DateTime<Utc>> {
                    let naive = NaiveDate::from_ymd_opt(year, month, day)?
                        .and_hms_opt(hour, minute, second)?;
                    local.at_or_after(naive, after)
                };
                let year = reference.year();
                let this_year = build(year);
                // The same instant as `reference + 1 day`, without asking the local zone
                // for its offset again (which looks at the clock and `TZ` each time).
                let latest = reference.with_timezone(&Utc) + chrono::Duration::days(1);
                match this_year {
                    Some(t) if t <= latest => Some(Micros::of(t)),
                    _ => build(year - 1).or(this_year).map(Micros::of),
                }
            }
        }
    }
}

/// The instants that local times of `zone` name, one minute's offset remembered: asking the
/// zone costs a lookup of its rules and, for this machine's zone, a look at the clock and at
/// `TZ`, for every line, and a log's lines come minute after minute.
pub(crate) struct ZoneMinutes<Z: TimeZone> {
    zone: Z,
    /// A minute (its first second) whose every second the zone maps to one instant, with
    /// this offset.
    last: Option<(NaiveDateTime, Z::Offset)>,
}

impl<Z: TimeZone> ZoneMinutes<Z> {
    pub fn new(zone: Z) -> ZoneMinutes<Z> {
        ZoneMinutes { zone, last: None }
    }

    /// The instant local time `naive` names; of the two that a local time the zone repeats
    /// names, the earlier, unless it is before `after` (an instant less a slack): then the
    /// later. The first and last second of a minute mapped to one instant each, with the same
    /// offset, leave no room in between for a transition (a zone changes its offset at most
    /// once a minute): then every second of that minute is the local time minus that offset.
    pub(crate) fn at_or_after(
        &mut self,
        naive: NaiveDateTime,
        after: Option<(DateTime<Utc>, chrono::TimeDelta)>,
    ) -> Option<DateTime<Utc>> {
        use chrono::{Offset, Timelike};
        let minute = naive.with_second(0)?;
        if let Some((start, offset)) = &self.last
            && *start == minute
        {
            let utc = naive.checked_sub_offset(offset.fix())?;
            return Some(Utc.from_utc_datetime(&utc));
        }
        let at = match self.zone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(a, b) => {
                // Ordered here: chrono's `Local` gives the later one first.
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                let (early, late) = (a.min(b), a.max(b));
                Some(match after {
                    Some((latest, slack)) if early + slack < latest => late,
                    _ => early,
                })
            }
            chrono::LocalResult::None => None,
        };
        let first = self.zone.from_local_datetime(&minute).single();
        let last = minute
            .checked_add_signed(chrono::Duration::seconds(59))
            .and_then(|end| self.zone.from_local_datetime(&end).single());
        self.last = match (first, last) {
            (Some(first), Some(last)) if first.offset().fix() == last.offset().fix() => {
                Some((minute, first.offset().clone()))
            }
            _ => None,
        };
        at
    }
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The value of 1 to `max_len` ASCII digits, if it fits: what `str::parse` gives for such
/// text, without its UTF-8 check and sign handling (three numbers a line: a PID and two
/// counters or a time).
fn parse_digits(b: &[u8], max_len: usize) -> Option<u64> {
    if b.is_empty() || b.len() > max_len {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    parse_digits(b, 10).and_then(|n| u32::try_from(n).ok())
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    parse_digits(b, 20)
}

/// Splits off the first space-separated word.
fn word(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(b' ', input)?;
    Some((&input[..end], &input[end + 1..]))
}

fn parse_traditional_stamp(line: &[u8]) -> Option<(Timestamp, &[u8])> {
    // "Nov 26 21:06:15 " or "Nov  6 21:06:15 ": always 16 bytes.
    let head = line.get(..16)?;
    let month = MONTHS.iter().position(|m| *m == &head[..3])? as u32 + 1;
    // `journalctl -o short-precise` adds microseconds: `Nov 26 21:06:15.123456 `.
    let fraction = if head[15] == b'.' {
        let digits = line[16..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || line.get(16 + digits) != Some(&b' ') {
            return None;
        }
        digits + 1
    } else {
        0
    };
    if head[3] != b' ' || (head[15] != b' ' && fraction == 0) {
        return None;
    }
    let day_bytes = if head[4] == b' ' {
        &head[5..6]
    } else {
        &head[4..6]
    };
    let day = parse_u32(day_bytes)?;
    let time = &head[7..15];
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let hour = parse_u32(&time[0..2])?;
    let minute = parse_u32(&time[3..5])?;
    let second = parse_u32(&time[6..8])?;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((
        Timestamp::NoYear {
            month,
            day,
            hour,
            minute,
            second: second.min(59),
        },
        &line[16 + fraction..],
    ))
}

fn parse_rfc3339_stamp(line: &[u8]) -> Option<(Timestamp, &[u8])> {
    let (stamp, rest) = word(line)?;
    Some((Timestamp::Full(parse_iso_time(stamp)?), rest))
}

/// RFC 3339 (`2026-11-27T06:36:48.123456+01:00`, `…Z`), and the same with the offset written
/// without its colon (`+0100`), as `journalctl -o short-iso` and `short-iso-precise` write it.
fn parse_iso_time(stamp: &[u8]) -> Option<DateTime<chrono::FixedOffset>> {
    if stamp.len() < 20 || stamp[4] != b'-' || stamp[10] != b'T' {
        return None;
    }
    let text = std::str::from_utf8(stamp).ok()?;
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
}

/// An RFC 5424 line: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`, such as
/// `<134>1 2026-11-27T06:36:48.123+01:00 host sftp-server 4706 - - close …`.
fn parse_rfc5424_line(line: &[u8]) -> Option<SyslogLine<'_>> {
    let rest = line.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    parse_u32(&rest[..close])?;
    let rest = rest[close + 1..].strip_prefix(b"1 ")?;
    let (stamp, rest) = word(rest)?;
    let timestamp = Timestamp::Full(parse_iso_time(stamp)?);
    let (host, rest) = word(rest)?;
    let (app, rest) = word(rest)?;
    let (procid, rest) = word(rest)?;
    let (_msgid, rest) = word(rest)?;
    let message = skip_structured_data(rest)?;
    let message = message.strip_prefix(b"\xef\xbb\xbf").unwrap_or(message);
    // rsyslog's RSYSLOG_SyslogProtocol23Format writes its %msg%, which keeps the space that
    // followed `prog[pid]:` in the traditional header (`- -  session start …`).
    let message = message.strip_prefix(b" ").unwrap_or(message);
    let nil = |field: &[u8]| field == b"-";
    Some(SyslogLine {
        timestamp,
        host: (!nil(host))
            .then(|| std::str::from_utf8(host).ok())
            .flatten(),
        program: std::str::from_utf8(app)
            .ok()
            .filter(|a| !nil(a.as_bytes()))?,
        pid: if nil(procid) {
            None
        } else {
            Some(parse_u32(procid)?)
        },
        message,
    })
}

/// Skips RFC 5424 STRUCTURED-DATA (`-`, or `[id k="v" …]…` with `\]` and `\"` escaped in values)
/// and the space after it.
fn skip_structured_data(input: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = input.strip_prefix(b"-") {
        return Some(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let mut i = 0;
    while input.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match *input.get(i)? {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let rest = &input[i..];
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// Splits `prog[pid]:` (or `prog:`) off the front of `input`.
fn parse_tag(input: &[u8]) -> Option<(&str, Option<u32>, &[u8])> {
    let colon = memchr::memchr(b':', input)?;
    let tag = &input[..colon];
    if tag.is_empty() || tag.len() > 64 || tag.contains(&b' ') {
        return None;
    }
    let mut message = &input[colon + 1..];
    if message.first() == Some(&b' ') {
        message = &message[1..];
    }
    let (program, pid) = match tag.iter().position(|&b| b == b'[') {
        Some(open) if tag.last() == Some(&b']') => (
            &tag[..open],
            Some(parse_u32(&tag[open + 1..tag.len() - 1])?),
        ),
        Some(_) => return None,
        None => (tag, None),
    };
    Some((std::str::from_utf8(program).ok()?, pid, message))
}

/// Parses one line of a syslog file written in rsyslog's or syslog-ng's traditional format
/// (`Mon dd hh:mm:ss host prog[pid]: msg`) or with RFC 3339 stamps
/// (`2026-11-26T21:06:15.123456+01:00 host prog[pid]: msg`). A line without a host field
/// (`Mon dd hh:mm:ss prog[pid]: msg`) is accepted with `host: None`.
pub fn parse_syslog_line(line: &[u8]) -> Option<SyslogLine<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.first() == Some(&b'<') {
        return parse_rfc5424_line(line);
    }
    let (timestamp, rest) = parse_traditional_stamp(line).or_else(|| parse_rfc3339_stamp(line))?;
    let (first, after_first) = word(rest).unwrap_or((rest, b""));
    // "prog[pid]:" right after the stamp means there is no host field.
    if first.ends_with(b":")
        && let Some((program, pid, message)) = parse_tag(rest)
        && (pid.is_some() || after_first.is_empty() || first.len() > 1)
        && !first.contains(&b'.')
    {
        return Some(SyslogLine {
            timestamp,
            host: None,
            program,
            pid,
            message,
        });
    }
    let host = std::str::from_utf8(first).ok()?;
    if host.is_empty() {
        return None;
    }
    let (program, pid, message) = parse_tag(after_first)?;
    Some(SyslogLine {
        timestamp,
        host: Some(host),
        program,
        pid,
        message,
    })
}

/// Decodes OpenSSH's vis(3) escaping (`\ooo`, `\n`, `\t`, `\\` and the other C-style escapes)
/// into the original bytes. An unknown escape is kept as it stands.
pub(crate) fn unvis(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        // Most names have no escape at all: the bytes up to the next backslash are copied at
        // once, not a byte at a time.
        let Some(at) = memchr::memchr(b'\\', &input[i..]) else {
            out.extend_from_slice(&input[i..]);
            break;
        };
        out.extend_from_slice(&input[i..i + at]);
        i += at;
        let b = input[i];
        if i + 1 >= input.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = input[i + 1];
        let simple = match next {
            b'\\' => Some(b'\\'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'b' => Some(0x08),
            b'a' => Some(0x07),
            b'v' => Some(0x0b),
            b'f' => Some(0x0c),
            b's' => Some(b' '),
            b'E' => Some(0x1b),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            i += 2;
            continue;
        }
        if next.is_ascii_digit() && next < b'8' {
            // Up to three octal digits; vis writes "\0" for NUL when no digit follows.
            let mut value: u32 = 0;
            let mut j = i + 1;
            while j < input.len() && j < i + 4 && (b'0'..=b'7').contains(&input[j]) {
                value = value * 8 + u32::from(input[j] - b'0');
                j += 1;
            }
            if value <= 0xff {
                out.push(value as u8);
                i = j;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Encodes bytes as OpenSSH does for syslog: strnvis(VIS_CSTYLE | VIS_NL | VIS_TAB | VIS_OCTAL).
/// With [`unvis`] this turns sftp-server's stderr lines (`-e`, VIS_SAFE: tab, newline, return,
/// backspace and bell left raw) into exactly the text it would have sent to syslog.
pub(crate) fn vis_syslog(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 8);
    for (i, &c) in input.iter().enumerate() {
        let next = input.get(i + 1).copied().unwrap_or(0);
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            0 if !(b'0'..=b'7').contains(&next) => out.extend_from_slice(b"\\0"),
            b' '..=b'~' => out.push(c),
            _ => {
                out.push(b'\\');
                out.push(b'0' + (c >> 6));
                out.push(b'0' + ((c >> 3) & 7));
                out.push(b'0' + (c & 7));
            }
        }
    }
    out
}

text_enum! {
    /// Which program logged a session.
    pub enum SessionSource {
        Wrapper => "wrapper",
        SftpServer => "sftp-server",
        /// sshd's built-in SFTP server (`Subsystem sftp internal-sftp`).
        InternalSftp => "internal-sftp",
    }
}

text_enum! {
    /// What an operation row records: sftp-server's operations, a failure it answered, or a
    /// session the wrapper refused.
    pub enum OperationKind {
        Remove => "remove",
        Mkdir => "mkdir",
        Rmdir => "rmdir",
        Rename => "rename",
        PosixRename => "posix-rename",
        Symlink => "symlink",
        Hardlink => "hardlink",
        Set => "set",
        /// A file written by server-side copy (`copy-data`), from the wrapper's `file closed
        /// counts_as=copy` line: `path` the copy, `target` its source. Never traffic.
        Copy => "copy",
        /// A `sent status` failure.
        Failure => "failure",
        /// An open that failed (log-only sessions: no close line by sftp-server's end).
        Open => "open",
        /// A session the wrapper refused.
        Denied => "denied",
    }
}

/// What one sftp-server (or internal-sftp) message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpEvent {
    SessionOpened {
        user: String,
        client_ip: String,
    },
    SessionClosed {
        user: String,
        client_ip: String,
    },
    Open {
        path: Vec<u8>,
        flags: String,
        mode: String,
    },
    Close {
        path: Vec<u8>,
        bytes_read: u64,
        bytes_written: u64,
        forced: bool,
    },
    /// opendir, closedir, statvfs and the like: no row, but a `sent status` after them is theirs.
    Other {
        what: &'static str,
        path: Vec<u8>,
    },
    Remove {
        path: Vec<u8>,
    },
    Mkdir {
        path: Vec<u8>,
        mode: String,
    },
    Rmdir {
        path: Vec<u8>,
    },
    /// rename, posix-rename, symlink, hardlink.
    TwoPaths {
        kind: OperationKind,
        old: Vec<u8>,
        new: Vec<u8>,
    },
    Set {
        path: Vec<u8>,
        attribute: String,
        value: String,
    },
    Status {
        text: String,
    },
    /// A `close` or `forced close` message that reached syslog's cut: its counters, if any are
    /// visible, may be the end of a name (`x" bytes read 0 written 99999`), so there are none.
    CutClose {
        /// The name as far as the message shows it: possibly cut, possibly followed by text
        /// that only looks like counters.
        path_prefix: Vec<u8>,
        forced: bool,
    },
    /// A message that reached syslog's cut and is not a close: nothing in it is trusted.
    Cut,
    /// A message of a known shape whose values no honest sftp-server writes (a byte counter above
    /// what the store can hold): skipped, with this reason.
    Malformed {
        reason: &'static str,
    },
    /// A line from sftp-server that could not be read (unknown).
    Unparsed,
}

/// OpenSSH logs to syslog with `"%.500s"`: a message of exactly this many characters may have
/// been cut, and whatever ends it may be the partner's bytes rather than sftp-server's.
pub(crate) const SYSLOG_MESSAGE_CUT: usize = 500;

/// The largest byte counter the stores hold (their integers are signed 64-bit).
pub(crate) const MAX_COUNTER: u64 = i64::MAX as u64;

/// Strips `prefix "` from the front and `"` + a suffix from the back, returning the quoted name.
fn quoted_between<'a>(msg: &'a [u8], prefix: &[u8], suffix_start: usize) -> Option<&'a [u8]> {
    let inner = msg.strip_prefix(prefix)?.strip_prefix(b"\"")?;
    let end = suffix_start.checked_sub(prefix.len() + 1)?;
    let name = inner.get(..end)?;
    if msg.get(suffix_start) != Some(&b'"') {
        return None;
    }
    Some(name)
}

/// `<digits>` at the very end of `msg`, and where they start.
fn trailing_number(msg: &[u8]) -> Option<(u64, usize)> {
    let start = msg
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    Some((parse_u64(&msg[start..])?, start))
}

fn parse_close(msg: &[u8]) -> Option<SftpEvent> {
    let (forced, body) = match msg.strip_prefix(b"forced ") {
        Some(rest) => (true, rest),
        None => (false, msg),
    };
    let (written, at) = trailing_number(body)?;
    let before = body[..at].strip_suffix(b" written ")?;
    let (read, at) = trailing_number(before)?;
    let before = before[..at].strip_suffix(b"\" bytes read ")?;
    let name = before.strip_prefix(b"close \"")?;
    Some(SftpEvent::Close {
        path: unvis(name),
        bytes_read: read,
        bytes_written: written,
        forced,
    })
}

/// ` mode 0<octal>` at the end: returns the mode and where the suffix starts.
fn trailing_mode(msg: &[u8]) -> Option<(String, usize)> {
    let pos = msg.windows(6).rposition(|w| w == b" mode ")?;
    let mode = &msg[pos + 6..];
    if mode.is_empty() || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    Some((String::from_utf8_lossy(mode).into_owned(), pos))
}

fn parse_open(msg: &[u8]) -> Option<SftpEvent> {
    let (mode, mode_at) = trailing_mode(msg)?;
    let before_mode = &msg[..mode_at];
    let flags_at = before_mode.windows(8).rposition(|w| w == b"\" flags ")?;
    let flags = &before_mode[flags_at + 8..];
    if !flags.iter().all(|&b| b.is_ascii_uppercase() || b == b',') {
        return None;
    }
    let name = quoted_between(msg, b"open ", flags_at)?;
    Some(SftpEvent::Open {
        path: unvis(name),
        flags: String::from_utf8_lossy(flags).into_owned(),
        mode,
    })
}

/// `PREFIX "name"`: a message whose only field is one quoted name.
fn parse_single_name(msg: &[u8], prefix: &[u8]) -> Option<Vec<u8>> {
    let rest = msg.strip_prefix(prefix)?.strip_prefix(b"\"")?;
    Some(unvis(rest.strip_suffix(b"\"")?))
}

fn parse_two_paths(msg: &[u8], prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let rest = msg
        .strip_prefix(prefix)?
        .strip_prefix(b" old \"")?
        .strip_suffix(b"\"")?;
    // Both names are unescaped quotes-wise; the first separator is the most likely one.
    let sep = rest.windows(7).position(|w| w == b"\" new \"")?;
    Some((unvis(&rest[..sep]), unvis(&rest[sep + 7..])))
}

fn parse_set(msg: &[u8]) -> Option<SftpEvent> {
    let rest = msg.strip_prefix(b"set \"")?;
    // Try each `" <attribute> ` position from the right until the tail fits that attribute.
    let mut end = rest.len();
    while let Some(q) = rest[..end].iter().rposition(|&b| b == b'"') {
        let tail = &rest[q + 1..];
        if let Some(tail) = tail.strip_prefix(b" ") {
            let (attr, value) = word(tail).unwrap_or((tail, b""));
            let fits = match attr {
                b"size" => parse_u64(value).is_some(),
                b"mode" => !value.is_empty() && value.iter().all(|b| (b'0'..=b'7').contains(b)),
                b"modtime" => !value.is_empty() && !value.contains(&b' '),
                b"owner" => {
                    let parts: Vec<&[u8]> = value.split(|&b| b == b' ').collect();
                    parts.len() == 3
                        && parse_u64(parts[0]).is_some()
                        && parts[1] == b"group"
                        && parse_u64(parts[2]).is_some()
                }
                _ => false,
            };
            if fits {
                return Some(SftpEvent::Set {
                    path: unvis(&rest[..q]),
                    attribute: String::from_utf8_lossy(attr).into_owned(),
                    value: String::from_utf8_lossy(value).into_owned(),
                });
            }
        }
        end = q;
    }
    None
}

fn parse_session_line(msg: &[u8], prefix: &[u8]) -> Option<(String, String)> {
    let rest = msg.strip_prefix(prefix)?.strip_suffix(b"]")?;
    let from = rest.windows(7).rposition(|w| w == b" from [")?;
    let user = std::str::from_utf8(&rest[..from]).ok()?;
    let ip = std::str::from_utf8(&rest[from + 7..]).ok()?;
    Some((user.to_owned(), ip.to_owned()))
}

/// Parses a message of sftp-server or internal-sftp at log level INFO.
pub(crate) fn parse_sftp_message(msg: &[u8]) -> SftpEvent {
    if msg.len() == SYSLOG_MESSAGE_CUT {
        return parse_cut(msg);
    }
    match parse_sftp_known(msg) {
        Some(SftpEvent::Close {
            bytes_read,
            bytes_written,
            ..
        }) if bytes_read > MAX_COUNTER || bytes_written > MAX_COUNTER => SftpEvent::Malformed {
            reason: "byte counter above 9223372036854775807",
        },
        Some(event) => event,
        None => SftpEvent::Unparsed,
    }
}

/// A message cut at [`SYSLOG_MESSAGE_CUT`]: a close keeps what its name shows, nothing else is
/// read.
fn parse_cut(msg: &[u8]) -> SftpEvent {
    let (forced, body) = match msg.strip_prefix(b"forced ") {
        Some(rest) => (true, rest),
        None => (false, msg),
    };
    match body.strip_prefix(b"close \"") {
        Some(name) if !msg.starts_with(b"forced closedir ") => SftpEvent::CutClose {
            path_prefix: unvis(name),
            forced,
        },
        _ => SftpEvent::Cut,
    }
}

/// Makes a complete message that is exactly [`SYSLOG_MESSAGE_CUT`] characters long longer, so
/// that it cannot be taken for a cut one, without changing what it says: the written counter that
/// ends a close gets a leading zero; in other messages the first plain character of its first quoted name is written as an octal escape,
/// which [`unvis`] reads back to the same byte. Capture mode forwards sftp-server's whole message
/// and uses this; a message with neither is left as it is (and read as cut).
pub(crate) fn lengthen_uncut(message: &mut Vec<u8>) {
    let is_close = message.starts_with(b"close \"") || message.starts_with(b"forced close \"");
    if is_close
        && let Some(space) = message.iter().rposition(|&b| b == b' ')
        && space + 1 < message.len()
        && message[space + 1..].iter().all(u8::is_ascii_digit)
    {
        message.insert(space + 1, b'0');
        return;
    }
    let Some(quote) = message.iter().position(|&b| b == b'"') else {
        return;
    };
    let mut i = quote + 1;
    while i < message.len() {
        match message[i] {
            b'"' => return,
            b'\\' => {
                // An escape: `\\c`, or up to three octal digits, as unvis reads them.
                let digits = message[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .count();
                i += 1 + digits.max(1);
            }
            c => {
                let escaped = [
                    b'\\',
                    b'0' + (c >> 6),
                    b'0' + ((c >> 3) & 7),
                    b'0' + (c & 7),
                ];
                message.splice(i..=i, escaped);
                return;
            }
        }
    }
}

fn parse_sftp_known(msg: &[u8]) -> Option<SftpEvent> {
    let first = msg.split(|&b| b == b' ').next()?;
    match first {
        b"open" => parse_open(msg),
        b"close" | b"forced" if msg.starts_with(b"forced closedir ") => {
            parse_single_name(msg, b"forced closedir ").map(|path| SftpEvent::Other {
                what: "closedir",
                path,
            })
        }
        b"close" | b"forced" => parse_close(msg),
        b"closedir" => parse_single_name(msg, b"closedir ").map(|path| SftpEvent::Other {
            what: "closedir",
            path,
        }),
        b"opendir" => parse_single_name(msg, b"opendir ").map(|path| SftpEvent::Other {
            what: "opendir",
            path,
        }),
        b"statvfs" => parse_single_name(msg, b"statvfs ").map(|path| SftpEvent::Other {
            what: "statvfs",
            path,
        }),
        b"remove" => parse_single_name(msg, b"remove name ").map(|path| SftpEvent::Remove { path }),
        b"rmdir" => parse_single_name(msg, b"rmdir name ").map(|path| SftpEvent::Rmdir { path }),
        b"mkdir" => {
            let (mode, at) = trailing_mode(msg)?;
            parse_single_name(&msg[..at], b"mkdir name ")
                .map(|path| SftpEvent::Mkdir { path, mode })
        }
        b"rename" | b"posix-rename" | b"symlink" | b"hardlink" => {
            let kind = match first {
                b"rename" => OperationKind::Rename,
                b"posix-rename" => OperationKind::PosixRename,
                b"symlink" => OperationKind::Symlink,
                _ => OperationKind::Hardlink,
            };
            parse_two_paths(msg, first).map(|(old, new)| SftpEvent::TwoPaths { kind, old, new })
        }
        b"set" => parse_set(msg),
        b"sent" => {
            let text = msg.strip_prefix(b"sent status ")?;
            Some(SftpEvent::Status {
                text: String::from_utf8_lossy(text).into_owned(),
            })
        }
        b"session" => {
            if let Some((user, client_ip)) =
                parse_session_line(msg, b"session opened for local user ")
            {
                Some(SftpEvent::SessionOpened { user, client_ip })
            } else {
                parse_session_line(msg, b"session closed for local user ")
                    .map(|(user, client_ip)| SftpEvent::SessionClosed { user, client_ip })
            }
        }
        _ => None,
    }
}

/// sshd's `Accepted <method> for <user> from <ip> port <port> ssh2[: <key type> <fingerprint>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub method: String,
    pub user: String,
    pub client_ip: String,
    pub client_port: u16,
    pub key: Option<String>,
}

pub(crate) fn parse_accepted(msg: &[u8]) -> Option<Accepted> {
    let text = std::str::from_utf8(msg).ok()?;
    let rest = text.strip_prefix("Accepted ")?;
    let (method, rest) = rest.split_once(" for ")?;
    let (user, rest) = rest.rsplit_once(" from ")?;
    let mut words = rest.split(' ');
    let client_ip = words.next()?.to_owned();
    if words.next()? != "port" {
        return None;
    }
    let client_port = words.next()?.parse().ok()?;
    let rest: Vec<&str> = words.collect();
    let key = match rest.as_slice() {
        [proto, kind, fp, ..] if proto.ends_with(':') => Some(format!("{kind} {fp}")),
        _ => None,
    };
    Some(Accepted {
        method: method.to_owned(),
        user: user.to_owned(),
        client_ip,
        client_port,
        key,
    })
}

/// Which program wrote a line, as far as ingest cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Wrapper(WrapperLine),
    Sftp {
        source: SessionSource,
        event: SftpEvent,
    },
    Accepted(Accepted),
    /// A line of a program we do not read.
    Foreign,
}

/// Classifies a message by its program. `wrapper_ident` is the wrapper's syslog ident.
pub fn classify(program: &str, message: &[u8], wrapper_ident: &str) -> Record {
    if program == wrapper_ident {
        return match WrapperLine::parse(message) {
            Some(ev) => Record::Wrapper(ev),
            None => Record::Foreign,
        };
    }
    match program {
        "sftp-server" => Record::Sftp {
            source: SessionSource::SftpServer,
            event: parse_sftp_message(message),
        },
        "internal-sftp" => Record::Sftp {
            source: SessionSource::InternalSftp,
            event: parse_sftp_message(message),
        },
        "sshd" | "sshd-session" => {
            if let Some(inner) = message.strip_suffix(b" [postauth]")
                && let Some(event) = parse_sftp_known(inner)
            {
                return Record::Sftp {
                    source: SessionSource::InternalSftp,
                    event,
                };
            }
            match parse_accepted(message) {
                Some(a) => Record::Accepted(a),
                None => Record::Foreign,
            }
        }
        _ => Record::Foreign,
    }
}

/// An instant as integer microseconds since 1970-01-01 UTC: how a time is compared, stored and
/// bound as a query parameter; it becomes text only when rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    pub(crate) const HOUR: i64 = 3_600_000_000;

    pub fn of(t: DateTime<Utc>) -> Micros {
        Micros(t.timestamp_micros())
    }

    /// `us` as a time chrono (and so every store) can hold; `None` past its range.
    pub fn checked(us: i64) -> Option<Micros> {
        DateTime::<Utc>::from_timestamp_micros(us).map(|_| Micros(us))
    }

    pub fn now() -> Micros {
        Micros::of(Utc::now())
    }

    /// `self` moved by `d`, saturating at the ends of the range.
    pub fn plus(self, d: chrono::TimeDelta) -> Micros {
        Micros(
            self.0
                .saturating_add(d.num_microseconds().unwrap_or(i64::MAX)),
        )
    }

    /// `self` moved back by `d`, saturating at the ends of the range.
    pub(crate) fn minus(self, d: chrono::TimeDelta) -> Micros {
        Micros(
            self.0
                .saturating_sub(d.num_microseconds().unwrap_or(i64::MAX)),
        )
    }

    /// `None` past chrono's range.
    pub fn time(self) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_micros(self.0)
    }

    /// The first microsecond of the UTC hour this falls in (before 1970 too).
    pub(crate) fn hour_floor(self) -> Micros {
        Micros(self.0 - self.0.rem_euclid(Self::HOUR))
    }
}

impl std::str::FromStr for Micros {
    type Err = String;

    /// What `Display` writes.
    fn from_str(s: &str) -> Result<Micros, String> {
        storage_micros(s)
            .map(Micros)
            .ok_or_else(|| format!("not a UTC time to the microsecond: {s:?}"))
    }
}

impl std::fmt::Display for Micros {
    /// UTC, to the microsecond (`2026-11-26T21:15:11.000000Z`): CSV and JSON reports, messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::Timelike;
        let Some(t) = self.time() else {
            return write!(f, "{} us since 1970", self.0);
        };
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
        }
        // Written by hand, as chrono's formatter interprets its pattern each time: a report
        // of millions of rows shows a time in each.
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 6, nanos / 1000);
        // ASCII digits and separators.
        f.write_str(std::str::from_utf8(&out).unwrap_or_default())
    }
}

/// Text a time was stored as before it was kept as [`Micros`] (SQLite before schema 6, and still
/// its bookkeeping columns and rollup hours: `2026-11-26T21:15:11.000000Z`, what [`Micros`]'s
/// `Display` writes), as microseconds; `None` for anything else.
pub(crate) fn storage_micros(s: &str) -> Option<i64> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ")
        .ok()
        .map(|n| n.and_utc().timestamp_micros())
}

/// Renders a name for people: UTF-8 as it is, other bytes as `\xHH` (and `\` as `\\`).
pub fn path_text(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn path_text_is_readable_and_unambiguous() {
        assert_eq!(path_text(b"/h/a b.txt"), "/h/a b.txt");
        assert_eq!(path_text("/h/caf\u{e9}".as_bytes()), "/h/caf\u{e9}");
        assert_eq!(path_text(b"/h/\xff\n\\"), "/h/\\xff\\x0a\\\\");
    }

    #[test]
    fn traditional_lines() {
        let l = parse_syslog_line(b"Nov 26 21:15:11 vm sftp-server[4887]: session opened for local user swt from [127.0.0.1]\n").unwrap();
        assert_eq!(l.host, Some("vm"));
        assert_eq!(l.program, "sftp-server");
        assert_eq!(l.pid, Some(4887));
        assert_eq!(
            l.message,
            b"session opened for local user swt from [127.0.0.1]"
        );
        assert_eq!(
            l.timestamp,
            Timestamp::NoYear {
                month: 11,
                day: 26,
                hour: 21,
                minute: 15,
                second: 11
            }
        );
        let l = parse_syslog_line(b"Nov  6 01:02:03 host.example.com sshd[1]: Accepted publickey for a from 1.2.3.4 port 5 ssh2").unwrap();
        assert_eq!(l.host, Some("host.example.com"));
        assert_eq!(
            l.timestamp,
            Timestamp::NoYear {
                month: 11,
                day: 6,
                hour: 1,
                minute: 2,
                second: 3
            }
        );
        let l = parse_syslog_line(b"Jan  1 00:00:00 h logger: plain tag").unwrap();
        assert_eq!(
            (l.program, l.pid, l.message),
            ("logger", None, &b"plain tag"[..])
        );
    }

    #[test]
    fn rfc3339_lines() {
        let l = parse_syslog_line(
            b"2026-11-26T21:15:11.123456+01:00 sftp1 sftpd-wrapper[10]: session start sid=x user=u",
        )
        .unwrap();
        assert_eq!(l.host, Some("sftp1"));
        let Timestamp::Full(t) = l.timestamp else {
            panic!()
        };
        assert_eq!(
            Micros::of(t.with_timezone(&Utc)).to_string(),
            "2026-11-26T20:15:11.123456Z"
        );
    }

    #[test]
    fn lines_without_host() {
        let l = parse_syslog_line(b"Nov 26 21:15:11 sftp-server[4887]: opendir \"/x\"").unwrap();
        assert_eq!(l.host, None);
        assert_eq!(l.program, "sftp-server");
    }

    #[test]
    fn garbage_is_not_a_line() {
        for bad in [
            &b""[..],
            b"hello world",
            b"Nov 26 21:15:11",
            b"Xyz 26 21:15:11 h p: m",
            b"Nov 32 21:15:11 h p: m",
            b"Nov 26 25:15:11 h p: m",
            b"Nov 26 21:15:11 h p[x]: m",
        ] {
            assert!(
                parse_syslog_line(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn year_inference_rolls_back_across_new_year() {
        let local_year = |t: &Timestamp, reference: DateTime<Local>| {
            t.resolve(reference)
                .unwrap()
                .time()
                .unwrap()
                .with_timezone(&Local)
                .year()
        };
        let reference = Local.with_ymd_and_hms(2027, 1, 2, 10, 0, 0).unwrap();
        let dec = Timestamp::NoYear {
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 0,
        };
        let jan = Timestamp::NoYear {
            month: 1,
            day: 1,
            hour: 0,
            minute: 1,
            second: 0,
        };
        assert_eq!(local_year(&dec, reference), 2026);
        assert_eq!(local_year(&jan, reference), 2027);
        let mid = Local.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        assert_eq!(local_year(&dec, mid), 2025);
        let nov = Timestamp::NoYear {
            month: 11,
            day: 26,
            hour: 9,
            minute: 0,
            second: 0,
        };
        assert_eq!(local_year(&nov, mid), 2026);
    }

    fn sftp(msg: &[u8]) -> SftpEvent {
        parse_sftp_message(msg)
    }

    #[test]
    fn sftp_server_lines() {
        assert_eq!(
            sftp(b"session opened for local user acme from [192.0.2.7]"),
            SftpEvent::SessionOpened {
                user: "acme".into(),
                client_ip: "192.0.2.7".into()
            }
        );
        assert_eq!(
            sftp(b"session closed for local user acme from [2001:db8::1]"),
            SftpEvent::SessionClosed {
                user: "acme".into(),
                client_ip: "2001:db8::1".into()
            }
        );
        assert_eq!(
            sftp(b"open \"/home/acme/a b.txt\" flags WRITE,CREATE,TRUNCATE mode 0644"),
            SftpEvent::Open {
                path: b"/home/acme/a b.txt".to_vec(),
                flags: "WRITE,CREATE,TRUNCATE".into(),
                mode: "0644".into()
            }
        );
        assert_eq!(
            sftp(b"open \"/x\" flags  mode 0666"),
            SftpEvent::Open {
                path: b"/x".to_vec(),
                flags: "".into(),
                mode: "0666".into()
            }
        );
        assert_eq!(
            sftp(b"close \"/home/acme/a\" bytes read 0 written 3000000"),
            SftpEvent::Close {
                path: b"/home/acme/a".to_vec(),
                bytes_read: 0,
                bytes_written: 3000000,
                forced: false
            }
        );
        assert_eq!(
            sftp(b"forced close \"/home/acme/big.bin\" bytes read 0 written 1234"),
            SftpEvent::Close {
                path: b"/home/acme/big.bin".to_vec(),
                bytes_read: 0,
                bytes_written: 1234,
                forced: true
            }
        );
        assert_eq!(
            sftp(b"remove name \"/h/x\""),
            SftpEvent::Remove {
                path: b"/h/x".to_vec()
            }
        );
        assert_eq!(
            sftp(b"mkdir name \"/h/d\" mode 0777"),
            SftpEvent::Mkdir {
                path: b"/h/d".to_vec(),
                mode: "0777".into()
            }
        );
        assert_eq!(
            sftp(b"rmdir name \"/h/d\""),
            SftpEvent::Rmdir {
                path: b"/h/d".to_vec()
            }
        );
        assert_eq!(
            sftp(b"posix-rename old \"/h/a.filepart\" new \"/h/a\""),
            SftpEvent::TwoPaths {
                kind: OperationKind::PosixRename,
                old: b"/h/a.filepart".to_vec(),
                new: b"/h/a".to_vec()
            }
        );
        assert_eq!(
            sftp(b"rename old \"/h/a\" new \"/h/b\""),
            SftpEvent::TwoPaths {
                kind: OperationKind::Rename,
                old: b"/h/a".to_vec(),
                new: b"/h/b".to_vec()
            }
        );
        assert_eq!(
            sftp(b"symlink old \"t\" new \"/h/l\""),
            SftpEvent::TwoPaths {
                kind: OperationKind::Symlink,
                old: b"t".to_vec(),
                new: b"/h/l".to_vec()
            }
        );
        assert_eq!(
            sftp(b"hardlink old \"/h/a\" new \"/h/b\""),
            SftpEvent::TwoPaths {
                kind: OperationKind::Hardlink,
                old: b"/h/a".to_vec(),
                new: b"/h/b".to_vec()
            }
        );
        assert_eq!(
            sftp(b"set \"/h/a\" modtime 20261126-21:15:11"),
            SftpEvent::Set {
                path: b"/h/a".to_vec(),
                attribute: "modtime".into(),
                value: "20261126-21:15:11".into()
            }
        );
        assert_eq!(
            sftp(b"set \"/h/a\" mode 0644"),
            SftpEvent::Set {
                path: b"/h/a".to_vec(),
                attribute: "mode".into(),
                value: "0644".into()
            }
        );
        assert_eq!(
            sftp(b"set \"/h/a\" size 0"),
            SftpEvent::Set {
                path: b"/h/a".to_vec(),
                attribute: "size".into(),
                value: "0".into()
            }
        );
        assert_eq!(
            sftp(b"set \"/h/a\" owner 1000 group 1000"),
            SftpEvent::Set {
                path: b"/h/a".to_vec(),
                attribute: "owner".into(),
                value: "1000 group 1000".into()
            }
        );
        assert_eq!(
            sftp(b"sent status Permission denied"),
            SftpEvent::Status {
                text: "Permission denied".into()
            }
        );
        assert_eq!(
            sftp(b"opendir \"/h\""),
            SftpEvent::Other {
                what: "opendir",
                path: b"/h".to_vec()
            }
        );
        assert_eq!(
            sftp(b"closedir \"/h\""),
            SftpEvent::Other {
                what: "closedir",
                path: b"/h".to_vec()
            }
        );
        assert_eq!(
            sftp(b"forced closedir \"/h\""),
            SftpEvent::Other {
                what: "closedir",
                path: b"/h".to_vec()
            }
        );
        assert_eq!(
            sftp(b"statvfs \"/h\""),
            SftpEvent::Other {
                what: "statvfs",
                path: b"/h".to_vec()
            }
        );
        assert_eq!(sftp(b"received client version 3"), SftpEvent::Unparsed);
    }

    #[test]
    fn names_cannot_forge_counters_or_flags() {
        assert_eq!(
            sftp(b"close \"/h/x\" bytes read 0 written 9\" bytes read 0 written 5"),
            SftpEvent::Close {
                path: b"/h/x\" bytes read 0 written 9".to_vec(),
                bytes_read: 0,
                bytes_written: 5,
                forced: false
            }
        );
        assert_eq!(
            sftp(b"open \"/h/y\" flags READ mode 0644\" flags WRITE,CREATE mode 0600"),
            SftpEvent::Open {
                path: b"/h/y\" flags READ mode 0644".to_vec(),
                flags: "WRITE,CREATE".into(),
                mode: "0600".into()
            }
        );
        assert_eq!(
            sftp(b"set \"/h/z\" size 5\" mode 0644"),
            SftpEvent::Set {
                path: b"/h/z\" size 5".to_vec(),
                attribute: "mode".into(),
                value: "0644".into()
            }
        );
        assert_eq!(
            sftp(b"session opened for local user a from [1.2.3.4] from [5.6.7.8]"),
            SftpEvent::SessionOpened {
                user: "a from [1.2.3.4]".into(),
                client_ip: "5.6.7.8".into()
            }
        );
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            sftp(b"close \"/h/tab\\there\\nnl\\\\bs\\303\\251\\377\" bytes read 1 written 0"),
            SftpEvent::Close {
                path: b"/h/tab\there\nnl\\bs\xc3\xa9\xff".to_vec(),
                bytes_read: 1,
                bytes_written: 0,
                forced: false
            }
        );
        assert_eq!(unvis(b"a\\0b"), b"a\0b");
        assert_eq!(unvis(b"\\000\\0011"), b"\0\x011");
        assert_eq!(unvis(b"trailing\\"), b"trailing\\");
        assert_eq!(unvis(b"\\q"), b"\\q");
    }

    #[test]
    fn truncated_lines_are_unparsed_not_misread() {
        let mut long = b"close \"/h/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 480));
        assert_eq!(long.len(), 490);
        assert_eq!(sftp(&long), SftpEvent::Unparsed);
        let mut open = b"open \"/h/".to_vec();
        open.extend(std::iter::repeat_n(b'b', 470));
        open.extend(b"\" flags WRI");
        assert_eq!(sftp(&open), SftpEvent::Unparsed);
        assert_eq!(sftp(b"rename old \"/h/a\" new \"/h/"), SftpEvent::Unparsed);
        assert_eq!(sftp(b"mkdir name \"/h/d"), SftpEvent::Unparsed);
    }

    #[test]
    fn sshd_lines() {
        assert_eq!(
            classify(
                "sshd",
                b"Accepted publickey for acme from 192.0.2.7 port 50022 ssh2: ED25519 SHA256:abc",
                "sftpd-wrapper"
            ),
            Record::Accepted(Accepted {
                method: "publickey".into(),
                user: "acme".into(),
                client_ip: "192.0.2.7".into(),
                client_port: 50022,
                key: Some("ED25519 SHA256:abc".into())
            })
        );
        assert_eq!(
            classify(
                "sshd",
                b"Accepted password for acme from ::1 port 4 ssh2",
                "sftpd-wrapper"
            ),
            Record::Accepted(Accepted {
                method: "password".into(),
                user: "acme".into(),
                client_ip: "::1".into(),
                client_port: 4,
                key: None
            })
        );
        assert_eq!(
            classify(
                "sshd-session",
                b"open \"/x\" flags READ mode 0666 [postauth]",
                "sftpd-wrapper"
            ),
            Record::Sftp {
                source: SessionSource::InternalSftp,
                event: SftpEvent::Open {
                    path: b"/x".to_vec(),
                    flags: "READ".into(),
                    mode: "0666".into()
                }
            }
        );
        assert_eq!(
            classify(
                "sshd",
                b"Received disconnect from 1.2.3.4 port 5:11: bye [postauth]",
                "sftpd-wrapper"
            ),
            Record::Foreign
        );
        assert_eq!(
            classify("cron", b"open \"/x\" flags READ mode 0666", "sftpd-wrapper"),
            Record::Foreign
        );
        assert!(matches!(
            classify("internal-sftp", b"remove name \"/x\"", "w"),
            Record::Sftp {
                source: SessionSource::InternalSftp,
                ..
            }
        ));
    }

    #[test]
    fn wrapper_lines() {
        let Record::Wrapper(ev) = classify(
            "sftpd-wrapper",
            b"session end sid=vm-1 user=acme client_ip=127.0.0.1 sftp_pid=12 duration_ms=46 exit_status=0",
            "sftpd-wrapper",
        ) else {
            panic!()
        };
        assert_eq!(ev.event(), "session end");
        assert_eq!(ev.sid(), Some("vm-1"));
        assert!(matches!(
            ev,
            WrapperLine::SessionEnd {
                duration_ms: Some(46),
                ..
            }
        ));
        assert_eq!(
            classify(
                "sftpd-wrapper",
                b"sftpd-wrapper: syslog is not reachable",
                "sftpd-wrapper"
            ),
            Record::Foreign
        );
    }

    #[test]
    fn journal_rfc5424_and_rfc3339_formats() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = Local::now();
        for (line, at, host, pid) in [
            // journalctl -o short-iso, short-iso-precise
            (
                &b"2026-11-27T06:36:48+0100 vm sftp-server[4706]: remove name \"/x\""[..],
                "2026-11-27T05:36:48Z",
                Some("vm"),
                Some(4706),
            ),
            (
                b"2026-11-27T06:36:48.123456+0100 vm sftp-server[4706]: remove name \"/x\"",
                "2026-11-27T05:36:48.123456Z",
                Some("vm"),
                Some(4706),
            ),
            // journalctl -o short-precise (the year is the reference's)
            (
                b"Nov 27 06:36:48.123456 vm sftp-server[4706]: remove name \"/x\"",
                "",
                Some("vm"),
                Some(4706),
            ),
            // RFC 5424, with and without structured data, and a BOM
            (
                b"<134>1 2026-11-27T06:36:48.123+01:00 host sftp-server 4706 - - remove name \"/x\"",
                "2026-11-27T05:36:48.123Z",
                Some("host"),
                Some(4706),
            ),
            (
                b"<134>1 2026-11-27T05:36:48Z host sftp-server 4706 ID47 [a@1 b=\"x\\]y\"][c@2] \xef\xbb\xbfremove name \"/x\"",
                "2026-11-27T05:36:48Z",
                Some("host"),
                Some(4706),
            ),
            // rsyslog's RFC 3339 variants: fraction or not, Z or offset
            (
                b"2026-11-27T06:36:48.123456+01:00 host sftp-server[4706]: remove name \"/x\"",
                "2026-11-27T05:36:48.123456Z",
                Some("host"),
                Some(4706),
            ),
            (
                b"2026-11-27T05:36:48Z host sftp-server[4706]: remove name \"/x\"",
                "2026-11-27T05:36:48Z",
                Some("host"),
                Some(4706),
            ),
            (
                b"2026-11-27T00:36:48-05:00 host sftp-server[4706]: remove name \"/x\"",
                "2026-11-27T05:36:48Z",
                Some("host"),
                Some(4706),
            ),
        ] {
            let l = parse_syslog_line(line).unwrap_or_else(|| panic!("{}", line.escape_ascii()));
            assert_eq!(l.host, host, "{}", line.escape_ascii());
            assert_eq!((l.program, l.pid), ("sftp-server", pid));
            assert_eq!(l.message, b"remove name \"/x\"");
            if !at.is_empty() {
                assert_eq!(l.timestamp.resolve(now), Some(Micros::of(utc(at))), "{}", line.escape_ascii());
            }
        }
    }

    #[test]
    fn the_forged_counters_of_a_cut_close_are_not_read() {
        // The attack: a name whose cut leaves its own tail as the counters.
        let mut name = b"/".repeat(459);
        name.extend_from_slice(b"\" bytes read 0 written 99999999999");
        let mut line = b"close \"".to_vec();
        line.extend(&name);
        line.extend_from_slice(b"\" bytes read 0 written 5000000000");
        let cut = &line[..SYSLOG_MESSAGE_CUT];
        assert!(cut.ends_with(b"written 99999999999"));
        assert!(matches!(
            sftp(cut),
            SftpEvent::CutClose { forced: false, .. }
        ));
    }

    #[test]
    fn counters_above_the_store_are_malformed() {
        for line in [
            &b"close \"/x\" bytes read 0 written 18446744068709551616"[..],
            b"close \"/x\" bytes read 9223372036854775808 written 0",
        ] {
            assert!(
                matches!(sftp(line), SftpEvent::Malformed { .. }),
                "{line:?}"
            );
        }
        assert!(matches!(
            sftp(b"close \"/x\" bytes read 9223372036854775807 written 0"),
            SftpEvent::Close { .. }
        ));
    }

    fn vis(name: &[u8]) -> Vec<u8> {
        vis_syslog(name)
    }

    /// A zone whose transitions fall inside a minute: 37 seconds forward at 01:00:10 UTC of
    /// March 29th 2026 (local 02:00:10 to 02:00:47: a gap from mid-minute), then 52 seconds back
    /// at 01:00:10 UTC of March 30th (local 02:00:47 to 01:59:55: a fold across the minute).
    #[cfg(feature = "accounting")]
    #[derive(Debug, Clone, Copy)]
    struct MidMinuteZone;

    #[cfg(feature = "accounting")]
    impl MidMinuteZone {
        const FORWARD: i64 = 1_774_746_010;
        const BACK: i64 = Self::FORWARD + 86_400;
        const OFFSETS: [i32; 3] = [3600, 3637, 3585];

        fn offset_at(utc: i64) -> i32 {
            if utc < Self::FORWARD {
                3600
            } else if utc < Self::BACK {
                3637
            } else {
                3585
            }
        }
    }

    #[cfg(feature = "accounting")]
    impl TimeZone for MidMinuteZone {
        type Offset = FixedOffset;

        fn from_offset(_: &FixedOffset) -> MidMinuteZone {
            MidMinuteZone
        }

        fn offset_from_local_date(&self, _: &NaiveDate) -> chrono::MappedLocalTime<FixedOffset> {
            unreachable!("only local date-times are asked for")
        }

        fn offset_from_local_datetime(
            &self,
            local: &NaiveDateTime,
        ) -> chrono::MappedLocalTime<FixedOffset> {
            let seconds = local.and_utc().timestamp();
            // The offsets that map this local time back onto themselves, earliest instant first.
            let mut fits: Vec<i32> = Self::OFFSETS
                .into_iter()
                .filter(|&o| Self::offset_at(seconds - i64::from(o)) == o)
                .collect();
            fits.sort_by_key(|&o| std::cmp::Reverse(o));
            let fixed = |o| FixedOffset::east_opt(o).unwrap();
            match fits[..] {
                [] => chrono::MappedLocalTime::None,
                [o] => chrono::MappedLocalTime::Single(fixed(o)),
                [a, b] => chrono::MappedLocalTime::Ambiguous(fixed(a), fixed(b)),
                _ => unreachable!("two transitions a day apart"),
            }
        }

        fn offset_from_utc_date(&self, _: &NaiveDate) -> FixedOffset {
            unreachable!("only date-times are asked for")
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            FixedOffset::east_opt(Self::offset_at(utc.and_utc().timestamp())).unwrap()
        }
    }

    /// A local time the fall back repeats names its earlier instant, unless that is before
    /// `after`: then its later one (New York, 2026-11-01 01:40 is 05:40Z, then 06:40Z).
    #[cfg(feature = "accounting")]
    #[test]
    fn a_repeated_local_time_is_the_later_offset_after_the_first() {
        let zone = chrono_tz::Tz::America__New_York;
        let mut minutes = ZoneMinutes::new(zone);
        let at = |h, m| {
            NaiveDate::from_ymd_opt(2026, 11, 1)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        let utc = |h, m| Utc.with_ymd_and_hms(2026, 11, 1, h, m, 0).unwrap();
        assert_eq!(minutes.at_or_after(at(1, 40), None), Some(utc(5, 40)));
        assert_eq!(
            minutes.at_or_after(at(1, 40), Some((utc(5, 39), chrono::TimeDelta::zero()))),
            Some(utc(5, 40))
        );
        assert_eq!(
            minutes.at_or_after(at(1, 5), Some((utc(5, 50), chrono::TimeDelta::zero()))),
            Some(utc(6, 5))
        );
        // Outside the repeated hour `after` changes nothing.
        assert_eq!(
            minutes.at_or_after(at(2, 5), Some((utc(9, 0), chrono::TimeDelta::zero()))),
            Some(utc(7, 5))
        );
    }

    /// Local times read a minute at a time name what the zone says they name, through
    /// transitions (Berlin's hour, Lord Howe's half hour, Kathmandu's odd offset, Amsterdam's
    /// 1937 change by 28 seconds, and transitions inside a minute) and in any order.
    #[cfg(feature = "accounting")]
    #[test]
    fn local_times_a_minute_at_a_time_name_what_the_zone_says() {
        use chrono_tz::Tz;
        fn walk<Z: TimeZone + Copy + std::fmt::Debug>(
            zone: Z,
            start: NaiveDateTime,
            steps: &[i64],
        ) -> Result<(), TestCaseError> {
            let mut minutes = ZoneMinutes::new(zone);
            let mut at = start;
            for step in steps {
                at += chrono::Duration::seconds(*step);
                let expected = zone
                    .from_local_datetime(&at)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc));
                prop_assert_eq!(
                    minutes.at_or_after(at, None),
                    expected,
                    "{} in {:?}",
                    at,
                    zone
                );
            }
            Ok(())
        }
        let zones = [
            Tz::Europe__Berlin,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kathmandu,
            Tz::Europe__Amsterdam,
            Tz::America__St_Johns,
        ];
        // Around each zone's transitions (and anywhere): runs of seconds that stay in a minute,
        // cross into the next, or jump back.
        let at = |y, m, d, h, min| {
            NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|day| day.and_hms_opt(h, min, 0))
                .unwrap()
        };
        let transitions = [
            at(2026, 3, 29, 1, 58),  // Berlin forward, MidMinuteZone's gap
            at(2026, 10, 25, 1, 58), // Berlin back
            at(2026, 4, 5, 1, 28),   // Lord Howe back half an hour
            at(2026, 10, 4, 1, 58),  // Lord Howe forward
            at(1937, 6, 30, 23, 58), // Amsterdam's 28 seconds
            at(1986, 1, 1, 0, 13),   // Kathmandu to +05:45
            at(2026, 3, 8, 1, 58),   // St. John's forward
            at(2026, 11, 1, 0, 58),  // St. John's back
            at(2026, 3, 30, 1, 58),  // MidMinuteZone's fold
        ];
        let start = prop_oneof![
            proptest::sample::select(transitions.to_vec()),
            (0i64..4_000_000_000).prop_map(|s| {
                NaiveDate::from_ymd_opt(1900, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    + chrono::Duration::seconds(s)
            }),
        ];
        let steps = proptest::collection::vec(
            prop_oneof![0i64..3, 0i64..70, -70i64..300, -4000i64..4000],
            1..200,
        );
        proptest::test_runner::TestRunner::default()
            .run(
                &(
                    proptest::sample::select(zones.to_vec()),
                    start,
                    steps.clone(),
                ),
                |(zone, start, steps)| walk(zone, start, &steps),
            )
            .unwrap();
        // MidMinuteZone's two days, from two minutes before its transitions.
        let days = [transitions[0], transitions[8]];
        let around = (0usize..2, -200i64..200)
            .prop_map(move |(day, s)| days[day] + chrono::Duration::seconds(s));
        proptest::test_runner::TestRunner::default()
            .run(&(around, steps), |(start, steps)| {
                walk(MidMinuteZone, start, &steps)
            })
            .unwrap();
    }

    proptest! {
        /// Digits read by hand give what `str::parse` gives for 1 to 10 (u32) or 20 (u64) ASCII
        /// digits, and nothing for anything else.
        #[test]
        fn numbers_read_as_str_parse_reads_them(
            b in prop_oneof![
                proptest::collection::vec(b'0'..=b'9', 0..24),
                proptest::collection::vec(any::<u8>(), 0..24),
                Just(b"4294967295".to_vec()),
                Just(b"4294967296".to_vec()),
                Just(b"18446744073709551615".to_vec()),
                Just(b"18446744073709551616".to_vec()),
                Just(b"+1".to_vec()),
            ]
        ) {
            let digits = !b.is_empty() && b.iter().all(u8::is_ascii_digit);
            let text = std::str::from_utf8(&b).ok().filter(|_| digits);
            prop_assert_eq!(
                parse_u32(&b),
                text.filter(|t| t.len() <= 10).and_then(|t| t.parse().ok())
            );
            prop_assert_eq!(
                parse_u64(&b),
                text.filter(|t| t.len() <= 20).and_then(|t| t.parse().ok())
            );
        }

        /// What a time is shown as in messages and stored as in SQLite's text columns is read
        /// back to the same microsecond.
        #[test]
        fn shown_times_read_back(micros in -62_000_000_000_000_000i64..250_000_000_000_000_000i64) {
            let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            let shown = Micros(micros).to_string();
            prop_assert_eq!(&shown, &t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            prop_assert_eq!(storage_micros(&shown), Some(micros));
        }

        #[test]
        fn any_name_survives_the_close_line(name in proptest::collection::vec(any::<u8>(), 0..120),
                                            read in 0..=MAX_COUNTER, written in 0..=MAX_COUNTER) {
            let mut line = b"close \"".to_vec();
            line.extend(vis(&name));
            line.extend(format!("\" bytes read {read} written {written}").as_bytes());
            prop_assert_eq!(
                sftp(&line),
                SftpEvent::Close { path: name.clone(), bytes_read: read, bytes_written: written, forced: false }
            );
            let mut open = b"open \"".to_vec();
            open.extend(vis(&name));
            open.extend(b"\" flags READ mode 0666");
            prop_assert_eq!(sftp(&open), SftpEvent::Open { path: name, flags: "READ".into(), mode: "0666".into() });
        }

        /// Syslog's cut never leaves counters to bill, whatever the name; capture mode's whole
        /// message, made longer where it is exactly the cut length, always does, exactly.
        #[test]
        fn a_cut_close_has_no_counters_and_a_whole_one_exact_ones(
            name in proptest::collection::vec(any::<u8>(), 380..520),
            read in 0..=MAX_COUNTER, written in 0..=MAX_COUNTER, forced in any::<bool>(),
        ) {
            let mut line = if forced { b"forced close \"".to_vec() } else { b"close \"".to_vec() };
            line.extend(vis(&name));
            line.extend(format!("\" bytes read {read} written {written}").as_bytes());
            if line.len() >= SYSLOG_MESSAGE_CUT {
                let cut = &line[..SYSLOG_MESSAGE_CUT];
                let is_cut_close = matches!(sftp(cut), SftpEvent::CutClose { forced: f, .. } if f == forced);
                prop_assert!(is_cut_close, "a cut line was read");
            }
            let mut whole = line.clone();
            if whole.len() == SYSLOG_MESSAGE_CUT {
                lengthen_uncut(&mut whole);
            }
            prop_assert_eq!(
                sftp(&whole),
                SftpEvent::Close { path: name, bytes_read: read, bytes_written: written, forced }
            );
        }

        /// Any message of exactly the cut length made longer says what it said.
        #[test]
        fn lengthening_keeps_the_meaning(name in proptest::collection::vec(any::<u8>(), 0..480)) {
            for (prefix, suffix) in [
                (&b"remove name \""[..], &b"\""[..]),
                (b"open \"", b"\" flags READ mode 0644"),
                (b"rename old \"", b"\" new \"/x\""),
            ] {
                let mut line = prefix.to_vec();
                line.extend(vis(&name));
                line.extend(suffix);
                // What it says, read without the cut rule.
                let before = parse_sftp_known(&line).unwrap_or(SftpEvent::Unparsed);
                let mut longer = line.clone();
                lengthen_uncut(&mut longer);
                prop_assert_eq!(parse_sftp_known(&longer).unwrap_or(SftpEvent::Unparsed), before);
            }
        }

        #[test]
        fn no_line_makes_the_parser_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_syslog_line(&line);
            let _ = parse_syslog_line(&[&b"<134>1 "[..], &line].concat());
            let _ = parse_syslog_line(&[&b"Nov 27 06:36:48."[..], &line].concat());
            let _ = parse_sftp_message(&line);
            let _ = classify("sftpd-wrapper", &line, "sftpd-wrapper");
            let _ = classify("sshd", &line, "sftpd-wrapper");
        }
    }
}
