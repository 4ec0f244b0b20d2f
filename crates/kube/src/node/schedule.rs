//! A dry-run placement planner: which node kube-scheduler would pick for each pod, with no
//! container started. Running pods across machines is Kubernetes' job; this shows where
//! they would go and why not.
//!
//! Pods are placed one by one in input order, each placement counted against its node for
//! the next pods (requests, pod count, replicas of the same owner). For each pod:
//! 1. Filters, kube-scheduler's default order ([`super::filter`]): NodeUnschedulable,
//!    NodeName, TaintToleration, NodeAffinity, NodeResourcesFit. With no feasible node the
//!    reason is the scheduler's `0/N nodes are available: <count> <reason>, ....` line.
//! 2. Scores, each normalised to 0–100 and weighted as the default profile does:
//!    - NodeResourcesFit, LeastAllocated over cpu and memory (weight 1), with the
//!      scheduler's non-zero requests (100m / 200Mi for a container without requests);
//!    - NodeResourcesBalancedAllocation (weight 1): 100 × (1 − |cpu fraction − memory
//!      fraction| / 2);
//!    - NodeAffinity (weight 2): matching preferred weights, scaled so the best node is 100;
//!    - TaintToleration (weight 3): intolerable PreferNoSchedule taints, reversed so the
//!      node with the most gets 0;
//!    - PodTopologySpread (weight 2) with the system default constraint for pods with an
//!      owner (`kubernetes.io/hostname`, maxSkew 3, ScheduleAnyway): the owner's pods on the
//!      node times ln(labelled nodes + 2) plus maxSkew − 1, reversed so the emptiest node is
//!      100 (a node without the label scores 0). Pods count by controller owner rather than
//!      by the owner's selector. The zone constraint of the defaults is left out.
//!
//!    Scoring is skipped when only one node is feasible, as upstream.
//! 3. Ties: kube-scheduler picks one of the best nodes at random; the planner takes the
//!    first in the order of the nodes file, so a plan is reproducible.
//!
//! Not modelled: inter-pod affinity, ports, volumes, image locality, preemption.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::fit::{self, Amounts};
use super::predicates::{self, NodeView};
use super::{NodeError, filter, labels_of, object, reasons, taints_of};

const MAX_NODE_SCORE: i64 = 100;
const SYSTEM_DEFAULT_MAX_SKEW: i64 = 3;

/// kube-scheduler's default score plugin weights.
const WEIGHT_LEAST_ALLOCATED: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_TAINT_TOLERATION: i64 = 3;
const WEIGHT_TOPOLOGY_SPREAD: i64 = 2;

/// Where one pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub pod: String,
    /// `None`: unschedulable.
    pub node: Option<String>,
    /// Empty when placed; the scheduler's message otherwise.
    pub reason: String,
}

/// The planner's inputs, sorted out from the documents of the files.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
}

fn kind_of(v: &serde_json::Value) -> (&str, &str) {
    (
        v.get("apiVersion")
            .and_then(|s| s.as_str())
            .unwrap_or_default(),
        v.get("kind").and_then(|s| s.as_str()).unwrap_or_default(),
    )
}

/// Adds the objects of one file (`Node`, `Pod`, `Deployment`, or a `List` of them) to
/// `inputs`; Deployments are expanded into their pods.
pub fn add_documents(inputs: &mut Inputs, file: &str, text: &str) -> Result<(), NodeError> {
    let docs = crate::manifest::parse_documents(text)
        .map_err(|e| NodeError::Input(format!("`{file}`: {e}")))?;
    let mut queue: Vec<(usize, serde_json::Value)> = docs;
    queue.reverse();
    while let Some((doc, value)) = queue.pop() {
        if value.is_null() {
            continue;
        }
        let bad = |e: serde_json::Error| NodeError::Input(format!("`{file}` document {doc}: {e}"));
        match kind_of(&value) {
            ("v1", "List") => {
                let items = value
                    .get("items")
                    .and_then(|i| i.as_array())
                    .cloned()
                    .unwrap_or_default();
                queue.extend(items.into_iter().rev().map(|i| (doc, i)));
            }
            ("v1", "Node") => inputs
                .nodes
                .push(serde_json::from_value(value).map_err(bad)?),
            ("v1", "Pod") => inputs
                .pods
                .push(serde_json::from_value(value).map_err(bad)?),
            ("apps/v1", "Deployment") => {
                let d: Deployment = serde_json::from_value(value).map_err(bad)?;
                inputs.pods.extend(expand_deployment(&d));
            }
            (api, kind) => {
                return Err(NodeError::Input(format!(
                    "`{file}` document {doc}: {api}/{kind} is not supported: the planner takes \
                     v1 Node, v1 Pod and apps/v1 Deployment objects"
                )));
            }
        }
    }
    Ok(())
}

