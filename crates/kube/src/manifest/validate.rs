//! API-server validation of a Pod on create (`ValidatePodCreate` and what it calls in
//! `pkg/apis/core/validation/validation.go`), collecting every error in the API server's
//! wording. Go's zero values mean "unset", so an empty string or a zero here is treated as
//! absent, exactly as the API server sees it after decoding.
//!
//! Stricter than the API server, because peapod's runtime needs it (each says so in its
//! message): `mountPath`, `workingDir` and `hostPath.path` must be absolute.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, HTTPGetAction, LifecycleHandler,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodDNSConfig, PodSecurityContext, PodSpec,
    Probe, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::convert::{container_resources, parse_quantity};
use super::names;
use super::{ErrorKind, FieldError};
use crate::quantity::Quantity;
use crate::supervisor::backoff::{BackoffConfig, BackoffError, RESTART_BACKOFF_ANNOTATION};

/// `TotalAnnotationSizeLimitB`.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
const MAX_INT32: i64 = i32::MAX as i64;

/// The field paths the downward API can put in an environment variable.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The resources `resourceFieldRef` can read (plus `{limits,requests}.hugepages-<size>`).
const ENV_RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// A string field as Go sees it: empty is unset.
pub(super) fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A value as `field.Error` renders it (`%q` for strings, `%d` for numbers).
pub(super) trait Render {
    fn render(&self) -> String;
}

impl Render for str {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl Render for String {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl Render for i64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Render for i32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Render for bool {
    fn render(&self) -> String {
        self.to_string()
    }
}

/// An `ErrorList` under construction.
#[derive(Default)]
pub(super) struct Errors(pub(super) Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, kind: ErrorKind, value: Option<String>, detail: &str) {
        self.0.push(FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.to_string(),
        });
    }

    pub(super) fn required(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorKind::Required, None, detail);
    }

    pub(super) fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorKind::Forbidden, None, detail);
    }

    pub(super) fn invalid<V: Render + ?Sized>(&mut self, field: &str, value: &V, detail: &str) {
        self.push(field, ErrorKind::Invalid, Some(value.render()), detail);
    }

    /// One `Invalid` per message, as the Go code appends one per validator message.
    fn invalid_all<V: Render + ?Sized>(&mut self, field: &str, value: &V, msgs: Vec<String>) {
        for m in msgs {
            self.invalid(field, value, &m);
        }
    }

    fn duplicate<V: Render + ?Sized>(&mut self, field: &str, value: &V) {
        self.push(field, ErrorKind::Duplicate, Some(value.render()), "");
    }

    fn not_found<V: Render + ?Sized>(&mut self, field: &str, value: &V) {
        self.push(field, ErrorKind::NotFound, Some(value.render()), "");
    }

    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            field,
            ErrorKind::NotSupported,
            Some(value.render()),
            &format!("supported values: {list}"),
        );
    }

    /// Checks `value` against `supported` (when set).
    fn one_of(&mut self, field: &str, value: &Option<String>, supported: &[&str]) {
        if let Some(v) = opt(value)
            && !supported.contains(&v)
        {
            self.not_supported(field, v, supported);
        }
    }
}

/// Every API validation error of `pod`.
pub(super) fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut e = Errors::default();
    validate_meta(&pod.metadata, &mut e);
    match &pod.spec {
        Some(spec) => validate_spec(spec, &mut e),
        None => e.required("spec", ""),
    }
    e.0
}

fn validate_meta(meta: &ObjectMeta, e: &mut Errors) {
    match opt(&meta.name) {
        Some(name) => e.invalid_all("metadata.name", name, names::dns1123_subdomain(name)),
        None if opt(&meta.generate_name).is_none() => {
            e.required("metadata.name", "name or generateName is required")
        }
        None => {} // generateName alone: refused by the support table
    }
    if let Some(ns) = opt(&meta.namespace) {
        e.invalid_all("metadata.namespace", ns, names::dns1123_label(ns));
    }
    for (k, v) in meta.labels.iter().flatten() {
        e.invalid_all("metadata.labels", k, names::qualified_name(k));
        e.invalid_all("metadata.labels", v, names::label_value(v));
    }
    let mut total = 0;
    let annotations = meta.annotations.clone().unwrap_or_default();
    for (k, v) in &annotations {
        e.invalid_all(
            "metadata.annotations",
            k,
            names::qualified_name(&k.to_lowercase()),
        );
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        e.push(
            "metadata.annotations",
            ErrorKind::TooLong,
            None,
            &format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        );
    }
    if let Err(err) = BackoffConfig::from_annotations(&annotations) {
        let value = annotations
            .get(RESTART_BACKOFF_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let detail = match &err {
            BackoffError::Shape { .. } => {
                "expected \"<initial>[,<max>]\" (hint: e.g. \"1s,4s\")".to_string()
            }
            BackoffError::Duration { source, .. } => source.to_string(),
            BackoffError::Zero { .. } => "durations must be positive".to_string(),
        };
        e.invalid(
            &format!("metadata.annotations[{RESTART_BACKOFF_ANNOTATION}]"),
            &value,
            &detail,
        );
    }
}

/// What a container's checks need to know about the pod.
struct Ctx<'a> {
    path: String,
    init: bool,
    sidecar: bool,
    host_network: bool,
    grace: i64,
    volumes: &'a BTreeSet<String>,
}

