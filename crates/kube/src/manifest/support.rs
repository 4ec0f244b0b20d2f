//! What peapod implements, field by field: one table per API type, walked over the pod as
//! JSON (the API's own field names, so a finding names the exact path).
//!
//! Fail-closed: a field that is set and not in its type's table is refused, so a field added
//! by a newer Kubernetes API (a k8s-openapi bump) is an error until someone classifies it here.
//! A refused or warned field holding its zero value (`""`, `false`, `0`, `[]`, `{}`, or an
//! object of such) is "not set", as it cannot ask for anything; value-dependent rules see
//! zero values too (`hostUsers: false` is not the default).

use serde_json::Value;

use super::{Unsupported, Warning};
use k8s_openapi::api::core::v1::Pod;

/// How peapod treats a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented (a type's table lists which of its own fields are).
    Supported,
    /// Accepted and ignored with a warning: ignoring it cannot change what the pod does here.
    Warned,
    /// Refused: the pod would behave differently.
    Refused,
    /// Depends on the value (see the note).
    Conditional,
}

/// One row of [`field_support`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSupport {
    /// The field, with `[]` for list elements: `spec.containers[].securityContext.privileged`.
    /// `spec.containers[]` rows also apply to `spec.initContainers[]`.
    pub path: String,
    pub support: Support,
    pub note: &'static str,
}

/// What a value-dependent rule decides.
enum Verdict {
    Ok,
    Warn(String),
    No(String),
}

/// A value-dependent rule: the field's value and the whole pod (as JSON).
type Check = fn(&Value, &Value) -> Verdict;

