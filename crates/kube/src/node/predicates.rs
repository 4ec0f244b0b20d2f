//! The scheduler's per-node predicates, pure: node selector and node affinity
//! (`component-helpers/scheduling/corev1/nodeaffinity`), tolerations against taints
//! (`core/v1 Toleration.ToleratesTaint`), and the two soft scores (preferred affinity
//! weights, intolerable PreferNoSchedule taints). Behaviour reproduced from the upstream
//! documentation and `../shared/reference/pod-semantics.md` §7, not copied.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

use super::taints::{NO_EXECUTE, NO_SCHEDULE, PREFER_NO_SCHEDULE};

/// The node facts the predicates look at.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [Taint],
}

/// One `matchExpressions` requirement against a node's labels (`labels.Requirement.Matches`):
/// - `In`: the key exists and its value is one of `values`;
/// - `NotIn`: the key is absent, or its value is none of `values`;
/// - `Exists` / `DoesNotExist`;
/// - `Gt` / `Lt`: the key exists, the label and the single value both parse as int64, and
///   the comparison holds; any parse failure, or not exactly one value, is no match.
///
/// An unknown operator matches nothing (upstream turns it into a selector error, which makes
/// the whole term fail).
pub fn requirement_matches(
    req: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|v| values.contains(v)),
        "NotIn" => label.is_none_or(|v| !values.contains(v)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [want] = values else {
                return false;
            };
            let (Some(have), Ok(want)) = (
                label.and_then(|v| v.parse::<i64>().ok()),
                want.parse::<i64>(),
            ) else {
                return false;
            };
            if op == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

/// One `matchFields` requirement: only `metadata.name` with `In`/`NotIn` and exactly one
/// value is valid; anything else matches nothing.
pub fn field_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    if req.key != "metadata.name" || values.len() != 1 {
        return false;
    }
    match req.operator.as_str() {
        "In" => values[0] == node_name,
        "NotIn" => values[0] != node_name,
        _ => false,
    }
}

/// A term matches when all its expressions and fields match; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: NodeView<'_>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, node.labels))
        && fields.iter().all(|r| field_matches(r, node.name))
}

