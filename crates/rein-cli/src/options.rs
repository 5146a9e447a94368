//! Parsing of `key=value` options shared by the subcommands.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

/// Parses `key=value`; the value is read as JSON when it is valid JSON (numbers, booleans,
/// arrays, null), else taken as a string.
pub fn parse_kv(s: &str) -> Result<(String, Value)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("expected key=value, got {s:?}"))?;
    if k.is_empty() {
        bail!("expected key=value, got {s:?} (empty key)");
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// Collects `key=value` options into a JSON object.
pub fn kv_map(items: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for item in items {
        let (k, v) = parse_kv(item)?;
        m.insert(k, v);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_values_are_json_when_possible() {
        assert_eq!(parse_kv("a=1").unwrap().1, serde_json::json!(1));
        assert_eq!(parse_kv("a=false").unwrap().1, serde_json::json!(false));
        assert_eq!(
            parse_kv("map_name=8x8").unwrap().1,
            serde_json::json!("8x8")
        );
        assert!(parse_kv("novalue").is_err());
    }
}
