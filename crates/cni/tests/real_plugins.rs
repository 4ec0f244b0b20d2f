//! The real Debian plugin chain (bridge + host-local, portmap, firewall) in a netns of our own.
//! Needs root, `ip`, `iptables-save`, `busybox` and the `containernetworking-plugins` package;
//! skipped otherwise, and failing instead under `PEAPOD_MUST_WORK=1` (CI).
//!
//! Everything is named uniquely (netns, bridge, /24, network, container id, host-local dataDir,
//! cache dir) and removed by a Drop guard even when an assertion fails, so tests of other
//! helpers on this host are never touched.
//!
//! Run: `cargo test -p peapod-cni --test real_plugins -- --test-threads=1`; the benchmark:
//! `cargo test -p peapod-cni --release --test real_plugins -- --ignored --nocapture bench`.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use peapod_cni::default_net::{HostRoute, read_host_routes};
use peapod_cni::exec::DEFAULT_PLUGIN_DIRS;
use peapod_cni::{
    CapabilityArgs, Cni, CniResult, DefaultNetwork, ExecFailure, IpNet, NetworkConfigList,
    PluginExec, PortMapping, ProcessExec, Protocol, RuntimeConf, plugin_dirs,
};

const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "firewall"];

/// Why the test cannot run here, if it cannot.
fn missing_requirement() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    let dirs = plugin_dirs(None);
    for p in PLUGINS {
        if !dirs.iter().any(|d| d.join(p).is_file()) {
            return Some(format!(
                "plugin `{p}` not in {DEFAULT_PLUGIN_DIRS:?}: apt-get install -y containernetworking-plugins"
            ));
        }
    }
    for tool in ["ip", "iptables-save", "busybox"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// `true` when the test should run; panics under PEAPOD_MUST_WORK=1 when it cannot.
fn can_run() -> bool {
    match missing_requirement() {
        None => true,
        Some(why) if std::env::var("PEAPOD_MUST_WORK").as_deref() == Ok("1") => {
            panic!("cannot run the real plugin test: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Run a command; its success and stdout+stderr.
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(args: &[&str]) -> String {
    let (ok, out) = run(args);
    assert!(ok, "{args:?} failed: {out}");
    out
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A private /24 in 10.199/16 that no host route or address touches, chosen from the pid so
/// concurrent runs differ.
fn free_subnet(routes: &[HostRoute], salt: u32) -> IpNet {
    (0..256u32)
        .map(|i| ((std::process::id() + salt * 37 + i) % 256) as u8)
        .filter_map(|b| IpNet::v4(std::net::Ipv4Addr::new(10, 199, b, 0), 24))
        .find(|c| {
            routes
                .iter()
                .all(|r| r.net.prefix() == 0 || !r.net.overlaps(c))
        })
        .expect("a free /24 in 10.199.0.0/16")
}

/// One test's world: netns, bridge, dirs; torn down on drop, pass or fail.
struct World {
    dir: tempfile::TempDir,
    netns: String,
    bridge: String,
    id: String,
    net: NetworkConfigList,
    cni: Cni,
    rt: RuntimeConf,
}

impl World {
    fn new(extra_plugins: &[serde_json::Value], extra_dir: Option<PathBuf>) -> World {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let netns = format!("peapod-cni-{pid}-{n}");
        // IFNAMSIZ: at most 15 characters.
        let bridge = format!("pcni{pid}{n}");
        assert!(bridge.len() <= 15);
        let id = format!("cnitest-{pid}-{n}");
        let dir = tempfile::tempdir().unwrap();
        let routes = read_host_routes(Path::new("/proc/net")).unwrap();
        let mut def = DefaultNetwork::new(free_subnet(&routes, n));
        def.name = format!("pcni-{pid}-{n}");
        def.bridge = bridge.clone();
        def.data_dir = Some(dir.path().join("ipam"));
        let mut dirs = plugin_dirs(None);
        dirs.extend(extra_dir);
        let cni = Cni::new(dirs, dir.path().join("cache"));
        def.cni_version = cni
            .negotiate_version(&PLUGINS)
            .expect("the plugins' VERSION answers")
            .to_string();
        let mut json = def.to_json();
        json["plugins"]
            .as_array_mut()
            .unwrap()
            .extend(extra_plugins.iter().cloned());
        let net = NetworkConfigList::from_list_bytes(
            json.to_string().as_bytes(),
            &dir.path().join("net.conflist"),
        )
        .unwrap();
        let rt = RuntimeConf::new(id.clone(), format!("/run/netns/{netns}")).with_kubernetes_args(
            "default",
            "cni-test",
            &id,
            "uid-cni-test",
        );
        let world = World {
            dir,
            netns,
            bridge,
            id,
            net,
            cni,
            rt,
        };
        must(&["ip", "netns", "add", &world.netns]);
        world
    }

    fn alloc_dir(&self) -> PathBuf {
        self.dir.path().join("ipam").join(&self.net.name)
    }

    /// Addresses host-local holds for this network (files named after IPs).
    fn allocations(&self) -> Vec<String> {
        fs::read_dir(self.alloc_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every iptables rule (all tables) mentioning `needle`.
    fn rules_mentioning(&self, needle: &str) -> Vec<String> {
        must(&["iptables-save"])
            .lines()
            .filter(|l| l.contains(needle))
            .map(String::from)
            .collect()
    }

    fn in_netns(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec!["ip", "netns", "exec", &self.netns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// The host side of the pod's veth (the result's interface that is neither the bridge nor
    /// in the sandbox).
    fn host_veth(&self, r: &CniResult) -> String {
        r.interfaces
            .iter()
            .find(|i| i.sandbox.is_empty() && i.name != self.bridge)
            .expect("a host-side veth in the result")
            .name
            .clone()
    }

    /// Links enslaved to our bridge.
    fn bridge_ports(&self) -> String {
        run(&["ip", "-o", "link", "show", "master", &self.bridge]).1
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.cni.del(&self.net, &self.rt);
        let _ = run(&["ip", "netns", "del", &self.netns]);
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}

#[test]
fn real_chain_add_check_del() {
    if !can_run() {
        return;
    }
    let w = World::new(&[], None);
    let r = w.cni.add(&w.net, &w.rt).unwrap();
    let ip = r.pod_ip("eth0").expect("a pod IP on eth0");
    let subnet = w.net.plugins[0].raw["ipam"]["ranges"][0][0]["subnet"]
        .as_str()
        .unwrap()
        .parse::<IpNet>()
        .unwrap();
    assert!(subnet.contains(ip), "{ip} not in {subnet}");
    // eth0 in the netns holds the pod IP.
    let (ok, addrs) = w.in_netns(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(ok && addrs.contains(&format!("inet {ip}/24")), "{addrs}");
    // The host reaches it over the bridge.
    let ping = run(&["busybox", "ping", "-c", "1", "-W", "5", &ip.to_string()]);
    assert!(ping.0, "ping {ip}: {}", ping.1);
    // What ADD left on the host: a veth on our bridge, an allocation, rules naming the
    // container and its IP (positive controls for the checks after DEL), and the cache.
    let veth = w.host_veth(&r);
    assert!(run(&["ip", "link", "show", &veth]).0);
    assert_eq!(w.allocations(), [ip.to_string()]);
    assert!(!w.rules_mentioning(&w.id).is_empty());
    assert!(!w.rules_mentioning(&format!("{ip}/32")).is_empty());
    let cache = w.cni.cache_path(&w.net.name, &w.rt);
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o600
    );

    w.cni.check(&w.net, &w.rt).unwrap();
    w.cni.del(&w.net, &w.rt).unwrap();

    assert!(!run(&["ip", "link", "show", &veth]).0, "veth {veth} left");
    assert!(
        !w.in_netns(&["ip", "link", "show", "eth0"]).0,
        "eth0 left in the netns"
    );
    assert_eq!(w.bridge_ports().trim(), "");
    assert!(w.allocations().is_empty(), "{:?}", w.allocations());
    assert_eq!(w.rules_mentioning(&w.id), Vec::<String>::new());
    assert_eq!(
        w.rules_mentioning(&format!("{ip}/32")),
        Vec::<String>::new()
    );
    assert!(!cache.exists());

    // DEL again: nothing to do, success; and once more after the netns is gone.
    w.cni.del(&w.net, &w.rt).unwrap();
    must(&["ip", "netns", "del", &w.netns]);
    w.cni.del(&w.net, &w.rt).unwrap();
}

/// A server in the pod, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connect to `addr` until it answers an HTTP GET, within 10 s; the response.
fn http_get(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(out) if !out.is_empty() => return out,
            other => assert!(Instant::now() < deadline, "GET {addr}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn real_chain_maps_a_host_port() {
    if !can_run() {
        return;
    }
    let mut w = World::new(&[], None);
    let host_port = 20000 + (std::process::id() % 20000) as u16;
    w.rt.capability_args = CapabilityArgs {
        port_mappings: vec![PortMapping {
            host_port,
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: String::new(),
        }],
        bandwidth: None,
    };
    let r = w.cni.add(&w.net, &w.rt).unwrap();
    let ip = r.pod_ip("eth0").unwrap();
    assert!(
        !w.rules_mentioning(&format!("--dport {host_port}"))
            .is_empty()
    );
    // A web server inside the pod, reached through the host port on the host's own address.
    let www = w.dir.path().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), "hello from the pod\n").unwrap();
    let _server = Server(
        Command::new("ip")
            .args([
                "netns", "exec", &w.netns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www)
            .spawn()
            .unwrap(),
    );
    assert!(http_get((ip, 8080).into()).contains("hello from the pod"));
    // The bridge's gateway address is one of the host's own: DNAT of local traffic applies.
    let gateway = r.ips[0].gateway.expect("isGateway gives the pod a gateway");
    assert!(http_get((gateway, host_port).into()).contains("hello from the pod"));
    // Debian's portmap 1.1.1 fails CHECK on IPv4-only pods: it looks for ip6tables chains
    // it never made (containernetworking/plugins#819, fixed by #821 after 1.1.1).
    match w.cni.check(&w.net, &w.rt) {
        Ok(()) => {}
        Err(e) if e.to_string().contains("could not check ipv6 dnat") => {
            eprintln!("known portmap CHECK bug (containernetworking/plugins#819): {e}")
        }
        Err(e) => panic!("{e}"),
    }
    w.cni.del(&w.net, &w.rt).unwrap();
    assert_eq!(
        w.rules_mentioning(&format!("--dport {host_port}")),
        Vec::<String>::new()
    );
    assert_eq!(w.rules_mentioning(&w.id), Vec::<String>::new());
    assert!(w.allocations().is_empty());
}

#[test]
fn a_broken_plugin_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    let bin = tempfile::tempdir().unwrap();
    let broken = bin.path().join("broken");
    fs::write(
        &broken,
        "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n\
         echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"broken on purpose\"}'\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
    let mut w = World::new(
        &[serde_json::json!({"type": "broken"})],
        Some(bin.path().to_path_buf()),
    );
    let host_port = 40000 + (std::process::id() % 20000) as u16;
    w.rt.capability_args.port_mappings = vec![PortMapping {
        host_port,
        container_port: 80,
        protocol: Protocol::Udp,
        host_ip: String::new(),
    }];
    let err = w.cni.add(&w.net, &w.rt).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "cni plugin `{}` (ADD) failed: code 100: broken on purpose",
            broken.display()
        )),
        "{err}"
    );
    assert!(
        !w.in_netns(&["ip", "link", "show", "eth0"]).0,
        "eth0 left in the netns"
    );
    assert_eq!(w.bridge_ports().trim(), "");
    assert!(w.allocations().is_empty(), "{:?}", w.allocations());
    assert_eq!(w.rules_mentioning(&w.id), Vec::<String>::new());
    assert_eq!(
        w.rules_mentioning(&format!("--dport {host_port}")),
        Vec::<String>::new()
    );
    assert!(!w.cni.cache_path(&w.net.name, &w.rt).exists());
}

#[test]
fn a_missing_plugin_is_named_with_its_package() {
    if !can_run() {
        return;
    }
    let w = World::new(&[serde_json::json!({"type": "no-such-plugin"})], None);
    let err = w.cni.add(&w.net, &w.rt).unwrap_err().to_string();
    assert!(
        err.contains("cni plugin `no-such-plugin` not found in /opt/cni/bin:/usr/lib/cni"),
        "{err}"
    );
    assert!(err.contains("containernetworking-plugins"), "{err}");
    // Nothing ran.
    assert!(!w.in_netns(&["ip", "link", "show", "eth0"]).0);
    assert!(w.allocations().is_empty());
}

/// Times every plugin call (for the benchmark's breakdown).
#[derive(Default)]
struct TimingExec(std::sync::Mutex<Vec<(String, Duration)>>);

impl PluginExec for TimingExec {
    fn exec(
        &self,
        plugin: &Path,
        env: &[(String, String)],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ExecFailure> {
        let t = Instant::now();
        let r = ProcessExec.exec(plugin, env, stdin, timeout);
        let command = &env.iter().find(|(k, _)| k == "CNI_COMMAND").unwrap().1;
        let name = plugin.file_name().unwrap().to_string_lossy();
        self.0
            .lock()
            .unwrap()
            .push((format!("{name} {command}"), t.elapsed()));
        r
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One ADD+DEL of the default chain with the real plugins, median of 20 (the goal is
/// at most 30 ms per pod), with the median of each plugin call. `--ignored --nocapture`.
#[test]
#[ignore]
fn bench_add_del_default_chain() {
    if !can_run() {
        return;
    }
    let mut w = World::new(&[], None);
    let timing = std::sync::Arc::new(TimingExec::default());
    w.cni = w.cni.clone().with_exec(timing.clone());
    for ports in [false, true] {
        timing.0.lock().unwrap().clear();
        let (mut adds, mut dels, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20 {
            let mut rt = RuntimeConf {
                container_id: format!("{}-b{i}-{ports}", w.id),
                ..w.rt.clone()
            };
            if ports {
                rt.capability_args.port_mappings = vec![PortMapping {
                    host_port: 30000 + i,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: String::new(),
                }];
            }
            let t0 = Instant::now();
            w.cni.add(&w.net, &rt).unwrap();
            let t1 = Instant::now();
            w.cni.del(&w.net, &rt).unwrap();
            let t2 = Instant::now();
            adds.push(t1 - t0);
            dels.push(t2 - t1);
            both.push(t2 - t0);
        }
        println!(
            "default chain{}: ADD+DEL median {:?} (ADD {:?}, DEL {:?}; min {:?}, max {:?})",
            if ports { " with one hostPort" } else { "" },
            median(both.clone()),
            median(adds),
            median(dels),
            both.iter().min().unwrap(),
            both.iter().max().unwrap(),
        );
        let calls = timing.0.lock().unwrap().clone();
        let in_plugins: Duration = calls.iter().map(|(_, d)| *d).sum();
        println!(
            "  outside the plugins (this crate, per ADD+DEL): mean {:?}",
            (both.iter().sum::<Duration>() - in_plugins) / 20
        );
        let mut names: Vec<&String> = calls.iter().map(|(n, _)| n).collect();
        names.dedup();
        names.sort();
        names.dedup();
        for n in names {
            let d: Vec<Duration> = calls
                .iter()
                .filter(|(c, _)| c == n)
                .map(|(_, d)| *d)
                .collect();
            println!("  {n}: median {:?}", median(d));
        }
    }
}
