//! A container's environment and `$(VAR)` expansion, as kubelet computes them
//! (`makeEnvironmentVariables`, `podFieldSelectorRuntimeValue`, `containerResourceRuntimeValue`
//! in `pkg/kubelet/kubelet_pods.go`; the expansion syntax of
//! `third_party/forked/golang/expansion`).
//!
//! - `value` is expanded against the variables defined before it in the list;
//! - `valueFrom.fieldRef` and `valueFrom.resourceFieldRef` are resolved, not expanded;
//! - a later definition of a name replaces an earlier one (kubelet builds a map);
//! - `command` and `args` are expanded against the final environment.
//!
//! peapod has no services, so kubelet's service link variables are never added.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::convert::{container_resources, parse_quantity};
use super::validate::{opt, subscript};
use super::{ErrorKind, FieldError, ManifestError};
use crate::quantity::Quantity;
use crate::resources::{ContainerResources, ResourceList};

/// What kubelet knows when it starts a container and the manifest does not.
#[derive(Debug, Clone, Copy)]
pub struct EnvContext<'a> {
    /// `spec.nodeName`.
    pub node_name: &'a str,
    /// `status.hostIPs` (the first is `status.hostIP`).
    pub host_ips: &'a [String],
    /// `status.podIPs` (the first is `status.podIP`); with `hostNetwork`, the host's.
    pub pod_ips: &'a [String],
    /// Node allocatable (`cpu`, `memory`, `ephemeral-storage`): the value of a `limits.*`
    /// reference when the container sets no limit (`MergeContainerResourceLimits`).
    pub node_allocatable: &'a ResourceList,
}

/// The environment of `container` (an init or app container of `pod`), in definition order,
/// each name once with its last value.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<Vec<(String, String)>, ManifestError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let path = container_path(pod, container);
    for (i, var) in container.env.iter().flatten().enumerate() {
        let value = match &var.value_from {
            Some(from) => {
                let fp = format!("{path}.env[{i}].valueFrom");
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, ctx).ok_or_else(|| {
                        invalid(
                            pod,
                            &format!("{fp}.fieldRef.fieldPath"),
                            &f.field_path,
                            "unsupported field path",
                        )
                    })?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, container, r, ctx, &format!("{fp}.resourceFieldRef"))?
                } else {
                    return Err(invalid(
                        pod,
                        &fp,
                        "",
                        "only fieldRef and resourceFieldRef are supported",
                    ));
                }
            }
            None => {
                let raw = var.value.clone().unwrap_or_default();
                expand(&raw, |name| lookup(&env, name))
            }
        };
        match env.iter_mut().find(|(n, _)| *n == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    Ok(env)
}

/// `command` and `args` of `container` with `$(VAR)` expanded against `env`.
pub fn expand_command(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let expand_all = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .map(|s| expand(s, |name| lookup(env, name)))
            .collect()
    };
    (expand_all(&container.command), expand_all(&container.args))
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// kubelet's expansion: `$(NAME)` becomes the value of NAME when `lookup` knows it and stays
/// as written otherwise; `$$` is a literal `$`; any other `$` is kept, as is an unterminated
/// `$(`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.chars().next() {
            // A `$` at the very end stays.
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn container_path(pod: &Pod, container: &Container) -> String {
    let Some(spec) = &pod.spec else {
        return "spec.containers[0]".into();
    };
    if let Some(i) = spec
        .containers
        .iter()
        .position(|c| c.name == container.name)
    {
        return format!("spec.containers[{i}]");
    }
    if let Some(i) = spec
        .init_containers
        .iter()
        .flatten()
        .position(|c| c.name == container.name)
    {
        return format!("spec.initContainers[{i}]");
    }
    "spec.containers[0]".into()
}

fn invalid(pod: &Pod, field: &str, value: &str, detail: &str) -> ManifestError {
    ManifestError::Invalid {
        name: pod.metadata.name.clone().unwrap_or_default(),
        errors: vec![FieldError {
            field: field.to_string(),
            kind: ErrorKind::Invalid,
            value: Some(format!("{value:?}")),
            detail: detail.to_string(),
        }],
    }
}

/// `podFieldSelectorRuntimeValue` (after `ExtractFieldPathAsString`).
fn field_value(pod: &Pod, path: &str, ctx: &EnvContext<'_>) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((prefix, key)) = subscript(path) {
        let map = match prefix {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return None,
        };
        return Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => opt(&meta.namespace)
            .unwrap_or(super::DEFAULT_NAMESPACE)
            .to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| opt(&s.service_account_name))
            .unwrap_or("default")
            .to_string(),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        _ => return None,
    })
}

/// `containerResourceRuntimeValue`: the container's (or `containerName`'s) request or limit,
/// a missing limit replaced by node allocatable, divided by the divisor and rounded up.
fn resource_value(
    pod: &Pod,
    container: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    ctx: &EnvContext<'_>,
    field: &str,
) -> Result<String, ManifestError> {
    let target = match opt(&r.container_name) {
        None => container,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| {
                invalid(
                    pod,
                    &format!("{field}.containerName"),
                    name,
                    "no such container",
                )
            })?,
    };
    let as_invalid = |errors: Vec<FieldError>| ManifestError::Invalid {
        name: pod.metadata.name.clone().unwrap_or_default(),
        errors,
    };
    let resources: ContainerResources =
        container_resources(target.resources.as_ref(), &format!("{field}.resources"))
            .map_err(as_invalid)?
            .defaulted();
    let (kind, resource) = r.resource.split_once('.').ok_or_else(|| {
        invalid(
            pod,
            &format!("{field}.resource"),
            &r.resource,
            "unsupported resource",
        )
    })?;
    let value = match kind {
        "limits" => resources
            .limits
            .get(resource)
            .filter(|q| !q.is_zero())
            .or_else(|| ctx.node_allocatable.get(resource))
            .copied()
            .unwrap_or_default(),
        "requests" => resources
            .requests
            .get(resource)
            .copied()
            .unwrap_or_default(),
        _ => {
            return Err(invalid(
                pod,
                &format!("{field}.resource"),
                &r.resource,
                "unsupported resource",
            ));
        }
    };
    let divisor = match &r.divisor {
        Some(d) => {
            parse_quantity(&format!("{field}.divisor"), d).map_err(|e| as_invalid(vec![e]))?
        }
        None => Quantity::default(),
    };
    let out = if resource == "cpu" {
        // convertResourceCPUToString: ceil(milli / divisor milli), divisor 0 meaning 1.
        let d = match divisor.to_millicores() {
            0 => 1000,
            d => d,
        };
        ceil_div(value.to_millicores(), d)
    } else {
        // convertResourceMemoryToString and the like: ceil(value / divisor), 0 meaning 1.
        let d = match divisor.to_bytes() {
            0 => 1,
            d => d,
        };
        ceil_div(value.to_bytes(), d)
    };
    Ok(out.to_string())
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    let (v, d) = (i128::from(value), i128::from(divisor.max(1)));
    let q = v.div_euclid(d) + i128::from(v.rem_euclid(d) != 0);
    i64::try_from(q).unwrap_or(i64::MAX)
}
