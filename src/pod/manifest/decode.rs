//! Manifest text to `Pod`s. The only code that sees YAML, so a parser swap stays in this file.
//!
//! Every document goes through one JSON-shaped [`Value`], as the API server sees it (kubectl
//! and sigs.k8s.io/yaml convert YAML to JSON before decoding):
//! - JSON (text starting with `{`): a stream of objects, duplicate keys refused;
//! - YAML: `---` documents through `yaml_serde` (YAML 1.2 core schema: `yes` is a string,
//!   unlike kubectl's YAML 1.1), duplicate keys refused, aliases resolved, `<<` merge keys
//!   applied, scalar mapping keys turned into strings, custom tags refused.
//!
//! Then the kind is checked and the `Pod` decoded strictly: `serde_ignored` reports every key
//! the k8s-openapi types skip (they ignore unknown fields by default), `serde_path_to_error`
//! names the field of a type error.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::ManifestError;

pub(super) fn parse(text: &str) -> Result<Vec<Pod>, ManifestError> {
    let mut pods = Vec::new();
    for (document, value) in documents(text)? {
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---` or only comments
        }
        pods.push(decode_pod(document, value)?);
    }
    if pods.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(pods)
}

/// Every document of a YAML or JSON text as the JSON value the API server would see,
/// numbered from 1 (empty documents are `null`).
pub(super) fn documents(text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    Ok(if text.trim_start().starts_with('{') {
        match json_documents(text) {
            Ok(docs) => docs,
            // `{a: 1}` is YAML flow style, not JSON: let the YAML parser have it (YAML 1.2
            // reads every JSON text, so this only changes which parser reports a real error).
            Err(JsonError::Syntax) => yaml_documents(text)?,
            Err(JsonError::Manifest(e)) => return Err(e),
        }
    } else {
        yaml_documents(text)?
    })
}

enum JsonError {
    Syntax,
    Manifest(ManifestError),
}

fn json_documents(text: &str) -> Result<Vec<(usize, Value)>, JsonError> {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<StrictJson>();
    for (i, item) in stream.enumerate() {
        let document = i + 1;
        match item {
            Ok(StrictJson(value)) => out.push((document, value)),
            Err(e) if e.is_data() => {
                return Err(JsonError::Manifest(ManifestError::Syntax {
                    document,
                    message: e.to_string(),
                }));
            }
            Err(_) => return Err(JsonError::Syntax),
        }
    }
    Ok(out)
}

fn yaml_documents(text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let syntax = |message: String| ManifestError::Syntax { document, message };
        // The document iterator repeats a syntax error forever: stop at the first one.
        let mut yaml = yaml_serde::Value::deserialize(doc).map_err(|e| syntax(e.to_string()))?;
        yaml.apply_merge().map_err(|e| syntax(e.to_string()))?;
        let value = yaml_to_json(&yaml, &mut String::new()).map_err(syntax)?;
        out.push((document, value));
    }
    Ok(out)
}

/// YAML to JSON as sigs.k8s.io/yaml does it: scalar keys become strings.
fn yaml_to_json(yaml: &yaml_serde::Value, path: &mut String) -> Result<Value, String> {
    use yaml_serde::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| format!("{}{n} is not a number JSON can hold", at(path)))?,
                )
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(yaml_to_json(item, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        Y::Mapping(mapping) => {
            let mut out = Map::new();
            for (key, item) in mapping {
                let key = match key {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => {
                        return Err(format!(
                            "{}mapping keys must be strings, numbers or booleans",
                            at(path)
                        ));
                    }
                };
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key);
                let value = yaml_to_json(item, path)?;
                path.truncate(len);
                if out.insert(key.clone(), value).is_some() {
                    // `1: a` and `"1": b` in one mapping.
                    return Err(format!("{}duplicate entry with key {key:?}", at(path)));
                }
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            return Err(format!(
                "{}YAML tag {} is not supported",
                at(path),
                tagged.tag
            ));
        }
    })
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn decode_pod(document: usize, value: Value) -> Result<Pod, ManifestError> {
    let Value::Object(map) = &value else {
        return Err(ManifestError::NotAnObject {
            document,
            message: format!(
                "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                json_type(&value)
            ),
        });
    };
    let text_field = |name: &str| -> Result<String, ManifestError> {
        match map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(ManifestError::NotAnObject {
                document,
                message: format!("Object '{}' is missing", capitalized(name)),
            }),
            Some(other) => Err(ManifestError::NotAnObject {
                document,
                message: format!(
                    "{name} must be a non-empty string, found {}",
                    json_type(other)
                ),
            }),
        }
    };
    let kind = text_field("kind")?;
    let api_version = text_field("apiVersion")?;
    if kind != "Pod" || api_version != "v1" {
        return Err(ManifestError::Kind {
            document,
            api_version,
            kind,
        });
    }

    let mut unknown = BTreeSet::new();
    let result: Result<Pod, _> = {
        let mut record = |path: serde_ignored::Path| {
            unknown.insert(format_path(&path));
        };
        let ignored = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize(ignored)
    };
    let pod = result.map_err(|e| ManifestError::Decode {
        document,
        path: match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        },
        message: e.inner().to_string(),
    })?;
    if !unknown.is_empty() {
        return Err(ManifestError::UnknownFields {
            document,
            fields: unknown.into_iter().collect(),
        });
    }
    Ok(pod)
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// `spec.containers[1].foo`, as kubectl prints the path of an unknown field.
fn format_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        P::Map { parent, key } => match format_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            format_path(parent)
        }
    }
}

/// A JSON value that refuses duplicate object keys (the API server's strict decoding does;
/// `serde_json::Value` would keep the last one silently).
struct StrictJson(Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictJson(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictJson(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate entry with key {key:?}"
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}
