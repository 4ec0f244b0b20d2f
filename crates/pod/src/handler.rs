//! Probe and lifecycle-hook handlers (kubelet `pkg/probe/{exec,http,tcp}` and
//! `pkg/kubelet/lifecycle/handlers.go`): what to run, and running it.
//!
//! One mechanism serves liveness/readiness/startup probes and postStart/preStop hooks. A
//! handler runs in a forked child of the supervisor, so the single-threaded event loop never
//! blocks: the child enters the pod's network namespace (httpGet, tcpSocket) or execs into
//! the container with the OCI core (exec), enforces the timeout itself, writes one JSON
//! [`Verdict`] to a pipe and exits. The supervisor reaps it like a container process.
//!
//! HTTP goes through peapod's one client ([`peapod_image::http`], unverified TLS for
//! `scheme: HTTPS`): kubelet's request (`User-Agent: kube-probe/<version>`, `Accept: */*`,
//! `Connection: close`, headers from the probe, `Host` override), one deadline for the whole
//! exchange, success for 200–399, same-host redirects followed up to 10 times, another host's
//! redirect a `Warning`, the body cut at [`MAX_OUTPUT`]; failures worded as Go's client words
//! them, as probe messages show them.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::PodError;
use peapod_image::http::{self, HttpError, Request, Url};
use peapod_image::tls;
use peapod_kube::supervisor::ProbeOutcome;

/// The Kubernetes minor version kubelet would report (`kube-probe/<major>.<minor>`); the
/// API types are those of this version.
pub const KUBE_VERSION: &str = "1.37";
/// kubelet's caps on probe output (`maxReadLength`) and HTTP bodies (`maxRespBodyLength`).
pub const MAX_OUTPUT: usize = 10 * 1024;
/// `maxRedirects` of Go's HTTP client, as kubelet's redirect checker keeps it.
const MAX_REDIRECTS: usize = 10;
/// Where an empty `host` points for a pod without a network of its own: the loopback address
/// of its network namespace. A pod on a CNI network gets its pod IP instead
/// ([`Handler::with_pod_ip`]), as kubelet's probes do.
pub const POD_IP: &str = "127.0.0.1";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// A command inside the container (`$(VAR)` expanded with the static env).
    Exec { command: Vec<String> },
    /// An HTTP GET from inside the pod's network namespace.
    Http(HttpGet),
    /// A TCP connect from inside the pod's network namespace.
    Tcp { host: String, port: u16 },
    /// `lifecycle.*.sleep`: wait (hooks only).
    Sleep(Duration),
    /// Not a probe: pull `image` into the image store under `storage`, off the supervisor's
    /// event loop (a registry can be slow).
    Pull { image: String, storage: PathBuf },
}

/// A resolved `httpGet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// `scheme: HTTPS`: TLS without certificate verification, as kubelet's prober
    /// (`InsecureSkipVerify`).
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// In order, as written; `Host`, `User-Agent` and `Accept` override the defaults.
    pub headers: Vec<(String, String)>,
}

/// The answer of one handler run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: ProbeOutcome,
    pub output: String,
}

impl Verdict {
    fn new(outcome: ProbeOutcome, output: impl Into<String>) -> Verdict {
        Verdict {
            outcome,
            output: output.into(),
        }
    }
}

fn unsupported(field: &str, what: &str) -> PodError {
    PodError::Unsupported(format!("{field}: {what}"))
}

/// A port by number or by the name of one of the container's `ports`.
fn resolve_port(port: &IntOrString, c: &Container, field: &str) -> Result<u16, PodError> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    PodError::Invalid(format!(
                        "{field}.port: container `{}` has no port named `{name}` (hint: name it under ports[] or give the number)",
                        c.name
                    ))
                })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| PodError::Invalid(format!("{field}.port: {n} is not in 1-65535")))
}

