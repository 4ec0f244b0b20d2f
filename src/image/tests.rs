//! Unit tests of the image store: crafted archives built here, imported into temp stores.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde_json::json;

use super::digest::sha256;
use super::unpack::{EntryMeaning, classify, unpack_layer};
use super::*;

fn uid() -> u64 {
    u64::from(nix::unistd::geteuid().as_raw())
}

fn gid() -> u64 {
    u64::from(nix::unistd::getegid().as_raw())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tar entry for crafted layers.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// Set the raw name bytes, bypassing tar::Builder's own `..` checks (an attacker's tar would).
fn raw_name(h: &mut tar::Header, name: &str) {
    let n = &mut h.as_old_mut().name;
    n.fill(0);
    n[..name.len()].copy_from_slice(name.as_bytes());
}

fn raw_link(h: &mut tar::Header, target: &str) {
    let n = &mut h.as_old_mut().linkname;
    n.fill(0);
    n[..target.len()].copy_from_slice(target.as_bytes());
}

fn layer_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(uid());
        h.set_gid(gid());
        h.set_mtime(1_700_000_000);
        let (name, data): (&str, &[u8]) = match e {
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                (n, d)
            }
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                (n, &[])
            }
            E::Symlink(n, t) | E::Hardlink(n, t) => {
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                h.set_size(0);
                raw_link(&mut h, t);
                (n, &[])
            }
        };
        raw_name(&mut h, name);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd_c(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch(),
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hi"],
            "Env": ["PATH=/bin", "A=1"],
            "WorkingDir": "/work",
            "User": "1000:1000",
            "StopSignal": "SIGQUIT"
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

/// Write an OCI layout into `dir` with these (tar, media-type suffix, compressed) layers.
fn oci_layout(dir: &Path, layers: &[(Vec<u8>, &str, Vec<u8>)], name: Option<&str>) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let diff_ids: Vec<String> = layers.iter().map(|(t, _, _)| sha256(t)).collect();
    let config = config_json(&diff_ids);
    let cd = put(&config);
    let ls: Vec<_> = layers
        .iter()
        .map(|(_, suffix, c)| {
            json!({"mediaType": format!("application/vnd.oci.image.layer.v1.tar{suffix}"),
                   "digest": put(c), "size": c.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": ls
    }))
    .unwrap();
    let md = put(&manifest);
    let mut desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()});
    if let Some(n) = name {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": n});
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    md
}

/// A docker-archive tar (`docker save`) of these layer files (already compressed or not).
fn docker_archive(path: &Path, layers: &[(Vec<u8>, Vec<u8>)], tags: &[&str]) {
    let diff_ids: Vec<String> = layers.iter().map(|(t, _)| sha256(t)).collect();
    let config = config_json(&diff_ids);
    let cname = format!("{}.json", &sha256(&config)[7..]);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, (_, f)) in layers.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        add(&n, f);
        names.push(n);
    }
    add(&cname, &config);
    let m = json!([{"Config": cname, "RepoTags": tags, "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    b.finish().unwrap();
}

fn base_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("bin/"),
        E::File("bin/hello", b"hello\n"),
        E::File("etc/gone", b"deleted in layer 2\n"),
        E::Dir("var/"),
        E::File("var/old", b"hidden by opaque\n"),
        E::Hardlink("bin/hello2", "bin/hello"),
        E::Symlink("bin/abs", "/etc/passwd"),
    ])
}

fn top_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("etc/"),
        E::File("etc/.wh.gone", b""),
        E::Dir("var/"),
        E::File("var/.wh..wh..opq", b""),
        E::File("var/new", b"new\n"),
        E::File("etc/top", b"top\n"),
    ])
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Blobs, layers, temp dirs and names: what "the store is unchanged" compares.
fn snapshot(store: &Store) -> (Vec<String>, Vec<String>, Vec<String>, String) {
    let r = store.root();
    (
        listing(&r.join("blobs/sha256")),
        listing(&r.join("layers")),
        listing(&r.join("tmp")),
        std::fs::read_to_string(r.join("repositories.json")).unwrap_or_default(),
    )
}

