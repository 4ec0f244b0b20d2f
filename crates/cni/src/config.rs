//! Network configuration lists: discovery in a conf dir (containerd's rule), parsing and
//! validation.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::version::{SUPPORTED_VERSIONS, is_supported};

/// Where kubelet's runtimes look for network configs.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// Extensions containerd loads from the conf dir: `.conflist` is a list, the others a single
/// plugin config that is wrapped into a list.
pub const CONF_EXTENSIONS: [&str; 3] = ["conflist", "conf", "json"];

/// Errors reading or validating network configs. Every message names the file, and the field
/// when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The conf dir cannot be listed.
    #[error("read cni config dir `{dir}`: {source}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No `*.conflist`, `*.conf` or `*.json` file in the dir.
    #[error("no cni network config (*.conflist, *.conf, *.json) in `{dir}`")]
    NoConfig {
        /// The directory.
        dir: PathBuf,
    },
    /// A config file cannot be read.
    #[error("read cni config `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A config file is not JSON.
    #[error("parse cni config `{path}`: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A field is missing or wrong.
    #[error("cni config `{path}`: field `{field}`: {reason}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a JSON path (`plugins[1].type`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing a generated config failed.
    #[error("write cni config `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No private /16 is free for the default network.
    #[error(
        "no free private /16 for the default cni network: every candidate collides with a host \
         route; write a network config into `{dir}`"
    )]
    NoFreeSubnet {
        /// The conf dir the user can write a config into.
        dir: PathBuf,
    },
    /// The host's routes cannot be read.
    #[error("read host routes `{path}`: {source}")]
    HostRoutes {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// One plugin of a list, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// `type`: the binary to run.
    pub plugin_type: String,
    /// `capabilities`: the runtime arguments the plugin wants in `runtimeConfig`.
    pub capabilities: BTreeMap<String, bool>,
    /// The whole object, passed to the plugin with `name`, `cniVersion`, `prevResult` and
    /// `runtimeConfig` injected.
    pub raw: Map<String, Value>,
}

impl PluginConf {
    /// The capabilities the plugin declares `true`.
    pub fn enabled_capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.as_str())
    }
}

/// A network: a list of plugins run in order on ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// `name`: the network's name (part of the cache key).
    pub name: String,
    /// `cniVersion`: the spec version every plugin is configured in.
    pub cni_version: String,
    /// `disableCheck`: CHECK does nothing.
    pub disable_check: bool,
    /// `plugins`, in ADD order.
    pub plugins: Vec<PluginConf>,
    /// The list as JSON (the file's bytes, or the wrapped single config), stored in the cache.
    pub bytes: Vec<u8>,
    /// Where it was read from (for messages).
    pub origin: PathBuf,
}

/// libcni's rule for container ids and network names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`. It keeps
/// them safe inside the cache file name.
pub fn valid_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl NetworkConfigList {
    /// Read a config file: a `.conflist` as a list, any other file as one plugin config wrapped
    /// into a list (containerd's rule).
    pub fn from_file(path: &Path) -> Result<NetworkConfigList, ConfigError> {
        let bytes = fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "conflist") {
            NetworkConfigList::from_list_bytes(&bytes, path)
        } else {
            NetworkConfigList::from_single_bytes(&bytes, path)
        }
    }

    /// Parse a `.conflist` document; `origin` names it in errors.
    pub fn from_list_bytes(bytes: &[u8], origin: &Path) -> Result<NetworkConfigList, ConfigError> {
        let top = parse_object(bytes, origin)?;
        let field = |field: &str, reason: String| ConfigError::Field {
            path: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        let (name, cni_version) = name_and_version(&top, origin)?;
        let disable_check = match top.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            // libcni also accepts the strings "true" and "false", in any case.
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(field(
                    "disableCheck",
                    format!("must be true or false, not {other}"),
                ));
            }
        };
        let plugins = match top.get("plugins") {
            None => return Err(field("plugins", "missing: a list needs plugins".into())),
            Some(Value::Array(a)) if a.is_empty() => {
                return Err(field("plugins", "is empty: a list needs plugins".into()));
            }
            Some(Value::Array(a)) => a,
            Some(other) => return Err(field("plugins", format!("must be an array, not {other}"))),
        };
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Object(o) => plugin_conf(o, &format!("plugins[{i}]."), origin),
                other => Err(field(
                    &format!("plugins[{i}]"),
                    format!("must be an object, not {other}"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
            bytes: bytes.to_vec(),
            origin: origin.to_path_buf(),
        })
    }

    /// Parse a single plugin config (`.conf`, `.json`) and wrap it into a one-plugin list, as
    /// libcni's `ConfListFromConf` does.
    pub fn from_single_bytes(
        bytes: &[u8],
        origin: &Path,
    ) -> Result<NetworkConfigList, ConfigError> {
        let top = parse_object(bytes, origin)?;
        let (name, cni_version) = name_and_version(&top, origin)?;
        let plugin = plugin_conf(&top, "", origin)?;
        let list = serde_json::json!({
            "cniVersion": cni_version,
            "name": name,
            "plugins": [Value::Object(top)],
        });
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check: false,
            plugins: vec![plugin],
            bytes: list.to_string().into_bytes(),
            origin: origin.to_path_buf(),
        })
    }
}

