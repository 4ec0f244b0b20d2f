//! Pod manifests: text to Kubernetes `Pod` objects, API-server validation, peapod's support
//! table, and the mapping onto the supervisor's plain structs. Pure: no syscalls, no I/O.
//!
//! ```text
//!   text ──parse_manifests──▶ Vec<Pod>          YAML or JSON, `---` documents, v1 Pods only,
//!                                               unknown fields refused (kubectl's strict decoding)
//!   Pod ──validate──▶ Vec<Warning>              the API server's field checks, then peapod's
//!                                               table of fields it implements, warns or refuses
//!   Pod ──apply_defaults──▶ Pod                 `SetDefaults_Pod` (what `pod inspect` shows)
//!   Pod ──to_supervisor──▶ (PodSpec, PodResources)   the supervisor's and cgroup code's inputs
//!   Pod ──pod_hostname / container_env / expand──▶    kubelet's hostname, env and `$(VAR)` rules
//! ```
//!
//! Submodules: `decode` (YAML/JSON and strict decoding; the only place that sees YAML),
//! `names` (the apimachinery name validators), `validate` (API-server validation), `support`
//! (what peapod implements, field by field), `convert` (defaults and the supervisor mapping),
//! `env` (environment variables and `$(VAR)` expansion).
//!
//! Upstream sources reproduced (kubernetes/kubernetes, read for behaviour, not copied):
//! `pkg/apis/core/validation/validation.go`, `staging/src/k8s.io/apimachinery/pkg/util/validation`,
//! `pkg/apis/core/v1/defaults.go`, `pkg/kubelet/kubelet_pods.go` (env, hostname),
//! `third_party/forked/golang/expansion/expand.go`.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;

mod convert;
mod decode;
mod env;
mod names;
mod support;
mod validate;

#[cfg(test)]
mod tests;

pub use convert::{
    CLUSTER_DOMAIN, DEFAULT_NAMESPACE, HOST_IMAGE, PodHostname, apply_defaults, pod_hostname,
    to_supervisor,
};
pub use env::{EnvContext, container_env, expand, expand_command};
pub use names::{label_value, qualified_name};

pub use decode::{MAX_FLOW_DEPTH, MAX_MANIFEST_BYTES, check_limits, read_manifest};
pub use support::{FieldSupport, Support, field_support};

/// Parses one or more YAML or JSON documents (`---`-separated YAML, or concatenated JSON
/// objects), each `apiVersion: v1` / `kind: Pod`, decoding strictly: a field the Kubernetes
/// API does not define is an error naming its path, as kubectl's strict decoding reports it.
/// Empty documents are skipped; a text without any Pod is an error. Documents are numbered
/// from 1 in errors. Does not validate: call [`validate`] on each pod.
pub fn parse_manifests(text: &str) -> Result<Vec<Pod>, ManifestError> {
    decode::parse(text)
}

/// Splits a YAML or JSON text into its documents, each the JSON value the API server would
/// decode (any kind; empty documents are `null`), numbered from 1. For callers that accept
/// other kinds than Pod (the placement planner's Nodes and Deployments).
pub fn parse_documents(text: &str) -> Result<Vec<(usize, serde_json::Value)>, ManifestError> {
    decode::documents(text)
}

/// Validates `pod` as the API server would on create (names, uniqueness, references, ports,
/// probes, resources, ...) and then against what peapod implements. Returns the warnings for
/// fields peapod accepts but ignores. Every API error is reported at once
/// ([`ManifestError::Invalid`]); only a pod without API errors is checked for fields peapod
/// does not support ([`ManifestError::Unsupported`]). Works on a pod with or without
/// [`apply_defaults`].
pub fn validate(pod: &Pod) -> Result<Vec<Warning>, ManifestError> {
    let mut errors = validate::validate_pod(pod);
    if let Err(ManifestError::Invalid { errors: more, .. }) = pod_hostname(pod) {
        errors.extend(more);
    }
    if !errors.is_empty() {
        return Err(ManifestError::Invalid {
            name: pod_name(pod),
            errors,
        });
    }
    let (refused, warnings) = support::check(pod);
    if !refused.is_empty() {
        return Err(ManifestError::Unsupported {
            name: pod_name(pod),
            fields: refused,
        });
    }
    Ok(warnings)
}

