//! Optional HTTP basic authentication.

use base64::Engine as _;

/// Credentials the server accepts, from `CONTRAIL_REGISTRY_BASIC_AUTH`
/// (`user:password`). `Debug` hides the secret.
#[derive(Clone)]
pub struct BasicAuth {
    expected: Vec<u8>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(<redacted>)")
    }
}

impl BasicAuth {
    pub fn new(user_info: &str) -> Self {
        Self {
            expected: user_info.as_bytes().to_vec(),
        }
    }

    /// Whether an `Authorization` header value carries the right credentials.
    /// The comparison takes the same time wherever the bytes differ.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        constant_time_eq(&given, &self.expected)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret; the contents are compared without early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_configured_credentials() {
        let auth = BasicAuth::new("alice:s3cret");
        let header = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(auth.accepts(Some(&header("alice:s3cret"))));
        assert!(!auth.accepts(Some(&header("alice:s3cres"))));
        assert!(!auth.accepts(Some(&header("alice:s3cret2"))));
        assert!(!auth.accepts(Some("Bearer x")));
        assert!(!auth.accepts(Some("Basic %%%")));
        assert!(!auth.accepts(None));
        assert_eq!(format!("{auth:?}"), "BasicAuth(<redacted>)");
    }
}
