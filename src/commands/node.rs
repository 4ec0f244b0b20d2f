//! Glue for `peapod node ...` and `peapod schedule`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::node::{NodeCommand, Schedule};
use peapod_kube::node::{self, fit::Amounts, labels, object, schedule, taints};
use peapod_kube::{Format, Quantity};
use peapod_pod::node as node_io;
use peapod_runc::outln;
use peapod_runc::output::{self, Listing, Row};

pub fn run(root: &Path, storage: &Path, cmd: &NodeCommand) -> Result<i32> {
    match cmd {
        NodeCommand::Show(a) => {
            let n = node_io::load(storage).context("node show")?;
            match a.output {
                None => show(&n, &node_io::admitted_pods(root))?,
                Some(out) => {
                    let listing = Listing {
                        kind: "node",
                        columns: &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                        wide_columns: &[
                            "INTERNAL-IP",
                            "EXTERNAL-IP",
                            "OS-IMAGE",
                            "KERNEL-VERSION",
                            "CONTAINER-RUNTIME",
                        ],
                        rows: vec![get_row(&n)],
                        compact_json: false,
                        min_width: 0,
                    };
                    // One node: its object, as `kubectl get node NAME -o json` prints it.
                    output::print_listing(out, &listing, || Ok(serde_json::to_value(&n)?))?;
                }
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
                outln!("{note}");
            }
            outln!("node/{} {}", name(&n), outcome.verb);
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
            outln!("node/{} {verb}", name(&n));
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
            outln!("node/{} {already}{verb}", name(&n));
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

/// `kubectl get node -o wide`'s row for this node.
fn get_row(n: &k8s_openapi::api::core::v1::Node) -> Row {
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let status = if unschedulable {
        "Ready,SchedulingDisabled"
    } else {
        "Ready"
    };
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let roles: Vec<&str> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    let none = || "<none>".to_string();
    let age = n
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| {
            let ms = t.0.as_millisecond();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            peapod_kube::supervisor::status::human_duration_ms(now - ms)
        })
        .unwrap_or_else(|| "<unknown>".into());
    let status_obj = n.status.as_ref();
    let info = status_obj.and_then(|s| s.node_info.as_ref());
    let address = |kind: &str| {
        status_obj
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == kind))
            .map(|a| a.address.clone())
            .unwrap_or_else(none)
    };
    let uname = nix::sys::utsname::uname().ok();
    let kernel = info.map(|i| i.kernel_version.clone()).unwrap_or_else(|| {
        uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(none)
    });
    let os_image = info.map(|i| i.os_image.clone()).unwrap_or_else(|| {
        std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(none)
    });
    let runtime = info
        .map(|i| i.container_runtime_version.clone())
        .unwrap_or_else(|| format!("peapod://{}", env!("CARGO_PKG_VERSION")));
    let name = name(n).to_string();
    Row {
        name: name.clone(),
        cells: vec![
            name,
            status.into(),
            if roles.is_empty() {
                none()
            } else {
                roles.join(",")
            },
            age,
            info.map(|i| i.kubelet_version.clone()).unwrap_or_else(none),
        ],
        wide: vec![
            address("InternalIP"),
            address("ExternalIP"),
            os_image,
            kernel,
            runtime,
        ],
    }
}

/// kubectl-describe-like summary.
fn show(
    n: &k8s_openapi::api::core::v1::Node,
    pods: &[k8s_openapi::api::core::v1::Pod],
) -> Result<()> {
    outln!("Name:           {}", name(n));
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let mut first = true;
    for (k, v) in &labels {
        let head = if first { "Labels:" } else { "" };
        outln!("{head:<16}{k}={v}");
        first = false;
    }
    let taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if taints.is_empty() {
        outln!("Taints:         <none>");
    }
    for (i, t) in taints.iter().enumerate() {
        let head = if i == 0 { "Taints:" } else { "" };
        outln!("{head:<16}{}", taints::to_string(t));
    }
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    outln!("Unschedulable:  {unschedulable}");
    // The network `pod run` uses without --cni-conf-dir / --cni-bin-dir.
    let net = peapod_pod::network::NetOptions::new(None, None);
    outln!("Network:        {}", peapod_pod::network::describe(&net));
    let status = n.status.clone().unwrap_or_default();
    for (title, list) in [
        ("Capacity:", status.capacity),
        ("Allocatable:", status.allocatable.clone()),
    ] {
        outln!("{title}");
        for (k, v) in list.unwrap_or_default() {
            outln!("  {:<20}{}", format!("{k}:"), v.0);
        }
    }
    let alloc = object::from_list(status.allocatable.as_ref());
    let used: Amounts = node::used_by(pods);
    outln!("Allocated resources ({} pods admitted):", pods.len());
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
    output::print_table(&rows.map(Vec::from))?;
    Ok(())
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
    output::print_table(&rows.into_iter().map(Vec::from).collect::<Vec<_>>())?;
    Ok(0)
}