fn parse_object(bytes: &[u8], origin: &Path) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(ConfigError::Field {
            path: origin.to_path_buf(),
            field: "(document)".into(),
            reason: format!("must be a JSON object, not {}", kind(&other)),
        }),
        Err(source) => Err(ConfigError::Json {
            path: origin.to_path_buf(),
            source,
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn name_and_version(
    top: &Map<String, Value>,
    origin: &Path,
) -> Result<(String, String), ConfigError> {
    let field = |field: &str, reason: String| ConfigError::Field {
        path: origin.to_path_buf(),
        field: field.to_string(),
        reason,
    };
    let name = match top.get("name") {
        None => return Err(field("name", "missing: a network needs a name".into())),
        Some(Value::String(s)) if valid_name(s) => s.clone(),
        Some(Value::String(s)) => {
            return Err(field(
                "name",
                format!(
                    "`{s}` is not a valid network name (letters, digits, `_`, `.`, `-`, \
                     starting with a letter or digit)"
                ),
            ));
        }
        Some(other) => {
            return Err(field(
                "name",
                format!("must be a string, not {}", kind(other)),
            ));
        }
    };
    let supported = SUPPORTED_VERSIONS.join(", ");
    let cni_version = match top.get("cniVersion") {
        None => {
            return Err(field(
                "cniVersion",
                format!("missing; peapod speaks {supported}"),
            ));
        }
        Some(Value::String(v)) if is_supported(v) => v.clone(),
        Some(Value::String(v)) => {
            return Err(field(
                "cniVersion",
                format!("version `{v}` is not supported; peapod speaks {supported}"),
            ));
        }
        Some(other) => {
            return Err(field(
                "cniVersion",
                format!("must be a string, not {}", kind(other)),
            ));
        }
    };
    Ok((name, cni_version))
}

fn plugin_conf(
    obj: &Map<String, Value>,
    prefix: &str,
    origin: &Path,
) -> Result<PluginConf, ConfigError> {
    let field = |name: &str, reason: String| ConfigError::Field {
        path: origin.to_path_buf(),
        field: format!("{prefix}{name}"),
        reason,
    };
    let plugin_type = match obj.get("type") {
        None => return Err(field("type", "missing: the plugin binary to run".into())),
        Some(Value::String(t)) if valid_name(t) => t.clone(),
        // A type is a file name looked up in CNI_PATH: `../../bin/sh` must not escape it.
        Some(Value::String(t)) => {
            return Err(field(
                "type",
                format!("`{t}` is not a plugin binary name (no `/`, letters, digits, `_.-`)"),
            ));
        }
        Some(other) => {
            return Err(field(
                "type",
                format!("must be a string, not {}", kind(other)),
            ));
        }
    };
    let mut capabilities = BTreeMap::new();
    match obj.get("capabilities") {
        None => {}
        Some(Value::Object(caps)) => {
            for (k, v) in caps {
                let Value::Bool(on) = v else {
                    return Err(field(
                        &format!("capabilities.{k}"),
                        format!("must be true or false, not {}", kind(v)),
                    ));
                };
                capabilities.insert(k.clone(), *on);
            }
        }
        Some(other) => {
            return Err(field(
                "capabilities",
                format!("must be an object, not {}", kind(other)),
            ));
        }
    }
    Ok(PluginConf {
        plugin_type,
        capabilities,
        raw: obj.clone(),
    })
}

/// The config files of `dir` in the order containerd considers them: regular files (symlinks
/// followed) ending in `.conflist`, `.conf` or `.json`, sorted by name. A missing dir has none.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir = |source| ConfigError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_dir(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_dir)?.path();
        let wanted = path
            .extension()
            .is_some_and(|e| CONF_EXTENSIONS.iter().any(|x| e == *x));
        if wanted && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The default network of `dir`: the first config file in lexical order (containerd's
/// `WithDefaultConf`). A broken first file is an error, not skipped, as in containerd.
pub fn load_default(dir: &Path) -> Result<NetworkConfigList, ConfigError> {
    let files = config_files(dir)?;
    let first = files.first().ok_or_else(|| ConfigError::NoConfig {
        dir: dir.to_path_buf(),
    })?;
    NetworkConfigList::from_file(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Result<NetworkConfigList, ConfigError> {
        NetworkConfigList::from_list_bytes(s.as_bytes(), Path::new("/etc/cni/net.d/x.conflist"))
    }

    #[test]
    fn parses_a_list() {
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"peapod","disableCheck":"TRUE","plugins":[
                {"type":"bridge","bridge":"peapod0"},
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "peapod");
        assert_eq!(l.cni_version, "1.0.0");
        assert!(l.disable_check);
        assert_eq!(l.plugins.len(), 2);
        assert_eq!(l.plugins[0].plugin_type, "bridge");
        assert_eq!(l.plugins[0].raw["bridge"], "peapod0");
        assert_eq!(
            l.plugins[1].enabled_capabilities().collect::<Vec<_>>(),
            vec!["portMappings"]
        );
    }

    #[test]
    fn validation_names_the_file_and_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                "[]",
                "field `(document)`: must be a JSON object, not an array",
            ),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
                "field `name`: missing",
            ),
            (
                r#"{"name":"a/b","cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
                "field `name`: `a/b` is not a valid network name",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"x"}]}"#,
                "field `cniVersion`: missing",
            ),
            (
                r#"{"name":"n","cniVersion":"1.1.0","plugins":[{"type":"x"}]}"#,
                "field `cniVersion`: version `1.1.0` is not supported; peapod speaks 1.0.0, 0.4.0, 0.3.1, 0.3.0",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0"}"#,
                "field `plugins`: missing",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#,
                "field `plugins`: is empty",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a"},{"bridge":"b"}]}"#,
                "field `plugins[1].type`: missing",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"../../bin/sh"}]}"#,
                "field `plugins[0].type`: `../../bin/sh` is not a plugin binary name",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a","capabilities":{"portMappings":"yes"}}]}"#,
                "field `plugins[0].capabilities.portMappings`: must be true or false, not a string",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","disableCheck":1,"plugins":[{"type":"a"}]}"#,
                "field `disableCheck`: must be true or false",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[7]}"#,
                "field `plugins[0]`: must be an object",
            ),
        ];
        for (input, want) in cases {
            let err = list(input).unwrap_err().to_string();
            assert!(
                err.starts_with("cni config `/etc/cni/net.d/x.conflist`: "),
                "{input}: {err}"
            );
            assert!(err.contains(want), "{input}: {err}");
        }
        let err = list("{").unwrap_err().to_string();
        assert!(
            err.starts_with("parse cni config `/etc/cni/net.d/x.conflist`: "),
            "{err}"
        );
    }

    #[test]
    fn a_single_config_is_wrapped_into_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("10-one.conf");
        fs::write(
            &p,
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge","bridge":"b0"}"#,
        )
        .unwrap();
        let l = NetworkConfigList::from_file(&p).unwrap();
        assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("one", "0.4.0"));
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0].raw["bridge"], "b0");
        // The cached config is a list, as libcni's ConfListFromConf makes it.
        let again = NetworkConfigList::from_list_bytes(&l.bytes, &p).unwrap();
        assert_eq!(again.plugins, l.plugins);
        // Field errors of a single config name the field without a list prefix.
        fs::write(&p, r#"{"cniVersion":"1.0.0","name":"one"}"#).unwrap();
        let err = NetworkConfigList::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("10-one.conf`: field `type`: missing"), "{err}");
    }

    #[test]
    fn discovery_takes_the_first_file_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(load_default(d), Err(ConfigError::NoConfig { .. })));
        assert!(config_files(&d.join("missing")).unwrap().is_empty());
        let conf =
            |name: &str| format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"bridge"}}"#);
        let conflist = |name: &str| {
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge"}}]}}"#)
        };
        fs::write(d.join("README"), "not a config").unwrap();
        fs::write(d.join("30-c.json"), conf("c")).unwrap();
        fs::write(d.join("20-b.conf"), conf("b")).unwrap();
        fs::write(d.join("99-z.conflist"), conflist("z")).unwrap();
        fs::create_dir(d.join("00-dir.conflist")).unwrap();
        fs::write(d.join(".10-a.conflist.tmp-1-2"), conflist("tmp")).unwrap();
        assert_eq!(load_default(d).unwrap().name, "b");
        fs::write(d.join("10-a.conflist"), conflist("a")).unwrap();
        assert_eq!(load_default(d).unwrap().name, "a");
        let names: Vec<_> = config_files(d)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["10-a.conflist", "20-b.conf", "30-c.json", "99-z.conflist"]
        );
        // A broken first file is an error naming it, not skipped.
        fs::write(d.join("05-bad.conflist"), "{").unwrap();
        let err = load_default(d).unwrap_err().to_string();
        assert!(err.contains("05-bad.conflist"), "{err}");
    }

    #[test]
    fn names() {
        for ok in ["a", "peapod", "k8s-pod-network", "A_b.c-1", "0abc"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".", "..", "a/b", "a b", "a;b", "é", "_x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
