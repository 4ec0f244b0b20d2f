//! Capability arguments (`runtimeConfig`): port mappings and bandwidth, as kubelet's runtimes
//! send them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Pod annotation for the ingress limit (a quantity in bits per second).
pub const INGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// Pod annotation for the egress limit.
pub const EGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// Transport protocol of a port mapping, lower-case on the wire as kubelet sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// A Kubernetes `containerPort.protocol` (`TCP`, `UDP`, `SCTP`; empty means TCP).
    pub fn from_kubernetes(s: &str) -> Option<Protocol> {
        match s {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One `portMappings` entry (the portmap plugin's capability).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: Protocol,
    /// Host address to bind; empty for every address.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The bandwidth plugin's capability, in bits per second (bursts in bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    /// Ingress rate limit; 0 for none.
    pub ingress_rate: u64,
    /// Ingress burst; 0 when there is no rate.
    pub ingress_burst: u64,
    /// Egress rate limit; 0 for none.
    pub egress_rate: u64,
    /// Egress burst; 0 when there is no rate.
    pub egress_burst: u64,
}

/// The capability arguments of one pod. Only the keys a plugin declares in its
/// `capabilities` reach it, in `runtimeConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityArgs {
    /// `portMappings`: sent only when not empty.
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    /// `bandwidth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
}

impl CapabilityArgs {
    /// The arguments as the `runtimeConfig` keys they become.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The keys a plugin with `capabilities` receives.
    pub fn filtered<'a>(&self, capabilities: impl Iterator<Item = &'a str>) -> Map<String, Value> {
        let all = self.to_map();
        capabilities
            .filter_map(|c| all.get(c).map(|v| (c.to_string(), v.clone())))
            .collect()
    }

    /// Refuse values the plugins would turn into broken iptables rules: zero ports, a host IP
    /// that is not an address. `Err` names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, m) in self.port_mappings.iter().enumerate() {
            if m.host_port == 0 {
                return Err((
                    format!("portMappings[{i}].hostPort"),
                    "must be 1-65535".into(),
                ));
            }
            if m.container_port == 0 {
                return Err((
                    format!("portMappings[{i}].containerPort"),
                    "must be 1-65535".into(),
                ));
            }
            if !m.host_ip.is_empty() && m.host_ip.parse::<IpAddr>().is_err() {
                return Err((
                    format!("portMappings[{i}].hostIP"),
                    format!("`{}` is not an IP address", m.host_ip),
                ));
            }
        }
        Ok(())
    }
}

/// A bandwidth annotation kubelet would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading pod bandwidth annotations: `{annotation}: {value}`: {reason}")]
pub struct BandwidthError {
    /// The annotation key.
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// kubelet's reason.
    pub reason: String,
}

/// kubelet's bounds (`validateBandwidthIsReasonable`): 1k to 1P bits per second.
const MIN_BANDWIDTH: i64 = 1_000;
const MAX_BANDWIDTH: i64 = 1_000_000_000_000_000;

