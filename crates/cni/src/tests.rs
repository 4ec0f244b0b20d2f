//! Unit tests of the runtime with fake plugins: an in-process recording fake for the rules, and
//! small shell-script plugins for the real exec path.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cache::CACHE_KIND;
use crate::exec::{ExecFailure, PluginError, PluginExec};
use crate::*;

/// One recorded plugin call.
#[derive(Debug, Clone)]
struct Call {
    plugin: String,
    command: String,
    stdin: Value,
    env: HashMap<String, String>,
}

type Responder = dyn Fn(&Call) -> Result<Vec<u8>, ExecFailure> + Send + Sync;

/// Records every call; answers through `respond`; `missing` plugins are not found.
struct FakeExec {
    calls: Mutex<Vec<Call>>,
    respond: Box<Responder>,
    missing: Vec<String>,
}

impl FakeExec {
    fn new(
        respond: impl Fn(&Call) -> Result<Vec<u8>, ExecFailure> + Send + Sync + 'static,
    ) -> Arc<FakeExec> {
        Arc::new(FakeExec {
            calls: Mutex::new(Vec::new()),
            respond: Box::new(respond),
            missing: Vec::new(),
        })
    }

    /// Plugins that behave like the reference ones: `bridge` makes the interfaces and address,
    /// chained plugins return their prevResult, DEL and CHECK print nothing.
    fn reference() -> Arc<FakeExec> {
        FakeExec::new(reference_answer)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// `plugin COMMAND` per call, in order.
    fn trace(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{} {}", c.plugin, c.command))
            .collect()
    }

    fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
}

impl PluginExec for FakeExec {
    fn find(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
        if self.missing.iter().any(|m| m == plugin_type) {
            return Err(PluginError::NotFound {
                plugin: plugin_type.into(),
                dirs: crate::exec::join_dirs(dirs),
            });
        }
        Ok(Path::new("/fake").join(plugin_type))
    }

    fn exec(
        &self,
        plugin: &Path,
        env: &[(String, String)],
        stdin: &[u8],
        _timeout: Duration,
    ) -> Result<Vec<u8>, ExecFailure> {
        let env: HashMap<String, String> = env.iter().cloned().collect();
        let call = Call {
            plugin: plugin.file_name().unwrap().to_string_lossy().into_owned(),
            command: env["CNI_COMMAND"].clone(),
            stdin: serde_json::from_slice(stdin).unwrap(),
            env,
        };
        self.calls.lock().unwrap().push(call.clone());
        (self.respond)(&call)
    }
}

fn bridge_result(version: &str, netns: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "peapod0", "mac": "02:00:00:00:00:01"},
            {"name": "veth1", "mac": "02:00:00:00:00:02"},
            {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": netns},
        ],
        "ips": [{"address": "10.85.0.5/16", "gateway": "10.85.0.1", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0"}],
    })
}

fn reference_answer(c: &Call) -> Result<Vec<u8>, ExecFailure> {
    if c.command != "ADD" {
        return Ok(Vec::new());
    }
    let version = c.stdin["cniVersion"].as_str().unwrap();
    let out = match c.stdin.get("prevResult") {
        Some(prev) => prev.clone(),
        None => bridge_result(version, &c.env["CNI_NETNS"]),
    };
    Ok(out.to_string().into_bytes())
}

fn error_object(code: u32, msg: &str) -> ExecFailure {
    ExecFailure::Failed {
        status: "exit status 1".into(),
        stdout: json!({"cniVersion": "1.0.0", "code": code, "msg": msg})
            .to_string()
            .into_bytes(),
        stderr: Vec::new(),
    }
}

fn network(version: &str) -> NetworkConfigList {
    NetworkConfigList::from_list_bytes(
        json!({
            "cniVersion": version,
            "name": "peapod",
            "plugins": [
                {"type": "bridge", "name": "ignored", "cniVersion": "0.1.0", "bridge": "peapod0",
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}]]}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
                {"type": "bandwidth", "capabilities": {"bandwidth": true, "portMappings": false}},
            ]
        })
        .to_string()
        .as_bytes(),
        Path::new("/etc/cni/net.d/10-peapod.conflist"),
    )
    .unwrap()
}

