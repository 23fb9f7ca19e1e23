//! Which file a name reached, through the links and renames its session made before using it:
//! a partner who links or renames `invoice-42.xml` and downloads through the new name still
//! downloaded `invoice-42.xml`. One rule for both wings: the capture-mode tap follows the names
//! the SFTP packets made (each answered OK), the ingest those sftp-server's lines show.
//!
//! A name is resolved part by part, as the kernel resolves it, through what the session did: its
//! symlinks (looked up when used) and the names its hardlinks and renames made (each the file
//! its old name was then). What was on the disk outside the session (links made by others, a
//! directory that is itself a link) is not seen.

use std::collections::HashMap;

/// How many links one lookup follows before it gives up (Linux's own limit is 40): a chain
/// longer than that, or a loop, reaches no file.
pub(crate) const MAX_HOPS: usize = 40;

/// The longest name a lookup follows (Linux's PATH_MAX): no request can give a longer one, and a
/// link that makes a name longer than this on the way (a symlink through itself grows the name
/// by its target each hop) reaches nothing.
pub(crate) const MAX_NAME: usize = 4096;

/// The bytes of leading parts of names one lookup may look up (each hashed whole), at most: a
/// name of 4 KiB has 2,048 of them, and 40 hops through such names would hash 160 MiB. A usual
/// lookup takes a few KiB; one past this reaches nothing.
pub(crate) const LOOKUP_BUDGET: usize = 1 << 20;

/// How many names one session's links and renames may make; beyond it new ones are not
/// followed (a session making more is not following the `.filepart` convention but flooding).
pub(crate) const MAX_NAMES: usize = 10_000;

/// The bytes of the names made (each name and where it leads), at most: with [`MAX_NAMES`], the
/// memory a session's names take, whatever the partner sends (a name that worked is at most
/// PATH_MAX, 4 KiB; a relative symlink's target is joined to the link's directory).
pub(crate) const MAX_NAME_BYTES: usize = 4 << 20;

/// How many names made inside renamed directories one session's renames may move along, at
/// most: each rename of a directory moves every name made in it, and a partner renaming a full
/// one back and forth would otherwise cost the tap and the ingest milliseconds a request.
/// Past it the session's names are followed no further (`reached` is empty from then on).
pub(crate) const MAX_MOVED: usize = 100_000;

/// A rename of a file closed within this many closes of the session is a rename of that file
/// (the `.filepart` convention renames a file right after its close, and a client may close a
/// few files first): an upload renamed so (`x.filepart` to `x`) is a file of its new name from
/// then on, which `transfers.renamed_to` shows.
pub(crate) const RECENT_CLOSES: usize = 8;

/// The names one session made, each with the name of the file it leads to.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Keyed by file names a partner chose, as they are now (a renamed directory's names are
    /// moved with it): std's SipHash.
    made: HashMap<Vec<u8>, Lead>,
    /// The bytes of `made`'s keys and leads.
    bytes: usize,
    /// Another name of a directory, outside the session's doing (a home directory that is a
    /// symlink, and the directory it leads to): names under it are taken under the other.
    alias: Option<(Vec<u8>, Vec<u8>)>,
    /// Names renames moved along with their directories, or dropped from what they replaced,
    /// so far.
    moved: usize,
    /// The names in `made` that lead somewhere (not only their own): what [`MAX_NAMES`] caps.
    leading: usize,
}

/// Where a name made leads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lead {
    /// A symlink: the name it holds, as given (a relative one is taken from the link's own
    /// directory when the link is used). Otherwise the name the file had when this name was
    /// made for it (a hardlink or a rename): a fact of the past, never looked up again, so a
    /// name made later where the old one was does not change which file this is.
    to: Vec<u8>,
    /// A symlink, which holds a name (looked up when used), not a file: a hardlink or rename
    /// of it is the symlink again (link(2) and rename(2) do not follow it).
    symlink: bool,
    /// Its own name (see [`Names::gone`]), not the file that had that name before: moved with
    /// a renamed directory, it is its own at its new place. `to` is the name itself.
    own: bool,
}

impl Lead {
    /// Name `key` leads elsewhere: a symlink, or a file that had another name.
    fn leads(&self, key: &[u8]) -> bool {
        self.symlink || self.to != key
    }
}

/// What one link, rename or removal changed, to be put back if the operation turns out to have
/// failed (the ingest learns that from a status line after it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Undo(Vec<(Vec<u8>, Option<Lead>)>);

impl Names {
    pub fn is_empty(&self) -> bool {
        self.made.is_empty()
    }

    /// Names under `name` (absolute) are names under `dir`: they are one directory.
    pub(crate) fn alias(&mut self, name: &[u8], dir: &[u8]) {
        self.alias = Some((normalize(name), normalize(dir)));
    }

