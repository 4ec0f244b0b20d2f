//! NodeResourcesFit: a pod's requests against what the node has left. The request
//! aggregation (max of the app containers' sum and each init container, sidecars counted)
//! is [`crate::PodResources::requests`]; this file adds `spec.overhead`, turns the
//! result into plain numbers and compares.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::resources::{RESOURCE_CPU, RESOURCE_EPHEMERAL_STORAGE, RESOURCE_MEMORY};
use crate::{ContainerResources, InitContainerResources, PodResources, Quantity, ResourceList};

/// The resources the fit check and the scores use, in kube-scheduler's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// A pod count (allocatable `pods`; 1 for one pod's request).
    pub pods: i64,
}

impl Amounts {
    pub fn add(&mut self, other: &Amounts) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
    }

    /// From a resource list (`cpu`, `memory`, `ephemeral-storage`, `pods`).
    pub fn from_list(list: &ResourceList) -> Amounts {
        let get = |name: &str| list.get(name);
        Amounts {
            milli_cpu: get(RESOURCE_CPU).map_or(0, Quantity::to_millicores),
            memory: get(RESOURCE_MEMORY).map_or(0, Quantity::to_bytes),
            ephemeral_storage: get(RESOURCE_EPHEMERAL_STORAGE).map_or(0, Quantity::to_bytes),
            pods: get("pods").map_or(0, |q| q.scaled_value(0)),
        }
    }
}

/// The container resources of a spec; quantities that do not parse count as absent (the
/// manifest layer refuses them before `pod run`; the planner is lenient).
fn container_resources(c: &Container) -> ContainerResources {
    let list = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        m.into_iter()
            .flatten()
            .filter_map(|(k, v)| Quantity::parse(&v.0).ok().map(|q| (k.clone(), q)))
            .collect::<ResourceList>()
    };
    let r = c.resources.as_ref();
    ContainerResources {
        requests: list(r.and_then(|r| r.requests.as_ref())),
        limits: list(r.and_then(|r| r.limits.as_ref())),
    }
}

/// `PodRequests` of a spec plus `spec.overhead`, as kube-scheduler computes it for the fit
/// filter (requests default to limits).
pub fn pod_requests(spec: &PodSpec) -> Amounts {
    let resources = PodResources {
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| InitContainerResources {
                resources: container_resources(c),
                restartable: c.restart_policy.as_deref() == Some("Always"),
            })
            .collect(),
        containers: spec.containers.iter().map(container_resources).collect(),
    };
    let mut amounts = Amounts::from_list(&resources.requests());
    let overhead: ResourceList = spec
        .overhead
        .iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::parse(&v.0).ok().map(|q| (k.clone(), q)))
        .collect();
    amounts.add(&Amounts::from_list(&overhead));
    amounts.pods = 1;
    amounts
}

/// The scheduler's "non-zero" requests used only for scoring
/// (`schedutil.GetNonzeroRequests`): a container without a cpu or memory request counts
/// 100m / 200Mi.
pub fn nonzero_requests(spec: &PodSpec) -> Amounts {
    const DEFAULT_MILLI_CPU: i64 = 100;
    const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;
    let mut total = Amounts::default();
    for c in &spec.containers {
        let r = container_resources(c).defaulted();
        let a = Amounts::from_list(&r.requests);
        total.milli_cpu += if r.requests.contains_key(RESOURCE_CPU) {
            a.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        };
        total.memory += if r.requests.contains_key(RESOURCE_MEMORY) {
            a.memory
        } else {
            DEFAULT_MEMORY
        };
    }
    total
}

/// One resource the node lacks, with the numbers of kubelet's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    /// `cpu`, `memory`, `ephemeral-storage` or `pods`.
    pub resource: &'static str,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
}

impl Insufficient {
    /// kube-scheduler's filter reason: `Insufficient cpu`, `Too many pods`.
    pub fn scheduler_reason(&self) -> String {
        if self.resource == "pods" {
            "Too many pods".into()
        } else {
            format!("Insufficient {}", self.resource)
        }
    }

    /// kubelet's admission reason: `OutOfcpu`, `OutOfmemory`, `OutOfpods`.
    pub fn kubelet_reason(&self) -> String {
        format!("OutOf{}", self.resource)
    }

