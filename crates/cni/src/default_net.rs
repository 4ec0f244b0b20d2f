//! peapod's default network, written into the conf dir when it holds no config: bridge
//! `peapod0` with host-local IPAM on a private /16 that no host route touches, then portmap and
//! firewall.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::{ConfigError, NetworkConfigList, config_files, load_default};
use crate::ipnet::IpNet;
use crate::version::CURRENT_VERSION;
use peapod_sys::fs::write_atomic_mode;

/// Name of the default network (part of every cache key and iptables comment).
pub const DEFAULT_NETWORK_NAME: &str = "peapod";
/// Name of the default network's bridge.
pub const DEFAULT_BRIDGE: &str = "peapod0";
/// File the default network is written to. `10-` sorts it before most other configs, but it is
/// only written into a dir without any config.
pub const DEFAULT_CONF_FILE: &str = "10-peapod.conflist";

/// /16s other tools use by default, never chosen even when no route shows them today: podman
/// and containerd's examples (10.88/16), podman's user networks (10.89/16), kubeadm's service
/// range (10.96/12), flannel and kind pods (10.244/16), docker0 (172.17/16).
const AVOID: [(Ipv4Addr, u8); 4] = [
    (Ipv4Addr::new(10, 88, 0, 0), 15),
    (Ipv4Addr::new(10, 96, 0, 0), 12),
    (Ipv4Addr::new(10, 244, 0, 0), 16),
    (Ipv4Addr::new(172, 17, 0, 0), 16),
];

/// The parameters of the generated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// Network name (`peapod`).
    pub name: String,
    /// Bridge name (`peapod0`).
    pub bridge: String,
    /// The pod subnet.
    pub subnet: IpNet,
    /// Spec version to write (negotiated with the plugins' VERSION answers).
    pub cni_version: String,
    /// host-local's `dataDir`; its default `/var/lib/cni/networks/<name>` when `None`.
    pub data_dir: Option<PathBuf>,
}

impl DefaultNetwork {
    /// The default network on `subnet`, in the newest spec version.
    pub fn new(subnet: IpNet) -> DefaultNetwork {
        DefaultNetwork {
            name: DEFAULT_NETWORK_NAME.into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: subnet.network(),
            cni_version: CURRENT_VERSION.into(),
            data_dir: None,
        }
    }

    /// The default network on the first free candidate /16 of this host, reading the routes
    /// under `proc_net` (`/proc/net`); `conf_dir` is named in the error when none is free.
    pub fn for_host(proc_net: &Path, conf_dir: &Path) -> Result<DefaultNetwork, ConfigError> {
        let routes = read_host_routes(proc_net)?;
        let subnet =
            choose_subnet(&routes, DEFAULT_BRIDGE).ok_or_else(|| ConfigError::NoFreeSubnet {
                dir: conf_dir.to_path_buf(),
            })?;
        Ok(DefaultNetwork::new(subnet))
    }

    /// The network configuration list.
    pub fn to_json(&self) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": self.subnet.to_string() }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
        });
        if let Some(d) = &self.data_dir {
            ipam["dataDir"] = Value::String(d.to_string_lossy().into_owned());
        }
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                {
                    "type": "portmap",
                    "capabilities": { "portMappings": true },
                    "snat": true,
                },
                { "type": "firewall" },
            ],
        })
    }

    /// The list, parsed as if read from `origin`.
    pub fn to_list(&self, origin: &Path) -> Result<NetworkConfigList, ConfigError> {
        let bytes = serde_json::to_vec_pretty(&self.to_json()).unwrap_or_default();
        NetworkConfigList::from_list_bytes(&bytes, origin)
    }
}

/// The network to use from `conf_dir`: its first config, or, when it holds none, the default
/// network from `make` written to `conf_dir/10-peapod.conflist` (atomically, mode 0644). The
/// flag says whether it was written now.
pub fn ensure_default_network(
    conf_dir: &Path,
    make: impl FnOnce() -> Result<DefaultNetwork, ConfigError>,
) -> Result<(NetworkConfigList, bool), ConfigError> {
    if !config_files(conf_dir)?.is_empty() {
        return Ok((load_default(conf_dir)?, false));
    }
    let net = make()?;
    let path = conf_dir.join(DEFAULT_CONF_FILE);
    let write_err = |source| ConfigError::Write {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(conf_dir).map_err(write_err)?;
    let mut bytes = serde_json::to_vec_pretty(&net.to_json()).unwrap_or_default();
    bytes.push(b'\n');
    write_atomic_mode(&path, &bytes, 0o644).map_err(write_err)?;
    // Another writer may have raced us with a config of its own: the rule still decides.
    Ok((load_default(conf_dir)?, true))
}

/// A route or local address of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// The destination (or address, as /32).
    pub net: IpNet,
    /// The device, when the source names it.
    pub iface: Option<String>,
}

