//! The plain pod description the supervisor logic runs on.
//!
//! The pod layer maps the Kubernetes API types onto these structs (defaults already applied by
//! the constructors below) and calls [`PodSpec::validate`]; nothing here parses YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::{BackoffConfig, BackoffError};

/// `v1.DefaultTerminationGracePeriodSeconds` (`SetDefaults_PodSpec`).
pub const DEFAULT_TERMINATION_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// `minimumGracePeriodInSeconds` (pkg/kubelet/kuberuntime/kuberuntime_container.go): every
/// kill gets at least this long between the stop signal and SIGKILL.
pub const MINIMUM_GRACE_PERIOD: Duration = Duration::from_secs(2);

/// Pod (or, with `ContainerRestartRules`, container) restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// The pod default (`SetDefaults_PodSpec`).
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The API string.
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// kubelet's `probeType.String()`, used in event messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The spec field name, for error paths.
    pub fn field(&self) -> &'static str {
        match self {
            ProbeKind::Startup => "startupProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
        }
    }
}

/// The timing half of a probe (the handler, exec/http/tcp/grpc, belongs to the executor).
/// Field defaults are `SetDefaults_Probe` (pkg/apis/core/v1/defaults.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProbeSpec {
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    pub timeout_seconds: i32,
    pub success_threshold: i32,
    pub failure_threshold: i32,
    /// Liveness and startup only: replaces the pod's grace period for kills by this probe.
    pub termination_grace_period_seconds: Option<i64>,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            initial_delay_seconds: 0,
            period_seconds: 10,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_period_seconds: None,
        }
    }
}

impl ProbeSpec {
    /// `periodSeconds` as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_seconds.max(1) as u64)
    }

    /// `timeoutSeconds` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.max(1) as u64)
    }

    /// `initialDelaySeconds` as a duration.
    pub fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_seconds.max(0) as u64)
    }
}

/// One container as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerSpec {
    pub name: String,
    /// The image as the manifest names it (for kubelet's `Back-off pulling image` message).
    pub image: String,
    /// Per-container policy. On an init container only `Always` is allowed and makes it a
    /// sidecar; on an app container it overrides the pod policy (gate `ContainerRestartRules`).
    pub restart_policy: Option<RestartPolicy>,
    pub startup_probe: Option<ProbeSpec>,
    pub liveness_probe: Option<ProbeSpec>,
    pub readiness_probe: Option<ProbeSpec>,
}

impl ContainerSpec {
    /// A container with no probes and no policy of its own.
    pub fn new(name: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            ..ContainerSpec::default()
        }
    }

    /// The probe of `kind`, if any.
    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeSpec> {
        match kind {
            ProbeKind::Startup => self.startup_probe.as_ref(),
            ProbeKind::Liveness => self.liveness_probe.as_ref(),
            ProbeKind::Readiness => self.readiness_probe.as_ref(),
        }
    }
}

/// A pod as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds`.
    pub termination_grace_period: Duration,
    pub init_containers: Vec<ContainerSpec>,
    pub containers: Vec<ContainerSpec>,
    /// Crash-loop back-off; the `peapod.io/restart-backoff` annotation may override it.
    pub backoff: BackoffConfig,
}