/// FNV-1a, 32 bits (what the Deployment controller hashes pod templates with).
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// apimachinery's `SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// A Deployment's pods: `replicas` (default 1) copies of the template named
/// `<deployment>-<pod-template-hash>-<suffix>`, labelled with `pod-template-hash` and owned
/// by the ReplicaSet `<deployment>-<hash>`. The hash is FNV-1a of the template as JSON,
/// encoded as the Deployment controller encodes it; the 5-character suffix (random
/// upstream) is derived from the ReplicaSet name and the replica index so plans repeat.
pub fn expand_deployment(d: &Deployment) -> Vec<Pod> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let spec = &d.spec;
    let template = &spec.template;
    let hash = safe_encode(
        &fnv32a(
            serde_json::to_string(template)
                .unwrap_or_default()
                .as_bytes(),
        )
        .to_string(),
    );
    let rs = format!("{name}-{hash}");
    let replicas = spec.replicas.unwrap_or(1).max(0);
    (0..replicas)
        .map(|i| {
            let seed = fnv32a(format!("{rs}/{i}").as_bytes());
            let suffix: String = (0..5)
                .map(|k| SAFE[((seed >> (k * 5)) as usize) % SAFE.len()] as char)
                .collect();
            let meta = template.metadata.clone().unwrap_or_default();
            let mut labels = meta.labels.clone().unwrap_or_default();
            labels.insert("pod-template-hash".into(), hash.clone());
            Pod {
                metadata: ObjectMeta {
                    name: Some(format!("{rs}-{suffix}")),
                    namespace: d.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: meta.annotations,
                    owner_references: Some(vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: rs.clone(),
                        controller: Some(true),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: template.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// The controller owner of a pod (`Kind/name`), the unit the default spreading counts.
fn owner(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

/// A node with what the plan has put on it so far.
struct Slot<'a> {
    node: &'a Node,
    allocatable: Amounts,
    used: Amounts,
    nonzero_used: Amounts,
    owners: BTreeMap<String, i64>,
}

/// 0–100 with the best raw score 100 (`DefaultNormalizeScore`, `reverse` for lower-is-better).
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&s| {
            if max == 0 {
                if reverse { MAX_NODE_SCORE } else { 0 }
            } else {
                let n = s * MAX_NODE_SCORE / max;
                if reverse { MAX_NODE_SCORE - n } else { n }
            }
        })
        .collect()
}

fn least_allocated(slot: &Slot<'_>, pod: &Amounts) -> i64 {
    let one = |alloc: i64, used: i64| {
        if alloc <= 0 || used > alloc {
            0
        } else {
            (alloc - used) * MAX_NODE_SCORE / alloc
        }
    };
    let cpu = one(
        slot.allocatable.milli_cpu,
        slot.nonzero_used.milli_cpu + pod.milli_cpu,
    );
    let mem = one(
        slot.allocatable.memory,
        slot.nonzero_used.memory + pod.memory,
    );
    (cpu + mem) / 2
}

fn balanced(slot: &Slot<'_>, pod: &Amounts) -> i64 {
    let frac = |alloc: i64, used: i64| {
        if alloc <= 0 {
            1.0
        } else {
            (used as f64 / alloc as f64).min(1.0)
        }
    };
    let c = frac(
        slot.allocatable.milli_cpu,
        slot.nonzero_used.milli_cpu + pod.milli_cpu,
    );
    let m = frac(
        slot.allocatable.memory,
        slot.nonzero_used.memory + pod.memory,
    );
    ((1.0 - (c - m).abs() / 2.0) * MAX_NODE_SCORE as f64) as i64
}

/// Places `pods` on `nodes` one by one (see the module documentation).
pub fn plan(nodes: &[Node], pods: &[Pod]) -> Vec<Placement> {
    let mut slots: Vec<Slot<'_>> = nodes
        .iter()
        .map(|n| {
            let status = n.status.as_ref();
            let alloc = status
                .and_then(|s| s.allocatable.as_ref())
                .or_else(|| status.and_then(|s| s.capacity.as_ref()));
            let mut allocatable = object::from_list(alloc);
            if !alloc.is_some_and(|a| a.contains_key("pods")) {
                allocatable.pods = object::MAX_PODS;
            }
            Slot {
                node: n,
                allocatable,
                used: Amounts::default(),
                nonzero_used: Amounts::default(),
                owners: BTreeMap::new(),
            }
        })
        .collect();
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut feasible = Vec::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (i, s) in slots.iter().enumerate() {
            let why = filter(s.node, pod, &s.allocatable, &s.used);
            if why.is_empty() {
                feasible.push(i);
            }
            for r in why {
                *counts.entry(r).or_default() += 1;
            }
        }
        let Some(&first) = feasible.first() else {
            out.push(Placement {
                pod: name,
                node: None,
                reason: reasons::fit_error(nodes.len(), &counts),
            });
            continue;
        };
        let best = if feasible.len() == 1 {
            first
        } else {
            let request = fit::nonzero_requests(&spec);
            let tolerations = spec.tolerations.clone().unwrap_or_default();
            let owner = owner(pod);
            let domains = feasible
                .iter()
                .filter(|&&i| labels_of(slots[i].node).contains_key(object::LABEL_HOSTNAME))
                .count() as f64;
            let mut affinity = Vec::new();
            let mut prefer = Vec::new();
            let mut spread = Vec::new();
            for &i in &feasible {
                let s = &slots[i];
                let node_name = s.node.metadata.name.clone().unwrap_or_default();
                let labels = labels_of(s.node);
                let taints = taints_of(s.node);
                let view = NodeView {
                    name: &node_name,
                    labels: &labels,
                    taints: &taints,
                };
                affinity.push(predicates::preferred_affinity_score(&spec, view));
                prefer.push(predicates::intolerable_prefer_no_schedule(
                    &tolerations,
                    &taints,
                ));
                let cnt = owner
                    .as_ref()
                    .map_or(0, |o| s.owners.get(o).copied().unwrap_or(0));
                // A node without the topology label is outside the constraint: score 0.
                spread.push(labels.contains_key(object::LABEL_HOSTNAME).then(|| {
                    ((cnt as f64) * (domains + 2.0).ln() + (SYSTEM_DEFAULT_MAX_SKEW - 1) as f64)
                        .round() as i64
                }));
            }
            let affinity = normalize(&affinity, false);
            let prefer = normalize(&prefer, true);
            let spread = if owner.is_some() {
                let max = spread.iter().flatten().copied().max().unwrap_or(0);
                let min = spread.iter().flatten().copied().min().unwrap_or(0);
                spread
                    .iter()
                    .map(|s| match *s {
                        None => 0,
                        Some(_) if max == 0 => MAX_NODE_SCORE,
                        Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
                    })
                    .collect()
            } else {
                vec![0; feasible.len()]
            };
            let mut best = (first, i64::MIN);
            for (k, &i) in feasible.iter().enumerate() {
                let s = &slots[i];
                let total = WEIGHT_LEAST_ALLOCATED * least_allocated(s, &request)
                    + WEIGHT_BALANCED * balanced(s, &request)
                    + WEIGHT_NODE_AFFINITY * affinity[k]
                    + WEIGHT_TAINT_TOLERATION * prefer[k]
                    + WEIGHT_TOPOLOGY_SPREAD * spread[k];
                if total > best.1 {
                    best = (i, total);
                }
            }
            best.0
        };
        let s = &mut slots[best];
        s.used.add(&fit::pod_requests(&spec));
        s.nonzero_used.add(&fit::nonzero_requests(&spec));
        if let Some(o) = owner(pod) {
            *s.owners.entry(o).or_default() += 1;
        }
        out.push(Placement {
            pod: name,
            node: s.node.metadata.name.clone(),
            reason: String::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = include_str!("../../../../examples/schedule/nodes.yaml");
    const DEPLOYMENT: &str = include_str!("../../../../examples/schedule/deployment.yaml");

    fn inputs(files: &[&str]) -> Inputs {
        let mut i = Inputs::default();
        for (n, f) in files.iter().enumerate() {
            add_documents(&mut i, &format!("f{n}"), f).unwrap();
        }
        i
    }

    #[test]
    fn seed_demo_all_on_node2() {
        let i = inputs(&[NODES, DEPLOYMENT]);
        assert_eq!(i.nodes.len(), 2);
        assert_eq!(i.pods.len(), 5);
        let plan = plan(&i.nodes, &i.pods);
        for p in &plan {
            assert_eq!(p.node.as_deref(), Some("node2"), "{p:?}");
            assert!(p.pod.starts_with("nginx-"), "{p:?}");
        }
        // Names are deterministic and distinct.
        let again = super::plan(&i.nodes, &inputs(&[NODES, DEPLOYMENT]).pods);
        assert_eq!(plan, again);
        let mut names: Vec<_> = plan.iter().map(|p| p.pod.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), 5);
    }

    const TWO_NODES: &str = "
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: a, labels: {kubernetes.io/hostname: a}}
  status: {allocatable: {cpu: '2', memory: 4Gi, pods: '110'}}
- apiVersion: v1
  kind: Node
  metadata: {name: b, labels: {kubernetes.io/hostname: b}}
  status: {allocatable: {cpu: '2', memory: 4Gi, pods: '110'}}
";

    fn deployment(name: &str, replicas: i32, cpu: &str) -> String {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: host
        resources: {{requests: {{cpu: {cpu}}}}}
"
        )
    }

    #[test]
    fn spreads_replicas_and_reports_fit() {
        let d = deployment("web", 4, "500m");
        let i = inputs(&[TWO_NODES, &d]);
        let plan = plan(&i.nodes, &i.pods);
        let on = |n: &str| plan.iter().filter(|p| p.node.as_deref() == Some(n)).count();
        assert_eq!((on("a"), on("b")), (2, 2));
        assert_eq!(plan[0].node.as_deref(), Some("a"));
        assert_eq!(plan[1].node.as_deref(), Some("b"));
        // 1.5 cpu each: one per node, the third does not fit.
        let d = deployment("big", 3, "1500m");
        let i = inputs(&[TWO_NODES, &d]);
        let plan = super::plan(&i.nodes, &i.pods);
        assert_eq!(plan[0].node.as_deref(), Some("a"));
        assert_eq!(plan[1].node.as_deref(), Some("b"));
        assert_eq!(plan[2].node, None);
        assert_eq!(
            plan[2].reason,
            "0/2 nodes are available: 2 Insufficient cpu."
        );
    }

    #[test]
    fn reasons_aggregate_sorted() {
        let nodes = "
apiVersion: v1
kind: Node
metadata: {name: a, labels: {disk: hdd}}
spec: {taints: [{key: env_role, value: 'yes', effect: NoSchedule}]}
---
apiVersion: v1
kind: Node
metadata: {name: b, labels: {disk: hdd}}
---
apiVersion: v1
kind: Node
metadata: {name: c, labels: {disk: hdd}}
spec: {unschedulable: true}
";
        let pod = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: c, image: host}]
";
        let i = inputs(&[nodes, pod]);
        let plan = plan(&i.nodes, &i.pods);
        assert_eq!(
            plan[0].reason,
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {env_role: yes}, 1 node(s) were unschedulable."
        );
    }

    #[test]
    fn prefers_affinity_and_avoids_prefer_no_schedule() {
        let nodes = "
apiVersion: v1
kind: Node
metadata: {name: a}
spec: {taints: [{key: soft, effect: PreferNoSchedule}]}
status: {allocatable: {cpu: '2', memory: 4Gi}}
---
apiVersion: v1
kind: Node
metadata: {name: b, labels: {disk: ssd}}
status: {allocatable: {cpu: '2', memory: 4Gi}}
---
apiVersion: v1
kind: Node
metadata: {name: c}
status: {allocatable: {cpu: '2', memory: 4Gi}}
";
        let pod = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference: {matchExpressions: [{key: disk, operator: In, values: [ssd]}]}
  containers: [{name: c, image: host}]
";
        let i = inputs(&[nodes, pod]);
        assert_eq!(plan(&i.nodes, &i.pods)[0].node.as_deref(), Some("b"));
        let plain = "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {containers: [{name: c, image: host}]}\n";
        let i = inputs(&[nodes, plain]);
        // a is avoided (PreferNoSchedule); b and c tie: the first wins.
        assert_eq!(plan(&i.nodes, &i.pods)[0].node.as_deref(), Some("b"));
    }

    #[test]
    fn refuses_other_kinds() {
        let mut i = Inputs::default();
        let e = add_documents(
            &mut i,
            "x.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("v1/Service is not supported"), "{e}");
    }
}
