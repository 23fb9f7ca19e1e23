//! The HTML statement (`usage --format html`, `statement`): one self-contained page for people
//! who do not use a terminal. No script, no external font or image: the chart is inline SVG
//! drawn here, so the page works offline, prints to PDF from any browser, and has nothing that
//! could run. Every user, host and file name is the partner's text and is escaped.

use crate::accounting::report::{UsageGroup, for_people, human_bytes};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Text for an HTML element or a quoted attribute, shown by the reports' one rule
/// ([`for_people`]: control and bidirectional characters as escapes), then HTML-escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in for_people(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One of the largest transfers, as the statement lists them.
#[derive(Debug, Clone)]
pub(crate) struct LargeTransfer {
    /// When it was opened, in the statement's zone.
    pub opened: String,
    pub host: String,
    pub user: String,
    pub path: String,
    pub direction: String,
    pub bytes: i128,
    pub complete: bool,
}

/// What a statement shows.
pub(crate) struct Statement<'a> {
    pub title: String,
    /// The period in words, in the zone (`2026-11-01 to 2026-11-30`, `everything`).
    pub period: String,
    pub zone: String,
    pub generated: String,
    /// Usage by (day, host, user): [`crate::accounting::report::UsageSums::groups`] by day.
    pub daily: &'a BTreeMap<(String, String, String), UsageGroup>,
    pub largest: &'a [LargeTransfer],
    /// The days the chart shows (a statement's whole month); empty: from the first day with
    /// data to the last.
    pub days: Vec<chrono::NaiveDate>,
}

/// A table row's numbers: sessions, files complete and incomplete each way, bytes each way.
fn cells(g: &UsageGroup) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td title=\"{} bytes\">{}</td><td title=\"{} bytes\">{}</td>",
        g.sessions,
        g.files_up,
        g.files_up_incomplete,
        g.files_down,
        g.files_down_incomplete,
        g.bytes_up,
        escape(&human_bytes(g.bytes_up)),
        g.bytes_down,
        escape(&human_bytes(g.bytes_down)),
    )
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
       color: #1c2430; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
