use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::List;
use crate::output::{self, Listing, Output, Row};
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &List) -> Result<i32> {
    // runc: `open ROOT: no such file or directory`, status 1, when --root is missing.
    std::fs::metadata(root).with_context(|| format!("open {}", root.display()))?;
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
    };
    output::print_listing(args.output, &listing, || {
        let v: Vec<_> = all.iter().map(|(s, st)| s.to_oci(*st)).collect();
        Ok(serde_json::to_value(v)?)
    })?;
    Ok(0)
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
