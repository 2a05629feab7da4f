//! The protobuf JSON mapping of the responses `verify` reads, as grpcurl
//! prints them: lowerCamelCase names (the original names accepted too),
//! int64 as strings, bytes as base64, enums by name, zero values left out.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use consentd::domain::merkle::Hash;
use serde_json::Value;

/// A field of a protobuf JSON object by its JSON name (lowerCamelCase), or
/// by its original name, which parsers accept too.
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let mut camel = String::new();
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                camel.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => camel.push(c),
        }
    }
    object.get(&camel).or_else(|| object.get(name))
}

/// An int64 or uint64 field: a string of digits in protobuf JSON, a
/// number accepted too; absent is 0 (grpcurl leaves zero values out).
pub fn number(object: &Value, name: &str) -> Result<u64, String> {
    match field(object, name) {
        None | Some(Value::Null) => Some(0),
        Some(Value::String(text)) => text.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
    }
    .ok_or_else(|| format!("{name} is not a non-negative integer"))
}

/// Standard or URL-safe base64, padded or not, as protobuf JSON allows.
pub fn base64(text: &str) -> Result<Vec<u8>, String> {
    let text: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD
        .decode(text)
        .map_err(|_| "not base64".to_string())
}

/// A bytes field; absent is empty.
pub fn bytes(value: Option<&Value>) -> Result<Vec<u8>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => base64(text),
        Some(_) => Err("not base64".into()),
    }
}

/// A 32-byte hash field.
pub fn hash(object: &Value, name: &str) -> Result<Hash, String> {
    hash_value(field(object, name), name)
}

fn hash_value(value: Option<&Value>, name: &str) -> Result<Hash, String> {
    bytes(value)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("{name} is not 32 bytes of base64"))
}

pub fn hashes(object: &Value) -> Result<Vec<Hash>, String> {
    match field(object, "hashes") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| hash_value(Some(item), &format!("hashes[{i}]")))
            .collect(),
        Some(_) => Err("hashes is not a list".into()),
    }
}

pub fn text<'a>(object: &'a Value, name: &str) -> Result<&'a str, String> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("{name} is not a string")),
    }
}

/// The note of a LogCheckpoint field, when the response has one.
pub fn note(object: &Value, name: &str) -> Result<Option<String>, String> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(checkpoint) => Ok(Some(text(checkpoint, "note")?.to_string())),
    }
}

/// What became of the record (LogLeafState): its name, or its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafState {
    Present,
    Erased,
    Missing,
}

impl LeafState {
    pub fn from_json(value: Option<&Value>) -> Result<Self, String> {
        let name = match value {
            Some(Value::String(name)) => name.trim_start_matches("LOG_LEAF_STATE_").to_string(),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => "PRESENT".into(),
                Some(2) => "ERASED".into(),
                Some(3) => "MISSING".into(),
                _ => n.to_string(),
            },
            _ => "UNSPECIFIED".into(),
        };
        match name.as_str() {
            "PRESENT" => Ok(Self::Present),
            "ERASED" => Ok(Self::Erased),
            "MISSING" => Ok(Self::Missing),
            other => Err(format!("state {other} is not a state of a leaf")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_json_or_original_name_and_zero_when_absent() {
        let camel: Value = serde_json::from_str(r#"{"leafIndex":"7","treeSize":9}"#).unwrap();
        let snake: Value = serde_json::from_str(r#"{"leaf_index":"7"}"#).unwrap();
        for json in [&camel, &snake] {
            assert_eq!(number(json, "leaf_index"), Ok(7));
        }
        assert_eq!(number(&snake, "tree_size"), Ok(0));
        assert_eq!(number(&camel, "tree_size"), Ok(9));
        let negative: Value = serde_json::from_str(r#"{"treeSize":"-1"}"#).unwrap();
        assert!(number(&negative, "tree_size").is_err());
    }

    #[test]
    fn bytes_are_standard_or_url_safe_base64_padded_or_not() {
        for text in ["+/8=", "+/8", "-_8=", "-_8"] {
            assert_eq!(base64(text), Ok(vec![0xfb, 0xff]), "{text}");
        }
        assert!(base64("not base64!").is_err());
    }
}