/// What is wrong with `name` as a pod's `metadata.name` (a DNS-1123 subdomain), in the API
/// server's words; empty when it is valid. Pod verbs check a name given on the command line
/// with it before they build a path from it.
pub fn pod_name_errors(name: &str) -> Vec<String> {
    names::dns1123_subdomain(name)
}

/// What is wrong with `name` as a container's name (a DNS-1123 label); empty when valid.
pub fn container_name_errors(name: &str) -> Vec<String> {
    names::dns1123_label(name)
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The kind of an API field error (`field.ErrorType` in apimachinery), with its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    /// A message that already carries its own wording (from `supervisor::spec`).
    Other,
}

impl ErrorKind {
    /// The API server's words for the kind (`ErrorType.String()`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Other => "",
        }
    }
}

/// One API validation error: `<field>: <kind>[: <value>][: <detail>]`, as `field.Error`
/// prints it, e.g. `spec.containers[1].name: Invalid value: "Foo": a lowercase RFC 1123 label
/// must consist of ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.containers[1].name`.
    pub field: String,
    pub kind: ErrorKind,
    /// The offending value, already rendered (strings quoted, numbers bare).
    pub value: Option<String>,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field)?;
        if self.kind == ErrorKind::Other {
            return f.write_str(&self.detail);
        }
        f.write_str(self.kind.as_str())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A field the manifest sets that peapod does not implement, where ignoring it could change
/// how the pod behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The field path, e.g. `spec.containers[1].securityContext.seLinuxOptions`.
    pub field: String,
    /// Why, or what to do instead; may be empty.
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not supported by peapod", self.field)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// A field peapod accepts but ignores, because ignoring it cannot change what the pod does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything that can be wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// No document holds an object.
    #[error(
        "manifest holds no Pod (hint: a manifest starts with `apiVersion: v1` and `kind: Pod`)"
    )]
    Empty,
    /// The text is larger than the API server would take ([`MAX_MANIFEST_BYTES`]).
    #[error(
        "manifest is {size} bytes, over the limit of {limit} bytes (the Kubernetes API server's request size limit)"
    )]
    TooLarge { size: usize, limit: usize },
    /// YAML flow collections nest deeper than [`MAX_FLOW_DEPTH`] (checked before parsing).
    #[error(
        "line {line}: `[...]`/`{{...}}` collections nest deeper than {limit} levels, the limit"
    )]
    TooDeep { line: usize, limit: usize },
    /// The text of a document is not valid YAML or JSON.
    #[error("document {document}: {message}")]
    Syntax { document: usize, message: String },
    /// A document that is not a Kubernetes object, or lacks `apiVersion`/`kind`.
    #[error(
        "document {document}: {message} (hint: a Pod starts with `apiVersion: v1` and `kind: Pod`)"
    )]
    NotAnObject { document: usize, message: String },
    /// A document of another kind or API version than `v1` `Pod`.
    #[error(
        "document {document}: kind {kind:?} in apiVersion {api_version:?} is not supported: \
         peapod runs only Pods (apiVersion: v1, kind: Pod)"
    )]
    Kind {
        document: usize,
        api_version: String,
        kind: String,
    },
    /// Fields the Kubernetes API does not define (kubectl's "strict decoding error").
    #[error("document {document}: strict decoding error: {}", unknown_list(.fields))]
    UnknownFields {
        document: usize,
        fields: Vec<String>,
    },
    /// A value of the wrong type, e.g. a string where a number belongs.
    #[error("document {document}: {}{message}", path_prefix(.path))]
    Decode {
        document: usize,
        path: String,
        message: String,
    },
    /// The API server would refuse the pod: every field error, in the API server's format.
    #[error("Pod {name:?} is invalid: {}", aggregate(.errors))]
    Invalid {
        name: String,
        errors: Vec<FieldError>,
    },
    /// Valid for Kubernetes, but uses fields peapod does not implement.
    #[error("Pod {name:?} cannot run on peapod: {}", aggregate(.fields))]
    Unsupported {
        name: String,
        fields: Vec<Unsupported>,
    },
}

fn unknown_list(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// apimachinery's `Aggregate.Error()`: one error as is, several as `[a, b]`.
fn aggregate<T: fmt::Display>(items: &[T]) -> String {
    match items {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
