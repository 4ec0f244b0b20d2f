//! kubelet's mapping of container and pod requests/limits onto cgroup values, the pod's QoS
//! class and each container's `oom_score_adj`.
//!
//! Inputs are small plain structs ([`ContainerResources`], [`PodResources`]) that the pod layer
//! fills from the Kubernetes API types; nothing here touches a cgroup file.
//!
//! Upstream sources (kubernetes/kubernetes):
//! - `pkg/kubelet/cm/helpers_linux.go`: `MilliCPUToShares`, `MilliCPUToQuota`,
//!   `ResourceConfigForPod` and the share/quota constants.
//! - `pkg/kubelet/kuberuntime/kuberuntime_container_linux.go`: `calculateLinuxResources`.
//! - `staging/src/k8s.io/component-helpers/resource/helpers.go`: `PodRequests`, `PodLimits`
//!   (sum of app containers and sidecars, max with each init container plus the sidecars
//!   started before it; KEP-753).
//! - `pkg/apis/core/v1/helper/qos/qos.go`: `ComputePodQOS`.
//! - `pkg/kubelet/qos/policy.go`: `GetContainerOOMScoreAdjust`.
//! - `pkg/apis/core/v1/defaults.go`: `SetDefaults_Pod` (requests default to limits).
//! - `opencontainers/cgroups` `ConvertCPUSharesToCgroupV2Value` (runc >= 1.3.2, crun >= 1.23):
//!   shares to `cpu.weight`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quantity::Quantity;

/// Resource name of CPU (`v1.ResourceCPU`).
pub const RESOURCE_CPU: &str = "cpu";
/// Resource name of memory (`v1.ResourceMemory`).
pub const RESOURCE_MEMORY: &str = "memory";
/// Resource name of ephemeral storage (`v1.ResourceEphemeralStorage`).
pub const RESOURCE_EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// `MinShares` (pkg/kubelet/cm/helpers_linux.go).
pub const MIN_SHARES: u64 = 2;
/// `MaxShares` (pkg/kubelet/cm/helpers_linux.go); the kernel's `MAX_SHARES` (1 << 18).
pub const MAX_SHARES: u64 = 262_144;
/// `SharesPerCPU` (pkg/kubelet/cm/helpers_linux.go).
pub const SHARES_PER_CPU: i64 = 1024;
/// `MilliCPUToCPU` (pkg/kubelet/cm/helpers_linux.go).
pub const MILLI_CPU_TO_CPU: i64 = 1000;
/// `QuotaPeriod` in microseconds (pkg/kubelet/cm/helpers_linux.go); kubelet's default
/// `cpuCFSQuotaPeriod` of 100ms.
pub const QUOTA_PERIOD: u64 = 100_000;
/// `MinQuotaPeriod` in microseconds (pkg/kubelet/cm/helpers_linux.go).
pub const MIN_QUOTA_PERIOD: i64 = 1000;
/// `guaranteedOOMScoreAdj` (pkg/kubelet/qos/policy.go).
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// `besteffortOOMScoreAdj` (pkg/kubelet/qos/policy.go).
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;
/// `KubeletOOMScoreAdj` (pkg/kubelet/qos/policy.go): what a node agent gives itself.
pub const KUBELET_OOM_SCORE_ADJ: i32 = -999;
/// containerd's `defaultSandboxOOMAdj` for the pause process.
pub const SANDBOX_OOM_SCORE_ADJ: i32 = -998;

/// A resource name to quantity map (`v1.ResourceList`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Errors from this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// An invalid field, in the API server's field-error shape.
    #[error("{path}: Invalid value: \"{value}\": {detail}")]
    Invalid {
        path: String,
        value: String,
        detail: String,
    },
    /// `oom_score_adj` needs the node's memory capacity.
    #[error("compute oom_score_adj: node memory capacity must be positive, got {capacity}")]
    NoMemoryCapacity { capacity: i64 },
    /// A container index outside the pod.
    #[error("container reference {0:?} is not in the pod")]
    NoSuchContainer(ContainerRef),
}

/// Requests and limits of one container (`v1.ResourceRequirements` without claims).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

impl ContainerResources {
    /// The API server's defaulting (`SetDefaults_Pod`): a resource with a limit and no request
    /// gets request = limit. kubelet sees pods after this step, so every computation here
    /// applies it first; it is idempotent.
    pub fn defaulted(&self) -> ContainerResources {
        let mut out = self.clone();
        for (name, limit) in &self.limits {
            out.requests.entry(name.clone()).or_insert(*limit);
        }
        out
    }