fn validate_spec(spec: &PodSpec, e: &mut Errors) {
    let volumes = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), e);
    let host_network = spec.host_network == Some(true);
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);

    if spec.containers.is_empty() {
        e.required("spec.containers", "");
    }
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut container_names = BTreeSet::new();
    let all = inits
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c, true))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c, false)),
        );
    let mut host_ports = BTreeSet::new();
    for (path, c, init) in all {
        let ctx = Ctx {
            sidecar: init && c.restart_policy.as_deref() == Some("Always"),
            path,
            init,
            host_network,
            grace,
            volumes: &volumes,
        };
        validate_container(c, &ctx, &mut container_names, e);
        // AccumulateUniqueHostPorts: with hostNetwork, hostPort defaults to containerPort.
        for (i, p) in c.ports.iter().flatten().enumerate() {
            let host_port = match p.host_port.unwrap_or(0) {
                0 if host_network => p.container_port,
                hp => hp,
            };
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                opt(&p.protocol).unwrap_or("TCP"),
                opt(&p.host_ip).unwrap_or(""),
                host_port
            );
            if !host_ports.insert(key.clone()) {
                e.duplicate(&format!("{}.ports[{i}].hostPort", ctx.path), &key);
            }
        }
    }

    e.one_of(
        "spec.restartPolicy",
        &spec.restart_policy,
        &["Always", "OnFailure", "Never"],
    );
    if let Some(g) = spec.termination_grace_period_seconds
        && g < 0
    {
        e.invalid(
            "spec.terminationGracePeriodSeconds",
            &g,
            "must be greater than or equal to 0",
        );
    }
    if let Some(d) = spec.active_deadline_seconds
        && !(1..=MAX_INT32).contains(&d)
    {
        e.invalid(
            "spec.activeDeadlineSeconds",
            &d,
            &names::inclusive_range_error(1, MAX_INT32),
        );
    }
    validate_dns(spec, e);
    validate_hostnames(spec, e);
    for (field, value) in [
        ("spec.nodeName", &spec.node_name),
        ("spec.serviceAccountName", &spec.service_account_name),
    ] {
        if let Some(v) = opt(value) {
            e.invalid_all(field, v, names::dns1123_subdomain(v));
        }
    }
    for (k, v) in spec.node_selector.iter().flatten() {
        e.invalid_all("spec.nodeSelector", k, names::qualified_name(k));
        e.invalid_all("spec.nodeSelector", v, names::label_value(v));
    }
    if let Some(a) = &spec.affinity {
        validate_affinity(a, e);
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(t, &format!("spec.tolerations[{i}]"), e);
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        e.invalid(
            "spec.shareProcessNamespace",
            &true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    if let Some(sc) = &spec.security_context {
        validate_pod_security(sc, e);
    }
    if let Some(os) = &spec.os {
        e.one_of(
            "spec.os.name",
            &Some(os.name.clone()),
            &["linux", "windows"],
        );
    }
}

fn validate_volumes(volumes: &[Volume], e: &mut Errors) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            e.required(&format!("{vp}.name"), "");
        } else {
            e.invalid_all(
                &format!("{vp}.name"),
                &v.name,
                names::dns1123_label(&v.name),
            );
            if !names.insert(v.name.clone()) {
                e.duplicate(&format!("{vp}.name"), &v.name);
            }
        }
        // Exactly one source; none is defaulted to emptyDir (`SetDefaults_Volume`).
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(v) {
            let sources: Vec<&String> = map
                .iter()
                .filter(|(k, val)| k.as_str() != "name" && !val.is_null())
                .map(|(k, _)| k)
                .collect();
            if let Some(second) = sources.get(1) {
                e.forbidden(
                    &format!("{vp}.{second}"),
                    "may not specify more than 1 volume type",
                );
            }
        }
        if let Some(ed) = &v.empty_dir {
            if let Some(q) = &ed.size_limit
                && let Err(err) = parse_quantity(&format!("{vp}.emptyDir.sizeLimit"), q)
            {
                e.0.push(err);
            }
            if let Some(m) = opt(&ed.medium)
                && m != "Memory"
                && m != "HugePages"
                && !m.starts_with("HugePages-")
            {
                e.not_supported(
                    &format!("{vp}.emptyDir.medium"),
                    m,
                    &["", "Memory", "HugePages"],
                );
            }
        }
        if let Some(hp) = &v.host_path {
            let pp = format!("{vp}.hostPath.path");
            if hp.path.is_empty() {
                e.required(&pp, "");
            } else {
                if !hp.path.starts_with('/') {
                    e.invalid(&pp, &hp.path, "must be an absolute path");
                }
                if has_backsteps(&hp.path) {
                    e.invalid(&pp, &hp.path, "must not contain '..'");
                }
            }
            if let Some(t) = &hp.type_ {
                const TYPES: &[&str] = &[
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !TYPES.contains(&t.as_str()) {
                    e.not_supported(&format!("{vp}.hostPath.type"), t, TYPES);
                }
            }
        }
    }
    names
}

