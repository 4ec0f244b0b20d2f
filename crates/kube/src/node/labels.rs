//! `kubectl label node` arguments: `KEY=VALUE` sets, `KEY-` removes. Keys are qualified names
//! (`[DNS-subdomain prefix/]name`, name ≤ 63), values ≤ 63 characters of
//! `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` or empty: the apimachinery validators the
//! manifest layer already uses.

use std::collections::BTreeMap;

use super::NodeError;
use crate::manifest::{label_value, qualified_name};

/// One parsed label argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    Set { key: String, value: String },
    Remove { key: String },
}

/// Parses the arguments of `peapod node label` (kubectl's `parseLabels`): every argument
/// is checked before anything changes, and a key may appear only once.
pub fn parse(args: &[String]) -> Result<Vec<LabelOp>, NodeError> {
    let mut ops = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for arg in args {
        let op = if let Some(key) = arg.strip_suffix('-')
            && !arg.contains('=')
        {
            check_key(arg, key)?;
            LabelOp::Remove {
                key: key.to_string(),
            }
        } else {
            let Some((key, value)) = arg.split_once('=') else {
                return Err(NodeError::Syntax(format!(
                    "invalid label spec: {arg}: use KEY=VALUE to set a label or KEY- to \
                     remove it"
                )));
            };
            if value.contains('=') {
                return Err(NodeError::Syntax(format!("invalid label spec: {arg}")));
            }
            check_key(arg, key)?;
            let errs = label_value(value);
            if !errs.is_empty() {
                return Err(NodeError::Syntax(format!(
                    "invalid label value: {arg:?}: {}",
                    errs.join("; ")
                )));
            }
            LabelOp::Set {
                key: key.to_string(),
                value: value.to_string(),
            }
        };
        let key = match &op {
            LabelOp::Set { key, .. } | LabelOp::Remove { key } => key.clone(),
        };
        if !seen.insert(key.clone()) {
            return Err(NodeError::Syntax(format!(
                "can not both modify and remove a label in the same command: {key}"
            )));
        }
        ops.push(op);
    }
    if ops.is_empty() {
        return Err(NodeError::Syntax(
            "at least one label update is required: KEY=VALUE or KEY-".into(),
        ));
    }
    Ok(ops)
}

fn check_key(arg: &str, key: &str) -> Result<(), NodeError> {
    let errs = qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(NodeError::Syntax(format!(
            "invalid label spec: {arg}: {}",
            errs.join("; ")
        )))
    }
}

/// What applying label operations changed, for kubectl's output line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelOutcome {
    /// `label "KEY" not found.` lines kubectl prints for removals of absent labels.
    pub notes: Vec<String>,
    /// `labeled`, `unlabeled` or `not labeled` (kubectl's `updateDataChangeMsg`).
    pub verb: &'static str,
}

