//! Writes the man pages and shell completions into a directory, for the packages:
//! `sftpd-docs target/docs`.

fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: sftpd-docs OUTDIR");
        std::process::exit(2);
    };
    if let Err(e) = sftpd_wrapper::docs::write_all(std::path::Path::new(&out)) {
        eprintln!("sftpd-docs: {e}");
        std::process::exit(1);
    }
}
