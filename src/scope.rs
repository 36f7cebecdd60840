//! Scope names and sets (RFC 6749 §3.3: space-delimited, order irrelevant).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The scope that lets an application introspect every application's tokens.
pub const INTROSPECT_SCOPE: &str = "introspect";

pub const MAX_SCOPE_LEN: usize = 64;

/// One scope: lower-case ASCII letters, digits and `:._-`, starting with a
/// letter or digit. Stricter than RFC 6749's scope-token so names are safe in
/// URLs, logs and HTML without escaping surprises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeName(String);

impl ScopeName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a scope name cannot be empty".into());
        }
        if s.len() > MAX_SCOPE_LEN {
            return Err(format!("a scope name has at most {MAX_SCOPE_LEN} characters"));
        }
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '.' | '_' | '-'));
        if !first_ok || !rest_ok {
            return Err(format!(
                "\"{s}\" is not a valid scope name: use lower-case letters, digits and : . _ -, starting with a letter or digit"
            ));
        }
        Ok(ScopeName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ScopeName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ScopeName::parse(&s)
    }
}

impl From<ScopeName> for String {
    fn from(s: ScopeName) -> String {
        s.0
    }
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scopes, kept sorted so its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSet(BTreeSet<ScopeName>);

impl ScopeSet {
    pub fn empty() -> Self {
        ScopeSet(BTreeSet::new())
    }

    /// Parses a space-delimited list (as in the `scope` parameter). Runs of
    /// spaces are tolerated; any other whitespace is not part of RFC 6749's
    /// syntax and is refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            set.insert(ScopeName::parse(part)?);
        }
        Ok(ScopeSet(set))
    }

    pub fn from_names<I, S>(names: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for n in names {
            let n = n.as_ref().trim();
            if !n.is_empty() {
                set.insert(ScopeName::parse(n)?);
            }
        }
        Ok(ScopeSet(set))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The members of both sets.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// The members of either set.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }

    /// The members of `self` that `allowed` does not contain.
    pub fn not_in(&self, allowed: &ScopeSet) -> Vec<ScopeName> {
        self.0.difference(&allowed.0).cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ScopeName> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

impl fmt::Display for ScopeSet {
    /// The canonical space-delimited form, as stored and as returned in `scope`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let s = ScopeSet::parse("tokens:read  applications:read").unwrap();
        assert_eq!(s.to_string(), "applications:read tokens:read");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn refuses_bad_names() {
        assert!(ScopeName::parse("").is_err());
        assert!(ScopeName::parse("Upper").is_err());
        assert!(ScopeName::parse(":lead").is_err());
        assert!(ScopeName::parse("a\"b").is_err());
        assert!(ScopeName::parse(&"a".repeat(65)).is_err());
        assert!(ScopeSet::parse("a\tb").is_err());
        assert!(ScopeName::parse("billing.invoices:write").is_ok());
    }

    #[test]
    fn subset_and_difference() {
        let allowed = ScopeSet::parse("a b c").unwrap();
        let asked = ScopeSet::parse("a d").unwrap();
        assert!(!asked.is_subset(&allowed));
        assert_eq!(asked.not_in(&allowed), vec![ScopeName::parse("d").unwrap()]);
        assert!(ScopeSet::parse("b c").unwrap().is_subset(&allowed));
    }
}