#[test]
fn whiteout_names_map_to_overlay_forms() {
    assert_eq!(
        classify(Path::new("./etc/.wh.passwd")).unwrap(),
        EntryMeaning::Whiteout(PathBuf::from("etc/passwd"))
    );
    assert_eq!(
        classify(Path::new("var/.wh..wh..opq")).unwrap(),
        EntryMeaning::Opaque(PathBuf::from("var"))
    );
    assert_eq!(
        classify(Path::new(".wh..wh..opq")).unwrap(),
        EntryMeaning::Opaque(PathBuf::from(""))
    );
    assert_eq!(
        classify(Path::new("a/.wh..wh.plnk")).unwrap(),
        EntryMeaning::Skip
    );
    assert_eq!(classify(Path::new("./")).unwrap(), EntryMeaning::Root);
    assert_eq!(
        classify(Path::new("/abs/x")).unwrap(),
        EntryMeaning::Path(PathBuf::from("abs/x"))
    );
    for bad in ["../x", "a/../../x", "a/.wh..."] {
        assert!(
            matches!(classify(Path::new(bad)), Err(ImageError::Escape { .. })),
            "{bad}"
        );
    }
}

#[test]
fn entries_escaping_the_layer_are_rejected() {
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", layer_tar(&[E::File("../evil", b"x")])),
        (
            "nested dotdot",
            layer_tar(&[E::Dir("a/"), E::File("a/../../evil", b"x")]),
        ),
        (
            "absolute symlink dir",
            layer_tar(&[E::Symlink("link", &o), E::File("link/evil", b"x")]),
        ),
        (
            "relative symlink dir",
            layer_tar(&[
                E::Symlink("up", "../../../../../../../../.."),
                E::File(&format!("up{o}/evil"), b"x"),
            ]),
        ),
        (
            "hardlink dotdot",
            layer_tar(&[E::Hardlink("h", "../../../../../../etc/passwd")]),
        ),
        (
            "hardlink through symlink",
            layer_tar(&[E::Symlink("s", "/etc"), E::Hardlink("h", "s/passwd")]),
        ),
        (
            "whiteout through symlink",
            layer_tar(&[E::Symlink("s", &o), E::File("s/.wh.victim", b"")]),
        ),
        (
            "opaque through symlink",
            layer_tar(&[E::Symlink("s", &o), E::File("s/.wh..wh..opq", b"")]),
        ),
    ];
    std::fs::write(outside.path().join("victim"), b"keep").unwrap();
    for (what, t) in cases {
        let dest = tempfile::tempdir().unwrap();
        let r = unpack_layer(&mut t.as_slice(), dest.path());
        assert!(matches!(r, Err(ImageError::Escape { .. })), "{what}: {r:?}");
        assert_eq!(listing(outside.path()), ["victim"], "{what}");
        assert!(!dest.path().join("h").exists(), "{what}");
    }
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn whiteouts_and_opaque_dirs_unpack_as_overlayfs_does() {
    if !is_root() {
        eprintln!("SKIP: whiteout devices and trusted.* xattrs need root");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let u = unpack_layer(&mut top_layer().as_slice(), dest.path()).unwrap();
    assert_eq!((u.whiteouts, u.opaque_dirs), (1, 1));
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(dest.path().join("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert_eq!(
        xattr::get(dest.path().join("var"), unpack::OPAQUE_XATTR).unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(
        std::fs::read(dest.path().join("var/new")).unwrap(),
        b"new\n"
    );
    assert!(!dest.path().join("etc/.wh.gone").exists());
    assert!(!dest.path().join("var/.wh..wh..opq").exists());
}

#[test]
fn import_oci_layout_then_resolve_rm_prune() {
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (base_layer(), layer_tar(&[E::File("etc/top", b"top\n")]));
    let md = oci_layout(
        src.path(),
        &[
            (a.clone(), "+gzip", gzip(&a)),
            (b.clone(), "+zstd", zstd_c(&b)),
        ],
        Some("busybox:1.36"),
    );
    let rep = store.import(src.path(), &ImportOptions::default()).unwrap();
    assert_eq!(
        rep.images,
        [("docker.io/library/busybox:1.36".to_string(), md.clone())]
    );
    assert_eq!(rep.layers_unpacked, 2);
    let info = store.resolve("busybox:1.36").unwrap().unwrap();
    assert_eq!(info.digest, md);
    assert_eq!(info.layer_dirs.len(), 2);
    assert_eq!(
        std::fs::read(info.layer_dirs[0].join("bin/hello2")).unwrap(),
        b"hello\n"
    );
    assert_eq!(
        std::fs::read_link(info.layer_dirs[0].join("bin/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read(info.layer_dirs[1].join("etc/top")).unwrap(),
        b"top\n"
    );
    assert_eq!(info.size, 6 + 19 + 17 + 4);
    assert!(store.resolve("busybox").unwrap().is_none());
    assert!(store.resolve(&format!("busybox@{md}")).unwrap().is_some());
    assert!(store.resolve(&info.id[7..19]).unwrap().is_some());
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.list().unwrap()[0].size, info.size);

    // A second import of the same image reuses both layers; a second name shares them.
    let rep = store
        .import(
            src.path(),
            &ImportOptions {
                name: Some("localhost/other:v2".into()),
                progress: None,
            },
        )
        .unwrap();
    assert_eq!((rep.layers_unpacked, rep.layers_reused), (0, 2));
    assert_eq!(store.list().unwrap().len(), 2);
    // An image ID names the image under all its names.
    let mut removed = store.remove(&info.id[7..15]).unwrap();
    removed.sort();
    assert_eq!(
        removed,
        ["docker.io/library/busybox:1.36", "localhost/other:v2"]
    );
    assert!(listing(&store.root().join("layers")).is_empty());
    store.import(src.path(), &ImportOptions::default()).unwrap();
    store
        .import(
            src.path(),
            &ImportOptions {
                name: Some("localhost/other:v2".into()),
                progress: None,
            },
        )
        .unwrap();
    assert_eq!(
        store.remove("localhost/other:v2").unwrap(),
        ["localhost/other:v2"]
    );
    assert_eq!(listing(&store.root().join("layers")).len(), 2);
    store.remove("busybox:1.36").unwrap();
    assert!(listing(&store.root().join("layers")).is_empty());
    assert!(listing(&store.root().join("blobs/sha256")).is_empty());
    assert!(matches!(
        store.remove("busybox:1.36"),
        Err(ImageError::NotFound(_))
    ));
    // A damaged image (a layer directory gone) is listed, refused by resolve, removable.
    store.import(src.path(), &ImportOptions::default()).unwrap();
    let info = store.resolve("busybox:1.36").unwrap().unwrap();
    std::fs::remove_dir_all(info.layer_dirs[1].parent().unwrap()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    let e = store.resolve("busybox:1.36").unwrap_err();
    assert!(
        e.to_string().contains("hint: import the image again"),
        "{e}"
    );
    store.remove("busybox:1.36").unwrap();
    std::fs::create_dir(store.root().join("tmp/import-stale")).unwrap();
    assert_eq!(store.prune().unwrap().temp_dirs, 1);
}

#[test]
fn import_docker_archive_with_plain_gzip_and_zstd_layers() {
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("img.tar");
    let (a, b, c) = (
        base_layer(),
        layer_tar(&[E::File("x", b"x")]),
        layer_tar(&[E::File("y", b"y")]),
    );
    docker_archive(
        &tarball,
        &[
            (a.clone(), a.clone()),
            (b.clone(), gzip(&b)),
            (c.clone(), zstd_c(&c)),
        ],
        &["example.com/app:1", "app:latest"],
    );
    let rep = store.import(&tarball, &ImportOptions::default()).unwrap();
    let names: Vec<&str> = rep.images.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["example.com/app:1", "docker.io/library/app:latest"]);
    let info = store.resolve("app").unwrap().unwrap();
    assert_eq!(info.layer_dirs.len(), 3);
    assert_eq!(std::fs::read(info.layer_dirs[2].join("y")).unwrap(), b"y");
    // The synthesized manifest describes the blobs as they were.
    let m: oci_spec::image::ImageManifest =
        serde_json::from_slice(&store.read_blob(&info.digest).unwrap()).unwrap();
    let types: Vec<String> = m
        .layers()
        .iter()
        .map(|l| l.media_type().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ]
    );
    // Same archive again: same manifest digest, one image.
    let again = store.import(&tarball, &ImportOptions::default()).unwrap();
    assert_eq!(again.images, rep.images);
}

#[test]
fn corrupt_or_truncated_archives_leave_the_store_unchanged() {
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let keep = tempfile::tempdir().unwrap();
    let k = layer_tar(&[E::File("keep", b"k")]);
    oci_layout(keep.path(), &[(k.clone(), "", k.clone())], Some("keep:1"));
    store
        .import(keep.path(), &ImportOptions::default())
        .unwrap();
    let before = snapshot(&store);

    // A layer blob altered after the manifest was written: digest mismatch.
    let src = tempfile::tempdir().unwrap();
    let a = base_layer();
    let ga = gzip(&a);
    oci_layout(
        src.path(),
        &[(a.clone(), "+gzip", ga.clone())],
        Some("bad:1"),
    );
    let blob = src.path().join("blobs/sha256").join(&sha256(&ga)[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff; // the gzip trailer (CRC): still decompresses until the end
    std::fs::write(&blob, &bytes).unwrap();
    let e = store
        .import(src.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, ImageError::DigestMismatch { .. } | ImageError::Io { .. }),
        "{e}"
    );
    assert_eq!(snapshot(&store), before);

    // The config's diff_id names other content than the layer holds.
    let src2 = tempfile::tempdir().unwrap();
    let other = layer_tar(&[E::File("other", b"o")]);
    oci_layout(src2.path(), &[(other, "", a.clone())], Some("bad:2"));
    let e = store
        .import(src2.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("diff_id"), "{e}");
    assert_eq!(snapshot(&store), before);

    // A docker archive cut in the middle of a layer.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("d.tar");
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let l = layer_tar(&[E::File("big", &big)]);
    docker_archive(&t, &[(l.clone(), l)], &["trunc:1"]);
    let full = std::fs::read(&t).unwrap();
    for cut in [full.len() / 2, 700, full.len() - 1500] {
        std::fs::write(&t, &full[..cut]).unwrap();
        assert!(
            store.import(&t, &ImportOptions::default()).is_err(),
            "cut {cut}"
        );
        assert_eq!(snapshot(&store), before, "cut {cut}");
    }

    // Neither format; a compressed archive cut short.
    assert!(matches!(
        store.import(dir.path(), &ImportOptions::default()),
        Err(ImageError::Format { .. })
    ));
    let gz = gzip(&full);
    std::fs::write(&t, &gz[..gz.len() - 100]).unwrap();
    let e = store.import(&t, &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("decompress archive"), "{e}");
    assert_eq!(snapshot(&store), before);
    // Whole, it imports (`docker save | gzip`), as zstd does.
    std::fs::write(&t, &gz).unwrap();
    store.import(&t, &ImportOptions::default()).unwrap();
    std::fs::write(&t, zstd_c(&full)).unwrap();
    store.import(&t, &ImportOptions::default()).unwrap();
    assert!(store.resolve("trunc:1").unwrap().is_some());
    assert!(listing(&store.root().join("tmp")).is_empty());
}

#[test]
fn unsupported_inputs_name_what_is_unsupported() {
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = layer_tar(&[E::File("a", b"a")]);
    oci_layout(src.path(), &[(a.clone(), "", a.clone())], None);
    let e = store
        .import(src.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("hint: pass --name"), "{e}");
    // A bare tag in org.opencontainers.image.ref.name (skopeo's oci:DIR:v1) is not a name.
    oci_layout(src.path(), &[(a.clone(), "", a.clone())], Some("v1"));
    let e = store
        .import(src.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("hint: pass --name NAME:v1"), "{e}");
    let e = store
        .import(
            src.path(),
            &ImportOptions {
                name: Some("host".into()),
                progress: None,
            },
        )
        .unwrap_err();
    assert!(matches!(e, ImageError::Reserved(_)), "{e}");
    // An index whose only manifest is for another platform.
    let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "1".repeat(64)), "size": 10,
            "platform": {"os": "linux", "architecture": "s390x"}}]});
    let data = serde_json::to_vec(&idx).unwrap();
    let d = sha256(&data);
    std::fs::write(src.path().join("blobs/sha256").join(&d[7..]), &data).unwrap();
    std::fs::write(
        src.path().join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": data.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi:1"}}]}))
        .unwrap(),
    )
    .unwrap();
    let e = store
        .import(src.path(), &ImportOptions::default())
        .unwrap_err();
    assert!(
        e.to_string().contains("no linux/") && e.to_string().contains("linux/s390x"),
        "{e}"
    );
}