/// The host's IPv4 routes and addresses, without `ip` or netlink: `route` (main table, with
/// devices) and `fib_trie` (every table, including local addresses) under `proc_net`.
pub fn read_host_routes(proc_net: &Path) -> Result<Vec<HostRoute>, ConfigError> {
    let read = |name: &str| {
        let path = proc_net.join(name);
        fs::read_to_string(&path).map_err(|source| ConfigError::HostRoutes { path, source })
    };
    let mut routes = parse_proc_net_route(&read("route")?);
    // fib_trie is absent on kernels without CONFIG_IP_FIB_TRIE stats; the main table suffices.
    match read("fib_trie") {
        Ok(text) => routes.extend(parse_fib_trie(&text)),
        Err(ConfigError::HostRoutes { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(routes)
}

/// `/proc/net/route`: `Iface Destination Gateway Flags ... Mask ...`, addresses as the kernel's
/// native-endian hex of the network-order value.
pub fn parse_proc_net_route(text: &str) -> Vec<HostRoute> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dst, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
            let prefix = u32::from(mask).count_ones() as u8;
            Some(HostRoute {
                net: IpNet::v4(dst, prefix)?,
                iface: Some((*iface).to_string()),
            })
        })
        .collect()
}

/// `/proc/net/fib_trie`: a leaf line `|-- 192.0.2.2` followed by one line per prefix length
/// (`/32 host LOCAL`, `/24 link UNICAST`).
pub fn parse_fib_trie(text: &str) -> Vec<HostRoute> {
    let mut leaf: Option<Ipv4Addr> = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("|-- ") {
            leaf = addr.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix('/') {
            let prefix = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            if let (Some(addr), Some(prefix)) = (leaf, prefix)
                && let Some(net) = IpNet::v4(addr, prefix)
            {
                out.push(HostRoute { net, iface: None });
            }
        } else {
            leaf = None;
        }
    }
    out
}

