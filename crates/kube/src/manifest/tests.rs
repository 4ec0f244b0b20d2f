//! Manifest tests: parsing, strict decoding, validation messages, the support table (every
//! refused and warned row has a case here, checked by `every_table_row_has_a_case`), defaults,
//! the supervisor mapping, hostnames and environment expansion.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;

use super::*;
use crate::quantity::Quantity;
use crate::resources::ResourceList;
use crate::supervisor::spec::{ProbeSpec, RestartPolicy};

/// Indents every non-empty line of `text` by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{}{l}\n", " ".repeat(n))
            }
        })
        .collect()
}

/// A one-container pod `web` with `spec` added to the pod spec and `container` to the
/// container (both written flush-left).
fn manifest(spec: &str, container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{}  containers:\n  - name: app\n    image: host\n{}",
        indent(spec, 2),
        indent(container, 4)
    )
}

fn parse_one(text: &str) -> Pod {
    let mut pods = parse_manifests(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(pods.len(), 1);
    pods.remove(0)
}

/// The API errors of a manifest, one string each.
fn invalid(text: &str) -> Vec<String> {
    match validate(&parse_one(text)) {
        Err(ManifestError::Invalid { errors, .. }) => {
            errors.iter().map(|e| e.to_string()).collect()
        }
        other => panic!("expected Invalid, got {other:?}\n{text}"),
    }
}

/// The refused fields of a (valid) manifest.
fn refused(text: &str) -> Vec<Unsupported> {
    match validate(&parse_one(text)) {
        Err(ManifestError::Unsupported { fields, .. }) => fields,
        other => panic!("expected Unsupported, got {other:?}\n{text}"),
    }
}

/// The warnings of an accepted manifest.
fn warnings(text: &str) -> Vec<Warning> {
    validate(&parse_one(text)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn accepted(text: &str) {
    let w = warnings(text);
    assert!(w.is_empty(), "unexpected warnings {w:?}\n{text}");
}

const MINIMAL: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: host
";

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn minimal_pod_parses_and_validates() {
    let pod = parse_one(MINIMAL);
    assert_eq!(pod.metadata.name.as_deref(), Some("web"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some("host"));
    assert_eq!(validate(&pod), Ok(vec![]));
}

#[test]
fn multi_document_yaml_skips_empty_documents() {
    let text = format!(
        "---\n# a comment only\n---\n{MINIMAL}---\n{}\n---\n",
        MINIMAL.replace("name: web", "name: db")
    );
    let pods = parse_manifests(&text).unwrap();
    let names: Vec<_> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["web", "db"]);
}

#[test]
fn json_single_and_stream() {
    let one = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
        "spec":{"containers":[{"name":"a","image":"host","ports":[{"containerPort":80}]}]}}"#;
    let pod = parse_one(one);
    assert_eq!(pod.metadata.name.as_deref(), Some("j"));
    assert!(validate(&pod).is_ok());
    let two = format!("{one}\n\n{}", one.replace("\"j\"", "\"k\""));
    assert_eq!(parse_manifests(&two).unwrap().len(), 2);
}

#[test]
fn yaml_flow_style_starting_with_a_brace_is_yaml() {
    let text = "{apiVersion: v1, kind: Pod, metadata: {name: f}, spec: {containers: [{name: a, image: host}]}}";
    assert_eq!(parse_one(text).metadata.name.as_deref(), Some("f"));
}

#[test]
fn duplicate_keys_are_refused_in_yaml_and_json() {
    let yaml = MINIMAL.replace("  name: web\n", "  name: web\n  name: web2\n");
    let err = parse_manifests(&yaml).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Syntax { document: 1, message } if message.contains("duplicate entry with key \"name\"")),
        "{err}"
    );
    let json = r#"{"apiVersion":"v1","kind":"Pod","kind":"Pod","metadata":{"name":"j"}}"#;
    let err = parse_manifests(json).unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate entry with key \"kind\""),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let text = manifest("", "foo: 1\n").replace(
        "containers:\n",
        "containers:\n  - name: side\n    image: host\n    bar: x\n",
    ) + "status:\n  phase: Running\n  nonsense: 1\n";
    let text = text.replace("metadata:\n", "extra: 1\nmetadata:\n  labelz: {}\n");
    let err = parse_manifests(&text).unwrap_err();
    assert_eq!(
        err,
        ManifestError::UnknownFields {
            document: 1,
            fields: vec![
                "extra".into(),
                "metadata.labelz".into(),
                "spec.containers[0].bar".into(),
                "spec.containers[1].foo".into(),
                "status.nonsense".into(),
            ],
        }
    );
    assert_eq!(
        err.to_string(),
        "document 1: strict decoding error: unknown field \"extra\", unknown field \
         \"metadata.labelz\", unknown field \"spec.containers[0].bar\", unknown field \
         \"spec.containers[1].foo\", unknown field \"status.nonsense\""
    );
}

#[test]
fn unknown_field_deep_inside_a_security_context() {
    let text = manifest(
        "",
        "securityContext:\n  capabilities:\n    add: [NET_ADMIN]\n    ad: [X]\n",
    );
    assert_eq!(
        parse_manifests(&text).unwrap_err().to_string(),
        "document 1: strict decoding error: unknown field \
         \"spec.containers[0].securityContext.capabilities.ad\""
    );
}

#[test]
fn type_errors_name_the_field() {
    let text = manifest("", "ports:\n- containerPort: http\n");
    let err = parse_manifests(&text).unwrap_err();
    let ManifestError::Decode {
        document,
        path,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*document, path.as_str()),
        (1, "spec.containers[0].ports[0].containerPort")
    );
    assert!(
        message.contains("invalid type: string \"http\""),
        "{message}"
    );
    // YAML 1.2: `yes` is a string, not kubectl's YAML 1.1 boolean.
    let err = parse_manifests(&manifest("hostNetwork: yes\n", "")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("document 1: spec.hostNetwork: invalid type: string \"yes\""),
        "{err}"
    );
}

#[test]
fn other_kinds_are_refused_with_the_document_index() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";
    let text = format!("{MINIMAL}---\n{deployment}");
    let err = parse_manifests(&text).unwrap_err();
    assert_eq!(
        err,
        ManifestError::Kind {
            document: 2,
            api_version: "apps/v1".into(),
            kind: "Deployment".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "document 2: kind \"Deployment\" in apiVersion \"apps/v1\" is not supported: peapod \
         runs only Pods (apiVersion: v1, kind: Pod)"
    );
    let wrong_version = MINIMAL.replace("apiVersion: v1", "apiVersion: v2");
    assert!(matches!(
        parse_manifests(&wrong_version),
        Err(ManifestError::Kind { document: 1, .. })
    ));
    let list = "apiVersion: v1\nkind: List\nitems: []\n";
    assert!(matches!(
        parse_manifests(list),
        Err(ManifestError::Kind { .. })
    ));
}

#[test]
fn missing_kind_or_api_version() {
    let no_kind = MINIMAL.replace("kind: Pod\n", "");
    assert_eq!(
        parse_manifests(&no_kind).unwrap_err().to_string(),
        "document 1: Object 'Kind' is missing (hint: a Pod starts with `apiVersion: v1` and \
         `kind: Pod`)"
    );
    let no_version = MINIMAL.replace("apiVersion: v1\n", "");
    assert!(
        parse_manifests(&no_version)
            .unwrap_err()
            .to_string()
            .contains("Object 'ApiVersion' is missing")
    );
    let numeric = MINIMAL.replace("kind: Pod", "kind: 3");
    assert!(
        parse_manifests(&numeric)
            .unwrap_err()
            .to_string()
            .contains("kind must be a non-empty string")
    );
    let list = "- a\n- b\n";
    assert!(
        parse_manifests(list)
            .unwrap_err()
            .to_string()
            .contains("found a sequence")
    );
}

#[test]
fn empty_input_is_an_error() {
    for text in ["", "\n", "# nothing\n", "---\n---\n"] {
        assert_eq!(parse_manifests(text), Err(ManifestError::Empty), "{text:?}");
    }
}

