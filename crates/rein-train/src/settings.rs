//! Settings as JSON trees: every trainer's config struct serialises to one, presets, config
//! files and `--set key=value` overrides are applied onto it by dotted path, and the result
//! deserialises back (so an unknown key fails here, by name, before any struct sees it).

/// A setting that does not exist or does not fit where it was put.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// Parses `key=value`; the value is read as JSON when it is valid JSON (numbers, booleans,
/// arrays, null), else taken as a string (`--set`, `--option`).
pub fn parse_override(s: &str) -> Result<(String, serde_json::Value), SettingsError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| SettingsError(format!("expected key=value, got {s:?}")))?;
    if k.is_empty() {
        return Err(SettingsError(format!(
            "expected key=value, got {s:?} (empty key)"
        )));
    }
    let value =
        serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// Collects `key=value` items into a JSON object (a later key replaces an earlier one).
pub fn parse_overrides(
    items: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, SettingsError> {
    items.iter().map(|i| parse_override(i)).collect()
}

/// Sets a dotted path (`epsilon.end`) inside a JSON object, failing on unknown keys and naming
/// the keys that exist there.
pub fn set_path(
    root: &mut serde_json::Value,
    path: &str,
    value: serde_json::Value,
) -> Result<(), SettingsError> {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let obj = cur.as_object_mut().ok_or_else(|| {
            SettingsError(format!(
                "cannot set {path:?}: {:?} is not a table",
                parts[..i].join(".")
            ))
        })?;
        if !obj.contains_key(*part) {
            let known: Vec<&String> = obj.keys().collect();
            return Err(SettingsError(format!(
                "unknown setting {path:?}; settings here are: {known:?}"
            )));
        }
        if i + 1 == parts.len() {
            obj.insert(part.to_string(), value);
            return Ok(());
        }
        cur = obj.get_mut(*part).expect("checked above");
    }
    Ok(())
}

/// Applies every key of a TOML table (a preset or a config file's text) onto `base`;
/// `origin` names the text in errors.
pub fn apply_toml(
    base: &mut serde_json::Value,
    text: &str,
    origin: &str,
) -> Result<(), SettingsError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| SettingsError(format!("{origin} is not valid TOML: {e}")))?;
    for (k, v) in table {
        let v = serde_json::to_value(v).map_err(|e| SettingsError(format!("{origin}: {e}")))?;
        set_path(base, &k, v).map_err(|e| SettingsError(format!("{origin}: {e}")))?;
    }
    Ok(())
}

/// Applies a TOML settings file onto `base`. A run directory's `config.toml` (`algo`, `env`,
/// `env_options` and the settings under `config`) counts as its `config` table, so a run's
/// settings can be fed back.
pub fn apply_file(
    base: &mut serde_json::Value,
    path: &std::path::Path,
) -> Result<(), SettingsError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError(format!("reading {origin}: {e}")))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| SettingsError(format!("{origin} is not valid TOML: {e}")))?;
    let table = match (table.get("algo"), table.get("config")) {
        (Some(_), Some(toml::Value::Table(settings))) => settings.clone(),
        _ => table,
    };
    for (k, v) in table {
        let v = serde_json::to_value(v).map_err(|e| SettingsError(format!("{origin}: {e}")))?;
        set_path(base, &k, v).map_err(|e| SettingsError(format!("in {origin}: {}", e.0)))?;
    }
    Ok(())
}

/// `C`'s defaults with `overrides` (`key`, value) applied in order, deserialised back; unknown
/// keys and values of the wrong type are errors naming them.
pub fn with_overrides<C: serde::Serialize + serde::de::DeserializeOwned + Default>(
    overrides: &[(String, serde_json::Value)],
) -> Result<C, SettingsError> {
    let mut v = serde_json::to_value(C::default()).map_err(|e| SettingsError(e.to_string()))?;
    for (k, val) in overrides {
        set_path(&mut v, k, val.clone())?;
    }
    serde_json::from_value(v).map_err(|e| SettingsError(format!("invalid setting value: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_are_json_when_possible() {
        assert_eq!(parse_override("a=1").unwrap().1, serde_json::json!(1));
        assert_eq!(
            parse_override("a=false").unwrap().1,
            serde_json::json!(false)
        );
        assert_eq!(
            parse_override("map_name=8x8").unwrap().1,
            serde_json::json!("8x8")
        );
        assert!(parse_override("novalue").is_err());
        assert!(parse_override("=3").is_err());
    }

    #[test]
    fn set_path_rejects_unknown_keys() {
        let mut v = serde_json::json!({"a": 1, "eps": {"end": 0.1}});
        set_path(&mut v, "eps.end", serde_json::json!(0.2)).unwrap();
        assert_eq!(v["eps"]["end"], 0.2);
        assert!(set_path(&mut v, "eps.stop", serde_json::json!(1))
            .unwrap_err()
            .to_string()
            .contains("end"));
        let e = apply_toml(&mut v, "b = 2", "preset x").unwrap_err().0;
        assert!(e.contains("preset x") && e.contains("\"b\""), "{e}");
    }
}
