//! Man pages and shell completions, generated from the same definitions the programs use: the
//! clap command lines (clap_mangen, clap_complete) and [`crate::config::REFERENCE`].

use crate::accounting::cli::ReportCli;
use crate::shell::cli::WrapperAdmin;
use clap::CommandFactory;
use std::io;
use std::path::Path;

/// Escapes text for a roff line.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// sftpd-wrapper.toml(5).
pub(crate) fn config_manpage() -> String {
    let mut page = String::new();
    page.push_str(&format!(
        ".TH SFTPD-WRAPPER.TOML 5 \"\" \"sftpd-wrapper {}\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    page.push_str(".SH NAME\nsftpd\\-wrapper.toml \\- configuration of the sftpd\\-wrapper login shell and sftpd\\-report\n");
    page.push_str(".SH DESCRIPTION\n");
    page.push_str(&roff(
        "/etc/sftpd-wrapper.toml is read by the login shell on every connection and by sftpd-report. \
         It must be owned by root and not writable by group or others, or every session is refused. \
         A missing file means built-in defaults. Unknown keys are errors. Check a file with sftpd-wrapper --check-config [--user NAME].",
    ));
    page.push_str("\n.SH SETTINGS\n");
    for (key, example, meaning) in crate::config::REFERENCE {
        let (table, field) = key.rsplit_once('.').unwrap_or(("", key));
        page.push_str(&format!(".TP\n.B [{}] {}\n", roff(table), roff(field)));
        page.push_str(&format!(
            "{}\n.br\nExample: {}\n",
            roff(meaning),
            roff(&format!("{field} = {example}"))
        ));
    }
    page.push_str(".SH FILES\n/etc/sftpd\\-wrapper.toml\n.SH SEE ALSO\n.BR sftpd\\-wrapper (8),\n.BR sftpd\\-report (1),\n.BR sshd_config (5)\n");
    page
}

/// Writes man8/, man1/, man5/ and completions/{bash,zsh,fish}/ under `out`.
pub fn write_all(out: &Path) -> io::Result<()> {
    for (dir, name, mut cmd, section) in [
        ("man8", "sftpd-wrapper.8", WrapperAdmin::command(), "8"),
        ("man1", "sftpd-report.1", ReportCli::command(), "1"),
    ] {
        std::fs::create_dir_all(out.join(dir))?;
        cmd = cmd.version(env!("CARGO_PKG_VERSION"));
        let man = clap_mangen::Man::new(cmd).section(section);
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        std::fs::write(out.join(dir).join(name), buf)?;
    }
    std::fs::create_dir_all(out.join("man5"))?;
    std::fs::write(out.join("man5/sftpd-wrapper.toml.5"), config_manpage())?;
    for (shell, dir) in [
        (clap_complete::Shell::Bash, "bash"),
        (clap_complete::Shell::Zsh, "zsh"),
        (clap_complete::Shell::Fish, "fish"),
    ] {
        let target = out.join("completions").join(dir);
        std::fs::create_dir_all(&target)?;
        clap_complete::generate_to(
            shell,
            &mut WrapperAdmin::command(),
            "sftpd-wrapper",
            &target,
        )?;
        clap_complete::generate_to(shell, &mut ReportCli::command(), "sftpd-report", &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_completions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let wrapper = std::fs::read_to_string(dir.path().join("man8/sftpd-wrapper.8")).unwrap();
        assert!(wrapper.contains("check\\-config"), "{wrapper}");
        assert!(wrapper.contains("setup\\-chroot"));
        let report = std::fs::read_to_string(dir.path().join("man1/sftpd-report.1")).unwrap();
        assert!(report.contains("ingest") && report.contains("copy"));
        let config = std::fs::read_to_string(dir.path().join("man5/sftpd-wrapper.toml.5")).unwrap();
        assert!(config.contains("on_upload") && config.contains("post_session_mode"));
        assert!(
            dir.path()
                .join("completions/bash/sftpd-report.bash")
                .exists()
        );
        assert!(dir.path().join("completions/zsh/_sftpd-wrapper").exists());
        assert!(
            dir.path()
                .join("completions/fish/sftpd-report.fish")
                .exists()
        );
    }
}
