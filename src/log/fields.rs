//! The wrapper's own log lines: an event phrase followed by `key=value` fields.
//!
//! Values that an attacker can shape (the refused command, a hook's stderr) must not be able to
//! forge fields or lines, so anything outside a conservative set of printable ASCII is quoted and
//! escaped. The output is pure ASCII, which keeps syslog daemons from re-escaping it their own way.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Bytes that may stand unquoted in a value: printable ASCII except the quote, the backslash and
/// the `=` that separates keys from values.
fn is_bare_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\' && b != b'='
}

/// Renders one value: bare when it is non-empty and every byte is bare, otherwise in double quotes
/// with `\\`, `\"`, `\n`, `\r`, `\t` and `\xHH` escapes.
pub(crate) fn escape_value(value: &[u8]) -> String {
    if !value.is_empty() && value.iter().all(|&b| is_bare_byte(b)) {
        // All bytes are ASCII, so this cannot fail.
        return String::from_utf8_lossy(value).into_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for &b in value {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// A log message under construction: `event key=value key=value ...`.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    text: String,
}

impl LogLine {
    /// Starts a line with a fixed event phrase such as `session start`.
    pub fn new(event: &str) -> Self {
        LogLine {
            text: event.to_owned(),
        }
    }

    /// Appends `key=value`; keys are fixed identifiers chosen by this program.
    pub fn field(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.text.push(' ');
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&escape_value(value.as_ref()));
        self
    }

    /// Appends `key=value` when there is a value.
    pub(crate) fn opt_field<V: AsRef<[u8]>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

/// One `key=value` field: the key (ASCII letters, digits and `_`, so compared as bytes) and the
/// value's original bytes, borrowed from the message unless the value was quoted (and so had
/// escapes to undo).
pub(crate) type Field<'a> = (&'a [u8], Cow<'a, [u8]>);

/// Fields a line may have without the list growing: the wrapper's longest line (`session end`)
/// has 16.
const FIELDS_EXPECTED: usize = 16;

/// Splits a message written by [`LogLine`] back into its event phrase and fields. Returns `None`
/// when the text after the event phrase is not a well-formed sequence of fields (a truncated
/// line, or a line from another program). Nothing is copied but quoted values: the ingest reads
/// every wrapper line through this.
pub(crate) fn parse_line(msg: &[u8]) -> Option<(&str, Vec<Field<'_>>)> {
    // The event is every word before the first one with a `=`: it ends at the last space
    // before that `=` (where the word before it ended).
    let (event_end, pos) = match memchr::memchr(b'=', msg) {
        Some(eq) => match memchr::memrchr(b' ', &msg[..eq]) {
            Some(space) => (space, space + 1),
            None => (0, 0),
        },
        None => (
            msg.len() - usize::from(msg.last() == Some(&b' ')),
            msg.len(),
        ),
    };
    let event = std::str::from_utf8(&msg[..event_end]).ok()?;
    let mut fields = Vec::with_capacity(FIELDS_EXPECTED);
    let mut rest = &msg[pos.min(msg.len())..];
    while !rest.is_empty() {
        let eq = memchr::memchr(b'=', rest)?;
        let key = &rest[..eq];
        if key.is_empty() || !key.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let (value, used) = parse_value(&rest[eq + 1..])?;
        fields.push((key, value));
        rest = &rest[eq + 1 + used..];
        match rest.first() {
            None => {}
            Some(b' ') => rest = &rest[1..],
            Some(_) => return None,
        }
    }
    Some((event, fields))
}

/// Parses one value at the start of `input`; returns the raw bytes and how much input it used.
fn parse_value(input: &[u8]) -> Option<(Cow<'_, [u8]>, usize)> {
    if input.first() != Some(&b'"') {
        let end = memchr::memchr(b' ', input).unwrap_or(input.len());
        return Some((Cow::Borrowed(&input[..end]), end));
    }
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match *input.get(i)? {
            b'"' => return Some((Cow::Owned(out), i + 1)),
            b'\\' => {
                let esc = *input.get(i + 1)?;
                match esc {
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'x' => {
                        let hex = std::str::from_utf8(input.get(i + 2..i + 4)?).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_values_stay_bare() {
        assert_eq!(escape_value(b"alice"), "alice");
        assert_eq!(escape_value(b"127.0.0.1"), "127.0.0.1");
        assert_eq!(
            escape_value(b"/usr/lib/openssh/sftp-server"),
            "/usr/lib/openssh/sftp-server"
        );
        assert_eq!(escape_value(b"::1"), "::1");
    }

    #[test]
    fn hostile_values_are_quoted_and_escaped() {
        assert_eq!(escape_value(b""), "\"\"");
        assert_eq!(escape_value(b"a b"), "\"a b\"");
        assert_eq!(escape_value(b"x=1"), "\"x=1\"");
        assert_eq!(escape_value(b"sftp-server; sh"), "\"sftp-server; sh\"");
        assert_eq!(
            escape_value(b"id\nsession end user=root"),
            "\"id\\nsession end user=root\""
        );
        assert_eq!(escape_value(b"q\"uote"), "\"q\\\"uote\"");
        assert_eq!(escape_value(b"back\\slash"), "\"back\\\\slash\"");
        assert_eq!(escape_value(b"\x00\x1b[31m"), "\"\\x00\\x1b[31m\"");
        assert_eq!(escape_value("caf\u{e9}".as_bytes()), "\"caf\\xc3\\xa9\"");
        assert_eq!(escape_value(b"\xff\tz\r"), "\"\\xff\\tz\\r\"");
    }

    #[test]
    fn a_line_cannot_forge_fields() {
        let line = LogLine::new("session refused")
            .field("user", "bob")
            .field("command", "x user=root sid=forged");
        assert_eq!(
            line.as_str(),
            "session refused user=bob command=\"x user=root sid=forged\""
        );
        let (event, fields) = parse_line(line.as_str().as_bytes()).unwrap();
        assert_eq!(event, "session refused");
        assert_eq!(fields.len(), 2);
        assert_eq!(&*fields[1].1, b"x user=root sid=forged");
    }

    #[test]
    fn parse_rejects_malformed_lines() {
        assert!(parse_line(b"session end sid=\"unterminated").is_none());
        assert!(parse_line(b"session end sid=\"bad\\q\"").is_none());
        assert!(parse_line(b"session end sid=\"a\"b").is_none());
        assert!(parse_line(b"session end bad-key=1").is_none());
    }

    proptest! {
        #[test]
        fn escape_round_trips(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            let line = LogLine::new("ev").field("k", &value).field("n", "1");
            let text = line.as_str();
            prop_assert!(text.is_ascii());
            prop_assert!(!text.contains('\n'));
            let (event, fields) = parse_line(text.as_bytes()).unwrap();
            prop_assert_eq!(event, "ev");
            prop_assert_eq!(fields.len(), 2);
            prop_assert_eq!(&*fields[0].1, &value[..]);
            prop_assert_eq!(&*fields[1].1, b"1");
        }

        /// The event phrase is found by searching for the first `=` and the space before it;
        /// it must end where walking the words one by one ends it.
        #[test]
        fn event_phrase_ends_where_the_words_say(
            msg in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'='), Just(b'a'), Just(b'"')], 0..24)
        ) {
            let (mut pos, mut event_end) = (0, 0);
            while pos < msg.len() {
                let word_end = msg[pos..].iter().position(|&b| b == b' ').map_or(msg.len(), |i| pos + i);
                if msg[pos..word_end].contains(&b'=') {
                    break;
                }
                event_end = word_end;
                pos = (word_end + 1).min(msg.len());
            }
            let walked = std::str::from_utf8(&msg[..event_end]).unwrap();
            if let Some((event, _)) = parse_line(&msg) {
                prop_assert_eq!(event, walked);
            }
            // A field put where the walk stopped; after a last word without a space, it would
            // join that word.
            if pos == msg.len() && !msg.is_empty() && msg.last() != Some(&b' ') {
                return Ok(());
            }
            let mut fields_line = msg[..pos].to_vec();
            fields_line.extend_from_slice(b"k=v");
            let (event, fields) = parse_line(&fields_line).expect("a field after the event");
            prop_assert_eq!(event, walked);
            prop_assert_eq!(fields.len(), 1);
        }
    }
}