#[test]
fn yaml_syntax_error_names_the_document_and_terminates() {
    let text = format!("{MINIMAL}---\n{MINIMAL}---\nmetadata: [unclosed\n---\n{MINIMAL}");
    let err = parse_manifests(&text).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Syntax { document: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let text = "apiVersion: v1
kind: Pod
metadata:
  name: m
spec:
  containers:
  - &base
    name: a
    image: host
    env:
    - {name: A, value: x}
  - <<: *base
    name: b
";
    let pod = parse_one(text);
    let c = &pod.spec.as_ref().unwrap().containers;
    assert_eq!(
        (c[1].name.as_str(), c[1].image.as_deref()),
        ("b", Some("host"))
    );
    assert_eq!(c[1].env.as_ref().unwrap()[0].name, "A");
    assert!(validate(&pod).is_ok());
}

#[test]
fn yaml_tags_are_refused() {
    let text = manifest("", "workingDir: !custom /x\n");
    let err = parse_manifests(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.containers[0].workingDir: YAML tag !custom is not supported"),
        "{err}"
    );
}

#[test]
fn numbers_parse_as_quantities_and_ports_as_names() {
    let text = manifest(
        "",
        "resources:\n  limits: {cpu: 0.5, memory: 1e3}\n  requests: {cpu: 1}\nports:\n- {name: http, containerPort: 80}\nlivenessProbe:\n  httpGet: {port: http}\n",
    );
    let pod = parse_one(&text);
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "0.5");
    assert_eq!(limits["memory"].0, "1000");
    // The request of 1 cpu is above the 0.5 limit.
    assert_eq!(
        invalid(&text),
        [
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than \
          or equal to cpu limit of 500m"
        ]
    );
}

#[test]
fn numeric_mapping_keys_become_strings() {
    let text = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  labels:\n    1: x\n    true: y\n",
    );
    let pod = parse_one(&text);
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["1"], "x");
    assert_eq!(labels["true"], "y");
}

// ---------------------------------------------------------------------------------------------
// API validation

#[test]
fn container_name_in_kubectl_wording() {
    let text = manifest("", "").replace("- name: app", "- name: Foo");
    let err = validate(&parse_one(&text)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"web\" is invalid: spec.containers[0].name: Invalid value: \"Foo\": a lowercase \
         RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
         start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex \
         used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    );
}

#[test]
fn several_errors_are_aggregated() {
    let text = manifest("restartPolicy: Sometimes\n", "").replace("    image: host\n", "");
    let err = validate(&parse_one(&text)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"web\" is invalid: [spec.containers[0].image: Required value, spec.restartPolicy: \
         Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"]"
    );
}

#[test]
fn metadata_validation() {
    let bad_name = MINIMAL.replace("name: web", "name: Web_1");
    assert_eq!(invalid(&bad_name).len(), 1);
    assert!(
        invalid(&bad_name)[0]
            .starts_with("metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain")
    );
    let no_name = MINIMAL.replace("  name: web\n", "  labels: {a: b}\n");
    assert_eq!(
        invalid(&no_name),
        ["metadata.name: Required value: name or generateName is required"]
    );
    let ns = MINIMAL.replace("  name: web\n", "  name: web\n  namespace: my.ns\n");
    assert!(
        invalid(&ns)[0].starts_with(
            "metadata.namespace: Invalid value: \"my.ns\": a lowercase RFC 1123 label"
        )
    );
    let labels = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  labels:\n    -bad: ok\n    good: -bad\n",
    );
    let errs = invalid(&labels);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("metadata.labels: Invalid value: \"-bad\": name part must consist")
    );
    assert!(errs[1].starts_with("metadata.labels: Invalid value: \"-bad\": a valid label must be"));
    let ann = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    peapod.io/restart-backoff: 1s,2s,3s\n",
    );
    assert_eq!(
        invalid(&ann),
        [
            "metadata.annotations[peapod.io/restart-backoff]: Invalid value: \"1s,2s,3s\": \
          expected \"<initial>[,<max>]\" (hint: e.g. \"1s,4s\")"
        ]
    );
    let ann = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    peapod.io/restart-backoff: fast\n",
    );
    assert_eq!(
        invalid(&ann),
        [
            "metadata.annotations[peapod.io/restart-backoff]: Invalid value: \"fast\": invalid duration `fast`"
        ]
    );
    let big = MINIMAL.replace(
        "  name: web\n",
        &format!(
            "  name: web\n  annotations:\n    big: \"{}\"\n",
            "x".repeat(300 * 1024)
        ),
    );
    assert_eq!(
        invalid(&big),
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

#[test]
fn container_names_are_unique_across_init_and_app_containers() {
    let text = manifest("initContainers:\n- name: app\n  image: host\n", "");
    assert_eq!(
        invalid(&text),
        ["spec.containers[0].name: Duplicate value: \"app\""]
    );
    let empty = manifest("", "").replace("- name: app", "- name: \"\"");
    assert_eq!(invalid(&empty), ["spec.containers[0].name: Required value"]);
    let none = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: []\n";
    assert_eq!(invalid(none), ["spec.containers: Required value"]);
    let no_spec = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
    assert_eq!(invalid(no_spec), ["spec: Required value"]);
}

#[test]
fn image_checks() {
    let text = manifest("", "").replace("image: host", "image: \" host\"");
    assert_eq!(
        invalid(&text),
        [
            "spec.containers[0].image: Invalid value: \" host\": must not have leading or trailing whitespace"
        ]
    );
    let text = manifest("", "imagePullPolicy: Sometimes\n");
    assert_eq!(
        invalid(&text),
        [
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported \
          values: \"Always\", \"IfNotPresent\", \"Never\""
        ]
    );
}

#[test]
fn volumes_and_mounts() {
    let spec = "volumes:\n- name: data\n  emptyDir: {}\n- name: data\n  hostPath: {path: /srv}\n- name: Bad\n";
    let container = "volumeMounts:\n- {name: data, mountPath: /data}\n- {name: cache, mountPath: /data}\n- {name: data, mountPath: rel}\n- {name: data, mountPath: /x, subPath: ../up}\n- {name: data, mountPath: /y, subPath: /abs}\n";
    let errs = invalid(&manifest(spec, container));
    assert_eq!(
        errs,
        [
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.volumes[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must \
             consist of lower case alphanumeric characters or '-', and must start and end with \
             an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for \
             validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].volumeMounts[1].name: Not found: \"cache\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
            "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"rel\": must be an absolute path (peapod)",
            "spec.containers[0].volumeMounts[3].subPath: Invalid value: \"../up\": must not contain '..'",
            "spec.containers[0].volumeMounts[4].subPath: Invalid value: \"/abs\": must be a relative path",
        ]
    );
}

#[test]
fn volume_sources() {
    let two = manifest(
        "volumes:\n- name: v\n  emptyDir: {}\n  hostPath: {path: /srv}\n",
        "",
    );
    assert_eq!(
        invalid(&two),
        ["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]
    );
    let hp = manifest(
        "volumes:\n- name: a\n  hostPath: {path: /srv/../etc, type: Dir}\n- name: b\n  hostPath: {path: srv}\n- name: c\n  hostPath: {path: \"\"}\n",
        "",
    );
    assert_eq!(
        invalid(&hp),
        [
            "spec.volumes[0].hostPath.path: Invalid value: \"/srv/../etc\": must not contain '..'",
            "spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \
             \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \
             \"FileOrCreate\", \"Socket\"",
            "spec.volumes[1].hostPath.path: Invalid value: \"srv\": must be an absolute path",
            "spec.volumes[2].hostPath.path: Required value",
        ]
    );
    let size = manifest(
        "volumes:\n- name: a\n  emptyDir: {medium: Disk, sizeLimit: 1Gx}\n",
        "",
    );
    assert_eq!(
        invalid(&size),
        [
            "spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"1Gx\": quantities must match \
             the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.volumes[0].emptyDir.medium: Unsupported value: \"Disk\": supported values: \"\", \"Memory\", \"HugePages\"",
        ]
    );
    // A volume without a source is an emptyDir (SetDefaults_Volume).
    accepted(&manifest(
        "volumes:\n- name: scratch\n",
        "volumeMounts:\n- {name: scratch, mountPath: /s}\n",
    ));
}

#[test]
fn mount_propagation_and_recursive_read_only() {
    let spec = "volumes:\n- name: v\n  emptyDir: {}\n";
    let c = "volumeMounts:\n- {name: v, mountPath: /a, mountPropagation: Bidirectional}\n- {name: v, mountPath: /b, mountPropagation: Sideways}\n- {name: v, mountPath: /c, recursiveReadOnly: Enabled, mountPropagation: HostToContainer}\n";
    assert_eq!(
        invalid(&manifest(spec, c)),
        [
            "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount \
             propagation is available only to privileged containers",
            "spec.containers[0].volumeMounts[1].mountPropagation: Unsupported value: \
             \"Sideways\": supported values: \"Bidirectional\", \"HostToContainer\", \"None\"",
            "spec.containers[0].volumeMounts[2].recursiveReadOnly: Forbidden: may only be \
             specified when readOnly is true",
            "spec.containers[0].volumeMounts[2].recursiveReadOnly: Forbidden: may only be \
             specified when mountPropagation is None or not specified",
        ]
    );
    let privileged = "securityContext: {privileged: true}\nvolumeMounts:\n- {name: v, mountPath: /a, mountPropagation: Bidirectional}\n";
    accepted(&manifest(spec, privileged));
}

#[test]
fn ports() {
    let c = "ports:\n- {name: http, containerPort: 80}\n- {name: http, containerPort: 0}\n- {name: HTTP--, containerPort: 70000, protocol: ICMP}\n- {containerPort: 81, hostIP: 1.2.3}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[0].ports[2].name: Invalid value: \"HTTP--\": must contain only \
             alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.containers[0].ports[2].name: Invalid value: \"HTTP--\": must contain at least \
             one letter (a-z)",
            "spec.containers[0].ports[2].name: Invalid value: \"HTTP--\": must not contain \
             consecutive hyphens",
            "spec.containers[0].ports[2].name: Invalid value: \"HTTP--\": must not begin or end \
             with a hyphen",
            "spec.containers[0].ports[2].containerPort: Invalid value: 70000: must be between 1 \
             and 65535, inclusive",
            "spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\": supported \
             values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[3].hostIP: Invalid value: \"1.2.3\": must be a valid IP \
             address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ]
    );
}

#[test]
fn host_network_ports() {
    let mismatch = manifest(
        "hostNetwork: true\n",
        "ports:\n- {containerPort: 80, hostPort: 8080}\n",
    );
    assert_eq!(
        invalid(&mismatch),
        [
            "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"
        ]
    );
    // With hostNetwork the containerPort is the host port: two containers cannot share it.
    let clash = manifest("hostNetwork: true\n", "ports:\n- {containerPort: 80}\n").replace(
        "containers:\n",
        "containers:\n  - name: b\n    image: host\n    ports:\n    - {containerPort: 80}\n",
    );
    assert_eq!(
        invalid(&clash),
        ["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//80\""]
    );
    accepted(&manifest(
        "hostNetwork: true\n",
        "ports:\n- {containerPort: 80, hostPort: 80}\n",
    ));
}

#[test]
fn probes() {
    let c = "ports:\n- {name: http, containerPort: 80}
livenessProbe:
  successThreshold: 2
  periodSeconds: -1
readinessProbe:
  exec: {command: [/bin/true]}
  tcpSocket: {port: 80}
  terminationGracePeriodSeconds: 5
startupProbe:
  httpGet: {port: metrics, scheme: FTP, httpHeaders: [{name: X Bad, value: v}]}
  terminationGracePeriodSeconds: 0
";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater \
             than or equal to 0",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Forbidden: must \
             not be set for readinessProbes",
            "spec.containers[0].startupProbe.httpGet.port: Not found: \"metrics\"",
            "spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: \"FTP\": \
             supported values: \"HTTP\", \"HTTPS\"",
            "spec.containers[0].startupProbe.httpGet.httpHeaders[0].name: Invalid value: \"X \
             Bad\": a valid HTTP header must consist of alphanumeric characters or '-' (e.g. \
             'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
            "spec.containers[0].startupProbe.terminationGracePeriodSeconds: Invalid value: 0: \
             must be greater than 0",
        ]
    );
    let empty_exec = manifest("", "livenessProbe:\n  exec: {command: []}\n");
    assert_eq!(
        invalid(&empty_exec),
        ["spec.containers[0].livenessProbe.exec.command: Required value"]
    );
    // Zero means "default", as in Go.
    accepted(&manifest(
        "",
        "readinessProbe:\n  tcpSocket: {port: 80}\n  periodSeconds: 0\n  successThreshold: 3\n",
    ));
}

