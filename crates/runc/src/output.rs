//! The one output convention of every verb that lists things (`list`, `pod ls`, `node show`,
//! `image ls`), as kubectl and podman users expect: `-o table|wide|json|yaml|name`.
//!
//! * `table`: aligned columns separated by three spaces (runc's and kubectl's look);
//! * `wide`: the same with the verb's extra columns;
//! * `json` / `yaml`: the verb's document (kubectl's `List`, runc's and podman's arrays);
//! * `name`: `KIND/NAME`, one a line (`pod/web`).
//!
//! YAML is encoded by the `peapod` binary ([`set_yaml_encoder`]); the lean `peapod-runc`
//! carries no YAML library and refuses `-o yaml` with a hint.

use std::io::Write;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns
    Table,
    /// Aligned columns with extra fields
    Wide,
    /// The JSON document
    Json,
    /// The YAML document
    Yaml,
    /// KIND/NAME, one a line
    Name,
}

impl Output {
    /// Whether the format prints the document (and so needs it built).
    pub fn is_document(self) -> bool {
        matches!(self, Output::Json | Output::Yaml)
    }
}

/// Encodes a JSON value as YAML; set once at start-up by the binary that carries YAML.
pub type YamlEncoder = fn(&serde_json::Value) -> Result<String, String>;

static YAML: OnceLock<YamlEncoder> = OnceLock::new();

/// Make `-o yaml` available (the `peapod` binary passes its YAML library's serializer).
pub fn set_yaml_encoder(f: YamlEncoder) {
    let _ = YAML.set(f);
}

/// One listed object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// What `-o name` prints after `KIND/`.
    pub name: String,
    /// The table's cells, one per column.
    pub cells: Vec<String>,
    /// The cells of the wide columns.
    pub wide: Vec<String>,
}

/// A list of objects, printable in every format.
#[derive(Debug, Clone)]
pub struct Listing {
    /// `pod`, `node`, `image`, `container`: the prefix of `-o name`.
    pub kind: &'static str,
    pub columns: &'static [&'static str],
    /// Columns `-o wide` adds after `columns`.
    pub wide_columns: &'static [&'static str],
    pub rows: Vec<Row>,
    /// Print JSON on one line (runc's `list --format json`) instead of indented.
    pub compact_json: bool,
    /// The least width of every column but the last, the three spaces of padding included
    /// (runc's `list` table is Go's tabwriter with a minimum width of 12); 0 for none.
    pub min_width: usize,
}

/// Write rows in aligned columns separated by three spaces, trailing blanks trimmed.
pub fn write_table(w: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    write_table_min(w, rows, 0)
}