fn pod() -> RuntimeConf {
    let mut rt = RuntimeConf::new("sandbox1", "/run/netns/pod1")
        .with_kubernetes_args("default", "web", "sandbox1", "uid-1");
    rt.capability_args = CapabilityArgs {
        port_mappings: vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: String::new(),
        }],
        bandwidth: Some(Bandwidth {
            ingress_rate: 1_000_000,
            ingress_burst: u64::from(u32::MAX),
            egress_rate: 0,
            egress_burst: 0,
        }),
    };
    rt
}

struct Setup {
    _dir: tempfile::TempDir,
    cache_dir: PathBuf,
    cni: Cni,
    fake: Arc<FakeExec>,
}

fn setup(fake: Arc<FakeExec>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cni =
        Cni::new(vec!["/fake/a".into(), "/fake/b".into()], &cache_dir).with_exec(fake.clone());
    Setup {
        _dir: dir,
        cache_dir,
        cni,
        fake,
    }
}

fn cache_file(s: &Setup) -> PathBuf {
    s.cache_dir.join("results/peapod-sandbox1-eth0")
}

#[test]
fn add_runs_the_chain_in_order_and_chains_prev_result() {
    let s = setup(FakeExec::reference());
    let r = s.cni.add(&network("1.0.0"), &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bridge ADD", "portmap ADD", "bandwidth ADD"]
    );
    let calls = s.fake.calls();
    // name and cniVersion come from the list, overriding the plugin's own.
    for c in &calls {
        assert_eq!(c.stdin["name"], "peapod");
        assert_eq!(c.stdin["cniVersion"], "1.0.0");
    }
    assert_eq!(calls[0].stdin["bridge"], "peapod0");
    // The first plugin has no prevResult; the next ones get the previous result.
    assert!(calls[0].stdin.get("prevResult").is_none());
    let bridge = bridge_result("1.0.0", "/run/netns/pod1");
    assert_eq!(calls[1].stdin["prevResult"], bridge);
    assert_eq!(calls[2].stdin["prevResult"], bridge);
    // The environment of every call.
    let env = &calls[0].env;
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "sandbox1");
    assert_eq!(env["CNI_NETNS"], "/run/netns/pod1");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(
        env["CNI_ARGS"],
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
         K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=uid-1"
    );
    assert_eq!(env["CNI_PATH"], "/fake/a:/fake/b");
    // The typed result and the pod IP.
    assert_eq!(r.pod_ip("eth0"), Some("10.85.0.5".parse().unwrap()));
    assert_eq!(r.interfaces.len(), 3);
}

