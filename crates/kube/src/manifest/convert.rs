//! API defaulting (`SetDefaults_*` in `pkg/apis/core/v1/defaults.go`), the mapping onto the
//! supervisor's and the resource code's plain structs, and kubelet's pod hostname rules
//! (`GeneratePodHostNameAndDomain`, `truncatePodHostnameIfNeeded` in `kubelet_pods.go`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, HTTPGetAction, Pod, Probe, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::validate::opt;
use super::{ErrorKind, FieldError, ManifestError};
use crate::quantity::{QUANTITY_REGEX, Quantity, QuantityError};
use crate::resources::{
    ContainerResources, InitContainerResources, PodResources, ResourceError, ResourceList,
};
use crate::supervisor::backoff::BackoffConfig;
use crate::supervisor::spec::{
    ContainerSpec, DEFAULT_TERMINATION_GRACE_PERIOD, PodSpec, ProbeSpec, RestartPolicy,
};

/// The namespace of a pod that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The reserved image name: a read-only view of the host's `/usr`, `/bin`, ... (issue 5). It is
/// never pulled, so its default pull policy is `IfNotPresent` (it is always present).
pub const HOST_IMAGE: &str = "host";

/// The cluster domain in pod FQDNs and DNS search paths (kubelet's usual `clusterDomain`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The longest FQDN kubelet accepts as a hostname with `setHostnameAsFQDN`.
const MAX_FQDN_HOSTNAME: usize = 64;

/// Fills in what the API server defaults on create, so that the stored pod (and `pod inspect`)
/// reads as `kubectl get pod -o yaml` would. Idempotent. Pods are validated the same with or
/// without it.
pub fn apply_defaults(pod: &mut Pod) {
    if opt(&pod.metadata.namespace).is_none() {
        pod.metadata.namespace = Some(DEFAULT_NAMESPACE.into());
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD.as_secs() as i64);
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network == Some(true);
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        default_container(c, host_network);
    }
    for v in spec.volumes.iter_mut().flatten() {
        let has_source = serde_json::to_value(&*v).is_ok_and(|j| {
            j.as_object()
                .is_some_and(|m| m.iter().any(|(k, val)| k != "name" && !val.is_null()))
        });
        if !has_source {
            v.empty_dir = Some(EmptyDirVolumeSource::default());
        }
        if let Some(hp) = v.host_path.as_mut() {
            hp.type_.get_or_insert_with(String::new);
        }
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if opt(field).is_none() {
        *field = Some(value.to_string());
    }
}

fn set_if_zero<T: Copy + PartialEq + Default>(field: &mut Option<T>, value: T) {
    if field.is_none_or(|v| v == T::default()) {
        *field = Some(value);
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut c.termination_message_policy, "File");
    if opt(&c.image_pull_policy).is_none() {
        c.image_pull_policy = Some(default_pull_policy(opt(&c.image).unwrap_or("")).into());
    }
    for p in c.ports.iter_mut().flatten() {
        set_if_empty(&mut p.protocol, "TCP");
        if host_network && p.host_port.unwrap_or(0) == 0 {
            p.host_port = Some(p.container_port);
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        let defaults = ProbeSpec::default();
        set_if_zero(&mut probe.timeout_seconds, defaults.timeout_seconds);
        set_if_zero(&mut probe.period_seconds, defaults.period_seconds);
        set_if_zero(&mut probe.success_threshold, defaults.success_threshold);
        set_if_zero(&mut probe.failure_threshold, defaults.failure_threshold);
        if let Some(h) = probe.http_get.as_mut() {
            default_http_get(h);
        }
    }
    if let Some(lc) = c.lifecycle.as_mut() {
        for h in [&mut lc.post_start, &mut lc.pre_stop].into_iter().flatten() {
            if let Some(g) = h.http_get.as_mut() {
                default_http_get(g);
            }
        }
    }
    for var in c.env.iter_mut().flatten() {
        if let Some(f) = var.value_from.as_mut().and_then(|s| s.field_ref.as_mut()) {
            set_if_empty(&mut f.api_version, "v1");
        }
    }
    // SetDefaults_Pod: a limit without a request makes the request equal to the limit.
    if let Some(r) = c.resources.as_mut()
        && let Some(limits) = r.limits.clone()
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            requests.entry(name).or_insert(q);
        }
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    set_if_empty(&mut h.path, "/");
    set_if_empty(&mut h.scheme, "HTTP");
}

/// `SetDefaults_Container`: `Always` for `:latest` or no tag, `IfNotPresent` otherwise
/// (including digests); [`HOST_IMAGE`] is always present.
fn default_pull_policy(image: &str) -> &'static str {
    if image == HOST_IMAGE || image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

