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
    check_limits(text)?;
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

/// The largest manifest accepted: the Kubernetes API server's limit on a request body
/// (`MaxRequestBodyBytes`, 3 MiB), so kubectl could not send a larger one either.
pub const MAX_MANIFEST_BYTES: usize = 3 << 20;

/// The deepest nesting of YAML flow collections (`[...]`, `{...}`) accepted. Both decoders
/// refuse more than 128 levels of any nesting anyway (serde_json's and yaml_serde's recursion
/// limits), but the YAML parser (libyaml's scanner) first tokenizes the whole document, and
/// its work per token grows with the flow depth: 50,000 levels took 4 s and 100,000 over a
/// minute before "recursion limit exceeded". A Pod nests less than 20 levels.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Refuses, before any parser walks it, a text over [`MAX_MANIFEST_BYTES`] or one whose YAML
/// flow collections may nest deeper than [`MAX_FLOW_DEPTH`] ([`flow_depth_bound`]). Linear
/// in the text's length. JSON is covered too: a JSON text is YAML flow collections.
pub fn check_limits(text: &str) -> Result<(), ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            size: text.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    match flow_depth_bound(text.as_bytes(), MAX_FLOW_DEPTH) {
        Ok(_) => Ok(()),
        Err(line) => Err(ManifestError::TooDeep {
            line,
            limit: MAX_FLOW_DEPTH,
        }),
    }
}

/// Where the scanner of [`flow_depth_bound`] may be inside a token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Between tokens (skipping blanks), where `[`, `{`, quotes, `#` start something.
    Tok,
    /// Inside the non-blank run of a plain scalar.
    Plain,
    /// Inside a plain scalar after blanks or a line break (`#` starts a comment here).
    PlainWs,
    /// Single-quoted scalar; `SqEsc` is the second `'` of an escaped `''`.
    Sq,
    SqEsc,
    /// Double-quoted scalar; `DqEsc` is the character after a `\`.
    Dq,
    DqEsc,
    Comment,
    /// A tag (`!...`), whose URI characters may include `[` and `]`.
    Tag,
    /// The lines of a block scalar (`|`, `>`); block context only.
    BlockScalar,
}

const MODES: [Mode; 10] = [
    Mode::Tok,
    Mode::Plain,
    Mode::PlainWs,
    Mode::Sq,
    Mode::SqEsc,
    Mode::Dq,
    Mode::DqEsc,
    Mode::Comment,
    Mode::Tag,
    Mode::BlockScalar,
];

/// What one byte does to the flow level of one branch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delta {
    Same,
    Open,
    Close,
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