#[test]
fn runtime_config_holds_only_the_declared_capabilities() {
    let s = setup(FakeExec::reference());
    s.cni.add(&network("1.0.0"), &pod()).unwrap();
    let calls = s.fake.calls();
    // bridge declares nothing: no runtimeConfig at all.
    assert!(calls[0].stdin.get("runtimeConfig").is_none());
    assert_eq!(
        calls[1].stdin["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    // bandwidth declares portMappings false: only bandwidth.
    assert_eq!(
        calls[2].stdin["runtimeConfig"],
        json!({"bandwidth": {"ingressRate": 1000000, "ingressBurst": 4294967295u64,
                             "egressRate": 0, "egressBurst": 0}})
    );
    // Without arguments for a declared capability, the plugin gets no runtimeConfig.
    s.fake.clear();
    let bare = RuntimeConf::new("sandbox2", "/run/netns/pod2");
    s.cni.add(&network("1.0.0"), &bare).unwrap();
    assert!(
        s.fake
            .calls()
            .iter()
            .all(|c| c.stdin.get("runtimeConfig").is_none())
    );
}

#[test]
fn a_failing_second_plugin_is_rolled_back_with_the_partial_result() {
    let s = setup(FakeExec::new(|c| {
        if c.plugin == "portmap" && c.command == "ADD" {
            return Err(error_object(7, "bad port"));
        }
        reference_answer(c)
    }));
    let err = s.cni.add(&network("1.0.0"), &pod()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cni ADD network `peapod` container `sandbox1`: cni plugin `/fake/portmap` (ADD) \
         failed: code 7 (invalid network config): bad port"
    );
    assert_eq!(err.plugin_error().unwrap().error_object().unwrap().code, 7);
    // The whole chain is deleted, in reverse order, each with the partial result.
    assert_eq!(
        s.fake.trace(),
        [
            "bridge ADD",
            "portmap ADD",
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL"
        ]
    );
    let partial = bridge_result("1.0.0", "/run/netns/pod1");
    for c in &s.fake.calls()[2..] {
        assert_eq!(c.stdin["prevResult"], partial, "{}", c.plugin);
        assert_eq!(c.env["CNI_COMMAND"], "DEL");
    }
    assert!(!cache_file(&s).exists());
}

#[test]
fn a_failing_first_plugin_is_rolled_back_without_prev_result() {
    let s = setup(FakeExec::new(|c| {
        if c.plugin == "bridge" && c.command == "ADD" {
            return Err(error_object(11, "busy"));
        }
        reference_answer(c)
    }));
    s.cni.add(&network("1.0.0"), &pod()).unwrap_err();
    assert_eq!(
        s.fake.trace(),
        ["bridge ADD", "bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    assert!(
        s.fake.calls()[1..]
            .iter()
            .all(|c| c.stdin.get("prevResult").is_none())
    );
}

#[test]
fn a_failed_rollback_reports_both_errors() {
    let s = setup(FakeExec::new(|c| {
        match (c.plugin.as_str(), c.command.as_str()) {
            ("bandwidth", "ADD") => Err(error_object(5, "tc failed")),
            ("bridge", "DEL") => Err(error_object(5, "veth busy")),
            _ => reference_answer(c),
        }
    }));
    let err = s
        .cni
        .add(&network("1.0.0"), &pod())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cni ADD network `peapod` container `sandbox1`: cni plugin `/fake/bandwidth` (ADD) failed: code 5 (i/o failure): tc failed; undoing the partial ADD (DEL of the chain) also failed: cni DEL network `peapod` container `sandbox1`: cni plugin `/fake/bridge` (DEL) failed: code 5 (i/o failure): veth busy"), "{err}");
}

#[test]
fn an_unreadable_result_is_a_failure_that_is_rolled_back() {
    let s = setup(FakeExec::new(|c| {
        match (c.plugin.as_str(), c.command.as_str()) {
            ("portmap", "ADD") => Ok(b"not json".to_vec()),
            _ => reference_answer(c),
        }
    }));
    let err = s
        .cni
        .add(&network("1.0.0"), &pod())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "cni plugin `/fake/portmap` (ADD) returned an unusable answer: result is not JSON"
        ),
        "{err}"
    );
    // portmap exited 0, so it may have done something: it is deleted too.
    assert_eq!(
        s.fake.trace(),
        [
            "bridge ADD",
            "portmap ADD",
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL"
        ]
    );
}

#[test]
fn bad_results_are_refused_by_name() {
    for (answer, want) in [
        (json!(null), "not a JSON object"),
        (json!({"cniVersion": "0.2.0", "ip4": {}}), "ip4/ip6"),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 4}]}),
            "ips[0].interface 4 is out of range",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}),
            "invalid result",
        ),
    ] {
        let a = answer.to_string();
        let s = setup(FakeExec::new(move |c| match c.command.as_str() {
            "ADD" => Ok(a.clone().into_bytes()),
            _ => Ok(Vec::new()),
        }));
        let err = s
            .cni
            .add(&network("1.0.0"), &pod())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cni plugin `/fake/bridge` (ADD) returned an unusable answer"),
            "{err}"
        );
        assert!(err.contains(want), "{answer}: {err}");
    }
}