/// Applies `ops` to `labels` as kubectl does: setting a key that has a value needs
/// `overwrite` (`'KEY' already has a value (OLD), and --overwrite is false`), removing an
/// absent key only prints a note. Nothing changes on error.
pub fn apply(
    labels: &mut BTreeMap<String, String>,
    ops: &[LabelOp],
    overwrite: bool,
) -> Result<LabelOutcome, NodeError> {
    if !overwrite {
        for op in ops {
            if let LabelOp::Set { key, .. } = op
                && let Some(old) = labels.get(key)
            {
                return Err(NodeError::Conflict(format!(
                    "'{key}' already has a value ({old}), and --overwrite is false"
                )));
            }
        }
    }
    let before = labels.clone();
    let mut notes = Vec::new();
    for op in ops {
        match op {
            LabelOp::Set { key, value } => {
                labels.insert(key.clone(), value.clone());
            }
            LabelOp::Remove { key } => {
                if labels.remove(key).is_none() {
                    notes.push(format!("label {key:?} not found."));
                }
            }
        }
    }
    let verb = if *labels == before {
        "not labeled"
    } else if !overwrite && labels.len() < before.len() {
        "unlabeled"
    } else {
        "labeled"
    };
    Ok(LabelOutcome { notes, verb })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_set_and_remove() {
        assert_eq!(
            parse(&args(&["env_role=yes", "example.com/tier-", "empty="])).unwrap(),
            vec![
                LabelOp::Set {
                    key: "env_role".into(),
                    value: "yes".into()
                },
                LabelOp::Remove {
                    key: "example.com/tier".into()
                },
                LabelOp::Set {
                    key: "empty".into(),
                    value: String::new()
                },
            ]
        );
    }

    #[test]
    fn refuses_bad_syntax() {
        for (arg, want) in [
            ("novalue", "invalid label spec: novalue: use KEY=VALUE"),
            ("a=b=c", "invalid label spec: a=b=c"),
            (
                "-bad=x",
                "invalid label spec: -bad=x: name part must consist of",
            ),
            (
                "Bad_Prefix/x=1",
                "invalid label spec: Bad_Prefix/x=1: prefix part",
            ),
            (
                "a/b/c=1",
                "invalid label spec: a/b/c=1: a qualified name must consist",
            ),
            ("k=-v", "invalid label value: \"k=-v\": a valid label must"),
            ("-", "invalid label spec: -: name part must be non-empty"),
        ] {
            let e = parse(&args(&[arg])).unwrap_err().to_string();
            assert!(e.starts_with(want), "{arg}: {e}");
        }
        let long = format!("k={}", "v".repeat(64));
        assert!(
            parse(&args(&[&long]))
                .unwrap_err()
                .to_string()
                .contains("must be no more than 63 characters")
        );
        let long_key = format!("{}=v", "k".repeat(64));
        assert!(parse(&args(&[&long_key])).is_err());
        let prefix = format!("{}/k=v", "a".repeat(254));
        assert!(parse(&args(&[&prefix])).is_err());
        assert!(parse(&args(&[&format!("{}/k=v", "a".repeat(253))])).is_ok());
        assert!(parse(&args(&["a=1", "a-"])).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn apply_needs_overwrite() {
        let mut labels = BTreeMap::from([("disk".to_string(), "hdd".to_string())]);
        let ops = parse(&args(&["disk=ssd"])).unwrap();
        assert_eq!(
            apply(&mut labels, &ops, false).unwrap_err().to_string(),
            "'disk' already has a value (hdd), and --overwrite is false"
        );
        assert_eq!(labels["disk"], "hdd");
        assert_eq!(apply(&mut labels, &ops, true).unwrap().verb, "labeled");
        assert_eq!(labels["disk"], "ssd");
        // Same value again with --overwrite: nothing changed.
        assert_eq!(apply(&mut labels, &ops, true).unwrap().verb, "not labeled");
    }

    #[test]
    fn apply_removes() {
        let mut labels = BTreeMap::from([("disk".to_string(), "hdd".to_string())]);
        let out = apply(&mut labels, &parse(&args(&["disk-"])).unwrap(), false).unwrap();
        assert_eq!(out.verb, "unlabeled");
        assert!(labels.is_empty());
        let out = apply(&mut labels, &parse(&args(&["disk-"])).unwrap(), false).unwrap();
        assert_eq!(out.notes, vec!["label \"disk\" not found."]);
        assert_eq!(out.verb, "not labeled");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(arg in "\\PC{0,80}") {
            let _ = parse(&[arg]);
        }

        #[test]
        fn valid_labels_round_trip(
            prefix in proptest::option::of("[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,3}"),
            name in "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?",
            value in "([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?",
        ) {
            let key = match prefix { Some(p) => format!("{p}/{name}"), None => name };
            let ops = parse(&[format!("{key}={value}")]).unwrap();
            proptest::prop_assert_eq!(&ops, &vec![LabelOp::Set { key: key.clone(), value }]);
            let mut labels = BTreeMap::new();
            apply(&mut labels, &ops, false).unwrap();
            let out = apply(&mut labels, &parse(&[format!("{key}-")]).unwrap(), false).unwrap();
            proptest::prop_assert_eq!(out.verb, "unlabeled");
        }
    }
}