#[derive(Clone, Copy)]
enum Rule {
    /// Supported, everything below included.
    Yes,
    /// Supported; its fields are checked against the schema.
    Obj(&'static Schema),
    /// A supported list; the fields of each element are checked against the schema.
    List(&'static Schema),
    Warn(&'static str),
    No(&'static str),
    /// Decided by the value; the text describes the rule for [`field_support`].
    If(Check, &'static str),
}

struct Schema {
    fields: &'static [(&'static str, Rule)],
    /// The reason given for a field that the table does not list.
    other: &'static str,
}

use Rule::{If, List, No, Obj, Warn, Yes};

const POD: Schema = Schema {
    fields: &[
        ("apiVersion", Yes),
        ("kind", Yes),
        ("metadata", Obj(&META)),
        ("spec", Obj(&POD_SPEC)),
        (
            "status",
            Warn("ignored: peapod records the pod's status itself"),
        ),
    ],
    other: "",
};

const SET_BY_SERVER: &str = "ignored: peapod sets it when it creates the pod";

const META: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("namespace", Yes),
        ("labels", Yes),
        ("annotations", Yes),
        (
            "generateName",
            No("peapod does not generate pod names (hint: set metadata.name)"),
        ),
        ("uid", Warn(SET_BY_SERVER)),
        ("resourceVersion", Warn(SET_BY_SERVER)),
        ("generation", Warn(SET_BY_SERVER)),
        ("creationTimestamp", Warn(SET_BY_SERVER)),
        ("selfLink", Warn(SET_BY_SERVER)),
        ("managedFields", Warn(SET_BY_SERVER)),
        ("deletionTimestamp", Warn(SET_BY_SERVER)),
        ("deletionGracePeriodSeconds", Warn(SET_BY_SERVER)),
        (
            "ownerReferences",
            Warn("ignored: peapod has no garbage collector"),
        ),
        (
            "finalizers",
            Warn("ignored: peapod has no controllers to remove them"),
        ),
    ],
    other: "",
};

const NO_API: &str = "peapod has no API server";

const POD_SPEC: Schema = Schema {
    fields: &[
        ("containers", List(&CONTAINER)),
        ("initContainers", List(&CONTAINER)),
        ("volumes", List(&VOLUME)),
        ("restartPolicy", Yes),
        ("terminationGracePeriodSeconds", Yes),
        ("hostname", Yes),
        ("hostnameOverride", Yes),
        ("subdomain", Yes),
        ("setHostnameAsFQDN", Yes),
        ("hostAliases", Yes),
        ("hostNetwork", Yes),
        ("hostIPC", Yes),
        ("hostPID", Yes),
        ("shareProcessNamespace", Yes),
        ("dnsPolicy", Yes),
        ("dnsConfig", Yes),
        (
            "enableServiceLinks",
            Yes, // there are no services, so there are no service variables to inject
        ),
        ("nodeName", Yes),
        ("nodeSelector", Yes),
        ("affinity", Obj(&AFFINITY)),
        ("tolerations", Yes),
        ("securityContext", Obj(&POD_SECURITY)),
        (
            "hostUsers",
            If(
                host_users,
                "true is supported; false (a user namespace) is refused",
            ),
        ),
        (
            "os",
            If(os_name, "linux is supported; any other OS is refused"),
        ),
        (
            "automountServiceAccountToken",
            If(
                automount_token,
                "false is supported; true warns (no token: peapod has no API server)",
            ),
        ),
        (
            "serviceAccountName",
            If(service_account, "\"default\" is supported; others warn"),
        ),
        (
            "serviceAccount",
            If(service_account, "\"default\" is supported; others warn"),
        ),
        (
            "schedulerName",
            If(
                scheduler_name,
                "\"default-scheduler\" is supported; others warn",
            ),
        ),
        (
            "priority",
            If(
                priority,
                "0 is supported; others warn (no preemption or eviction)",
            ),
        ),
        (
            "priorityClassName",
            Warn("ignored: peapod neither preempts nor evicts pods by priority"),
        ),
        (
            "preemptionPolicy",
            If(
                preemption_policy,
                "PreemptLowerPriority (the default) is supported; Never warns",
            ),
        ),
        (
            "imagePullSecrets",
            Warn("ignored: peapod does not pull from registries yet"),
        ),
        (
            "evictionResponders",
            Warn("ignored: peapod has no Eviction API"),
        ),
        (
            "activeDeadlineSeconds",
            No("the supervisor has no pod deadline"),
        ),
        (
            "ephemeralContainers",
            No(
                "ephemeral containers are added through the API, which peapod does not have \
                (hint: use `peapod pod exec`)",
            ),
        ),
        (
            "readinessGates",
            No(
                "readiness gate conditions are set through the API, which peapod does not have: \
                the pod would never be Ready",
            ),
        ),
        (
            "schedulingGates",
            No("a gated pod waits for the API to remove its gates, which peapod does not have"),
        ),
        ("schedulingGroup", No("peapod has no gang scheduling")),
        (
            "topologySpreadConstraints",
            No("peapod does not evaluate topology spread"),
        ),
        (
            "overhead",
            No("peapod has no RuntimeClasses to account overhead"),
        ),
        ("runtimeClassName", No("peapod has a single runtime")),
        (
            "resourceClaims",
            No("peapod has no dynamic resource allocation"),
        ),
        (
            "resources",
            No("pod-level resources are not supported (hint: set container resources)"),
        ),
    ],
    other: "",
};

const AFFINITY: Schema = Schema {
    fields: &[
        ("nodeAffinity", Yes),
        (
            "podAffinity",
            No("peapod does not evaluate inter-pod affinity"),
        ),
        (
            "podAntiAffinity",
            No("peapod does not evaluate inter-pod anti-affinity"),
        ),
    ],
    other: "",
};

const POD_SECURITY: Schema = Schema {
    fields: &[
        ("runAsUser", Yes),
        ("runAsGroup", Yes),
        ("runAsNonRoot", Yes),
        (
            "seccompProfile",
            If(
                seccomp,
                "RuntimeDefault and Unconfined are supported; Localhost is refused",
            ),
        ),
        (
            "appArmorProfile",
            If(
                apparmor,
                "Unconfined is supported; RuntimeDefault warns (no AppArmor profile is applied); \
                 Localhost is refused",
            ),
        ),
        ("seLinuxOptions", No("peapod applies no SELinux labels")),
        (
            "seLinuxChangePolicy",
            Warn("ignored: peapod does not relabel volumes"),
        ),
        (
            "fsGroup",
            No("peapod does not change volume ownership or add the group"),
        ),
        (
            "fsGroupChangePolicy",
            Yes, // meaningless without fsGroup, which is refused
        ),
        (
            "supplementalGroups",
            No("supplementary groups are not applied"),
        ),
        (
            "supplementalGroupsPolicy",
            If(supplemental_policy, "Merge is supported; Strict is refused"),
        ),
        ("sysctls", No("pod sysctls are not applied")),
        ("windowsOptions", Warn("ignored on Linux")),
    ],
    other: "",
};

const CONTAINER: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("image", Yes),
        ("imagePullPolicy", Yes),
        ("command", Yes),
        ("args", Yes),
        ("workingDir", Yes),
        ("env", List(&ENV_VAR)),
        ("ports", List(&PORT)),
        ("volumeMounts", List(&VOLUME_MOUNT)),
        ("resources", Obj(&RESOURCES)),
        ("livenessProbe", Obj(&PROBE)),
        ("readinessProbe", Obj(&PROBE)),
        ("startupProbe", Obj(&PROBE)),
        ("lifecycle", Obj(&LIFECYCLE)),
        ("securityContext", Obj(&SECURITY)),
        ("restartPolicy", Yes),
        (
            "terminationMessagePath",
            If(
                termination_message_path,
                "/dev/termination-log is supported; other paths warn (not read)",
            ),
        ),
        (
            "terminationMessagePolicy",
            If(
                termination_message_policy,
                "File is supported; FallbackToLogsOnError warns (not read)",
            ),
        ),
        (
            "envFrom",
            No("envFrom reads ConfigMaps or Secrets, which peapod does not have"),
        ),
        (
            "stdin",
            No("peapod does not attach to a container's stdin (hint: use `peapod pod exec -i`)"),
        ),
        (
            "stdinOnce",
            No("peapod does not attach to a container's stdin"),
        ),
        (
            "tty",
            No("peapod does not give containers a terminal (hint: use `peapod pod exec -t`)"),
        ),
        ("volumeDevices", No("raw block volumes are not supported")),
        (
            "resizePolicy",
            Warn("ignored: peapod does not resize running containers"),
        ),
        (
            "restartPolicyRules",
            No("the supervisor has no exit-code restart rules"),
        ),
    ],
    other: "",
};

