//! Settings as JSON trees: every trainer's config struct serialises to one, presets, config
//! files and `--set key=value` overrides are applied onto it by dotted path, and the result
//! deserialises back (so an unknown key fails here, by name, before any struct sees it).

use std::collections::BTreeMap;

/// A setting that does not exist or does not fit where it was put.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    /// What is wrong, naming the key and, where known, where it was set.
    pub message: String,
    /// The dotted key of a value of the wrong type, so that a caller holding the
    /// [`Sources`] can say where it was set ([`Sources::explain`]).
    pub key: Option<String>,
}

impl SettingsError {
    /// An error with this message and no key.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
        }
    }
}

/// Where each setting was given (`--set learning_rate=abc`, `my.toml, line 3`), by dotted
/// key, so that a value of the wrong type is reported with the flag or file line it came from.
#[derive(Debug, Clone, Default)]
pub struct Sources(BTreeMap<String, String>);

impl Sources {
    /// Records that `key` was last set by `origin`.
    pub fn record(&mut self, key: &str, origin: String) {
        self.0.insert(key.to_string(), origin);
    }

    /// Records every `--set key=value` of `items` (as [`parse_override`] reads them).
    pub fn record_flags(&mut self, items: &[String]) {
        for item in items {
            if let Some((k, _)) = item.split_once('=') {
                self.record(k, format!("--set {item}"));
            }
        }
    }

    /// Where `key`, or the nearest table above it, was set.
    pub fn of(&self, key: &str) -> Option<&str> {
        let mut k = key.split('[').next().unwrap_or(key);
        loop {
            if let Some(o) = self.0.get(k) {
                return Some(o);
            }
            k = k.rsplit_once('.')?.0;
        }
    }

    /// `e` with where its key was set appended, when that is known.
    pub fn explain(&self, e: SettingsError) -> SettingsError {
        match e.key.as_deref().and_then(|k| self.of(k)) {
            Some(origin) => SettingsError {
                message: format!("{} (set by {origin})", e.message),
                key: e.key,
            },
            None => e,
        }
    }
}

/// Deserialises a settings tree into `C`; a value of the wrong type is an error naming its
/// dotted key (`learning_rate: invalid type: string "abc", expected f64`) and, from
/// `sources`, the flag or file line that set it.
pub fn deserialize<C: serde::de::DeserializeOwned>(
    tree: serde_json::Value,
    sources: &Sources,
) -> Result<C, SettingsError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let e = if key.is_empty() || key == "." {
            SettingsError::new(inner.to_string())
        } else {
            SettingsError {
                message: format!("setting {key}: {inner}"),
                key: Some(key),
            }
        };
        sources.explain(e)
    })
}

