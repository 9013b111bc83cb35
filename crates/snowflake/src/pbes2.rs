//! Encrypted PKCS#8 keys (`BEGIN ENCRYPTED PRIVATE KEY`), as Snowflake's
//! key-pair guide makes them (`openssl pkcs8 -topk8 -v2 aes256`):
//! PBES2 with PBKDF2 (HMAC-SHA1, -SHA256 or -SHA512) and AES-128-CBC or
//! AES-256-CBC, decrypted with aws-lc-rs.
//!
//! The DER is untrusted input: every length is checked against what is
//! left, and the iteration count is bounded, so a hostile file cannot make
//! the sink read out of bounds or spin.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;

use crate::keypair::KeyError;

const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// More than any tool writes (OpenSSL: 2,048; Snowflake's guide: the
/// default), far less than would stall a start.
const MAX_ITERATIONS: u32 = 10_000_000;

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;

fn bad(what: &str) -> KeyError {
    KeyError(format!("the encrypted key is malformed: {what}"))
}

/// A DER reader over a slice: each read checks the length it is given.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn read(&mut self, tag: u8, what: &str) -> Result<&'a [u8], KeyError> {
        let (&t, rest) = self.0.split_first().ok_or_else(|| bad(what))?;
        if t != tag {
            return Err(bad(what));
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(|| bad(what))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad(what));
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b))
        };
        if rest.len() < len {
            return Err(bad(what));
        }
        let (body, after) = rest.split_at(len);
        self.0 = after;
        Ok(body)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }
}

/// The PKCS#8 DER inside `der` (an EncryptedPrivateKeyInfo).
pub(crate) fn decrypt(der: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut outer = Der(Der(der).read(SEQUENCE, "EncryptedPrivateKeyInfo")?);
    let mut algorithm = Der(outer.read(SEQUENCE, "encryptionAlgorithm")?);
    if algorithm.read(OID, "encryption OID")? != PBES2 {
        return Err(KeyError(
            "the key is encrypted with a scheme other than PBES2: re-encrypt it with \
             openssl pkcs8 -topk8 -v2 aes256"
                .into(),
        ));
    }
    let mut params = Der(algorithm.read(SEQUENCE, "PBES2 parameters")?);
    let mut kdf = Der(params.read(SEQUENCE, "keyDerivationFunc")?);
    if kdf.read(OID, "KDF OID")? != PBKDF2 {
        return Err(KeyError(
            "the key's PBES2 uses a KDF other than PBKDF2 (scrypt?): not supported".into(),
        ));
    }
    let (salt, iterations, prf) = pbkdf2_params(Der(kdf.read(SEQUENCE, "PBKDF2 parameters")?))?;
    let mut scheme = Der(params.read(SEQUENCE, "encryptionScheme")?);
    let (cipher, key_len) = match scheme.read(OID, "cipher OID")? {
        AES256_CBC => (&AES_256, 32),
        AES128_CBC => (&AES_128, 16),
        _ => {
            return Err(KeyError(
                "the key's cipher is not AES-128-CBC or AES-256-CBC: not supported".into(),
            ))
        }
    };
    let iv: [u8; 16] = scheme
        .read(OCTET_STRING, "IV")?
        .try_into()
        .map_err(|_| bad("the IV is not 16 bytes"))?;
    let mut data = outer.read(OCTET_STRING, "encryptedData")?.to_vec();
    let mut key = vec![0u8; key_len];
    pbkdf2::derive(prf, iterations, salt, passphrase, &mut key);
    let key = UnboundCipherKey::new(cipher, &key).map_err(|_| bad("cipher key"))?;
    let decrypting = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| bad("cipher"))?;
    let plain = decrypting
        .decrypt(&mut data, DecryptionContext::Iv128(FixedLength::from(iv)))
        // A wrong passphrase shows as bad padding (or, rarely, as a PKCS#8
        // that does not parse): the two cannot be told apart.
        .map_err(|_| KeyError("cannot decrypt the key: is SNOWFLAKE_PRIVATE_KEY_PASSPHRASE right?".into()))?;
    Ok(plain.to_vec())
}

fn pbkdf2_params(mut p: Der<'_>) -> Result<(&[u8], NonZeroU32, pbkdf2::Algorithm), KeyError> {
    let salt = p.read(OCTET_STRING, "salt")?;
    let count = p.read(INTEGER, "iteration count")?;
    if count.is_empty() || count.len() > 4 || count[0] & 0x80 != 0 {
        return Err(bad("iteration count"));
    }
    let count = count.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
    let iterations = NonZeroU32::new(count)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| bad("iteration count out of range"))?;
    if p.peek() == Some(INTEGER) {
        p.read(INTEGER, "key length")?; // implied by the cipher
    }
    let prf = if p.is_empty() {
        pbkdf2::PBKDF2_HMAC_SHA1
    } else {
        let mut prf = Der(p.read(SEQUENCE, "PRF")?);
        match prf.read(OID, "PRF OID")? {
            HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
            HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
            HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
            _ => return Err(KeyError("the key's PBKDF2 uses an unsupported PRF".into())),
        }
    };
    Ok((salt, iterations, prf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_hostile_der_is_refused_without_panicking() {
        for der in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x02, 0x30, 0x05],
            &[0x04, 0x00],
        ] {
            assert!(decrypt(der, b"x").is_err(), "{der:?}");
        }
    }
}