const ENV_VAR: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("value", Yes),
        ("valueFrom", Obj(&ENV_SOURCE)),
    ],
    other: "",
};

const ENV_SOURCE: Schema = Schema {
    fields: &[
        ("fieldRef", Yes),
        ("resourceFieldRef", Yes),
        (
            "configMapKeyRef",
            No("peapod has no ConfigMaps (hint: use `value`)"),
        ),
        (
            "secretKeyRef",
            No("peapod has no Secrets (hint: use `value`, or a hostPath volume)"),
        ),
        ("fileKeyRef", No("environment files are not supported")),
    ],
    other: "",
};

const PORT: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("containerPort", Yes),
        ("protocol", Yes),
        ("hostPort", Yes),
        ("hostIP", Yes),
    ],
    other: "",
};

const VOLUME_MOUNT: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("mountPath", Yes),
        ("readOnly", Yes),
        ("subPath", Yes),
        ("mountPropagation", Yes),
        (
            "recursiveReadOnly",
            If(
                recursive_read_only,
                "Disabled is supported; IfPossible warns (mounted read-only, not recursively); \
                 Enabled is refused",
            ),
        ),
        (
            "subPathExpr",
            No("subPathExpr is not supported (hint: use subPath)"),
        ),
        (
            "bindMountOptions",
            No("extra bind mount options are not supported"),
        ),
    ],
    other: "",
};

const RESOURCES: Schema = Schema {
    fields: &[
        ("limits", Yes),
        ("requests", Yes),
        ("claims", No("peapod has no dynamic resource allocation")),
    ],
    other: "",
};

const PROBE: Schema = Schema {
    fields: &[
        ("exec", Yes),
        ("httpGet", Obj(&HTTP_GET)),
        ("tcpSocket", Yes),
        (
            "grpc",
            No("gRPC probes are not supported (hint: use exec, httpGet or tcpSocket)"),
        ),
        ("initialDelaySeconds", Yes),
        ("periodSeconds", Yes),
        ("timeoutSeconds", Yes),
        ("successThreshold", Yes),
        ("failureThreshold", Yes),
        ("terminationGracePeriodSeconds", Yes),
    ],
    other: "",
};

const HTTP_GET: Schema = Schema {
    fields: &[
        ("host", Yes),
        ("path", Yes),
        ("port", Yes),
        ("scheme", Yes),
        ("httpHeaders", Yes),
        (
            "protocol",
            If(http_protocol, "HTTP/1.1 is supported; others are refused"),
        ),
    ],
    other: "",
};

const LIFECYCLE: Schema = Schema {
    fields: &[
        ("postStart", Obj(&HANDLER)),
        ("preStop", Obj(&HANDLER)),
        ("stopSignal", No("peapod stops containers with SIGTERM")),
    ],
    other: "",
};

const HANDLER: Schema = Schema {
    fields: &[
        ("exec", Yes),
        ("httpGet", Obj(&HTTP_GET)),
        ("sleep", Yes),
        (
            "tcpSocket",
            No("tcpSocket is not a lifecycle handler (kubelet refuses it too)"),
        ),
    ],
    other: "",
};