#[test]
fn init_containers_and_sidecars() {
    let plain = "initContainers:\n- name: init\n  image: host\n  restartPolicy: Never\n  readinessProbe:\n    exec: {command: [/bin/true]}\n  lifecycle:\n    preStop:\n      exec: {command: [/bin/true]}\n";
    assert_eq!(
        invalid(&manifest(plain, "")),
        [
            "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
        ]
    );
    let sidecar = plain.replace("restartPolicy: Never", "restartPolicy: Always");
    accepted(&manifest(&sidecar, "restartPolicy: OnFailure\n"));
    let app = manifest("", "restartPolicy: Sometimes\n");
    assert_eq!(
        invalid(&app),
        [
            "spec.containers[0].restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        ]
    );
}

#[test]
fn lifecycle_handlers() {
    let c = "lifecycle:\n  postStart: {}\n  preStop:\n    sleep: {seconds: 40}\n    exec: {command: [x]}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
            "spec.containers[0].lifecycle.preStop: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: 40: must be \
             non-negative and less than terminationGracePeriodSeconds (30)",
        ]
    );
    accepted(&manifest(
        "terminationGracePeriodSeconds: 60\n",
        "lifecycle:\n  preStop:\n    sleep: {seconds: 40}\n  postStart:\n    httpGet: {port: 80, path: /started}\n",
    ));
}

#[test]
fn env_validation() {
    let c = "env:
- name: \"A=B\"
  value: x
- name: B
  value: x
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: C
  valueFrom: {}
- name: D
  valueFrom: {fieldRef: {fieldPath: spec.hostname}}
- name: E
  valueFrom: {fieldRef: {fieldPath: \"metadata.labels['-x']\"}}
- name: F
  valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}
- name: G
  valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 3Mi}}
- name: H
  valueFrom: {resourceFieldRef: {resource: limits.gpu}}
";
    let errs = invalid(&manifest("", c));
    let want = [
        "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
        "spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`",
        "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
        "spec.containers[0].env[5].valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource",
        "spec.containers[0].env[6].valueFrom.resourceFieldRef.divisor: Invalid value: \"3Mi\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
        "spec.containers[0].env[7].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"",
    ];
    assert_eq!(errs.len(), want.len() + 1, "{errs:#?}");
    for w in want {
        assert!(errs.iter().any(|e| e == w), "missing {w}\n{errs:#?}");
    }
    assert!(errs.iter().any(|e| e.starts_with("spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Invalid value: \"-x\": name part must consist")));
}

#[test]
fn resources_validation() {
    let c = "resources:\n  limits: {memory: 64Mi, cpu: 1x}\n  requests: {memory: 128Mi, gpu: 1}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"1x\": quantities must \
          match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ]
    );
    let c = "resources:\n  limits: {memory: 64Mi}\n  requests: {memory: 128Mi}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].resources.requests[memory]: Invalid value: \"128Mi\": must be less than or equal to memory limit of 64Mi"
        ]
    );
    let c = "resources:\n  requests: {gpu: 1}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified"
        ]
    );
}

