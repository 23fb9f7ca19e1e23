//! Retention (`sftpd-report prune`): which instant a prune cuts at, and what it says it did. The
//! deleting itself is the stores' ([`crate::accounting::storage::prune`]).

use crate::accounting::report;
use crate::accounting::storage::Pruned;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Sessions that ended this recently are never pruned, whatever the cut: a follower may still
/// be joining their late lines (and holds their rows in memory meanwhile).
pub(crate) const RECENT_KEPT: chrono::Duration = chrono::Duration::hours(1);

/// The cut, in UTC microseconds: `--older-than SPAN` (a span back from `now`), `--before TIME`
/// (read in `zone`), or neither (a partner forgotten: everything that ended before
/// [`RECENT_KEPT`]); never later than `now` less [`RECENT_KEPT`].
pub(crate) fn cut_micros(
    older_than: Option<&str>,
    before: Option<&str>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<i64, String> {
    let latest = (now - RECENT_KEPT).timestamp_micros();
    let cut = match (older_than, before) {
        (Some(span), _) => {
            if !span.trim().ends_with(['m', 'h', 'd', 'w']) {
                return Err(format!(
                    "--older-than {span:?}: use a span such as 400d, 12w or 36h (--before takes a date)"
                ));
            }
            report::parse_time_bound(span, now, false, zone)
                .map_err(|e| format!("--older-than: {e}"))?
        }
        (None, Some(time)) => report::parse_time_bound(time, now, false, zone)
            .map_err(|e| format!("--before: {e}"))?,
        (None, None) => return Ok(latest),
    };
    Ok(cut.0.min(latest))
}

/// The one line a prune prints.
pub fn summary(pruned: &Pruned, cut_us: i64, user: Option<&str>, dry_run: bool) -> String {
    let cut = DateTime::from_timestamp_micros(cut_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| cut_us.to_string());
    // Debug form: a name's control and bidi characters are shown escaped, never acted on.
    let whose = user.map_or(String::new(), |u| format!(" of user {u:?}"));
    let verb = if dry_run { "would prune" } else { "pruned" };
    let mut line = format!(
        "{verb} the sessions{whose} that ended before {cut}: sessions {}, transfers {}, operations {}",
        pruned.sessions, pruned.transfers, pruned.operations
    );
    if pruned.kept_open > 0 {
        line.push_str(&format!(
            "; kept {} session(s) that started before it and have no end",
            pruned.kept_open
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        assert_eq!(
            cut_micros(Some("400d"), None, Tz::UTC, now),
            Ok(at("2025-11-02T12:00:00Z"))
        );
        assert_eq!(
            cut_micros(None, Some("2025-11-01"), Tz::Europe__Berlin, now),
            Ok(at("2025-10-31T23:00:00Z"))
        );
        // Never later than an hour ago: a follower may still be joining those sessions.
        assert_eq!(
            cut_micros(None, Some("2030-01-01"), Tz::UTC, now),
            Ok(at("2026-12-07T11:00:00Z"))
        );
        assert_eq!(
            cut_micros(None, None, Tz::UTC, now),
            Ok(at("2026-12-07T11:00:00Z"))
        );
        assert!(cut_micros(Some("2025-11-01"), None, Tz::UTC, now).is_err());
        assert!(cut_micros(None, Some("soon"), Tz::UTC, now).is_err());
    }
}
