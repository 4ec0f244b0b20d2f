//! The image store through the real binary: import of the busybox image made by
//! `rootfs-tools/busybox-image` (OCI layout and docker archive), ls/inspect/rm/prune, whiteouts
//! seen through overlayfs, a container run from the overlay, bad and interrupted imports, and
//! concurrent imports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::common::{Bundle, bin, can_run, captured, root_ok};

fn images_dir() -> PathBuf {
    if std::env::var_os("PEAPOD_IN_VM").is_some() {
        PathBuf::from("/tmp/peapod-test-images")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("images")
    }
}

/// `rootfs-tools/busybox-image [ARGS] OUT`, unless OUT is newer than the script and busybox: the VM runs each
/// test in its own process, and the script costs seconds there. Concurrent builders each write
/// their own temp file and rename it into place.
fn make_image(out: &Path, args: &[&str]) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-tools/busybox-image");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = mtime(out) < mtime(&script) || mtime(out) < mtime(Path::new("/bin/busybox"));
    if mtime(out).is_none() || stale {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let tmp = out.with_extension(format!("partial-{}", std::process::id()));
        let st = Command::new(&script).args(args).arg(&tmp).status().unwrap();
        assert!(st.success(), "busybox-image {args:?} failed");
        std::fs::rename(&tmp, out).unwrap();
    }
    out.to_path_buf()
}

pub(crate) fn oci_tar() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| make_image(&images_dir().join("bb-oci.tar"), &[]))
}

fn docker_tar() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        make_image(
            &images_dir().join("bb-docker.tar"),
            &["--docker", "--name", "bb:docker"],
        )
    })
}

/// A store of its own for each test.
struct Storage(tempfile::TempDir);

