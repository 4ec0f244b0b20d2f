//! `peapod man DIR`: a man page for `peapod` and for every verb, from the clap definitions.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Write `peapod.1` and `peapod-VERB[-SUBVERB].1` for every visible verb; returns the count.
pub fn write_pages(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut count = 0;
    write(dir, "peapod", cmd.clone(), &mut count)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        visit(dir, "peapod", sub, &mut count)?;
    }
    Ok(count)
}

fn visit(dir: &Path, parent: &str, cmd: &clap::Command, count: &mut usize) -> anyhow::Result<()> {
    let name = format!("{parent}-{}", cmd.get_name());
    write(dir, &name, cmd.clone().display_name(name.clone()), count)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        visit(dir, &name, sub, count)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, cmd: clap::Command, count: &mut usize) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .with_context(|| format!("render `{name}.1`"))?;
    std::fs::write(&path, buf).with_context(|| format!("write `{}`", path.display()))?;
    *count += 1;
    Ok(())
}
