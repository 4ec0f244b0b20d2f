//! `peapod completion SHELL`: a completion script from the clap definitions.

use clap::CommandFactory;

use crate::cli::Cli;

/// The completion script for `shell`, whole (clap_complete panics on a failed write, so the
/// caller writes it to stdout itself).
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut without_hidden_verbs(Cli::command()),
        "peapod",
        &mut out,
    );
    out
}

/// `cmd` without its hidden top-level verbs (`__supervise`, which `pod run` starts), which
/// clap_complete would offer beside the others: the same command rebuilt from its arguments
/// and visible verbs (clap cannot remove a subcommand).
fn without_hidden_verbs(cmd: clap::Command) -> clap::Command {
    let mut out = clap::Command::new("peapod");
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    for arg in cmd.get_arguments() {
        out = out.arg(arg.clone());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(sub.clone());
    }
    out.disable_version_flag(true)
}

/// Every visible verb, as its path from the top (`["pod", "run"]`), for the tests of the
/// generated completions and man pages.
#[cfg(test)]
pub fn visible_verbs() -> Vec<Vec<String>> {
    fn visit(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            visit(sub, &p, out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    visit(&cmd, &[], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    /// The verbs the tests below expect, so a build that lost the deferred groups' verbs
    /// (`Command::defer`) cannot pass by finding none.
    #[test]
    fn the_verb_list_reaches_the_nested_verbs() {
        let verbs = visible_verbs();
        for want in [
            &["create"][..],
            &["pod", "run"],
            &["pod", "logs"],
            &["image", "pull"],
            &["node", "show"],
            &["completion"],
        ] {
            assert!(
                verbs.iter().any(|v| v == want),
                "{want:?} missing from {verbs:?}"
            );
        }
        assert!(!verbs.iter().any(|v| v[0] == "__supervise"));
    }

    /// No script offers the hidden verb (clap_complete's for the whole command does), and the
    /// rebuilt command kept the global options (the verbs: `completions_cover_every_verb`).
    #[test]
    fn completions_leave_out_the_hidden_verb() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut full = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "peapod", &mut full);
            assert!(String::from_utf8(full).unwrap().contains("__supervise"));
            let text = String::from_utf8(script(shell)).unwrap();
            assert!(!text.contains("supervise"), "{shell}: offers __supervise");
            for opt in ["root", "storage", "systemd-cgroup", "log-format"] {
                assert!(text.contains(opt), "{shell}: no --{opt}");
            }
        }
    }

    /// Every shell's script completes every verb, nested ones under their group.
    #[test]
    fn completions_cover_every_verb() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            for verb in visible_verbs() {
                let found = match shell {
                    // bash: one `case` state per command path,
                    // `peapod__subcmd__pod__subcmd__run`.
                    Shell::Bash => {
                        let state = format!("peapod__subcmd__{}", verb.join("__subcmd__"))
                            .replace('-', "__");
                        text.contains(&format!("{state})"))
                    }
                    // zsh: `'run:...'` entries below their group's state; fish: `-a "run"`
                    // guarded by the group's `__fish_seen_subcommand_from`.
                    Shell::Zsh => text.contains(&format!("'{}:", verb[verb.len() - 1])),
                    _ => text.contains(&format!("-a \"{}\"", verb[verb.len() - 1])),
                };
                assert!(found, "{shell}: no completion of `{}`", verb.join(" "));
            }
        }
    }
}