fn cfg(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfiguration {
    let mut c = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {}});
    if let Some(e) = entrypoint {
        c["config"]["Entrypoint"] = json!(e);
    }
    if let Some(x) = cmd {
        c["config"]["Cmd"] = json!(x);
    }
    c["config"]["Env"] = json!(["PATH=/usr/bin", "A=image"]);
    c["config"]["WorkingDir"] = json!("/srv");
    serde_json::from_value(c).unwrap()
}

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[test]
fn merge_process_follows_kubernetes() {
    let c = cfg(Some(&["/entry", "-x"]), Some(&["cmd", "arg"]));
    let (cmd, args) = (v(&["/bin/sh", "-c"]), v(&["echo hi"]));
    assert_eq!(
        merge_process(&c, None, None),
        v(&["/entry", "-x", "cmd", "arg"])
    );
    assert_eq!(merge_process(&c, Some(&cmd), None), v(&["/bin/sh", "-c"]));
    assert_eq!(
        merge_process(&c, Some(&cmd), Some(&args)),
        v(&["/bin/sh", "-c", "echo hi"])
    );
    assert_eq!(
        merge_process(&c, None, Some(&args)),
        v(&["/entry", "-x", "echo hi"])
    );
    // Empty lists count as absent (the CRI cannot tell them apart).
    assert_eq!(
        merge_process(&c, Some(&[]), Some(&[])),
        v(&["/entry", "-x", "cmd", "arg"])
    );
    let only_cmd = cfg(None, Some(&["/bin/sh"]));
    assert_eq!(merge_process(&only_cmd, None, None), v(&["/bin/sh"]));
    assert_eq!(merge_process(&only_cmd, None, Some(&args)), v(&["echo hi"]));
    let blank = cfg(Some(&[""]), Some(&["/bin/true"]));
    assert_eq!(merge_process(&blank, None, None), v(&["/bin/true"]));
    assert!(merge_process(&cfg(None, None), None, None).is_empty());
}

