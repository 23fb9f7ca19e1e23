//! Deciding whether sshd's invocation of the login shell is an SFTP session.
//!
//! sshd runs the shell as `[name, "-c", command]` for a subsystem and for `ssh host <anything>`
//! alike, so the command is attacker-controlled. It is compared byte for byte with the allowed
//! commands and never parsed, split or passed on.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// argv[0] starts with '-': sshd's interactive login (no command, no subsystem).
    InteractiveLogin,
    /// Anything but exactly `-c COMMAND`.
    UnexpectedArguments,
    /// `-c COMMAND` where COMMAND is not one of the allowed commands.
    CommandNotAllowed,
}

impl Refusal {
    /// The value of the `reason=` field in the refusal log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::InteractiveLogin => "interactive_login",
            Refusal::UnexpectedArguments => "unexpected_arguments",
            Refusal::CommandNotAllowed => "command_not_allowed",
        }
    }
}

/// Accepts the invocation when it is exactly `NAME -c COMMAND`, NAME does not mark a login shell,
/// and COMMAND equals one allowed command byte for byte.
pub fn check(argv: &[OsString], allowed_commands: &[String]) -> Result<(), Refusal> {
    if argv
        .first()
        .is_some_and(|name| name.as_bytes().first() == Some(&b'-'))
    {
        return Err(Refusal::InteractiveLogin);
    }
    let [_, flag, command] = argv else {
        return Err(Refusal::UnexpectedArguments);
    };
    if flag.as_bytes() != b"-c" {
        return Err(Refusal::UnexpectedArguments);
    }
    if allowed_commands
        .iter()
        .any(|allowed| allowed.as_bytes() == command.as_bytes())
    {
        Ok(())
    } else {
        Err(Refusal::CommandNotAllowed)
    }
}

/// What to write into the log as the refused command: the `-c` string when there is one, else the
/// arguments after argv[0], space-separated (the log line escapes it).
pub(crate) fn refused_command(argv: &[OsString]) -> Vec<u8> {
    match argv {
        [_, flag, command] if flag.as_bytes() == b"-c" => command.as_bytes().to_vec(),
        [_, rest @ ..] => rest
            .iter()
            .map(|a| a.as_bytes())
            .collect::<Vec<_>>()
            .join(&b' '),
        [] => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    const SFTP: &str = "/usr/lib/openssh/sftp-server";

    fn argv(parts: &[&[u8]]) -> Vec<OsString> {
        parts
            .iter()
            .map(|p| OsString::from_vec(p.to_vec()))
            .collect()
    }

    fn allowed() -> Vec<String> {
        vec![SFTP.to_owned()]
    }

    #[test]
    fn the_subsystem_invocation_is_accepted() {
        assert_eq!(
            check(
                &argv(&[b"sftpd-wrapper", b"-c", SFTP.as_bytes()]),
                &allowed()
            ),
            Ok(())
        );
        // argv[0] is the basename of pw_shell, whatever the admin named the binary.
        assert_eq!(
            check(&argv(&[b"sftp-shell", b"-c", SFTP.as_bytes()]), &allowed()),
            Ok(())
        );
        let two = vec![SFTP.to_owned(), format!("{SFTP} -l info")];
        assert_eq!(
            check(
                &argv(&[b"w", b"-c", b"/usr/lib/openssh/sftp-server -l info"]),
                &two
            ),
            Ok(())
        );
    }

    #[test]
    fn hostile_invocations_are_refused() {
        use Refusal::*;
        let table: &[(&[&[u8]], Refusal)] = &[
            (&[b"-sftpd-wrapper"], InteractiveLogin),
            (
                &[b"-sftpd-wrapper", b"-c", SFTP.as_bytes()],
                InteractiveLogin,
            ),
            (&[b"-bash"], InteractiveLogin),
            (&[b"sftpd-wrapper"], UnexpectedArguments),
            (&[], UnexpectedArguments),
            (&[b"sftpd-wrapper", b"-c"], UnexpectedArguments),
            (
                &[b"sftpd-wrapper", b"-c", SFTP.as_bytes(), b"-d"],
                UnexpectedArguments,
            ),
            (
                &[b"sftpd-wrapper", b"-c", SFTP.as_bytes(), b"x"],
                UnexpectedArguments,
            ),
            (
                &[b"sftpd-wrapper", b"-l", SFTP.as_bytes()],
                UnexpectedArguments,
            ),
            (
                &[b"sftpd-wrapper", b"-lc", SFTP.as_bytes()],
                UnexpectedArguments,
            ),
            (
                &[b"sftpd-wrapper", b"-c ", SFTP.as_bytes()],
                UnexpectedArguments,
            ),
            (
                &[b"sftpd-wrapper", b"--", SFTP.as_bytes()],
                UnexpectedArguments,
            ),
            (&[b"sftpd-wrapper", SFTP.as_bytes()], UnexpectedArguments),
            (
                &[b"sftpd-wrapper", b"--check-config", b"x"],
                UnexpectedArguments,
            ),
            (&[b"sftpd-wrapper", b"-i"], UnexpectedArguments),
            (&[b"sftpd-wrapper", b"-c", b"id"], CommandNotAllowed),
            (&[b"sftpd-wrapper", b"-c", b""], CommandNotAllowed),
            (&[b"sftpd-wrapper", b"-c", b"/bin/sh"], CommandNotAllowed),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/sftp-server; sh"],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"/usr/lib/openssh/sftp-server -d /",
                ],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"/usr/lib/openssh/sftp-server && id",
                ],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"/usr/lib/openssh/sftp-server | sh",
                ],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/sftp-server\nid"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/sftp-server\0id"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/sftp-server "],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b" /usr/lib/openssh/sftp-server"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh//sftp-server"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/./sftp-server"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/USR/LIB/OPENSSH/SFTP-SERVER"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"sftp-server"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"internal-sftp"],
                CommandNotAllowed,
            ),
            (&[b"sftpd-wrapper", b"-c", b"$(id)"], CommandNotAllowed),
            (&[b"sftpd-wrapper", b"-c", b"`id`"], CommandNotAllowed),
            (
                &[b"sftpd-wrapper", b"-c", b"scp -t /tmp"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"scp -f /etc/passwd"],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"rsync --server -vlogDtpre.iLsfxC . /tmp",
                ],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/bin/sh .ssh/rc"],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"exec /usr/lib/openssh/sftp-server",
                ],
                CommandNotAllowed,
            ),
            (
                &[
                    b"sftpd-wrapper",
                    b"-c",
                    b"LD_PRELOAD=/tmp/x.so /usr/lib/openssh/sftp-server",
                ],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"/usr/lib/openssh/sftp-server\xff"],
                CommandNotAllowed,
            ),
            (
                &[b"sftpd-wrapper", b"-c", b"git-upload-pack '/srv/x'"],
                CommandNotAllowed,
            ),
        ];
        assert!(table.len() >= 30);
        for (parts, expected) in table {
            let got = check(&argv(parts), &allowed());
            assert_eq!(got, Err(expected.clone()), "argv {:?}", argv(parts));
        }
    }

    #[test]
    fn refused_command_is_what_was_asked_for() {
        assert_eq!(refused_command(&argv(&[b"w", b"-c", b"id; sh"])), b"id; sh");
        assert_eq!(refused_command(&argv(&[b"w", b"-x", b"y"])), b"-x y");
        assert_eq!(refused_command(&argv(&[b"-w"])), b"");
        assert_eq!(refused_command(&argv(&[])), b"");
    }
}
