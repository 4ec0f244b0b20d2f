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

#[cfg(test)]
mod tests {
    use super::*;

    /// A page for `peapod` and for every visible verb, each naming its command.
    #[test]
    fn a_man_page_for_every_verb() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_pages(dir.path()).unwrap();
        let verbs = crate::commands::completion::visible_verbs();
        assert_eq!(n, verbs.len() + 1);
        let top = std::fs::read_to_string(dir.path().join("peapod.1")).unwrap();
        assert!(top.starts_with(".ie"), "{top}");
        for verb in verbs {
            let name = format!("peapod-{}", verb.join("-"));
            let page = std::fs::read_to_string(dir.path().join(format!("{name}.1")))
                .unwrap_or_else(|e| panic!("{name}.1: {e}"));
            assert!(page.contains(".TH"), "{name}.1: {page}");
            assert!(
                page.contains(&name.replace('-', "\\-")),
                "{name}.1 does not name its command: {page}"
            );
        }
    }
}
