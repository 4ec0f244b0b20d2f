//! Build facts for `--version` (runc prints its commit and its Go version): the git commit of
//! the source (`PEAPOD_GIT_COMMIT` when set, e.g. by a packager building from a tarball;
//! `unknown` outside a git checkout) and the rustc that compiled it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=PEAPOD_GIT_COMMIT");
    let commit = match std::env::var("PEAPOD_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a detached or switched checkout) and the
            // branch it names (a commit); packed refs too.
            let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
            if let Some(r) = git(&dir, &["rev-parse", "--symbolic-full-name", "HEAD"]) {
                watch.push(r);
            }
            for w in watch {
                if let Some(p) = git(
                    &dir,
                    &["rev-parse", "--path-format=absolute", "--git-path", &w],
                ) && Path::new(&p).exists()
                {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            git(&dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=PEAPOD_GIT_COMMIT={commit}");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            // "rustc 1.91.0 (f8297e351 2025-10-28)" -> "rustc 1.91.0"
            let mut w = v.split_whitespace();
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PEAPOD_RUSTC_VERSION={version}");
}