/// The bandwidth capability from a pod's `kubernetes.io/ingress-bandwidth` and
/// `kubernetes.io/egress-bandwidth` annotations, as containerd's CRI computes it: each present
/// annotation is a quantity (`10M`, `1Gi`) in bits per second, from 1k to 1P, and its burst is
/// 2^32-1 (no burst limit). `None` when neither annotation is set.
///
/// `quantity_value` turns a quantity string into its integer value rounded up (apimachinery's
/// `Quantity.Value()`); the caller passes the project's one quantity parser, and its error
/// text becomes the reason.
pub fn bandwidth_from_annotations(
    annotations: &BTreeMap<String, String>,
    quantity_value: impl Fn(&str) -> Result<i64, String>,
) -> Result<Option<Bandwidth>, BandwidthError> {
    let read = |key: &str| -> Result<Option<u64>, BandwidthError> {
        let Some(value) = annotations.get(key) else {
            return Ok(None);
        };
        let err = |reason: String| BandwidthError {
            annotation: key.to_string(),
            value: value.clone(),
            reason,
        };
        let bits = quantity_value(value).map_err(err)?;
        if bits < MIN_BANDWIDTH {
            return Err(err("resource is unreasonably small (< 1kbit)".into()));
        }
        if bits > MAX_BANDWIDTH {
            return Err(err("resource is unreasonably large (> 1Pbit)".into()));
        }
        Ok(Some(bits as u64))
    };
    let ingress = read(INGRESS_BANDWIDTH_ANNOTATION)?;
    let egress = read(EGRESS_BANDWIDTH_ANNOTATION)?;
    if ingress.is_none() && egress.is_none() {
        return Ok(None);
    }
    let burst = |rate: Option<u64>| rate.map_or(0, |_| u64::from(u32::MAX));
    Ok(Some(Bandwidth {
        ingress_rate: ingress.unwrap_or(0),
        ingress_burst: burst(ingress),
        egress_rate: egress.unwrap_or(0),
        egress_burst: burst(egress),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test stand-in for the project's quantity parser: integers with an optional decimal
    /// suffix k/M/G/T/P or binary Ki/Mi, rounded up.
    fn value(s: &str) -> Result<i64, String> {
        let (num, mult) = [
            ("Ki", 1024.0),
            ("Mi", 1048576.0),
            ("k", 1e3),
            ("M", 1e6),
            ("G", 1e9),
            ("T", 1e12),
            ("P", 1e15),
        ]
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
        let n: f64 = num
            .parse()
            .map_err(|_| "quantities must match the regular expression".to_string())?;
        Ok((n * mult).ceil() as i64)
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bandwidth_annotations_become_bits_per_second() {
        assert_eq!(
            bandwidth_from_annotations(&annotations(&[]), value),
            Ok(None)
        );
        let both = annotations(&[
            (INGRESS_BANDWIDTH_ANNOTATION, "10M"),
            (EGRESS_BANDWIDTH_ANNOTATION, "1Mi"),
        ]);
        assert_eq!(
            bandwidth_from_annotations(&both, value).unwrap(),
            Some(Bandwidth {
                ingress_rate: 10_000_000,
                ingress_burst: 4_294_967_295,
                egress_rate: 1_048_576,
                egress_burst: 4_294_967_295,
            })
        );
        let ingress_only = annotations(&[(INGRESS_BANDWIDTH_ANNOTATION, "1k")]);
        let bw = bandwidth_from_annotations(&ingress_only, value)
            .unwrap()
            .unwrap();
        assert_eq!(
            (bw.ingress_rate, bw.egress_rate, bw.egress_burst),
            (1000, 0, 0)
        );
        let max = annotations(&[(EGRESS_BANDWIDTH_ANNOTATION, "1P")]);
        assert!(bandwidth_from_annotations(&max, value).is_ok());
    }

    #[test]
    fn kubelet_refuses_unreasonable_bandwidth() {
        for (v, reason) in [
            ("999", "unreasonably small (< 1kbit)"),
            ("0.5k", "unreasonably small (< 1kbit)"),
            ("2P", "unreasonably large (> 1Pbit)"),
            ("fast", "regular expression"),
        ] {
            let a = annotations(&[(EGRESS_BANDWIDTH_ANNOTATION, v)]);
            let err = bandwidth_from_annotations(&a, value).unwrap_err();
            assert_eq!(err.annotation, EGRESS_BANDWIDTH_ANNOTATION);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!(
                    "reading pod bandwidth annotations: `kubernetes.io/egress-bandwidth: {v}`: "
                )),
                "{msg}"
            );
            assert!(msg.contains(reason), "{msg}");
        }
    }

    #[test]
    fn port_mappings_serialize_as_kubelet_sends_them() {
        let caps = CapabilityArgs {
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::from_kubernetes("TCP").unwrap(),
                    host_ip: String::new(),
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::from_kubernetes("UDP").unwrap(),
                    host_ip: "127.0.0.1".into(),
                },
            ],
            bandwidth: None,
        };
        assert_eq!(
            Value::Object(caps.to_map()),
            serde_json::json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
            ]})
        );
        assert_eq!(Protocol::from_kubernetes(""), Some(Protocol::Tcp));
        assert_eq!(Protocol::from_kubernetes("tcp"), None);
        // Empty arguments are not sent at all.
        assert!(CapabilityArgs::default().to_map().is_empty());
    }

    #[test]
    fn only_declared_capabilities_pass() {
        let caps = CapabilityArgs {
            port_mappings: vec![PortMapping {
                host_port: 1,
                container_port: 2,
                protocol: Protocol::Tcp,
                host_ip: String::new(),
            }],
            bandwidth: Some(Bandwidth::default()),
        };
        let m = caps.filtered(["bandwidth", "ips"].into_iter());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["bandwidth"]);
        assert!(caps.filtered(std::iter::empty()).is_empty());
    }

    #[test]
    fn port_mapping_validation_names_the_field() {
        let mut caps = CapabilityArgs::default();
        let m = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: String::new(),
        };
        caps.port_mappings = vec![
            m.clone(),
            PortMapping {
                host_port: 0,
                ..m.clone()
            },
        ];
        assert_eq!(caps.validate().unwrap_err().0, "portMappings[1].hostPort");
        caps.port_mappings = vec![PortMapping {
            container_port: 0,
            ..m.clone()
        }];
        assert_eq!(
            caps.validate().unwrap_err().0,
            "portMappings[0].containerPort"
        );
        caps.port_mappings = vec![PortMapping {
            host_ip: "1.2.3.4 -j ACCEPT".into(),
            ..m.clone()
        }];
        assert_eq!(caps.validate().unwrap_err().0, "portMappings[0].hostIP");
        caps.port_mappings = vec![PortMapping {
            host_ip: "::1".into(),
            ..m
        }];
        assert!(caps.validate().is_ok());
    }
}