#[test]
fn the_cache_is_written_used_by_del_and_removed() {
    let s = setup(FakeExec::reference());
    let net = network("1.0.0");
    s.cni.add(&net, &pod()).unwrap();
    let file = cache_file(&s);
    let raw: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(raw["kind"], CACHE_KIND);
    assert_eq!(raw["containerId"], "sandbox1");
    assert_eq!(raw["ifName"], "eth0");
    assert_eq!(raw["networkName"], "peapod");
    assert_eq!(raw["netns"], "/run/netns/pod1");
    assert_eq!(raw["result"], bridge_result("1.0.0", "/run/netns/pod1"));
    assert_eq!(raw["cniArgs"][1], json!(["K8S_POD_NAMESPACE", "default"]));
    assert_eq!(raw["capabilityArgs"]["portMappings"][0]["hostPort"], 8080);
    let cached = s.cni.cached("peapod", &pod()).unwrap().unwrap();
    assert_eq!(cached.config, net.bytes);
    s.fake.clear();
    // DEL with only the id: args and capabilities come from the cache, prevResult too.
    let bare = RuntimeConf::new("sandbox1", "/run/netns/pod1");
    s.cni.del(&net, &bare).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    for c in s.fake.calls() {
        assert_eq!(c.stdin["prevResult"], raw["result"], "{}", c.plugin);
        assert!(c.env["CNI_ARGS"].starts_with("IgnoreUnknown=1;"));
    }
    assert_eq!(
        s.fake.calls()[1].stdin["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(!file.exists());
}

#[test]
fn a_cache_that_cannot_be_written_undoes_the_add() {
    // The result must be cached for DEL after a crash, and so must what ADD is about to do
    // (the partial entry, written before the first plugin): without a cache nothing runs.
    let s = setup(FakeExec::reference());
    fs::create_dir_all(s.cache_dir.parent().unwrap()).unwrap();
    fs::write(&s.cache_dir, "a file where the cache dir should be").unwrap();
    let err = s
        .cni
        .add(&network("1.0.0"), &pod())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cni ADD network `peapod` container `sandbox1`: write cni result cache `"),
        "{err}"
    );
    assert!(!err.contains("undoing"), "{err}");
    assert_eq!(s.fake.trace(), Vec::<String>::new());
}

#[test]
fn del_after_an_interrupted_add_uses_its_partial_entry() {
    // A runtime killed during ADD leaves `<cache>.adding` (config, arguments, the result so
    // far) and no cache file: DEL gives the plugins that result and removes the entry.
    let s = setup(FakeExec::reference());
    let net = network("1.0.0");
    s.cni.add(&net, &pod()).unwrap();
    let path = s.cni.cache_path(&net.name, &pod());
    let partial = crate::cache::partial_path(&path);
    assert!(!partial.exists(), "a complete ADD leaves no partial entry");
    fs::rename(&path, &partial).unwrap();
    s.fake.clear();
    s.cni.del(&net, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    let full = bridge_result("1.0.0", "/run/netns/pod1");
    assert!(s.fake.calls().iter().all(|c| c.stdin["prevResult"] == full));
    assert!(!partial.exists() && !path.exists());
}

#[test]
fn del_after_an_interrupted_add_runs_the_chain_again_when_a_plugin_trips() {
    // The bridge plugin cut off half-way (address set, masquerade chain not made) fails its
    // first DEL after undoing the rest; the second finds nothing left. Only for an
    // interrupted ADD: after a complete one a DEL failure is reported at once.
    let tripped = Arc::new(Mutex::new(false));
    let t = tripped.clone();
    let s = setup(FakeExec::new(move |c| {
        if c.command == "DEL"
            && c.plugin == "bridge"
            && !std::mem::replace(&mut *t.lock().unwrap(), true)
        {
            return Err(error_object(999, "chain does not exist"));
        }
        reference_answer(c)
    }));
    let net = network("1.0.0");
    s.cni.add(&net, &pod()).unwrap();
    let path = s.cni.cache_path(&net.name, &pod());
    let partial = crate::cache::partial_path(&path);
    fs::rename(&path, &partial).unwrap();
    s.fake.clear();
    s.cni.del(&net, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        [
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL",
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL"
        ]
    );
    assert!(!partial.exists());
    // After a complete ADD: one DEL, its failure reported, the entry kept for the retry.
    *tripped.lock().unwrap() = false;
    s.cni.add(&net, &pod()).unwrap();
    s.fake.clear();
    assert!(s.cni.del(&net, &pod()).is_err());
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    assert!(path.exists());
}

#[test]
fn del_uses_the_config_add_ran_with() {
    // After a crash the conf dir may hold a different network: DEL undoes what ADD did.
    let s = setup(FakeExec::reference());
    s.cni.add(&network("1.0.0"), &pod()).unwrap();
    s.fake.clear();
    let changed = NetworkConfigList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","name":"peapod","plugins":[{"type":"ptp"}]}"#,
        Path::new("/etc/cni/net.d/10-peapod.conflist"),
    )
    .unwrap();
    s.cni.del(&changed, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    // Without the cache, the given config is all there is.
    s.fake.clear();
    s.cni.del(&changed, &pod()).unwrap();
    assert_eq!(s.fake.trace(), ["ptp DEL"]);
}

#[test]
fn del_without_a_cache_runs_with_the_config_alone_and_is_idempotent() {
    let s = setup(FakeExec::reference());
    let net = network("1.0.0");
    s.cni.del(&net, &pod()).unwrap();
    s.cni.del(&net, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        [
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL",
            "bandwidth DEL",
            "portmap DEL",
            "bridge DEL"
        ]
    );
    assert!(
        s.fake
            .calls()
            .iter()
            .all(|c| c.stdin.get("prevResult").is_none())
    );
    // ADD, DEL, DEL.
    s.cni.add(&net, &pod()).unwrap();
    s.cni.del(&net, &pod()).unwrap();
    s.cni.del(&net, &pod()).unwrap();
    assert!(!cache_file(&s).exists());
}

#[test]
fn a_failed_del_keeps_the_cache_for_the_retry() {
    let fail = Arc::new(Mutex::new(true));
    let f = fail.clone();
    let s = setup(FakeExec::new(move |c| {
        if c.plugin == "portmap" && c.command == "DEL" && *f.lock().unwrap() {
            return Err(error_object(11, "iptables locked"));
        }
        reference_answer(c)
    }));
    let net = network("1.0.0");
    s.cni.add(&net, &pod()).unwrap();
    s.fake.clear();
    let err = s.cni.del(&net, &pod()).unwrap_err().to_string();
    assert!(err.starts_with("cni DEL network `peapod` container `sandbox1`: cni plugin `/fake/portmap` (DEL) failed: code 11 (try again later)"), "{err}");
    // It stopped at the failure; the cache remains.
    assert_eq!(s.fake.trace(), ["bandwidth DEL", "portmap DEL"]);
    assert!(cache_file(&s).exists());
    *fail.lock().unwrap() = false;
    s.fake.clear();
    s.cni.del(&net, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    assert!(
        s.fake
            .calls()
            .iter()
            .all(|c| c.stdin.get("prevResult").is_some())
    );
    assert!(!cache_file(&s).exists());
}

#[test]
fn a_corrupt_cache_does_not_block_del() {
    let s = setup(FakeExec::reference());
    let file = cache_file(&s);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "{ torn").unwrap();
    s.cni.del(&network("1.0.0"), &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bandwidth DEL", "portmap DEL", "bridge DEL"]
    );
    assert!(!file.exists());
}

#[test]
fn del_before_0_4_0_gets_no_prev_result() {
    let s = setup(FakeExec::reference());
    let net = network("0.3.1");
    s.cni.add(&net, &pod()).unwrap();
    s.fake.clear();
    s.cni.del(&net, &pod()).unwrap();
    assert!(
        s.fake
            .calls()
            .iter()
            .all(|c| c.stdin.get("prevResult").is_none())
    );
}

#[test]
fn check_runs_in_order_with_the_cached_result() {
    let s = setup(FakeExec::reference());
    let net = network("1.0.0");
    let err = s.cni.check(&net, &pod()).unwrap_err().to_string();
    assert!(err.contains("no cached ADD result in `"), "{err}");
    assert!(s.fake.trace().is_empty());
    s.cni.add(&net, &pod()).unwrap();
    s.fake.clear();
    s.cni.check(&net, &pod()).unwrap();
    assert_eq!(
        s.fake.trace(),
        ["bridge CHECK", "portmap CHECK", "bandwidth CHECK"]
    );
    let cached = bridge_result("1.0.0", "/run/netns/pod1");
    assert!(
        s.fake
            .calls()
            .iter()
            .all(|c| c.stdin["prevResult"] == cached)
    );
    // disableCheck: nothing runs.
    s.fake.clear();
    let mut disabled = net.clone();
    disabled.disable_check = true;
    s.cni.check(&disabled, &pod()).unwrap();
    assert!(s.fake.trace().is_empty());
    // Before 0.4.0 there is no CHECK.
    let err = s
        .cni
        .check(&network("0.3.1"), &pod())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cni CHECK network `peapod`: configuration version 0.3.1 does not support the CHECK command"
    );
    // A failing CHECK names the plugin.
    let s = setup(FakeExec::new(|c| {
        match (c.plugin.as_str(), c.command.as_str()) {
            ("portmap", "CHECK") => Err(error_object(100, "chain missing")),
            _ => reference_answer(c),
        }
    }));
    s.cni.add(&net, &pod()).unwrap();
    let err = s.cni.check(&net, &pod()).unwrap_err().to_string();
    assert!(
        err.ends_with("cni plugin `/fake/portmap` (CHECK) failed: code 100: chain missing"),
        "{err}"
    );
}

#[test]
fn results_in_another_version_are_converted_for_the_next_plugin() {
    // A 0.4.0 network whose first plugin answers in 1.0.0: the next plugin gets 0.4.0.
    let s = setup(FakeExec::new(|c| {
        match (c.plugin.as_str(), c.command.as_str()) {
            ("bridge", "ADD") => Ok(bridge_result("1.0.0", "/run/netns/pod1")
                .to_string()
                .into_bytes()),
            _ => reference_answer(c),
        }
    }));
    let r = s.cni.add(&network("0.4.0"), &pod()).unwrap();
    let prev = &s.fake.calls()[1].stdin["prevResult"];
    assert_eq!(prev["cniVersion"], "0.4.0");
    assert_eq!(prev["ips"][0]["version"], "4");
    assert_eq!(r.pod_ip("eth0"), Some("10.85.0.5".parse().unwrap()));
}

#[test]
fn a_missing_binary_runs_nothing_and_names_binary_dirs_and_package() {
    let fake = Arc::new(FakeExec {
        calls: Mutex::new(Vec::new()),
        respond: Box::new(reference_answer),
        missing: vec!["bandwidth".into()],
    });
    let s = setup(fake);
    let err = s
        .cni
        .add(&network("1.0.0"), &pod())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cni ADD network `peapod` container `sandbox1`: cni plugin `bandwidth` not found in \
         /fake/a:/fake/b: install Debian's `containernetworking-plugins` package (apt-get install \
         containernetworking-plugins) or set CNI_PATH"
    );
    assert!(s.fake.trace().is_empty());
    assert!(!cache_file(&s).exists());
}