#[test]
fn security_context_validation() {
    let c = "securityContext:\n  privileged: true\n  allowPrivilegeEscalation: false\n  runAsUser: -1\n  capabilities: {add: [SYS_ADMIN]}\n  seccompProfile: {type: RuntimeDefault, localhostProfile: x}\n";
    assert_eq!(
        invalid(&manifest("", c)),
        [
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: \"\": can only be set when `type` is \"Localhost\"",
        ]
    );
    let pod =
        "shareProcessNamespace: true\nhostPID: true\nsecurityContext:\n  runAsGroup: 4294967296\n";
    assert_eq!(
        invalid(&manifest(pod, "")),
        [
            "spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
            "spec.securityContext.runAsGroup: Invalid value: 4294967296: must be between 0 and 2147483647, inclusive",
        ]
    );
}

#[test]
fn pod_level_fields() {
    let spec = "terminationGracePeriodSeconds: -5
dnsPolicy: None
hostname: My.Host
subdomain: ok
hostAliases:
- ip: 10.0.0
  hostnames: [good.example, Bad_]
nodeName: node_1
nodeSelector: {disk: -ssd}
";
    let errs = invalid(&manifest(spec, ""));
    assert_eq!(errs.len(), 7, "{errs:#?}");
    assert_eq!(
        errs[0],
        "spec.terminationGracePeriodSeconds: Invalid value: -5: must be greater than or equal to 0"
    );
    assert_eq!(
        errs[1],
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    );
    assert!(
        errs[2]
            .starts_with("spec.hostname: Invalid value: \"My.Host\": a lowercase RFC 1123 label")
    );
    assert!(
        errs[3]
            .starts_with("spec.hostAliases[0].ip: Invalid value: \"10.0.0\": must be a valid IP")
    );
    assert!(errs[4].starts_with("spec.hostAliases[0].hostnames[1]: Invalid value: \"Bad_\""));
    assert!(errs[5].starts_with("spec.nodeName: Invalid value: \"node_1\""));
    assert!(errs[6].starts_with("spec.nodeSelector: Invalid value: \"-ssd\": a valid label"));
}

