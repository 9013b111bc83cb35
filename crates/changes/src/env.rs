//! The environment, as a value.

use std::collections::BTreeMap;
use std::fmt;

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

    /// The variable's value, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// [`Env::get`], owned.
    pub fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_but_never_printed() {
        let env = Env::from_vars([("SNOWFLAKE_PASSWORD".to_string(), "hunter2".to_string())]);
        assert_eq!(env.get("SNOWFLAKE_PASSWORD"), Some("hunter2"));
        assert_eq!(env.get("UNSET"), None);
        assert_eq!(format!("{env:?}"), "{\"SNOWFLAKE_PASSWORD\"}");
    }
}
