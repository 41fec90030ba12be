//! Calico label selectors: `all()`, `has(k)`, `k == 'v'`, `k != 'v'`,
//! `k in {'a','b'}`, `k not in {...}`, `k contains 's'`, `k starts with 's'`,
//! `k ends with 's'`, `!`, `&&`, `||` and parentheses.
//!
//! `parse` turns the text into an expression (an empty selector means
//! `all()`, as in Calico); `matches` evaluates it against a label map. As in
//! Calico, `!=` and `not in` also match when the label is absent, while every
//! other comparison needs the label present.

mod parser;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed selector expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `all()`: matches everything.
    All,
    /// `has(key)`: the label is present.
    Has(String),
    /// `key == "value"`.
    Eq(String, String),
    /// `key != "value"`: also true when the label is absent.
    Ne(String, String),
    /// `key in {"a", "b"}`.
    In(String, Vec<String>),
    /// `key not in {"a", "b"}`: also true when the label is absent.
    NotIn(String, Vec<String>),
    /// `key contains "s"`.
    Contains(String, String),
    /// `key starts with "s"`.
    StartsWith(String, String),
    /// `key ends with "s"`.
    EndsWith(String, String),
    /// `!expr`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
}

/// What went wrong while parsing a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorErrorKind {
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A string literal without its closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// More nested `!` or parentheses than allowed.
    #[error("more than {0} nested `!` or parentheses")]
    TooDeep(usize),
    /// More `&&`/`||` operators than allowed.
    #[error("more than {0} `&&`/`||` operators")]
    TooLong(usize),
    /// A token other than the ones the grammar allows here.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar allows at this position.
        expected: &'static str,
        /// What was there instead.
        found: String,
    },
}

/// A selector that does not parse, with the 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at position {position}: {kind}")]
pub struct SelectorError {
    /// 1-based character position of the problem.
    pub position: usize,
    /// What is wrong there.
    pub kind: SelectorErrorKind,
}

/// Read access to a set of labels.
pub trait Labels {
    /// The value of label `key`, if present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A parsed label selector together with its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// Parses a selector; the empty (or all-blank) string is `all()`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        parser::parse(text).map(|expr| Selector { expr })
    }

    /// The selector that matches everything.
    pub fn all() -> Selector {
        Selector { expr: Expr::All }
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// True if the labels satisfy the selector.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.expr.matches(labels)
    }
}

impl Expr {
    /// True if the labels satisfy this expression.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.label(k).is_some(),
            Expr::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Expr::Ne(k, v) => labels.label(k) != Some(v.as_str()),
            Expr::In(k, set) => labels.label(k).is_some_and(|l| set.iter().any(|v| v == l)),
            Expr::NotIn(k, set) => !labels.label(k).is_some_and(|l| set.iter().any(|v| v == l)),
            Expr::Contains(k, s) => labels.label(k).is_some_and(|l| l.contains(s.as_str())),
            Expr::StartsWith(k, s) => labels.label(k).is_some_and(|l| l.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => labels.label(k).is_some_and(|l| l.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(a, b) => a.matches(labels) && b.matches(labels),
            Expr::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &[String]) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", Quoted(v))?;
    }
    f.write_str("}")
}

/// A string literal with the quote that does not occur in it.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains('"') {
            write!(f, "'{}'", self.0)
        } else {
            write!(f, "\"{}\"", self.0)
        }
    }
}

impl fmt::Display for Expr {
    /// The canonical text, which parses back to the same expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", Quoted(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", Quoted(v)),
            Expr::In(k, set) => {
                write!(f, "{k} in ")?;
                write_set(f, set)
            }
            Expr::NotIn(k, set) => {
                write!(f, "{k} not in ")?;
                write_set(f, set)
            }
            Expr::Contains(k, v) => write!(f, "{k} contains {}", Quoted(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", Quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", Quoted(v)),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Selector::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