    fn request(&self, name: &str) -> Quantity {
        self.requests.get(name).copied().unwrap_or_default()
    }

    fn limit(&self, name: &str) -> Quantity {
        self.limits.get(name).copied().unwrap_or_default()
    }

    /// API-server validation of one container's resources (`ValidateResourceRequirements`,
    /// the subset that concerns values): non-negative quantities, known resource names, and
    /// request <= limit. `path` is the field path, e.g. `spec.containers[0].resources`.
    pub fn validate(&self, path: &str) -> Result<(), ResourceError> {
        for (kind, list) in [("limits", &self.limits), ("requests", &self.requests)] {
            for (name, quantity) in list {
                let field = format!("{path}.{kind}[{name}]");
                if !is_standard_or_qualified(name) {
                    return Err(ResourceError::Invalid {
                        path: field,
                        value: name.clone(),
                        detail: "must be a standard resource type or fully qualified".into(),
                    });
                }
                if quantity.signum() < 0 {
                    return Err(ResourceError::Invalid {
                        path: field,
                        value: quantity.to_string(),
                        detail: "must be greater than or equal to 0".into(),
                    });
                }
            }
        }
        for (name, request) in &self.requests {
            if let Some(limit) = self.limits.get(name)
                && request > limit
            {
                return Err(ResourceError::Invalid {
                    path: format!("{path}.requests[{name}]"),
                    value: request.to_string(),
                    detail: format!("must be less than or equal to {name} limit of {limit}"),
                });
            }
        }
        Ok(())
    }
}

fn is_standard_or_qualified(name: &str) -> bool {
    matches!(
        name,
        RESOURCE_CPU | RESOURCE_MEMORY | RESOURCE_EPHEMERAL_STORAGE
    ) || name.starts_with("hugepages-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

/// An init container's resources and whether it is a sidecar (`restartPolicy: Always`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitContainerResources {
    #[serde(flatten)]
    pub resources: ContainerResources,
    /// `restartPolicy: Always` (a sidecar, `IsRestartableInitContainer`).
    #[serde(default)]
    pub restartable: bool,
}

/// The resources of every container of a pod, in spec order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodResources {
    #[serde(default)]
    pub init_containers: Vec<InitContainerResources>,
    #[serde(default)]
    pub containers: Vec<ContainerResources>,
}

/// Which container of a [`PodResources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerRef {
    Init(usize),
    App(usize),
}

/// Pod QoS class (`v1.PodQOSClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The API string.
    pub fn as_str(&self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// kubelet's QoS cgroup directory under `kubepods` (pod_container_manager_linux.go):
    /// Guaranteed pods sit directly in `kubepods`.
    pub fn cgroup_parent(&self) -> Option<&'static str> {
        match self {
            QosClass::Guaranteed => None,
            QosClass::Burstable => Some("burstable"),
            QosClass::BestEffort => Some("besteffort"),
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `MilliCPUToShares`: 0 gives [`MIN_SHARES`]; otherwise `m*1024/1000` clamped to
/// [[`MIN_SHARES`], [`MAX_SHARES`]].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    let shares = i128::from(milli_cpu) * i128::from(SHARES_PER_CPU) / i128::from(MILLI_CPU_TO_CPU);
    shares.clamp(MIN_SHARES as i128, MAX_SHARES as i128) as u64
}

/// `MilliCPUToQuota`: 0 gives 0 (no limit); otherwise `m*period/1000`, at least
/// [`MIN_QUOTA_PERIOD`].
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    let quota = i128::from(milli_cpu) * i128::from(period) / i128::from(MILLI_CPU_TO_CPU);
    let quota = i64::try_from(quota).unwrap_or(i64::MAX);
    quota.max(MIN_QUOTA_PERIOD)
}

/// cgroup v2 `cpu.weight` from cgroup v1 shares with the formula of `opencontainers/cgroups`
/// `ConvertCPUSharesToCgroupV2Value` (runc >= 1.3.2, crun >= 1.23; runc#4785, k8s#131216): a
/// quadratic in log2(shares) fitted so that 2 -> 1, 1024 -> 100 (systemd's default) and
/// 262144 -> 10000. 0 stays 0 ("unset").
///
/// peapod uses this formula for pod cgroups too; kubelet's own `getCPUWeight` for pod and QoS
/// cgroups still used the linear [`cpu_shares_to_weight_linear`] at the time of writing.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= MIN_SHARES {
        return 1;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    let weight = 10f64.powf(exponent);
    // Guard the fit points against a last-bit difference between Go's math.Pow and libm:
    // a result within 1e-9 of an integer is that integer (1024 shares must give exactly 100).
    let nearest = weight.round();
    let weight = if (weight - nearest).abs() < 1e-9 {
        nearest
    } else {
        weight.ceil()
    };
    weight as u64
}