/// Maps the API pod onto the supervisor's [`PodSpec`] and the resource code's
/// [`PodResources`], with the API defaults for unset fields (0 counts as unset, as in Go).
/// `uid` comes from `metadata.uid`: the caller assigns it before calling. Errors if a value
/// cannot be mapped (an unknown restart policy, a malformed quantity, a bad
/// `peapod.io/restart-backoff`) or the supervisor refuses the result; [`super::validate`]
/// reports all of those first.
pub fn to_supervisor(pod: &Pod) -> Result<(PodSpec, PodResources), ManifestError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let invalid = |errors: Vec<FieldError>| ManifestError::Invalid {
        name: name.clone(),
        errors,
    };
    let Some(spec) = &pod.spec else {
        return Err(invalid(vec![field_error(
            "spec",
            ErrorKind::Required,
            None,
            "",
        )]));
    };
    let mut errors = Vec::new();
    let mut out = PodSpec::new(name.clone(), pod.metadata.uid.clone().unwrap_or_default());
    out.namespace = opt(&pod.metadata.namespace)
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    match restart_policy("spec.restartPolicy", &spec.restart_policy) {
        Ok(p) => out.restart_policy = p.unwrap_or_default(),
        Err(e) => errors.push(e),
    }
    out.termination_grace_period = match spec.termination_grace_period_seconds {
        Some(s) => Duration::from_secs(s.max(0).unsigned_abs()),
        None => DEFAULT_TERMINATION_GRACE_PERIOD,
    };
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    match BackoffConfig::from_annotations(&annotations) {
        Ok(b) => out.backoff = b,
        Err(e) => errors.push(field_error(
            "metadata.annotations",
            ErrorKind::Other,
            None,
            &e.to_string(),
        )),
    }

    let mut resources = PodResources::default();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        let cs = container_spec(c, &path, &mut errors);
        let restartable = cs.restart_policy == Some(RestartPolicy::Always);
        out.init_containers.push(cs);
        resources.init_containers.push(InitContainerResources {
            resources: collect(
                container_resources(c.resources.as_ref(), &format!("{path}.resources")),
                &mut errors,
            ),
            restartable,
        });
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        out.containers.push(container_spec(c, &path, &mut errors));
        resources.containers.push(collect(
            container_resources(c.resources.as_ref(), &format!("{path}.resources")),
            &mut errors,
        ));
    }
    if errors.is_empty() {
        if let Err(e) = out.validate() {
            errors.push(field_error(&e.path, ErrorKind::Other, None, &e.message));
        }
        if let Err(e) = resources.validate() {
            errors.push(resource_error(e));
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok((out, resources))
}

fn collect(
    r: Result<ContainerResources, Vec<FieldError>>,
    errors: &mut Vec<FieldError>,
) -> ContainerResources {
    r.unwrap_or_else(|e| {
        errors.extend(e);
        ContainerResources::default()
    })
}

fn field_error(field: &str, kind: ErrorKind, value: Option<String>, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        kind,
        value,
        detail: detail.to_string(),
    }
}

fn resource_error(e: ResourceError) -> FieldError {
    match e {
        ResourceError::Invalid {
            path,
            value,
            detail,
        } => field_error(
            &path,
            ErrorKind::Invalid,
            Some(format!("{value:?}")),
            &detail,
        ),
        other => field_error("spec", ErrorKind::Other, None, &other.to_string()),
    }
}

fn restart_policy(
    field: &str,
    value: &Option<String>,
) -> Result<Option<RestartPolicy>, FieldError> {
    Ok(match opt(value) {
        None => None,
        Some("Always") => Some(RestartPolicy::Always),
        Some("OnFailure") => Some(RestartPolicy::OnFailure),
        Some("Never") => Some(RestartPolicy::Never),
        Some(other) => {
            return Err(field_error(
                field,
                ErrorKind::NotSupported,
                Some(format!("{other:?}")),
                "supported values: \"Always\", \"OnFailure\", \"Never\"",
            ));
        }
    })
}

fn container_spec(c: &Container, path: &str, errors: &mut Vec<FieldError>) -> ContainerSpec {
    let mut out = ContainerSpec::new(c.name.clone());
    out.image = c.image.clone().unwrap_or_default();
    match restart_policy(&format!("{path}.restartPolicy"), &c.restart_policy) {
        Ok(p) => out.restart_policy = p,
        Err(e) => errors.push(e),
    }
    out.startup_probe = c.startup_probe.as_ref().map(probe_spec);
    out.liveness_probe = c.liveness_probe.as_ref().map(probe_spec);
    out.readiness_probe = c.readiness_probe.as_ref().map(probe_spec);
    out
}