const SECURITY: Schema = Schema {
    fields: &[
        ("runAsUser", Yes),
        ("runAsGroup", Yes),
        ("runAsNonRoot", Yes),
        ("capabilities", Yes),
        ("privileged", Yes),
        ("readOnlyRootFilesystem", Yes),
        ("allowPrivilegeEscalation", Yes),
        (
            "seccompProfile",
            If(
                seccomp,
                "RuntimeDefault and Unconfined are supported; Localhost is refused",
            ),
        ),
        (
            "appArmorProfile",
            If(
                apparmor,
                "Unconfined is supported; RuntimeDefault warns (no AppArmor profile is applied); \
                 Localhost is refused",
            ),
        ),
        (
            "procMount",
            If(proc_mount, "Default is supported; Unmasked is refused"),
        ),
        ("seLinuxOptions", No("peapod applies no SELinux labels")),
        ("windowsOptions", Warn("ignored on Linux")),
    ],
    other: "",
};

const VOLUME: Schema = Schema {
    fields: &[
        ("name", Yes),
        ("emptyDir", Obj(&EMPTY_DIR)),
        ("hostPath", Yes),
        (
            "configMap",
            No("peapod has no ConfigMaps (hint: use a hostPath volume)"),
        ),
        (
            "secret",
            No("peapod has no Secrets (hint: use a hostPath volume)"),
        ),
        (
            "persistentVolumeClaim",
            No("peapod has no PersistentVolumeClaims (hint: use a hostPath volume)"),
        ),
        (
            "projected",
            No("projected volumes need ConfigMaps, Secrets or tokens, which peapod does not have"),
        ),
        (
            "downwardAPI",
            No("downward API volumes are not supported (hint: use env fieldRef)"),
        ),
        ("image", No("image volumes are not supported")),
        (
            "ephemeral",
            No("ephemeral volumes need PersistentVolumeClaims, which peapod does not have"),
        ),
    ],
    other: "only emptyDir and hostPath volumes are supported",
};

const EMPTY_DIR: Schema = Schema {
    fields: &[
        (
            "medium",
            If(
                empty_dir_medium,
                "\"\" (node disk) and Memory (tmpfs) are supported; HugePages is refused",
            ),
        ),
        ("sizeLimit", Yes),
        (
            "mode",
            No("the emptyDir mode is not supported (it is 0777)"),
        ),
    ],
    other: "",
};

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn host_users(v: &Value, _: &Value) -> Verdict {
    if v.as_bool() == Some(false) {
        Verdict::No("user namespaces (hostUsers: false) are not supported".into())
    } else {
        Verdict::Ok
    }
}

fn os_name(v: &Value, _: &Value) -> Verdict {
    match text(&v["name"]) {
        "" | "linux" => Verdict::Ok,
        other => Verdict::No(format!("peapod runs Linux pods only, not {other:?}")),
    }
}

fn automount_token(v: &Value, _: &Value) -> Verdict {
    if v.as_bool() == Some(true) {
        Verdict::Warn(format!(
            "ignored: no service account token is mounted ({NO_API})"
        ))
    } else {
        Verdict::Ok
    }
}

fn service_account(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "default" => Verdict::Ok,
        _ => Verdict::Warn("ignored: peapod has no service accounts".into()),
    }
}

fn scheduler_name(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "default-scheduler" => Verdict::Ok,
        _ => Verdict::Warn("ignored: peapod admits every pod itself".into()),
    }
}

fn priority(v: &Value, _: &Value) -> Verdict {
    if v.as_i64().unwrap_or(0) == 0 {
        Verdict::Ok
    } else {
        Verdict::Warn("ignored: peapod neither preempts nor evicts pods by priority".into())
    }
}

fn preemption_policy(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "PreemptLowerPriority" => Verdict::Ok,
        _ => Verdict::Warn("ignored: peapod never preempts pods".into()),
    }
}

fn seccomp(v: &Value, _: &Value) -> Verdict {
    match text(&v["type"]) {
        "Localhost" => Verdict::No("localhost seccomp profiles are not supported".into()),
        _ => Verdict::Ok,
    }
}

fn apparmor(v: &Value, _: &Value) -> Verdict {
    match text(&v["type"]) {
        "Localhost" => Verdict::No("AppArmor profiles are not supported".into()),
        "RuntimeDefault" => Verdict::Warn(
            "ignored: peapod applies no AppArmor profile (as containerd on a host without \
             AppArmor)"
                .into(),
        ),
        _ => Verdict::Ok,
    }
}

fn supplemental_policy(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "Merge" => Verdict::Ok,
        _ => Verdict::No("only the Merge policy is supported".into()),
    }
}