/// The linear shares to weight mapping of runc < 1.3.2: `1 + ((shares-2)*9999)/262142`.
pub fn cpu_shares_to_weight_linear(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// What the OCI runtime is asked to set for one container (`LinuxContainerResources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCgroup {
    /// cgroup v1 `cpu.shares` (always set; `MIN_SHARES` without a request).
    pub cpu_shares: u64,
    /// cgroup v2 `cpu.weight` ([`cpu_shares_to_weight`]).
    pub cpu_weight: u64,
    /// CFS quota in microseconds; 0 means no limit.
    pub cpu_quota: i64,
    /// CFS period in microseconds.
    pub cpu_period: u64,
    /// `memory.max` in bytes; `None` is unlimited.
    pub memory_limit: Option<i64>,
    /// `/proc/<pid>/oom_score_adj`.
    pub oom_score_adj: i32,
}

impl ContainerCgroup {
    /// The cgroup v2 `cpu.max` line (runc `fs2/cpu.go`): quota <= 0 is `max`.
    pub fn cpu_max(&self) -> String {
        cpu_max_line(self.cpu_quota, self.cpu_period)
    }

    /// The cgroup v2 `memory.max` value.
    pub fn memory_max(&self) -> String {
        match self.memory_limit {
            Some(bytes) if bytes > 0 => bytes.to_string(),
            _ => "max".into(),
        }
    }
}

fn cpu_max_line(quota: i64, period: u64) -> String {
    if quota > 0 {
        format!("{quota} {period}")
    } else {
        format!("max {period}")
    }
}

/// What kubelet sets on the pod cgroup (`ResourceConfigForPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroup {
    pub qos_class: QosClass,
    /// Shares from the sum of requests (BestEffort: [`MIN_SHARES`]).
    pub cpu_shares: u64,
    /// `cpu.weight` ([`cpu_shares_to_weight`]).
    pub cpu_weight: u64,
    /// CFS quota, only when every container declares a cpu limit (always for Guaranteed).
    pub cpu_quota: Option<i64>,
    /// CFS period, set together with the quota.
    pub cpu_period: Option<u64>,
    /// `memory.max`, only when every container declares a memory limit.
    pub memory_limit: Option<i64>,
}

impl PodCgroup {
    /// The `cpu.max` line, if a quota is set.
    pub fn cpu_max(&self) -> Option<String> {
        self.cpu_quota
            .map(|quota| cpu_max_line(quota, self.cpu_period.unwrap_or(QUOTA_PERIOD)))
    }
}

/// Node resources for admission (`noderesources.Fits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeResources {
    pub milli_cpu: i64,
    pub memory: i64,
}

/// An admission rejection as kubelet reports it (`lifecycle/predicate.go`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsufficientResource {
    /// `OutOfcpu`, `OutOfmemory`.
    pub reason: String,
    /// `Node didn't have enough resource: cpu, requested: 2000, used: 500, capacity: 1000`.
    pub message: String,
}

fn add_list(into: &mut ResourceList, from: &ResourceList) {
    for (name, quantity) in from {
        into.entry(name.clone())
            .and_modify(|v| *v = v.saturating_add(*quantity))
            .or_insert(*quantity);
    }
}

fn max_list(into: &mut ResourceList, from: &ResourceList) {
    for (name, quantity) in from {
        match into.get(name) {
            Some(v) if quantity <= v => {}
            _ => {
                into.insert(name.clone(), *quantity);
            }
        }
    }
}

/// Whether cpu and memory limits were declared by every container, as `ResourceConfigForPod`
/// tracks through `PodLimits`' `ContainerFn` (a zero limit counts as undeclared).
#[derive(Debug, Clone, Copy)]
struct LimitsDeclared {
    cpu: bool,
    memory: bool,
}

impl PodResources {
    /// Every container with [`ContainerResources::defaulted`] applied.
    pub fn defaulted(&self) -> PodResources {
        PodResources {
            init_containers: self
                .init_containers
                .iter()
                .map(|c| InitContainerResources {
                    resources: c.resources.defaulted(),
                    restartable: c.restartable,
                })
                .collect(),
            containers: self.containers.iter().map(|c| c.defaulted()).collect(),
        }
    }

    /// Validates every container (see [`ContainerResources::validate`]).
    pub fn validate(&self) -> Result<(), ResourceError> {
        for (i, c) in self.init_containers.iter().enumerate() {
            c.resources
                .validate(&format!("spec.initContainers[{i}].resources"))?;
        }
        for (i, c) in self.containers.iter().enumerate() {
            c.validate(&format!("spec.containers[{i}].resources"))?;
        }
        Ok(())
    }

