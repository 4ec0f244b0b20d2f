//! Fuzz targets: one function per parser of untrusted input, each taking arbitrary bytes.
//!
//! Each body calls the parser's public entry point the way the runtime does and then checks
//! what must hold for any input: no panic, and the invariants named in its comment (a parsed
//! value prints back to the same value, nothing is written outside a target directory...).
//! `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run NAME`); the unit tests in
//! `fuzz/tests.rs` run every body over the checked-in corpus `fuzz/corpus/NAME/` and over a
//! seeded random sweep, so `cargo test --lib` covers them without nightly. README, "Fuzzing".
//!
//! Bodies that need files work in a private temporary directory per process.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[cfg(test)]
mod tests;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: &[(&str, Target)] = &[
    ("config_json", config_json),
    ("process_json", process_json),
    ("pod_manifest", pod_manifest),
    ("node_config", node_config),
    ("quantity", quantity),
    ("image_unpack", image_unpack),
    ("image_json", image_json),
    ("image_reference", image_reference),
    ("registry_http", registry_http),
    ("probe_http", probe_http),
    ("cri_log", cri_log),
    ("cgroup_files", cgroup_files),
    ("mountinfo", mountinfo),
    ("signal", signal),
    ("mount_options", mount_options),
    ("durations", durations),
    ("node_args", node_args),
];

/// A private scratch directory for one fuzz case, removed when the case drops it (a directory
/// shared by the whole process would stay behind: statics are never dropped).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("peapod-fuzz-")
        .tempdir()
        .expect("create a scratch directory")
}

/// Splits `data` at the first `sep` byte (the rest is empty when there is none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// config.json as `create` takes it: parse, validate, then every pure step that turns the spec
/// into a plan before anything is created (namespaces, mount options, cgroup path and
/// resources, device rules and their eBPF program, seccomp filter, rlimits, time offsets).
pub fn config_json(data: &[u8]) {
    use peapod_oci::container::{create, spec};
    let Ok(s) = spec::parse(data) else { return };
    // A spec that parsed serializes (state.json stores it) and parses back.
    let json = serde_json::to_vec(&s).expect("a parsed spec serializes");
    spec::parse(&json).expect("a serialized spec parses");
    if spec::validate(&s).is_err() {
        return;
    }
    let _ = spec::namespaces(&s);
    let _ = spec::time_offsets(&s);
    for m in s.mounts().iter().flatten() {
        let _ = peapod_oci::rootfs::options::parse(m.options().as_deref().unwrap_or_default());
    }
    if let Some(linux) = s.linux() {
        let path = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy());
        let _ = peapod_oci::cgroups::resolve_path(path.as_deref(), "fuzz");
        if let Some(seccomp) = linux.seccomp() {
            let _ = peapod_oci::seccomp::compile(seccomp);
        }
    }
    for r in s
        .process()
        .iter()
        .flat_map(|p| p.rlimits().iter().flatten())
    {
        let _ = peapod_oci::linux::rlimit_resource(&r.typ());
    }
    let _ = create::resources(&s);
    if let Ok(rules) = peapod_oci::cgroups::devices::parse_rules(&create::device_rules(&s)) {
        let _ = peapod_oci::cgroups::devices::program(&rules);
        let _ = peapod_oci::cgroups::devices::v1_lines(&rules);
    }
}

/// `exec --process FILE`.
pub fn process_json(data: &[u8]) {
    if let Ok(p) = peapod_oci::container::spec::parse_process(data) {
        serde_json::to_vec(&p).expect("a parsed process serializes");
    }
}

/// `pod run FILE`: decode, validate, default, map onto the supervisor's plan, as `pod run`
/// does; the size and depth limits come first.
pub fn pod_manifest(data: &[u8]) {
    use peapod_kube::manifest;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = manifest::parse_documents(text);
    let Ok(pods) = manifest::parse_manifests(text) else {
        return;
    };
    for mut pod in pods {
        let _ = manifest::pod_hostname(&pod);
        if manifest::validate(&pod).is_err() {
            continue;
        }
        manifest::apply_defaults(&mut pod);
        // kubelet's defaults keep a valid pod valid.
        manifest::validate(&pod).expect("a valid pod stays valid with its defaults");
        let _ = crate::handler::check_pod(&pod);
        let _ = manifest::to_supervisor(&pod);
    }
}