#[test]
fn env_workdir_user_stop_signal() {
    let c = cfg(None, None);
    let env = [
        ("A".to_string(), "pod".to_string()),
        ("B".to_string(), "2".to_string()),
    ];
    assert_eq!(merge_env(&c, &env), v(&["PATH=/usr/bin", "A=pod", "B=2"]));
    assert_eq!(working_dir(&c, None), "/srv");
    assert_eq!(working_dir(&c, Some("/x")), "/x");
    let none = cfg(None, None);
    assert_eq!(user(&none), None);
    assert_eq!(stop_signal(&none), None);
    let full: ImageConfiguration = serde_json::from_slice(&config_json(&[])).unwrap();
    assert_eq!(user(&full).as_deref(), Some("1000:1000"));
    assert_eq!(stop_signal(&full).as_deref(), Some("SIGQUIT"));
}

#[test]
fn overlay_options_escape_and_respect_the_page_limit() {
    let l = [PathBuf::from("/a"), PathBuf::from("/b:c,d")];
    assert_eq!(
        overlay::legacy_options(&l, Some((Path::new("/u"), Path::new("/w")))).unwrap(),
        "lowerdir=/b\\:c\\,d:/a,upperdir=/u,workdir=/w,index=off"
    );
    let many: Vec<PathBuf> = (0..100)
        .map(|i| PathBuf::from(format!("/var/lib/peapod/images/layers/{i:064}/diff")))
        .collect();
    let e = overlay::legacy_options(&many, None).unwrap_err();
    assert!(e.contains("over the kernel's 4096"), "{e}");
}

