//! The result of an ADD (spec 1.0 "Success" object), read from 1.0.0, 0.4.0 and 0.3.x plugins.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ipnet::IpNet;
use crate::version::{SpecVersion, is_supported};

/// What a plugin chain gave the sandbox: interfaces, addresses, routes and DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The spec version the result is written in.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created; `sandbox` is set on the ones inside the pod's netns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned; `interface` indexes [`CniResult::interfaces`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings the plugin suggests.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`eth0`, `veth1234`, `peapod0`).
    pub name: String,
    /// Hardware address, when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path for an interface inside the sandbox; empty for host-side interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, e.g. `10.85.0.2/16`.
    pub address: IpNet,
    /// The default gateway for this address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into the result's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop; the default gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when the plugin suggested nothing.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Index of the sandbox-side interface called `ifname`.
    pub fn sandbox_interface(&self, ifname: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == ifname && !i.sandbox.is_empty())
    }

    /// The pod's addresses: every address on the sandbox-side interface `ifname`, in the
    /// plugin's order. The first one is the pod IP.
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpAddr> {
        let Some(idx) = self.sandbox_interface(ifname) else {
            return Vec::new();
        };
        self.ips
            .iter()
            .filter(|ip| ip.interface == Some(idx))
            .map(|ip| ip.address.addr())
            .collect()
    }

    /// The pod IP: the first address on the sandbox-side interface `ifname`.
    pub fn pod_ip(&self, ifname: &str) -> Option<IpAddr> {
        self.pod_ips(ifname).into_iter().next()
    }

    /// The result as JSON written in spec `version` (what a plugin configured at `version`
    /// expects as `prevResult`): before 1.0.0, every address carries `"version": "4"|"6"`.
    pub fn to_value(&self, version: &str) -> Value {
        let mut me = self.clone();
        me.cni_version = version.to_string();
        // Serializing plain data with string keys cannot fail.
        let mut v = serde_json::to_value(&me).unwrap_or(Value::Null);
        let old = SpecVersion::parse(version).is_some_and(|v| v < SpecVersion(1, 0, 0));
        if old && let Some(ips) = v.get_mut("ips").and_then(Value::as_array_mut) {
            for (ip, typed) in ips.iter_mut().zip(&self.ips) {
                let family = if typed.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                };
                if let Some(obj) = ip.as_object_mut() {
                    obj.insert("version".into(), Value::String(family.into()));
                }
            }
        }
        v
    }
}

/// A result as a plugin wrote it (kept verbatim to pass on as `prevResult` and to cache) and as
/// read.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResult {
    /// The JSON object, with `cniVersion` filled in when the plugin left it out.
    pub raw: Value,
    /// The typed reading.
    pub typed: CniResult,
}

impl RawResult {
    /// The result as a plugin configured at `version` must receive it.
    pub fn as_version(&self, version: &str) -> Value {
        if self.typed.cni_version == version {
            self.raw.clone()
        } else {
            self.typed.to_value(version)
        }
    }
}

/// Read a success result. A result without `cniVersion` is taken to be in the config's version
/// (`conf_version`), as libcni does for old plugins. Errors say what is wrong, for the caller
/// to wrap with the plugin's name.
pub fn parse_result(stdout: &[u8], conf_version: &str) -> Result<RawResult, String> {
    let mut raw: Value =
        serde_json::from_slice(stdout).map_err(|e| format!("result is not JSON: {e}"))?;
    let Some(obj) = raw.as_object_mut() else {
        return Err("result is not a JSON object".into());
    };
    let version = match obj.get("cniVersion") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::String(_)) | Some(Value::Null) => {
            obj.insert("cniVersion".into(), Value::String(conf_version.into()));
            conf_version.to_string()
        }
        Some(other) => {
            return Err(format!(
                "result field `cniVersion` is not a string: {other}"
            ));
        }
    };
    if version == "0.1.0" || version == "0.2.0" {
        return Err(format!(
            "result is in spec version {version} (ip4/ip6 format), which peapod does not read; \
             configure the network with cniVersion 0.3.0 or newer"
        ));
    }
    if !is_supported(&version) {
        return Err(format!("result is in unsupported spec version `{version}`"));
    }
    let typed: CniResult =
        serde_json::from_value(raw.clone()).map_err(|e| format!("invalid result: {e}"))?;
    check_result(&typed, &raw)?;
    Ok(RawResult { raw, typed })
}