/// `<storage>/node-config.yaml`.
pub fn node_config(data: &[u8]) {
    let _ = peapod_kube::node::NodeConfig::parse(&text(data));
}

/// Resource quantities: a parsed quantity prints in canonical form, which parses back to an
/// equal quantity, and printing that is a fixed point; conversions do not overflow.
pub fn quantity(data: &[u8]) {
    use peapod_kube::quantity::Quantity;
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Quantity::parse(s) else { return };
    let canonical = q.canonical();
    let back = Quantity::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical form {canonical:?} of {s:?} does not parse: {e}"));
    assert_eq!(back, q, "{s:?} -> {canonical:?}");
    // Not always the same text: `890562.5Ki` prints as `911936000` (not a whole number of
    // Ki), which reads back as a decimal quantity and prints as `911936k`, as apimachinery
    // does. From there the canonical form is a fixed point.
    let again = back.canonical();
    assert_eq!(
        Quantity::parse(&again).map(|q| q.canonical()),
        Ok(again),
        "{s:?}"
    );
    let _ = (q.to_bytes(), q.to_millicores(), q.signum(), q.is_zero());
    for scale in [-9, -3, 0, 3, 6, 9] {
        let _ = q.scaled_value(scale);
    }
    let _ = q.saturating_add(back).canonical();
    let json = serde_json::to_string(&q).expect("a quantity serializes");
    let again: Quantity = serde_json::from_str(&json).expect("a serialized quantity parses");
    assert_eq!(again, q);
}

/// Image layer unpacking, as `image import` does it. The first byte chooses raw tar bytes or a
/// tar built from the rest (entries of every type, names and link targets drawn from a table
/// of hostile ones, so the checksums are right and the unpacker's checks are reached). Nothing
/// may appear outside the layer directory: its sibling `outside/` stays empty.
pub fn image_unpack(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let tar = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        build_tar(rest)
    };
    let case = scratch();
    let dest = case.path().join("layer");
    let outside = case.path().join("outside");
    std::fs::create_dir(&dest).expect("layer directory");
    std::fs::create_dir(&outside).expect("canary directory");
    let _ = peapod_image::unpack::unpack_layer(&mut &tar[..], &dest);
    let escaped: Vec<_> = std::fs::read_dir(&outside)
        .expect("read canary directory")
        .map(|e| e.map(|e| e.file_name()))
        .collect();
    assert!(escaped.is_empty(), "entries escaped the layer: {escaped:?}");
    let siblings: Vec<_> = std::fs::read_dir(case.path())
        .expect("read case directory")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n != "layer" && n != "outside")
        .collect();
    assert!(
        siblings.is_empty(),
        "entries escaped the layer: {siblings:?}"
    );
}

/// Names and link targets that probe an unpacker: climbing out, absolute, whiteouts, and the
/// sibling canary directory.
const TAR_NAMES: &[&str] = &[
    "a",
    "a/b",
    "d/",
    "d/f",
    "..",
    "../outside/x",
    "a/../../outside/y",
    "/",
    "/outside",
    "./a",
    "a/.wh.b",
    ".wh.a",
    "d/.wh..wh..opq",
    ".wh..wh..opq",
    "l",
    "l/x",
    "l/../x",
    "a//b",
    "",
];

