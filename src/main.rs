//! The `peapod` binary: the OCI verbs (shared with `peapod-runc`) plus pods, images and the
//! node. Start-up, logging and error reporting are `peapod_runc::app`'s.

mod cli;
mod commands;

use cli::{Cli, Command};

impl peapod_runc::app::Program for Cli {
    fn global(&self) -> &cli::GlobalOpts {
        &self.global
    }
    fn enters_container(&self) -> bool {
        self.command.as_ref().is_some_and(Command::enters_container)
    }
    fn is_exec(&self) -> bool {
        matches!(
            self.command,
            Some(Command::Oci(peapod_runc::cli::OciCommand::Exec(_)))
        )
    }
    fn plain_messages(&self) -> bool {
        !matches!(self.command, Some(Command::Oci(_)) | None)
    }
    fn dispatch(&self) -> anyhow::Result<i32> {
        let root = &self.global.root;
        let storage = &self.storage;
        let Some(cmd) = &self.command else {
            anyhow::bail!("no command given: see `peapod --help`");
        };
        match cmd {
            Command::Oci(c) => c.dispatch(root),
            Command::Pod(p) => commands::pod::run(root, storage, p),
            Command::Image(c) => commands::image::run(root, storage, c),
            Command::Node(n) => commands::node::run(root, storage, n),
            Command::Schedule(a) => commands::node::schedule(a),
            Command::Completion(a) => {
                // A write error (`| head`) ends the command as SIGPIPE (`app::main`).
                let script = commands::completion::script(a.shell);
                let mut out = std::io::stdout().lock();
                std::io::Write::write_all(&mut out, &script)?;
                std::io::Write::flush(&mut out)?;
                Ok(0)
            }
            Command::Man(a) => {
                let pages = commands::man::write_pages(&a.dir)?;
                peapod_runc::outln!("wrote {pages} pages to {}", a.dir.display());
                Ok(0)
            }
            Command::Supervise(a) => {
                let add = a.add_child.zip(a.add_fd);
                peapod_pod::ops::supervise(root, storage, &a.name, a.ready_fd, a.mntns_fd, add)
            }
        }
    }
}

fn yaml(v: &serde_json::Value) -> Result<String, String> {
    yaml_serde::to_string(v).map_err(|e| e.to_string())
}

fn main() {
    peapod_runc::output::set_yaml_encoder(yaml);
    peapod_runc::app::main::<Cli>()
}