impl PodSpec {
    /// A pod in `default` with kubelet's defaults (restart Always, grace 30s, kubelet back-off).
    pub fn new(name: impl Into<String>, uid: impl Into<String>) -> PodSpec {
        PodSpec {
            name: name.into(),
            namespace: "default".into(),
            uid: uid.into(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period: DEFAULT_TERMINATION_GRACE_PERIOD,
            init_containers: Vec::new(),
            containers: Vec::new(),
            backoff: BackoffConfig::default(),
        }
    }

    /// Applies the `peapod.io/restart-backoff` annotation when present.
    pub fn with_annotations(
        mut self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<PodSpec, BackoffError> {
        self.backoff = BackoffConfig::from_annotations(annotations)?;
        Ok(self)
    }

    /// kubelet's `format.Pod`: `<name>_<namespace>(<uid>)`, used in back-off messages.
    pub fn format_pod(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }

    /// True for an init container with `restartPolicy: Always` (`IsRestartableInitContainer`).
    pub fn is_sidecar(&self, init_index: usize) -> bool {
        self.init_containers
            .get(init_index)
            .is_some_and(|c| c.restart_policy == Some(RestartPolicy::Always))
    }

    /// The policy that decides whether app container `index` is restarted.
    pub fn app_restart_policy(&self, index: usize) -> RestartPolicy {
        self.containers
            .get(index)
            .and_then(|c| c.restart_policy)
            .unwrap_or(self.restart_policy)
    }

    /// The checks the API server and kubelet admission make on what this module uses.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |path: String, message: &str| {
            Err(SpecError {
                path,
                message: message.to_string(),
            })
        };
        if self.containers.is_empty() {
            return err("spec.containers".into(), "Required value");
        }
        let mut names = BTreeSet::new();
        let all = self
            .init_containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("spec.initContainers[{i}]"), c, true))
            .chain(
                self.containers
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("spec.containers[{i}]"), c, false)),
            );
        for (path, c, init) in all {
            if c.name.is_empty() {
                return err(format!("{path}.name"), "Required value");
            }
            if !names.insert(c.name.as_str()) {
                return err(
                    format!("{path}.name"),
                    &format!("Duplicate value: \"{}\"", c.name),
                );
            }
            let sidecar = init && c.restart_policy == Some(RestartPolicy::Always);
            if init && c.restart_policy.is_some() && !sidecar {
                // kubelet admission: InitContainerRestartPolicyForbidden.
                return err(
                    format!("{path}.restartPolicy"),
                    "Forbidden: may only be set to Always for init containers",
                );
            }
            for kind in [
                ProbeKind::Startup,
                ProbeKind::Liveness,
                ProbeKind::Readiness,
            ] {
                let Some(p) = c.probe(kind) else { continue };
                let field = format!("{path}.{}", kind.field());
                if init && !sidecar {
                    return err(
                        field,
                        "Forbidden: may not be set for init containers without restartPolicy=Always",
                    );
                }
                if p.initial_delay_seconds < 0 {
                    return err(
                        format!("{field}.initialDelaySeconds"),
                        "must be greater than or equal to 0",
                    );
                }
                for (name, v) in [
                    ("periodSeconds", p.period_seconds),
                    ("timeoutSeconds", p.timeout_seconds),
                    ("successThreshold", p.success_threshold),
                    ("failureThreshold", p.failure_threshold),
                ] {
                    if v < 1 {
                        return err(
                            format!("{field}.{name}"),
                            "must be greater than or equal to 1",
                        );
                    }
                }
                if kind != ProbeKind::Readiness && p.success_threshold != 1 {
                    return err(format!("{field}.successThreshold"), "must be 1");
                }
                match p.termination_grace_period_seconds {
                    Some(_) if kind == ProbeKind::Readiness => {
                        return err(
                            format!("{field}.terminationGracePeriodSeconds"),
                            "Forbidden: must not be set for readinessProbes",
                        );
                    }
                    Some(s) if s < 1 => {
                        return err(
                            format!("{field}.terminationGracePeriodSeconds"),
                            "must be greater than 0",
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// A spec the supervisor refuses, with the API field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let mut pod = PodSpec::new("p", "u");
        assert_eq!(
            pod.validate().unwrap_err().to_string(),
            "spec.containers: Required value"
        );
        pod.containers.push(ContainerSpec::new("a"));
        assert!(pod.validate().is_ok());
        pod.init_containers.push(ContainerSpec::new("a"));
        assert_eq!(
            pod.validate().unwrap_err().to_string(),
            "spec.containers[0].name: Duplicate value: \"a\""
        );
        pod.init_containers[0].name = "i".into();
        pod.init_containers[0].liveness_probe = Some(ProbeSpec::default());
        assert_eq!(
            pod.validate().unwrap_err().path,
            "spec.initContainers[0].livenessProbe"
        );
        pod.init_containers[0].restart_policy = Some(RestartPolicy::Always);
        assert!(pod.validate().is_ok());
        assert!(pod.is_sidecar(0));
        pod.init_containers[0].restart_policy = Some(RestartPolicy::Never);
        assert_eq!(
            pod.validate().unwrap_err().path,
            "spec.initContainers[0].restartPolicy"
        );
        pod.init_containers.clear();
        pod.containers[0].liveness_probe = Some(ProbeSpec {
            success_threshold: 2,
            ..ProbeSpec::default()
        });
        assert_eq!(
            pod.validate().unwrap_err().to_string(),
            "spec.containers[0].livenessProbe.successThreshold: must be 1"
        );
        pod.containers[0].liveness_probe = None;
        pod.containers[0].readiness_probe = Some(ProbeSpec {
            termination_grace_period_seconds: Some(5),
            ..ProbeSpec::default()
        });
        assert!(pod.validate().is_err());
    }

    #[test]
    fn format_pod_matches_kubelet() {
        let pod = PodSpec::new("web", "1234");
        assert_eq!(pod.format_pod(), "web_default(1234)");
    }
}