#[test]
fn dns_config_validation() {
    let spec = "dnsPolicy: None
dnsConfig:
  nameservers: [1.1.1.1, 8.8.8.8, 9.9.9.9, 1.0.0.1]
  searches: [example.com., -bad]
  options: [{value: \"2\"}]
";
    assert_eq!(
        invalid(&manifest(spec, "")),
        [
            "spec.dnsConfig.nameservers: Invalid value: \"1.1.1.1 8.8.8.8 9.9.9.9 1.0.0.1\": must not have more than 3 nameservers",
            "spec.dnsConfig.searches[1]: Invalid value: \"-bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.dnsConfig.options[0].name: Required value",
        ]
    );
    accepted(&manifest(
        "dnsPolicy: None\ndnsConfig:\n  nameservers: [10.0.0.10]\n  searches: [svc.example]\n  options: [{name: ndots, value: \"2\"}]\n",
        "",
    ));
}

#[test]
fn affinity_and_tolerations() {
    let spec = "affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: disk, operator: In}
        - {key: disk, operator: Exists, values: [x]}
        - {key: n, operator: Gt, values: [\"1\", \"2\"]}
        - {key: n, operator: Near}
        matchFields:
        - {key: metadata.labels, operator: In, values: [a]}
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 0
      preference: {matchExpressions: [{key: zone, operator: In, values: [a]}]}
tolerations:
- {operator: Equal, value: x}
- {key: a, operator: Exists, value: x}
- {key: a, value: b, tolerationSeconds: 5, effect: NoSchedule}
- {key: a, operator: Maybe, effect: Sometimes}
";
    let errs = invalid(&manifest(spec, ""));
    let base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
    let want = vec![
        format!("{base}.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        format!("{base}.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
        format!("{base}.matchExpressions[2].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"),
        format!("{base}.matchExpressions[3].operator: Invalid value: \"Near\": not a valid selector operator"),
        format!("{base}.matchFields[0].key: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\""),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100".to_string(),
        "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"".to_string(),
        "spec.tolerations[1].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'".to_string(),
        "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set".to_string(),
        "spec.tolerations[3].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"".to_string(),
        "spec.tolerations[3].effect: Unsupported value: \"Sometimes\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"".to_string(),
    ];
    assert_eq!(errs, want);
    let empty_terms = "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms: []\n";
    assert_eq!(
        invalid(&manifest(empty_terms, "")),
        [
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term"
        ]
    );
}

#[test]
fn hostname_override_rules() {
    let spec = "hostnameOverride: my.host\nsetHostnameAsFQDN: true\nhostNetwork: true\n";
    assert_eq!(
        invalid(&manifest(spec, "")),
        [
            "spec.hostnameOverride: Forbidden: may not be set when `setHostnameAsFQDN` is true",
            "spec.hostnameOverride: Forbidden: may not be set when `hostNetwork` is true",
        ]
    );
}

#[test]
fn fqdn_too_long_is_refused_up_front() {
    let spec = format!(
        "hostname: {}\nsubdomain: {}\nsetHostnameAsFQDN: true\n",
        "h".repeat(40),
        "s".repeat(20)
    );
    let errs = invalid(&manifest(&spec, ""));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.setHostnameAsFQDN: Invalid value: true: FQDN \""),
        "{errs:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// What peapod supports

/// A manifest using every field peapod implements: no error, no warning.
const KITCHEN_SINK: &str = "apiVersion: v1
kind: Pod
metadata:
  name: sink
  namespace: team-a
  labels: {app: sink, tier: web}
  annotations:
    peapod.io/restart-backoff: 1s,4s
    example.com/note: anything
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  hostname: sink-host
  subdomain: sinks
  setHostnameAsFQDN: false
  hostAliases:
  - ip: 10.1.2.3
    hostnames: [db.local]
  hostIPC: false
  hostPID: false
  shareProcessNamespace: true
  dnsPolicy: ClusterFirst
  dnsConfig:
    nameservers: [10.0.0.10]
    searches: [example.com]
    options: [{name: ndots, value: \"2\"}]
  enableServiceLinks: true
  nodeName: node-1
  nodeSelector: {kubernetes.io/os: linux}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: disk, operator: In, values: [ssd]}]
          matchFields: [{key: metadata.name, operator: In, values: [node-1]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference: {matchExpressions: [{key: zone, operator: Exists}]}
  tolerations:
  - {key: dedicated, operator: Equal, value: peapod, effect: NoSchedule}
  - {operator: Exists}
  - {key: flaky, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
  hostUsers: true
  os: {name: linux}
  automountServiceAccountToken: false
  serviceAccountName: default
  schedulerName: default-scheduler
  priority: 0
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
    appArmorProfile: {type: Unconfined}
    supplementalGroupsPolicy: Merge
    fsGroupChangePolicy: OnRootMismatch
  volumes:
  - name: shared
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: disk
    emptyDir: {}
  - name: host-etc
    hostPath: {path: /etc, type: Directory}
  - name: sock
    hostPath: {path: /run/app.sock, type: Socket}
  initContainers:
  - name: setup
    image: host
    command: [sh, -c, 'echo hi > /shared/index.html']
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: sidecar
    image: host
    restartPolicy: Always
    startupProbe:
      exec: {command: [/bin/true]}
      failureThreshold: 30
      periodSeconds: 1
    lifecycle:
      preStop:
        sleep: {seconds: 1}
  containers:
  - name: web
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    command: [httpd]
    args: [-f, -p, $(PORT), -h, /shared]
    workingDir: /shared
    env:
    - {name: PORT, value: \"8080\"}
    - {name: URL, value: http://localhost:$(PORT)/}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_UID
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.uid}}
    - name: TIER
      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['tier']\"}}
    - name: MEM
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    ports:
    - {name: http, containerPort: 8080, protocol: TCP}
    - {containerPort: 5353, protocol: UDP}
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    volumeMounts:
    - {name: shared, mountPath: /shared, readOnly: true}
    - {name: host-etc, mountPath: /host/etc, readOnly: true, mountPropagation: HostToContainer, recursiveReadOnly: Disabled}
    - {name: disk, mountPath: /cache, subPath: web}
    - {name: sock, mountPath: /run/app.sock}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
        scheme: HTTP
        host: 127.0.0.1
        httpHeaders: [{name: X-Probe, value: live}]
        protocol: HTTP/1.1
      initialDelaySeconds: 3
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 4
      terminationGracePeriodSeconds: 10
    readinessProbe:
      tcpSocket: {port: 8080}
      successThreshold: 2
    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'echo started']}
      preStop:
        httpGet: {path: /quit, port: 8080}
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      runAsNonRoot: true
      privileged: false
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
      seccompProfile: {type: Unconfined}
      procMount: Default
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    stdin: false
    tty: false
  - name: fetch
    image: host
    restartPolicy: Never
    command: [sh, -c, 'wget -qO- http://127.0.0.1:8080/']
";

#[test]
fn kitchen_sink_is_fully_supported() {
    let pod = parse_one(KITCHEN_SINK);
    assert_eq!(validate(&pod), Ok(vec![]));
    let (spec, resources) = to_supervisor(&pod).unwrap();
    assert_eq!(spec.namespace, "team-a");
    assert_eq!(spec.restart_policy, RestartPolicy::OnFailure);
    assert!(spec.is_sidecar(1) && !spec.is_sidecar(0));
    assert_eq!(spec.app_restart_policy(1), RestartPolicy::Never);
    assert_eq!(spec.backoff.initial, std::time::Duration::from_secs(1));
    assert_eq!(spec.backoff.max, std::time::Duration::from_secs(4));
    assert_eq!(
        resources.containers[0].limits["memory"],
        Quantity::parse("64Mi").unwrap()
    );
    assert!(resources.init_containers[1].restartable);
    // Defaulting keeps it valid and warning-free.
    let mut defaulted = pod.clone();
    apply_defaults(&mut defaulted);
    assert_eq!(validate(&defaulted), Ok(vec![]));
    assert_eq!(to_supervisor(&defaulted).unwrap(), (spec, resources));
}

/// Refused cases: (where the snippet goes, snippet, the refused field path).
const REFUSED: &[(&str, &str, &str)] = &[
    ("meta", "generateName: web-", "metadata.generateName"),
    (
        "spec",
        "activeDeadlineSeconds: 30",
        "spec.activeDeadlineSeconds",
    ),
    (
        "spec",
        "ephemeralContainers: [{name: dbg, image: host}]",
        "spec.ephemeralContainers",
    ),
    (
        "spec",
        "readinessGates: [{conditionType: example.com/ready}]",
        "spec.readinessGates",
    ),
    (
        "spec",
        "schedulingGates: [{name: example.com/wait}]",
        "spec.schedulingGates",
    ),
    (
        "spec",
        "schedulingGroup: {podGroupName: g}",
        "spec.schedulingGroup",
    ),
    (
        "spec",
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]",
        "spec.topologySpreadConstraints",
    ),
    ("spec", "overhead: {cpu: 100m}", "spec.overhead"),
    ("spec", "runtimeClassName: kata", "spec.runtimeClassName"),
    (
        "spec",
        "resourceClaims: [{name: gpu, resourceClaimName: gpu}]",
        "spec.resourceClaims",
    ),
    (
        "spec",
        "resources: {limits: {cpu: \"1\"}}",
        "spec.resources",
    ),
    (
        "spec",
        "affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone}]}}",
        "spec.affinity.podAffinity",
    ),
    (
        "spec",
        "affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone}]}}",
        "spec.affinity.podAntiAffinity",
    ),
    ("spec", "hostUsers: false", "spec.hostUsers"),
    ("spec", "os: {name: windows}", "spec.os"),
    (
        "spec",
        "securityContext: {seLinuxOptions: {level: \"s0:c1\"}}",
        "spec.securityContext.seLinuxOptions",
    ),
    (
        "spec",
        "securityContext: {fsGroup: 2000}",
        "spec.securityContext.fsGroup",
    ),
    (
        "spec",
        "securityContext: {supplementalGroups: [1000]}",
        "spec.securityContext.supplementalGroups",
    ),
    (
        "spec",
        "securityContext: {supplementalGroupsPolicy: Strict}",
        "spec.securityContext.supplementalGroupsPolicy",
    ),
    (
        "spec",
        "securityContext: {sysctls: [{name: net.core.somaxconn, value: \"1024\"}]}",
        "spec.securityContext.sysctls",
    ),
    (
        "spec",
        "securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}",
        "spec.securityContext.seccompProfile",
    ),
    (
        "spec",
        "securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}",
        "spec.securityContext.appArmorProfile",
    ),
    (
        "container",
        "envFrom: [{configMapRef: {name: cm}}]",
        "spec.containers[0].envFrom",
    ),
    (
        "container",
        "env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]",
        "spec.containers[0].env[0].valueFrom.configMapKeyRef",
    ),
    (
        "container",
        "env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]",
        "spec.containers[0].env[0].valueFrom.secretKeyRef",
    ),
    (
        "container",
        "env: [{name: A, valueFrom: {fileKeyRef: {volumeName: v, path: p, key: k}}}]",
        "spec.containers[0].env[0].valueFrom.fileKeyRef",
    ),
    ("container", "stdin: true", "spec.containers[0].stdin"),
    (
        "container",
        "stdinOnce: true",
        "spec.containers[0].stdinOnce",
    ),
    ("container", "tty: true", "spec.containers[0].tty"),
    (
        "container",
        "volumeDevices: [{name: v, devicePath: /dev/xvda}]",
        "spec.containers[0].volumeDevices",
    ),
    (
        "container",
        "restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [42]}}]",
        "spec.containers[0].restartPolicyRules",
    ),
    (
        "container",
        "securityContext: {seLinuxOptions: {type: spc_t}}",
        "spec.containers[0].securityContext.seLinuxOptions",
    ),
    (
        "container",
        "securityContext: {procMount: Unmasked}",
        "spec.containers[0].securityContext.procMount",
    ),
    (
        "container",
        "securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}",
        "spec.containers[0].securityContext.seccompProfile",
    ),
    (
        "container",
        "securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}",
        "spec.containers[0].securityContext.appArmorProfile",
    ),
    (
        "container",
        "lifecycle: {stopSignal: SIGUSR1}",
        "spec.containers[0].lifecycle.stopSignal",
    ),
    (
        "container",
        "lifecycle: {postStart: {tcpSocket: {port: 80}}}",
        "spec.containers[0].lifecycle.postStart.tcpSocket",
    ),
    (
        "container",
        "livenessProbe: {grpc: {port: 9090}}",
        "spec.containers[0].livenessProbe.grpc",
    ),
    (
        "container",
        "readinessProbe: {httpGet: {port: 80, protocol: HTTP/2}}",
        "spec.containers[0].readinessProbe.httpGet.protocol",
    ),
    (
        "container",
        "resources: {claims: [{name: gpu}]}",
        "spec.containers[0].resources.claims",
    ),
    (
        "volume",
        "volumeMounts: [{name: v, mountPath: /v, subPathExpr: $(POD_NAME)}]",
        "spec.containers[0].volumeMounts[0].subPathExpr",
    ),
    (
        "volume",
        "volumeMounts: [{name: v, mountPath: /v, bindMountOptions: [noexec]}]",
        "spec.containers[0].volumeMounts[0].bindMountOptions",
    ),
    (
        "volume",
        "volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: Enabled}]",
        "spec.containers[0].volumeMounts[0].recursiveReadOnly",
    ),
    (
        "spec",
        "volumes: [{name: v, configMap: {name: cm}}]",
        "spec.volumes[0].configMap",
    ),
    (
        "spec",
        "volumes: [{name: v, secret: {secretName: s}}]",
        "spec.volumes[0].secret",
    ),
    (
        "spec",
        "volumes: [{name: v, persistentVolumeClaim: {claimName: c}}]",
        "spec.volumes[0].persistentVolumeClaim",
    ),
    (
        "spec",
        "volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]",
        "spec.volumes[0].projected",
    ),
    (
        "spec",
        "volumes: [{name: v, downwardAPI: {items: [{path: n, fieldRef: {fieldPath: metadata.name}}]}}]",
        "spec.volumes[0].downwardAPI",
    ),
    (
        "spec",
        "volumes: [{name: v, image: {reference: busybox}}]",
        "spec.volumes[0].image",
    ),
    (
        "spec",
        "volumes: [{name: v, ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce]}}}}]",
        "spec.volumes[0].ephemeral",
    ),
    (
        "spec",
        "volumes: [{name: v, nfs: {server: nfs.example, path: /x}}]",
        "spec.volumes[0].nfs",
    ),
    (
        "spec",
        "volumes: [{name: v, emptyDir: {medium: HugePages}}]",
        "spec.volumes[0].emptyDir.medium",
    ),
    (
        "spec",
        "volumes: [{name: v, emptyDir: {mode: 493}}]",
        "spec.volumes[0].emptyDir.mode",
    ),
];

fn case_manifest(place: &str, snippet: &str) -> String {
    match place {
        "meta" => MINIMAL.replace("  name: web\n", &format!("  name: web\n  {snippet}\n")),
        "spec" => manifest(&format!("{snippet}\n"), ""),
        "container" => manifest("", &format!("{snippet}\n")),
        "volume" => manifest(
            "volumes: [{name: v, emptyDir: {}}]\n",
            &format!("{snippet}\n"),
        ),
        other => panic!("unknown place {other}"),
    }
}

#[test]
fn every_refused_case_is_refused_with_its_path() {
    for (place, snippet, path) in REFUSED {
        let fields = refused(&case_manifest(place, snippet));
        let got: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(got, [*path], "{snippet}");
        assert!(
            fields[0]
                .to_string()
                .starts_with(&format!("{path} is not supported by peapod")),
            "{}",
            fields[0]
        );
    }
}

#[test]
fn refusal_message_shape() {
    let text = manifest("", "securityContext: {seLinuxOptions: {level: s0}}\n").replace(
        "containers:\n",
        "containers:\n  - name: first\n    image: host\n",
    );
    let err = validate(&parse_one(&text)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"web\" cannot run on peapod: spec.containers[1].securityContext.seLinuxOptions is \
         not supported by peapod: peapod applies no SELinux labels"
    );
    let two = manifest("runtimeClassName: kata\n", "tty: true\n");
    assert_eq!(
        validate(&parse_one(&two)).unwrap_err().to_string(),
        "Pod \"web\" cannot run on peapod: [spec.containers[0].tty is not supported by peapod: \
         peapod does not give containers a terminal (hint: use `peapod pod exec -t`), \
         spec.runtimeClassName is not supported by peapod: peapod has a single runtime]"
    );
}

#[test]
fn init_containers_use_the_container_table() {
    let text = manifest(
        "initContainers:\n- name: i\n  image: host\n  tty: true\n",
        "",
    );
    assert_eq!(refused(&text)[0].field, "spec.initContainers[0].tty");
}

#[test]
fn invalid_wins_over_unsupported() {
    let text = manifest("runtimeClassName: kata\nrestartPolicy: Sometimes\n", "");
    assert!(matches!(
        validate(&parse_one(&text)),
        Err(ManifestError::Invalid { .. })
    ));
}

/// Warned cases: (place, snippet, field path).
const WARNED: &[(&str, &str, &str)] = &[
    ("top", "status: {phase: Running}", "status"),
    ("meta", "uid: \"1234\"", "metadata.uid"),
    (
        "meta",
        "resourceVersion: \"42\"",
        "metadata.resourceVersion",
    ),
    ("meta", "generation: 3", "metadata.generation"),
    (
        "meta",
        "creationTimestamp: \"2026-01-01T00:00:00Z\"",
        "metadata.creationTimestamp",
    ),
    ("meta", "selfLink: /api/v1/pods/web", "metadata.selfLink"),
    (
        "meta",
        "managedFields: [{manager: kubectl, operation: Update}]",
        "metadata.managedFields",
    ),
    (
        "meta",
        "deletionTimestamp: \"2026-01-01T00:00:00Z\"",
        "metadata.deletionTimestamp",
    ),
    (
        "meta",
        "deletionGracePeriodSeconds: 30",
        "metadata.deletionGracePeriodSeconds",
    ),
    (
        "meta",
        "ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: u}]",
        "metadata.ownerReferences",
    ),
    (
        "meta",
        "finalizers: [example.com/keep]",
        "metadata.finalizers",
    ),
    ("spec", "priorityClassName: high", "spec.priorityClassName"),
    ("spec", "priority: 1000", "spec.priority"),
    ("spec", "preemptionPolicy: Never", "spec.preemptionPolicy"),
    (
        "spec",
        "imagePullSecrets: [{name: registry}]",
        "spec.imagePullSecrets",
    ),
    (
        "spec",
        "evictionResponders: [{name: example.com/drain, priority: 10000}]",
        "spec.evictionResponders",
    ),
    (
        "spec",
        "automountServiceAccountToken: true",
        "spec.automountServiceAccountToken",
    ),
    (
        "spec",
        "serviceAccountName: builder",
        "spec.serviceAccountName",
    ),
    ("spec", "serviceAccount: builder", "spec.serviceAccount"),
    ("spec", "schedulerName: my-scheduler", "spec.schedulerName"),
    (
        "spec",
        "securityContext: {seLinuxChangePolicy: Recursive}",
        "spec.securityContext.seLinuxChangePolicy",
    ),
    (
        "spec",
        "securityContext: {windowsOptions: {runAsUserName: admin}}",
        "spec.securityContext.windowsOptions",
    ),
    (
        "spec",
        "securityContext: {appArmorProfile: {type: RuntimeDefault}}",
        "spec.securityContext.appArmorProfile",
    ),
    (
        "container",
        "resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]",
        "spec.containers[0].resizePolicy",
    ),
    (
        "container",
        "terminationMessagePath: /tmp/msg",
        "spec.containers[0].terminationMessagePath",
    ),
    (
        "container",
        "terminationMessagePolicy: FallbackToLogsOnError",
        "spec.containers[0].terminationMessagePolicy",
    ),
    (
        "container",
        "securityContext: {windowsOptions: {runAsUserName: admin}}",
        "spec.containers[0].securityContext.windowsOptions",
    ),
    (
        "container",
        "securityContext: {appArmorProfile: {type: RuntimeDefault}}",
        "spec.containers[0].securityContext.appArmorProfile",
    ),
    (
        "volume",
        "volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: IfPossible}]",
        "spec.containers[0].volumeMounts[0].recursiveReadOnly",
    ),
];

#[test]
fn every_warned_case_warns_with_its_path() {
    for (place, snippet, path) in WARNED {
        let text = match *place {
            "top" => format!("{MINIMAL}{snippet}\n"),
            _ => case_manifest(place, snippet),
        };
        let got = warnings(&text);
        assert_eq!(got.len(), 1, "{snippet}: {got:?}");
        assert_eq!(got[0].field, *path, "{snippet}");
        assert!(!got[0].message.is_empty());
    }
}

#[test]
fn conditional_fields_accept_their_supported_values() {
    for (place, snippet) in [
        ("spec", "hostUsers: true"),
        ("spec", "os: {name: linux}"),
        ("spec", "automountServiceAccountToken: false"),
        ("spec", "serviceAccountName: default"),
        ("spec", "schedulerName: default-scheduler"),
        (
            "spec",
            "securityContext: {seccompProfile: {type: Unconfined}}",
        ),
        (
            "spec",
            "securityContext: {appArmorProfile: {type: Unconfined}}",
        ),
        (
            "container",
            "securityContext: {seccompProfile: {type: RuntimeDefault}}",
        ),
        ("container", "securityContext: {procMount: Default}"),
        ("container", "terminationMessagePolicy: File"),
        (
            "container",
            "readinessProbe: {httpGet: {port: 80, protocol: HTTP/1.1}}",
        ),
        ("spec", "volumes: [{name: v, emptyDir: {medium: Memory}}]"),
        (
            "volume",
            "volumeMounts: [{name: v, mountPath: /v, recursiveReadOnly: Disabled}]",
        ),
        // Zero values ask for nothing.
        ("spec", "ephemeralContainers: []"),
        ("spec", "securityContext: {seLinuxOptions: {}}"),
        ("container", "stdin: false"),
        ("spec", "activeDeadlineSeconds: null"),
    ] {
        accepted(&case_manifest(place, snippet));
    }
    accepted(&manifest(
        "hostNetwork: true\n",
        "ports: [{containerPort: 80, hostPort: 80, hostIP: 127.0.0.1}]\n",
    ));
}

/// `spec.containers[3].env[0]` → `spec.containers[].env[]`, with the instances of a shared
/// table folded into one: init containers into containers, every probe into readinessProbe,
/// every lifecycle handler into postStart, a hook's httpGet into the probe's.
fn pattern(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out.replace("spec.initContainers[]", "spec.containers[]")
        .replace("livenessProbe", "readinessProbe")
        .replace("startupProbe", "readinessProbe")
        .replace("lifecycle.preStop", "lifecycle.postStart")
        .replace("lifecycle.postStart.httpGet", "readinessProbe.httpGet")
}

#[test]
fn every_table_row_has_a_case() {
    let refused: BTreeSet<String> = REFUSED.iter().map(|(_, _, p)| pattern(p)).collect();
    let warned: BTreeSet<String> = WARNED.iter().map(|(_, _, p)| pattern(p)).collect();
    let table = field_support();
    let mut paths = BTreeSet::new();
    for row in &table {
        assert!(paths.insert(row.path.clone()), "duplicate row {}", row.path);
        let p = pattern(&row.path);
        match row.support {
            Support::Refused => assert!(refused.contains(&p), "no refused case for {}", row.path),
            Support::Warned => assert!(warned.contains(&p), "no warned case for {}", row.path),
            Support::Conditional => assert!(
                refused.contains(&p) || warned.contains(&p),
                "no case for conditional {}",
                row.path
            ),
            Support::Supported => {}
        }
    }
    // And no case names a field the table does not know as refused/warned/conditional
    // (except unlisted volume sources, refused by the volume table's default).
    for p in &refused {
        let row = table.iter().find(|r| &pattern(&r.path) == p);
        assert!(
            row.is_some_and(|r| matches!(r.support, Support::Refused | Support::Conditional))
                || p == "spec.volumes[].nfs",
            "{p}"
        );
    }
    assert!(
        table
            .iter()
            .any(|r| r.path == "spec.containers[].securityContext.privileged"
                && r.support == Support::Supported)
    );
    assert!(table.iter().any(|r| r.path == "spec.initContainers[]"));
}

// ---------------------------------------------------------------------------------------------
// Defaults and the supervisor mapping

#[test]
fn defaults_match_the_api_server() {
    let text = manifest(
        "hostNetwork: true\nvolumes:\n- name: bare\n- name: hp\n  hostPath: {path: /srv}\n",
        "ports: [{containerPort: 80}]\nresources: {limits: {cpu: 500m}}\nreadinessProbe:\n  httpGet: {port: 80}\n  timeoutSeconds: 0\nenv: [{name: N, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n",
    )
    .replace("containers:\n", "containers:\n  - name: latest\n    image: registry.example:5000/app\n  - name: pinned\n    image: app:1.2\n  - name: digest\n    image: app@sha256:abc\n");
    let mut pod = parse_one(&text);
    apply_defaults(&mut pod);
    let once = pod.clone();
    apply_defaults(&mut pod);
    assert_eq!(pod, once, "idempotent");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.enable_service_links, Some(true));
    let volumes = spec.volumes.as_ref().unwrap();
    assert!(volumes[0].empty_dir.is_some());
    assert_eq!(
        volumes[1].host_path.as_ref().unwrap().type_.as_deref(),
        Some("")
    );
    let policies: Vec<_> = spec
        .containers
        .iter()
        .map(|c| c.image_pull_policy.clone().unwrap())
        .collect();
    assert_eq!(
        policies,
        ["Always", "IfNotPresent", "IfNotPresent", "IfNotPresent"]
    );
    let app = &spec.containers[3];
    assert_eq!(
        app.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(app.termination_message_policy.as_deref(), Some("File"));
    let port = &app.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.protocol.as_deref(), port.host_port),
        (Some("TCP"), Some(80))
    );
    let probe = app.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            probe.timeout_seconds,
            probe.period_seconds,
            probe.success_threshold,
            probe.failure_threshold
        ),
        (Some(1), Some(10), Some(1), Some(3))
    );
    let get = probe.http_get.as_ref().unwrap();
    assert_eq!(
        (get.path.as_deref(), get.scheme.as_deref()),
        (Some("/"), Some("HTTP"))
    );
    let requests = app.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "500m");
    let field_ref = app.env.as_ref().unwrap()[0]
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field_ref.api_version.as_deref(), Some("v1"));
    assert_eq!(validate(&pod), Ok(vec![]));
}

