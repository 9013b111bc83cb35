//! Key-pair login tokens checked by an independent referee, OpenSSL: the
//! fingerprint equals the one `openssl` computes the way Snowflake's
//! documentation does, and the RS256 signature verifies with the public key.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use snowflake::keypair::KeyPair;

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn tokens_verify_with_openssl_and_name_the_registered_key() {
    let dir = std::env::temp_dir().join(format!("contrail-keypair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(&dir, &["genrsa", "-out", "pkcs1.pem", "2048"]);
    // Snowflake's documented way to make the key (PKCS#8, unencrypted) and
    // the fingerprint DESCRIBE USER shows.
    openssl(
        &dir,
        &["pkcs8", "-topk8", "-nocrypt", "-in", "pkcs1.pem", "-out", "rsa_key.p8"],
    );
    openssl(&dir, &["rsa", "-in", "pkcs1.pem", "-pubout", "-out", "rsa_key.pub"]);
    let expected_fp = sh(
        &dir,
        "openssl rsa -pubin -in rsa_key.pub -outform DER 2>/dev/null | openssl dgst -sha256 -binary | openssl enc -base64",
    );
    let pkcs1 = sh(&dir, "openssl rsa -in pkcs1.pem -traditional 2>/dev/null");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    let from_p8 = KeyPair::from_pem(&std::fs::read_to_string(dir.join("rsa_key.p8")).unwrap()).unwrap();
    let from_pkcs1 = KeyPair::from_pem(&pkcs1).unwrap();
    assert_eq!(from_p8.fingerprint(), format!("SHA256:{expected_fp}"));
    assert_eq!(from_pkcs1.fingerprint(), from_p8.fingerprint());
    assert!(!format!("{from_p8:?}").contains("BEGIN"));

    let token = from_p8.token("xy12345.us-east-1", "contrail", 1_700_000_000).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        claims,
        serde_json::json!({
            "iss": format!("XY12345.CONTRAIL.SHA256:{expected_fp}"),
            "sub": "XY12345.CONTRAIL",
            "iat": 1_700_000_000u64,
            "exp": 1_700_000_060u64,
        })
    );
    std::fs::write(dir.join("input"), format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(dir.join("sig"), URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    let verified = openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa_key.pub",
            "-signature",
            "sig",
            "input",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&verified).trim(), "Verified OK");

    // A token signed for other claims does not verify against these.
    std::fs::write(dir.join("input"), format!("{}.{}x", parts[0], parts[1])).unwrap();
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "rsa_key.pub",
            "-signature",
            "sig",
            "input",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An encrypted PKCS#8 key, made as Snowflake's guide makes it (`openssl
/// pkcs8 -topk8 -v2 aes256`, and with SHA-1's PBKDF2 and AES-128), decrypts
/// to the same key; a wrong passphrase, or none, is refused by name.
#[test]
fn encrypted_keys_decrypt_with_their_passphrase() {
    let dir = std::env::temp_dir().join(format!("contrail-keypair-enc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(&dir, &["genrsa", "-out", "pkcs1.pem", "2048"]);
    openssl(
        &dir,
        &["pkcs8", "-topk8", "-nocrypt", "-in", "pkcs1.pem", "-out", "plain.p8"],
    );
    let plain = KeyPair::from_pem(&std::fs::read_to_string(dir.join("plain.p8")).unwrap()).unwrap();
    let pass = changes::Secret::new("correct horse");
    for (file, extra) in [
        ("aes256.p8", &["-v2", "aes256"][..]),
        ("aes128-sha1.p8", &["-v2", "aes128", "-v2prf", "hmacWithSHA1"][..]),
        (
            "aes256-sha512.p8",
            &["-v2", "aes256", "-v2prf", "hmacWithSHA512", "-iter", "100000"][..],
        ),
    ] {
        let mut args = vec![
            "pkcs8",
            "-topk8",
            "-in",
            "pkcs1.pem",
            "-out",
            file,
            "-passout",
            "pass:correct horse",
        ];
        args.extend_from_slice(extra);
        openssl(&dir, &args);
        let pem = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{file}");
        let key = KeyPair::from_pem_with(&pem, Some(&pass)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(key.fingerprint(), plain.fingerprint(), "{file}");
        let wrong = KeyPair::from_pem_with(&pem, Some(&changes::Secret::new("wrong")))
            .unwrap_err()
            .0;
        assert!(
            wrong.contains("is SNOWFLAKE_PRIVATE_KEY_PASSPHRASE right?"),
            "{file}: {wrong}"
        );
        let none = KeyPair::from_pem(&pem).unwrap_err().0;
        assert!(none.contains("set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"), "{none}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
