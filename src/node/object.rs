//! This machine as a Kubernetes `Node`.
//!
//! - Name: the hostname, lowercased as kubelet does. Labels: kubelet's defaults (`kubernetes.io/hostname`,
//!   `kubernetes.io/os=linux`, `kubernetes.io/arch` in Go's naming), re-applied on every read
//!   as kubelet re-applies them at start, plus whatever `peapod node label` added.
//! - Capacity, recomputed on every read: `cpu` = the CPUs this process may use
//!   (`available_parallelism`: online CPUs, affinity and cgroup quota), `memory` = `MemTotal`,
//!   `ephemeral-storage` = size of the filesystem holding the storage directory, `pods`.
//! - Allocatable = capacity − `kubeReserved` − `systemReserved` − the hard-eviction threshold
//!   (`memory.available` for memory, `nodefs.available` for ephemeral-storage), as kubelet's
//!   `GetNodeAllocatableReservation`; never below zero.
//!
//! Node config, `<storage>/node-config.yaml` (optional; kubelet's field names):
//!
//! ```yaml
//! systemReserved: {cpu: 100m, memory: 256Mi}
//! kubeReserved: {cpu: 100m, memory: 128Mi, ephemeral-storage: 1Gi}
//! evictionHard: {memory.available: 100Mi, nodefs.available: 10%}   # kubelet's defaults
//! maxPods: 110
//! ```
//!
//! A given `evictionHard` replaces the defaults as a whole (a threshold it omits is 0).
//! The object is stored as `<storage>/node.json`: edits take an exclusive `flock` on
//! `<storage>/node.lock`, read, change and write atomically (temp file + rename).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde::Deserialize;

use super::NodeError;
use super::fit::Amounts;
use crate::k8s::{Format, Quantity};

pub const NODE_FILE: &str = "node.json";
pub const NODE_CONFIG_FILE: &str = "node-config.yaml";
pub const LOCK_FILE: &str = "node.lock";
/// kubelet's default `maxPods`.
pub const MAX_PODS: i64 = 110;

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";

/// Facts read from the machine (the only I/O of this module besides the node files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hostname: String,
    /// Go's `GOARCH` naming: amd64, arm64, ...
    pub arch: String,
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