/// A registry on 127.0.0.1 that wants a bearer token, redirects blob GETs and sends one body
/// chunked: enough of the distribution API for `pull`.
struct FakeRegistry {
    port: u16,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeRegistry {
    fn start(docs: std::collections::HashMap<String, (String, Vec<u8>)>) -> FakeRegistry {
        use std::io::{BufRead, BufReader};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes far fewer requests.
            for conn in l.incoming().take(200) {
                let Ok(mut c) = conn else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line).unwrap();
                // A TLS ClientHello (pull tries HTTPS first on localhost): a plain-HTTP server's
                // answer, as Go's net/http gives it.
                let Some(line) = String::from_utf8(line)
                    .ok()
                    .filter(|l| l.starts_with("GET "))
                else {
                    let _ = c.write_all(
                        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n400 Bad Request",
                    );
                    continue;
                };
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let mut auth = false;
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    if l.trim().is_empty() {
                        break;
                    }
                    auth |= l
                        .to_ascii_lowercase()
                        .starts_with("authorization: bearer good");
                }
                h.lock().unwrap().push(path.clone());
                let resp: Vec<u8> = if path.starts_with("/token?") {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"token\":\"good\"}".to_vec()
                } else if !auth {
                    format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:test/bb:pull\"\r\nContent-Length: 0\r\n\r\n").into_bytes()
                } else if let Some(d) = path.strip_prefix("/v2/test/bb/blobs/") {
                    format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: /data/{d}\r\nContent-Length: 0\r\n\r\n").into_bytes()
                } else if let Some((ct, body)) = docs.get(&path) {
                    let mut v = if path.starts_with("/data/") {
                        // chunked, in two chunks
                        let (a, b) = body.split_at(body.len() / 2);
                        let mut v =
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                        for part in [a, b] {
                            v.extend(format!("{:x}\r\n", part.len()).as_bytes());
                            v.extend(part);
                            v.extend(b"\r\n");
                        }
                        v.extend(b"0\r\n\r\n");
                        v
                    } else {
                        let mut v = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        v.extend(body);
                        v
                    };
                    std::mem::take(&mut v)
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 62\r\n\r\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"not known\"}]}".to_vec()
                };
                let _ = c.write_all(&resp);
            }
        });
        FakeRegistry { port, hits }
    }
}

