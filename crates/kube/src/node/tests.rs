//! Admission tests: `admit` on one node, with the scheduler's and kubelet's messages.

use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod, Taint};

use super::object::{Machine, NodeConfig, build};
use super::{AdmitError, admit};

fn node(taints: Vec<Taint>) -> Node {
    let m = Machine {
        hostname: "box".into(),
        arch: "amd64".into(),
        milli_cpu: 2000,
        memory: 4 << 30,
        ephemeral_storage: 100 << 30,
    };
    let mut stored = build(&m, &NodeConfig::default(), None);
    stored
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("disk".into(), "ssd".into());
    stored.spec = Some(NodeSpec {
        taints: Some(taints),
        ..Default::default()
    });
    build(&m, &NodeConfig::default(), Some(&stored))
}

fn pod(spec_yaml: &str) -> Pod {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: host}}]\n{spec_yaml}"
    );
    crate::manifest::parse_manifests(&text).unwrap().remove(0)
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: Some(value.into()).filter(|v: &String| !v.is_empty()),
        effect: effect.into(),
        time_added: None,
    }
}

fn refused(n: &Node, p: &Pod) -> String {
    admit(n, p, &[]).unwrap_err().to_string()
}

#[test]
fn selector_and_affinity() {
    let n = node(vec![]);
    assert!(
        admit(
            &n,
            &pod("  nodeSelector: {disk: ssd, kubernetes.io/os: linux}\n"),
            &[]
        )
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        refused(&n, &pod("  nodeSelector: {disk: hdd}\n")),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    let affinity = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: disk, operator: NotIn, values: [ssd]}]\n        - matchFields: [{key: metadata.name, operator: In, values: [box]}]\n";
    assert!(admit(&n, &pod(affinity), &[]).is_ok());
    let other = affinity.replace("[box]", "[other]");
    assert!(matches!(
        admit(&n, &pod(&other), &[]),
        Err(AdmitError::Unschedulable(_))
    ));
    assert_eq!(
        refused(&n, &pod("  nodeName: elsewhere\n")),
        "0/1 nodes are available: 1 node(s) didn't match the requested node name."
    );
    assert!(admit(&n, &pod("  nodeName: box\n"), &[]).is_ok());
}

#[test]
fn taints_and_tolerations() {
    let n = node(vec![taint("env_role", "yes", "NoSchedule")]);
    assert_eq!(
        refused(&n, &pod("")),
        "0/1 nodes are available: 1 node(s) had untolerated taint {env_role: yes}."
    );
    let tol =
        "  tolerations: [{key: env_role, operator: Equal, value: 'yes', effect: NoSchedule}]\n";
    assert!(admit(&n, &pod(tol), &[]).is_ok());
    let n = node(vec![taint("gone", "", "NoExecute")]);
    assert_eq!(
        refused(&n, &pod("")),
        "0/1 nodes are available: 1 node(s) had untolerated taint {gone: }."
    );
    assert!(admit(&n, &pod("  tolerations: [{operator: Exists}]\n"), &[]).is_ok());
    // PreferNoSchedule only warns.
    let n = node(vec![taint("soft", "1", "PreferNoSchedule")]);
    let w = admit(&n, &pod(""), &[]).unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("soft=1:PreferNoSchedule"), "{w:?}");
    // Preferred affinity not met only warns.
    let pref = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 5\n        preference: {matchExpressions: [{key: gpu, operator: Exists}]}\n";
    let w = admit(&node(vec![]), &pod(pref), &[]).unwrap();
    assert!(w[0].contains("weight 0 out of 5"), "{w:?}");
}

#[test]
fn resource_fit_is_kubelets() {
    let n = node(vec![]);
    let big = "  containers: [{name: c, image: host, resources: {requests: {cpu: '3'}}}]\n";
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{big}");
    let p = crate::manifest::parse_manifests(&text).unwrap().remove(0);
    assert_eq!(
        admit(&n, &p, &[]).unwrap_err(),
        AdmitError::OutOf {
            reason: "OutOfcpu".into(),
            message:
                "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000"
                    .into()
        }
    );
    let one = text.replace("'3'", "'1'");
    let p1 = crate::manifest::parse_manifests(&one).unwrap().remove(0);
    assert!(admit(&n, &p1, &[]).is_ok());
    assert!(admit(&n, &p1, std::slice::from_ref(&p1)).is_ok());
    assert_eq!(
        admit(&n, &p1, &[p1.clone(), p1.clone()])
            .unwrap_err()
            .to_string(),
        "OutOfcpu: Node didn't have enough resource: cpu, requested: 1000, used: 2000, capacity: 2000"
    );
}

#[test]
fn a_host_port_taken_by_an_admitted_pod_is_refused_with_node_ports_reason() {
    let n = node(vec![]);
    let web = |port: i32| {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: host, ports: [{{containerPort: 80, hostPort: {port}}}]}}]\n"
        );
        crate::manifest::parse_manifests(&text).unwrap().remove(0)
    };
    admit(&n, &web(8080), &[]).unwrap();
    let err = admit(&n, &web(8080), &[web(8080)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
    admit(&n, &web(8081), &[web(8080)]).unwrap();
}