#[test]
fn supervisor_mapping_with_defaults() {
    let mut pod = parse_one(&manifest(
        "",
        "livenessProbe:\n  exec: {command: [/bin/true]}\n  periodSeconds: 0\n  failureThreshold: 7\n  initialDelaySeconds: 2\n",
    ));
    pod.metadata.uid = Some("uid-1".into());
    let (spec, resources) = to_supervisor(&pod).unwrap();
    assert_eq!(
        (
            spec.name.as_str(),
            spec.namespace.as_str(),
            spec.uid.as_str()
        ),
        ("web", "default", "uid-1")
    );
    assert_eq!(spec.restart_policy, RestartPolicy::Always);
    assert_eq!(
        spec.termination_grace_period,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(spec.backoff, Default::default());
    assert_eq!(
        spec.containers[0].liveness_probe,
        Some(ProbeSpec {
            initial_delay_seconds: 2,
            failure_threshold: 7,
            ..ProbeSpec::default()
        })
    );
    assert!(spec.containers[0].readiness_probe.is_none());
    assert_eq!(resources.containers.len(), 1);
    assert!(resources.containers[0].limits.is_empty());
}

#[test]
fn supervisor_mapping_errors() {
    let bad = parse_one(&manifest(
        "restartPolicy: Sometimes\n",
        "resources: {limits: {memory: lots}}\n",
    ));
    let err = to_supervisor(&bad).unwrap_err();
    let ManifestError::Invalid { errors, .. } = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.restartPolicy",
            "spec.containers[0].resources.limits[memory]"
        ]
    );
    // The supervisor's own checks surface as field errors too.
    let probe_on_init = parse_one(&manifest(
        "initContainers:\n- name: i\n  image: host\n  livenessProbe: {exec: {command: [x]}}\n",
        "",
    ));
    assert_eq!(
        to_supervisor(&probe_on_init).unwrap_err().to_string(),
        "Pod \"web\" is invalid: spec.initContainers[0].livenessProbe: Forbidden: may not be set \
         for init containers without restartPolicy=Always"
    );
    let ann = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  annotations: {peapod.io/restart-backoff: \"0s\"}\n",
    );
    assert!(
        to_supervisor(&parse_one(&ann))
            .unwrap_err()
            .to_string()
            .contains("durations must be positive")
    );
}

