//! Secrets in configuration.

use std::fmt;

/// A password, token or URL with credentials: `Debug` and `Display` print
/// `<redacted>`, so no log line, error or config dump shows it. Read it
/// with [`Secret::expose`], where it is used.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A URL that may carry credentials (`postgres://user:password@host/db`,
/// `?password=…`). `Debug` and `Display` show it with every password
/// replaced by `<redacted>`, so it can be logged and named in errors; the
/// whole URL only through [`SecretUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Secret);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(Secret::new(url))
    }

    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL without its passwords: the user info's and any
    /// `password=` query parameter's (libpq reads both).
    pub fn redacted(&self) -> String {
        let url = self.0.expose();
        let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
        let mut out = match head.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((info, host)) => match info.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
                    None => head.to_string(),
                },
                None => head.to_string(),
            },
            None => head.to_string(),
        };
        if let Some(q) = query {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") => {
                        format!("{k}=<redacted>")
                    }
                    _ => p.to_string(),
                })
                .collect();
            out.push('?');
            out.push_str(&params.join("&"));
        }
        out
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(
            format!("{s:?} {s} {:?}", Some(&s)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_url_prints_without_its_passwords() {
        let u = SecretUrl::new("postgres://app:hunter2@db.example.com:5432/prod?sslmode=verify-full&password=hunter2");
        assert_eq!(
            format!("{u}"),
            "postgres://app:<redacted>@db.example.com:5432/prod?sslmode=verify-full&password=<redacted>"
        );
        assert_eq!(format!("{u:?}"), format!("{u}"));
        assert!(u.expose().contains("hunter2"));
        // A password holding `@` or `:` is still hidden whole.
        let odd = SecretUrl::new("postgres://app:p@ss:w@host/db");
        assert_eq!(odd.redacted(), "postgres://app:<redacted>@host/db");
        assert_eq!(
            SecretUrl::new("http://127.0.0.1:8081").redacted(),
            "http://127.0.0.1:8081"
        );
    }
}