fn http_get(h: &HTTPGetAction, c: &Container, field: &str) -> Result<HttpGet, PodError> {
    let scheme = h.scheme.as_deref().unwrap_or("HTTP");
    let https = match scheme.to_ascii_uppercase().as_str() {
        "HTTP" => false,
        "HTTPS" => true,
        _ => {
            return Err(PodError::Invalid(format!(
                "{field}.scheme: Unsupported value: {scheme:?}: supported values: \"HTTP\", \"HTTPS\""
            )));
        }
    };
    let mut path = h.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(HttpGet {
        https,
        host: h.host.clone().filter(|h| !h.is_empty()).unwrap_or_default(),
        port: resolve_port(&h.port, c, field)?,
        path,
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

/// `$(VAR)` in an exec handler's command, against the container's static `env` values only
/// (kubelet `ExpandContainerCommandOnlyStatic`).
fn static_expand(command: &[String], c: &Container) -> Vec<String> {
    let env: Vec<(String, String)> = c
        .env
        .iter()
        .flatten()
        .filter(|e| e.value_from.is_none())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    command
        .iter()
        .map(|s| {
            peapod_kube::manifest::expand(s, |n| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            })
        })
        .collect()
}

fn exec_command(
    cmd: &Option<Vec<String>>,
    c: &Container,
    field: &str,
) -> Result<Handler, PodError> {
    let command = cmd.clone().unwrap_or_default();
    if command.is_empty() {
        return Err(PodError::Invalid(format!(
            "{field}.exec.command: must not be empty"
        )));
    }
    Ok(Handler::Exec {
        command: static_expand(&command, c),
    })
}

impl Handler {
    /// An `httpGet` or `tcpSocket` handler without `host` goes to the pod IP (kubelet's rule).
    pub fn with_pod_ip(mut self, pod_ip: &str) -> Handler {
        match &mut self {
            Handler::Http(HttpGet { host, .. }) | Handler::Tcp { host, .. } if host.is_empty() => {
                *host = pod_ip.to_string();
            }
            _ => {}
        }
        self
    }

    /// The handler of a probe of container `c`; `field` names it in errors
    /// (`spec.containers[0].livenessProbe`).
    pub fn from_probe(p: &Probe, c: &Container, field: &str) -> Result<Handler, PodError> {
        if let Some(e) = &p.exec {
            exec_command(&e.command, c, field)
        } else if let Some(h) = &p.http_get {
            Ok(Handler::Http(http_get(h, c, &format!("{field}.httpGet"))?))
        } else if let Some(t) = &p.tcp_socket {
            Ok(Handler::Tcp {
                host: t.host.clone().filter(|h| !h.is_empty()).unwrap_or_default(),
                port: resolve_port(&t.port, c, &format!("{field}.tcpSocket"))?,
            })
        } else if p.grpc.is_some() {
            Err(unsupported(
                &format!("{field}.grpc"),
                "gRPC probes are not supported (hint: use exec, httpGet or tcpSocket)",
            ))
        } else {
            Err(PodError::Invalid(format!(
                "{field}: must have one of exec, httpGet, tcpSocket"
            )))
        }
    }

    /// The handler of a `postStart` / `preStop` hook.
    pub fn from_lifecycle(
        h: &LifecycleHandler,
        c: &Container,
        field: &str,
    ) -> Result<Handler, PodError> {
        if let Some(e) = &h.exec {
            exec_command(&e.command, c, field)
        } else if let Some(g) = &h.http_get {
            Ok(Handler::Http(http_get(g, c, &format!("{field}.httpGet"))?))
        } else if let Some(s) = &h.sleep {
            u64::try_from(s.seconds)
                .map(|s| Handler::Sleep(Duration::from_secs(s)))
                .map_err(|_| {
                    PodError::Invalid(format!("{field}.sleep.seconds: must not be negative"))
                })
        } else if h.tcp_socket.is_some() {
            Err(unsupported(
                &format!("{field}.tcpSocket"),
                "tcpSocket is not a lifecycle handler (kubelet refuses it too)",
            ))
        } else {
            Err(PodError::Invalid(format!(
                "{field}: must have one of exec, httpGet, sleep"
            )))
        }
    }

    /// A short description for hook error messages.
    pub fn describe(&self) -> String {
        match self {
            Handler::Exec { command } => format!("Exec lifecycle hook ({command:?})"),
            Handler::Http(h) => format!("HTTP lifecycle hook ({})", h.path),
            Handler::Tcp { host, port } => format!("TCP handler ({host}:{port})"),
            Handler::Sleep(d) => format!("Sleep lifecycle hook ({}s)", d.as_secs()),
            Handler::Pull { image, .. } => format!("pull of image {image:?}"),
        }
    }
}

/// Every probe and hook of a pod, resolved (so a bad port name fails `pod run`, not a probe).
pub fn check_pod(pod: &k8s_openapi::api::core::v1::Pod) -> Result<(), PodError> {
    let Some(spec) = &pod.spec else { return Ok(()) };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let app = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    for (path, c) in init.chain(app) {
        for (name, p) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = p {
                Handler::from_probe(p, c, &format!("{path}.{name}"))?;
            }
        }
        if let Some(l) = &c.lifecycle {
            if let Some(h) = &l.post_start {
                Handler::from_lifecycle(h, c, &format!("{path}.lifecycle.postStart"))?;
            }
            if let Some(h) = &l.pre_stop {
                Handler::from_lifecycle(h, c, &format!("{path}.lifecycle.preStop"))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// HTTP: request and response (pure)

/// The request bytes for `GET path` to `host:port` (Go's client as kubelet configures it).
pub fn http_request(h: &HttpGet, path: &str) -> Vec<u8> {
    let (host, headers) = request_headers(h);
    http::request_head(path, &host, &headers)
}

/// The `Host` and the other headers of a probe's request, in order.
fn request_headers(h: &HttpGet) -> (String, Vec<(&str, String)>) {
    let mut host = format_host(&h.host, h.port);
    let mut user_agent = Some(format!("kube-probe/{KUBE_VERSION}"));
    let mut accept = Some("*/*".to_string());
    let mut extra = Vec::new();
    for (name, value) in &h.headers {
        if name.eq_ignore_ascii_case("host") {
            host = value.clone();
        } else if name.eq_ignore_ascii_case("user-agent") {
            // The first user value replaces the default; more values are added.
            if user_agent.as_deref() == Some(&format!("kube-probe/{KUBE_VERSION}")) {
                user_agent = None;
            }
            extra.push((name.as_str(), value.clone()));
        } else if name.eq_ignore_ascii_case("accept") {
            accept = None;
            if !value.is_empty() {
                extra.push((name.as_str(), value.clone()));
            }
        } else {
            extra.push((name.as_str(), value.clone()));
        }
    }
    let mut headers = Vec::new();
    if let Some(ua) = user_agent {
        headers.push(("User-Agent", ua));
    }
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    headers.extend(extra);
    (host, headers)
}

fn format_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where a redirect goes: `Some((host, port, path))` for a target on the same host (to be
/// followed), `None` for another host or scheme (not followed: a `Warning`).
pub fn redirect_target(h: &HttpGet, location: &str) -> Option<(String, u16, String)> {
    if location.starts_with('/') {
        return Some((h.host.clone(), h.port, location.to_string()));
    }
    let rest = location.strip_prefix(if h.https { "https://" } else { "http://" })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_matches(['[', ']']), p.parse().ok()?)
        }
        _ => (
            authority.trim_matches(['[', ']']),
            if h.https { 443 } else { 80 },
        ),
    };
    // kubelet's checker compares host names only; the port may change.
    (host == h.host).then(|| (host.to_string(), port, path))
}

/// The verdict for a final response (`pkg/probe/http/http.go` `DoHTTPProbe`).
pub fn http_verdict(code: u16, body: &[u8], redirect_refused: bool) -> Verdict {
    let body = String::from_utf8_lossy(&body[..body.len().min(MAX_OUTPUT)]).into_owned();
    if (200..400).contains(&code) {
        if (300..400).contains(&code) && redirect_refused {
            return Verdict::new(
                ProbeOutcome::Warning,
                format!("Probe terminated redirects, Response body: {body}"),
            );
        }
        return Verdict::new(ProbeOutcome::Success, body);
    }
    Verdict::new(
        ProbeOutcome::Failure,
        format!("HTTP probe failed with statuscode: {code}"),
    )
}

// ---------------------------------------------------------------------------------------
// Running (blocking; in the forked child)

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// A failure of the client in the words of Go's, as kubelet's probe messages show them;
/// `target` is the `host:port` dialled.
fn go_error(e: HttpError, host: &str, target: &str) -> String {
    let dial = |why: String| format!("dial tcp {target}: {why}");
    match e {
        HttpError::Resolve(e) => dial(format!("lookup {host}: {e}")),
        HttpError::NoAddress => dial(format!("lookup {host}: no such host")),
        HttpError::Connect(e) => dial(match e.kind() {
            std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
            std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
            _ => format!("connect: {e}"),
        }),
        HttpError::Deadline => {
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into()
        }
        HttpError::ServerName(e) => format!("tls: server name {host:?}: {e}"),
        HttpError::TlsSetup(e) => format!("tls: {e}"),
        HttpError::Handshake(e) => format!("remote error: tls: {e}"),
        HttpError::Send(e) => format!("write: {e}"),
        HttpError::Read(e) => format!("read: {e}"),
        HttpError::Eof => "EOF".into(),
        HttpError::Malformed { reason, .. } => format!("malformed HTTP response: {reason}"),
        HttpError::TooLarge => "response head too large".into(),
        HttpError::LineBreak(name) => format!("net/http: invalid header field value for {name:?}"),
        HttpError::ContentLength(v) => format!("bad Content-Length {v:?}"),
        HttpError::Scheme(s) => format!("unsupported protocol scheme {s:?}"),
    }
}

/// `tcpSocket`: connect and close.
pub fn run_tcp(host: &str, port: u16, deadline: Instant) -> Verdict {
    let target = format_host(host, port);
    match http::connect(&target, Some(deadline)) {
        Ok(_) => Verdict::new(ProbeOutcome::Success, ""),
        Err(e) => Verdict::new(ProbeOutcome::Failure, go_error(e, host, &target)),
    }
}

/// `httpGet`, following same-host redirects.
pub fn run_http(h: &HttpGet, deadline: Instant) -> Verdict {
    let mut target = h.clone();
    let mut path = h.path.clone();
    let scheme = if h.https { "https" } else { "http" };
    let insecure = match h.https.then(|| tls::config(tls::Verify::Skip)).transpose() {
        Ok(c) => c,
        Err(e) => {
            let url = format!("{scheme}://{}{path}", format_host(&h.host, h.port));
            return Verdict::new(ProbeOutcome::Failure, format!("Get \"{url}\": {e}"));
        }
    };
    for _ in 0..=MAX_REDIRECTS {
        let url = Url {
            scheme: scheme.to_string(),
            authority: format_host(&target.host, target.port),
            path: path.clone(),
        };
        let fail = |e: String| Verdict::new(ProbeOutcome::Failure, format!("Get \"{url}\": {e}"));
        let (host, headers) = request_headers(&target);
        let req = Request {
            url: &url,
            host: Some(&host),
            headers: &headers,
            deadline: Some(deadline),
        };
        let mut r = match http::send(&req, insecure.as_ref()) {
            Ok(r) => r,
            Err(e) => return fail(go_error(e, &target.host, &url.authority)),
        };
        let mut body = Vec::new();
        match r.read_prefix(MAX_OUTPUT, &mut body) {
            Ok(()) => {}
            // Cut short by the deadline or a close: what arrived.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::UnexpectedEof
                ) => {}
            Err(e) => return fail(format!("read: {e}")),
        }
        if (300..400).contains(&r.status)
            && let Some(loc) = r.header("location")
        {
            match redirect_target(&target, loc) {
                Some((host, port, p)) => {
                    target.host = host;
                    target.port = port;
                    path = p;
                    continue;
                }
                None => return http_verdict(r.status, &body, true),
            }
        }
        return http_verdict(r.status, &body, false);
    }
    Verdict::new(
        ProbeOutcome::Failure,
        format!(
            "Get \"{scheme}://{}{path}\": stopped after {MAX_REDIRECTS} redirects",
            format_host(&target.host, target.port)
        ),
    )
}

/// Where a handler runs.
pub struct Target {
    /// The pod's network namespace (`/proc/<pause>/ns/net`); `None` with `hostNetwork`.
    pub netns: Option<PathBuf>,
    /// The OCI root of the pod's containers and the container id (exec handlers).
    pub oci_root: PathBuf,
    pub container: String,
}

/// Run `handler` in this (forked, single-threaded) process within `timeout`.
pub fn run(handler: &Handler, target: &Target, timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    let join_net = || -> Result<(), String> {
        if let Some(ns) = &target.netns {
            let f = std::fs::File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("join the pod's network namespace: {e}"))?;
        }
        Ok(())
    };
    match handler {
        Handler::Tcp { host, port } => match join_net() {
            Ok(()) => run_tcp(host, *port, deadline),
            Err(e) => Verdict::new(ProbeOutcome::Error, e),
        },
        Handler::Http(h) => match join_net() {
            Ok(()) => run_http(h, deadline),
            Err(e) => Verdict::new(ProbeOutcome::Error, e),
        },
        Handler::Sleep(d) => {
            std::thread::sleep((*d).min(timeout));
            Verdict::new(ProbeOutcome::Success, "")
        }
        Handler::Exec { command } => run_exec(command, target, timeout, deadline),
        Handler::Pull { image, storage } => {
            let pulled = peapod_image::Store::open(storage)
                .and_then(|s| s.pull(image, &peapod_image::PullOptions::default()));
            match pulled {
                Ok(_) => Verdict::new(ProbeOutcome::Success, ""),
                Err(e) => Verdict::new(ProbeOutcome::Failure, e.to_string()),
            }
        }
    }
}

/// `exec`: the container's own process settings with `command`, output (stdout and stderr
/// together) captured up to [`MAX_OUTPUT`]; killed at the deadline.
fn run_exec(command: &[String], target: &Target, timeout: Duration, deadline: Instant) -> Verdict {
    use peapod_oci::container::Container;
    use peapod_oci::container::exec::{ExecOpts, exec};
    let process = Container::load(&target.oci_root, &target.container)
        .and_then(|c| c.spec())
        .map(|s| s.process().clone().unwrap_or_default());
    let mut process = match process {
        Ok(p) => p,
        Err(e) => return Verdict::new(ProbeOutcome::Error, e.to_string()),
    };
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(false));
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Verdict::new(ProbeOutcome::Error, format!("pipe: {e}")),
    };
    let null = match std::fs::File::open("/dev/null") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => return Verdict::new(ProbeOutcome::Error, format!("open /dev/null: {e}")),
    };
    // The exec'd process inherits our stdio; afterwards only it holds the pipe.
    let redirect = |out: &OwnedFd| -> std::io::Result<()> {
        peapod_sys::dup2(null.as_raw_fd(), 0)?;
        peapod_sys::dup2(out.as_raw_fd(), 1)?;
        peapod_sys::dup2(out.as_raw_fd(), 2)
    };
    if let Err(e) = redirect(&w)
        .and_then(|_| nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from))
    {
        return Verdict::new(ProbeOutcome::Error, format!("prepare exec: {e}"));
    }
    let started = exec(
        &target.oci_root,
        &target.container,
        &process,
        &ExecOpts::default(),
        None,
    );
    let _ = redirect(&null);
    drop(w);
    let pid = match started {
        Ok(s) => s.pid,
        Err(e) => return Verdict::new(ProbeOutcome::Error, e.to_string()),
    };
    let mut output = Vec::new();
    let timed_out = !collect_until_exit(pid.as_raw(), &r, deadline, &mut output);
    if timed_out {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let status = nix::sys::wait::waitpid(pid, None);
    let text = String::from_utf8_lossy(&output).into_owned();
    if timed_out {
        return Verdict::new(
            ProbeOutcome::Failure,
            format!(
                "command {:?} timed out after {}s",
                command.join(" "),
                timeout.as_secs()
            ),
        );
    }
    match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Verdict::new(ProbeOutcome::Success, text),
        Ok(st) => {
            let code = peapod_oci::container::wait::exit_code(st);
            if text.is_empty() {
                Verdict::new(
                    ProbeOutcome::Failure,
                    format!("command {:?} exited with {code}", command.join(" ")),
                )
            } else {
                Verdict::new(ProbeOutcome::Failure, text)
            }
        }
        Err(e) => Verdict::new(ProbeOutcome::Error, format!("wait for the exec: {e}")),
    }
}