// ---------------------------------------------------------------------------------------------
// Hostnames

#[test]
fn hostnames_as_kubelet() {
    let host = |spec: &str| pod_hostname(&parse_one(&manifest(spec, ""))).unwrap();
    let plain = host("");
    assert_eq!(
        plain,
        PodHostname {
            hostname: "web".into(),
            domain: None,
            uts_hostname: Some("web".into())
        }
    );
    assert_eq!(plain.fqdn(), None);
    let sub = host("hostname: h\nsubdomain: s\n");
    assert_eq!(sub.fqdn().as_deref(), Some("h.s.default.svc.cluster.local"));
    assert_eq!(sub.uts_hostname.as_deref(), Some("h"));
    let fqdn = host("hostname: h\nsubdomain: s\nsetHostnameAsFQDN: true\n");
    assert_eq!(
        fqdn.uts_hostname.as_deref(),
        Some("h.s.default.svc.cluster.local")
    );
    let over = host("hostname: h\nsubdomain: s\nhostnameOverride: custom.name\n");
    assert_eq!(
        (over.hostname.as_str(), over.domain.as_deref()),
        ("custom.name", None)
    );
    assert_eq!(host("hostNetwork: true\n").uts_hostname, None);
    // A long pod name is cut to 63 characters, without a trailing '-' or '.'.
    let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    let text = MINIMAL.replace("name: web", &format!("name: {long}"));
    assert_eq!(
        pod_hostname(&parse_one(&text)).unwrap().hostname,
        "a".repeat(62)
    );
}