    fn container(&self, which: ContainerRef) -> Option<&ContainerResources> {
        match which {
            ContainerRef::Init(i) => self.init_containers.get(i).map(|c| &c.resources),
            ContainerRef::App(i) => self.containers.get(i),
        }
    }

    /// `PodRequests`: sum(app) + sum(sidecars), max'ed with each regular init container plus the
    /// sidecars declared before it. Requests are defaulted from limits first.
    pub fn requests(&self) -> ResourceList {
        let pod = self.defaulted();
        aggregate(&pod, |c| &c.requests).0
    }

    /// `PodLimits` with the same aggregation as [`PodResources::requests`].
    pub fn limits(&self) -> ResourceList {
        aggregate(&self.defaulted(), |c| &c.limits).0
    }

    /// `GetPodQOS` / `ComputePodQOS` over cpu and memory of every container (init containers
    /// included), after request defaulting:
    /// - BestEffort: no positive request or limit anywhere;
    /// - Guaranteed: every container has positive cpu and memory limits, and the summed
    ///   requests equal the summed limits for every resource;
    /// - Burstable: anything else.
    pub fn qos_class(&self) -> QosClass {
        let pod = self.defaulted();
        let mut requests = ResourceList::new();
        let mut limits = ResourceList::new();
        let mut guaranteed = true;
        let all = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().map(|c| &c.resources));
        for c in all {
            for (name, quantity) in &c.requests {
                if is_qos_resource(name) && quantity.signum() > 0 {
                    add_list(
                        &mut requests,
                        &ResourceList::from([(name.clone(), *quantity)]),
                    );
                }
            }
            let mut found = (false, false);
            for (name, quantity) in &c.limits {
                if is_qos_resource(name) && quantity.signum() > 0 {
                    add_list(
                        &mut limits,
                        &ResourceList::from([(name.clone(), *quantity)]),
                    );
                    if name == RESOURCE_CPU {
                        found.0 = true;
                    } else {
                        found.1 = true;
                    }
                }
            }
            if !(found.0 && found.1) {
                guaranteed = false;
            }
        }
        if requests.is_empty() && limits.is_empty() {
            return QosClass::BestEffort;
        }
        if guaranteed {
            for (name, request) in &requests {
                if limits.get(name) != Some(request) {
                    guaranteed = false;
                    break;
                }
            }
        }
        if guaranteed && requests.len() == limits.len() {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        }
    }

    /// `ResourceConfigForPod` with `enforceCPULimits` (kubelet's `cpuCFSQuota`, default true)
    /// and the default 100ms period.
    pub fn pod_cgroup(&self) -> PodCgroup {
        let pod = self.defaulted();
        let requests = aggregate(&pod, |c| &c.requests).0;
        let (limits, declared) = aggregate(&pod, |c| &c.limits);
        let cpu_requests = requests
            .get(RESOURCE_CPU)
            .map_or(0, Quantity::to_millicores);
        let cpu_limits = limits.get(RESOURCE_CPU).map_or(0, Quantity::to_millicores);
        let memory_limits = limits.get(RESOURCE_MEMORY).map_or(0, Quantity::to_bytes);
        let qos_class = self.qos_class();
        let shares = milli_cpu_to_shares(cpu_requests);
        let quota = milli_cpu_to_quota(cpu_limits, QUOTA_PERIOD);
        let mut out = PodCgroup {
            qos_class,
            cpu_shares: shares,
            cpu_weight: cpu_shares_to_weight(shares),
            cpu_quota: None,
            cpu_period: None,
            memory_limit: None,
        };
        match qos_class {
            QosClass::Guaranteed => {
                out.cpu_quota = Some(quota);
                out.cpu_period = Some(QUOTA_PERIOD);
                out.memory_limit = Some(memory_limits);
            }
            QosClass::Burstable => {
                if declared.cpu {
                    out.cpu_quota = Some(quota);
                    out.cpu_period = Some(QUOTA_PERIOD);
                }
                if declared.memory {
                    out.memory_limit = Some(memory_limits);
                }
            }
            QosClass::BestEffort => {
                out.cpu_shares = MIN_SHARES;
                out.cpu_weight = cpu_shares_to_weight(MIN_SHARES);
            }
        }
        out
    }

    /// `calculateLinuxResources` for one container, with its `oom_score_adj`.
    ///
    /// - shares from the cpu request, or from the limit when there is no request;
    /// - quota from the cpu limit (0 = no limit), period 100000;
    /// - memory limit from `limits.memory` (none when absent or zero).
    pub fn container_cgroup(
        &self,
        which: ContainerRef,
        node_memory_capacity: i64,
    ) -> Result<ContainerCgroup, ResourceError> {
        let c = self
            .container(which)
            .ok_or(ResourceError::NoSuchContainer(which))?
            .defaulted();
        let cpu_request = c.request(RESOURCE_CPU);
        let cpu_limit = c.limit(RESOURCE_CPU);
        let shares = if cpu_request.is_zero() && !cpu_limit.is_zero() {
            milli_cpu_to_shares(cpu_limit.to_millicores())
        } else {
            milli_cpu_to_shares(cpu_request.to_millicores())
        };
        let memory = c.limit(RESOURCE_MEMORY).to_bytes();
        Ok(ContainerCgroup {
            cpu_shares: shares,
            cpu_weight: cpu_shares_to_weight(shares),
            cpu_quota: milli_cpu_to_quota(cpu_limit.to_millicores(), QUOTA_PERIOD),
            cpu_period: QUOTA_PERIOD,
            memory_limit: (memory != 0).then_some(memory),
            oom_score_adj: self.oom_score_adj(which, node_memory_capacity)?,
        })
    }

    /// `GetContainerOOMScoreAdjust`: Guaranteed -997, BestEffort 1000, Burstable
    /// `1000 - 1000*memoryRequest/memoryCapacity` bounded to [3, 999] (3 = 1000 + -997; 1000
    /// becomes 999). A sidecar gets at most the value of the regular container with the
    /// smallest memory request. (Node-critical pods, which also get -997, are not modelled.)
    pub fn oom_score_adj(
        &self,
        which: ContainerRef,
        node_memory_capacity: i64,
    ) -> Result<i32, ResourceError> {
        let pod = self.defaulted();
        let c = pod
            .container(which)
            .ok_or(ResourceError::NoSuchContainer(which))?;
        match self.qos_class() {
            QosClass::Guaranteed => return Ok(GUARANTEED_OOM_SCORE_ADJ),
            QosClass::BestEffort => return Ok(BEST_EFFORT_OOM_SCORE_ADJ),
            QosClass::Burstable => {}
        }
        if node_memory_capacity <= 0 {
            return Err(ResourceError::NoMemoryCapacity {
                capacity: node_memory_capacity,
            });
        }
        let capacity = i128::from(node_memory_capacity);
        let adjust = |request: i64| 1000 - (1000 * i128::from(request)) / capacity;
        let mut oom = adjust(c.request(RESOURCE_MEMORY).to_bytes());
        let is_sidecar =
            matches!(which, ContainerRef::Init(i) if pod.init_containers[i].restartable);
        if is_sidecar
            && let Some(min) = pod
                .containers
                .iter()
                .map(|c| c.request(RESOURCE_MEMORY).to_bytes())
                .min()
        {
            oom = oom.min(adjust(min));
        }
        let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
        if oom < floor {
            return Ok(floor as i32);
        }
        if oom == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
            return Ok(BEST_EFFORT_OOM_SCORE_ADJ - 1);
        }
        Ok(oom as i32)
    }

    /// Node admission as `noderesources.Fits` (cpu and memory): a positive pod request above
    /// `allocatable - used` is refused with kubelet's `OutOf<resource>` reason and message.
    /// `used` is the sum of the requests of the pods already admitted.
    pub fn check_fit(
        &self,
        allocatable: NodeResources,
        used: NodeResources,
    ) -> Vec<InsufficientResource> {
        let requests = self.requests();
        let cpu = requests
            .get(RESOURCE_CPU)
            .map_or(0, Quantity::to_millicores);
        let memory = requests.get(RESOURCE_MEMORY).map_or(0, Quantity::to_bytes);
        let mut out = Vec::new();
        for (name, requested, used, capacity) in [
            (RESOURCE_CPU, cpu, used.milli_cpu, allocatable.milli_cpu),
            (RESOURCE_MEMORY, memory, used.memory, allocatable.memory),
        ] {
            if requested > 0 && requested > capacity.saturating_sub(used) {
                out.push(InsufficientResource {
                    reason: format!("OutOf{name}"),
                    message: format!(
                        "Node didn't have enough resource: {name}, requested: {requested}, \
                         used: {used}, capacity: {capacity}"
                    ),
                });
            }
        }
        out
    }
}