/// [`write_table`] with every column but the last at least `min` characters wide, padding
/// included: Go's `tabwriter.NewWriter(w, min, 1, 3, ' ', 0)`, which runc's `list` uses.
pub fn write_table_min(w: &mut dyn Write, rows: &[Vec<String>], min: usize) -> std::io::Result<()> {
    const PAD: usize = 3;
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; n];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count() + PAD);
        }
    }
    for w in &mut width {
        *w = (*w).max(min);
    }
    for r in rows {
        let mut line = String::new();
        for (c, w) in r.iter().zip(&width) {
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// [`write_table`] on stdout.
pub fn print_table(rows: &[Vec<String>]) -> std::io::Result<()> {
    write_table(&mut std::io::stdout().lock(), rows)
}

/// Write a document as JSON (indented unless `compact`) or YAML; other formats are the
/// caller's.
pub fn write_document(
    w: &mut dyn Write,
    out: Output,
    doc: &serde_json::Value,
    compact: bool,
) -> Result<()> {
    match out {
        Output::Json if compact => writeln!(w, "{}", serde_json::to_string(doc)?)?,
        Output::Json => writeln!(w, "{}", serde_json::to_string_pretty(doc)?)?,
        Output::Yaml => {
            let Some(encode) = YAML.get() else {
                bail!(
                    "-o yaml is not built into this binary (the lean OCI runtime): use -o json, or `peapod` for YAML"
                );
            };
            let text = encode(doc)
                .map_err(anyhow::Error::msg)
                .context("encode yaml")?;
            write!(w, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(w)?;
            }
        }
        other => bail!("-o {other:?}: not a document format"),
    }
    Ok(())
}

/// [`write_document`] on stdout.
pub fn print_document(out: Output, doc: &serde_json::Value) -> Result<()> {
    write_document(&mut std::io::stdout().lock(), out, doc, false)
}

/// Write a listing; `document` builds the JSON/YAML document only when that is asked for.
pub fn write_listing(
    w: &mut dyn Write,
    out: Output,
    l: &Listing,
    document: impl FnOnce() -> Result<serde_json::Value>,
) -> Result<()> {
    match out {
        Output::Table | Output::Wide => {
            let wide = out == Output::Wide;
            let mut head: Vec<String> = l.columns.iter().map(|c| c.to_string()).collect();
            if wide {
                head.extend(l.wide_columns.iter().map(|c| c.to_string()));
            }
            let mut rows = vec![head];
            for r in &l.rows {
                let mut cells = r.cells.clone();
                if wide {
                    cells.extend(r.wide.iter().cloned());
                }
                rows.push(cells);
            }
            write_table_min(w, &rows, l.min_width)?;
        }
        Output::Name => {
            for r in &l.rows {
                writeln!(w, "{}/{}", l.kind, r.name)?;
            }
        }
        Output::Json | Output::Yaml => write_document(w, out, &document()?, l.compact_json)?,
    }
    Ok(())
}

/// [`write_listing`] on stdout.
pub fn print_listing(
    out: Output,
    l: &Listing,
    document: impl FnOnce() -> Result<serde_json::Value>,
) -> Result<()> {
    write_listing(&mut std::io::stdout().lock(), out, l, document)
}

/// kubectl's `List` document around items.
pub fn kube_list(items: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Listing {
        Listing {
            kind: "pod",
            columns: &["NAME", "STATUS"],
            wide_columns: &["IP", "NODE"],
            rows: vec![
                Row {
                    name: "web".into(),
                    cells: vec!["web".into(), "Running".into()],
                    wide: vec!["".into(), "host1".into()],
                },
                Row {
                    name: "a-longer-name".into(),
                    cells: vec!["a-longer-name".into(), "Pending".into()],
                    wide: vec!["10.0.0.2".into(), "host1".into()],
                },
            ],
            compact_json: false,
            min_width: 0,
        }
    }

    fn render(out: Output, l: &Listing) -> String {
        let mut buf = Vec::new();
        write_listing(&mut buf, out, l, || Ok(serde_json::json!({"items": [1]}))).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn table_aligns_columns_three_spaces_apart() {
        assert_eq!(
            render(Output::Table, &listing()),
            "NAME            STATUS\nweb             Running\na-longer-name   Pending\n"
        );
    }

    #[test]
    fn wide_adds_the_wide_columns_even_when_empty() {
        assert_eq!(
            render(Output::Wide, &listing()),
            "NAME            STATUS    IP         NODE\n\
             web             Running              host1\n\
             a-longer-name   Pending   10.0.0.2   host1\n"
        );
    }

    #[test]
    fn name_prints_kind_slash_name() {
        assert_eq!(
            render(Output::Name, &listing()),
            "pod/web\npod/a-longer-name\n"
        );
    }

    #[test]
    fn json_is_indented_unless_compact() {
        assert_eq!(
            render(Output::Json, &listing()),
            "{\n  \"items\": [\n    1\n  ]\n}\n"
        );
        let mut l = listing();
        l.compact_json = true;
        assert_eq!(render(Output::Json, &l), "{\"items\":[1]}\n");
    }

    #[test]
    fn the_document_is_built_only_for_document_formats() {
        for out in [Output::Table, Output::Wide, Output::Name] {
            let mut buf = Vec::new();
            write_listing(&mut buf, out, &listing(), || panic!("built for {out:?}")).unwrap();
        }
    }

    /// Go's tabwriter with minwidth 12 and padding 3, as `runc list` prints: a short column
    /// is 12 wide, a longer one its text plus three; the last column is not padded.
    #[test]
    fn min_width_is_gos_tabwriter() {
        let mut l = listing();
        l.min_width = 12;
        l.rows[1].cells[0] = "a-much-longer-name".into();
        assert_eq!(
            render(Output::Table, &l),
            "NAME                 STATUS\nweb                  Running\na-much-longer-name   Pending\n"
        );
        l.rows.truncate(1);
        l.rows[0].cells[0] = "ab".into();
        assert_eq!(
            render(Output::Table, &l),
            "NAME        STATUS\nab          Running\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut buf = Vec::new();
        let rows = vec![
            vec!["é".to_string(), "x".to_string()],
            vec!["ab".to_string(), "y".to_string()],
        ];
        write_table(&mut buf, &rows).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "é    x\nab   y\n");
    }

    #[test]
    fn kube_list_is_kubectls_list() {
        let v = kube_list(vec![serde_json::json!({"kind": "Pod"})]);
        assert_eq!(v["kind"], "List");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["items"][0]["kind"], "Pod");
    }
}