// ---------------------------------------------------------------------------------------------
// Environment

#[test]
fn expansion_as_kubelet() {
    let vars = |name: &str| match name {
        "VAR_A" => Some("A".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    for (input, want) in [
        ("$(VAR_A)", "A"),
        ("___$(VAR_A)___", "___A___"),
        ("$(VAR_A)$(VAR_A)", "AA"),
        ("$(EMPTY)", ""),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$", "$"),
        ("$", "$"),
        ("x$", "x$"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_A", "$(VAR_A"),
        ("$()", "$()"),
        ("$(", "$("),
        ("é$(VAR_A)é$é", "éAé$é"),
        ("no vars", "no vars"),
    ] {
        assert_eq!(expand(input, vars), want, "{input}");
    }
}

#[test]
fn container_env_as_kubelet() {
    let text = manifest(
        "",
        "env:
- {name: A, value: one}
- {name: B, value: $(A)-$(C)}
- {name: C, value: three}
- {name: A, value: uno}
- name: NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: NS
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: APP
  valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}
- name: NODE
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: IPS
  valueFrom: {fieldRef: {fieldPath: status.podIPs}}
- name: CPU_M
  valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
- name: CPU
  valueFrom: {resourceFieldRef: {resource: requests.cpu}}
- name: MEM_MI
  valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
- name: SIDE_MEM
  valueFrom: {resourceFieldRef: {containerName: side, resource: limits.memory}}
resources:
  requests: {cpu: 250m}
  limits: {memory: 100M}
command: [echo, $(A), $(B)]
args: [$(NODE), $$(A), $(MISSING)]
",
    )
    .replace("  name: web\n", "  name: web\n  labels: {app: demo}\n")
    .replace(
        "containers:\n",
        "containers:\n  - name: side\n    image: host\n",
    );
    let pod = parse_one(&text);
    let allocatable: ResourceList = [
        ("cpu".to_string(), Quantity::parse("4").unwrap()),
        ("memory".to_string(), Quantity::parse("8Gi").unwrap()),
    ]
    .into_iter()
    .collect();
    let ips = ["10.0.0.2".to_string(), "fd00::2".to_string()];
    let ctx = EnvContext {
        node_name: "node-1",
        host_ips: &[],
        pod_ips: &ips,
        node_allocatable: &allocatable,
    };
    let container = &pod.spec.as_ref().unwrap().containers[1];
    let env = container_env(&pod, container, &ctx).unwrap();
    let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("A", "uno"),
            ("B", "one-$(C)"),
            ("C", "three"),
            ("NAME", "web"),
            ("NS", "default"),
            ("APP", "demo"),
            ("NODE", "node-1"),
            ("IPS", "10.0.0.2,fd00::2"),
            ("CPU_M", "4000"),
            ("CPU", "1"),
            ("MEM_MI", "96"),
            ("SIDE_MEM", "8589934592"),
        ]
    );
    let (command, args) = expand_command(container, &env);
    assert_eq!(command, ["echo", "uno", "one-$(C)"]);
    assert_eq!(args, ["node-1", "$(A)", "$(MISSING)"]);
}

#[test]
fn container_env_errors() {
    let text = manifest(
        "",
        "env:\n- name: X\n  valueFrom: {resourceFieldRef: {containerName: ghost, resource: limits.cpu}}\n",
    );
    let pod = parse_one(&text);
    let empty = ResourceList::new();
    let ctx = EnvContext {
        node_name: "n",
        host_ips: &[],
        pod_ips: &[],
        node_allocatable: &empty,
    };
    let err = container_env(&pod, &pod.spec.as_ref().unwrap().containers[0], &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"web\" is invalid: spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: Invalid value: \"ghost\": no such container"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text gives pods or an error, and terminates (the YAML document iterator repeats
    /// errors forever if not stopped).
    #[test]
    fn parsing_never_panics_or_hangs(text in "[a-z:{}\\[\\]\\-, \n\"'#&*!|>.0-9]{0,200}") {
        let _ = parse_manifests(&text);
    }

    /// Text without `$` expands to itself; expansion never panics.
    #[test]
    fn expansion_is_identity_without_dollar(text in "[^$]{0,64}", other in ".{0,64}") {
        prop_assert_eq!(expand(&text, |_| Some("x".into())), text);
        let _ = expand(&other, |n| Some(n.to_uppercase()));
    }

    /// A valid pod round-trips through JSON unchanged and stays valid.
    #[test]
    fn valid_pods_round_trip(name in "[a-z][a-z0-9-]{0,20}[a-z0-9]", port in 1i32..=65535) {
        let text = manifest("", &format!("ports: [{{containerPort: {port}}}]\n")).replace("name: web", &format!("name: {name}"));
        let pod = parse_one(&text);
        prop_assert!(validate(&pod).is_ok());
        let json = serde_json::to_string(&pod).unwrap();
        prop_assert_eq!(&parse_one(&json), &pod);
    }
}

#[test]
fn decode_edge_cases() {
    // A wrong type at the top of the spec names the field.
    let err =
        parse_manifests("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: 3\n").unwrap_err();
    assert!(
        matches!(&err, ManifestError::Decode { path, .. } if path == "spec"),
        "{err:?}"
    );
    // Free-form JSON inside the API (managedFields.fieldsV1) is not an unknown field.
    let text = MINIMAL.replace(
        "  name: web\n",
        "  name: web\n  managedFields:\n  - manager: kubectl\n    fieldsV1: {\"f:metadata\": {\"f:labels\": {}}}\n",
    );
    assert_eq!(warnings(&text).len(), 1);
    // Explicit nulls are "unset", as in Go.
    accepted(&manifest(
        "hostNetwork: null\nvolumes: null\n",
        "command: null\nenv: null\n",
    ));
}

#[test]
fn a_kubectl_export_is_refused_for_its_token_volume_only() {
    // What `kubectl get pod -o yaml` adds on a cluster: defaults, status, the token volume.
    let text = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  uid: 0b9f3c4e-1111-2222-3333-444455556666
  resourceVersion: \"1234\"
  creationTimestamp: \"2026-11-01T10:00:00Z\"
spec:
  containers:
  - name: app
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    resources: {}
    volumeMounts:
    - {name: kube-api-access-x, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  nodeName: node-1
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  tolerations:
  - {effect: NoExecute, key: node.kubernetes.io/not-ready, operator: Exists, tolerationSeconds: 300}
  volumes:
  - name: kube-api-access-x
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {expirationSeconds: 3607, path: token}
status:
  phase: Running
  podIP: 10.244.0.5
";
    let fields = refused(text);
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].field, "spec.volumes[0].projected");
}
