//! The result cache, in libcni's format: `<dir>/results/<network>-<containerid>-<ifname>`, a
//! `cniCacheV1` JSON document with the config (base64, as Go marshals `[]byte`), the runtime
//! arguments and the ADD result. DEL reads it to give the plugins what ADD returned, even after
//! peapod restarted.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::capability::CapabilityArgs;
use peapod_sys::fs::write_replace_mode;

/// Where libcni keeps its cache.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// libcni's cache format marker.
pub const CACHE_KIND: &str = "cniCacheV1";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    /// Always [`CACHE_KIND`].
    pub kind: String,
    /// The container id.
    pub container_id: String,
    /// The network config list ADD ran with.
    #[serde(serialize_with = "b64_ser", deserialize_with = "b64_de")]
    pub config: Vec<u8>,
    /// The interface name.
    pub if_name: String,
    /// The network name.
    pub network_name: String,
    /// The netns path ADD ran with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    /// Capability arguments.
    #[serde(default)]
    pub capability_args: CapabilityArgs,
    /// The chain's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

fn b64_ser<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

fn b64_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    STANDARD.decode(s).map_err(serde::de::Error::custom)
}

/// A cache file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading, writing or removing failed.
    #[error("{op} cni result cache `{path}`: {source}")]
    Io {
        /// `read`, `write`, `remove`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a cache document.
    #[error("cni result cache `{path}` is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The cache file of one attachment. The parts are validated names (no `/`), so the path stays
/// inside `results/`.
pub fn cache_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

/// Where an ADD in progress keeps its entry (config, arguments, the result so far) until the
/// chain's final result is cached: `<dir>/adding/<name>` for the cache file `<dir>/results/<name>`,
/// a directory of its own, so that no attachment's cache file can be another's partial entry
/// (names may hold dots). A runtime killed during ADD leaves what DEL needs to undo it (see
/// `Cni::del`).
pub fn partial_path(cache: &Path) -> PathBuf {
    let dir = cache
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    dir.join("adding")
        .join(cache.file_name().unwrap_or_default())
}

/// Processes running an ADD of `container_id` on `ifname` (plugins orphaned by a runtime that
/// was killed during ADD): one of the chain's `plugins` (canonical paths) by its executable, with that CNI
/// environment. The environment alone would not do: any process, a container's too, can
/// carry those variables.
pub fn adding_processes(container_id: &str, ifname: &str, plugins: &[PathBuf]) -> Vec<i32> {
    let want = [
        "CNI_COMMAND=ADD".to_string(),
        format!("CNI_CONTAINERID={container_id}"),
        format!("CNI_IFNAME={ifname}"),
    ];
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| plugins.contains(&exe))
        })
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
                want.iter().all(|w| vars.contains(&w.as_bytes()))
            })
        })
        .collect()
}

/// Write `entry` to `path` atomically, mode 0600 (the `results` dir 0700); not fsynced, as
/// libcni does not (the plugins' own state, host-local's allocations, is not synced either).
pub fn write(path: &Path, entry: &CachedAttachment) -> Result<(), CacheError> {
    let io_err = |source| CacheError::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
    }
    let bytes = serde_json::to_vec(entry).map_err(|e| io_err(io::Error::other(e)))?;
    write_replace_mode(path, &bytes, 0o600).map_err(io_err)
}

/// No entry: the file or a directory on its path is missing (or is a file).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The entry at `path`; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<CachedAttachment>, CacheError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if absent(&e) => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |reason: String| CacheError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let entry: CachedAttachment =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if entry.kind != CACHE_KIND {
        return Err(corrupt(format!(
            "kind `{}` is not `{CACHE_KIND}`",
            entry.kind
        )));
    }
    Ok(Some(entry))
}

/// Remove the entry at `path`; a missing one is fine.
pub fn remove(path: &Path) -> Result<(), CacheError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if absent(&e) => Ok(()),
        Err(source) => Err(CacheError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry() -> CachedAttachment {
        CachedAttachment {
            kind: CACHE_KIND.into(),
            container_id: "c1".into(),
            config: br#"{"name":"peapod"}"#.to_vec(),
            if_name: "eth0".into(),
            network_name: "peapod".into(),
            netns: "/run/netns/x".into(),
            cni_args: vec![["IgnoreUnknown".into(), "1".into()]],
            capability_args: CapabilityArgs::default(),
            result: Some(serde_json::json!({"cniVersion":"1.0.0"})),
        }
    }

    #[test]
    fn writes_libcni_format_privately_and_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let p = cache_path(d.path(), "peapod", "c1", "eth0");
        assert_eq!(p, d.path().join("results/peapod-c1-eth0"));
        assert_eq!(read(&p).unwrap(), None);
        write(&p, &entry()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        let raw: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        // The field names and the base64 config are libcni's.
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(raw["ifName"], "eth0");
        assert_eq!(raw["networkName"], "peapod");
        assert_eq!(raw["config"], "eyJuYW1lIjoicGVhcG9kIn0=");
        assert_eq!(raw["cniArgs"], serde_json::json!([["IgnoreUnknown", "1"]]));
        assert_eq!(read(&p).unwrap(), Some(entry()));
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert_eq!(read(&p).unwrap(), None);
    }

    #[test]
    fn corrupt_entries_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        fs::write(&p, "{").unwrap();
        assert!(matches!(read(&p), Err(CacheError::Corrupt { .. })));
        let mut e = serde_json::to_value(entry()).unwrap();
        e["kind"] = "other".into();
        fs::write(&p, e.to_string()).unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(err.contains("kind `other` is not `cniCacheV1`"), "{err}");
    }
}
