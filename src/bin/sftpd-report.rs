//! sftpd-report: ingest the SFTP audit log into the accounting database and print reports.

// See Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sftpd_wrapper::accounting::cli::main()
}