    /// `path` with the alias's name replaced by its directory.
    fn dealiased<'p>(&self, path: &'p [u8]) -> std::borrow::Cow<'p, [u8]> {
        if let Some((name, dir)) = &self.alias {
            let clean = normalize_parts(path);
            if let Some(rest) = under(&clean, name) {
                return [&dir[..], rest].concat().into();
            }
        }
        path.into()
    }

    /// `symlink old "target" new "link"`: `link` holds `target`.
    pub fn symlink(&mut self, link: &[u8], target: &[u8]) -> Undo {
        let Some(key) = self.place(link) else {
            return Undo::default();
        };
        // Not resolved now: a symlink holds a name, and leads to whatever that name is when
        // the link is used (`h` removed and another file renamed to `h` after the link).
        let lead = Lead {
            to: target.to_vec(),
            symlink: true,
            own: false,
        };
        self.set(key, Some(lead))
    }

    /// `hardlink old "existing" new "name"`, and `rename old "existing" new "name"`: `name` is
    /// now the file that `existing` named; a rename also takes `existing` away, and moves the
    /// names made inside it (a directory) with it.
    pub fn link(&mut self, name: &[u8], existing: &[u8], rename: bool) -> Undo {
        if self.moved > MAX_MOVED {
            return Undo::default();
        }
        let (Some(from), Some(key)) = (self.place(existing), self.place(name)) else {
            return Undo::default();
        };
        if from == key {
            // Renamed or linked to itself: nothing changes.
            return Undo::default();
        }
        let lead = match self.made.get(&from) {
            Some(lead) if lead.symlink => lead.clone(),
            // A name made anew in the session (a directory made where a renamed one was), renamed:
            // its own at its new place, as the names inside a renamed directory are; not the
            // file that was at its old name before the session.
            Some(lead) if lead.own && rename => Lead {
                to: key.clone(),
                symlink: false,
                own: true,
            },
            _ => Lead {
                to: self.identity(&from),
                symlink: false,
                own: false,
            },
        };
        let mut undo = Undo::default();
        if rename {
            let mut inside = from.clone();
            inside.push(b'/');
            // What a rename replaces is a file or an empty directory: the names once made
            // inside it (removed or renamed away since, each its own) name nothing now.
            let mut replaced = key.clone();
            replaced.push(b'/');
            let (moved, stale): (Vec<Vec<u8>>, Vec<Vec<u8>>) = self
                .made
                .keys()
                .filter(|k| k.starts_with(&inside) || k.starts_with(&replaced))
                .cloned()
                .partition(|k| k.starts_with(&inside));
            self.moved = self.moved.saturating_add(moved.len() + stale.len());
            for old in stale {
                undo.0.extend(self.set(old, None).0);
            }
            for old in moved {
                let new = [&key[..], &old[from.len()..]].concat();
                // A name that is its own (see `gone`) stays its own at its new place.
                let lead = self.made.get(&old).cloned().map(|lead| {
                    if lead.own {
                        Lead {
                            to: new.clone(),
                            ..lead
                        }
                    } else {
                        lead
                    }
                });
                undo.0.extend(self.set(old, None).0);
                undo.0.extend(self.set(new, lead).0);
            }
            undo.0.extend(self.set(from.clone(), None).0);
            undo.0.extend(self.gone(from).0);
        }
        // The file first named `key` (a name of its own before, a file renamed away and
        // linked back): a fact again, which a rename of its directory does not change.
        if lead.to != key || lead.own || self.made.contains_key(&key) {
            undo.0.extend(self.set(key, Some(lead)).0);
        }
        undo
    }

    /// A rename of `old` to `new`; `uploaded` when `old` is an upload the session closed a
    /// moment ago (within [`RECENT_CLOSES`]), which is a file of its new name from then on.
    /// A name the session's links and renames made stays that link when written through (an
    /// upload to a symlink wrote the file it leads to) and renamed.
    pub fn renamed(&mut self, old: &[u8], new: &[u8], uploaded: bool) -> Undo {
        let made = self.place(old).is_some_and(|key| {
            // A name that is only its own (removed before) is no link.
            self.made.get(&key).is_some_and(|lead| lead.leads(&key))
        });
        if uploaded && !made {
            self.forget(&[old, new])
        } else {
            self.link(new, old, true)
        }
    }

    /// Takes in the names another part of the same session made (its lines read as a session
    /// of their own until the wrapper's line claimed them).
    pub fn extend(&mut self, other: Names) {
        for (key, to) in other.made {
            self.set(key, Some(to));
        }
    }

    /// `names` lead nowhere any more (a `remove`, or a file renamed to a name of its own).
    pub(crate) fn forget(&mut self, names: &[&[u8]]) -> Undo {
        let mut undo = Undo::default();
        for name in names {
            if let Some(key) = self.place(name) {
                undo.0.extend(self.set(key.clone(), None).0);
                undo.0.extend(self.gone(key).0);
            }
        }
        undo
    }

    /// `key` no longer names what it did: it is its own name from now on. Otherwise, under a
    /// directory renamed before or after, it would still be taken as the file the directory
    /// held by that name before the rename, and a file made there later by the same name (an
    /// upload) would be claimed as that one.
    fn gone(&mut self, key: Vec<u8>) -> Undo {
        let own = Lead {
            to: key.clone(),
            symlink: false,
            own: true,
        };
        self.set(key, Some(own))
    }

    /// Puts back what an operation that failed changed.
    pub(crate) fn undo(&mut self, undo: Undo) {
        for (key, previous) in undo.0.into_iter().rev() {
            self.set(key, previous);
        }
    }

    /// The file `path` reached, when that is another name than `path` itself: its symlinks
    /// followed name by name as the kernel does (`..` after a link leaves the link's target),
    /// then the name the file had before the session's hardlinks and renames gave it this one.
    /// `None` also when the links it goes through make a loop or a chain longer than
    /// [`MAX_HOPS`], a name longer than [`MAX_NAME`], or a lookup dearer than [`LOOKUP_BUDGET`].
    pub fn reached(&self, path: &[u8]) -> Option<Vec<u8>> {
        if self.made.is_empty() || self.moved > MAX_MOVED {
            return None;
        }
        let path = self.dealiased(path);
        let mut budget = LOOKUP_BUDGET;
        let now = self.walk(&path, &mut budget)?;
        let file = self.identity_within(&now, &mut budget)?;
        (file != normalize(&path)).then_some(file)
    }

    /// `path` with every symlink the session made along it followed, as it is now.
    fn walk(&self, path: &[u8], budget: &mut usize) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = path.split(|&b| b == b'/').rev().collect();
        let mut now: Vec<u8> = if path.starts_with(b"/") {
            b"/".to_vec()
        } else {
            Vec::new()
        };
        let mut hops = 0;
        while let Some(part) = parts.pop() {
            match part {
                b"" | b"." => continue,
                b".." => {
                    up(&mut now);
                    continue;
                }
                _ => {}
            }
            let dir = now.len();
            push_part(&mut now, part);
            if now.len() > MAX_NAME {
                return None;
            }
            // The part's bytes, and a little for each look-up however short.
            *budget = budget.checked_sub(now.len() + 16)?;
            if let Some(lead) = self.made.get(&now).filter(|l| l.symlink) {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                now.truncate(dir);
                if lead.to.starts_with(b"/") {
                    now.clear();
                    now.push(b'/');
                }
                parts.extend(lead.to.split(|&b| b == b'/').rev());
            }
        }
        if now.is_empty() {
            now.push(b'.');
        }
        Some(now)
    }

    /// The name the file at `name` (symlinks followed) had before the session's hardlinks and
    /// renames: the longest leading part of `name` that one of them made, replaced by the name
    /// it was made from.
    fn identity(&self, name: &[u8]) -> Vec<u8> {
        let mut budget = LOOKUP_BUDGET;
        self.identity_within(name, &mut budget)
            .unwrap_or_else(|| name.to_vec())
    }

    fn identity_within(&self, name: &[u8], budget: &mut usize) -> Option<Vec<u8>> {
        let mut end = Some(name.len());
        while let Some(len) = end {
            *budget = budget.checked_sub(len + 16)?;
            if len > 0
                && let Some(lead) = self.made.get(&name[..len]).filter(|l| !l.symlink)
            {
                return Some([&lead.to[..], &name[len..]].concat());
            }
            end = name[..len].iter().rposition(|&b| b == b'/');
        }
        Some(name.to_vec())
    }

    /// Where a name is now: its directory with the symlinks along it followed, then its last
    /// part (link(2), rename(2) and unlink(2) do not follow the last part).
    fn place(&self, name: &[u8]) -> Option<Vec<u8>> {
        let name = normalize_parts(&self.dealiased(name));
        let (dir, last) = match name.iter().rposition(|&b| b == b'/') {
            Some(at) => (&name[..at.max(1)], &name[at + 1..]),
            None => (&b""[..], &name[..]),
        };
        if last.is_empty() || last == b".." {
            return Some(normalize(&name));
        }
        let mut budget = LOOKUP_BUDGET;
        let mut placed = if dir.is_empty() {
            Vec::new()
        } else {
            self.walk(dir, &mut budget)?
        };
        if placed == b"." {
            placed.clear();
        }
        push_part(&mut placed, last);
        Some(placed)
    }

    fn set(&mut self, key: Vec<u8>, to: Option<Lead>) -> Undo {
        let size = |key: &[u8], lead: &Lead| key.len() + lead.to.len();
        // A name that is only its own (a remove) does not count against MAX_NAMES (a session
        // removing many files still has its links followed), only against the bytes.
        let previous = self.made.remove(&key);
        if let Some(previous) = &previous {
            self.bytes -= size(&key, previous);
            self.leading -= usize::from(previous.leads(&key));
        }
        // A link to itself stays: it is a loop, which reaches nothing.
        if let Some(to) = to
            && (!to.leads(&key) || self.leading < MAX_NAMES)
            && self.bytes + size(&key, &to) <= MAX_NAME_BYTES
        {
            self.bytes += size(&key, &to);
            self.leading += usize::from(to.leads(&key));
            self.made.insert(key.clone(), to);
        }
        Undo(vec![(key, previous)])
    }
}