fn has_backsteps(path: &str) -> bool {
    path.split('/').any(|part| part == "..")
}

fn validate_container(
    c: &Container,
    ctx: &Ctx<'_>,
    container_names: &mut BTreeSet<String>,
    e: &mut Errors,
) {
    let p = &ctx.path;
    if c.name.is_empty() {
        e.required(&format!("{p}.name"), "");
    } else {
        e.invalid_all(&format!("{p}.name"), &c.name, names::dns1123_label(&c.name));
        if !container_names.insert(c.name.clone()) {
            e.duplicate(&format!("{p}.name"), &c.name);
        }
    }
    match opt(&c.image) {
        None => e.required(&format!("{p}.image"), ""),
        Some(image) if image.trim() != image => e.invalid(
            &format!("{p}.image"),
            image,
            "must not have leading or trailing whitespace",
        ),
        Some(_) => {}
    }
    e.one_of(
        &format!("{p}.imagePullPolicy"),
        &c.image_pull_policy,
        &["Always", "IfNotPresent", "Never"],
    );
    e.one_of(
        &format!("{p}.terminationMessagePolicy"),
        &c.termination_message_policy,
        &["File", "FallbackToLogsOnError"],
    );
    if let Some(wd) = opt(&c.working_dir)
        && !wd.starts_with('/')
    {
        e.invalid(
            &format!("{p}.workingDir"),
            wd,
            "must be an absolute path (peapod)",
        );
    }
    if ctx.init {
        e.one_of(
            &format!("{p}.restartPolicy"),
            &c.restart_policy,
            &["Always"],
        );
    } else {
        e.one_of(
            &format!("{p}.restartPolicy"),
            &c.restart_policy,
            &["Always", "OnFailure", "Never"],
        );
    }
    let ports = c.ports.as_deref().unwrap_or_default();
    validate_ports(ports, ctx, e);
    for (i, var) in c.env.iter().flatten().enumerate() {
        validate_env(var, &format!("{p}.env[{i}]"), e);
    }
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    validate_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        ctx,
        privileged,
        e,
    );

    let plain_init = ctx.init && !ctx.sidecar;
    for (field, probe, kind) in [
        ("livenessProbe", &c.liveness_probe, ProbeType::Liveness),
        ("readinessProbe", &c.readiness_probe, ProbeType::Readiness),
        ("startupProbe", &c.startup_probe, ProbeType::Startup),
    ] {
        let Some(probe) = probe else { continue };
        let fp = format!("{p}.{field}");
        if plain_init {
            e.forbidden(
                &fp,
                "may not be set for init containers without restartPolicy=Always",
            );
        }
        validate_probe(probe, &fp, kind, ports, e);
    }
    if let Some(lc) = &c.lifecycle {
        if plain_init {
            e.forbidden(
                &format!("{p}.lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            );
        }
        for (field, handler) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
            if let Some(h) = handler {
                validate_handler(h, &format!("{p}.lifecycle.{field}"), ctx.grace, ports, e);
            }
        }
    }
    let rp = format!("{p}.resources");
    match container_resources(c.resources.as_ref(), &rp) {
        Ok(r) => {
            if let Err(crate::ResourceError::Invalid {
                path,
                value,
                detail,
            }) = r.validate(&rp)
            {
                e.invalid(&path, &value, &detail);
            }
        }
        Err(errs) => e.0.extend(errs),
    }
    if let Some(sc) = &c.security_context {
        validate_security(sc, &format!("{p}.securityContext"), e);
    }
}