/// `GOARCH` for Rust's `target_arch`.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl Machine {
    /// Reads this machine; `storage` is the directory whose filesystem is the node's
    /// ephemeral storage (its nearest existing ancestor if it does not exist yet).
    pub fn probe(storage: &Path) -> Machine {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_mem_total(&s))
            .unwrap_or(0);
        let mut dir = storage;
        let ephemeral_storage = loop {
            if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
                break i64::try_from(u128::from(st.blocks()) * u128::from(st.fragment_size()))
                    .unwrap_or(i64::MAX);
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => break 0,
            }
        };
        Machine {
            hostname,
            arch: go_arch(std::env::consts::ARCH).to_string(),
            milli_cpu: i64::try_from(cpus).unwrap_or(1) * 1000,
            memory,
            ephemeral_storage,
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `<storage>/node-config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(default)]
    pub system_reserved: BTreeMap<String, String>,
    #[serde(default)]
    pub kube_reserved: BTreeMap<String, String>,
    /// `None`: kubelet's defaults (`memory.available: 100Mi`, `nodefs.available: 10%`).
    pub eviction_hard: Option<BTreeMap<String, String>>,
    pub max_pods: Option<i64>,
}

impl NodeConfig {
    pub fn parse(text: &str) -> Result<NodeConfig, NodeError> {
        if text.trim().is_empty() {
            return Ok(NodeConfig::default());
        }
        // The same size and depth limits as a manifest, before the YAML parser walks it.
        crate::pod::manifest::check_limits(text).map_err(|e| NodeError::Config(e.to_string()))?;
        let c: NodeConfig =
            yaml_serde::from_str(text).map_err(|e| NodeError::Config(e.to_string()))?;
        for (field, list) in [
            ("systemReserved", &c.system_reserved),
            ("kubeReserved", &c.kube_reserved),
        ] {
            for (k, v) in list {
                if !matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage" | "pid") {
                    return Err(NodeError::Config(format!(
                        "{field}: unknown resource `{k}`: use cpu, memory or ephemeral-storage"
                    )));
                }
                Quantity::parse(v)
                    .map_err(|e| NodeError::Config(format!("{field}.{k}: `{v}`: {e}")))?;
            }
        }
        for (k, v) in c.eviction_hard.iter().flatten() {
            if !matches!(
                k.as_str(),
                "memory.available"
                    | "nodefs.available"
                    | "nodefs.inodesFree"
                    | "imagefs.available"
                    | "imagefs.inodesFree"
                    | "pid.available"
            ) {
                return Err(NodeError::Config(format!(
                    "evictionHard: unknown signal `{k}`"
                )));
            }
            threshold(v, 1).map_err(|e| NodeError::Config(format!("evictionHard.{k}: {e}")))?;
        }
        if c.max_pods.is_some_and(|m| m < 0) {
            return Err(NodeError::Config("maxPods: must be 0 or more".into()));
        }
        Ok(c)
    }

    /// Reads `<storage>/node-config.yaml`; absent means the defaults.
    pub fn load(storage: &Path) -> Result<NodeConfig, NodeError> {
        let p = storage.join(NODE_CONFIG_FILE);
        match crate::pod::manifest::read_manifest(&p) {
            Ok(s) => NodeConfig::parse(&s).map_err(|e| match e {
                NodeError::Config(m) => NodeError::Config(format!("`{}`: {m}", p.display())),
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
            Err(e) => Err(NodeError::io("read", &p, e)),
        }
    }
}

/// An eviction threshold: a quantity, or a percentage of `capacity`.
fn threshold(v: &str, capacity: i64) -> Result<i64, String> {
    if let Some(p) = v.strip_suffix('%') {
        let pct: f64 = p.parse().map_err(|_| format!("`{v}`: not a percentage"))?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("`{v}`: percentage must be between 0% and 100%"));
        }
        return Ok((capacity as f64 * pct / 100.0) as i64);
    }
    Quantity::parse(v)
        .map(|q| q.to_bytes())
        .map_err(|e| format!("`{v}`: {e}"))
}

/// Capacity and allocatable of `machine` under `config`.
pub fn resources(machine: &Machine, config: &NodeConfig) -> (Amounts, Amounts) {
    let capacity = Amounts {
        milli_cpu: machine.milli_cpu,
        memory: machine.memory,
        ephemeral_storage: machine.ephemeral_storage,
        pods: config.max_pods.unwrap_or(MAX_PODS),
    };
    let mut reserved = Amounts::default();
    for list in [&config.system_reserved, &config.kube_reserved] {
        let parsed = list
            .iter()
            .filter_map(|(k, v)| Quantity::parse(v).ok().map(|q| (k.clone(), q)))
            .collect();
        reserved.add(&Amounts::from_list(&parsed));
    }
    let defaults = BTreeMap::from([
        ("memory.available".to_string(), "100Mi".to_string()),
        ("nodefs.available".to_string(), "10%".to_string()),
    ]);
    let eviction = config.eviction_hard.as_ref().unwrap_or(&defaults);
    let signal = |name: &str, cap: i64| {
        eviction
            .get(name)
            .and_then(|v| threshold(v, cap).ok())
            .unwrap_or(0)
    };
    reserved.memory += signal("memory.available", capacity.memory);
    reserved.ephemeral_storage += signal("nodefs.available", capacity.ephemeral_storage);
    let allocatable = Amounts {
        milli_cpu: (capacity.milli_cpu - reserved.milli_cpu).max(0),
        memory: (capacity.memory - reserved.memory).max(0),
        ephemeral_storage: (capacity.ephemeral_storage - reserved.ephemeral_storage).max(0),
        pods: capacity.pods,
    };
    (capacity, allocatable)
}

/// A resource list in the API's shape (`cpu: "4"`, `memory: 16318412Ki`, ...).
pub fn to_list(a: &Amounts) -> BTreeMap<String, K8sQuantity> {
    let q = |s: String| K8sQuantity(s);
    BTreeMap::from([
        (
            "cpu".to_string(),
            q(Quantity::new_milli(a.milli_cpu, Format::DecimalSI).canonical()),
        ),
        (
            "memory".to_string(),
            q(Quantity::new(a.memory, Format::BinarySI).canonical()),
        ),
        (
            "ephemeral-storage".to_string(),
            q(Quantity::new(a.ephemeral_storage, Format::BinarySI).canonical()),
        ),
        ("pods".to_string(), q(a.pods.to_string())),
    ])
}

/// Capacity or allocatable of a Node object back in numbers (the planner's input).
pub fn from_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> Amounts {
    let parsed = list
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::parse(&v.0).ok().map(|q| (k.clone(), q)))
        .collect();
    Amounts::from_list(&parsed)
}

/// The Node for `machine`: labels, taints and `unschedulable` from `stored` (what
/// `node label`/`node taint` wrote), everything else computed now. Pure.
pub fn build(machine: &Machine, config: &NodeConfig, stored: Option<&Node>) -> Node {
    let mut node = Node::default();
    if let Some(s) = stored {
        node.metadata.labels = s.metadata.labels.clone();
        node.metadata.annotations = s.metadata.annotations.clone();
        node.metadata.creation_timestamp = s.metadata.creation_timestamp.clone();
        node.spec = Some(NodeSpec {
            taints: s
                .spec
                .as_ref()
                .and_then(|sp| sp.taints.clone())
                .filter(|t| !t.is_empty()),
            unschedulable: s
                .spec
                .as_ref()
                .and_then(|sp| sp.unschedulable)
                .filter(|u| *u),
            ..Default::default()
        });
    }
    // kubelet's node name is the lowercased hostname (`nodeutil.GetHostname`).
    node.metadata.name = Some(machine.hostname.to_lowercase());
    let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(LABEL_HOSTNAME.into(), machine.hostname.to_lowercase());
    labels.insert(LABEL_OS.into(), "linux".into());
    labels.insert(LABEL_ARCH.into(), machine.arch.clone());
    let (capacity, allocatable) = resources(machine, config);
    node.status = Some(NodeStatus {
        capacity: Some(to_list(&capacity)),
        allocatable: Some(to_list(&allocatable)),
        ..Default::default()
    });
    node
}

fn read_stored(storage: &Path) -> Result<Option<Node>, NodeError> {
    let p = storage.join(NODE_FILE);
    match std::fs::read(&p) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            NodeError::Corrupt(format!(
                "`{}`: {e}: fix or remove the file (labels and taints are lost)",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::io("read", &p, e)),
    }
}

/// Only the stored taints (no machine probing): what a supervisor polls to feed
/// [`super::eviction::decide`]. No node file means no taints.
pub fn stored_taints(storage: &Path) -> Result<Vec<k8s_openapi::api::core::v1::Taint>, NodeError> {
    Ok(read_stored(storage)?
        .and_then(|n| n.spec)
        .and_then(|s| s.taints)
        .unwrap_or_default())
}

/// The node as it is now: stored labels and taints, fresh capacity.
pub fn load(storage: &Path) -> Result<Node, NodeError> {
    let config = NodeConfig::load(storage)?;
    let stored = read_stored(storage)?;
    Ok(build(&Machine::probe(storage), &config, stored.as_ref()))
}

/// Read-modify-write of the stored node under an exclusive lock: `change` sees the current
/// node and returns its result; the node is written (atomically) only if `change` succeeds.
pub fn edit<T>(
    storage: &Path,
    change: impl FnOnce(&mut Node) -> Result<T, NodeError>,
) -> Result<(Node, T), NodeError> {
    std::fs::create_dir_all(storage).map_err(|e| NodeError::io("create", storage, e))?;
    let lock_path = storage.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| NodeError::io("open", &lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| NodeError::io("lock", &lock_path, e.into()))?;
    let mut node = load(storage)?;
    let out = change(&mut node)?;
    if node.metadata.creation_timestamp.is_none() {
        node.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                super::timestamp(crate::pod::now()),
            ));
    }
    let data = serde_json::to_vec_pretty(&node).map_err(|e| NodeError::Corrupt(e.to_string()))?;
    let path = storage.join(NODE_FILE);
    crate::container::state::write_atomic(&path, &data).map_err(|e| NodeError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((node, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            hostname: "Node1".into(),
            arch: "amd64".into(),
            milli_cpu: 4000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
        }
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            parse_mem_total("MemTotal:       16318412 kB\nMemFree: 1 kB\n"),
            Some(16318412 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn allocatable_subtracts_reserves_and_eviction() {
        let (cap, alloc) = resources(&machine(), &NodeConfig::default());
        assert_eq!(cap.pods, 110);
        assert_eq!(alloc.milli_cpu, 4000);
        assert_eq!(alloc.memory, (8 << 30) - (100 << 20));
        assert_eq!(alloc.ephemeral_storage, (100 << 30) - (10 << 30));
        let config = NodeConfig::parse(
            "systemReserved: {cpu: 100m, memory: 256Mi}\nkubeReserved: {cpu: 200m, memory: 256Mi}\n\
             evictionHard: {memory.available: 5%}\nmaxPods: 10\n",
        )
        .unwrap();
        let (cap, alloc) = resources(&machine(), &config);
        assert_eq!(alloc.milli_cpu, 3700);
        assert_eq!(alloc.memory, (8 << 30) - (512 << 20) - (8i64 << 30) / 20);
        // evictionHard given without nodefs.available: no storage threshold.
        assert_eq!(alloc.ephemeral_storage, cap.ephemeral_storage);
        assert_eq!(alloc.pods, 10);
    }

    #[test]
    fn config_errors() {
        for (text, want) in [
            (
                "systemReserved: {gpu: 1}",
                "systemReserved: unknown resource `gpu`",
            ),
            ("kubeReserved: {cpu: lots}", "kubeReserved.cpu: `lots`"),
            (
                "evictionHard: {memory.available: 101%}",
                "evictionHard.memory.available: `101%`",
            ),
            (
                "evictionHard: {disk.free: 1Gi}",
                "evictionHard: unknown signal `disk.free`",
            ),
            ("reserved: {}", "unknown field `reserved`"),
        ] {
            let e = NodeConfig::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert_eq!(NodeConfig::parse("").unwrap(), NodeConfig::default());
    }

    #[test]
    fn build_keeps_user_labels_and_taints() {
        let mut stored = build(&machine(), &NodeConfig::default(), None);
        stored
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("disk".into(), "ssd".into());
        stored
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_OS.into(), "plan9".into());
        stored.spec = Some(NodeSpec {
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "k".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let node = build(&machine(), &NodeConfig::default(), Some(&stored));
        let labels = node.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["disk"], "ssd");
        assert_eq!(labels[LABEL_OS], "linux");
        assert_eq!(labels[LABEL_HOSTNAME], "node1");
        assert_eq!(node.metadata.name.as_deref(), Some("node1"));
        assert_eq!(node.spec.unwrap().taints.unwrap().len(), 1);
        let status = node.status.unwrap();
        assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "4");
        assert_eq!(status.capacity.as_ref().unwrap()["memory"].0, "8Gi");
        assert_eq!(
            from_list(status.allocatable.as_ref()).memory,
            (8 << 30) - (100 << 20)
        );
    }

    #[test]
    fn edit_persists_under_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (_, ()) = edit(dir.path(), |n| {
            n.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("disk".into(), "ssd".into());
            Ok(())
        })
        .unwrap();
        assert!(stored_taints(dir.path()).unwrap().is_empty());
        let again = load(dir.path()).unwrap();
        assert_eq!(again.metadata.labels.unwrap()["disk"], "ssd");
        // A failed change writes nothing.
        let r: Result<(Node, ()), _> = edit(dir.path(), |n| {
            n.metadata.labels = None;
            Err(NodeError::Syntax("no".into()))
        });
        assert!(r.is_err());
        assert!(
            load(dir.path())
                .unwrap()
                .metadata
                .labels
                .unwrap()
                .contains_key("disk")
        );
    }
}