#[test]
fn invalid_runtime_arguments_run_nothing() {
    let s = setup(FakeExec::reference());
    let net = network("1.0.0");
    // Defence: the id and ifname become the cache file name. Checked by removing the id rule
    // from RuntimeConf::validate: the ADD then writes `results/peapod-../../x-eth0`... outside.
    let cases: Vec<(RuntimeConf, &str)> = vec![
        (
            RuntimeConf::new("../../x", "/n"),
            "invalid container id `../../x`",
        ),
        (RuntimeConf::new("", "/n"), "invalid container id: "),
        (
            RuntimeConf {
                ifname: "eth0/../../x".into(),
                ..RuntimeConf::new("c", "/n")
            },
            "invalid interface name `eth0/../../x`",
        ),
        (
            RuntimeConf {
                ifname: "a-very-long-ifname".into(),
                ..RuntimeConf::new("c", "/n")
            },
            "invalid interface name",
        ),
        (
            RuntimeConf::new("c", "/n").with_kubernetes_args(
                "default",
                "a;K8S_POD_UID=forged",
                "c",
                "u",
            ),
            "invalid CNI_ARGS pair `K8S_POD_NAME=a;K8S_POD_UID=forged`",
        ),
        (
            RuntimeConf {
                capability_args: CapabilityArgs {
                    port_mappings: vec![PortMapping {
                        host_port: 0,
                        container_port: 80,
                        protocol: Protocol::Tcp,
                        host_ip: String::new(),
                    }],
                    bandwidth: None,
                },
                ..RuntimeConf::new("c", "/n")
            },
            "invalid portMappings[0].hostPort: must be 1-65535",
        ),
    ];
    for (rt, want) in cases {
        for err in [
            s.cni.add(&net, &rt).unwrap_err(),
            s.cni.del(&net, &rt).unwrap_err(),
            s.cni.check(&net, &rt).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg}");
        }
    }
    assert!(s.fake.trace().is_empty());
    assert!(!s.cache_dir.exists());
}