fn is_qos_resource(name: &str) -> bool {
    name == RESOURCE_CPU || name == RESOURCE_MEMORY
}

/// The aggregation shared by `PodRequests` and `PodLimits` (component-helpers), plus the
/// `ContainerFn` bookkeeping `ResourceConfigForPod` does: app containers are checked with their
/// own list, init containers with the cumulative list (own + earlier sidecars).
fn aggregate(
    pod: &PodResources,
    pick: impl Fn(&ContainerResources) -> &ResourceList,
) -> (ResourceList, LimitsDeclared) {
    let mut declared = LimitsDeclared {
        cpu: true,
        memory: true,
    };
    let mut note = |list: &ResourceList| {
        if list.get(RESOURCE_CPU).is_none_or(Quantity::is_zero) {
            declared.cpu = false;
        }
        if list.get(RESOURCE_MEMORY).is_none_or(Quantity::is_zero) {
            declared.memory = false;
        }
    };
    let mut total = ResourceList::new();
    for c in &pod.containers {
        note(pick(c));
        add_list(&mut total, pick(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in &pod.init_containers {
        let own = pick(&c.resources);
        let effective = if c.restartable {
            add_list(&mut total, own);
            add_list(&mut sidecars, own);
            sidecars.clone()
        } else {
            let mut tmp = own.clone();
            add_list(&mut tmp, &sidecars);
            tmp
        };
        note(&effective);
        max_list(&mut init_max, &effective);
    }
    max_list(&mut total, &init_max);
    (total, declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
            .collect()
    }

    fn res(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ContainerResources {
        ContainerResources {
            requests: list(requests),
            limits: list(limits),
        }
    }

    fn pod(containers: Vec<ContainerResources>) -> PodResources {
        PodResources {
            init_containers: vec![],
            containers,
        }
    }

    const GI: i64 = 1 << 30;

    #[test]
    fn shares_quota_and_weight_table() {
        // (millicpu, shares, old weight, new weight, cpu.max as a limit)
        // The table of pod-semantics.md section 5.
        let rows: &[(i64, u64, u64, u64, &str)] = &[
            (0, 2, 1, 1, "max 100000"),
            (10, 10, 1, 4, "1000 100000"),
            (100, 102, 4, 17, "10000 100000"),
            (250, 256, 10, 35, "25000 100000"),
            (500, 512, 20, 59, "50000 100000"),
            (1000, 1024, 39, 100, "100000 100000"),
            (2000, 2048, 79, 174, "200000 100000"),
            (4000, 4096, 157, 303, "400000 100000"),
        ];
        for &(milli, shares, old, new, max) in rows {
            assert_eq!(milli_cpu_to_shares(milli), shares, "shares of {milli}m");
            assert_eq!(
                cpu_shares_to_weight_linear(shares),
                old,
                "old weight of {shares}"
            );
            assert_eq!(cpu_shares_to_weight(shares), new, "new weight of {shares}");
            assert_eq!(
                cpu_max_line(milli_cpu_to_quota(milli, QUOTA_PERIOD), QUOTA_PERIOD),
                max
            );
        }
        assert_eq!(milli_cpu_to_shares(1), MIN_SHARES);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(1, QUOTA_PERIOD), MIN_QUOTA_PERIOD);
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(MAX_SHARES), 10_000);
        assert_eq!(cpu_shares_to_weight(MAX_SHARES - 1), 10_000);
        // Monotonic over the whole range.
        let mut last = 0;
        for s in 2..=MAX_SHARES {
            let w = cpu_shares_to_weight(s);
            assert!(w >= last && (1..=10_000).contains(&w), "weight({s}) = {w}");
            last = w;
        }
    }

    #[test]
    fn container_cgroup_follows_calculate_linux_resources() {
        let p = pod(vec![
            res(
                &[("cpu", "250m"), ("memory", "64Mi")],
                &[("cpu", "500m"), ("memory", "128Mi")],
            ),
            res(&[], &[("cpu", "2")]),
            res(&[], &[]),
        ]);
        let c0 = p.container_cgroup(ContainerRef::App(0), 8 * GI).unwrap();
        assert_eq!(c0.cpu_shares, 256);
        assert_eq!(c0.cpu_weight, 35);
        assert_eq!(c0.cpu_max(), "50000 100000");
        assert_eq!(c0.memory_max(), "134217728");
        // Limit only: the request defaults to the limit.
        let c1 = p.container_cgroup(ContainerRef::App(1), 8 * GI).unwrap();
        assert_eq!(c1.cpu_shares, 2048);
        assert_eq!(c1.cpu_max(), "200000 100000");
        assert_eq!(c1.memory_max(), "max");
        let c2 = p.container_cgroup(ContainerRef::App(2), 8 * GI).unwrap();
        assert_eq!(c2.cpu_shares, 2);
        assert_eq!(c2.cpu_max(), "max 100000");
        assert!(p.container_cgroup(ContainerRef::App(3), GI).is_err());
    }

    #[test]
    fn qos_classes() {
        let guaranteed = pod(vec![res(&[], &[("cpu", "1"), ("memory", "1Gi")])]);
        assert_eq!(guaranteed.qos_class(), QosClass::Guaranteed);
        // 1 == 1000m and 1Gi == 1024Mi: equal values.
        let guaranteed2 = pod(vec![res(
            &[("cpu", "1000m"), ("memory", "1024Mi")],
            &[("cpu", "1"), ("memory", "1Gi")],
        )]);
        assert_eq!(guaranteed2.qos_class(), QosClass::Guaranteed);
        assert_eq!(pod(vec![res(&[], &[])]).qos_class(), QosClass::BestEffort);
        // Zero quantities do not count.
        assert_eq!(
            pod(vec![res(&[("cpu", "0")], &[])]).qos_class(),
            QosClass::BestEffort
        );
        // Non-QoS resources do not count.
        assert_eq!(
            pod(vec![res(&[("ephemeral-storage", "1Gi")], &[])]).qos_class(),
            QosClass::BestEffort
        );
        assert_eq!(
            pod(vec![res(&[("cpu", "100m")], &[])]).qos_class(),
            QosClass::Burstable
        );
        assert_eq!(
            pod(vec![res(
                &[("cpu", "500m")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])
            .qos_class(),
            QosClass::Burstable
        );
        // Only cpu limited: not Guaranteed.
        assert_eq!(
            pod(vec![res(&[], &[("cpu", "1")])]).qos_class(),
            QosClass::Burstable
        );
        // One container without limits spoils it.
        let mixed = pod(vec![
            res(&[], &[("cpu", "1"), ("memory", "1Gi")]),
            res(&[], &[]),
        ]);
        assert_eq!(mixed.qos_class(), QosClass::Burstable);
        // Init containers count too.
        let mut with_init = guaranteed.clone();
        with_init.init_containers.push(InitContainerResources {
            resources: res(&[("cpu", "1")], &[]),
            restartable: false,
        });
        assert_eq!(with_init.qos_class(), QosClass::Burstable);
    }

    #[test]
    fn oom_score_adj_per_class() {
        let cap = 10 * GI;
        let g = pod(vec![res(&[], &[("cpu", "1"), ("memory", "1Gi")])]);
        assert_eq!(g.oom_score_adj(ContainerRef::App(0), cap), Ok(-997));
        let be = pod(vec![res(&[], &[])]);
        assert_eq!(be.oom_score_adj(ContainerRef::App(0), cap), Ok(1000));
        // 1Gi of 10Gi: 1000 - 100 = 900.
        let b = pod(vec![
            res(&[("memory", "1Gi")], &[]),
            res(&[("cpu", "1")], &[]),
        ]);
        assert_eq!(b.oom_score_adj(ContainerRef::App(0), cap), Ok(900));
        // No memory request: 1000 becomes 999.
        assert_eq!(b.oom_score_adj(ContainerRef::App(1), cap), Ok(999));
        // Requesting everything: floor of 3.
        let big = pod(vec![res(&[("memory", "20Gi")], &[])]);
        assert_eq!(big.oom_score_adj(ContainerRef::App(0), cap), Ok(3));
        assert!(b.oom_score_adj(ContainerRef::App(0), 0).is_err());
        // A sidecar gets at most the value of the smallest regular request.
        let mut s = pod(vec![
            res(&[("memory", "2Gi")], &[]),
            res(&[("memory", "1Gi")], &[]),
        ]);
        s.init_containers.push(InitContainerResources {
            resources: res(&[("cpu", "100m")], &[]),
            restartable: true,
        });
        s.init_containers.push(InitContainerResources {
            resources: res(&[("cpu", "100m")], &[]),
            restartable: false,
        });
        assert_eq!(s.oom_score_adj(ContainerRef::Init(0), cap), Ok(900));
        assert_eq!(s.oom_score_adj(ContainerRef::Init(1), cap), Ok(999));
    }

    #[test]
    fn pod_cgroup_limits_only_when_every_container_declares_one() {
        let both = pod(vec![
            res(&[("cpu", "100m")], &[("cpu", "500m"), ("memory", "64Mi")]),
            res(&[], &[("cpu", "250m")]),
        ]);
        let cg = both.pod_cgroup();
        assert_eq!(cg.qos_class, QosClass::Burstable);
        // Requests: 100m + 250m (defaulted from the limit).
        assert_eq!(cg.cpu_shares, milli_cpu_to_shares(350));
        assert_eq!(cg.cpu_max().as_deref(), Some("75000 100000"));
        // Only one container has a memory limit: no pod memory limit.
        assert_eq!(cg.memory_limit, None);

        let guaranteed = pod(vec![
            res(&[], &[("cpu", "1"), ("memory", "1Gi")]),
            res(&[], &[("cpu", "500m"), ("memory", "512Mi")]),
        ]);
        let cg = guaranteed.pod_cgroup();
        assert_eq!(cg.qos_class, QosClass::Guaranteed);
        assert_eq!(cg.cpu_quota, Some(150_000));
        assert_eq!(cg.memory_limit, Some(1536 * 1024 * 1024));

        let best_effort = pod(vec![res(&[], &[])]).pod_cgroup();
        assert_eq!(best_effort.cpu_shares, 2);
        assert_eq!(best_effort.cpu_quota, None);
    }

    #[test]
    fn init_containers_use_the_max_rule_with_sidecars() {
        // app 1 cpu; sidecar 500m; init 2 cpu after the sidecar: init use = 2 + 0.5.
        let p = PodResources {
            init_containers: vec![
                InitContainerResources {
                    resources: res(&[("cpu", "500m")], &[("cpu", "500m"), ("memory", "1Gi")]),
                    restartable: true,
                },
                InitContainerResources {
                    resources: res(&[("cpu", "2")], &[("cpu", "2"), ("memory", "1Gi")]),
                    restartable: false,
                },
            ],
            containers: vec![res(&[("cpu", "1")], &[("cpu", "1"), ("memory", "2Gi")])],
        };
        assert_eq!(p.requests()["cpu"].to_millicores(), 2500);
        assert_eq!(p.limits()["cpu"].to_millicores(), 2500);
        // memory: app 2Gi + sidecar 1Gi = 3Gi vs init 1Gi + sidecar 1Gi = 2Gi.
        assert_eq!(p.limits()["memory"].to_bytes(), 3 * GI);
        assert_eq!(p.qos_class(), QosClass::Guaranteed);
        let cg = p.pod_cgroup();
        assert_eq!(cg.cpu_quota, Some(250_000));
        assert_eq!(cg.memory_limit, Some(3 * GI));

        // A regular init container without limits counts as declared when an earlier sidecar
        // declares them (ContainerFn sees the cumulative list).
        let q = PodResources {
            init_containers: vec![
                InitContainerResources {
                    resources: res(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                    restartable: true,
                },
                InitContainerResources {
                    resources: res(&[("cpu", "100m")], &[]),
                    restartable: false,
                },
            ],
            containers: vec![res(&[], &[("cpu", "1"), ("memory", "1Gi")])],
        };
        let cg = q.pod_cgroup();
        assert_eq!(cg.qos_class, QosClass::Burstable);
        assert_eq!(cg.cpu_quota, Some(200_000));
        assert_eq!(cg.memory_limit, Some(2 * GI));
    }

    #[test]
    fn validation_messages() {
        let bad = res(&[("cpu", "2")], &[("cpu", "1")]);
        assert_eq!(
            bad.validate("spec.containers[0].resources")
                .unwrap_err()
                .to_string(),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than \
             or equal to cpu limit of 1"
        );
        let negative = res(&[("memory", "-1")], &[]);
        assert_eq!(
            negative.validate("r").unwrap_err().to_string(),
            "r.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        assert!(res(&[("gpu", "1")], &[]).validate("r").is_err());
        assert!(res(&[("example.com/gpu", "1")], &[]).validate("r").is_ok());
        assert!(res(&[("cpu", "1")], &[("cpu", "1")]).validate("r").is_ok());
    }

    #[test]
    fn admission_fit_messages() {
        let p = pod(vec![res(&[("cpu", "2"), ("memory", "1Gi")], &[])]);
        let node = NodeResources {
            milli_cpu: 1000,
            memory: 4 * GI,
        };
        let refused = p.check_fit(node, NodeResources::default());
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].reason, "OutOfcpu");
        assert_eq!(
            refused[0].message,
            "Node didn't have enough resource: cpu, requested: 2000, used: 0, capacity: 1000"
        );
        let used = NodeResources {
            milli_cpu: 0,
            memory: 3 * GI + 1,
        };
        let node2 = NodeResources {
            milli_cpu: 4000,
            ..node
        };
        assert_eq!(p.check_fit(node2, used)[0].reason, "OutOfmemory");
        assert!(p.check_fit(node2, NodeResources::default()).is_empty());
    }
}