impl Storage {
    fn new() -> Storage {
        Storage(
            tempfile::Builder::new()
                .prefix("pp-store")
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--storage").arg(self.path()).args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "peapod image {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn import(&self, path: &Path, extra: &[&str]) -> String {
        let mut a = vec!["image", "import", path.to_str().unwrap()];
        a.extend(extra);
        self.ok(&a)
    }

    /// What "unchanged" compares: names, blobs, layers and staging entries.
    fn snapshot(&self) -> (String, Vec<String>, Vec<String>, Vec<String>) {
        let r = self.path().join("images");
        let ls = |d: &str| {
            let mut v: Vec<String> = std::fs::read_dir(r.join(d))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        (
            std::fs::read_to_string(r.join("repositories.json")).unwrap_or_default(),
            ls("blobs/sha256"),
            ls("layers"),
            ls("tmp"),
        )
    }
}

#[test]
fn image_import_ls_inspect_rm_prune() {
    if !root_ok() {
        return;
    }
    let s = Storage::new();
    assert_eq!(
        s.import(oci_tar(), &[]),
        "Loaded image: localhost/busybox:latest\n"
    );
    assert_eq!(
        s.import(docker_tar(), &[]),
        "Loaded image: docker.io/library/bb:docker\n"
    );
    let ls = s.ok(&["image", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 3, "{ls}");
    assert!(lines[0].starts_with("REPOSITORY"), "{ls}");
    assert!(
        lines[1].starts_with("docker.io/library/bb") && lines[1].contains("docker"),
        "{ls}"
    );
    assert!(
        lines[2].starts_with("localhost/busybox") && lines[2].contains("latest"),
        "{ls}"
    );
    // Same config in both archives: one image ID, and the layers are stored once.
    assert_eq!(s.ok(&["image", "ls", "-q"]).lines().count(), 1);
    assert_eq!(s.snapshot().2.len(), 2);
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "ls", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let id = json[0]["id"].as_str().unwrap().to_string();

    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", "bb:docker"])).unwrap();
    let i = &inspect[0];
    assert_eq!(i["Name"], "docker.io/library/bb:docker");
    assert_eq!(i["Id"], format!("sha256:{id}"));
    assert_eq!(
        i["Config"]["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(i["LayerDirs"].as_array().unwrap().len(), 2);
    // By image ID prefix too.
    s.ok(&["image", "inspect", &id[..8]]);

    let o = s.out(&["image", "inspect", "nosuch:1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("image `nosuch:1` is not in the store"));
    let o = s.out(&[
        "image",
        "import",
        oci_tar().to_str().unwrap(),
        "--name",
        "host",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("reserved"),
        "{o:?}"
    );

    assert_eq!(
        s.ok(&["image", "rm", "bb:docker"]),
        "Untagged: docker.io/library/bb:docker\n"
    );
    assert_eq!(
        s.snapshot().2.len(),
        2,
        "layers still used by localhost/busybox"
    );
    assert_eq!(
        s.ok(&["image", "rm", "localhost/busybox"]),
        "Untagged: localhost/busybox:latest\n"
    );
    let (names, blobs, layers, tmp) = s.snapshot();
    assert_eq!(names.trim(), "{}");
    assert!(blobs.is_empty() && layers.is_empty() && tmp.is_empty());
    assert_eq!(s.ok(&["image", "ls"]).lines().count(), 1);
    s.ok(&["image", "prune"]);
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn image_whiteouts_hold_in_the_overlay_and_a_container_runs_from_it() {
    if !root_ok() {
        return;
    }
    let s = Storage::new();
    s.import(oci_tar(), &[]);
    let store = peapod_image::Store::open(s.path()).unwrap();
    let img = store.resolve("localhost/busybox").unwrap().unwrap();
    assert_eq!(img.layer_dirs.len(), 2);
    // Layer 1 alone still has the files layer 2 deletes.
    assert!(img.layer_dirs[0].join("etc/motd").is_file());
    assert!(img.layer_dirs[0].join("opt/data/old").is_file());

    let ro = s.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    peapod_image::mount_overlay(&img.layer_dirs, None, &ro).unwrap();
    let m = Mounted(ro.clone());
    assert!(ro.join("etc/passwd").is_file());
    assert!(ro.join("bin/sh").exists());
    assert!(
        !ro.join("etc/motd").exists(),
        "whiteout of layer 2 not honoured"
    );
    assert!(
        !ro.join("opt/data/old").exists(),
        "opaque dir of layer 2 not honoured"
    );
    assert_eq!(
        std::fs::read_to_string(ro.join("opt/data/new")).unwrap(),
        "new in layer 2\n"
    );
    assert!(
        std::fs::write(ro.join("etc/x"), b"x").is_err(),
        "read-only overlay is writable"
    );
    drop(m);

    // A writable rootfs: the container's changes land in upperdir, the layers stay untouched.
    let (upper, work, root) = (
        s.path().join("upper"),
        s.path().join("work"),
        s.path().join("root"),
    );
    for d in [&upper, &work, &root] {
        std::fs::create_dir(d).unwrap();
    }
    peapod_image::mount_overlay(&img.layer_dirs, Some((&upper, &work)), &root).unwrap();
    let _m = Mounted(root.clone());
    let argv = peapod_image::merge_process(
        &img.config,
        None,
        Some(&["echo \"$GREETING from $(pwd)\" > out; rm /etc/passwd; ls /etc".to_string()]),
    );
    assert_eq!(argv[..2], ["/bin/sh", "-c"]);
    let env = peapod_image::merge_env(&img.config, &[("EXTRA".into(), "1".into())]);
    let cwd = peapod_image::working_dir(&img.config, None);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let b = Bundle::new(
        &argv,
        serde_json::json!({"root": {"path": root, "readonly": false}, "process": {"env": env, "cwd": cwd}}),
    );
    let (code, out, err) = b.run(&crate::common::unique("img"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["group", "layer2"],
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/out")).unwrap(),
        "hello from /tmp\n"
    );
    assert!(
        img.layer_dirs[0].join("etc/passwd").is_file(),
        "a layer was modified"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(upper.join("etc/passwd"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn image_bad_or_interrupted_import_leaves_the_store_as_before() {
    if !root_ok() {
        return;
    }
    let s = Storage::new();
    s.import(docker_tar(), &[]);
    let before = s.snapshot();
    let dir = tempfile::tempdir().unwrap();

    // Truncated archives, at several points.
    let full = std::fs::read(oci_tar()).unwrap();
    let cut = dir.path().join("cut.tar");
    for at in [full.len() / 3, full.len() / 2, full.len() - 2048] {
        std::fs::write(&cut, &full[..at]).unwrap();
        let o = s.out(&["image", "import", cut.to_str().unwrap()]);
        assert!(!o.status.success(), "truncated at {at} imported");
        assert_eq!(s.snapshot(), before, "truncated at {at}");
    }

    // A flipped byte inside the big layer blob.
    let mut bad = full.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&cut, &bad).unwrap();
    let o = s.out(&["image", "import", cut.to_str().unwrap()]);
    assert!(!o.status.success(), "corrupt archive imported");
    assert_eq!(s.snapshot(), before);

    // Killed half-way: nothing visible; prune removes the staging directory.
    let filler = dir.path().join("filler");
    std::fs::create_dir(&filler).unwrap();
    let st = Command::new("sh")
        .args(["-c", "head -c 16000000 /dev/urandom > \"$0/random\""])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(st.success());
    let big = dir.path().join("big.tar");
    make_image(
        &big,
        &["--extra-layer", filler.to_str().unwrap(), "--name", "big:1"],
    );
    let mut child = s
        .cmd(&["image", "import", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = s.path().join("images/tmp");
    let t = std::time::Instant::now();
    let staged = |p: &Path| {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.path().read_dir().is_ok_and(|mut d| d.next().is_some()))
            })
            .unwrap_or(false)
    };
    while !staged(&tmp) && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    let st = child.wait().unwrap();
    if !can_run("an import slow enough to interrupt", !st.success()) {
        return;
    }
    let after = s.snapshot();
    assert_eq!(
        (&after.0, &after.1, &after.2),
        (&before.0, &before.1, &before.2)
    );
    s.ok(&["image", "prune"]);
    assert_eq!(s.snapshot(), before);
    // And the store still works.
    assert!(
        s.import(oci_tar(), &[])
            .contains("localhost/busybox:latest")
    );
}

#[test]
fn image_concurrent_imports_of_one_archive() {
    if !root_ok() {
        return;
    }
    let s = Storage::new();
    let tar = oci_tar().to_str().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            s.cmd(&["image", "import", tar])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "Loaded image: localhost/busybox:latest\n"
        );
    }
    assert_eq!(s.ok(&["image", "ls"]).lines().count(), 2);
    let (_, blobs, layers, tmp) = s.snapshot();
    assert_eq!((blobs.len(), layers.len(), tmp.len()), (2, 2, 0));
}

/// Debian's docker-registry on 127.0.0.1 (a free port), stopped on drop; over TLS with a
/// certificate from a CA of its own when `ca_dir` is set.
struct Registry {
    child: std::process::Child,
    port: u16,
    /// The directory holding the registry's CA certificate, `ca.crt`.
    ca_dir: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// A CA (`ca/ca.crt`) and a server certificate for 127.0.0.1 signed by it (`server.crt`,
/// `server.key`), made in `dir` with openssl. EC P-256 keys: quick to make.
fn make_certs(dir: &Path) {
    let script = r#"set -e
mkdir ca
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=peapod-test-ca -keyout ca.key -out ca/ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout server.key -out server.csr
printf '%s\n' subjectAltName=IP:127.0.0.1 basicConstraints=CA:FALSE \
    keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth > server.ext
openssl x509 -req -in server.csr -CA ca/ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt
"#;
    let o = captured({
        let mut c = Command::new("sh");
        c.args(["-c", script]).current_dir(dir);
        c
    });
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn have(b: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {b}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Registry {
    fn start() -> Option<Registry> {
        Registry::start_with(false)
    }

    fn start_tls() -> Option<Registry> {
        if !can_run("openssl (apt-get install openssl)", have("openssl")) {
            return None;
        }
        Registry::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Registry> {
        if !can_run(
            "docker-registry and skopeo (apt-get install docker-registry skopeo)",
            have("docker-registry") && have("skopeo"),
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let ca_dir = tls.then(|| {
            make_certs(dir.path());
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ));
            dir.path().join("ca")
        });
        std::fs::write(&cfg, yaml).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry {
            child,
            port,
            ca_dir,
            _dir: dir,
        };
        let t = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed().as_secs() < 30, "docker-registry did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(reg)
    }

    /// `skopeo copy SRC docker://127.0.0.1:PORT/REF`
    fn push(&self, src: &str, dst: &str) {
        let o = captured({
            let mut c = Command::new("skopeo");
            c.args(["copy", "--quiet"]);
            match &self.ca_dir {
                Some(d) => c.arg("--dest-cert-dir").arg(d),
                None => c.arg("--dest-tls-verify=false"),
            };
            c.arg(src)
                .arg(format!("docker://127.0.0.1:{}/{dst}", self.port));
            c
        });
        assert!(
            o.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn image_pull_from_a_local_registry() {
    if !root_ok() {
        return;
    }
    let Some(reg) = Registry::start() else {
        return;
    };
    reg.push(
        &format!("docker-archive:{}", docker_tar().display()),
        "bb:docker",
    );
    reg.push(&format!("oci-archive:{}", oci_tar().display()), "bb:oci");
    let s = Storage::new();
    let name = |r: &str| format!("127.0.0.1:{}/bb:{r}", reg.port);
    assert_eq!(
        s.ok(&["image", "pull", &name("docker")]),
        format!("Loaded image: {}\n", name("docker"))
    );
    assert_eq!(
        s.ok(&["image", "pull", &name("oci")]),
        format!("Loaded image: {}\n", name("oci"))
    );
    // Pulled again (imagePullPolicy: Always) with the layers present.
    s.ok(&["image", "pull", &name("oci")]);
    let ls: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "ls", "--format", "json"])).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 2);
    // skopeo stores docker's manifest for both; same config, one set of layers.
    assert_eq!(s.snapshot().2.len(), 2);
    let digest = ls[0]["digest"].as_str().unwrap().to_string();
    let by_digest = format!("127.0.0.1:{}/bb@{digest}", reg.port);
    s.ok(&["image", "pull", &by_digest]);
    let i: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", &by_digest])).unwrap();
    assert_eq!(i[0]["Digest"], digest);

    let o = s.out(&["image", "pull", &name("nope")]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("MANIFEST_UNKNOWN"),
        "{o:?}"
    );

    // The pulled image runs: whiteouts hold as with an imported one.
    let store = peapod_image::Store::open(s.path()).unwrap();
    let img = store.resolve(&name("docker")).unwrap().unwrap();
    let ro = s.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    peapod_image::mount_overlay(&img.layer_dirs, None, &ro).unwrap();
    let _m = Mounted(ro.clone());
    assert!(ro.join("bin/busybox").is_file() && !ro.join("etc/motd").exists());
}

/// Removes what a test put under /etc/containers/certs.d, and the directories it had to create.
struct EtcCertsDir(Vec<PathBuf>);

impl Drop for EtcCertsDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.first() {
            let _ = std::fs::remove_dir_all(d);
        }
        for d in &self.0[1..] {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn image_pull_over_tls_from_a_registry_with_a_private_ca() {
    if !root_ok() {
        return;
    }
    let Some(reg) = Registry::start_tls() else {
        return;
    };
    reg.push(&format!("oci-archive:{}", oci_tar().display()), "bb:1");
    let ca_dir = reg.ca_dir.clone().unwrap();
    let authority = format!("127.0.0.1:{}", reg.port);
    let name = format!("{authority}/bb:1");
    let s = Storage::new();

    // localhost speaks TLS here, so there is no fall back to HTTP: without its CA, the
    // certificate error, naming the registry.
    let o = s.out(&["image", "pull", &name]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{o:?}");
    assert!(
        err.contains(&format!(
            "tls connection to {authority}: certificate not trusted (unknown issuer); \
             hint: add its CA with --cert-dir DIR or as /etc/containers/certs.d/{authority}/ca.crt"
        )),
        "{err}"
    );
    assert_eq!(s.snapshot().1.len(), 0);
    // --insecure is plain HTTP, which a TLS registry refuses.
    assert!(
        !s.out(&["image", "pull", "--insecure", &name])
            .status
            .success()
    );

    // With its CA.
    assert_eq!(
        s.ok(&[
            "image",
            "pull",
            "--cert-dir",
            ca_dir.to_str().unwrap(),
            &name
        ]),
        format!("Loaded image: {name}\n")
    );
    let i: serde_json::Value = serde_json::from_str(&s.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(i[0]["LayerDirs"].as_array().unwrap().len(), 2);

    // The CA in /etc/containers/certs.d/HOST:PORT/ is trusted without a flag (what pods get).
    let certs_d = Path::new("/etc/containers/certs.d");
    let mut made = vec![certs_d.join(&authority)];
    for d in [certs_d, Path::new("/etc/containers")] {
        if !d.exists() {
            made.push(d.to_path_buf());
        }
    }
    std::fs::create_dir_all(&made[0]).unwrap();
    let _cleanup = EtcCertsDir(made);
    std::fs::copy(
        ca_dir.join("ca.crt"),
        certs_d.join(&authority).join("ca.crt"),
    )
    .unwrap();
    let s2 = Storage::new();
    assert_eq!(
        s2.ok(&["image", "pull", &name]),
        format!("Loaded image: {name}\n")
    );
    // --cert-dir replaces certs.d (as podman's does): a directory without the CA fails.
    let empty = tempfile::tempdir().unwrap();
    let o = s2.out(&[
        "image",
        "pull",
        "--cert-dir",
        empty.path().to_str().unwrap(),
        &name,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate not trusted"),
        "{o:?}"
    );
}

#[test]
fn image_full_disk_fails_cleanly() {
    if !root_ok() {
        return;
    }
    let s = Storage::new();
    // 1 MiB: busybox alone (about 2 MB) does not fit.
    nix::mount::mount(
        Some("tmpfs"),
        s.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let m = Mounted(s.path().to_path_buf());
    let before = s.snapshot();
    let o = s.out(&["image", "import", docker_tar().to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("escapes"), "{err}");
    assert_eq!(s.snapshot(), before);
    drop(m);
}

#[test]
fn image_import_of_skopeo_written_archives() {
    if !root_ok() {
        return;
    }
    let have = Command::new("sh")
        .args(["-c", "command -v skopeo"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !can_run("skopeo (apt-get install skopeo)", have) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    let src = format!("docker-archive:{}", docker_tar().display());
    let s = Storage::new();
    for (dest, extra, name) in [
        (format!("oci:{}:v1", d("oci")), None, "localhost/s/oci:v1"),
        (
            format!("oci:{}:v2", d("zstd")),
            Some("zstd"),
            "localhost/s/zstd:v2",
        ),
        (
            format!("oci-archive:{}:quay.io/s/ociarchive:3", d("oa.tar")),
            None,
            "",
        ),
        (
            format!("docker-archive:{}:s/docker:4", d("da.tar")),
            None,
            "",
        ),
    ] {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet"]);
        if let Some(f) = extra {
            c.args(["--dest-compress-format", f]);
        }
        let o = captured({
            c.arg(&src).arg(&dest);
            c
        });
        assert!(
            o.status.success(),
            "skopeo {dest}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let path = dest.split(':').nth(1).unwrap().to_string();
        let args: Vec<&str> = if name.is_empty() {
            vec![]
        } else {
            vec!["--name", name]
        };
        s.import(Path::new(&path), &args);
    }
    let ls = s.ok(&["image", "ls"]);
    for n in [
        "localhost/s/oci",
        "localhost/s/zstd",
        "quay.io/s/ociarchive",
        "docker.io/s/docker",
    ] {
        assert!(ls.contains(n), "{n} missing: {ls}");
    }
    // skopeo rewrites the config for OCI destinations (another image ID), but the layers are the
    // same content: stored once.
    assert_eq!(s.snapshot().2.len(), 2, "{ls}");
}

/// Pod tests with their own root and image store.
type PodEnv = crate::common::Peapod;

/// A container's status `state` in the pod's status.
fn state(p: &PodEnv, pod: &str, c: &str) -> serde_json::Value {
    let v = p.inspect(pod);
    v["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == c)
        .map(|s| s["state"].clone())
        .unwrap_or_default()
}

/// `reason: message` lines of the pod's events.
fn events(p: &PodEnv, pod: &str) -> Vec<String> {
    p.events(pod)
        .into_iter()
        .map(|(r, m)| format!("{r}: {m}"))
        .collect()
}

#[test]
fn pod_runs_containers_from_the_image_store() {
    if !root_ok() {
        return;
    }
    let p = PodEnv::new();
    p.ok(&[
        "image",
        "import",
        oci_tar().to_str().unwrap(),
        "--name",
        "busybox:1.36",
    ]);
    p.run(r#"
apiVersion: v1
kind: Pod
metadata: {name: img}
spec:
  restartPolicy: Never
  containers:
    - name: entrypoint
      image: busybox:1.36
    - name: args
      image: busybox:1.36
      imagePullPolicy: Never
      args: ["echo $GREETING from $(pwd); test -e /etc/motd && echo motd || echo no-motd; touch /w && echo writable"]
    - name: missing
      image: nosuch:1.0
      imagePullPolicy: Never
"#,
    );
    let done = |c: &str| state(&p, "img", c)["terminated"]["exitCode"] == 0;
    p.wait("both image containers to complete", 90, || {
        done("entrypoint") && done("args")
    });
    assert_eq!(
        p.ok(&["pod", "logs", "img", "-c", "entrypoint"]),
        "hello from busybox\n"
    );
    // Image Env and WorkingDir apply; layer 2's whiteout hides /etc/motd; the rootfs is writable.
    assert_eq!(
        p.ok(&["pod", "logs", "img", "-c", "args"]),
        "hello from /tmp\nno-motd\nwritable\n"
    );
    let w = state(&p, "img", "missing");
    assert_eq!(w["waiting"]["reason"], "ErrImageNeverPull", "{w}");
    assert_eq!(
        w["waiting"]["message"],
        "Container image \"nosuch:1.0\" is not present with pull policy of Never"
    );
    assert!(events(&p, "img").contains(
        &"Pulled: Container image \"busybox:1.36\" already present on machine".to_string()
    ));
    // The pod still runs (one container waits): its image cannot be removed.
    let o = p.cmd(&["image", "rm", "busybox:1.36"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("is in use by pod `img`"),
        "{o:?}"
    );
    let cg = p.cgroup("img");
    p.ok(&["pod", "rm", "-f", "img"]);
    crate::pods::nothing_left(p.root.path(), "img", &cg);
    p.ok(&["image", "rm", "busybox:1.36"]);
}

#[test]
fn pod_pulls_its_image_by_policy() {
    if !root_ok() {
        return;
    }
    let Some(reg) = Registry::start() else {
        return;
    };
    reg.push(&format!("oci-archive:{}", oci_tar().display()), "bb:1");
    let p = PodEnv::new();
    let image = format!("127.0.0.1:{}/bb:1", reg.port);
    let pod = |name: &str, policy: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{peapod.io/restart-backoff: '1s,2s'}}\n\
             spec:\n  restartPolicy: Never\n  containers:\n  - {{name: c, image: '{image}', imagePullPolicy: {policy}}}\n"
        )
    };
    // IfNotPresent with the image absent: pulled, then run.
    p.run(&pod("a", "IfNotPresent", &image));
    p.wait("a to complete", 90, || {
        state(&p, "a", "c")["terminated"]["exitCode"] == 0
    });
    let ev = events(&p, "a");
    assert!(
        ev.contains(&format!("Pulling: Pulling image \"{image}\"")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.starts_with(&format!(
            "Pulled: Successfully pulled image \"{image}\" in "
        ))),
        "{ev:?}"
    );
    // IfNotPresent with the image present: no pull.
    p.run(&pod("b", "IfNotPresent", &image));
    p.wait("b to complete", 90, || {
        state(&p, "b", "c")["terminated"]["exitCode"] == 0
    });
    assert!(!events(&p, "b").iter().any(|e| e.starts_with("Pulling")));
    // Always: pulled again.
    p.run(&pod("c", "Always", &image));
    p.wait("c to complete", 90, || {
        state(&p, "c", "c")["terminated"]["exitCode"] == 0
    });
    assert!(events(&p, "c").iter().any(|e| e.starts_with("Pulling")));
    // A tag the registry does not have: ErrImagePull, then ImagePullBackOff.
    let gone = format!("127.0.0.1:{}/bb:gone", reg.port);
    p.run(&pod("d", "IfNotPresent", &gone));
    // ErrImagePull shows for a second (too short to poll for reliably); its event stays.
    // One snapshot: with a 1 s back-off the pod alternates between the two reasons.
    let mut w = serde_json::Value::Null;
    p.wait("ImagePullBackOff", 90, || {
        w = state(&p, "d", "c");
        w["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert_eq!(
        w["waiting"]["message"],
        format!("Back-off pulling image \"{gone}\""),
        "{w}"
    );
    let ev = events(&p, "d");
    assert!(
        ev.iter()
            .any(|e| e.starts_with(&format!("Failed: Failed to pull image \"{gone}\": "))),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"Failed: Error: ErrImagePull".to_string()),
        "{ev:?}"
    );
}
