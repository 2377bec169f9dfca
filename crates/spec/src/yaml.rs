//! A located YAML tree.
//!
//! The spec is decoded in two passes: serde-saphyr parses the text into this tree (every
//! node keeps its line and column), then `decode` walks it and reports every problem it
//! finds. Deserialising straight into typed structs would stop at the first bad field,
//! and users fixing a spec want the whole list at once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node starts in the source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A YAML node as the resolver typed it (`1.5` is a float, `yes` a bool, `'1.5'` a string).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// How the value reads in an error message: the YAML type for collections, the value for
    /// scalars.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => format_float(*x),
            Value::Str(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }

    /// The YAML kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn format_float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub position: Position,
}

impl Node {
    /// Scalars as text, the way `env` values and names are read: `PORT: 80` means "80".
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(format_float(*x)),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// A YAML syntax error, with the parser's own message (it already names line and column).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub message: String,
    pub position: Option<Position>,
}

/// Parses one YAML document into a located tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let spanned: Spanned<RawValue> = serde_saphyr::from_str(text).map_err(|e| SyntaxError {
        position: e.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        }),
        message: e.to_string(),
    })?;
    Ok(spanned.into())
}

/// The shape serde-saphyr fills; converted to `Node` so the rest of the crate does not depend
/// on serde-saphyr's span types.
struct RawValue(RawKind);

enum RawKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl From<Spanned<RawValue>> for Node {
    fn from(spanned: Spanned<RawValue>) -> Self {
        let position = Position {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        };
        let value = match spanned.value.0 {
            RawKind::Null => Value::Null,
            RawKind::Bool(b) => Value::Bool(b),
            RawKind::Int(i) => Value::Int(i),
            RawKind::Float(x) => Value::Float(x),
            RawKind::Str(s) => Value::Str(s),
            RawKind::Seq(items) => Value::Seq(items.into_iter().map(Node::from).collect()),
            RawKind::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Node::from(k), Node::from(v)))
                    .collect(),
            ),
        };
        Node { value, position }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor).map(RawValue)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawKind, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKind, E> {
        Ok(RawKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKind, E> {
        Ok(RawKind::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKind, E> {
        Ok(RawKind::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawKind, E> {
        Ok(RawKind::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawKind, E> {
        // Beyond i128 no spec field can use it; keep the digits so the error can show them.
        Ok(i128::try_from(v).map_or_else(|_| RawKind::Str(v.to_string()), RawKind::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKind, E> {
        Ok(RawKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKind, E> {
        Ok(RawKind::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawKind, E> {
        Ok(RawKind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKind, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKind, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawKind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_resolved_types() {
        let node = parse("a:\n  b: 1.5\n  c: '1.5'\n  d: [1, ~, yes]\n").unwrap();
        let Value::Map(top) = &node.value else {
            panic!("top is a mapping")
        };
        let (_, a) = &top[0];
        let Value::Map(inner) = &a.value else {
            panic!("a is a mapping")
        };
        assert_eq!(inner[0].1.value, Value::Float(1.5));
        assert_eq!(inner[0].1.position, Position { line: 2, column: 6 });
        assert_eq!(inner[1].1.value, Value::Str("1.5".into()));
        let Value::Seq(items) = &inner[2].1.value else {
            panic!("d is a list")
        };
        assert_eq!(items[1].value, Value::Null);
        assert_eq!(items[2].value, Value::Bool(true));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1\n").unwrap_err();
        assert!(err.position.is_some(), "{err}");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }
}
