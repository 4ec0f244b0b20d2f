//! Glue for `peapod pod ...`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::pod::{Output, PodCommand};
use peapod_oci::container::{exec, wait};
use peapod_pod::{self as pod, logs, network, ops};
use peapod_runc::outln;
use peapod_runc::output::{self, Listing, Row};

/// kubectl's `<none>` for an empty field of `-o wide`.
fn or_none(v: &serde_json::Value) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".into(),
    }
}

/// The columns `kubectl get pods -o wide` adds: IP, NODE, NOMINATED NODE, READINESS GATES
/// (`<none>`, or ready gates / gates as kubectl counts them).
pub fn wide_cells(pod: &serde_json::Value) -> Vec<String> {
    let st = &pod["status"];
    let gates = pod["spec"]["readinessGates"]
        .as_array()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let conditions = st["conditions"].as_array().cloned().unwrap_or_default();
            let ready = g
                .iter()
                .filter(|gate| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == gate["conditionType"] && c["status"] == "True")
                })
                .count();
            format!("{ready}/{}", g.len())
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        or_none(&st["podIP"]),
        or_none(&pod["spec"]["nodeName"]),
        or_none(&st["nominatedNodeName"]),
        gates,
    ]
}

fn verb(cmd: &PodCommand) -> &'static str {
    match cmd {
        PodCommand::Run(_) => "run",
        PodCommand::Ls(_) => "ls",
        PodCommand::Inspect(_) => "inspect",
        PodCommand::Logs(_) => "logs",
        PodCommand::Exec(_) => "exec",
        PodCommand::Stop(_) => "stop",
        PodCommand::Rm(_) => "rm",
    }
}

