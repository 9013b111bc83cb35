//! Helpers for other crates' tests (feature `test-utils`).

use crate::Env;

/// The secret [`secret_env`] hides in every variable that holds one.
pub const SECRET: &str = "hunter2";

/// An environment where every variable a stage reads a secret from is set,
/// each holding [`SECRET`]: a config's `Debug` must not contain it.
pub fn secret_env() -> Env {
    Env::from_vars(
        [
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "reg:hunter2"),
            ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db"),
            ("SNOWFLAKE_URL", "http://u:hunter2@127.0.0.1:1"),
            ("SNOWFLAKE_PASSWORD", "hunter2"),
            ("OPENSKY_CLIENT_ID", "id"),
            ("OPENSKY_CLIENT_SECRET", "hunter2"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// Fails, printing it, if `config`'s `Debug` shows [`SECRET`].
pub fn assert_no_secret(config: &impl std::fmt::Debug) {
    let printed = format!("{config:?}");
    assert!(!printed.contains(SECRET), "a secret is printed: {printed}");
}