fn version_answer(supported: &[&str]) -> Vec<u8> {
    json!({"cniVersion": "1.0.0", "supportedVersions": supported})
        .to_string()
        .into_bytes()
}

#[test]
fn version_negotiation_and_validation() {
    let s = setup(FakeExec::new(|c| {
        assert_eq!(c.command, "VERSION");
        assert_eq!(c.env["CNI_NETNS"], "dummy");
        assert_eq!(c.stdin, json!({"cniVersion": "1.0.0"}));
        match c.plugin.as_str() {
            "bridge" | "portmap" => Ok(version_answer(&["0.3.1", "0.4.0", "1.0.0"])),
            "bandwidth" => Ok(version_answer(&["0.3.1", "0.4.0"])),
            "ancient" => Err(ExecFailure::Failed {
                status: "exit status 1".into(),
                stdout: br#"{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}"#.to_vec(),
                stderr: Vec::new(),
            }),
            _ => Ok(b"{".to_vec()),
        }
    }));
    assert_eq!(
        s.cni.negotiate_version(&["bridge", "portmap"]).unwrap(),
        "1.0.0"
    );
    assert_eq!(
        s.cni.negotiate_version(&["bridge", "bandwidth"]).unwrap(),
        "0.4.0"
    );
    assert_eq!(
        s.cni.version("ancient").unwrap().supported_versions,
        ["0.1.0"]
    );
    let err = s
        .cni
        .negotiate_version(&["bridge", "ancient"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cni plugins bridge, ancient share no spec version peapod speaks (1.0.0, 0.4.0, 0.3.1, 0.3.0)"
    );
    let err = s.cni.version("garbage").unwrap_err().to_string();
    assert!(
        err.contains("(VERSION) returned an unusable answer: version answer is not valid"),
        "{err}"
    );
    assert!(s.cni.validate(&network("0.4.0")).is_ok());
    let err = s.cni.validate(&network("1.0.0")).unwrap_err().to_string();
    assert_eq!(
        err,
        "cni plugin `/fake/bandwidth` of network `peapod` does not support cniVersion 1.0.0 (it \
         supports 0.3.1, 0.4.0)"
    );
}

#[test]
fn plugin_dirs_default_to_upstream_then_debian() {
    assert_eq!(
        plugin_dirs(None),
        [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
    assert_eq!(plugin_dirs(Some("")), plugin_dirs(None));
    assert_eq!(
        plugin_dirs(Some("/a::/b")),
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );
}

// ---- the real exec path, with shell-script plugins ----

/// A plugin script that logs its call to `log`, saves its stdin, and answers `answer` on ADD.
fn script_plugin(dir: &Path, name: &str, answer: &str, exit: i32) {
    let log = dir.join("calls");
    let body = format!(
        "#!/bin/sh\n\
         stdin=$(cat)\n\
         echo \"{name} $CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS $CNI_PATH\" >> {log}\n\
         printf '%s' \"$stdin\" > {dir}/{name}.$CNI_COMMAND.stdin\n\
         [ \"$CNI_COMMAND\" = ADD ] || exit 0\n\
         printf '%s' '{answer}'\n\
         exit {exit}\n",
        log = log.display(),
        dir = dir.display(),
    );
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn shell_plugins_through_the_real_exec() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let result = bridge_result("1.0.0", "/run/netns/p").to_string();
    script_plugin(&bin, "bridge", &result, 0);
    script_plugin(&bin, "portmap", &result, 0);
    script_plugin(
        &bin,
        "firewall",
        r#"{"cniVersion":"1.0.0","code":100,"msg":"no iptables"}"#,
        2,
    );
    let cni = Cni::new(
        vec![d.path().join("empty"), bin.clone()],
        d.path().join("cache"),
    );
    let net = NetworkConfigList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","name":"sh","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        Path::new("sh.conflist"),
    )
    .unwrap();
    let rt = RuntimeConf::new("c1", "/run/netns/p");
    let r = cni.add(&net, &rt).unwrap();
    assert_eq!(r.pod_ip("eth0"), Some("10.85.0.5".parse().unwrap()));
    let cni_path = format!("{}:{}", d.path().join("empty").display(), bin.display());
    let log = |_: ()| fs::read_to_string(bin.join("calls")).unwrap();
    assert_eq!(
        log(()),
        format!(
            "bridge ADD c1 eth0 /run/netns/p {cni_path}\nportmap ADD c1 eth0 /run/netns/p {cni_path}\n"
        )
    );
    let stdin: Value =
        serde_json::from_slice(&fs::read(bin.join("portmap.ADD.stdin")).unwrap()).unwrap();
    assert_eq!(stdin["prevResult"]["ips"][0]["address"], "10.85.0.5/16");
    cni.del(&net, &rt).unwrap();
    assert!(log(()).ends_with(&format!(
        "portmap DEL c1 eth0 /run/netns/p {cni_path}\nbridge DEL c1 eth0 /run/netns/p {cni_path}\n"
    )));
    // A failing plugin's error object, through the real exec, rolls the chain back.
    fs::remove_file(bin.join("calls")).unwrap();
    let net = NetworkConfigList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","name":"sh","plugins":[{"type":"bridge"},{"type":"firewall"}]}"#,
        Path::new("sh.conflist"),
    )
    .unwrap();
    let err = cni.add(&net, &rt).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "cni plugin `{}` (ADD) failed: code 100: no iptables",
            bin.join("firewall").display()
        )),
        "{err}"
    );
    let calls: Vec<String> = log(())
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        calls,
        ["bridge ADD", "firewall ADD", "firewall DEL", "bridge DEL"]
    );
    assert!(!d.path().join("cache/results/sh-c1-eth0").exists());
}