/// The length of the line break at `i` as libyaml reads it (`\r`, `\n`, NEL, LS, PS), or 0.
fn break_len(text: &[u8], i: usize) -> usize {
    match text[i..] {
        [b'\r' | b'\n', ..] => 1,
        [0xC2, 0x85, ..] => 2,
        [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
        _ => 0,
    }
}

fn blankz(text: &[u8], i: usize) -> bool {
    i >= text.len() || matches!(text[i], b' ' | b'\t') || break_len(text, i) > 0
}

/// A branch at token start reading `b`: the modes it may go to, with their level change.
fn from_tok(flow: bool, b: u8, next_blankz: bool, out: &mut Vec<(Mode, Delta)>) {
    let m = match b {
        b' ' | b'\t' => Mode::Tok,
        b'#' => Mode::Comment,
        b'\'' => Mode::Sq,
        b'"' => Mode::Dq,
        b'[' | b'{' => return out.push((Mode::Tok, Delta::Open)),
        b']' | b'}' => return out.push((Mode::Tok, Delta::Close)),
        b',' => Mode::Tok,
        b'|' | b'>' if !flow => Mode::BlockScalar,
        b'!' => Mode::Tag,
        b':' if flow || next_blankz => Mode::Tok,
        b'-' | b'?' if next_blankz => Mode::Tok,
        _ => Mode::Plain,
    };
    out.push((m, Delta::Same));
}

/// One branch in `mode` reading the non-break byte `b` at `i`.
fn step(mode: Mode, flow: bool, text: &[u8], i: usize, out: &mut Vec<(Mode, Delta)>) {
    let b = text[i];
    let next_blankz = blankz(text, i + 1);
    let next = text.get(i + 1).copied();
    match mode {
        Mode::Tok => from_tok(flow, b, next_blankz, out),
        Mode::Plain | Mode::PlainWs => match b {
            b' ' | b'\t' => out.push((Mode::PlainWs, Delta::Same)),
            b'#' if mode == Mode::PlainWs => out.push((Mode::Comment, Delta::Same)),
            _ if flow && is_flow_indicator(b) => from_tok(flow, b, next_blankz, out),
            b':' if next_blankz || (flow && next.is_some_and(is_flow_indicator)) => {
                out.push((Mode::Tok, Delta::Same))
            }
            // In flow context libyaml versions differ on `a:b`: one scalar, or key and value.
            b':' if flow => {
                out.push((Mode::Plain, Delta::Same));
                out.push((Mode::Tok, Delta::Same));
            }
            _ => out.push((Mode::Plain, Delta::Same)),
        },
        Mode::Sq => match b {
            b'\'' if next == Some(b'\'') => out.push((Mode::SqEsc, Delta::Same)),
            b'\'' => out.push((Mode::Tok, Delta::Same)),
            _ => out.push((Mode::Sq, Delta::Same)),
        },
        Mode::SqEsc => out.push((Mode::Sq, Delta::Same)),
        Mode::Dq => match b {
            b'\\' => out.push((Mode::DqEsc, Delta::Same)),
            b'"' => out.push((Mode::Tok, Delta::Same)),
            _ => out.push((Mode::Dq, Delta::Same)),
        },
        Mode::DqEsc => out.push((Mode::Dq, Delta::Same)),
        Mode::Comment => out.push((Mode::Comment, Delta::Same)),
        Mode::Tag => match b {
            b' ' | b'\t' => out.push((Mode::Tok, Delta::Same)),
            // A tag URI may or may not take `[` and `]` (libyaml versions differ): both.
            _ if flow && is_flow_indicator(b) => {
                out.push((Mode::Tag, Delta::Same));
                from_tok(flow, b, next_blankz, out);
            }
            _ => out.push((Mode::Tag, Delta::Same)),
        },
        Mode::BlockScalar => out.push((Mode::BlockScalar, Delta::Same)),
    }
}

/// One branch in `mode` reading a line break.
fn step_break(mode: Mode, flow: bool, out: &mut Vec<(Mode, Delta)>) {
    let same = |m| (m, Delta::Same);
    match mode {
        Mode::Tok | Mode::Comment | Mode::Tag => out.push(same(Mode::Tok)),
        // A block plain scalar goes on on the next line only if it is indented enough,
        // a block scalar ends at a less indented line: the scanner does not track
        // indentation, so it follows both ways.
        Mode::Plain | Mode::PlainWs if !flow => {
            out.push(same(Mode::PlainWs));
            out.push(same(Mode::Tok));
        }
        Mode::Plain | Mode::PlainWs => out.push(same(Mode::PlainWs)),
        Mode::BlockScalar => {
            out.push(same(Mode::BlockScalar));
            out.push(same(Mode::Tok));
        }
        Mode::Sq | Mode::SqEsc => out.push(same(Mode::Sq)),
        Mode::Dq | Mode::DqEsc => out.push(same(Mode::Dq)),
    }
}

/// An upper bound of the flow level libyaml's scanner reaches on `text`, or the 1-based line
/// where that bound first exceeds `limit`.
///
/// One linear pass that follows every way the text could tokenize where telling them apart
/// would need libyaml's indentation tracking (where a block plain scalar or block scalar
/// ends, whether a tag takes a bracket): a set of branches, each a [`Mode`] with a flow level,
/// in block context (level 0) or flow context. Branches in the same mode merge into the
/// highest level, and every `]`/`}` that closes a level also starts a block-context branch (a
/// merged lower branch may have closed its last level there), so the true tokenization is
/// always covered by a branch whose level is at least its own: the bound never falls below
/// libyaml's real depth, whatever quotes or comments hide brackets.
pub(crate) fn flow_depth_bound(text: &[u8], limit: usize) -> Result<usize, usize> {
    const N: usize = MODES.len();
    let index = |m: Mode| {
        MODES
            .iter()
            .position(|&x| x == m)
            .expect("every mode is listed")
    };
    // block[m]: a branch in mode m in block context; flow[m]: the highest level of the
    // branches in mode m in flow context (0: none).
    let mut block = [false; N];
    block[index(Mode::Tok)] = true;
    let mut flow = [0usize; N];
    let mut max = 0;
    let mut line = 1;
    let mut line_start = true;
    let mut moves = Vec::with_capacity(4);
    let mut i = 0;
    while i < text.len() {
        let brk = break_len(text, i);
        let (mut next_block, mut next_flow) = ([false; N], [0usize; N]);
        // Document markers at the start of a line end whatever was open in block context.
        if line_start
            && (text[i..].starts_with(b"---") || text[i..].starts_with(b"..."))
            && blankz(text, i + 3)
        {
            block[index(Mode::Tok)] = true;
        }
        for (k, &mode) in MODES.iter().enumerate() {
            for (is_flow, level) in [(false, usize::from(block[k])), (true, flow[k])] {
                if level == 0 {
                    continue;
                }
                moves.clear();
                if brk > 0 {
                    step_break(mode, is_flow, &mut moves);
                } else {
                    step(mode, is_flow, text, i, &mut moves);
                }
                let level = if is_flow { level } else { 0 };
                for &(m, delta) in &moves {
                    let to = match delta {
                        Delta::Same => level,
                        Delta::Open => level + 1,
                        Delta::Close if level == 0 => 0, // a stray `]` in block context
                        Delta::Close => {
                            next_block[index(Mode::Tok)] = true;
                            level - 1
                        }
                    };
                    if to == 0 {
                        next_block[index(m)] = true;
                    } else {
                        let slot = &mut next_flow[index(m)];
                        *slot = (*slot).max(to);
                        max = max.max(to);
                    }
                }
            }
        }
        if max > limit {
            return Err(line);
        }
        (block, flow) = (next_block, next_flow);
        line_start = brk > 0;
        if brk > 0 {
            // `\r\n` is one line break.
            if text[i] == b'\n' || text.get(i + 1) != Some(&b'\n') {
                line += 1;
            }
            i += brk;
        } else {
            i += 1;
        }
    }
    Ok(max)
}

/// Reads a manifest file, refusing one over [`MAX_MANIFEST_BYTES`] without reading more than
/// one byte past the limit (a FIFO or `/dev/zero` given as the file ends there too).
pub fn read_manifest(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut data)?;
    if data.len() > MAX_MANIFEST_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "larger than {MAX_MANIFEST_BYTES} bytes, the limit \
                 (the Kubernetes API server's request size limit)"
            ),
        ));
    }
    String::from_utf8(data).map_err(|e| Error::new(ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn bound(text: &str) -> Result<usize, usize> {
        flow_depth_bound(text.as_bytes(), MAX_FLOW_DEPTH)
    }

    #[test]
    fn flow_depth_bound_counts_what_libyaml_nests() {
        assert_eq!(bound("a: [1, [2, {b: [3]}]]\n"), Ok(4));
        assert_eq!(bound("a: b\nc: [x]\n"), Ok(1));
        // Brackets in quotes, comments, plain and block scalars do not nest.
        assert_eq!(bound("a: '[[[['\nb: \"{{{\"\n# [[[[\nc: x[[[[\n"), Ok(0));
        assert_eq!(bound("a: |\n  x\n  y\n"), Ok(0));
        // ...but a bracket that closes nothing (inside quotes) does not hide a real level.
        let hidden = "[\"]\", ".repeat(500);
        assert_eq!(bound(&hidden), Err(1));
        let hidden = "['],', ".repeat(500);
        assert_eq!(bound(&hidden), Err(1));
        let commented = "[ # ]]\n".repeat(500);
        assert_eq!(bound(&commented), Err(129));
    }

    #[test]
    fn the_bound_never_falls_below_what_yaml_serde_nests() {
        // yaml_serde refuses more than 128 levels: whatever passes the bound at a lower limit
        // must parse, or fail for another reason than the recursion limit.
        let pieces = [
            "[", "]", "{", "}", "'", "\"", "#", " ", "\n", "a", ":", ",", "-", "|", "!", "\\", "?",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            if flow_depth_bound(text.as_bytes(), 127).is_ok()
                && let Err(e) = yaml_documents(&text)
            {
                assert!(!e.to_string().contains("recursion limit"), "{text:?}: {e}");
            }
        }
    }

    #[test]
    fn deep_flow_collections_are_refused_up_front_in_linear_time() {
        // Without check_limits in documents(), these reach libyaml: seconds each, then
        // yaml_serde's "recursion limit exceeded" instead of TooDeep.
        for n in [50_000, 100_000, 500_000] {
            for (open, close) in [("[", "]"), ("{a: ", "}"), ("{a:\n", "}"), ("[\n", "]")] {
                let text = open.repeat(n) + &close.repeat(n);
                let t = Instant::now();
                let err = documents(&text).unwrap_err();
                assert!(
                    matches!(err, ManifestError::TooDeep { limit: 128, .. }),
                    "{open:?} x {n}: {err}"
                );
                assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            }
        }
        let err = documents(&"[".repeat(200)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: `[...]`/`{...}` collections nest deeper than 128 levels, the limit"
        );
    }

    #[test]
    fn a_manifest_over_the_api_servers_limit_is_refused() {
        let text = format!("# {}\n", "x".repeat(MAX_MANIFEST_BYTES));
        assert_eq!(
            documents(&text).unwrap_err().to_string(),
            format!(
                "manifest is {} bytes, over the limit of 3145728 bytes \
                 (the Kubernetes API server's request size limit)",
                MAX_MANIFEST_BYTES + 3
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.yaml");
        std::fs::write(&p, &text).unwrap();
        let e = read_manifest(&p).unwrap_err();
        assert!(
            e.to_string().starts_with("larger than 3145728 bytes"),
            "{e}"
        );
        // The cost of the largest manifest at the deepest nesting allowed stays linear.
        let unit = "{a: ".repeat(120) + &"}".repeat(120) + "\n";
        let text = format!(
            "x: [\n{}]\n",
            unit.repeat(MAX_MANIFEST_BYTES / unit.len() - 1)
        );
        let t = Instant::now();
        let _ = documents(&text);
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    }
}
