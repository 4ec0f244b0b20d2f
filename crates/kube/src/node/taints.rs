//! `kubectl taint node` arguments: `KEY[=VALUE]:EFFECT` adds, `KEY[=VALUE][:EFFECT]-` removes
//! (the value of a removal is ignored, as kubectl ignores it: taints are matched by key, and
//! by effect when one is given). Messages are kubectl's (`k8s.io/kubectl/pkg/cmd/taint`).

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::NodeError;
use crate::manifest::{label_value, qualified_name};

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// Parsed `peapod node taint` arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaintOps {
    pub add: Vec<Taint>,
    /// Key and (possibly empty) effect of each removal.
    pub remove: Vec<Taint>,
}

/// kubectl's `Taint.ToString`: `key=value:effect`, `key:effect`, `key=value:` or `key`.
pub fn to_string(t: &Taint) -> String {
    let value = t.value.as_deref().unwrap_or("");
    match (t.effect.is_empty(), value.is_empty()) {
        (true, true) => t.key.clone(),
        (true, false) => format!("{}={value}:", t.key),
        (false, true) => format!("{}:{}", t.key, t.effect),
        (false, false) => format!("{}={value}:{}", t.key, t.effect),
    }
}

fn check_effect(effect: &str) -> Result<(), NodeError> {
    match effect {
        NO_SCHEDULE | PREFER_NO_SCHEDULE | NO_EXECUTE => Ok(()),
        _ => Err(NodeError::Syntax(format!(
            "invalid taint effect: {effect}, unsupported taint effect: use NoSchedule, \
             PreferNoSchedule or NoExecute"
        ))),
    }
}