    /// kubelet's admission message (`lifecycle/predicate.go`).
    pub fn kubelet_message(&self) -> String {
        format!(
            "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}",
            self.resource, self.requested, self.used, self.capacity
        )
    }
}

/// `noderesources.Fits`: the pod count first, then every resource the pod requests (a zero
/// request always fits) against `allocatable - used`.
pub fn fits(request: &Amounts, allocatable: &Amounts, used: &Amounts) -> Vec<Insufficient> {
    let mut out = Vec::new();
    if used.pods + 1 > allocatable.pods {
        out.push(Insufficient {
            resource: "pods",
            requested: 1,
            used: used.pods,
            capacity: allocatable.pods,
        });
    }
    for (resource, req, used, cap) in [
        (
            RESOURCE_CPU,
            request.milli_cpu,
            used.milli_cpu,
            allocatable.milli_cpu,
        ),
        (
            RESOURCE_MEMORY,
            request.memory,
            used.memory,
            allocatable.memory,
        ),
        (
            RESOURCE_EPHEMERAL_STORAGE,
            request.ephemeral_storage,
            used.ephemeral_storage,
            allocatable.ephemeral_storage,
        ),
    ] {
        if req > 0 && req > cap.saturating_sub(used) {
            out.push(Insufficient {
                resource,
                requested: req,
                used,
                capacity: cap,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let m = |p: &[(&str, &str)]| {
            (!p.is_empty()).then(|| {
                p.iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(requests),
                limits: m(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_max_of_sum_and_init_plus_overhead() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "250m"), ("memory", "64Mi")], &[]),
                // Requests default to limits.
                container(&[], &[("cpu", "500m"), ("memory", "64Mi")]),
            ],
            init_containers: Some(vec![container(&[("cpu", "1"), ("memory", "10Mi")], &[])]),
            overhead: Some(BTreeMap::from([("cpu".to_string(), Q("10m".into()))])),
            ..Default::default()
        };
        let r = pod_requests(&spec);
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, 128 << 20);
        assert_eq!(r.pods, 1);
        let nz = nonzero_requests(&PodSpec {
            containers: vec![container(&[], &[]), container(&[("cpu", "1")], &[])],
            ..Default::default()
        });
        assert_eq!(nz.milli_cpu, 1100);
        assert_eq!(nz.memory, 400 << 20);
    }

    #[test]
    fn fit_arithmetic() {
        let alloc = Amounts {
            milli_cpu: 2000,
            memory: 4 << 30,
            ephemeral_storage: 10 << 30,
            pods: 3,
        };
        let used = Amounts {
            milli_cpu: 1500,
            memory: 1 << 30,
            ephemeral_storage: 0,
            pods: 2,
        };
        let ok = Amounts {
            milli_cpu: 500,
            memory: 3 << 30,
            pods: 1,
            ..Default::default()
        };
        assert!(fits(&ok, &alloc, &used).is_empty());
        let big = Amounts {
            milli_cpu: 501,
            memory: (3 << 30) + 1,
            pods: 1,
            ..Default::default()
        };
        let out = fits(&big, &alloc, &used);
        assert_eq!(
            out.iter()
                .map(Insufficient::scheduler_reason)
                .collect::<Vec<_>>(),
            ["Insufficient cpu", "Insufficient memory"]
        );
        assert_eq!(out[0].kubelet_reason(), "OutOfcpu");
        assert_eq!(
            out[0].kubelet_message(),
            "Node didn't have enough resource: cpu, requested: 501, used: 1500, capacity: 2000"
        );
        let full = Amounts { pods: 3, ..used };
        let out = fits(&Amounts::default(), &alloc, &full);
        assert_eq!(out[0].scheduler_reason(), "Too many pods");
        assert_eq!(
            out[0].kubelet_message(),
            "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
        );
        // A zero request fits even on an over-committed node.
        let over = Amounts {
            milli_cpu: 5000,
            ..used
        };
        assert!(
            fits(
                &Amounts {
                    pods: 1,
                    ..Default::default()
                },
                &alloc,
                &over
            )
            .is_empty()
        );
    }
}
