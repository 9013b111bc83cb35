//! `contrail registry serve` refuses, before it listens, to expose the
//! registry without authentication, and says what to do instead.

mod common;

use std::process::Command;

fn serve(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contrail"));
    cmd.args([
        "--project-dir",
        common::project().to_str().unwrap(),
        "registry",
        "serve",
    ])
    .args(args)
    .env_remove("CONTRAIL_REGISTRY_BASIC_AUTH")
    .env_remove("CONTRAIL_REGISTRY_USERS_FILE")
    .envs(env.iter().copied());
    let out = common::output_within(&mut cmd, common::COMMAND_LIMIT);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_public_address_without_authentication_is_refused_with_the_remedy() {
    let (code, said) = serve(&["--listen", "0.0.0.0:1"], &[]);
    assert_ne!(code, 0, "{said}");
    assert!(said.contains("would serve 0.0.0.0:1 without authentication"), "{said}");
    assert!(
        said.contains("CONTRAIL_REGISTRY_USERS_FILE") && said.contains("--insecure"),
        "{said}"
    );
}

#[test]
fn a_broken_users_file_or_an_exposed_anonymous_listener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "ann: s3cret-pw, admin\n").unwrap();
    let file = users.to_str().unwrap();
    let (code, said) = serve(&["--listen", "0.0.0.0:1"], &[("CONTRAIL_REGISTRY_USERS_FILE", file)]);
    assert_ne!(code, 0, "{said}");
    assert!(said.contains("line 1: the role must be read or write"), "{said}");
    assert!(!said.contains("s3cret-pw"), "the password is echoed: {said}");

    std::fs::write(&users, "ann: s3cret-pw, write\n").unwrap();
    let (code, said) = serve(
        &["--listen", "0.0.0.0:1", "--local-listen", "0.0.0.0:2"],
        &[("CONTRAIL_REGISTRY_USERS_FILE", file)],
    );
    assert_ne!(code, 0, "{said}");
    assert!(
        said.contains("local_listen 0.0.0.0:2 serves without authentication"),
        "{said}"
    );
}
