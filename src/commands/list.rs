use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::cli::oci::{Format, List};
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &List) -> Result<i32> {
    let all = lifecycle::list(root)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (s, _) in &all {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(0);
    }
    match args.format {
        Format::Json => {
            let v: Vec<_> = all.iter().map(|(s, st)| s.to_oci(*st)).collect();
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        Format::Table => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|(s, st)| {
                    let pid = if *st == peapod_oci::container::Status::Stopped {
                        0
                    } else {
                        s.pid
                    };
                    [
                        s.id.clone(),
                        pid.to_string(),
                        st.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        s.owner.clone(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            super::print_table(&[vec![head], rows].concat())?;
        }
    }
    Ok(0)
}
