mod common;
use common::Harness;

#[test]
fn smoke() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("a.txt"), b"hello").unwrap();
    let out = h.sftp(&user, "put a.txt\nls -l\n", local.path());
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", h.log_text());
    eprintln!("{}", std::fs::read_to_string(h.root().join("sshd.err")).unwrap());
    assert!(out.status.success());
}