/// The 1-based line of `text` (TOML) that sets the dotted `key`: its `key = ...` line under
/// the right `[table]` header, or the header of the table `key` itself; for errors.
pub fn toml_line(text: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
    let is_header = |l: &str, table: &str| {
        l.strip_prefix('[')
            .and_then(|h| h.split(']').next())
            .is_some_and(|h| h.trim() == table)
    };
    if let Some(i) = lines.iter().position(|l| is_header(l, key)) {
        return Some(i + 1);
    }
    let assigns = |l: &str, name: &str| {
        [name.to_string(), format!("\"{name}\"")].iter().any(|n| {
            l.strip_prefix(n.as_str())
                .is_some_and(|r| r.trim_start().starts_with('=') || r.starts_with('.'))
        })
    };
    let parts: Vec<&str> = key.split('.').collect();
    for split in (0..parts.len()).rev() {
        let table = parts[..split].join(".");
        let start = if split == 0 {
            0
        } else {
            match lines.iter().position(|l| is_header(l, &table)) {
                Some(h) => h + 1,
                None => continue,
            }
        };
        for (i, l) in lines.iter().enumerate().skip(start) {
            if l.starts_with('[') {
                break;
            }
            if assigns(l, parts[split]) {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Parses `key=value`; the value is read as JSON when it is valid JSON (numbers, booleans,
/// arrays, null), else taken as a string (`--set`, `--option`).
pub fn parse_override(s: &str) -> Result<(String, serde_json::Value), SettingsError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| SettingsError::new(format!("expected key=value, got {s:?}")))?;
    if k.is_empty() {
        return Err(SettingsError::new(format!(
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
            SettingsError::new(format!(
                "cannot set {path:?}: {:?} is not a table",
                parts[..i].join(".")
            ))
        })?;
        if !obj.contains_key(*part) {
            let known: Vec<&String> = obj.keys().collect();
            return Err(SettingsError::new(format!(
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
/// `origin` names the text in errors, and each key's line is recorded in `sources`.
pub fn apply_toml(
    base: &mut serde_json::Value,
    text: &str,
    origin: &str,
    sources: &mut Sources,
) -> Result<(), SettingsError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| SettingsError::new(format!("{origin} is not valid TOML: {e}")))?;
    apply_table(base, table, text, origin, sources)
}

fn apply_table(
    base: &mut serde_json::Value,
    table: toml::Table,
    text: &str,
    origin: &str,
    sources: &mut Sources,
) -> Result<(), SettingsError> {
    for (k, v) in table {
        let v =
            serde_json::to_value(v).map_err(|e| SettingsError::new(format!("{origin}: {e}")))?;
        let at = match toml_line(text, &k) {
            Some(line) => format!("{origin}, line {line}"),
            None => origin.to_string(),
        };
        set_path(base, &k, v).map_err(|e| SettingsError::new(format!("{at}: {}", e.message)))?;
        sources.record(&k, at);
    }
    Ok(())
}

/// Applies a TOML settings file onto `base`. A run directory's `config.toml` (`algo`, `env`,
/// `env_options` and the settings under `config`) counts as its `config` table, so a run's
/// settings can be fed back.
pub fn apply_file(
    base: &mut serde_json::Value,
    path: &std::path::Path,
    sources: &mut Sources,
) -> Result<(), SettingsError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(format!("reading {origin}: {e}")))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| SettingsError::new(format!("{origin} is not valid TOML: {e}")))?;
    let table = match (table.get("algo"), table.get("config")) {
        (Some(_), Some(toml::Value::Table(settings))) => settings.clone(),
        _ => table,
    };
    apply_table(base, table, &text, &origin, sources)
}

/// How `--set key=value` reads for a parsed override (strings unquoted, as typed).
pub fn flag_text(key: &str, value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("--set {key}={s}"),
        v => format!("--set {key}={v}"),
    }
}

/// `C`'s defaults with `overrides` (`key`, value, from `--set`) applied in order,
/// deserialised back; unknown keys and values of the wrong type are errors naming them and
/// the flag.
pub fn with_overrides<C: serde::Serialize + serde::de::DeserializeOwned + Default>(
    overrides: &[(String, serde_json::Value)],
) -> Result<C, SettingsError> {
    let mut v =
        serde_json::to_value(C::default()).map_err(|e| SettingsError::new(e.to_string()))?;
    let mut sources = Sources::default();
    for (k, val) in overrides {
        set_path(&mut v, k, val.clone())?;
        sources.record(k, flag_text(k, val));
    }
    deserialize(v, &sources)
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
        let mut sources = Sources::default();
        let e = apply_toml(&mut v, "b = 2", "preset x", &mut sources)
            .unwrap_err()
            .message;
        assert!(e.contains("preset x") && e.contains("\"b\""), "{e}");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Eps {
        end: f64,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Cfg {
        learning_rate: f64,
        max_steps: u64,
        eps: Eps,
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key_and_where_it_was_set() {
        let base = serde_json::json!({"learning_rate": 0.1, "max_steps": 3, "eps": {"end": 0.1}});
        let file = "# settings\nmax_steps = \"many\"\n\n[eps]\nend = 0.2\n";
        let mut v = base.clone();
        let mut sources = Sources::default();
        apply_toml(&mut v, file, "my.toml", &mut sources).unwrap();
        let e = deserialize::<Cfg>(v, &sources).unwrap_err().message;
        assert!(
            e.contains("setting max_steps: invalid type: string \"many\""),
            "{e}"
        );
        assert!(e.contains("(set by my.toml, line 2)"), "{e}");

        let mut v = base.clone();
        let mut sources = Sources::default();
        let flags = ["learning_rate=abc".to_string()];
        for (k, val) in parse_overrides(&flags).unwrap() {
            set_path(&mut v, &k, val).unwrap();
        }
        sources.record_flags(&flags);
        let e = deserialize::<Cfg>(v, &sources).unwrap_err().message;
        assert!(
            e.contains("setting learning_rate: invalid type: string \"abc\", expected f64"),
            "{e}"
        );
        assert!(e.contains("(set by --set learning_rate=abc)"), "{e}");

        // A nested key reports the table's line.
        let mut v = base;
        let mut sources = Sources::default();
        apply_toml(&mut v, "[eps]\nend = \"x\"\n", "p.toml", &mut sources).unwrap();
        let e = deserialize::<Cfg>(v, &sources).unwrap_err().message;
        assert!(
            e.contains("setting eps.end") && e.contains("p.toml, line 1"),
            "{e}"
        );
        assert_eq!(toml_line("a = 1\n\"b\" = 2\nc.d = 3", "c"), Some(3));
        let preset = "x = 1\n[settings]\nr = 2\n[settings.lora]\nr = 3\n";
        assert_eq!(toml_line(preset, "settings.r"), Some(3));
        assert_eq!(toml_line(preset, "settings.lora.r"), Some(5));
        assert_eq!(toml_line(preset, "settings.lora"), Some(4));
        assert_eq!(toml_line(preset, "r"), None);
        assert_eq!(toml_line("a = 1\n\"b\" = 2", "b"), Some(2));
        assert_eq!(toml_line("ab = 1", "a"), None);
    }

    #[global_allocator]
    static ALLOCATOR: rein_core::fuzz::CountingAllocator = rein_core::fuzz::CountingAllocator;

    #[test]
    fn settings_files_survive_mutations() {
        let base = serde_json::json!({"learning_rate": 0.1, "max_steps": 3, "eps": {"end": 0.1}});
        let valid = "# mine\nlearning_rate = 0.5\nmax_steps = 7\n\n[eps]\nend = 0.2\n";
        let mut rng = rein_core::rng_from_seed(3);
        for k in 0..3000 {
            let bytes = rein_core::fuzz::mutate(valid.as_bytes(), &mut rng);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (r, grew) = rein_core::fuzz::peak_allocation(|| {
                std::panic::catch_unwind(|| {
                    let mut v = base.clone();
                    let mut sources = Sources::default();
                    apply_toml(&mut v, &text, "m.toml", &mut sources)
                        .and_then(|()| deserialize::<Cfg>(v, &sources).map(|_| ()))
                        .is_ok()
                })
            });
            assert!(r.is_ok(), "mutation {k} panicked: {text:?}");
            assert!(
                grew < rein_core::fuzz::ALLOCATION_BOUND,
                "mutation {k} allocated {grew} bytes"
            );
        }
    }
}