/// The first candidate /16 (10.85/16 ... 10.255/16, then 172.16/16 ... 172.31/16, skipping
/// ranges other tools use by default) that overlaps no host route or address. The default route
/// does not count, nor does anything inside a route on `own_bridge` (a default network written
/// earlier keeps its subnet).
pub fn choose_subnet(routes: &[HostRoute], own_bridge: &str) -> Option<IpNet> {
    let own: Vec<IpNet> = routes
        .iter()
        .filter(|r| r.iface.as_deref() == Some(own_bridge) && r.net.prefix() > 0)
        .map(|r| r.net.network())
        .collect();
    let taken: Vec<IpNet> = routes
        .iter()
        .filter(|r| r.net.prefix() > 0)
        .filter(|r| {
            !own.iter()
                .any(|o| o.prefix() <= r.net.prefix() && o.contains(r.net.addr()))
        })
        .map(|r| r.net.network())
        .chain(AVOID.iter().filter_map(|(a, p)| IpNet::v4(*a, *p)))
        .collect();
    let candidates = (85..=255u8)
        .map(|b| Ipv4Addr::new(10, b, 0, 0))
        .chain((16..=31u8).map(|b| Ipv4Addr::new(172, b, 0, 0)));
    candidates
        .filter_map(|a| IpNet::v4(a, 16))
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.85.0.1
        /32 host LOCAL
";

    fn nets(routes: &[HostRoute]) -> Vec<String> {
        routes.iter().map(|r| r.net.to_string()).collect()
    }

    #[test]
    fn parses_proc_net_route() {
        let r = parse_proc_net_route(ROUTE);
        assert_eq!(nets(&r), ["0.0.0.0/0", "192.0.2.0/24"]);
        assert_eq!(r[1].iface.as_deref(), Some("eth0"));
    }

    #[test]
    fn parses_fib_trie() {
        let r = parse_fib_trie(FIB_TRIE);
        assert_eq!(
            nets(&r),
            [
                "0.0.0.0/0",
                "127.0.0.0/8",
                "127.0.0.1/32",
                "192.0.2.0/24",
                "192.0.2.2/32",
                "10.85.0.1/32"
            ]
        );
    }

    fn route(net: &str, iface: Option<&str>) -> HostRoute {
        HostRoute {
            net: net.parse().unwrap(),
            iface: iface.map(String::from),
        }
    }

    #[test]
    fn the_choice_avoids_host_routes_addresses_and_other_tools() {
        let pick = |routes: &[HostRoute]| choose_subnet(routes, "peapod0").unwrap().to_string();
        // The default route does not count.
        assert_eq!(pick(&[route("0.0.0.0/0", Some("eth0"))]), "10.85.0.0/16");
        // A route inside the candidate, a wider one, and a bare address all collide.
        assert_eq!(pick(&[route("10.85.3.0/24", Some("eth1"))]), "10.86.0.0/16");
        assert_eq!(
            pick(&[route("10.85.0.0/16", None), route("10.86.0.0/16", None)]),
            "10.87.0.0/16"
        );
        assert_eq!(pick(&[route("10.85.9.9/32", None)]), "10.86.0.0/16");
        // 10.88/16 and 10.89/16 (podman) are skipped.
        assert_eq!(pick(&[route("10.84.0.0/14", None)]), "10.90.0.0/16");
        // 10.96/12 (kubeadm services) too.
        assert_eq!(pick(&[route("10.80.0.0/12", None)]), "10.112.0.0/16");
        // All of 10/8 taken: 172.16/16; docker0's 172.17/16 is skipped.
        assert_eq!(
            pick(&[route("10.0.0.0/8", None), route("172.16.0.0/16", None)]),
            "172.18.0.0/16"
        );
        // Nothing free.
        assert_eq!(
            choose_subnet(
                &[route("10.0.0.0/8", None), route("172.16.0.0/12", None)],
                "peapod0"
            ),
            None
        );
    }

    #[test]
    fn the_own_bridge_keeps_its_subnet() {
        // A peapod0 left from an earlier default network: its route and address are ours.
        let routes = [
            route("10.85.0.0/16", Some("peapod0")),
            route("10.85.0.1/32", None),
            route("192.0.2.0/24", Some("eth0")),
        ];
        assert_eq!(
            choose_subnet(&routes, "peapod0").unwrap().to_string(),
            "10.85.0.0/16"
        );
        // Someone else's bridge on the same range is not.
        assert_eq!(
            choose_subnet(&routes, "other0").unwrap().to_string(),
            "10.86.0.0/16"
        );
    }

    #[test]
    fn reads_the_host_through_a_proc_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("route"), ROUTE).unwrap();
        assert_eq!(read_host_routes(dir.path()).unwrap().len(), 2);
        fs::write(dir.path().join("fib_trie"), FIB_TRIE).unwrap();
        let routes = read_host_routes(dir.path()).unwrap();
        // 10.85.0.1 is a local address here (no device known): 10.85/16 is taken.
        assert_eq!(
            choose_subnet(&routes, "peapod0").unwrap().to_string(),
            "10.86.0.0/16"
        );
        let net = DefaultNetwork::for_host(dir.path(), Path::new("/etc/cni/net.d")).unwrap();
        assert_eq!(net.subnet.to_string(), "10.86.0.0/16");
        let err = read_host_routes(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("read host routes `"), "{err}");
        assert!(err.contains("nope/route"), "{err}");
    }

    #[test]
    fn the_generated_list_has_the_default_chain() {
        let net = DefaultNetwork::new("10.85.0.0/16".parse().unwrap());
        let l = net.to_list(Path::new("/x/10-peapod.conflist")).unwrap();
        assert_eq!(
            (l.name.as_str(), l.cni_version.as_str()),
            ("peapod", "1.0.0")
        );
        let types: Vec<_> = l.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
        assert_eq!(types, ["bridge", "portmap", "firewall"]);
        let bridge = &l.plugins[0].raw;
        assert_eq!(bridge["bridge"], "peapod0");
        for flag in ["isGateway", "ipMasq", "hairpinMode"] {
            assert_eq!(bridge[flag], true, "{flag}");
        }
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.85.0.0/16");
        assert!(bridge["ipam"].get("dataDir").is_none());
        assert_eq!(l.plugins[1].raw["snat"], true);
        assert_eq!(
            l.plugins[1].enabled_capabilities().collect::<Vec<_>>(),
            ["portMappings"]
        );
    }

    #[test]
    fn ensure_writes_only_into_an_empty_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let make = || Ok(DefaultNetwork::new("10.85.0.0/16".parse().unwrap()));
        let (l, created) = ensure_default_network(&conf, make).unwrap();
        assert!(created);
        assert_eq!(l.name, "peapod");
        let file = conf.join(DEFAULT_CONF_FILE);
        assert_eq!(l.origin, file);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        // Present now: loaded, not rewritten, and `make` is not consulted.
        let (again, created) =
            ensure_default_network(&conf, || panic!("must not generate")).unwrap();
        assert!(!created);
        assert_eq!(again.plugins, l.plugins);
        // A user's config wins when it sorts first; and any config stops generation.
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(
            other.join("99-mine.conflist"),
            r#"{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        let (mine, created) =
            ensure_default_network(&other, || panic!("must not generate")).unwrap();
        assert_eq!((mine.name.as_str(), created), ("mine", false));
        // A failing choice writes nothing.
        let empty = dir.path().join("empty");
        let err = ensure_default_network(&empty, || {
            Err(ConfigError::NoFreeSubnet { dir: empty.clone() })
        })
        .unwrap_err();
        assert!(err.to_string().contains("no free private /16"), "{err}");
        assert!(config_files(&empty).unwrap().is_empty());
    }
}
