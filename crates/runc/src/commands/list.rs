use std::path::Path;

use anyhow::Result;

use crate::cli::oci::List;
use crate::output::{self, Listing, Output, Row};
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &List) -> Result<i32> {
    // runc: `open ROOT: no such file or directory`, status 1, when --root is missing (Go's
    // words for the errno, which scripts match).
    if let Err(e) = std::fs::metadata(root) {
        anyhow::bail!("open {}: {}", root.display(), go_errno_text(&e));
    }
    let all = lifecycle::list(root)?;
    if args.quiet {
        for (s, _) in &all {
            crate::outln!("{}", s.id);
        }
        return Ok(0);
    }
    let rows = all
        .iter()
        .map(|(s, st)| {
            let o = s.to_oci(*st);
            Row {
                name: s.id.clone(),
                cells: vec![
                    s.id.clone(),
                    o.pid.to_string(),
                    st.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ],
                wide: vec![
                    s.rootfs.display().to_string(),
                    o.oci_version.to_string(),
                    annotations(&s.annotations),
                ],
            }
        })
        .collect();
    let listing = Listing {
        kind: "container",
        columns: &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        wide_columns: &["ROOTFS", "OCI VERSION", "ANNOTATIONS"],
        rows,
        // runc prints its JSON array on one line.
        compact_json: args.output == Output::Json,
        min_width: 12,
    };
    output::print_listing(args.output, &listing, || {
        // runc encodes no containers as Go's nil slice: `null`, not `[]`.
        if all.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        let v: Vec<_> = all.iter().map(|(s, st)| s.to_oci(*st)).collect();
        Ok(serde_json::to_value(v)?)
    })?;
    Ok(0)
}

/// How Go prints an OS error: the C library's text in lower case, without Rust's
/// ` (os error N)`.
fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = nix::errno::Errno::from_raw(n).desc();
            let mut c = text.chars();
            match c.next() {
                Some(first) => first.to_lowercase().chain(c).collect(),
                None => text.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// `k=v,k2=v2`, or `<none>` as kubectl prints an empty field.
fn annotations<'a>(a: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let v: Vec<String> = a.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if v.is_empty() {
        "<none>".into()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_prints_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_errno_text(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(go_errno_text(&e), "permission denied");
    }
}