/// The cross-field rules serde cannot express.
fn check_result(r: &CniResult, raw: &Value) -> Result<(), String> {
    for (i, ip) in r.ips.iter().enumerate() {
        if let Some(idx) = ip.interface
            && idx >= r.interfaces.len()
        {
            return Err(format!(
                "invalid result: ips[{i}].interface {idx} is out of range ({} interfaces)",
                r.interfaces.len()
            ));
        }
        if let Some(gw) = ip.gateway
            && gw.is_ipv4() != ip.address.addr().is_ipv4()
        {
            return Err(format!(
                "invalid result: ips[{i}].gateway {gw} is not in the family of {}",
                ip.address
            ));
        }
        // 0.3.x/0.4.0 tag each address with its family; a wrong tag is a broken plugin.
        if let Some(tag) = raw["ips"][i].get("version") {
            let want = if ip.address.addr().is_ipv4() {
                "4"
            } else {
                "6"
            };
            if tag.as_str() != Some(want) {
                return Err(format!(
                    "invalid result: ips[{i}].version {tag} does not match address {}",
                    ip.address
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"cniVersion":"1.0.0",
        "interfaces":[{"name":"peapod0","mac":"aa:bb:cc:dd:ee:01"},
                      {"name":"veth1","mac":"aa:bb:cc:dd:ee:02"},
                      {"name":"eth0","mac":"aa:bb:cc:dd:ee:03","sandbox":"/run/netns/x"}],
        "ips":[{"address":"10.85.0.7/16","gateway":"10.85.0.1","interface":2},
               {"address":"fd85::7/64","interface":2}],
        "routes":[{"dst":"0.0.0.0/0"}],
        "dns":{"nameservers":["10.85.0.1"]}}"#;

    #[test]
    fn reads_a_1_0_result_and_finds_the_pod_ips() {
        let r = parse_result(V1.as_bytes(), "1.0.0").unwrap();
        assert_eq!(r.typed.interfaces.len(), 3);
        assert_eq!(r.typed.sandbox_interface("eth0"), Some(2));
        assert_eq!(
            r.typed.pod_ips("eth0"),
            vec![
                "10.85.0.7".parse::<IpAddr>().unwrap(),
                "fd85::7".parse().unwrap()
            ]
        );
        assert_eq!(r.typed.pod_ip("eth0"), Some("10.85.0.7".parse().unwrap()));
        assert_eq!(r.typed.pod_ip("eth1"), None);
        assert_eq!(r.typed.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.typed.dns.nameservers, vec!["10.85.0.1"]);
    }

    #[test]
    fn the_host_side_interface_is_not_the_pod() {
        // An address on a host-side interface of the same name is not a pod IP.
        let r = parse_result(
            br#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],
                 "ips":[{"address":"10.0.0.1/24","interface":0}]}"#,
            "1.0.0",
        )
        .unwrap();
        assert!(r.typed.pod_ips("eth0").is_empty());
    }

    #[test]
    fn reads_0_4_and_0_3_results_and_converts_between_versions() {
        let old = r#"{"cniVersion":"0.4.0",
            "interfaces":[{"name":"eth0","sandbox":"/proc/1/ns/net"}],
            "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}]}"#;
        let r = parse_result(old.as_bytes(), "0.4.0").unwrap();
        assert_eq!(r.typed.pod_ip("eth0"), Some("10.1.0.5".parse().unwrap()));
        // Same version: passed on verbatim.
        assert_eq!(r.as_version("0.4.0"), r.raw);
        // To 1.0.0: the family tag goes away.
        let up = r.as_version("1.0.0");
        assert_eq!(up["cniVersion"], "1.0.0");
        assert!(up["ips"][0].get("version").is_none());
        // From 1.0.0 down to 0.3.1: tagged.
        let down = parse_result(V1.as_bytes(), "1.0.0")
            .unwrap()
            .as_version("0.3.1");
        assert_eq!(down["cniVersion"], "0.3.1");
        assert_eq!(down["ips"][0]["version"], "4");
        assert_eq!(down["ips"][1]["version"], "6");
        let back = parse_result(down.to_string().as_bytes(), "0.3.1").unwrap();
        assert_eq!(
            back.typed.ips,
            parse_result(V1.as_bytes(), "1.0.0").unwrap().typed.ips
        );
    }

    #[test]
    fn a_result_without_version_takes_the_config_version() {
        let r = parse_result(br#"{"ips":[]}"#, "0.4.0").unwrap();
        assert_eq!(r.typed.cni_version, "0.4.0");
        assert_eq!(r.raw["cniVersion"], "0.4.0");
    }

    #[test]
    fn bad_results_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "not JSON"),
            ("null", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"cniVersion":7}"#, "`cniVersion` is not a string"),
            (
                r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#,
                "ip4/ip6",
            ),
            (
                r#"{"cniVersion":"9.9.9"}"#,
                "unsupported spec version `9.9.9`",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
                "invalid result",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","interface":1}]}"#,
                "ips[0].interface 1 is out of range (0 interfaces)",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","gateway":"fd00::1"}]}"#,
                "not in the family",
            ),
            (
                r#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.3/24"}]}"#,
                "does not match address",
            ),
        ];
        for (input, want) in cases {
            let err = parse_result(input.as_bytes(), "1.0.0").unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
    }
}
