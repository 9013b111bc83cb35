//! The environment, as a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::Secret;

/// Environment variables handed to configuration parsing, so parsing is a
/// pure function of its inputs: the binary takes the process's
/// environment once (`Env::from_vars(std::env::vars())`), tests build
/// their own. `Debug` prints the names only: values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Env {
        Env(vars.into_iter().collect())
    }

    /// This environment with `name` set to `value` (a command-line flag
    /// that overrides a variable).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Env {
        self.0.insert(name.to_string(), value.into());
        self
    }

    /// The variable's value, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// [`Env::get`], owned.
    pub fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// A secret from `NAME`, or from the file `NAME_FILE` names (a mounted
    /// Kubernetes or Docker secret; see [`read_secret_file`]).
    /// Both set is an error, so which one wins is never a guess; the error
    /// names the variable, never the value.
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, String> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(format!("both {name} and {file_var} are set: keep one")),
            (Some(v), None) => Ok(Some(Secret::new(v))),
            (None, Some(path)) => read_secret_file(&file_var, Path::new(path)).map(|t| Some(Secret::new(t))),
            (None, None) => Ok(None),
        }
    }

    /// The variables whose names start with `prefix`, with it removed.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (String, String)> + 'a {
        self.0
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (k[prefix.len()..].to_string(), v.clone()))
    }

    /// The environment as stage `stage` (`CDC`, `SINK`, `PRODUCER`,
    /// `REGISTRY`) sees it: `CONTRAIL_<STAGE>_<NAME>` overrides `<NAME>`
    /// for each of the [`SERVICE_VARS`], so stages in one environment (one
    /// `contrail run`, one container) can reach different services.
    pub fn for_stage(&self, stage: &str) -> Env {
        let mut view = self.clone();
        for name in SERVICE_VARS {
            if let Some(v) = self.get(&format!("CONTRAIL_{stage}_{name}")) {
                view.0.insert(name.to_string(), v.to_string());
            }
        }
        // Kafka properties too: in one `contrail run`, the sink may log in
        // as a consumer with other credentials than the CDC stage.
        let prefix = format!("CONTRAIL_{stage}_{KAFKA_PROPERTY_PREFIX}");
        for (name, v) in self.prefixed(&prefix) {
            view.0.insert(format!("{KAFKA_PROPERTY_PREFIX}{name}"), v);
        }
        view
    }
}

/// The secret in the file `path`, named by variable `var` in errors:
/// trailing line ends dropped, and anything over 1 MiB refused.
pub fn read_secret_file(var: &str, path: &Path) -> Result<String, String> {
    // A secret file is small; refuse anything that is not, rather than
    // read a wrongly named device or log into memory.
    const MAX: u64 = 1 << 20;
    let meta = std::fs::metadata(path).map_err(|e| format!("{var}: cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX {
        return Err(format!(
            "{var}: {} is larger than 1 MiB: not a secret file",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{var}: cannot read {}: {e}", path.display()))?;
    // Files written by `echo` or editors end in a newline that is not part
    // of the secret.
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// The prefix of the librdkafka properties given in the environment.
pub const KAFKA_PROPERTY_PREFIX: &str = "KAFKA_PROPERTY_";

/// The service settings every stage reads from the environment, and may
/// have overridden per stage (see [`Env::for_stage`]).
pub const SERVICE_VARS: &[&str] = &[
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "SCHEMA_REGISTRY_URL",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE",
    "SCHEMA_REGISTRY_BEARER_AUTH_TOKEN",
    "SNOWFLAKE_URL",
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PATH",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE_FILE",
    "SNOWFLAKE_PRIVATE_KEY_2",
    "SNOWFLAKE_PRIVATE_KEY_2_PATH",
    "SNOWFLAKE_PRIVATE_KEY_2_PASSPHRASE",
    "SNOWFLAKE_PRIVATE_KEY_2_PASSPHRASE_FILE",
    "SNOWFLAKE_TOKEN",
    "SNOWFLAKE_TOKEN_FILE",
    "SNOWFLAKE_SSL_CA_LOCATION",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION",
];

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `service.metrics_listen`, as every stage's config file has it: absent
/// or empty is no metrics server, anything else must be `host:port`.
pub fn metrics_listen(value: Option<&str>) -> Result<Option<std::net::SocketAddr>, String> {
    match value {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("service.metrics_listen = {s:?} is not host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_override_wins_for_that_stage_only() {
        let env = Env::from_vars(
            [
                ("KAFKA_BOOTSTRAP_SERVERS", "shared:9092"),
                ("CONTRAIL_SINK_KAFKA_BOOTSTRAP_SERVERS", "sink-only:9092"),
                ("CONTRAIL_CDC_NOT_A_SERVICE", "x"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            env.for_stage("SINK").get("KAFKA_BOOTSTRAP_SERVERS"),
            Some("sink-only:9092")
        );
        assert_eq!(env.for_stage("CDC").get("KAFKA_BOOTSTRAP_SERVERS"), Some("shared:9092"));
        assert_eq!(env.for_stage("CDC").get("NOT_A_SERVICE"), None);
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let path = std::env::temp_dir().join(format!("contrail-env-secret-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let env = |vars: &[(&str, &str)]| Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let file = path.to_str().unwrap();
        assert_eq!(env(&[("T", "direct")]).secret("T").unwrap().unwrap().expose(), "direct");
        assert_eq!(
            env(&[("T_FILE", file)]).secret("T").unwrap().unwrap().expose(),
            "from-file"
        );
        assert_eq!(env(&[]).secret("T").unwrap(), None);
        let both = env(&[("T", "x"), ("T_FILE", file)]).secret("T").unwrap_err();
        assert!(both.contains("both T and T_FILE"), "{both}");
        let missing = env(&[("T_FILE", "/nonexistent/t")]).secret("T").unwrap_err();
        assert!(missing.starts_with("T_FILE: cannot read /nonexistent/t"), "{missing}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn values_are_read_but_never_printed() {
        let env = Env::from_vars([("SNOWFLAKE_PASSWORD".to_string(), "hunter2".to_string())]);
        assert_eq!(env.get("SNOWFLAKE_PASSWORD"), Some("hunter2"));
        assert_eq!(env.get("UNSET"), None);
        assert_eq!(format!("{env:?}"), "{\"SNOWFLAKE_PASSWORD\"}");
    }
}