pub fn run(root: &Path, storage: &Path, cmd: &PodCommand) -> Result<i32> {
    // Pod state is private to root (manifests hold env secrets): say so instead of a bare
    // "permission denied" on some file.
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "pod {}: needs root (the pod state under `{}` is readable by root only)",
            verb(cmd),
            root.display()
        );
    }
    match cmd {
        PodCommand::Run(a) => {
            let ready_timeout = a
                .wait_ready
                .as_ref()
                .map(|t| {
                    humantime::parse_duration(t)
                        .with_context(|| format!("--wait-ready `{t}`: use a duration like 30s"))
                })
                .transpose()?;
            // Admission counts the pods already here: one `pod run` at a time decides.
            let lock = ops::admission_lock(root).context("pod run")?;
            let (pods, warnings) = ops::load_manifest(&a.file, root, storage)
                .with_context(|| format!("pod run `{}`", a.file.display()))?;
            for w in warnings {
                eprintln!("Warning: {w}");
            }
            let net_opts =
                network::NetOptions::new(Some(&a.cni_conf_dir), a.cni_bin_dir.as_deref());
            let net = network::resolve(&net_opts).context("pod run")?;
            for p in &pods {
                network::check(p, &net).with_context(|| {
                    format!(
                        "pod run: pod `{}`",
                        p.metadata.name.as_deref().unwrap_or_default()
                    )
                })?;
            }
            if let network::Network::LoopbackOnly { warning } = &net {
                eprintln!("Warning: {warning}");
            }
            let mut names = Vec::new();
            for p in pods {
                let name = ops::run_pod(root, storage, p, &net, &net_opts).context("pod run")?;
                outln!("pod/{name} created");
                names.push(name);
            }
            drop(lock);
            if let Some(d) = ready_timeout {
                for name in &names {
                    ops::wait_ready(root, name, d)?;
                }
            }
            Ok(0)
        }
        PodCommand::Ls(a) => {
            let names = pod::list(root);
            let mut rows = Vec::new();
            if matches!(a.output, Output::Table | Output::Wide) {
                for n in &names {
                    match ops::row(root, n) {
                        Ok(r) => {
                            let wide = if a.output == Output::Wide {
                                ops::inspect(root, n)
                                    .map(|v| wide_cells(&v))
                                    .unwrap_or_else(|_| vec!["<none>".into(); 4])
                            } else {
                                Vec::new()
                            };
                            rows.push(Row {
                                name: n.clone(),
                                cells: vec![r.name, r.ready, r.status, r.restarts, r.age],
                                wide,
                            })
                        }
                        Err(e) => eprintln!("{n}: {e}"),
                    }
                }
            } else {
                rows = names
                    .iter()
                    .map(|n| Row {
                        name: n.clone(),
                        ..Row::default()
                    })
                    .collect();
            }
            let listing = Listing {
                kind: "pod",
                columns: &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                wide_columns: &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
                rows,
                compact_json: false,
                min_width: 0,
            };
            output::print_listing(a.output, &listing, || {
                let items = names
                    .iter()
                    .filter_map(|n| ops::inspect(root, n).ok())
                    .collect();
                Ok(output::kube_list(items))
            })?;
            Ok(0)
        }
        PodCommand::Inspect(a) => {
            let v = ops::inspect(root, &a.name)?;
            match a.output {
                Output::Name => outln!("pod/{}", a.name),
                Output::Json | Output::Yaml => output::print_document(a.output, &v)?,
                Output::Table | Output::Wide => {
                    bail!("pod inspect prints one document: use -o yaml, json or name")
                }
            }
            Ok(0)
        }
        PodCommand::Logs(a) => {
            let paths = pod::PodPaths::new(root, &a.name)?;
            let podv = pod::load_pod(&paths)?;
            let c = ops::container_of(&podv, a.container.as_deref())?;
            let opts = logs::ReadOpts {
                previous: a.previous,
                tail: a.tail,
                timestamps: a.timestamps,
                follow: a.follow,
                since: None,
            };
            // Follow while this container runs, as kubectl does (a newer instance also ends it).
            let alive = || {
                pod::Record::load(&paths).is_ok_and(|r| {
                    let st = r.machine.status();
                    r.supervisor_alive()
                        && st
                            .container_statuses
                            .iter()
                            .chain(&st.init_container_statuses)
                            .any(|s| s.name == c && s.state.is_running())
                })
            };
            logs::read_logs(&paths.dir, &c, &opts, &mut std::io::stdout().lock(), &alive)
                .with_context(|| format!("logs of `{}/{c}`", a.name))?;
            Ok(0)
        }
        PodCommand::Exec(a) => {
            let (oci_root, id, mut process) =
                ops::container_target(root, &a.name, a.container.as_deref())?;
            process.set_args(Some(a.command.clone()));
            process.set_terminal(Some(a.tty));
            if !a.interactive {
                let null = std::fs::File::open("/dev/null")?;
                peapod_sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0)?;
            }
            let pair = if a.tty {
                Some(nix::sys::socket::socketpair(
                    nix::sys::socket::AddressFamily::Unix,
                    nix::sys::socket::SockType::Stream,
                    None,
                    nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                )?)
            } else {
                None
            };
            nix::sys::prctl::set_child_subreaper(true)?;
            let mask = wait::block_signals()?;
            let started = exec::exec(&oci_root, &id, &process, &exec::ExecOpts::default(), pair)
                .with_context(|| format!("exec in `{}/{id}`", a.name))?;
            Ok(wait::wait_forwarding(started.pid, &mask, started.tty)?)
        }
        PodCommand::Stop(a) => {
            // Every stop is asked for first, so the grace periods run at the same time.
            let names = names_or_all(root, &a.names, a.all);
            let pending: Vec<_> = names
                .iter()
                .map(|name| ops::request_stop(root, name, a.grace_period))
                .collect();
            let mut code = 0;
            for (name, p) in names.iter().zip(pending) {
                let r = p.and_then(|p| p.map_or(Ok(()), ops::PendingStop::wait));
                report(name, "stopped", r.map_err(Into::into), &mut code);
            }
            Ok(code)
        }
        PodCommand::Rm(a) => {
            let names = names_or_all(root, &a.names, a.all);
            Ok(each_concurrently(&names, "removed", |name| {
                if let ops::Removed::Orphan { cgroup, processes } =
                    ops::remove(root, name, a.force)?
                {
                    eprintln!(
                        "Warning: pod `{name}` had no state under `{}`: killed {processes} process(es) left in its cgroup `{cgroup}` and removed it",
                        root.display()
                    );
                }
                Ok(())
            }))
        }
    }
}

/// The pods named on the command line, or with `--all` every pod under `root`.
fn names_or_all(root: &Path, names: &[String], all: bool) -> Vec<String> {
    if all { pod::list(root) } else { names.to_vec() }
}

/// Report the outcome of one named pod, as kubectl does with several names: a success
/// prints `pod/NAME <done>`, a failure an error line; the exit code is 1 if any failed.
fn report(name: &str, done: &str, r: Result<()>, code: &mut i32) {
    match r {
        Ok(()) => {
            use std::io::Write;
            if let Err(e) = writeln!(std::io::stdout().lock(), "pod/{name} {done}") {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    peapod_sys::die_of_sigpipe();
                }
                log::error!("print: {e}");
                *code = 1;
            }
        }
        Err(e) => {
            log::error!("{e:#}");
            *code = 1;
        }
    }
}

/// Pods removed at the same time by one `pod rm`.
const CONCURRENT: usize = 16;

/// Apply `f` to the named pods, [`CONCURRENT`] at a time (worker threads taking the next pod
/// as soon as they finish one, so a slow pod holds up no other; `f` must not fork), reporting
/// in the order given.
fn each_concurrently(names: &[String], done: &str, f: impl Fn(&str) -> Result<()> + Sync) -> i32 {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<()>>>> = names.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT.min(names.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let r = f(name);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut code = 0;
    for (name, slot) in names.iter().zip(results) {
        let r = slot
            .into_inner()
            .ok()
            .flatten()
            .unwrap_or_else(|| Err(anyhow::anyhow!("pod `{name}`: a pod rm worker panicked")));
        report(name, done, r, &mut code);
    }
    code
}
