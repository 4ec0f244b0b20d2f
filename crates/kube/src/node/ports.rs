//! kube-scheduler's NodePorts filter: the host ports a pod asks for (`containerPort` with
//! `hostPort`, and every `containerPort` of a `hostNetwork` pod, which the API server
//! defaults to its `hostPort`) against those of the pods already on the node.

use k8s_openapi::api::core::v1::Pod;

/// NodePorts' reason (`ErrReason` of `framework/plugins/nodeports`).
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// One host port a pod uses: protocol (`TCP`, `UDP`, `SCTP`), host IP (`0.0.0.0` when
/// empty, as `HostPortInfo` sanitizes it) and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

const ANY_IP: &str = "0.0.0.0";

/// The host ports of `pod`'s containers and init containers (the scheduler's
/// `getContainerPorts`), with the API server's defaults applied.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network == Some(true);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = match p.host_port.unwrap_or(0) {
                0 if host_network => p.container_port,
                0 => return None,
                hp => hp,
            };
            let protocol = p
                .protocol
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "TCP".into());
            let ip = p
                .host_ip
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| ANY_IP.into());
            Some(HostPort { protocol, ip, port })
        })
        .collect()
}

/// `HostPortInfo.CheckConflict`: same protocol and port, and the same IP or either the
/// wildcard.
pub fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    a.protocol == b.protocol
        && a.port == b.port
        && (a.ip == b.ip || a.ip == ANY_IP || b.ip == ANY_IP)
}

/// The first port of `pod` that a pod of `running` already uses.
pub fn first_conflict(pod: &Pod, running: &[Pod]) -> Option<HostPort> {
    let used: Vec<HostPort> = running.iter().flat_map(host_ports).collect();
    host_ports(pod)
        .into_iter()
        .find(|want| used.iter().any(|u| conflicts(want, u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(host_network: bool, ports: &[(i32, i32, &str, &str)]) -> Pod {
        let ports: Vec<serde_json::Value> = ports
            .iter()
            .map(|(cp, hp, proto, ip)| {
                serde_json::json!({"containerPort": cp, "hostPort": hp, "protocol": proto, "hostIP": ip})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"hostNetwork": host_network, "containers": [{"name": "c", "ports": ports}]}
        }))
        .unwrap()
    }

    #[test]
    fn kube_schedulers_conflict_rules() {
        let a = pod(false, &[(80, 8080, "TCP", "")]);
        // Same port and protocol on the wildcard: refused.
        assert!(
            first_conflict(
                &pod(false, &[(81, 8080, "TCP", "")]),
                std::slice::from_ref(&a)
            )
            .is_some()
        );
        // A specific IP against the wildcard: refused, both ways.
        assert!(
            first_conflict(
                &pod(false, &[(81, 8080, "TCP", "127.0.0.1")]),
                std::slice::from_ref(&a)
            )
            .is_some()
        );
        let b = pod(false, &[(80, 9090, "TCP", "127.0.0.1")]);
        assert!(
            first_conflict(&pod(false, &[(1, 9090, "", "")]), std::slice::from_ref(&b)).is_some()
        );
        // Two specific IPs, or another protocol: free.
        assert!(first_conflict(&pod(false, &[(1, 9090, "TCP", "127.0.0.2")]), &[b]).is_none());
        assert!(
            first_conflict(
                &pod(false, &[(80, 8080, "UDP", "")]),
                std::slice::from_ref(&a)
            )
            .is_none()
        );
        // No hostPort: no claim.
        assert!(
            first_conflict(
                &pod(false, &[(8080, 0, "TCP", "")]),
                std::slice::from_ref(&a)
            )
            .is_none()
        );
        // hostNetwork: every containerPort is a host port.
        let h = pod(true, &[(8080, 0, "TCP", "")]);
        assert_eq!(
            first_conflict(&h, &[a]),
            Some(HostPort {
                protocol: "TCP".into(),
                ip: ANY_IP.into(),
                port: 8080
            })
        );
    }
}
