//! Key-pair authentication: the JWT Snowflake accepts in place of a password
//! (`AUTHENTICATOR = SNOWFLAKE_JWT`).
//!
//! The user's public key is registered in Snowflake (`ALTER USER … SET
//! RSA_PUBLIC_KEY = …`); the client signs a short-lived JWT (RS256) with the
//! private key:
//!
//! - `iss`: `<ACCOUNT>.<USER>.SHA256:<fingerprint>`, the fingerprint being
//!   the base64 SHA-256 of the public key's DER SubjectPublicKeyInfo (what
//!   `DESCRIBE USER` shows as `RSA_PUBLIC_KEY_FP`);
//! - `sub`: `<ACCOUNT>.<USER>`;
//! - `iat`, `exp`: now, and one minute later (a token is minted per login).
//!
//! The account is upper case and without its region part (`xy12345` of
//! `xy12345.us-east-1`), as Snowflake's own drivers send it.
//!
//! Keys are read from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genrsa
//! | openssl pkcs8 -topk8 -nocrypt` writes) or PKCS#1 (`BEGIN RSA PRIVATE
//! KEY`), or encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`, what
//! `openssl pkcs8 -topk8 -v2 aes256` writes) with its passphrase; the key
//! and the passphrase are never printed.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// Why a private key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("private key: {0}")]
pub struct KeyError(pub String);

/// An RSA private key, ready to sign login tokens.
pub struct KeyPair {
    key: RsaKeyPair,
    fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// From a PEM text (PKCS#8 or PKCS#1, unencrypted).
    pub fn from_pem(pem: &str) -> Result<KeyPair, KeyError> {
        Self::from_pem_with(pem, None)
    }

    /// From a PEM text, decrypting an encrypted PKCS#8 key with
    /// `passphrase` (`SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`).
    pub fn from_pem_with(pem: &str, passphrase: Option<&changes::Secret>) -> Result<KeyPair, KeyError> {
        let (label, der) = pem_body(pem)?;
        let key = match label.as_str() {
            "PRIVATE KEY" => {
                RsaKeyPair::from_pkcs8(&der).map_err(|e| KeyError(format!("not an RSA key in PKCS#8 form ({e})")))?
            }
            "RSA PRIVATE KEY" => {
                RsaKeyPair::from_der(&der).map_err(|e| KeyError(format!("not an RSA key in PKCS#1 form ({e})")))?
            }
            "ENCRYPTED PRIVATE KEY" => {
                let Some(passphrase) = passphrase else {
                    return Err(KeyError(
                        "the key is encrypted: set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE (or its _FILE) to its passphrase"
                            .into(),
                    ));
                };
                let plain = crate::pbes2::decrypt(&der, passphrase.expose().as_bytes())?;
                RsaKeyPair::from_pkcs8(&plain).map_err(|_| {
                    KeyError("cannot decrypt the key: is SNOWFLAKE_PRIVATE_KEY_PASSPHRASE right?".into())
                })?
            }
            other => return Err(KeyError(format!("PEM block {other:?} is not a private key"))),
        };
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| KeyError("cannot encode the public key".into()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref());
        Ok(KeyPair {
            key,
            fingerprint: format!("SHA256:{}", STANDARD.encode(digest.as_ref())),
        })
    }

    /// `SHA256:<base64>`, as Snowflake's `RSA_PUBLIC_KEY_FP`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A signed login token for `user` of `account`, valid from `now` (Unix
    /// seconds) for one minute.
    pub fn token(&self, account: &str, user: &str, now: u64) -> Result<String, KeyError> {
        let qualified = format!("{}.{}", jwt_account(account), user.to_uppercase());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": format!("{qualified}.{}", self.fingerprint),
            "sub": qualified,
            "iat": now,
            "exp": now + 60,
        });
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError("signing the login token failed".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The account as a JWT names it: upper case, without region or cloud.
fn jwt_account(account: &str) -> String {
    let account = if account.contains(".global") {
        account.split('-').next().unwrap_or(account)
    } else {
        account.split('.').next().unwrap_or(account)
    };
    account.to_uppercase()
}

/// The label and the decoded body of the first PEM block.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = pem.lines().map(str::trim).skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines
        .next()
        .ok_or_else(|| KeyError("no PEM block (-----BEGIN …-----) found".into()))?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| KeyError(format!("malformed PEM line {begin:?}")))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            return STANDARD
                .decode(body.as_bytes())
                .map(|der| (label.clone(), der))
                .map_err(|e| KeyError(format!("the {label} block is not base64 ({e})")));
        }
        if line.contains(':') {
            // RFC 1421 headers (Proc-Type: 4,ENCRYPTED): an encrypted PKCS#1 key.
            return Err(KeyError(
                "the key is encrypted; decrypt it first: openssl rsa -in key.pem -out key_plain.pem".into(),
            ));
        }
        body.push_str(line);
    }
    Err(KeyError(format!("the {label} block has no {end} line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_as_snowflake_drivers_send_them() {
        assert_eq!(jwt_account("xy12345.us-east-1"), "XY12345");
        assert_eq!(jwt_account("myorg-myaccount"), "MYORG-MYACCOUNT");
        assert_eq!(jwt_account("xy12345-abc.global"), "XY12345");
        assert_eq!(jwt_account("local"), "LOCAL");
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let e = |s: &str| KeyPair::from_pem(s).unwrap_err().0;
        assert_eq!(e("hello"), "no PEM block (-----BEGIN …-----) found");
        assert!(
            e("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----").contains("encrypted")
        );
        assert!(e("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").contains("PKCS#8"));
        assert!(e("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----").contains("not base64"));
        assert!(e("-----BEGIN PRIVATE KEY-----\nAAAA\n").contains("no -----END PRIVATE KEY----- line"));
        assert!(e("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").contains("not a private key"));
    }
}