/// `now` without its last part, as `..` takes it: the root stays the root; a relative name
/// that has no part left to take goes up (`..`).
fn up(now: &mut Vec<u8>) {
    if now == b"/" {
        return;
    }
    let last = match now.iter().rposition(|&b| b == b'/') {
        Some(at) => &now[at + 1..],
        None => &now[..],
    };
    if now.is_empty() || last == b".." {
        if !now.is_empty() {
            now.push(b'/');
        }
        now.extend_from_slice(b"..");
        return;
    }
    match now.iter().rposition(|&b| b == b'/') {
        Some(0) => now.truncate(1),
        Some(at) => now.truncate(at),
        None => now.clear(),
    }
}

/// `name` without empty parts and `.` (which never change which file a name is), `..` kept.
fn normalize_parts(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    if name.starts_with(b"/") {
        out.push(b'/');
    }
    for part in name.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        push_part(&mut out, part);
    }
    out
}

/// `path` with `part` added as its last part (`""` and `/` take it without a separator).
fn push_part(path: &mut Vec<u8>, part: &[u8]) {
    if !path.is_empty() && path != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(part);
}

/// What follows `dir` in `path` (`""` for `dir` itself, else from its `/`), when `path` is
/// `dir` or a name under it; both normalized alike.
pub fn under<'p>(path: &'p [u8], dir: &[u8]) -> Option<&'p [u8]> {
    path.strip_prefix(dir)
        .filter(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// `name` without empty parts, `.` and lexical `..`: `/h//u/./a/../b` is `/h/u/b`. A relative
/// name stays relative (to sftp-server's directory); `..` above the root is the root.
pub(crate) fn normalize(name: &[u8]) -> Vec<u8> {
    let absolute = name.starts_with(b"/");
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(&last) if last != b".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(name.len());
    if absolute {
        out.push(b'/');
    }
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reached(names: &Names, path: &str) -> Option<String> {
        names
            .reached(path.as_bytes())
            .map(|p| String::from_utf8(p).unwrap())
    }

    #[test]
    fn names_are_normalized_lexically() {
        for (name, want) in [
            ("/h/u/a", "/h/u/a"),
            ("/h//u/./a", "/h/u/a"),
            ("/h/u/x/../a", "/h/u/a"),
            ("/../a", "/a"),
            ("a/../../b", "../b"),
            ("./a/", "a"),
            ("", "."),
            ("/", "/"),
        ] {
            assert_eq!(normalize(name.as_bytes()), want.as_bytes(), "{name}");
        }
    }

    #[test]
    fn a_symlink_reaches_its_target_relative_to_its_own_directory() {
        let mut n = Names::default();
        n.symlink(b"/h/u/out/l.xml", b"../invoice-42.xml");
        n.symlink(b"/h/u/abs", b"/h/u/invoice-42.xml");
        n.symlink(b"rel", b"invoice-42.xml");
        assert_eq!(
            reached(&n, "/h/u/out/l.xml").as_deref(),
            Some("/h/u/invoice-42.xml")
        );
        assert_eq!(
            reached(&n, "/h/u//abs").as_deref(),
            Some("/h/u/invoice-42.xml")
        );
        assert_eq!(reached(&n, "rel").as_deref(), Some("invoice-42.xml"));
        assert_eq!(reached(&n, "/h/u/invoice-42.xml"), None);
        assert_eq!(reached(&n, "/h/u/other"), None);
    }

    #[test]
    fn chains_directories_and_renames_are_followed() {
        let mut n = Names::default();
        n.symlink(b"/h/u/a", b"invoice-42.xml");
        n.link(b"/h/u/b", b"/h/u/a", false);
        n.symlink(b"/h/u/c", b"b");
        assert_eq!(
            reached(&n, "/h/u/c").as_deref(),
            Some("/h/u/invoice-42.xml")
        );
        // A link to a directory, and a link made inside it.
        n.symlink(b"/h/u/d", b"/srv/in");
        assert_eq!(
            reached(&n, "/h/u/d/invoice-7.xml").as_deref(),
            Some("/srv/in/invoice-7.xml")
        );
        n.symlink(b"/h/u/d/x", b"invoice-8.xml");
        assert_eq!(
            reached(&n, "/srv/in/x").as_deref(),
            Some("/srv/in/invoice-8.xml")
        );
        assert_eq!(
            reached(&n, "/h/u/d/x").as_deref(),
            Some("/srv/in/invoice-8.xml")
        );
        // A rename: the new name is the file the old one named, the old one nothing.
        n.link(b"/h/u/e", b"/h/u/c", true);
        assert_eq!(
            reached(&n, "/h/u/e").as_deref(),
            Some("/h/u/invoice-42.xml")
        );
        assert_eq!(reached(&n, "/h/u/c"), None);
        n.link(b"/h/u/f.xml", b"/h/u/invoice-9.xml", true);
        assert_eq!(
            reached(&n, "/h/u/f.xml").as_deref(),
            Some("/h/u/invoice-9.xml")
        );
        // Removed: a new file of that name is not the old one.
        n.forget(&[b"/h/u/e"]);
        assert_eq!(reached(&n, "/h/u/e"), None);
    }

    #[test]
    fn a_symlink_holds_a_name_looked_up_when_used_and_its_links_are_symlinks() {
        let mut n = Names::default();
        n.symlink(b"/h/h", b"other.xml");
        n.symlink(b"/h/x", b"h");
        n.link(b"/h/y", b"/h/x", true);
        n.link(b"/h/z", b"/h/y", false);
        n.forget(&[b"/h/h"]);
        n.link(b"/h/h", b"/h/invoice-42.xml", true);
        for name in ["/h/y", "/h/z"] {
            assert_eq!(reached(&n, name).as_deref(), Some("/h/invoice-42.xml"));
        }
        assert_eq!(reached(&n, "/h/x"), None);
    }

    #[test]
    fn a_name_made_where_a_renamed_file_was_does_not_change_which_file_it_is() {
        let mut n = Names::default();
        n.link(b"/h/x.xml", b"/h/invoice-42.xml", true);
        n.symlink(b"/h/invoice-42.xml", b"/home/q/invoice-42.xml");
        assert_eq!(
            reached(&n, "/h/x.xml").as_deref(),
            Some("/h/invoice-42.xml")
        );
        // A directory renamed: the names made in it move with it; a new one at its old name
        // is another directory.
        let mut n = Names::default();
        n.symlink(b"/h/d/l", b"/srv/a.xml");
        n.link(b"/h/e", b"/h/d", true);
        n.symlink(b"/h/d/x", b"/home/q/secret");
        n.symlink(b"/h/e/m", b"/srv/b.xml");
        assert_eq!(reached(&n, "/h/e/l").as_deref(), Some("/srv/a.xml"));
        assert_eq!(reached(&n, "/h/e/m").as_deref(), Some("/srv/b.xml"));
        assert_eq!(reached(&n, "/h/e/x").as_deref(), Some("/h/d/x"));
    }

    #[test]
    fn a_home_by_another_name_is_one_directory() {
        let mut n = Names::default();
        n.alias(b"/home/p", b"/var/home/p");
        n.symlink(b"/var/home/p/x.xml", b"invoice-42.xml");
        assert_eq!(
            reached(&n, "/home/p/x.xml").as_deref(),
            Some("/var/home/p/invoice-42.xml")
        );
        assert_eq!(reached(&n, "/home/p/invoice-42.xml"), None);
        assert_eq!(reached(&n, "/home/pp/x.xml"), None);
    }

    #[test]
    fn dotdot_after_a_symlink_leaves_its_target() {
        let mut n = Names::default();
        n.symlink(b"/h/l", b"a/b");
        n.symlink(b"/h/m", b"/home/q");
        n.symlink(b"/h/a/s", b"/h/invoice-42.xml");
        assert_eq!(
            reached(&n, "/h/l/../m/invoice-42.xml").as_deref(),
            Some("/h/a/m/invoice-42.xml")
        );
        assert_eq!(
            reached(&n, "/h/l/../s").as_deref(),
            Some("/h/invoice-42.xml")
        );
        assert_eq!(reached(&n, "/h/a/../invoice-7.xml"), None);
    }

    #[test]
    fn renaming_a_full_directory_back_and_forth_stops_at_its_budget() {
        let mut n = Names::default();
        for i in 0..MAX_NAMES {
            n.symlink(format!("/h/d/l{i}").as_bytes(), b"t");
        }
        let started = std::time::Instant::now();
        for i in 0..1000 {
            let (a, b): (&[u8], &[u8]) = if i % 2 == 0 {
                (b"/h/d", b"/h/e")
            } else {
                (b"/h/e", b"/h/d")
            };
            n.link(b, a, true);
        }
        assert!(n.moved > MAX_MOVED);
        assert_eq!(reached(&n, "/h/d/l1"), None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn removes_do_not_fill_the_names_cap() {
        let mut n = Names::default();
        for i in 0..MAX_NAMES + 10 {
            n.forget(&[format!("/h/f{i}").as_bytes()]);
        }
        n.symlink(b"/h/l", b"invoice-42.xml");
        assert_eq!(reached(&n, "/h/l").as_deref(), Some("/h/invoice-42.xml"));
    }

    #[test]
    fn loops_reach_nothing() {
        let mut n = Names::default();
        n.symlink(b"/h/a", b"b");
        n.symlink(b"/h/b", b"a");
        assert_eq!(reached(&n, "/h/a"), None);
        assert_eq!(reached(&n, "/h/b"), None);
        n.symlink(b"/h/d", b"d/x");
        assert_eq!(reached(&n, "/h/d"), None);
    }

    #[test]
    fn undo_puts_back_what_was() {
        let mut n = Names::default();
        n.symlink(b"/h/l", b"one");
        let before = n.made.clone();
        let undo = n.symlink(b"/h/l", b"two");
        n.undo(undo);
        assert_eq!(n.made, before);
        let undo = n.link(b"/h/m", b"/h/l", true);
        assert_eq!(reached(&n, "/h/m").as_deref(), Some("/h/one"));
        n.undo(undo);
        assert_eq!(n.made, before);
        let undo = n.forget(&[b"/h/l", b"/h/m"]);
        n.undo(undo);
        assert_eq!(n.made, before);
    }

    #[test]
    fn an_upload_renamed_is_a_file_of_its_new_name() {
        let mut n = Names::default();
        n.symlink(b"/h/x", b"invoice-42.xml");
        n.renamed(b"/h/x.filepart", b"/h/x", true);
        assert_eq!(reached(&n, "/h/x"), None);
        n.renamed(b"/h/invoice-7.xml", b"/h/y", false);
        assert_eq!(reached(&n, "/h/y").as_deref(), Some("/h/invoice-7.xml"));
        // A symlink written through (the upload wrote its file) and renamed is that symlink.
        n.symlink(b"/h/l", b"invoice-42.xml");
        n.renamed(b"/h/l", b"/h/l2", true);
        assert_eq!(reached(&n, "/h/l2").as_deref(), Some("/h/invoice-42.xml"));
        assert_eq!(reached(&n, "/h/l"), None);
    }

    #[test]
    fn names_stop_at_their_caps() {
        let mut n = Names::default();
        for i in 0..MAX_NAMES + 10 {
            n.symlink(format!("/h/l{i}").as_bytes(), b"t");
        }
        assert_eq!(n.leading, MAX_NAMES);
        // Replacing a name already made still works at the cap.
        n.symlink(b"/h/l0", b"u");
        assert_eq!(reached(&n, "/h/l0").as_deref(), Some("/h/u"));
        assert_eq!(reached(&n, "/h/l20000"), None);

        let mut n = Names::default();
        let long = vec![b'a'; 4000];
        for i in 0..5000 {
            let mut link = format!("/h/{i}/").into_bytes();
            link.extend_from_slice(&long);
            n.symlink(&link, &long);
        }
        assert!(n.bytes <= MAX_NAME_BYTES);
        let counted: usize = n.made.iter().map(|(k, l)| k.len() + l.to.len()).sum();
        assert_eq!(counted, n.bytes);
        n.forget(&[b"/h/0/aaaa"]);
        let mut first = b"/h/0/".to_vec();
        first.extend_from_slice(&long);
        n.forget(&[&first]);
        let counted: usize = n.made.iter().map(|(k, l)| k.len() + l.to.len()).sum();
        assert_eq!(counted, n.bytes);
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("."), Just(".."), Just("")],
            0..6,
        )
        .prop_flat_map(|parts| {
            any::<bool>().prop_map(move |abs| {
                let joined = parts.join("/");
                if abs { format!("/{joined}") } else { joined }.into_bytes()
            })
        })
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent_and_clean(n in name()) {
            let once = normalize(&n);
            prop_assert_eq!(normalize(&once), once.clone());
            prop_assert!(!once.windows(2).any(|w| w == b"//"));
            prop_assert_eq!(once.starts_with(b"/"), n.starts_with(b"/"));
        }

        /// Any sequence of links, renames, removals and undos: every lookup ends (loops
        /// included), never names itself, undoing an operation restores the names, and the
        /// bytes counted are the bytes held.
        #[test]
        fn any_operations_end_and_undo_exactly(
            ops in proptest::collection::vec(
                (0u8..5, name(), name(), any::<bool>(), any::<bool>()),
                0..24,
            ),
            probes in proptest::collection::vec(name(), 1..8),
        ) {
            let mut n = Names::default();
            for (kind, a, b, uploaded, fail) in ops {
                let before = n.made.clone();
                let undo = match kind {
                    0 => n.symlink(&a, &b),
                    1 => n.link(&a, &b, false),
                    2 => n.link(&a, &b, true),
                    3 => n.renamed(&a, &b, uploaded),
                    _ => n.forget(&[&a, &b]),
                };
                if fail {
                    n.undo(undo);
                    prop_assert_eq!(&n.made, &before);
                }
                for p in &probes {
                    if let Some(r) = n.reached(p) {
                        prop_assert_ne!(r, normalize(p));
                    }
                }
                let counted: usize = n.made.iter().map(|(k, l)| k.len() + l.to.len()).sum();
                prop_assert_eq!(counted, n.bytes);
            }
        }
    }
}

#[cfg(test)]
mod cost {
    use super::*;
    use std::time::Duration;

    /// Runs `lookup` on its own thread, and says whether it ended within `budget`.
    fn within(budget: Duration, lookup: impl FnOnce() + Send + 'static) -> bool {
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            lookup();
            let _ = done.send(());
        });
        wait.recv_timeout(budget).is_ok()
    }

    /// A symlink whose target runs through itself (`d` -> `d/x/x/.../x`): each of the 40 hops
    /// adds the target again, and each hop hashes every leading part of a name that grows to
    /// 40 targets. One open of `d/f` must not cost the tap (a 4 KiB target, answered OK once the
    /// partner removed `d` by its relative name and made it a directory) or the ingest (a target
    /// in sftp-server's line; the open is logged whether or not it worked) seconds of CPU.
    #[test]
    fn a_lookup_through_a_self_loop_is_cheap() {
        for components in [490, 2040] {
            let ended = within(Duration::from_secs(1), move || {
                let mut n = Names::default();
                let target = [&b"d"[..], &b"/x".repeat(components)].concat();
                n.symlink(b"/home/p/d", &target);
                assert_eq!(n.reached(b"/home/p/d/f"), None);
            });
            assert!(
                ended,
                "a lookup through a self-loop of {components} components"
            );
        }
    }

    /// Lines of sftp-server's 500 characters: 39 symlinks, each to the next with 200 parts
    /// after it, the last to `L`, then a hardlink of `A1/f` to `L` (answered `No such file`,
    /// which the ingest follows): `L` leads to a name of 16 KB through itself. An open of
    /// `L/g` took the ingest more than two minutes.
    #[test]
    fn a_lookup_through_a_loop_made_long_by_a_hardlink_is_cheap() {
        let ended = within(Duration::from_secs(2), || {
            let x = b"/x".repeat(200);
            let mut n = Names::default();
            for i in 1..40 {
                let next = match i {
                    39 => b"L".to_vec(),
                    _ => format!("A{}", i + 1).into_bytes(),
                };
                n.symlink(format!("/H/A{i}").as_bytes(), &[&next[..], &x[..]].concat());
            }
            n.link(b"/H/L", b"/H/A1/f", false);
            assert_eq!(n.reached(b"/H/L/g"), None);
        });
        assert!(ended, "a lookup through a loop made long by a hardlink");
    }

    /// 41 short symlinks in a chain (`A1` -> `A2` ... -> `A41`) and an open of `A1/x/x/.../x`
    /// of 4 KiB: every hop hashes the 2,000 leading parts of a name that does not grow.
    #[test]
    fn a_chain_under_a_deep_name_is_cheap() {
        let ended = within(Duration::from_secs(1), || {
            let mut n = Names::default();
            for i in 1..=40 {
                n.symlink(
                    format!("/H/A{i}").as_bytes(),
                    format!("A{}", i + 1).as_bytes(),
                );
            }
            let deep = [&b"/H/A1"[..], &b"/x".repeat(2040)].concat();
            let _ = n.reached(&deep);
        });
        assert!(ended, "a lookup of a deep name through a chain of 40");
    }
}