#[test]
fn pull_from_a_registry_with_token_auth_redirects_and_an_index() {
    let a = base_layer();
    let b = top_layer();
    let (ga, gb) = (gzip(&a), gzip(&b));
    let config = config_json(&[sha256(&a), sha256(&b)]);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&ga), "size": ga.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&gb), "size": gb.len()}
        ]
    }))
    .unwrap();
    let md = sha256(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "2".repeat(64)), "size": 1, "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(), "platform": {"os": "linux", "architecture": arch()}}
        ]
    }))
    .unwrap();
    let oci = |s: &str| format!("application/vnd.oci.image.{s}.v1+json");
    let mut docs = std::collections::HashMap::new();
    docs.insert("/v2/test/bb/manifests/1".into(), (oci("index"), index));
    docs.insert(
        format!("/v2/test/bb/manifests/{md}"),
        (oci("manifest"), manifest),
    );
    for blob in [&config, &ga, &gb] {
        docs.insert(
            format!("/data/{}", sha256(blob)),
            ("application/octet-stream".into(), blob.clone()),
        );
    }
    let reg = FakeRegistry::start(docs);
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let name = format!("127.0.0.1:{}/test/bb:1", reg.port);
    let rep = store
        .pull(&name, &registry::PullOptions::default())
        .unwrap();
    assert_eq!(rep.images, [(name.clone(), md.clone())]);
    assert_eq!(rep.layers_unpacked, 2);
    let info = store.resolve(&name).unwrap().unwrap();
    assert_eq!(info.layer_dirs.len(), 2);
    assert!(info.layer_dirs[0].join("bin/hello").is_file());
    let by_digest = format!("127.0.0.1:{}/test/bb@{md}", reg.port);
    assert!(store.resolve(&by_digest).unwrap().is_some());

    // Pulled again (imagePullPolicy: Always): only the manifests, nothing re-downloaded.
    reg.hits.lock().unwrap().clear();
    let rep = store
        .pull(&name, &registry::PullOptions::default())
        .unwrap();
    assert_eq!((rep.layers_unpacked, rep.layers_reused), (0, 2));
    let hits = reg.hits.lock().unwrap().clone();
    assert!(
        !hits.iter().any(|h| h.contains(&sha256(&ga)[7..])),
        "{hits:?}"
    );
    assert!(listing(&store.root().join("tmp")).is_empty());

    // By digest; an unknown tag gives the registry's own error.
    store
        .pull(&by_digest, &registry::PullOptions::default())
        .unwrap();
    let e = store
        .pull(
            &format!("127.0.0.1:{}/test/bb:nope", reg.port),
            &registry::PullOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 404 MANIFEST_UNKNOWN"), "{e}");
}

