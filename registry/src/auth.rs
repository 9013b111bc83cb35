//! Who may call the registry: HTTP basic authentication against a set of
//! users, each with a role.
//!
//! Two roles, as a registry's readers and owners need: **read** may do
//! every `GET`, look a schema up under a subject and test compatibility
//! (which change nothing); **write** may also register, delete (soft and
//! permanent), and set compatibility levels (NONE included) and modes
//! (IMPORT included). [`required_role`] decides from the method and the
//! matched route, so a route added later is a write until it is listed.
//!
//! Users come from `CONTRAIL_REGISTRY_BASIC_AUTH` (one writer,
//! `user:password`, or its `_FILE`) and from the file
//! `CONTRAIL_REGISTRY_USERS_FILE` names, in the format of Jetty's
//! `HashLoginService` that Confluent Platform's registry uses: one
//! `name: password, role` a line, `#` comments. Passwords are held as
//! [`changes::Secret`] and compared in constant time.

use axum::http::Method;
use base64::Engine as _;
use changes::Secret;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

#[derive(Clone, Debug)]
struct User {
    name: String,
    password: Secret,
    role: Role,
}

/// The users the server accepts. `Debug` prints names and roles only.
#[derive(Clone, Debug, Default)]
pub struct Users {
    users: Vec<User>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or wrong ones: 401.
    Unauthenticated,
    /// The user's role does not allow the operation: 403.
    Forbidden { user: String, role: Role, needs: Role },
}

impl Users {
    /// One user with the write role, from `user:password`.
    pub fn writer(user_info: &str) -> Result<Users, String> {
        let (name, password) = user_info
            .split_once(':')
            .filter(|(n, _)| !n.is_empty())
            .ok_or("must be user:password")?;
        Ok(Users {
            users: vec![User {
                name: name.into(),
                password: Secret::new(password),
                role: Role::Write,
            }],
        })
    }

    /// A users file's text (`name: password, role` lines); errors name the
    /// line, never the password.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why} (expected `name: password, role`)", i + 1);
            let (name, rest) = line.split_once(':').ok_or_else(|| bad("no `:` after the name"))?;
            let (password, role) = rest
                .rsplit_once(',')
                .ok_or_else(|| bad("no `, role` after the password"))?;
            let role = Role::parse(role).ok_or_else(|| bad("the role must be read or write"))?;
            let name = name.trim();
            if name.is_empty() || users.iter().any(|u: &User| u.name == name) {
                return Err(bad(&format!("the name {name:?} is empty or given twice")));
            }
            users.push(User {
                name: name.into(),
                password: Secret::new(password.trim()),
                role,
            });
        }
        Ok(Users { users })
    }

    pub fn extend(&mut self, other: Users) -> Result<(), String> {
        for u in other.users {
            if self.users.iter().any(|have| have.name == u.name) {
                return Err(format!("the user {:?} is defined twice", u.name));
            }
            self.users.push(u);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The caller's name and role, from an `Authorization` header value.
    /// Every user's password is compared, so the time taken does not say
    /// which names exist.
    pub fn authenticate(&self, header: Option<&str>) -> Option<(&str, Role)> {
        let encoded = header?.strip_prefix("Basic ")?;
        let given = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let mut found = None;
        for u in &self.users {
            let expected = format!("{}:{}", u.name, u.password.expose());
            if constant_time_eq(&given, expected.as_bytes()) {
                found = Some((u.name.as_str(), u.role));
            }
        }
        found
    }

    /// Whether the request may go on: `needs` is [`required_role`]'s answer.
    pub fn check(&self, header: Option<&str>, needs: Role) -> Result<(), Denied> {
        match self.authenticate(header) {
            None => Err(Denied::Unauthenticated),
            Some((_, role)) if role >= needs => Ok(()),
            Some((user, role)) => Err(Denied::Forbidden {
                user: user.into(),
                role,
                needs,
            }),
        }
    }
}

/// The role an operation needs, by method and the route's pattern.
pub fn required_role(method: &Method, route: &str) -> Role {
    let reads_by_post = route == "/subjects/{subject}" || route.starts_with("/compatibility/");
    if method == Method::GET || method == Method::HEAD || (method == Method::POST && reads_by_post) {
        Role::Read
    } else {
        Role::Write
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret; the contents are compared without early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s))
    }

    #[test]
    fn accepts_only_the_configured_credentials() {
        let auth = Users::writer("alice:s3cret").unwrap();
        assert_eq!(
            auth.authenticate(Some(&header("alice:s3cret"))),
            Some(("alice", Role::Write))
        );
        assert_eq!(auth.authenticate(Some(&header("alice:s3cres"))), None);
        assert_eq!(auth.authenticate(Some(&header("alice:s3cret2"))), None);
        assert_eq!(auth.authenticate(Some("Bearer x")), None);
        assert_eq!(auth.authenticate(Some("Basic %%%")), None);
        assert_eq!(auth.authenticate(None), None);
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn a_reader_reads_and_is_forbidden_to_write() {
        let users = Users::parse("# readers and owners\nbob: pw, read\nann: a:b,c, write\n").unwrap();
        let bob = header("bob:pw");
        assert_eq!(users.check(Some(&bob), Role::Read), Ok(()));
        assert_eq!(
            users.check(Some(&bob), Role::Write),
            Err(Denied::Forbidden {
                user: "bob".into(),
                role: Role::Read,
                needs: Role::Write
            })
        );
        assert_eq!(users.check(Some(&header("ann:a:b,c")), Role::Write), Ok(()));
        assert_eq!(users.check(None, Role::Read), Err(Denied::Unauthenticated));
    }

    #[test]
    fn bad_users_files_name_the_line_and_never_the_password() {
        for (text, says) in [
            ("bob pw, read", "line 1: no `:`"),
            ("\nbob: pw", "line 2: no `, role`"),
            ("bob: hunter2, admin", "line 1: the role must be read or write"),
            ("bob: a, read\nbob: b, write", "line 2: the name \"bob\""),
        ] {
            let err = Users::parse(text).unwrap_err();
            assert!(err.starts_with(says) && !err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn only_lookups_and_compatibility_checks_read_by_post() {
        assert_eq!(required_role(&Method::GET, "/subjects"), Role::Read);
        assert_eq!(required_role(&Method::POST, "/subjects/{subject}"), Role::Read);
        assert_eq!(
            required_role(&Method::POST, "/compatibility/subjects/{subject}/versions"),
            Role::Read
        );
        for (m, route) in [
            (Method::POST, "/subjects/{subject}/versions"),
            (Method::DELETE, "/subjects/{subject}"),
            (Method::PUT, "/config"),
            (Method::PUT, "/mode/{subject}"),
        ] {
            assert_eq!(required_role(&m, route), Role::Write, "{m} {route}");
        }
    }
}