/// Read `r` into `out` (capped) until `pid` exits; false when the deadline passed first.
fn collect_until_exit(pid: i32, r: &OwnedFd, deadline: Instant, out: &mut Vec<u8>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let pidfd = peapod_sys::pidfd_open(pid).ok();
    let _ = nix::fcntl::fcntl(
        r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut pipe_open = true;
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = remaining(deadline) else {
            return false;
        };
        let mut fds = Vec::with_capacity(2);
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if pipe_open {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        let t =
            PollTimeout::try_from(left.min(Duration::from_millis(100))).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, t);
        drop(fds);
        loop {
            match nix::unistd::read(r, &mut buf) {
                Ok(0) => {
                    pipe_open = false;
                    break;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        // Exited? (WNOWAIT: the caller reaps.)
        let exited = crate::child_exited(pid).unwrap_or(false);
        if exited {
            // What is still buffered belongs to the output.
            while let Ok(n) = nix::unistd::read(r, &mut buf) {
                if n == 0 {
                    break;
                }
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            return true;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The child process

/// A handler running in a child; reap `pid`, then [`Pending::verdict`].
#[derive(Debug)]
pub struct Pending {
    pub pid: i32,
    result: OwnedFd,
}

/// Fork a child that runs `handler` and reports its verdict.
pub fn spawn(handler: &Handler, target: &Target, timeout: Duration) -> Result<Pending, PodError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| PodError::io("pipe for", Path::new("a probe"), e.into()))?;
    match peapod_sys::fork()
        .map_err(|e| PodError::io("fork for", Path::new("a probe"), e.into()))?
    {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let verdict = run(handler, target, timeout);
            let data = serde_json::to_vec(&verdict).unwrap_or_default();
            let mut f = std::fs::File::from(w);
            let _ = f.write_all(&data);
            peapod_sys::exit_now(0);
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::fcntl::fcntl(
                &r,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            Ok(Pending {
                pid: child.as_raw(),
                result: r,
            })
        }
    }
}

impl Pending {
    /// The child's verdict, once it has exited; `killed_at_deadline` says the supervisor
    /// had to kill it.
    pub fn verdict(self, timeout: Duration) -> Verdict {
        let mut data = Vec::new();
        let _ = std::fs::File::from(self.result).read_to_end(&mut data);
        serde_json::from_slice(&data).unwrap_or_else(|_| {
            Verdict::new(
                ProbeOutcome::Failure,
                format!("probe timed out after {}s", timeout.as_secs()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, ExecAction, HTTPHeader};

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "FILE".into(),
                    value: Some("/tmp/ok".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(Default::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    fn get(port: IntOrString) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some("healthz".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn named_and_numbered_ports_resolve() {
        let c = container();
        let Handler::Http(h) =
            Handler::from_probe(&get(IntOrString::String("http".into())), &c, "p")
                .unwrap()
                .with_pod_ip(POD_IP)
        else {
            panic!()
        };
        assert_eq!(
            (h.host.as_str(), h.port, h.path.as_str()),
            (POD_IP, 8080, "/healthz")
        );
        let h = Handler::from_probe(&get(IntOrString::Int(81)), &c, "p").unwrap();
        assert!(matches!(h, Handler::Http(HttpGet { port: 81, .. })));
        let e = Handler::from_probe(
            &get(IntOrString::String("metrics".into())),
            &c,
            "x.livenessProbe",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.livenessProbe.httpGet.port") && e.contains("`metrics`"),
            "{e}"
        );
        let e = Handler::from_probe(&get(IntOrString::Int(70000)), &c, "p").unwrap_err();
        assert!(e.to_string().contains("not in 1-65535"));
    }

    #[test]
    fn https_is_accepted_grpc_and_unknown_schemes_are_refused() {
        let c = container();
        let mut p = get(IntOrString::Int(1));
        p.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
        assert!(matches!(
            Handler::from_probe(&p, &c, "p"),
            Ok(Handler::Http(HttpGet { https: true, .. }))
        ));
        p.http_get.as_mut().unwrap().scheme = Some("FTP".into());
        let e = Handler::from_probe(&p, &c, "spec.containers[0].readinessProbe").unwrap_err();
        assert!(
            e.to_string().contains("readinessProbe.httpGet.scheme"),
            "{e}"
        );
        let p = Probe {
            grpc: Some(Default::default()),
            ..Default::default()
        };
        assert!(
            Handler::from_probe(&p, &c, "p")
                .unwrap_err()
                .to_string()
                .contains("p.grpc")
        );
    }

    /// kubelet's HTTPS probes skip certificate verification: a server with a certificate
    /// from an unknown CA still answers the probe.
    #[test]
    fn https_probes_skip_verification() {
        fn respond(path: &str) -> Vec<u8> {
            let code = if path == "/ok" {
                "200 OK"
            } else {
                "503 Unavailable"
            };
            format!("HTTP/1.1 {code}\r\nContent-Length: 2\r\n\r\nhi").into_bytes()
        }
        let pki = peapod_image::tls::test_pki::make(&["127.0.0.1"]);
        let port = peapod_image::tls::test_pki::serve(pki.server, respond);
        let mut h = HttpGet {
            https: true,
            host: "127.0.0.1".into(),
            port,
            path: "/ok".into(),
            headers: vec![],
        };
        let deadline = || Instant::now() + Duration::from_secs(5);
        assert_eq!(
            run_http(&h, deadline()),
            Verdict::new(ProbeOutcome::Success, "hi")
        );
        h.path = "/down".into();
        let v = run_http(&h, deadline());
        assert_eq!(v.outcome, ProbeOutcome::Failure);
        assert_eq!(v.output, "HTTP probe failed with statuscode: 503");
    }

    #[test]
    fn exec_commands_expand_static_env_only() {
        let c = container();
        let p = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["cat".into(), "$(FILE)".into(), "$(POD)".into()]),
            }),
            ..Default::default()
        };
        assert_eq!(
            Handler::from_probe(&p, &c, "p").unwrap(),
            Handler::Exec {
                command: vec!["cat".into(), "/tmp/ok".into(), "$(POD)".into()]
            }
        );
    }

    #[test]
    fn request_has_kubelets_headers_and_overrides() {
        let mut h = HttpGet {
            https: false,
            host: POD_IP.into(),
            port: 8080,
            path: "/".into(),
            headers: vec![],
        };
        let r = String::from_utf8(http_request(&h, "/healthz")).unwrap();
        assert_eq!(
            r,
            format!(
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kube-probe/{KUBE_VERSION}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
        );
        h.headers = vec![
            ("Host".into(), "example.com".into()),
            ("Accept".into(), "".into()),
            ("User-Agent".into(), "mine".into()),
            ("X-Token".into(), "t".into()),
        ];
        let r = String::from_utf8(http_request(&h, "/")).unwrap();
        assert!(r.contains("Host: example.com\r\n"));
        assert!(!r.contains("Accept"));
        assert!(!r.contains("kube-probe"));
        assert!(r.contains("User-Agent: mine\r\nX-Token: t\r\n"));
    }

    #[test]
    fn verdicts_follow_kubelet() {
        assert_eq!(
            http_verdict(200, b"ok", false).outcome,
            ProbeOutcome::Success
        );
        assert_eq!(http_verdict(399, b"", false).outcome, ProbeOutcome::Success);
        let v = http_verdict(302, b"moved", true);
        assert_eq!(v.outcome, ProbeOutcome::Warning);
        assert!(v.output.starts_with("Probe terminated redirects"));
        let v = http_verdict(500, b"", false);
        assert_eq!(
            v,
            Verdict::new(
                ProbeOutcome::Failure,
                "HTTP probe failed with statuscode: 500"
            )
        );
        assert_eq!(http_verdict(199, b"", false).outcome, ProbeOutcome::Failure);
        let big = vec![b'x'; 3 * MAX_OUTPUT];
        assert_eq!(http_verdict(200, &big, false).output.len(), MAX_OUTPUT);
    }

    #[test]
    fn redirects_only_to_the_same_host() {
        let h = HttpGet {
            https: false,
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/".into(),
            headers: vec![(String::from("X"), String::from("y"))],
        };
        assert_eq!(
            redirect_target(&h, "/b"),
            Some(("127.0.0.1".into(), 8080, "/b".into()))
        );
        assert_eq!(
            redirect_target(&h, "http://127.0.0.1:9090/c"),
            Some(("127.0.0.1".into(), 9090, "/c".into()))
        );
        assert_eq!(
            redirect_target(&h, "http://127.0.0.1"),
            Some(("127.0.0.1".into(), 80, "/".into()))
        );
        assert_eq!(redirect_target(&h, "http://example.com/"), None);
        assert_eq!(redirect_target(&h, "https://127.0.0.1/"), None);
    }

    #[test]
    fn lifecycle_handlers() {
        let c = container();
        let h = LifecycleHandler {
            sleep: Some(k8s_openapi::api::core::v1::SleepAction { seconds: 3 }),
            ..Default::default()
        };
        assert_eq!(
            Handler::from_lifecycle(&h, &c, "l").unwrap(),
            Handler::Sleep(Duration::from_secs(3))
        );
        let h = LifecycleHandler {
            tcp_socket: Some(Default::default()),
            ..Default::default()
        };
        assert!(Handler::from_lifecycle(&h, &c, "l").is_err());
        let h = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                http_headers: Some(vec![HTTPHeader {
                    name: "A".into(),
                    value: "b".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            Handler::from_lifecycle(&h, &c, "l"),
            Ok(Handler::Http(_))
        ));
    }

    /// Through the shared client: a body framed by chunks or a Content-Length on a connection
    /// the server keeps open ends where its framing says; a server that never answers is
    /// Go's client timeout at the deadline.
    #[test]
    fn http_bodies_by_framing_and_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let mut open = Vec::new();
            for (i, s) in listener.incoming().take(3).enumerate() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).unwrap();
                let resp: &[u8] = match i {
                    0 => {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                    }
                    1 => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine",
                    _ => b"",
                };
                s.write_all(resp).unwrap();
                // Kept open until the probes are over.
                open.push(s);
            }
            let _ = done_rx.recv();
        });
        let h = HttpGet {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
            headers: vec![],
        };
        let long = Instant::now() + Duration::from_secs(30);
        assert_eq!(
            run_http(&h, long),
            Verdict::new(ProbeOutcome::Success, "ok")
        );
        assert_eq!(
            run_http(&h, long),
            Verdict::new(ProbeOutcome::Success, "fine")
        );
        assert!(Instant::now() < long - Duration::from_secs(20));
        let v = run_http(&h, Instant::now() + Duration::from_millis(300));
        assert_eq!(
            v.output,
            format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )
        );
        done_tx.send(()).unwrap();
        server.join().unwrap();
    }

    /// A real server on loopback (no namespace needed): status codes, redirects, refused.
    #[test]
    fn http_and_tcp_against_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (i, s) in listener.incoming().take(3).enumerate() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let resp = match i {
                    0 => "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n"
                        .to_string(),
                    1 => {
                        assert!(req.starts_with("GET /ok HTTP/1.1\r\n"), "{req}");
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
                    }
                    _ => "HTTP/1.1 503 Unavailable\r\n\r\n".to_string(),
                };
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        let h = HttpGet {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/start".into(),
            headers: vec![],
        };
        let deadline = || Instant::now() + Duration::from_secs(5);
        assert_eq!(
            run_http(&h, deadline()),
            Verdict::new(ProbeOutcome::Success, "ok")
        );
        assert_eq!(run_http(&h, deadline()).outcome, ProbeOutcome::Failure);
        server.join().unwrap();
        // Nothing listens any more: refused.
        let v = run_tcp("127.0.0.1", port, deadline());
        assert_eq!(v.outcome, ProbeOutcome::Failure);
        assert!(v.output.contains("connection refused"), "{}", v.output);
        let v = run_http(&h, deadline());
        assert!(
            v.output
                .starts_with(&format!("Get \"http://127.0.0.1:{port}/start\": dial tcp")),
            "{}",
            v.output
        );
    }
}