#[test]
fn pull_refuses_a_blob_that_does_not_match_its_digest() {
    let a = layer_tar(&[E::File("a", b"a")]);
    let config = config_json(&[sha256(&a)]);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&a), "size": a.len()}]
    }))
    .unwrap();
    let mut evil = a.clone();
    evil[600] ^= 1;
    let mut docs = std::collections::HashMap::new();
    docs.insert(
        "/v2/test/bb/manifests/1".into(),
        (
            "application/vnd.oci.image.manifest.v1+json".into(),
            manifest,
        ),
    );
    docs.insert(
        format!("/data/{}", sha256(&config)),
        (String::new(), config.clone()),
    );
    docs.insert(format!("/data/{}", sha256(&a)), (String::new(), evil));
    let reg = FakeRegistry::start(docs);
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let before = snapshot(&store);
    let e = store
        .pull(
            &format!("127.0.0.1:{}/test/bb:1", reg.port),
            &registry::PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn file_capabilities_devices_and_filtered_xattrs_survive_unpacking() {
    if !is_root() {
        eprintln!("SKIP: setting security.* xattrs, owners and device nodes needs root");
        return;
    }
    // cap_net_raw+ep, VFS_CAP_REVISION_2 (linux/capability.h: struct vfs_cap_data).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.security.capability", &cap[..]),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice()),
        ("SCHILY.xattr.user.note", b"hi".as_slice()),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("bin/ping").unwrap();
    h.set_size(4);
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, &b"ping"[..]).unwrap();
    for (name, kind, mode) in [
        ("dev/null", tar::EntryType::Char, 0o666),
        ("run/fifo", tar::EntryType::Fifo, 0o600),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(mode);
        h.set_uid(7);
        h.set_gid(8);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    let t = b.into_inner().unwrap();
    let dest = tempfile::tempdir().unwrap();
    unpack_layer(&mut t.as_slice(), dest.path()).unwrap();
    let ping = dest.path().join("bin/ping");
    assert_eq!(
        xattr::get(&ping, "security.capability").unwrap().as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        xattr::get(&ping, "user.note").unwrap().as_deref(),
        Some(&b"hi"[..])
    );
    assert_eq!(xattr::get(&ping, "trusted.overlay.redirect").unwrap(), None);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert_eq!(std::fs::metadata(&ping).unwrap().mode() & 0o7777, 0o4755);
    let null = std::fs::symlink_metadata(dest.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.uid(), null.gid(), null.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 7, 8, 0o666)
    );
    let fifo = std::fs::symlink_metadata(dest.path().join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);
}

#[test]
fn an_oversized_json_document_is_refused_by_name() {
    // Found while bounding untrusted documents: read_small used to cut a larger file at
    // 16 MiB silently, which then failed as "EOF while parsing". Checked: without the size
    // check the error is that parse error.
    let storage = tempfile::tempdir().unwrap();
    let store = Store::open(storage.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut index = br#"{"schemaVersion":2,"manifests":[],"annotations":{"x":""#.to_vec();
    index.resize(16 << 20, b'a');
    index.extend_from_slice(br#""}}"#);
    std::fs::write(src.path().join("index.json"), &index).unwrap();
    let e = store
        .import(src.path(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("index.json in") && e.contains("is larger than 16777216 bytes, the limit"),
        "{e}"
    );
}
