//! Reading environment variables, with errors that name the variable.
//!
//! Each binary reads its configuration once, at start, through an [`Env`] snapshot;
//! nothing else in Drover reads the environment. A bad value is a [`ConfigError`]
//! such as `DROVER_API_ADDR: invalid socket address "x"`, and the binary exits 1.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: String,
    /// What is wrong with its value.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &str, message: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            message: message.into(),
        }
    }
}

/// A snapshot of the environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process's environment.
    #[must_use]
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment of these pairs (for tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `var`, trimmed; an empty value counts as unset.
    #[must_use]
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `var`, or `default`.
    #[must_use]
    pub fn string(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or(default).to_owned()
    }

    /// `var` parsed as a `T`, or `default` when unset. `what` names the expected kind of
    /// value in the error: `invalid socket address "x"`.
    pub fn parse<T>(&self, var: &str, default: T, what: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(var, format!("invalid {what} {v:?}"))),
        }
    }

    /// A whole number within `range`, or `default`.
    pub fn number(
        &self,
        var: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let n: u64 = self.parse(var, default, "number")?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(ConfigError::new(
                var,
                format!(
                    "{n} is out of range: expected {} to {}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// A duration in milliseconds within `range`, or `default`.
    pub fn millis(
        &self,
        var: &str,
        default: Duration,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let d = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.number(var, d, range).map(Duration::from_millis)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), or `default`.
    pub fn bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::new(
                var,
                format!("invalid boolean {v:?}: use true or false"),
            )),
        }
    }

    /// One of `allowed`, or `default`.
    pub fn choice(
        &self,
        var: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<String, ConfigError> {
        let v = self.string(var, default);
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(ConfigError::new(
                var,
                format!(
                    "invalid value {v:?}: expected one of {}",
                    allowed.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_pairs([("A", "x"), ("B", "7"), ("C", "maybe"), ("D", "  ")]);
        let e = env.parse::<std::net::SocketAddr>(
            "A",
            "127.0.0.1:1".parse().unwrap(),
            "socket address",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            r#"A: invalid socket address "x""#
        );
        assert_eq!(
            env.number("B", 1, 1..=5).unwrap_err().to_string(),
            "B: 7 is out of range: expected 1 to 5"
        );
        assert!(
            env.bool("C", true)
                .unwrap_err()
                .to_string()
                .starts_with("C: invalid boolean")
        );
        assert_eq!(env.get("D"), None);
        assert_eq!(env.number("MISSING", 3, 1..=5).unwrap(), 3);
        assert!(env.choice("A", "dev", &["dev", "prod"]).is_err());
    }
}