#[test]
fn a_hanging_plugin_times_out_and_is_rolled_back() {
    let d = tempfile::tempdir().unwrap();
    let result = bridge_result("1.0.0", "/run/netns/p").to_string();
    script_plugin(d.path(), "bridge", &result, 0);
    let hang = d.path().join("hang");
    fs::write(
        &hang,
        format!(
            "#!/bin/sh\nstdin=$(cat)\necho \"hang $CNI_COMMAND\" >> {}\n[ \"$CNI_COMMAND\" = ADD ] && exec sleep 60\nexit 0\n",
            d.path().join("calls").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hang, fs::Permissions::from_mode(0o755)).unwrap();
    let cni = Cni::new(vec![d.path().to_path_buf()], d.path().join("cache"))
        .with_timeout(Duration::from_millis(500));
    let net = NetworkConfigList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","name":"sh","plugins":[{"type":"bridge"},{"type":"hang"}]}"#,
        Path::new("sh.conflist"),
    )
    .unwrap();
    let err = cni
        .add(&net, &RuntimeConf::new("c1", "/run/netns/p"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(&format!(
            "cni plugin `{}` (ADD) did not finish within 500ms and was killed",
            hang.display()
        )),
        "{err}"
    );
    let calls: Vec<String> = fs::read_to_string(d.path().join("calls"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(calls, ["bridge ADD", "hang ADD", "hang DEL", "bridge DEL"]);
}