/// `nodeSelector` AND the required node affinity: terms ORed (an empty list matches
/// nothing), a nil required affinity matches everything.
pub fn required_affinity_matches(spec: &PodSpec, node: NodeView<'_>) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// Sum of the weights of the preferred terms that match (NodeAffinity's raw score; weight 0
/// is skipped).
pub fn preferred_affinity_score(spec: &PodSpec, node: NodeView<'_>) -> i64 {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// `ToleratesTaint`: an empty effect matches every effect; an empty key matches every key;
/// `Exists` matches any value; `Equal` or no operator needs equal values. Other operators
/// (`Lt`/`Gt` are behind an alpha gate upstream) tolerate nothing.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether any toleration tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule or NoExecute taint no toleration tolerates (TaintToleration's
/// filter, `DoNotScheduleTaintsFilterFunc`).
pub fn untolerated_taint<'a>(tolerations: &[Toleration], taints: &'a [Taint]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
        .find(|t| !tolerated(tolerations, t))
}

/// TaintToleration's raw score: how many PreferNoSchedule taints the pod does not tolerate
/// (only tolerations with an empty or PreferNoSchedule effect count, as upstream).
pub fn intolerable_prefer_no_schedule(tolerations: &[Toleration], taints: &[Taint]) -> i64 {
    let relevant: Vec<Toleration> = tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some(PREFER_NO_SCHEDULE)
            )
        })
        .cloned()
        .collect();
    taints
        .iter()
        .filter(|t| t.effect == PREFER_NO_SCHEDULE && !tolerated(&relevant, t))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, PreferredSchedulingTerm,
    };

    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("disk", "ssd"), ("cores", "8"), ("bad", "eight")]);
        let cases = [
            (req("disk", "In", &["ssd", "nvme"]), true),
            (req("disk", "In", &["hdd"]), false),
            (req("missing", "In", &["ssd"]), false),
            (req("disk", "NotIn", &["hdd"]), true),
            (req("disk", "NotIn", &["ssd"]), false),
            // NotIn on a missing label matches.
            (req("missing", "NotIn", &["ssd"]), true),
            (req("disk", "Exists", &[]), true),
            (req("missing", "Exists", &[]), false),
            (req("disk", "DoesNotExist", &[]), false),
            (req("missing", "DoesNotExist", &[]), true),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Gt", &["8"]), false),
            (req("cores", "Lt", &["9"]), true),
            (req("cores", "Lt", &["8"]), false),
            (req("cores", "Gt", &["-1"]), true),
            // Parse failures and a missing label: no match.
            (req("bad", "Gt", &["4"]), false),
            (req("bad", "Lt", &["4"]), false),
            (req("cores", "Gt", &["four"]), false),
            (req("cores", "Lt", &["1.5"]), false),
            (req("missing", "Gt", &["1"]), false),
            (req("missing", "Lt", &["1"]), false),
            (req("cores", "Gt", &["1", "2"]), false),
            (req("cores", "Gt", &[]), false),
            (req("disk", "Like", &["ssd"]), false),
        ];
        for (r, want) in cases {
            assert_eq!(requirement_matches(&r, &l), want, "{r:?}");
        }
    }

    #[test]
    fn match_fields() {
        for (r, want) in [
            (req("metadata.name", "In", &["n1"]), true),
            (req("metadata.name", "In", &["n2"]), false),
            (req("metadata.name", "NotIn", &["n2"]), true),
            (req("metadata.name", "NotIn", &["n1"]), false),
            (req("metadata.name", "In", &["n1", "n2"]), false),
            (req("metadata.name", "Exists", &[]), false),
            (req("metadata.uid", "In", &["n1"]), false),
        ] {
            assert_eq!(field_matches(&r, "n1"), want, "{r:?}");
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: Some(fields),
        }
    }

    fn spec_with(
        selector: &[(&str, &str)],
        required: Option<Vec<NodeSelectorTerm>>,
        preferred: Vec<(i32, NodeSelectorTerm)>,
    ) -> PodSpec {
        PodSpec {
            node_selector: (!selector.is_empty()).then(|| labels(selector)),
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: required.map(|t| {
                        NodeSelector {
                            node_selector_terms: t,
                        }
                    }),
                    preferred_during_scheduling_ignored_during_execution: Some(
                        preferred
                            .into_iter()
                            .map(|(weight, preference)| PreferredSchedulingTerm {
                                weight,
                                preference,
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn terms_ored_expressions_anded() {
        let l = labels(&[("disk", "ssd"), ("zone", "a")]);
        let node = NodeView {
            name: "n1",
            labels: &l,
            taints: &[],
        };
        let both = term(
            vec![req("disk", "In", &["ssd"]), req("zone", "In", &["a"])],
            vec![],
        );
        let one_fails = term(
            vec![req("disk", "In", &["ssd"]), req("zone", "In", &["b"])],
            vec![],
        );
        let by_name = term(vec![], vec![req("metadata.name", "In", &["n1"])]);
        let mixed_fails = term(
            vec![req("disk", "Exists", &[])],
            vec![req("metadata.name", "In", &["n2"])],
        );
        let empty = term(vec![], vec![]);
        let cases = [
            (vec![both.clone()], true),
            (vec![one_fails.clone()], false),
            (vec![one_fails.clone(), both.clone()], true),
            (vec![by_name], true),
            (vec![mixed_fails], false),
            // An empty term matches nothing, an empty list matches nothing.
            (vec![empty.clone()], false),
            (vec![empty, both.clone()], true),
            (vec![], false),
        ];
        for (terms, want) in cases {
            let spec = spec_with(&[], Some(terms.clone()), vec![]);
            assert_eq!(required_affinity_matches(&spec, node), want, "{terms:?}");
        }
        // nil required: matches; nodeSelector is ANDed.
        assert!(required_affinity_matches(
            &spec_with(&[], None, vec![]),
            node
        ));
        assert!(required_affinity_matches(
            &spec_with(&[("disk", "ssd")], None, vec![]),
            node
        ));
        assert!(!required_affinity_matches(
            &spec_with(&[("disk", "hdd")], None, vec![]),
            node
        ));
        assert!(!required_affinity_matches(
            &spec_with(&[("disk", "hdd")], Some(vec![both]), vec![]),
            node
        ));
        assert!(required_affinity_matches(&PodSpec::default(), node));
    }

    #[test]
    fn preferred_weights() {
        let l = labels(&[("disk", "ssd")]);
        let node = NodeView {
            name: "n1",
            labels: &l,
            taints: &[],
        };
        let spec = spec_with(
            &[],
            None,
            vec![
                (30, term(vec![req("disk", "In", &["ssd"])], vec![])),
                (50, term(vec![req("disk", "In", &["hdd"])], vec![])),
                (7, term(vec![req("gpu", "DoesNotExist", &[])], vec![])),
                (0, term(vec![req("disk", "Exists", &[])], vec![])),
            ],
        );
        assert_eq!(preferred_affinity_score(&spec, node), 37);
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(str::to_string),
            operator: op.map(str::to_string),
            value: value.map(str::to_string),
            effect: effect.map(str::to_string),
            toleration_seconds: None,
        }
    }

    #[test]
    fn toleration_rules() {
        let t = taint("env_role", Some("yes"), NO_SCHEDULE);
        let cases = [
            // Empty key with Exists tolerates every taint.
            (tol(None, Some("Exists"), None, None), true),
            (tol(Some(""), Some("Exists"), None, Some(NO_SCHEDULE)), true),
            (tol(None, Some("Exists"), None, Some(NO_EXECUTE)), false),
            // Empty effect matches every effect.
            (
                tol(Some("env_role"), Some("Equal"), Some("yes"), None),
                true,
            ),
            (
                tol(Some("env_role"), Some("Equal"), Some("yes"), Some("")),
                true,
            ),
            (
                tol(
                    Some("env_role"),
                    Some("Equal"),
                    Some("yes"),
                    Some(NO_EXECUTE),
                ),
                false,
            ),
            // Operator defaults to Equal.
            (
                tol(Some("env_role"), None, Some("yes"), Some(NO_SCHEDULE)),
                true,
            ),
            (
                tol(Some("env_role"), None, Some("no"), Some(NO_SCHEDULE)),
                false,
            ),
            (tol(Some("env_role"), None, None, Some(NO_SCHEDULE)), false),
            (tol(Some("env_role"), Some("Exists"), None, None), true),
            (tol(Some("other"), Some("Exists"), None, None), false),
            (tol(Some("env_role"), Some("Gt"), Some("1"), None), false),
        ];
        for (tl, want) in cases {
            assert_eq!(tolerates(&tl, &t), want, "{tl:?}");
        }
        // A taint without value is tolerated by Equal with an empty value.
        let bare = taint("gpu", None, NO_SCHEDULE);
        assert!(tolerates(
            &tol(Some("gpu"), Some("Equal"), Some(""), None),
            &bare
        ));
        assert!(tolerates(&tol(Some("gpu"), None, None, None), &bare));
    }

    #[test]
    fn untolerated_and_prefer() {
        let taints = [
            taint("soft", None, PREFER_NO_SCHEDULE),
            taint("hard", Some("1"), NO_SCHEDULE),
            taint("exec", None, NO_EXECUTE),
        ];
        assert_eq!(untolerated_taint(&[], &taints).unwrap().key, "hard");
        let hard = tol(Some("hard"), Some("Exists"), None, None);
        assert_eq!(
            untolerated_taint(std::slice::from_ref(&hard), &taints)
                .unwrap()
                .key,
            "exec"
        );
        let exec = tol(Some("exec"), Some("Exists"), None, Some(NO_EXECUTE));
        assert!(untolerated_taint(&[hard.clone(), exec], &taints).is_none());
        assert_eq!(intolerable_prefer_no_schedule(&[], &taints), 1);
        // A toleration with a NoSchedule effect does not count for PreferNoSchedule.
        let wrong = tol(Some("soft"), Some("Exists"), None, Some(NO_SCHEDULE));
        assert_eq!(intolerable_prefer_no_schedule(&[wrong], &taints), 1);
        let any = tol(Some("soft"), Some("Exists"), None, None);
        assert_eq!(intolerable_prefer_no_schedule(&[any], &taints), 0);
    }
}
