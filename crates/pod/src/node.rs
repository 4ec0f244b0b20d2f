//! The node's I/O, for the pure model in `peapod_kube::node`: the machine's facts (hostname,
//! CPUs, `MemTotal`, the storage filesystem's size), `<storage>/node-config.yaml`, the stored
//! Node `<storage>/node.json` (edits under an exclusive `flock` on `<storage>/node.lock`, written
//! atomically), NoExecute eviction against the stored taints, and the pods admitted on this
//! node (read from the pods' state).

use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use peapod_kube::node::eviction::{self, Eviction};
use peapod_kube::node::object::{
    LOCK_FILE, Machine, NODE_CONFIG_FILE, NODE_FILE, NodeConfig, build, go_arch, parse_mem_total,
};
use peapod_kube::node::{self, NodeError};
use peapod_kube::supervisor::Millis;

/// Reads this machine; `storage` is the directory whose filesystem is the node's
/// ephemeral storage (its nearest existing ancestor if it does not exist yet).
pub fn probe_machine(storage: &Path) -> Machine {
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

/// Reads `<storage>/node-config.yaml`; absent means the defaults.
pub fn load_config(storage: &Path) -> Result<NodeConfig, NodeError> {
    let p = storage.join(NODE_CONFIG_FILE);
    match peapod_kube::manifest::read_manifest(&p) {
        Ok(s) => NodeConfig::parse(&s).map_err(|e| match e {
            NodeError::Config(m) => NodeError::Config(format!("`{}`: {m}", p.display())),
            other => other,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
        Err(e) => Err(NodeError::io("read", &p, e)),
    }
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
/// [`eviction::decide`]. No node file means no taints.
pub fn stored_taints(storage: &Path) -> Result<Vec<Taint>, NodeError> {
    Ok(read_stored(storage)?
        .and_then(|n| n.spec)
        .and_then(|s| s.taints)
        .unwrap_or_default())
}

/// The node as it is now: stored labels and taints, fresh capacity.
pub fn load(storage: &Path) -> Result<Node, NodeError> {
    let config = load_config(storage)?;
    let stored = read_stored(storage)?;
    Ok(build(&probe_machine(storage), &config, stored.as_ref()))
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
        node.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(node::timestamp(crate::now())),
        );
    }
    let data = serde_json::to_vec_pretty(&node).map_err(|e| NodeError::Corrupt(e.to_string()))?;
    let path = storage.join(NODE_FILE);
    peapod_sys::fs::write_atomic(&path, &data).map_err(|e| NodeError::io("write", &path, e))?;
    Ok((node, out))
}

/// [`eviction::decide`] for `pod` against the taints stored under `storage`
/// (`<storage>/node.json`): the one call a supervisor needs on each poll or timer tick.
pub fn decide_eviction(
    storage: &Path,
    pod: &Pod,
    pod_started: Millis,
    now: Millis,
) -> Result<Eviction, NodeError> {
    let taints = stored_taints(storage)?;
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    Ok(eviction::decide(&tolerations, &taints, pod_started, now))
}

/// The pods admitted on this node, the input of [`node::admit`]: every pod under
/// `<root>/pods` whose supervisor has not recorded it finished (Succeeded or Failed). A pod
/// still starting counts.
pub fn admitted_pods(root: &Path) -> Vec<Pod> {
    crate::list(root)
        .into_iter()
        .filter_map(|name| {
            let paths = crate::PodPaths::new(root, &name).ok()?;
            let pod = crate::load_pod(&paths).ok()?;
            match crate::Record::load(&paths) {
                Ok(rec) if rec.machine.finished().is_some() => None,
                _ => Some(pod),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