/// `Names` against a tiny filesystem (inodes, directories, symlinks resolved as the kernel
/// resolves them): for random sequences of operations the kernel would accept, a name that
/// resolves to a file is reported as the name that file had before the session began.
#[cfg(test)]
mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Node {
        File(String),
        Dir(BTreeMap<String, usize>),
        Link(String),
    }

    #[derive(Clone, Debug)]
    struct Fs {
        nodes: Vec<Node>,
    }

    const ROOT: usize = 0;

    impl Fs {
        fn new() -> Fs {
            let mut fs = Fs {
                nodes: vec![Node::Dir(BTreeMap::new())],
            };
            for d in ["/h", "/h/d", "/q"] {
                fs.mk(d, Node::Dir(BTreeMap::new()));
            }
            for f in ["/h/a", "/h/b", "/h/d/a", "/q/secret", "/q/a"] {
                fs.mk(f, Node::File(f.to_string()));
            }
            fs
        }
        fn mk(&mut self, path: &str, node: Node) {
            let (dir, last) = self.parent(path).unwrap();
            self.nodes.push(node);
            let id = self.nodes.len() - 1;
            if let Node::Dir(m) = &mut self.nodes[dir] {
                m.insert(last, id);
            }
        }
        /// Resolves `path` from `/`, following symlinks (the last too when `follow`).
        fn resolve(&self, path: &str, follow: bool, hops: &mut usize) -> Option<usize> {
            let mut stack: Vec<usize> = vec![ROOT];
            let mut parts: Vec<String> = path.split('/').rev().map(str::to_string).collect();
            while let Some(part) = parts.pop() {
                let cur = *stack.last().unwrap();
                match part.as_str() {
                    "" | "." => continue,
                    ".." => {
                        if stack.len() > 1 {
                            stack.pop();
                        }
                        continue;
                    }
                    _ => {}
                }
                let Node::Dir(m) = &self.nodes[cur] else {
                    return None;
                };
                let &next = m.get(&part)?;
                let last = parts.iter().all(|p| p.is_empty());
                if let Node::Link(t) = &self.nodes[next]
                    && (follow || !last)
                {
                    *hops += 1;
                    if *hops > 40 {
                        return None;
                    }
                    if t.starts_with('/') {
                        stack.truncate(1);
                    }
                    parts.extend(t.split('/').rev().map(str::to_string));
                    continue;
                }
                if !last && !matches!(self.nodes[next], Node::Dir(_)) {
                    return None;
                }
                stack.push(next);
            }
            Some(*stack.last().unwrap())
        }
        /// The directory `path`'s last part is in (resolved), and that part.
        fn parent(&self, path: &str) -> Option<(usize, String)> {
            let trimmed = path.trim_end_matches('/');
            let at = trimmed.rfind('/')?;
            let last = &trimmed[at + 1..];
            if last.is_empty() || last == "." || last == ".." || trimmed.len() != path.len() {
                return None;
            }
            let dir = self.resolve(&trimmed[..at.max(1)], true, &mut 0)?;
            matches!(self.nodes[dir], Node::Dir(_)).then(|| (dir, last.to_string()))
        }
        fn get(&self, dir: usize, last: &str) -> Option<usize> {
            match &self.nodes[dir] {
                Node::Dir(m) => m.get(last).copied(),
                _ => None,
            }
        }
        fn set(&mut self, dir: usize, last: &str, id: Option<usize>) {
            if let Node::Dir(m) = &mut self.nodes[dir] {
                match id {
                    Some(id) => m.insert(last.to_string(), id),
                    None => m.remove(last),
                };
            }
        }
        fn within(&self, dir: usize, id: usize) -> bool {
            if dir == id {
                return true;
            }
            match &self.nodes[dir] {
                Node::Dir(m) => m.values().any(|&c| self.within(c, id)),
                _ => false,
            }
        }
        /// The partner may only change names under `/h` (`/q` is another partner's).
        fn writable(&self, dir: usize) -> bool {
            let h = self.resolve("/h", true, &mut 0).unwrap();
            self.within(h, dir)
        }
    }

    fn path() -> impl Strategy<Value = String> {
        let common = proptest::sample::select(vec![
            "/h/a",
            "/h/d",
            "/h/e",
            "/h/l",
            "/h/d/a",
            "/h/e/a",
            "/h/l/a",
            "/h/l/../a",
        ])
        .prop_map(str::to_string);
        let any = proptest::collection::vec(
            prop_oneof![
                3 => Just("a"),
                1 => Just("b"),
                3 => Just("d"),
                3 => Just("e"),
                2 => Just("l"),
                1 => Just(".."),
                1 => Just("."),
            ],
            1..4,
        )
        .prop_map(|p| format!("/h/{}", p.join("/")));
        prop_oneof![3 => common, 1 => any]
    }

    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => proptest::collection::vec(
                prop_oneof![
                    Just("a"),
                    Just("b"),
                    Just("d"),
                    Just("e"),
                    Just("l"),
                    Just("..")
                ],
                1..4,
            )
            .prop_map(|p| p.join("/")),
            1 => Just("/q".to_string()),
            1 => Just("/q/secret".to_string()),
            1 => Just("/h/d".to_string()),
            3 => path(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]
        #[test]
        fn reached_is_the_file_the_kernel_opens(
            ops in proptest::collection::vec((0u8..7, path(), target()), 1..12),
            probes in proptest::collection::vec(path(), 1..6),
        ) {
            check(ops, probes)?;
        }
    }

    fn check(ops: Vec<(u8, String, String)>, mut probes: Vec<String>) -> Result<(), TestCaseError> {
        probes.extend(ops.iter().map(|(_, a, _)| a.clone()));
        let mut fs = Fs::new();
        let mut n = Names::default();
        let mut done = Vec::new();
        for (kind, a, b) in ops {
            match kind {
                // symlink: a holds b
                0 => {
                    let Some((dir, last)) = fs.parent(&a) else {
                        continue;
                    };
                    if fs.get(dir, &last).is_some() || !fs.writable(dir) {
                        continue;
                    }
                    fs.mk_at(dir, &last, Node::Link(b.clone()));
                    n.symlink(a.as_bytes(), b.as_bytes());
                    done.push(format!("symlink {a} -> {b}"));
                }
                // hardlink / rename of b (as a path) to a
                1 | 2 => {
                    let b = if b.starts_with('/') {
                        b
                    } else {
                        format!("/h/{b}")
                    };
                    let Some((odir, olast)) = fs.parent(&b) else {
                        continue;
                    };
                    let Some(id) = fs.get(odir, &olast) else {
                        continue;
                    };
                    let Some((ndir, nlast)) = fs.parent(&a) else {
                        continue;
                    };
                    if fs.get(ndir, &nlast).is_some() || !fs.writable(ndir) {
                        continue;
                    }
                    if kind == 1 {
                        if matches!(fs.nodes[id], Node::Dir(_)) {
                            continue;
                        }
                        fs.set(ndir, &nlast, Some(id));
                        n.link(a.as_bytes(), b.as_bytes(), false);
                        done.push(format!("hardlink {b} -> {a}"));
                    } else {
                        if !fs.writable(odir) || fs.within(id, ndir) {
                            continue;
                        }
                        fs.set(odir, &olast, None);
                        fs.set(ndir, &nlast, Some(id));
                        n.link(a.as_bytes(), b.as_bytes(), true);
                        done.push(format!("rename {b} -> {a}"));
                    }
                }
                // posix-rename of b to a, replacing a file (or an empty directory) there
                4 => {
                    let b = if b.starts_with('/') {
                        b
                    } else {
                        format!("/h/{b}")
                    };
                    let Some((odir, olast)) = fs.parent(&b) else {
                        continue;
                    };
                    let Some(id) = fs.get(odir, &olast) else {
                        continue;
                    };
                    let Some((ndir, nlast)) = fs.parent(&a) else {
                        continue;
                    };
                    if !fs.writable(ndir) || !fs.writable(odir) || fs.within(id, ndir) {
                        continue;
                    }
                    if let Some(old) = fs.get(ndir, &nlast) {
                        if old == id {
                            continue;
                        }
                        let src_dir = matches!(fs.nodes[id], Node::Dir(_));
                        match &fs.nodes[old] {
                            Node::Dir(m) if src_dir && m.is_empty() => {}
                            Node::Dir(_) => continue,
                            _ if src_dir => continue,
                            _ => {}
                        }
                    }
                    fs.set(odir, &olast, None);
                    fs.set(ndir, &nlast, Some(id));
                    n.link(a.as_bytes(), b.as_bytes(), true);
                    done.push(format!("posix-rename {b} -> {a}"));
                }
                // an upload of a new file, or a mkdir
                5 | 6 => {
                    let Some((dir, last)) = fs.parent(&a) else {
                        continue;
                    };
                    if fs.get(dir, &last).is_some() || !fs.writable(dir) {
                        continue;
                    }
                    let node = if kind == 5 {
                        // Its name as the kernel has it (`/h/l/../a` is `/h/a`, through
                        // links too): what it may be reached as.
                        Node::File(format!(
                            "new:{}/{last}",
                            fs.path_of(dir).unwrap_or_default()
                        ))
                    } else {
                        Node::Dir(BTreeMap::new())
                    };
                    fs.mk_at(dir, &last, node);
                    done.push(format!("create({kind}) {a}"));
                }
                // remove
                _ => {
                    let Some((dir, last)) = fs.parent(&a) else {
                        continue;
                    };
                    let Some(id) = fs.get(dir, &last) else {
                        continue;
                    };
                    if !fs.writable(dir) {
                        continue;
                    }
                    if let Node::Dir(m) = &fs.nodes[id]
                        && !m.is_empty()
                    {
                        continue;
                    }
                    fs.set(dir, &last, None);
                    n.forget(&[a.as_bytes()]);
                    done.push(format!("remove {a}"));
                }
            }
        }
        for p in probes {
            let Some(id) = fs.resolve(&p, true, &mut 0) else {
                continue;
            };
            let Node::File(birth) = &fs.nodes[id] else {
                continue;
            };
            let got = n
                .reached(p.as_bytes())
                .map(|r| String::from_utf8(r).unwrap());
            if birth.starts_with("new:") {
                // A file made in the session: whatever name is given, not one of the
                // files there were before.
                if let Some(r) = &got
                    && fs.resolve(r, true, &mut 0) != Some(id)
                    && birth != &format!("new:{r}")
                {
                    let before = Fs::new().resolve(r, false, &mut 0);
                    prop_assert!(
                        before.is_none_or(|b| !matches!(Fs::new().nodes[b], Node::File(_))),
                        "{:?} then open {} reached {} (a file there was before)",
                        done,
                        p,
                        r
                    );
                }
                continue;
            }
            let want =
                (birth.as_bytes() != normalize(p.as_bytes()).as_slice()).then(|| birth.clone());
            prop_assert_eq!(got, want, "{:?} then open {}", done, p);
        }
        Ok(())
    }

    /// A file renamed away, linked back by its first name, then its directory renamed: it is
    /// still the file first named so.
    #[test]
    fn a_file_linked_back_to_its_first_name_is_that_file_in_a_renamed_directory() {
        let ops = vec![
            (4, "/h/a".to_string(), "/h/d/a".to_string()),
            (1, "/h/d/a".to_string(), "/h/a".to_string()),
            (2, "/h/l".to_string(), "/h/d".to_string()),
        ];
        check(ops, vec!["/h/l/a".to_string()]).unwrap();
    }

    /// A directory renamed over an empty one: the names once made in the one replaced (a
    /// file renamed out of it) do not hide the files of the one renamed.
    #[test]
    fn a_directory_renamed_over_an_emptied_one_keeps_its_files() {
        let ops = vec![
            (6, "/h/e".to_string(), String::new()),
            (5, "/h/e/a".to_string(), String::new()),
            (4, "/h/a".to_string(), "/h/e/a".to_string()),
            (4, "/h/e".to_string(), "/h/d".to_string()),
        ];
        check(ops, vec!["/h/e/a".to_string()]).unwrap();
    }

    /// A directory made where a renamed one was, renamed in turn: a file made in it is a new
    /// file, not one the first directory held (found by the model above).
    #[test]
    fn a_directory_made_again_and_renamed_holds_only_new_files() {
        let ops = vec![
            (2, "/h/l".to_string(), "/h/d".to_string()),
            (6, "/h/d".to_string(), "a".to_string()),
            (2, "/h/e".to_string(), "l/../d".to_string()),
            (5, "/h/e/a".to_string(), "a".to_string()),
        ];
        check(ops, vec!["/h/e/a".to_string(), "/h/l/a".to_string()]).unwrap();
    }

    /// A file made by a name through `..` is reached by its name as the kernel has it.
    #[test]
    fn the_model_names_a_new_file_as_the_kernel_does() {
        let ops = vec![
            (6, "/h/l".to_string(), String::new()),
            (3, "/h/l/../a".to_string(), String::new()),
            (5, "/h/l/../a".to_string(), String::new()),
            (2, "/h/l/a".to_string(), "/h/a".to_string()),
        ];
        check(ops, vec!["/h/l/a".to_string()]).unwrap();
    }

    #[test]
    fn the_model_sees_a_new_file_in_a_renamed_directory() {
        let ops = vec![
            (2, "/h/e".to_string(), "/h/d".to_string()),
            (3, "/h/e/a".to_string(), String::new()),
            (5, "/h/e/a".to_string(), String::new()),
        ];
        check(ops, vec!["/h/e/a".to_string()]).unwrap();
    }

    impl Fs {
        /// The path of directory `id` from `/`, by the names that hold it (no symlinks).
        fn path_of(&self, id: usize) -> Option<String> {
            fn walk(fs: &Fs, at: usize, id: usize, path: &mut String) -> bool {
                if at == id {
                    return true;
                }
                let Node::Dir(m) = &fs.nodes[at] else {
                    return false;
                };
                for (name, &child) in m {
                    let len = path.len();
                    path.push('/');
                    path.push_str(name);
                    if walk(fs, child, id, path) {
                        return true;
                    }
                    path.truncate(len);
                }
                false
            }
            let mut path = String::new();
            walk(self, ROOT, id, &mut path).then_some(path)
        }

        fn mk_at(&mut self, dir: usize, last: &str, node: Node) {
            self.nodes.push(node);
            let id = self.nodes.len() - 1;
            self.set(dir, last, Some(id));
        }
    }
}

