//! Glue for `peapod node ...` and `peapod schedule`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::node::{NodeCommand, NodeOutput, Schedule};
use peapod_kube::node::{self, fit::Amounts, labels, object, schedule, taints};
use peapod_kube::{Format, Quantity};
use peapod_pod::node as node_io;

pub fn run(root: &Path, storage: &Path, cmd: &NodeCommand) -> Result<i32> {
    match cmd {
        NodeCommand::Show(a) => {
            let n = node_io::load(storage).context("node show")?;
            match a.output {
                Some(NodeOutput::Json) => println!("{}", serde_json::to_string_pretty(&n)?),
                Some(NodeOutput::Yaml) => print!("{}", yaml_serde::to_string(&n)?),
                None => show(&n, &node_io::admitted_pods(root)),
            }
            Ok(0)
        }
        NodeCommand::Label(a) => {
            let ops = labels::parse(&a.labels)?;
            let (n, outcome) = node_io::edit(storage, |n| {
                let labels = n.metadata.labels.get_or_insert_with(Default::default);
                labels::apply(labels, &ops, a.overwrite)
            })?;
            for note in outcome.notes {
                println!("{note}");
            }
            println!("node/{} {}", name(&n), outcome.verb);
            Ok(0)
        }
        NodeCommand::Taint(a) => {
            let ops = taints::parse(&a.taints)?;
            let (n, verb) = node_io::edit(storage, |n| {
                let node_name = n.metadata.name.clone().unwrap_or_default();
                let spec = n.spec.get_or_insert_with(Default::default);
                let mut list = spec.taints.take().unwrap_or_default();
                let verb = taints::apply(
                    &mut list,
                    &ops,
                    a.overwrite,
                    &node_name,
                    node::timestamp(peapod_pod::now()),
                );
                spec.taints = Some(list).filter(|l| !l.is_empty());
                verb
            })?;
            println!("node/{} {verb}", name(&n));
            Ok(0)
        }
        NodeCommand::Cordon | NodeCommand::Uncordon => {
            let cordon = matches!(cmd, NodeCommand::Cordon);
            let (n, changed) = node_io::edit(storage, |n| {
                let spec = n.spec.get_or_insert_with(Default::default);
                let was = spec.unschedulable == Some(true);
                spec.unschedulable = cordon.then_some(true);
                Ok(was != cordon)
            })?;
            let verb = if cordon { "cordoned" } else { "uncordoned" };
            let already = if changed { "" } else { "already " };
            println!("node/{} {already}{verb}", name(&n));
            Ok(0)
        }
    }
}

fn name(n: &k8s_openapi::api::core::v1::Node) -> &str {
    n.metadata.name.as_deref().unwrap_or_default()
}

fn cpu(m: i64) -> String {
    Quantity::new_milli(m, Format::DecimalSI).canonical()
}

fn bytes(b: i64) -> String {
    Quantity::new(b, Format::BinarySI).canonical()
}

fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        "-".into()
    } else {
        format!("{}%", i128::from(part) * 100 / i128::from(whole))
    }
}

/// kubectl-describe-like summary.
fn show(n: &k8s_openapi::api::core::v1::Node, pods: &[k8s_openapi::api::core::v1::Pod]) {
    println!("Name:           {}", name(n));
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let mut first = true;
    for (k, v) in &labels {
        let head = if first { "Labels:" } else { "" };
        println!("{head:<16}{k}={v}");
        first = false;
    }
    let taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if taints.is_empty() {
        println!("Taints:         <none>");
    }
    for (i, t) in taints.iter().enumerate() {
        let head = if i == 0 { "Taints:" } else { "" };
        println!("{head:<16}{}", taints::to_string(t));
    }
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    println!("Unschedulable:  {unschedulable}");
    // The network `pod run` uses without --cni-conf-dir / --cni-bin-dir.
    let net = peapod_pod::network::NetOptions::new(None, None);
    println!("Network:        {}", peapod_pod::network::describe(&net));
    let status = n.status.clone().unwrap_or_default();
    for (title, list) in [
        ("Capacity:", status.capacity),
        ("Allocatable:", status.allocatable.clone()),
    ] {
        println!("{title}");
        for (k, v) in list.unwrap_or_default() {
            println!("  {:<20}{}", format!("{k}:"), v.0);
        }
    }
    let alloc = object::from_list(status.allocatable.as_ref());
    let used: Amounts = node::used_by(pods);
    println!("Allocated resources ({} pods admitted):", pods.len());
    let rows = [
        ["  Resource".to_string(), "Requests".to_string()],
        [
            "  cpu".into(),
            format!(
                "{} ({})",
                cpu(used.milli_cpu),
                percent(used.milli_cpu, alloc.milli_cpu)
            ),
        ],
        [
            "  memory".into(),
            format!(
                "{} ({})",
                bytes(used.memory),
                percent(used.memory, alloc.memory)
            ),
        ],
        [
            "  ephemeral-storage".into(),
            format!(
                "{} ({})",
                bytes(used.ephemeral_storage),
                percent(used.ephemeral_storage, alloc.ephemeral_storage)
            ),
        ],
        [
            "  pods".into(),
            format!("{} ({})", used.pods, percent(used.pods, alloc.pods)),
        ],
    ];
    let _ = super::print_table(&rows);
}

pub fn schedule(a: &Schedule) -> Result<i32> {
    let mut inputs = schedule::Inputs::default();
    let mut files = vec![&a.nodes];
    files.extend(&a.files);
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("read `{}`", f.display()))?;
        schedule::add_documents(&mut inputs, &f.display().to_string(), &text)?;
    }
    if inputs.nodes.is_empty() {
        anyhow::bail!(
            "no v1 Node in `{}`: the planner needs the nodes to place pods on",
            a.nodes.display()
        );
    }
    let mut rows = vec![["POD", "NODE", "REASON"].map(String::from)];
    for p in schedule::plan(&inputs.nodes, &inputs.pods) {
        rows.push([p.pod, p.node.unwrap_or_else(|| "<none>".into()), p.reason]);
    }
    super::print_table(&rows)?;
    Ok(0)
}