/// `parseTaint`: `key`, `key=value` (removals only), `key:effect`, `key=value:effect`.
fn parse_one(spec: &str) -> Result<Taint, NodeError> {
    let invalid = |detail: Option<Vec<String>>| {
        NodeError::Syntax(match detail {
            None => format!("invalid taint spec: {spec}"),
            Some(errs) => format!("invalid taint spec: {spec}, {}", errs.join("; ")),
        })
    };
    let (kv, effect) = match spec.split(':').collect::<Vec<_>>().as_slice() {
        [kv] => (*kv, ""),
        [kv, effect] => {
            check_effect(effect)?;
            (*kv, *effect)
        }
        _ => return Err(invalid(None)),
    };
    let (key, value) = match kv.split('=').collect::<Vec<_>>().as_slice() {
        [key] => (*key, None),
        [key, value] => {
            let errs = label_value(value);
            if !errs.is_empty() {
                return Err(invalid(Some(errs)));
            }
            (*key, Some(value.to_string()).filter(|v| !v.is_empty()))
        }
        _ => return Err(invalid(None)),
    };
    let errs = qualified_name(key);
    if !errs.is_empty() {
        return Err(invalid(Some(errs)));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Parses the arguments of `peapod node taint` (kubectl's `ParseTaints`).
pub fn parse(args: &[String]) -> Result<TaintOps, NodeError> {
    let mut ops = TaintOps::default();
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    for arg in args {
        if let Some(spec) = arg.strip_suffix('-') {
            let t = parse_one(spec)?;
            ops.remove.push(Taint { value: None, ..t });
        } else {
            let t = parse_one(arg)?;
            if t.effect.is_empty() {
                return Err(NodeError::Syntax(format!(
                    "unknown taint spec: {arg}: adding a taint needs an effect, e.g. \
                     {}:NoSchedule",
                    arg
                )));
            }
            if ops.add.iter().any(|o| same(o, &t)) {
                return Err(NodeError::Syntax(format!(
                    "duplicated taints with the same key and effect: {}",
                    to_string(&t)
                )));
            }
            ops.add.push(t);
        }
    }
    let both: Vec<String> = ops
        .add
        .iter()
        .filter(|a| ops.remove.iter().any(|r| r.key == a.key))
        .map(to_string)
        .collect();
    if !both.is_empty() {
        return Err(NodeError::Syntax(format!(
            "can not both modify and remove the following taint(s) in the same command: {}",
            both.join(", ")
        )));
    }
    if ops.add.is_empty() && ops.remove.is_empty() {
        return Err(NodeError::Syntax(
            "at least one taint update is required: KEY[=VALUE]:EFFECT or KEY[:EFFECT]-".into(),
        ));
    }
    Ok(ops)
}

/// Applies parsed operations to `taints` for node `node` as kubectl does: a taint with the
/// same key and effect needs `overwrite`; a removal that matches nothing is an error; new
/// NoExecute taints get `timeAdded = now` (the taint manager's eviction clock starts there).
/// Returns kubectl's verb: `tainted`, `untainted` or `modified`. Nothing changes on error.
pub fn apply(
    taints: &mut Vec<Taint>,
    ops: &TaintOps,
    overwrite: bool,
    node: &str,
    now: Timestamp,
) -> Result<&'static str, NodeError> {
    if !overwrite {
        let exists: Vec<&str> = ops
            .add
            .iter()
            .filter(|a| {
                taints
                    .iter()
                    .any(|t| t.key == a.key && t.effect == a.effect)
            })
            .map(|a| a.key.as_str())
            .collect();
        if !exists.is_empty() {
            return Err(NodeError::Conflict(format!(
                "node {node} already has {} taint(s) with same effect(s) and --overwrite is \
                 false",
                exists.join(",")
            )));
        }
    }
    let mut out = taints.clone();
    for r in &ops.remove {
        let before = out.len();
        out.retain(|t| !(t.key == r.key && (r.effect.is_empty() || t.effect == r.effect)));
        if out.len() == before {
            return Err(NodeError::NotFound(format!(
                "taint {:?} not found",
                to_string(r)
            )));
        }
    }
    for a in &ops.add {
        let mut new = a.clone();
        if new.effect == NO_EXECUTE {
            new.time_added = Some(Time(now));
        }
        match out
            .iter_mut()
            .find(|t| t.key == a.key && t.effect == a.effect)
        {
            Some(t) => *t = new,
            None => out.push(new),
        }
    }
    *taints = out;
    Ok(match (ops.add.is_empty(), ops.remove.is_empty()) {
        (false, true) => "tainted",
        (true, false) => "untainted",
        _ => "modified",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn parses_add_and_remove() {
        let ops = parse(&args(&[
            "env_role=yes:NoSchedule",
            "dedicated:PreferNoSchedule",
            "gone-",
            "old=x:NoExecute-",
        ]))
        .unwrap();
        assert_eq!(
            ops.add,
            vec![
                taint("env_role", Some("yes"), NO_SCHEDULE),
                taint("dedicated", None, PREFER_NO_SCHEDULE)
            ]
        );
        assert_eq!(
            ops.remove,
            vec![taint("gone", None, ""), taint("old", None, NO_EXECUTE)]
        );
        assert_eq!(to_string(&ops.add[0]), "env_role=yes:NoSchedule");
        assert_eq!(to_string(&ops.add[1]), "dedicated:PreferNoSchedule");
    }

    #[test]
    fn refuses_bad_syntax() {
        for (arg, want) in [
            (
                "k=v:Sometimes",
                "invalid taint effect: Sometimes, unsupported taint effect",
            ),
            ("k=v", "unknown taint spec: k=v"),
            ("k", "unknown taint spec: k"),
            ("a:b:c", "invalid taint spec: a:b:c"),
            ("a=b=c:NoSchedule", "invalid taint spec: a=b=c:NoSchedule"),
            (
                "-a:NoSchedule",
                "invalid taint spec: -a:NoSchedule, name part",
            ),
            (
                "a=-b:NoSchedule",
                "invalid taint spec: a=-b:NoSchedule, a valid label",
            ),
            ("k:Bad-", "invalid taint effect: Bad"),
        ] {
            let e = parse(&args(&[arg])).unwrap_err().to_string();
            assert!(e.starts_with(want), "{arg}: {e}");
        }
        assert_eq!(
            parse(&args(&["a=1:NoSchedule", "a=2:NoSchedule"]))
                .unwrap_err()
                .to_string(),
            "duplicated taints with the same key and effect: a=2:NoSchedule"
        );
        assert_eq!(
            parse(&args(&["a=1:NoSchedule", "a-"]))
                .unwrap_err()
                .to_string(),
            "can not both modify and remove the following taint(s) in the same command: \
             a=1:NoSchedule"
        );
    }

    #[test]
    fn apply_add_overwrite_remove() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut taints = vec![];
        let add = parse(&args(&["env_role=yes:NoSchedule", "gpu:NoExecute"])).unwrap();
        assert_eq!(
            apply(&mut taints, &add, false, "n1", now).unwrap(),
            "tainted"
        );
        assert_eq!(taints.len(), 2);
        assert!(taints[0].time_added.is_none());
        assert_eq!(taints[1].time_added, Some(Time(now)));
        let again = parse(&args(&["env_role=no:NoSchedule"])).unwrap();
        assert_eq!(
            apply(&mut taints, &again, false, "n1", now)
                .unwrap_err()
                .to_string(),
            "node n1 already has env_role taint(s) with same effect(s) and --overwrite is false"
        );
        assert_eq!(
            apply(&mut taints, &again, true, "n1", now).unwrap(),
            "tainted"
        );
        assert_eq!(taints[0].value.as_deref(), Some("no"));
        let two = parse(&args(&["gpu:NoExecute", "env_role=x:NoSchedule"])).unwrap();
        assert_eq!(
            apply(&mut taints, &two, false, "n1", now)
                .unwrap_err()
                .to_string(),
            "node n1 already has gpu,env_role taint(s) with same effect(s) and --overwrite is false"
        );
        // Same key, other effect: a second taint.
        let other = parse(&args(&["env_role=no:NoExecute"])).unwrap();
        apply(&mut taints, &other, false, "n1", now).unwrap();
        assert_eq!(taints.len(), 3);
        // Removal by key takes every effect.
        let rm = parse(&args(&["env_role-"])).unwrap();
        assert_eq!(
            apply(&mut taints, &rm, false, "n1", now).unwrap(),
            "untainted"
        );
        assert_eq!(taints.len(), 1);
        let rm = parse(&args(&["gpu:NoSchedule-"])).unwrap();
        assert_eq!(
            apply(&mut taints, &rm, false, "n1", now)
                .unwrap_err()
                .to_string(),
            "taint \"gpu:NoSchedule\" not found"
        );
        let both = parse(&args(&["gpu:NoExecute-", "x=1:NoSchedule"])).unwrap();
        assert_eq!(
            apply(&mut taints, &both, false, "n1", now).unwrap(),
            "modified"
        );
        assert_eq!(taints, vec![taint("x", Some("1"), NO_SCHEDULE)]);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(arg in "\\PC{0,80}") {
            let _ = parse(&[arg]);
        }

        #[test]
        fn added_taints_print_back(
            key in "[A-Za-z0-9]([-A-Za-z0-9_.]{0,30}[A-Za-z0-9])?",
            value in "([A-Za-z0-9]([-A-Za-z0-9_.]{0,30}[A-Za-z0-9])?)?",
            effect in proptest::sample::select(vec![NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE]),
        ) {
            let spec = if value.is_empty() { format!("{key}:{effect}") } else { format!("{key}={value}:{effect}") };
            let ops = parse(std::slice::from_ref(&spec)).unwrap();
            proptest::prop_assert_eq!(to_string(&ops.add[0]), spec);
        }
    }
}
