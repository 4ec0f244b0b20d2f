//! Every fuzz target over its checked-in corpus and over a seeded random sweep: no panic, and
//! every case within [`CASE_LIMIT`] (a debug build on a loaded 2-core machine).

use std::time::{Duration, Instant};

use super::*;

/// The longest one case may take, in a debug build on a loaded machine: quadratic work on a
/// few-KiB input shows up as seconds (as the deep YAML nesting did), linear work stays far
/// below.
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// How many random cases the sweep of `target` runs: a fixed count, so CI and every machine
/// run the same cases, whatever their speed (a time budget ran fewer on a slow machine and
/// more on a fast one, so a finding could show on one and not the other). About 2 s per target
/// in a debug build; the slow targets (temporary files, image layers, logs rotating every
/// 64 bytes, a pod's whole plan) get fewer. `PEAPOD_FUZZ_SCALE=N` runs N times as many: the
/// same sequence, extended.
fn sweep_cases(target: &str) -> u64 {
    let base = match target {
        "cri_log" => 10,
        "pod_manifest" => 100,
        "cgroup_files" | "image_unpack" => 150,
        "node_config" => 1_000,
        "probe_http" | "registry_http" => 4_000,
        _ => 10_000,
    };
    let scale: u64 = std::env::var("PEAPOD_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    base * scale
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("corpus entry").path();
            let data = std::fs::read(&p).expect("read corpus file");
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// xorshift64*: a fixed-seed generator, so a sweep's cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers: structure characters of YAML, JSON, HTTP, tar and the
/// text formats, and boundary values.
const INTERESTING: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"'",
    b":",
    b": ",
    b",",
    b"\n",
    b"\r\n",
    b"#",
    b" ",
    b"\t",
    b"-",
    b"- ",
    b"---\n",
    b"|",
    b"&a",
    b"*a",
    b"!",
    b"\\",
    b"0",
    b"-1",
    b"9223372036854775807",
    b"18446744073709551616",
    b"1e308",
    b"e",
    b"Ki",
    b"m",
    b"n",
    b".",
    b"..",
    b"/",
    b"../",
    b"\0",
    b"\xff",
    b"\xc2\x85",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"HTTP/1.1 ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: ",
    b"Location: ",
    b"=",
    b"%",
];

/// One mutation of `seed`: bytes flipped, inserted, deleted, duplicated, spliced with another
/// seed or with a piece of [`INTERESTING`], or a piece repeated many times (deep nesting).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(7) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(at..at, piece.iter().copied());
            }
            2 if !d.is_empty() => {
                let end = (at + rng.below(16)).min(d.len());
                d.drain(at.min(end)..end);
            }
            3 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(64)).min(other.len());
                d.splice(at..at, other[from..end].iter().copied());
            }
            4 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let times = 1 + rng.below(2000);
                d.splice(at..at, piece.repeat(times));
            }
            5 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            _ => d.truncate(at),
        }
    }
    d
}

fn run_target(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"))
        .1;
    let seeds = corpus(name);
    let mut slowest = (Duration::ZERO, String::new());
    let mut check = |what: &str, data: Vec<u8>| match run_bounded(target, data.clone(), CASE_LIMIT)
    {
        Ok(t) if t > slowest.0 => slowest = (t, what.to_string()),
        Ok(_) => {}
        Err(e) => {
            let shown = String::from_utf8_lossy(&data[..data.len().min(300)]).into_owned();
            panic!(
                "{name}: {what}: {e}; input ({} bytes): {shown:?}",
                data.len()
            );
        }
    };
    for (file, data) in &seeds {
        check(&format!("seed {file}"), data.clone());
    }
    let mut rng = Rng(0x5EED ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
    let cases = sweep_cases(name);
    let start = Instant::now();
    for case in 0..cases {
        let (_, seed) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let data = mutate(&mut rng, seed, other);
        // `PEAPOD_FUZZ_DUMP=TARGET:CASE` saves one case's input, e.g. to add it to the corpus.
        if std::env::var("PEAPOD_FUZZ_DUMP").is_ok_and(|c| c == format!("{name}:{case}")) {
            let file = std::env::temp_dir().join(format!("peapod-fuzz-{name}-{case}"));
            std::fs::write(&file, &data).expect("save the case");
            eprintln!("{name}: case {case} saved as {}", file.display());
        }
        check(&format!("sweep case {case}"), data);
    }
    eprintln!(
        "{name}: {} seeds, {cases} random cases in {:?}, slowest {:?} ({})",
        seeds.len(),
        start.elapsed(),
        slowest.0,
        slowest.1
    );
}

#[test]
fn every_target_has_a_corpus_and_a_libfuzzer_binary() {
    for (name, _) in TARGETS {
        assert!(!corpus(name).is_empty());
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fuzz/fuzz_targets/{name}.rs"));
        assert!(bin.exists(), "{} is missing", bin.display());
    }
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_target(stringify!($name));
            }
        )*
    };
}

fuzz_tests!(
    config_json,
    process_json,
    pod_manifest,
    node_config,
    quantity,
    image_unpack,
    image_json,
    image_reference,
    registry_http,
    probe_http,
    cri_log,
    cgroup_files,
    mountinfo,
    signal,
    mount_options,
    durations,
    node_args,
);