/// A tar from bytes: each entry takes a type, a name, a link target (from [`TAR_NAMES`] or the
/// bytes themselves) and a few bytes of content. Built by hand (ustar headers), because
/// `tar::Builder` refuses the hostile names this needs.
fn build_tar(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = data.chunks(4);
    while let Some(c) = it.next() {
        let get = |i: usize| c.get(i).copied().unwrap_or(0);
        let pick = |b: u8| -> Vec<u8> {
            if usize::from(b) < TAR_NAMES.len() * 2 {
                TAR_NAMES[usize::from(b) % TAR_NAMES.len()]
                    .as_bytes()
                    .to_vec()
            } else {
                vec![b'n', b]
            }
        };
        let kind =
            [b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'x', b'L'][usize::from(get(0)) % 10];
        let name = pick(get(1));
        let link = pick(get(2));
        let content: Vec<u8> = match it.next() {
            Some(body) if kind == b'0' || kind == b'x' => body.to_vec(),
            _ => Vec::new(),
        };
        let content = if kind == b'x' {
            // A pax header setting xattrs and a path.
            let mut pax = Vec::new();
            for (k, v) in [
                ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
                ("SCHILY.xattr.user.k", &content[..]),
                ("path", &name[..]),
            ] {
                let rec_len = |n: usize| n + k.len() + v.len() + 3;
                let mut n = rec_len(1);
                while n.to_string().len() + k.len() + v.len() + 3 != n {
                    n = rec_len(n.to_string().len());
                }
                pax.extend_from_slice(format!("{n} {k}=").as_bytes());
                pax.extend_from_slice(v);
                pax.push(b'\n');
            }
            pax
        } else {
            content
        };
        out.extend_from_slice(&ustar_header(&name, &link, kind, get(3), content.len()));
        out.extend_from_slice(&content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn ustar_header(name: &[u8], link: &[u8], kind: u8, mode: u8, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, v: &[u8]| {
        let n = v.len().min(len);
        h[at..at + n].copy_from_slice(&v[..n]);
    };
    put(&mut h, 0, 100, name);
    let mode = [0o644, 0o755, 0o4755, 0o1777, 0o000, 0o600][usize::from(mode) % 6];
    put(&mut h, 100, 8, format!("{mode:07o}\0").as_bytes());
    put(&mut h, 108, 8, b"0000000\0");
    put(&mut h, 116, 8, b"0000000\0");
    put(&mut h, 124, 12, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, 12, b"00000000000\0");
    h[156] = kind;
    put(&mut h, 157, 100, link);
    put(&mut h, 257, 8, b"ustar\x0000");
    put(&mut h, 329, 8, b"0000001\0"); // device major
    put(&mut h, 337, 8, b"0000003\0"); // device minor
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// The JSON documents of an image (manifest, index, config from a registry or an archive) and
/// what is taken from them: the process, environment, working directory, user (looked up in
/// the image's passwd and group files, from the rest of the bytes) and stop signal.
pub fn image_json(data: &[u8]) {
    use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
    let (doc, rest) = split(data, 0);
    let _ = serde_json::from_slice::<ImageManifest>(doc);
    let _ = serde_json::from_slice::<ImageIndex>(doc);
    if let Ok(c) = serde_json::from_slice::<ImageConfiguration>(doc) {
        use peapod_image::config;
        let cmd = ["sh".to_string()];
        let _ = config::merge_process(&c, Some(&cmd), None);
        let _ = config::merge_process(&c, None, Some(&cmd));
        let _ = config::merge_env(&c, &[("A".into(), "b".into())]);
        let _ = config::working_dir(&c, None);
        let _ = config::stop_signal(&c).map(|s| peapod_oci::signal::parse(&s));
        if let Some(user) = config::user(&c) {
            let (passwd, group) = split(rest, 0);
            let _ = config::lookup_user(&user, &text(passwd), &text(group));
        }
    }
    let (user, files) = split(rest, b'\n');
    let (passwd, group) = split(files, 0);
    let _ = peapod_image::config::lookup_user(&text(user), &text(passwd), &text(group));
}

/// Image names as `image pull`, `image import --name` and pods give them: a parsed reference
/// prints as a name that parses back to the same reference.
pub fn image_reference(data: &[u8]) {
    use peapod_image::reference::{Reference, pull_policy};
    let s = text(data);
    let _ = pull_policy(&s, None);
    let _ = pull_policy(&s, Some("IfNotPresent"));
    let Ok(r) = Reference::parse(&s) else { return };
    let name = r.to_string();
    let back = Reference::parse(&name)
        .unwrap_or_else(|e| panic!("{s:?} prints as {name:?}, which does not parse: {e}"));
    assert_eq!(back, r, "{s:?} -> {name:?}");
    let _ = (r.repo_name(), r.tagged());
}

/// A registry's HTTP response as `image pull` reads it (status line, headers, a chunked,
/// sized or unsized body up to a limit), the `WWW-Authenticate` challenge and the `Location`
/// of a redirect.
pub fn registry_http(data: &[u8]) {
    use peapod_image::http::{Request, Url, exchange};
    use peapod_image::registry::parse_challenge;
    let url = Url::parse("https://registry.example:5000/v2/").expect("a valid URL");
    let req = Request {
        url: &url,
        host: None,
        headers: &[],
        deadline: None,
    };
    if let Ok(r) = exchange(&req, Canned(std::io::Cursor::new(data.to_vec()))) {
        if let Some(h) = r.header("www-authenticate") {
            let _ = parse_challenge(h);
        }
        if let Some(loc) = r.header("location") {
            let _ = url.join(loc);
        }
        if let Ok(body) = r.bytes(1 << 16) {
            assert!(body.len() <= 1 << 16);
        }
    }
    let s = text(data);
    let _ = parse_challenge(&s);
    let _ = Url::parse(&s).map(|u| u.to_string());
    let _ = url.join(&s);
}

/// A server's response on a stream: reads come from the bytes, writes go nowhere.
struct Canned(std::io::Cursor<Vec<u8>>);

impl Read for Canned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // At most 7 bytes at a time, so framing across short reads is exercised.
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

impl Write for Canned {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An httpGet probe's response: the head parsed as bytes arrive (as the probe reads them, in
/// pieces), the same head however the bytes were split, the redirect target and the verdict.
pub fn probe_http(data: &[u8]) {
    use crate::handler::{HttpGet, http_verdict, redirect_target};
    use peapod_image::http::parse_head;
    let whole = parse_head(data);
    // Fed in pieces: the first complete parse equals the parse of the whole text at that
    // length, and a head found in a prefix is the head of the whole.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        match parse_head(&data[..end]) {
            Ok(Some(head)) => {
                assert!(head.len <= end);
                assert_eq!(whole, Ok(Some(head.clone())), "a head split at {end}");
                let h = HttpGet {
                    host: "127.0.0.1".into(),
                    port: 8080,
                    path: "/".into(),
                    https: false,
                    headers: Vec::new(),
                };
                if let Some(loc) = head.header("location") {
                    let _ = redirect_target(&h, loc);
                    let _ = redirect_target(
                        &HttpGet {
                            https: true,
                            ..h.clone()
                        },
                        loc,
                    );
                }
                let _ = http_verdict(head.status, &data[head.len..], false);
                break;
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

/// The CRI log files `pod logs` reads: any bytes as a log file, read with the options the
/// first byte selects; and the same bytes as a container's output through the writer, read
/// back whole: what the container printed is what `pod logs` prints (a last line without a
/// newline gets one).
pub fn cri_log(data: &[u8]) {
    use crate::logs::{LogLimits, LogWriter, ReadOpts, Stream, read_logs};
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let case = scratch();
    let pod = case.path();
    let opts = ReadOpts {
        previous: false,
        tail: (flags & 1 != 0).then_some(usize::from(flags >> 4)),
        timestamps: flags & 2 != 0,
        follow: false,
        since: (flags & 4 != 0).then_some(SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30)),
    };
    // Raw bytes as the live file of instance 0.
    let dir = pod.join(crate::logs::LOGS_DIR).join("c");
    std::fs::create_dir_all(&dir).expect("log directory");
    std::fs::write(dir.join("0.log"), rest).expect("write log file");
    let mut out = Vec::new();
    let _ = read_logs(pod, "c", &opts, &mut out, &|| false);

    // Round trip through the writer, with small limits so lines split and files rotate; with
    // room for every record (at most 40 bytes per byte written), nothing is lost.
    let keep_all = flags & 8 != 0 && rest.len() <= 100_000;
    let limits = LogLimits {
        max_file_size: if keep_all {
            1 << 20
        } else {
            64 + u64::from(flags)
        },
        max_files: if keep_all {
            5
        } else {
            1 + usize::from(flags % 4)
        },
        max_line_size: 1 + usize::from(flags % 32),
    };
    let Ok(mut w) = LogWriter::create_with_limits(pod, "w", 0, limits) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for piece in rest.chunks(1 + usize::from(flags % 13)) {
        w.write(Stream::Stdout, piece, now)
            .expect("write a log record");
    }
    w.flush_partial(now).expect("flush");
    drop(w);
    let mut out = Vec::new();
    read_logs(pod, "w", &ReadOpts::default(), &mut out, &|| false).expect("read back");
    if keep_all {
        let mut want = rest.to_vec();
        if !want.is_empty() && !want.ends_with(b"\n") {
            want.push(b'\n');
        }
        assert_eq!(out, want, "limits {limits:?}");
    }
}

/// cgroup files as `events --stats`, OOM counting and the v1/v2 managers read them: every
/// stats file of both versions holds a piece of the bytes.
pub fn cgroup_files(data: &[u8]) {
    use peapod_oci::cgroups::{parse_flat_keyed, stats};
    let _ = parse_flat_keyed(Path::new("memory.events"), &text(data));
    let case = scratch();
    let dir = case.path();
    let files = [
        "cpu.stat",
        "cpuacct.usage",
        "cpuacct.usage_percpu",
        "cpuacct.stat",
        "memory.stat",
        "memory.usage_in_bytes",
        "memory.max_usage_in_bytes",
        "memory.limit_in_bytes",
        "memory.failcnt",
        "memory.current",
        "memory.max",
        "memory.peak",
        "memory.events",
        "memory.swap.current",
        "memory.swap.max",
        "pids.current",
        "pids.max",
        "io.stat",
        "blkio.throttle.io_service_bytes",
        "blkio.throttle.io_serviced",
        "blkio.io_service_bytes_recursive",
        "hugetlb.2MB.current",
        "hugetlb.2MB.max",
        "hugetlb.2MB.events",
        "hugetlb.2MB.usage_in_bytes",
        "hugetlb.2MB.max_usage_in_bytes",
        "hugetlb.2MB.failcnt",
    ];
    let mut rest = data;
    for f in files {
        let (piece, more) = split(rest, 0);
        std::fs::write(dir.join(f), piece).expect("write cgroup file");
        rest = more;
    }
    let _ = stats::cpu_v1(Some(dir), Some(dir));
    let _ = stats::cpu_v2(dir);
    let _ = stats::memory_v1(dir);
    let _ = stats::memory_v2(dir);
    let _ = stats::pids(dir);
    let _ = stats::blkio_v1(dir);
    let _ = stats::blkio_v2(dir);
    let _ = stats::hugetlb(dir, true);
    let _ = stats::hugetlb(dir, false);
}

/// `/proc/self/mountinfo` as cgroup detection reads it.
pub fn mountinfo(data: &[u8]) {
    let _ = peapod_oci::cgroups::Setup::from_mountinfo(&text(data));
}

/// Signal names and numbers (`kill`, `StopSignal`): a parsed signal is a valid number that
/// parses as itself.
pub fn signal(data: &[u8]) {
    if let Ok(n) = peapod_oci::signal::parse(&text(data)) {
        assert!((1..=libc::SIGRTMAX()).contains(&n), "{n}");
        assert_eq!(peapod_oci::signal::parse(&n.to_string()), Ok(n));
    }
}

/// Mount options of config.json mounts, comma-separated.
pub fn mount_options(data: &[u8]) {
    let s = text(data);
    let options: Vec<String> = s.split(',').map(str::to_string).collect();
    let _ = peapod_oci::rootfs::options::parse(&options);
    for o in &options {
        let _ = peapod_oci::rootfs::options::propagation_flags(o);
    }
}

/// Go durations (probe and stop settings) and the restart back-off annotation.
pub fn durations(data: &[u8]) {
    let s = text(data);
    let _ = peapod_kube::supervisor::clock::parse_go_duration(&s);
    let _ = peapod_kube::supervisor::backoff::BackoffConfig::parse(&s);
}

/// `node label` and `node taint` arguments, one per line.
pub fn node_args(data: &[u8]) {
    let args: Vec<String> = text(data).lines().map(str::to_string).collect();
    let _ = peapod_kube::node::labels::parse(&args);
    let _ = peapod_kube::node::taints::parse(&args);
}

/// Runs `target` on `data` in a thread with a deadline: `Err` with the elapsed time when it
/// did not return within `limit` (the thread is left running; callers fail the test).
pub fn run_bounded(target: Target, data: Vec<u8>, limit: Duration) -> Result<Duration, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = std::time::Instant::now();
    std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(|| target(&data));
            let _ = tx.send(r.map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            }));
        })
        .map_err(|e| format!("spawn: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(panic)) => Err(format!("panicked: {panic}")),
        Err(_) => Err(format!("took longer than {limit:?}")),
    }
}

/// The directory of a target's checked-in corpus.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}
