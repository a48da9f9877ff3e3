//! Table options (`WITH ('k' = 'v', ...)`) and the rules that check them.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::ConnectorError;

/// The WITH options of a table, keys as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions(BTreeMap<String, String>);

impl TableOptions {
    pub fn new(options: BTreeMap<String, String>) -> Self {
        Self(options)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of a required option.
    pub fn required(&self, connector: &str, key: &str) -> Result<&str, ConnectorError> {
        self.get(key).ok_or_else(|| ConnectorError::MissingOption {
            connector: connector.to_string(),
            key: key.to_string(),
        })
    }

    /// Parses an option's value, naming the option when it does not parse.
    pub fn parse<T: FromStr>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ConnectorError> {
        self.get(key)
            .map(|v| {
                v.trim().parse().map_err(|_| ConnectorError::InvalidOption {
                    key: key.to_string(),
                    value: v.to_string(),
                    reason: format!("expected {expected}"),
                })
            })
            .transpose()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The option keys a connector accepts. A `#` in a key stands for any one
/// name (`fields.#.kind` matches `fields.price.kind`); a trailing `*`
/// matches any suffix (`properties.*`).
#[derive(Debug, Clone, Default)]
pub struct OptionRules {
    keys: Vec<String>,
}

impl OptionRules {
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut rules = Self::default();
        rules.extend(keys);
        rules.extend(["connector"]);
        rules
    }

    pub fn extend<I, S>(&mut self, keys: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keys.extend(keys.into_iter().map(Into::into));
    }

    pub fn accepts(&self, key: &str) -> bool {
        self.keys.iter().any(|rule| matches_rule(rule, key))
    }

    /// Fails on the first option no rule accepts, listing the valid keys.
    pub fn check(&self, connector: &str, options: &TableOptions) -> Result<(), ConnectorError> {
        match options.iter().find(|(k, _)| !self.accepts(k)) {
            None => Ok(()),
            Some((key, _)) => {
                let mut valid: Vec<String> = self
                    .keys
                    .iter()
                    .map(|k| k.replace('#', "<field>"))
                    .collect();
                valid.sort();
                valid.dedup();
                Err(ConnectorError::UnknownOption {
                    connector: connector.to_string(),
                    key: key.to_string(),
                    valid,
                })
            }
        }
    }
}

fn matches_rule(rule: &str, key: &str) -> bool {
    if let Some(prefix) = rule.strip_suffix('*') {
        return key.starts_with(prefix) && key.len() > prefix.len();
    }
    match rule.split_once('#') {
        None => rule == key,
        Some((head, tail)) => {
            key.len() > head.len() + tail.len() && key.starts_with(head) && key.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_patterns_and_list_valid_keys() {
        let rules = OptionRules::new(["path", "fields.#.kind", "properties.*"]);
        assert!(rules.accepts("connector"));
        assert!(rules.accepts("fields.price.kind"));
        assert!(rules.accepts("properties.bootstrap.servers"));
        assert!(!rules.accepts("fields..kind"));
        assert!(!rules.accepts("pth"));
        let options = TableOptions::new(BTreeMap::from([("pth".to_string(), "x".to_string())]));
        let err = rules
            .check("filesystem", &options)
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("'pth'"), "{text}");
        assert!(
            text.contains("fields.<field>.kind, path, properties.*"),
            "{text}"
        );
    }
}