#[cfg(test)]
mod review {
    use super::*;

    /// A directory renamed, a file in it removed and a new one uploaded by the same name: the
    /// download reads the new upload, not the file the directory held before the rename.
    #[test]
    fn a_new_file_in_a_renamed_directory_is_not_the_file_removed_from_it() {
        let mut n = Names::default();
        n.link(b"/h/e", b"/h/d", true);
        n.forget(&[b"/h/e/invoice-42.xml"]);
        // (an upload of a new /h/e/invoice-42.xml: not a link, Names is not told)
        assert_eq!(n.reached(b"/h/e/invoice-42.xml"), None);
    }

    /// The same, the file removed (or renamed away) before its directory was renamed.
    #[test]
    fn a_name_removed_before_its_directory_is_renamed_is_not_the_old_file() {
        for away in [true, false] {
            let mut n = Names::default();
            if away {
                n.link(b"/h/z", b"/h/d/invoice-42.xml", true);
            } else {
                n.forget(&[b"/h/d/invoice-42.xml"]);
            }
            n.link(b"/h/e", b"/h/d", true);
            assert_eq!(n.reached(b"/h/e/invoice-42.xml"), None, "{away}");
        }
    }

    /// A removed name is no link: an upload to it renamed right after its close is a file of
    /// its new name.
    #[test]
    fn an_upload_by_a_removed_name_renamed_is_its_new_name() {
        let mut n = Names::default();
        n.symlink(b"/h/l", b"/srv/x");
        n.forget(&[b"/h/x.filepart"]);
        n.renamed(b"/h/x.filepart", b"/h/x", true);
        assert_eq!(n.reached(b"/h/x"), None);
    }
}