/// `SetDefaults_Probe`: zero or unset takes the default.
fn probe_spec(p: &Probe) -> ProbeSpec {
    let d = ProbeSpec::default();
    let or = |v: Option<i32>, default: i32| v.filter(|&v| v != 0).unwrap_or(default);
    ProbeSpec {
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(d.initial_delay_seconds),
        period_seconds: or(p.period_seconds, d.period_seconds),
        timeout_seconds: or(p.timeout_seconds, d.timeout_seconds),
        success_threshold: or(p.success_threshold, d.success_threshold),
        failure_threshold: or(p.failure_threshold, d.failure_threshold),
        termination_grace_period_seconds: p.termination_grace_period_seconds,
    }
}

/// One quantity of the API as an exact [`Quantity`], or the API server's error for it.
pub(super) fn parse_quantity(field: &str, q: &ApiQuantity) -> Result<Quantity, FieldError> {
    Quantity::parse(&q.0).map_err(|e| {
        let detail = match e {
            QuantityError::FormatWrong { .. } => {
                format!("quantities must match the regular expression '{QUANTITY_REGEX}'")
            }
            QuantityError::Suffix { .. } => "unable to parse quantity's suffix".to_string(),
            other => other.to_string(),
        };
        field_error(
            field,
            ErrorKind::Invalid,
            Some(format!("{:?}", q.0)),
            &detail,
        )
    })
}

/// A container's `resources` (`path` = `spec.containers[i].resources`) as exact quantities.
pub(super) fn container_resources(
    r: Option<&ResourceRequirements>,
    path: &str,
) -> Result<ContainerResources, Vec<FieldError>> {
    let mut out = ContainerResources::default();
    let mut errors = Vec::new();
    let Some(r) = r else { return Ok(out) };
    for (kind, list, target) in [
        ("limits", &r.limits, &mut out.limits),
        ("requests", &r.requests, &mut out.requests),
    ] {
        let target: &mut ResourceList = target;
        for (name, q) in list.iter().flatten() {
            match parse_quantity(&format!("{path}.{kind}[{name}]"), q) {
                Ok(v) => {
                    target.insert(name.clone(), v);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A pod's host name as kubelet computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHostname {
    /// `spec.hostnameOverride`, else `spec.hostname`, else the pod name; cut to 63 characters
    /// with trailing `-` and `.` removed. This is the name in `/etc/hosts`.
    pub hostname: String,
    /// `<subdomain>.<namespace>.svc.cluster.local` with `spec.subdomain` (and no override).
    pub domain: Option<String>,
    /// What to set in the pod's UTS namespace: the hostname, or the FQDN with
    /// `setHostnameAsFQDN`; `None` with `hostNetwork` (the pod shares the node's).
    pub uts_hostname: Option<String>,
}

impl PodHostname {
    /// `<hostname>.<domain>` when there is a domain.
    pub fn fqdn(&self) -> Option<String> {
        self.domain
            .as_ref()
            .map(|d| format!("{}.{d}", self.hostname))
    }
}

/// kubelet's hostname, domain and kernel hostname for `pod`. Errors when `setHostnameAsFQDN`
/// makes a hostname longer than 64 characters (kubelet refuses to start such a pod).
pub fn pod_hostname(pod: &Pod) -> Result<PodHostname, ManifestError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let default_spec = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let namespace = opt(&pod.metadata.namespace).unwrap_or(DEFAULT_NAMESPACE);
    let (chosen, domain) = match opt(&spec.hostname_override) {
        Some(h) => (h.to_string(), None),
        None => (
            opt(&spec.hostname).unwrap_or(&name).to_string(),
            opt(&spec.subdomain).map(|s| format!("{s}.{namespace}.svc.{CLUSTER_DOMAIN}")),
        ),
    };
    let hostname = truncate_hostname(&chosen);
    let mut out = PodHostname {
        uts_hostname: Some(hostname.clone()),
        hostname,
        domain,
    };
    if spec.host_network == Some(true) {
        out.uts_hostname = None;
    } else if spec.set_hostname_as_fqdn == Some(true)
        && let Some(fqdn) = out.fqdn()
    {
        if fqdn.len() > MAX_FQDN_HOSTNAME {
            return Err(ManifestError::Invalid {
                name,
                errors: vec![field_error(
                    "spec.setHostnameAsFQDN",
                    ErrorKind::Invalid,
                    Some("true".into()),
                    &format!(
                        "FQDN {fqdn:?} is too long ({MAX_FQDN_HOSTNAME} characters is the max, \
                         {} characters requested)",
                        fqdn.len()
                    ),
                )],
            });
        }
        out.uts_hostname = Some(fqdn);
    }
    Ok(out)
}

/// `truncatePodHostnameIfNeeded`: at most 63 characters, without a trailing `-` or `.`.
fn truncate_hostname(hostname: &str) -> String {
    if hostname.len() <= 63 {
        return hostname.to_string();
    }
    let mut cut = 63;
    while !hostname.is_char_boundary(cut) {
        cut -= 1;
    }
    hostname[..cut].trim_end_matches(['-', '.']).to_string()
}