fn validate_ports(ports: &[ContainerPort], ctx: &Ctx<'_>, e: &mut Errors) {
    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = format!("{}.ports[{i}]", ctx.path);
        if let Some(n) = opt(&port.name) {
            e.invalid_all(&format!("{pp}.name"), n, names::port_name(n));
            if !port_names.insert(n) {
                e.duplicate(&format!("{pp}.name"), n);
            }
        }
        if port.container_port == 0 {
            e.required(&format!("{pp}.containerPort"), "");
        } else {
            e.invalid_all(
                &format!("{pp}.containerPort"),
                &port.container_port,
                names::port_num(port.container_port.into()),
            );
        }
        if let Some(hp) = port.host_port.filter(|&hp| hp != 0) {
            e.invalid_all(&format!("{pp}.hostPort"), &hp, names::port_num(hp.into()));
            if ctx.host_network && hp != port.container_port {
                e.invalid(
                    &format!("{pp}.hostPort"),
                    &hp,
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
        e.one_of(
            &format!("{pp}.protocol"),
            &port.protocol,
            &["SCTP", "TCP", "UDP"],
        );
        if let Some(ip) = opt(&port.host_ip) {
            e.invalid_all(&format!("{pp}.hostIP"), ip, names::ip(ip));
        }
    }
}

fn validate_env(var: &EnvVar, ep: &str, e: &mut Errors) {
    if var.name.is_empty() {
        e.required(&format!("{ep}.name"), "");
    } else {
        e.invalid_all(
            &format!("{ep}.name"),
            &var.name,
            names::env_var_name(&var.name),
        );
    }
    let Some(from) = &var.value_from else { return };
    let fp = format!("{ep}.valueFrom");
    let count = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
        from.file_key_ref.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if opt(&var.value).is_some() {
        e.invalid(&fp, "", "may not be specified when `value` is not empty");
    }
    if count == 0 {
        e.invalid(
            &fp,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, \
             `secretKeyRef` or `fileKeyRef`",
        );
    } else if count > 1 {
        e.invalid(
            &fp,
            "",
            "may not have more than one field specified at a time",
        );
    }
    if let Some(f) = &from.field_ref {
        let fr = format!("{fp}.fieldRef");
        if let Some(v) = opt(&f.api_version)
            && v != "v1"
        {
            e.not_supported(&format!("{fr}.apiVersion"), v, &["v1"]);
        }
        let path = &f.field_path;
        let fpath = format!("{fr}.fieldPath");
        if path.is_empty() {
            e.required(&fpath, "");
        } else if let Some((prefix, key)) = subscript(path) {
            match prefix {
                "metadata.labels" => e.invalid_all(&fpath, key, names::qualified_name(key)),
                "metadata.annotations" => {
                    e.invalid_all(&fpath, key, names::qualified_name(&key.to_lowercase()))
                }
                _ => e.not_supported(&fpath, path, ENV_FIELD_PATHS),
            }
        } else if !ENV_FIELD_PATHS.contains(&path.as_str()) {
            e.not_supported(&fpath, path, ENV_FIELD_PATHS);
        }
    }
    if let Some(r) = &from.resource_field_ref {
        let rr = format!("{fp}.resourceFieldRef");
        let resource = r.resource.as_str();
        if resource.is_empty() {
            e.required(&format!("{rr}.resource"), "");
        } else if !ENV_RESOURCE_FIELDS.contains(&resource)
            && !resource.starts_with("limits.hugepages-")
            && !resource.starts_with("requests.hugepages-")
        {
            e.not_supported(&format!("{rr}.resource"), resource, ENV_RESOURCE_FIELDS);
        } else if let Some(d) = &r.divisor {
            validate_divisor(resource, d, &format!("{rr}.divisor"), e);
        }
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
pub(super) fn subscript(path: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((prefix, key))
}

fn validate_divisor(
    resource: &str,
    divisor: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    field: &str,
    e: &mut Errors,
) {
    let Ok(d) = Quantity::parse(&divisor.0) else {
        e.invalid(field, &divisor.0, "must be a valid quantity");
        return;
    };
    let allowed = |list: &[&str]| {
        list.iter()
            .any(|s| Quantity::parse(s).is_ok_and(|q| q == d))
    };
    if resource.ends_with(".cpu") {
        if !allowed(&["1m", "1"]) {
            e.invalid(
                field,
                &divisor.0,
                "only divisor's values 1m and 1 are supported with the cpu resource",
            );
        }
    } else {
        const BYTES: &[&str] = &[
            "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
        ];
        if !allowed(BYTES) {
            let what = if resource.ends_with(".ephemeral-storage") {
                "local ephemeral storage"
            } else if resource.contains("hugepages-") {
                "hugepages"
            } else {
                "memory"
            };
            e.invalid(
                field,
                &divisor.0,
                &format!(
                    "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, \
                     1Ei are supported with the {what} resource"
                ),
            );
        }
    }
}

fn validate_mounts(mounts: &[VolumeMount], ctx: &Ctx<'_>, privileged: bool, e: &mut Errors) {
    let mut paths = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let mp = format!("{}.volumeMounts[{i}]", ctx.path);
        if m.name.is_empty() {
            e.required(&format!("{mp}.name"), "");
        } else if !ctx.volumes.contains(&m.name) {
            e.not_found(&format!("{mp}.name"), &m.name);
        }
        let path_field = format!("{mp}.mountPath");
        if m.mount_path.is_empty() {
            e.required(&path_field, "");
        } else {
            if !paths.insert(m.mount_path.as_str()) {
                e.invalid(&path_field, &m.mount_path, "must be unique");
            }
            if !m.mount_path.starts_with('/') {
                e.invalid(
                    &path_field,
                    &m.mount_path,
                    "must be an absolute path (peapod)",
                );
            }
        }
        if opt(&m.sub_path).is_some()
            && let Some(expr) = opt(&m.sub_path_expr)
        {
            e.invalid(
                &format!("{mp}.subPathExpr"),
                expr,
                "subPathExpr and subPath are mutually exclusive",
            );
        }
        for (field, value) in [("subPath", &m.sub_path), ("subPathExpr", &m.sub_path_expr)] {
            if let Some(sp) = opt(value) {
                let f = format!("{mp}.{field}");
                if sp.starts_with('/') {
                    e.invalid(&f, sp, "must be a relative path");
                }
                if has_backsteps(sp) {
                    e.invalid(&f, sp, "must not contain '..'");
                }
            }
        }
        let propagation = opt(&m.mount_propagation);
        e.one_of(
            &format!("{mp}.mountPropagation"),
            &m.mount_propagation,
            &["Bidirectional", "HostToContainer", "None"],
        );
        if propagation == Some("Bidirectional") && !privileged {
            e.forbidden(
                &format!("{mp}.mountPropagation"),
                "Bidirectional mount propagation is available only to privileged containers",
            );
        }
        let rro = format!("{mp}.recursiveReadOnly");
        e.one_of(
            &rro,
            &m.recursive_read_only,
            &["Disabled", "Enabled", "IfPossible"],
        );
        if let Some(r) = opt(&m.recursive_read_only)
            && r != "Disabled"
        {
            if m.read_only != Some(true) {
                e.forbidden(&rro, "may only be specified when readOnly is true");
            }
            if propagation.is_some_and(|p| p != "None") {
                e.forbidden(
                    &rro,
                    "may only be specified when mountPropagation is None or not specified",
                );
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

fn validate_probe(
    probe: &Probe,
    fp: &str,
    kind: ProbeType,
    ports: &[ContainerPort],
    e: &mut Errors,
) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ]
    .iter()
    .filter(|h| **h)
    .count();
    match handlers {
        0 => e.required(fp, "must specify a handler type"),
        1 => {}
        _ => e.forbidden(fp, "may not specify more than 1 handler type"),
    }
    if let Some(x) = &probe.exec
        && x.command.as_deref().unwrap_or_default().is_empty()
    {
        e.required(&format!("{fp}.exec.command"), "");
    }
    if let Some(h) = &probe.http_get {
        validate_http_get(h, &format!("{fp}.httpGet"), ports, e);
    }
    if let Some(t) = &probe.tcp_socket {
        validate_port_num_or_name(&t.port, &format!("{fp}.tcpSocket.port"), ports, e);
    }
    if let Some(g) = &probe.grpc {
        e.invalid_all(
            &format!("{fp}.grpc.port"),
            &g.port,
            names::port_num(g.port.into()),
        );
    }
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = value
            && v < 0
        {
            e.invalid(
                &format!("{fp}.{field}"),
                &v,
                "must be greater than or equal to 0",
            );
        }
    }
    if kind != ProbeType::Readiness
        && let Some(s) = probe.success_threshold
        && s > 1
    {
        e.invalid(&format!("{fp}.successThreshold"), &s, "must be 1");
    }
    if let Some(g) = probe.termination_grace_period_seconds {
        let f = format!("{fp}.terminationGracePeriodSeconds");
        if kind == ProbeType::Readiness {
            e.forbidden(&f, "must not be set for readinessProbes");
        } else if g <= 0 {
            e.invalid(&f, &g, "must be greater than 0");
        }
    }
}

fn validate_http_get(h: &HTTPGetAction, fp: &str, ports: &[ContainerPort], e: &mut Errors) {
    validate_port_num_or_name(&h.port, &format!("{fp}.port"), ports, e);
    e.one_of(&format!("{fp}.scheme"), &h.scheme, &["HTTP", "HTTPS"]);
    for (i, header) in h.http_headers.iter().flatten().enumerate() {
        e.invalid_all(
            &format!("{fp}.httpHeaders[{i}].name"),
            &header.name,
            names::http_header_name(&header.name),
        );
    }
}

/// `ValidatePortNumOrName`. A name that no container port declares fails at run time in
/// kubelet; it is an error here, since peapod knows the ports now.
fn validate_port_num_or_name(
    port: &IntOrString,
    field: &str,
    ports: &[ContainerPort],
    e: &mut Errors,
) {
    match port {
        IntOrString::Int(n) => e.invalid_all(field, n, names::port_num((*n).into())),
        IntOrString::String(s) if s.is_empty() => e.required(field, ""),
        IntOrString::String(s) => {
            let msgs = names::port_name(s);
            if msgs.is_empty() && !ports.iter().any(|p| p.name.as_deref() == Some(s)) {
                e.not_found(field, s);
            }
            e.invalid_all(field, s, msgs);
        }
    }
}

fn validate_handler(
    h: &LifecycleHandler,
    fp: &str,
    grace: i64,
    ports: &[ContainerPort],
    e: &mut Errors,
) {
    let handlers = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        h.sleep.is_some(),
    ]
    .iter()
    .filter(|h| **h)
    .count();
    match handlers {
        0 => e.required(fp, "must specify a handler type"),
        1 => {}
        _ => e.forbidden(fp, "may not specify more than 1 handler type"),
    }
    if let Some(x) = &h.exec
        && x.command.as_deref().unwrap_or_default().is_empty()
    {
        e.required(&format!("{fp}.exec.command"), "");
    }
    if let Some(g) = &h.http_get {
        validate_http_get(g, &format!("{fp}.httpGet"), ports, e);
    }
    if let Some(t) = &h.tcp_socket {
        validate_port_num_or_name(&t.port, &format!("{fp}.tcpSocket.port"), ports, e);
    }
    if let Some(s) = &h.sleep
        && (s.seconds < 0 || s.seconds > grace)
    {
        e.invalid(
            &format!("{fp}.sleep.seconds"),
            &s.seconds,
            &format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        );
    }
}

fn validate_id(field: &str, id: Option<i64>, e: &mut Errors) {
    if let Some(v) = id
        && !(0..=MAX_INT32).contains(&v)
    {
        e.invalid(field, &v, &names::inclusive_range_error(0, MAX_INT32));
    }
}

fn validate_profile(field: &str, kind: &str, localhost: &Option<String>, e: &mut Errors) {
    const TYPES: &[&str] = &["Localhost", "RuntimeDefault", "Unconfined"];
    if kind.is_empty() {
        e.required(&format!("{field}.type"), "");
    } else if !TYPES.contains(&kind) {
        e.not_supported(&format!("{field}.type"), kind, TYPES);
    }
    let lp = format!("{field}.localhostProfile");
    match (kind, opt(localhost)) {
        ("Localhost", None) => e.required(&lp, "must be set when seccomp type is Localhost"),
        ("Localhost", Some(_)) | (_, None) => {}
        (_, Some(_)) => e.invalid(&lp, "", "can only be set when `type` is \"Localhost\""),
    }
}

fn validate_security(sc: &SecurityContext, fp: &str, e: &mut Errors) {
    validate_id(&format!("{fp}.runAsUser"), sc.run_as_user, e);
    validate_id(&format!("{fp}.runAsGroup"), sc.run_as_group, e);
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            e.push(
                fp,
                ErrorKind::Invalid,
                None,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds_sys_admin = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|add| add.iter().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN"));
        if adds_sys_admin {
            e.push(
                fp,
                ErrorKind::Invalid,
                None,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` \
                 CAP_SYS_ADMIN",
            );
        }
    }
    e.one_of(
        &format!("{fp}.procMount"),
        &sc.proc_mount,
        &["Default", "Unmasked"],
    );
    if let Some(p) = &sc.seccomp_profile {
        validate_profile(
            &format!("{fp}.seccompProfile"),
            &p.type_,
            &p.localhost_profile,
            e,
        );
    }
    if let Some(p) = &sc.app_armor_profile {
        validate_profile(
            &format!("{fp}.appArmorProfile"),
            &p.type_,
            &p.localhost_profile,
            e,
        );
    }
}

fn validate_pod_security(sc: &PodSecurityContext, e: &mut Errors) {
    let fp = "spec.securityContext";
    validate_id(&format!("{fp}.runAsUser"), sc.run_as_user, e);
    validate_id(&format!("{fp}.runAsGroup"), sc.run_as_group, e);
    validate_id(&format!("{fp}.fsGroup"), sc.fs_group, e);
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        validate_id(&format!("{fp}.supplementalGroups[{i}]"), Some(*g), e);
    }
    if let Some(p) = &sc.seccomp_profile {
        validate_profile(
            &format!("{fp}.seccompProfile"),
            &p.type_,
            &p.localhost_profile,
            e,
        );
    }
    if let Some(p) = &sc.app_armor_profile {
        validate_profile(
            &format!("{fp}.appArmorProfile"),
            &p.type_,
            &p.localhost_profile,
            e,
        );
    }
}

fn validate_dns(spec: &PodSpec, e: &mut Errors) {
    e.one_of(
        "spec.dnsPolicy",
        &spec.dns_policy,
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    );
    let none = opt(&spec.dns_policy) == Some("None");
    match &spec.dns_config {
        None if none => e.required(
            "spec.dnsConfig",
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ),
        None => {}
        Some(c) => validate_dns_config(c, none, e),
    }
}

fn validate_dns_config(c: &PodDNSConfig, policy_none: bool, e: &mut Errors) {
    let ns = c.nameservers.as_deref().unwrap_or_default();
    if ns.len() > MAX_DNS_NAMESERVERS {
        e.invalid(
            "spec.dnsConfig.nameservers",
            &ns.join(" "),
            &format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        );
    }
    if policy_none && ns.is_empty() {
        e.required(
            "spec.dnsConfig.nameservers",
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        );
    }
    for (i, n) in ns.iter().enumerate() {
        e.invalid_all(&format!("spec.dnsConfig.nameservers[{i}]"), n, names::ip(n));
    }
    let searches = c.searches.as_deref().unwrap_or_default();
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        e.invalid(
            "spec.dnsConfig.searches",
            &searches.join(" "),
            &format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        );
    }
    if searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        e.invalid(
            "spec.dnsConfig.searches",
            &searches.join(" "),
            &format!(
                "must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including \
                 spaces) in the search list"
            ),
        );
    }
    for (i, s) in searches.iter().enumerate() {
        // A trailing dot (a fully qualified name) is allowed.
        let name = s.strip_suffix('.').unwrap_or(s);
        e.invalid_all(
            &format!("spec.dnsConfig.searches[{i}]"),
            s,
            names::dns1123_subdomain(name),
        );
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if opt(&o.name).is_none() {
            e.required(&format!("spec.dnsConfig.options[{i}].name"), "");
        }
    }
}

fn validate_hostnames(spec: &PodSpec, e: &mut Errors) {
    for (field, value) in [
        ("spec.hostname", &spec.hostname),
        ("spec.subdomain", &spec.subdomain),
    ] {
        if let Some(v) = opt(value) {
            e.invalid_all(field, v, names::dns1123_label(v));
        }
    }
    if let Some(h) = opt(&spec.hostname_override) {
        let f = "spec.hostnameOverride";
        e.invalid_all(f, h, names::dns1123_subdomain(h));
        if h.len() > 64 {
            e.invalid(f, h, &names::max_len_error(64));
        }
        if spec.set_hostname_as_fqdn == Some(true) {
            e.forbidden(f, "may not be set when `setHostnameAsFQDN` is true");
        }
        if spec.host_network == Some(true) {
            e.forbidden(f, "may not be set when `hostNetwork` is true");
        }
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let ap = format!("spec.hostAliases[{i}]");
        if alias.ip.is_empty() {
            e.required(&format!("{ap}.ip"), "");
        } else {
            e.invalid_all(&format!("{ap}.ip"), &alias.ip, names::ip(&alias.ip));
        }
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            e.invalid_all(
                &format!("{ap}.hostnames[{j}]"),
                h,
                names::dns1123_subdomain(h),
            );
        }
    }
}

fn validate_affinity(a: &Affinity, e: &mut Errors) {
    let Some(na) = &a.node_affinity else { return };
    let base = "spec.affinity.nodeAffinity";
    if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
        let rp = format!("{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
        if req.node_selector_terms.is_empty() {
            e.required(&rp, "must have at least one node selector term");
        }
        for (i, term) in req.node_selector_terms.iter().enumerate() {
            validate_term(term, &format!("{rp}[{i}]"), e);
        }
    }
    for (i, pref) in na
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .enumerate()
    {
        let pp = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        if !(1..=100).contains(&pref.weight) {
            e.invalid(
                &format!("{pp}.weight"),
                &pref.weight,
                "must be in the range 1-100",
            );
        }
        validate_term(&pref.preference, &format!("{pp}.preference"), e);
    }
}

fn validate_term(term: &NodeSelectorTerm, tp: &str, e: &mut Errors) {
    for (j, r) in term.match_expressions.iter().flatten().enumerate() {
        validate_requirement(r, &format!("{tp}.matchExpressions[{j}]"), e);
    }
    for (j, r) in term.match_fields.iter().flatten().enumerate() {
        let fp = format!("{tp}.matchFields[{j}]");
        if r.key != "metadata.name" {
            e.not_supported(&format!("{fp}.key"), &r.key, &["metadata.name"]);
        }
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if r.values.as_deref().unwrap_or_default().len() != 1 {
                    e.required(
                        &format!("{fp}.values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node \
                         field selector",
                    );
                }
            }
            op => e.invalid(
                &format!("{fp}.operator"),
                op,
                "not a valid selector operator",
            ),
        }
    }
}

fn validate_requirement(r: &NodeSelectorRequirement, rp: &str, e: &mut Errors) {
    e.invalid_all(&format!("{rp}.key"), &r.key, names::qualified_name(&r.key));
    let values = r.values.as_deref().unwrap_or_default();
    let vp = format!("{rp}.values");
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            e.required(&vp, "must be specified when `operator` is 'In' or 'NotIn'")
        }
        "In" | "NotIn" => {}
        "Exists" | "DoesNotExist" if !values.is_empty() => e.forbidden(
            &vp,
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        "Exists" | "DoesNotExist" => {}
        "Gt" | "Lt" if values.len() != 1 => e.required(
            &vp,
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        ),
        "Gt" | "Lt" => {}
        op => e.invalid(
            &format!("{rp}.operator"),
            op,
            "not a valid selector operator",
        ),
    }
}

fn validate_toleration(t: &Toleration, tp: &str, e: &mut Errors) {
    let key = opt(&t.key);
    if let Some(k) = key {
        e.invalid_all(&format!("{tp}.key"), k, names::qualified_name(k));
    }
    let op = opt(&t.operator).unwrap_or("Equal");
    if key.is_none() && op != "Exists" {
        e.invalid(
            &format!("{tp}.operator"),
            op,
            "operator must be Exists when `key` is empty, which means \"match all values and \
             all keys\"",
        );
    }
    if t.toleration_seconds.is_some() && opt(&t.effect) != Some("NoExecute") {
        e.invalid(
            &format!("{tp}.effect"),
            opt(&t.effect).unwrap_or(""),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
    let value = opt(&t.value).unwrap_or("");
    match op {
        "Equal" => e.invalid_all(&format!("{tp}.value"), value, names::label_value(value)),
        "Exists" if !value.is_empty() => e.invalid(
            &format!("{tp}.operator"),
            op,
            "value must be empty when `operator` is 'Exists'",
        ),
        "Exists" => {}
        "Lt" | "Gt" if value.parse::<i64>().is_err() => e.invalid(
            &format!("{tp}.value"),
            value,
            "must be an integer when `operator` is 'Lt' or 'Gt'",
        ),
        "Lt" | "Gt" => {}
        other => e.not_supported(&format!("{tp}.operator"), other, &["Equal", "Exists"]),
    }
    e.one_of(
        &format!("{tp}.effect"),
        &t.effect,
        &["NoExecute", "NoSchedule", "PreferNoSchedule"],
    );
}