fn proc_mount(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "Default" => Verdict::Ok,
        _ => Verdict::No("only the default (masked) /proc is supported".into()),
    }
}

fn termination_message_path(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "/dev/termination-log" => Verdict::Ok,
        _ => Verdict::Warn("ignored: peapod does not read termination messages".into()),
    }
}

fn termination_message_policy(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "File" => Verdict::Ok,
        _ => Verdict::Warn("ignored: peapod does not read termination messages".into()),
    }
}

fn recursive_read_only(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "Disabled" => Verdict::Ok,
        "IfPossible" => Verdict::Warn("the mount is read-only, but not recursively".into()),
        _ => Verdict::No("recursive read-only mounts are not supported".into()),
    }
}

fn http_protocol(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "HTTP/1.1" => Verdict::Ok,
        other => Verdict::No(format!("only HTTP/1.1 probes are supported, not {other:?}")),
    }
}

fn empty_dir_medium(v: &Value, _: &Value) -> Verdict {
    match text(v) {
        "" | "Memory" => Verdict::Ok,
        _ => Verdict::No("hugepage-backed emptyDir volumes are not supported".into()),
    }
}

/// A zero value: asks for nothing.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_unset),
    }
}

#[derive(Default)]
struct Findings {
    refused: Vec<Unsupported>,
    warnings: Vec<Warning>,
}

fn walk(value: &Value, schema: &Schema, path: &str, pod: &Value, out: &mut Findings) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, schema, &format!("{path}[{i}]"), pod, out);
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                if v.is_null() {
                    continue;
                }
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let rule = schema
                    .fields
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, r)| *r);
                let verdict = match rule {
                    // A zero value of a refused or ignored field asks for nothing.
                    None | Some(Warn(_) | No(_)) if is_unset(v) => Verdict::Ok,
                    None => Verdict::No(schema.other.to_string()),
                    Some(Yes) => Verdict::Ok,
                    Some(Obj(s) | List(s)) => {
                        walk(v, s, &field, pod, out);
                        Verdict::Ok
                    }
                    Some(Warn(m)) => Verdict::Warn(m.to_string()),
                    Some(No(m)) => Verdict::No(m.to_string()),
                    // Checks see zero values too: `hostUsers: false` is not a default.
                    Some(If(check, _)) => check(v, pod),
                };
                match verdict {
                    Verdict::Ok => {}
                    Verdict::Warn(message) => out.warnings.push(Warning { field, message }),
                    Verdict::No(reason) => out.refused.push(Unsupported { field, reason }),
                }
            }
        }
        _ => {}
    }
}

/// The fields of `pod` that peapod refuses, and the warnings for those it ignores.
pub(super) fn check(pod: &Pod) -> (Vec<Unsupported>, Vec<Warning>) {
    let mut out = Findings::default();
    match serde_json::to_value(pod) {
        Ok(json) => walk(&json, &POD, "", &json, &mut out),
        // Serializing the API types cannot fail (string keys only); refuse rather than pass.
        Err(e) => out.refused.push(Unsupported {
            field: String::new(),
            reason: format!("serialize pod: {e}"),
        }),
    }
    (out.refused, out.warnings)
}

/// The whole table, for documentation (`peapod` README, `pod run --help`): every field of a
/// Pod that peapod classifies, in table order. A field not listed is refused.
pub fn field_support() -> Vec<FieldSupport> {
    let mut out = Vec::new();
    list(&POD, "", &mut out);
    out
}

fn list(schema: &Schema, path: &str, out: &mut Vec<FieldSupport>) {
    for (name, rule) in schema.fields {
        let field = if path.is_empty() {
            (*name).to_string()
        } else {
            format!("{path}.{name}")
        };
        let (support, note) = match rule {
            Yes => (Support::Supported, ""),
            Obj(s) | List(s) => {
                if *name == "initContainers" {
                    // The same table as spec.containers[].
                    out.push(FieldSupport {
                        path: format!("{field}[]"),
                        support: Support::Supported,
                        note: "as spec.containers[]",
                    });
                    continue;
                }
                let sub = match rule {
                    List(_) => format!("{field}[]"),
                    _ => field.clone(),
                };
                out.push(FieldSupport {
                    path: sub.clone(),
                    support: Support::Supported,
                    note: s.other,
                });
                list(s, &sub, out);
                continue;
            }
            Warn(m) => (Support::Warned, *m),
            No(m) => (Support::Refused, *m),
            If(_, m) => (Support::Conditional, *m),
        };
        out.push(FieldSupport {
            path: field,
            support,
            note,
        });
    }
}