header { border-bottom: 3px solid #2b6cb0; margin-bottom: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; color: #2b6cb0; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta { color: #5a6472; margin: 0 0 .8rem; }
.totals { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.totals div { background: #f1f5fa; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.totals b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin-bottom: .5rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #dde3ea; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
td.path { text-align: left; white-space: normal; word-break: break-all; font-family: ui-monospace, 'DejaVu Sans Mono', monospace; }
thead th { background: #f1f5fa; }
tr.total td { font-weight: bold; border-top: 2px solid #1c2430; }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem; vertical-align: middle; }
.up { fill: #2b6cb0; background: #2b6cb0; }
.down { fill: #dd6b20; background: #dd6b20; }
svg text { font-size: 10px; fill: #5a6472; }
footer { color: #5a6472; font-size: .8rem; margin-top: 2rem; }
@media print { body { margin: 0; max-width: none; } section { break-inside: avoid; } }
";

/// Per partner, per day and host.
type Partners<'a> = BTreeMap<&'a str, BTreeMap<(&'a str, &'a str), UsageGroup>>;

/// The page.
pub(crate) fn render(s: &Statement<'_>) -> String {
    // Per partner, per day and host; and per day for the chart.
    let mut partners: Partners<'_> = BTreeMap::new();
    let mut per_day: BTreeMap<String, UsageGroup> = BTreeMap::new();
    let mut all = UsageGroup::default();
    for ((day, host, user), g) in s.daily {
        all.add(g);
        per_day.entry(day.clone()).or_default().add(g);
        partners
            .entry(user)
            .or_default()
            .entry((day, host))
            .or_default()
            .add(g);
    }

    let mut out = String::new();
    write_header(&mut out, s, partners.len(), &all);
    out.push_str(&chart(&chart_days(s, &per_day)));
    write_partners(&mut out, &partners);
    write_largest(&mut out, s.largest);
    out.push_str("<footer>Complete files were closed normally; incomplete ones were cut by the session's end or a failure (their bytes are counted). Sizes in KiB/MiB/GiB (1024); hover a size for the exact bytes. Produced by sftpd-report from the SFTP audit log.</footer>\n</body>\n</html>\n");
    out
}

/// The title, the period and the totals.
fn write_header(out: &mut String, s: &Statement<'_>, partners: usize, all: &UsageGroup) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>{title}</h1>\n<p class=\"meta\">Period: {period} &middot; Zone: {zone} &middot; Generated {generated}</p>\n</header>\n",
        title = escape(&s.title),
        period = escape(&s.period),
        zone = escape(&s.zone),
        generated = escape(&s.generated),
    );
    let _ = writeln!(
        out,
        "<div class=\"totals\">\
         <div>Partners<b>{}</b></div><div>Sessions<b>{}</b></div>\
         <div>Files up<b>{}</b>{} incomplete</div><div>Files down<b>{}</b>{} incomplete</div>\
         <div>Bytes up<b title=\"{} bytes\">{}</b></div><div>Bytes down<b title=\"{} bytes\">{}</b></div></div>",
        partners,
        all.sessions,
        all.files_up,
        all.files_up_incomplete,
        all.files_down,
        all.files_down_incomplete,
        all.bytes_up,
        escape(&human_bytes(all.bytes_up)),
        all.bytes_down,
        escape(&human_bytes(all.bytes_down)),
    );
}

/// The days with data, and every day of the period without.
fn chart_days(
    s: &Statement<'_>,
    per_day: &BTreeMap<String, UsageGroup>,
) -> BTreeMap<String, UsageGroup> {
    // Every day of the period on the chart, quiet ones too.
    let mut days = s.days.clone();
    if days.is_empty() {
        let known: Vec<chrono::NaiveDate> = per_day
            .keys()
            .filter_map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .collect();
        if let (Some(first), Some(last)) = (known.first(), known.last()) {
            days = first
                .iter_days()
                .take_while(|d| d <= last)
                .take(3660)
                .collect();
        }
    }
    let mut chart_days = per_day.clone();
    for day in days {
        chart_days
            .entry(day.format("%Y-%m-%d").to_string())
            .or_default();
    }
    chart_days
}

/// A table per partner, by day and host, with its total.
fn write_partners(out: &mut String, partners: &Partners<'_>) {
    out.push_str("<section>\n<h2>Partners</h2>\n");
    if partners.is_empty() {
        out.push_str("<p>No sessions in this period.</p>\n");
    }
    let head = "<thead><tr><th>Day</th><th class=\"text\">Host</th><th>Sessions</th><th>Files up</th><th>incomplete</th><th>Files down</th><th>incomplete</th><th>Bytes up</th><th>Bytes down</th></tr></thead>";
    for (user, days) in partners {
        let shown = if user.is_empty() { "(no user)" } else { user };
        let _ = write!(out, "<h3>{}</h3>\n<table>{head}<tbody>\n", escape(shown));
        let mut total = UsageGroup::default();
        for ((day, host), sums) in days {
            total.add(sums);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"text\">{}</td>{}</tr>",
                escape(day),
                escape(host),
                cells(sums)
            );
        }
        let _ = write!(
            out,
            "<tr class=\"total\"><td>Total</td><td></td>{}</tr>\n</tbody></table>\n",
            cells(&total)
        );
    }
    out.push_str("</section>\n");
}

/// The period's largest transfers, as the caller chose and sorted them.
fn write_largest(out: &mut String, largest: &[LargeTransfer]) {
    out.push_str("<section>\n<h2>Largest transfers</h2>\n");
    if largest.is_empty() {
        out.push_str("<p>No transfers in this period.</p>\n");
    } else {
        out.push_str(
            "<table><thead><tr><th>Opened</th><th class=\"text\">Partner</th><th class=\"text\">Host</th><th class=\"text\">Direction</th><th class=\"text\">File</th><th>Bytes</th><th>Complete</th></tr></thead><tbody>\n",
        );
        for t in largest {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"path\">{}</td><td title=\"{} bytes\">{}</td><td>{}</td></tr>",
                escape(&t.opened),
                escape(&t.user),
                escape(&t.host),
                escape(&t.direction),
                escape(&t.path),
                t.bytes,
                escape(&human_bytes(t.bytes)),
                if t.complete { "yes" } else { "no" },
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
}

/// Bytes up and down per day, as inline SVG bars.
fn chart(per_day: &BTreeMap<String, UsageGroup>) -> String {
    let mut out = String::from("<section>\n<h2>Bytes per day</h2>\n");
    if per_day.is_empty() {
        out.push_str("<p>No transfers in this period.</p>\n</section>\n");
        return out;
    }
    let max = per_day
        .values()
        .map(|s| s.bytes_up.max(s.bytes_down))
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, left, bottom) = (900.0_f64, 220.0_f64, 60.0_f64, 24.0_f64);
    let plot_h = height - bottom - 10.0;
    let slot = (width - left) / per_day.len() as f64;
    let bar = (slot * 0.4).clamp(1.0, 18.0);
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"Bytes up and down per day\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <line x1=\"{left}\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\" stroke=\"#1c2430\"/>\n\
         <text x=\"{lx}\" y=\"14\" text-anchor=\"end\">{max_label}</text>\n\
         <text x=\"{lx}\" y=\"{base}\" text-anchor=\"end\">0</text>\n",
        base = height - bottom,
        lx = left - 6.0,
        max_label = escape(&human_bytes(max)),
    );
    let every = per_day.len().div_ceil(12).max(1);
    for (i, (day, sums)) in per_day.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - 2.0 * bar) / 2.0;
        for (j, (value, class)) in [(sums.bytes_up, "up"), (sums.bytes_down, "down")]
            .into_iter()
            .enumerate()
        {
            // A day with any bytes at all shows, however small beside the largest.
            let h = match value {
                0 => 0.0,
                v => ((v as f64 / max as f64) * plot_h).max(2.0),
            };
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{} {class}: {} ({value} bytes)</title></rect>",
                x + bar * j as f64,
                height - bottom - h,
                escape(day),
                escape(&human_bytes(value)),
            );
        }
        if i % every == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar,
                height - 8.0,
                escape(day.get(5..).unwrap_or(day))
            );
        }
    }
    out.push_str("</svg>\n<p class=\"legend\"><span class=\"up\"></span>up (from the partner)<span class=\"down\"></span>down (to the partner)</p>\n</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_everywhere() {
        let hostile = "<script>alert(1)</script>\"'&";
        let daily = BTreeMap::from([(
            (
                "2026-11-03".to_owned(),
                hostile.to_owned(),
                hostile.to_owned(),
            ),
            UsageGroup {
                sessions: 1,
                bytes_up: 5,
                ..UsageGroup::default()
            },
        )]);
        let largest = [LargeTransfer {
            opened: "2026-11-03 10:00:00".into(),
            host: hostile.into(),
            user: hostile.into(),
            path: hostile.into(),
            direction: "upload".into(),
            bytes: 5,
            complete: true,
        }];
        let page = render(&Statement {
            title: format!("Statement for {hostile}"),
            period: hostile.into(),
            zone: "UTC".into(),
            generated: "now".into(),
            daily: &daily,
            largest: &largest,
            days: Vec::new(),
        });
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("\"'&\""));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    }
}
