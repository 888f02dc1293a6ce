//! Typed views of a job file's tagged tables: a `[source]` or `[sink]`
//! table is one flat TOML table whose `type` picks which keys it may hold.
//! This module splits such a table into the parts a type declares
//! ([`take`]) and refuses what is left ([`refuse_rest`]), naming the key.
//!
//! May use `serde` and `toml` only.

use serde::de::{DeserializeOwned, Deserializer, Visitor};
use toml::{Table, Value};

/// A key of a table that could not be read, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyError {
    /// The key at fault (`None`: the table as a whole).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl KeyError {
    pub(crate) fn new(key: Option<&str>, message: impl Into<String>) -> Self {
        KeyError {
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

/// The field names serde's derive declares for the struct `T`.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // the derive hands its field list to `deserialize_struct`; the probe
    // keeps it and stops there
    let _ = T::deserialize(FieldProbe(&mut names));
    names
}

struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Moves the keys the struct `T` declares out of `table` and reads them.
/// A value of the wrong type is reported with its key.
pub(crate) fn take<T: DeserializeOwned>(table: &mut Table) -> Result<T, KeyError> {
    let mut part = Table::new();
    for name in field_names::<T>() {
        if let Some(v) = table.remove(*name) {
            part.insert((*name).to_string(), v);
        }
    }
    T::deserialize(Value::Table(part.clone())).map_err(|e| {
        // find the key at fault: every field is optional, so each key
        // alone reads unless its own value is wrong
        let key = part.iter().find_map(|(k, v)| {
            let alone = Table::from_iter([(k.clone(), v.clone())]);
            T::deserialize(Value::Table(alone))
                .err()
                .map(|e| (k.clone(), e.message().to_string()))
        });
        match key {
            Some((k, message)) => KeyError::new(Some(&k), message),
            None => KeyError::new(None, e.message().to_string()),
        }
    })
}

/// Refuses the first key left in `table` after every part was taken:
/// `what` (e.g. "a `csv` source") does not take it; the message lists the
/// keys it does take.
pub(crate) fn refuse_rest(table: &Table, what: &str, takes: &[&[&str]]) -> Result<(), KeyError> {
    let Some(key) = table.keys().next() else {
        return Ok(());
    };
    let mut names: Vec<String> = takes
        .iter()
        .flat_map(|t| t.iter().map(|n| format!("`{n}`")))
        .collect();
    names.sort_unstable();
    let takes = match names.is_empty() {
        true => "only `type`".to_string(),
        false => format!("`type`, {}", names.join(", ")),
    };
    Err(KeyError::new(
        Some(key),
        format!("unknown field `{key}`: {what} takes {takes}"),
    ))
}

/// Removes `type` from `table`: its text, or `None` when absent.
pub(crate) fn take_type(table: &mut Table) -> Result<Option<String>, KeyError> {
    match table.remove("type") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(KeyError::new(
            Some("type"),
            format!("must be a string, not {}", other.type_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Part {
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        name: Option<String>,
    }

    fn table(text: &str) -> Table {
        toml::from_str(text).expect("test table")
    }

    #[test]
    fn field_names_are_the_derives() {
        assert_eq!(field_names::<Part>(), &["size", "name"]);
    }

    #[test]
    fn take_moves_only_the_parts_keys() {
        let mut t = table("size = 3\nname = \"a\"\nother = 1");
        let part: Part = take(&mut t).unwrap();
        assert_eq!(
            part,
            Part {
                size: Some(3),
                name: Some("a".into())
            }
        );
        assert_eq!(t.keys().collect::<Vec<_>>(), ["other"]);
        let err = refuse_rest(&t, "a part", &[field_names::<Part>()]).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("other"));
        assert!(
            err.message.contains("`type`, `name`, `size`"),
            "{}",
            err.message
        );
        let err = refuse_rest(&t, "a stdout sink", &[]).unwrap_err();
        assert!(
            err.message.ends_with("takes only `type`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let mut t = table("size = \"big\"\nname = \"a\"");
        let err = take::<Part>(&mut t).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("size"));
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }

    #[test]
    fn type_must_be_a_string() {
        let mut t = table("type = 3");
        assert_eq!(take_type(&mut t).unwrap_err().key.as_deref(), Some("type"));
        let mut t = table("type = \"csv\"");
        assert_eq!(take_type(&mut t).unwrap().as_deref(), Some("csv"));
        assert!(t.is_empty());
    }
}
