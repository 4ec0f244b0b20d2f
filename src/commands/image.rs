//! `peapod image ...`: glue between the flags and [`peapod_image::Store`].

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use peapod_image::registry::PullOptions;
use peapod_image::{ImportOptions, ImportProgress, ImportReport, Store};

use crate::cli::image::{ImageCommand, Output};
use peapod_runc::outln;
use peapod_runc::output::{self, Listing, Row};

/// An import's progress bar (only drawn when stderr is a terminal).
struct Bar(ProgressBar);

impl ImportProgress for Bar {
    fn total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn step(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
}

pub fn run(root: &Path, storage: &Path, cmd: &ImageCommand) -> anyhow::Result<i32> {
    let store = Store::open(storage).context("open image store")?;
    match cmd {
        ImageCommand::Import(a) => {
            let bar = progress_bar();
            let opts = ImportOptions {
                name: a.name.clone(),
                progress: bar.as_ref().map(|b| b as &dyn ImportProgress),
            };
            loaded(bar.as_ref(), store.import(&a.path, &opts))?;
        }
        ImageCommand::Pull(a) => {
            let bar = progress_bar();
            let opts = PullOptions {
                insecure: a.insecure,
                cert_dir: a.cert_dir.clone(),
                progress: bar.as_ref().map(|b| b as &dyn ImportProgress),
            };
            loaded(bar.as_ref(), store.pull(&a.name, &opts))?;
        }
        ImageCommand::Ls(a) => list(&store, a.quiet, a.output)?,
        ImageCommand::Inspect(a) => {
            let i = store
                .resolve(&a.name)?
                .ok_or_else(|| peapod_image::ImageError::NotFound(a.name.clone()))?;
            let v = serde_json::json!([{
                "Name": i.name, "Digest": i.digest, "Id": i.id, "Size": i.size,
                "Config": i.config, "LayerDirs": i.layer_dirs,
            }]);
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        ImageCommand::Rm(a) => {
            for n in &a.names {
                if !a.force
                    && let Some(pod) = peapod_pod::ops::image_user(root, &store, n)?
                {
                    anyhow::bail!(
                        "image `{n}` is in use by pod `{pod}` (hint: remove the pod first, or pass --force)"
                    );
                }
                for removed in store.remove(n)? {
                    outln!("Untagged: {removed}");
                }
            }
        }
        ImageCommand::Prune => {
            let r = store.prune()?;
            outln!(
                "removed {} blobs, {} layers, {} temporary directories",
                r.blobs,
                r.layers,
                r.temp_dirs
            );
        }
    }
    Ok(0)
}

/// A bar on stderr when it is a terminal.
fn progress_bar() -> Option<Bar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        if let Ok(s) = ProgressStyle::with_template(
            "{msg:18} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            b.set_style(s.progress_chars("=> "));
        }
        Bar(b)
    })
}

fn loaded(
    bar: Option<&Bar>,
    rep: Result<ImportReport, peapod_image::ImageError>,
) -> anyhow::Result<()> {
    if let Some(b) = bar {
        b.0.finish_and_clear();
    }
    for (name, _) in &rep?.images {
        outln!("Loaded image: {name}");
    }
    Ok(())
}

fn list(store: &Store, quiet: bool, out: Output) -> anyhow::Result<()> {
    let images = store.list()?;
    if quiet && !out.is_document() {
        let mut seen = std::collections::BTreeSet::new();
        for i in images.iter().filter(|i| seen.insert(i.id.clone())) {
            outln!("{}", &i.id[..12]);
        }
        return Ok(());
    }
    let rows = images
        .iter()
        .map(|i| Row {
            name: format!("{}:{}", i.repository, i.tag),
            cells: vec![
                i.repository.clone(),
                i.tag.clone(),
                i.id[..12].to_string(),
                human_size(i.size),
            ],
            wide: vec![
                i.digest.clone(),
                i.created.clone().unwrap_or_else(|| "<none>".into()),
            ],
        })
        .collect();
    let listing = Listing {
        kind: "image",
        columns: &["REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
        wide_columns: &["DIGEST", "CREATED"],
        rows,
        compact_json: false,
        min_width: 0,
    };
    // podman's `image ls --format json` is an array of the images.
    output::print_listing(out, &listing, || Ok(serde_json::to_value(&images)?))
}

/// Three significant digits in SI units, as podman prints sizes (`4.87 MB`).
fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    match u {
        0 => format!("{n} B"),
        _ if v < 10.0 => format!("{v:.2} {}", UNITS[u]),
        _ if v < 100.0 => format!("{v:.1} {}", UNITS[u]),
        _ => format!("{v:.0} {}", UNITS[u]),
    }
}
