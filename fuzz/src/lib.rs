//! Fuzz targets for the host's parsers, on the stable toolchain: each target is a property
//! (`check`) that must hold for every input, a corpus of seed inputs kept in
//! `fuzz/corpus/<target>/`, a dictionary of tokens its format is made of, and optionally a
//! generator of well-formed inputs. [`run`] replays the corpus, then feeds the property inputs
//! made by mutating the corpus (and generated ones) through proptest, which shrinks a failure
//! to a small input.
//!
//! How long it runs: `FUZZ_SECONDS` (all targets together; `.ci/run` sets 60) or,
//! without it, `FUZZ_CASES` cases per target (256 by default, a few seconds: what an
//! ordinary `cargo test` does). `FUZZ_SEED` repeats a run; a failing input is also
//! written to `target/fuzz-failures/<target>/`, to be added to the corpus once fixed.

pub mod canonical_json;
pub mod event;
pub mod filter;
pub mod manifest;
pub mod registration;
pub mod sync_token;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// One fuzz target.
pub struct Target {
    /// Its corpus directory's name under `fuzz/corpus/`.
    pub name: &'static str,
    /// The property: `Err` (or a panic) is a finding.
    pub check: fn(&[u8]) -> Result<(), String>,
    /// Pieces of the format, spliced in by the mutator.
    pub dictionary: &'static [&'static [u8]],
    /// Well-formed inputs made from scratch, beside the mutated corpus.
    pub generate: Option<fn() -> BoxedStrategy<Vec<u8>>>,
}

/// How many targets share `FUZZ_SECONDS`.
pub const TARGETS: u32 = 6;

/// Cases per proptest run; a timed run does as many runs as fit.
const BATCH: u32 = 256;

/// Replays the target's corpus, then fuzzes it for the budget; panics with the (shrunk)
/// input at the first finding.
pub fn run(target: &Target) {
    let corpus = load_corpus(target.name);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{} has no seed inputs",
        target.name
    );
    for (file, input) in &corpus {
        if let Err(why) = catch(target, input) {
            panic!(
                "{}: corpus file {file} fails: {why}\n  input: {}",
                target.name,
                shown(input)
            );
        }
    }
    let seeds: Vec<Vec<u8>> = corpus.into_iter().map(|(_, input)| input).collect();
    let strategy = inputs(target, seeds);
    let (deadline, cases) = budget();
    let base_seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        if deadline.is_some() {
            // A timed run explores: a new seed each time, printed so it can be repeated.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        } else {
            0x5eed
        }
    });
    let started = Instant::now();
    let mut done = 0u64;
    let mut batch = 0u64;
    loop {
        let seed = base_seed.wrapping_add(batch);
        let this = match deadline {
            Some(_) => BATCH,
            None => cases.saturating_sub(done as u32).min(BATCH),
        };
        if this == 0 {
            break;
        }
        let mut runner = runner(seed, this);
        let result = runner.run(&strategy, |input| {
            (target.check)(&input).map_err(TestCaseError::fail)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                let saved = save_failure(target.name, &input);
                panic!(
                    "{}: finding (FUZZ_SEED={base_seed}, run {batch}): {why}\n  \
                     input: {}\n  saved to {saved}: fix the cause, then keep it in \
                     fuzz/corpus/{}/",
                    target.name,
                    shown(&input),
                    target.name
                );
            }
            Err(TestError::Abort(why)) => panic!("{}: proptest gave up: {why}", target.name),
        }
        done += u64::from(this);
        batch += 1;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    println!(
        "fuzz {}: {} corpus inputs, {done} cases in {:.1} s (FUZZ_SEED={base_seed})",
        target.name,
        seeds_len(target.name),
        started.elapsed().as_secs_f64()
    );
}

/// The corpus inputs and mutations of them, and generated inputs when the target has a
/// generator.
fn inputs(target: &Target, seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let dictionary = target.dictionary;
    let count = seeds.len();
    let mutated = (0..count, prop::collection::vec(edit(), 0..8))
        .prop_map(move |(i, edits)| mutate(&seeds, i, &edits, dictionary))
        .boxed();
    match target.generate {
        Some(generate) => prop_oneof![3 => mutated, 1 => generate()].boxed(),
        None => mutated,
    }
}

fn runner(seed: u64, cases: u32) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// The end of a timed run, or the number of cases of a counted one.
fn budget() -> (Option<Instant>, u32) {
    if let Some(secs) = env_u64("FUZZ_SECONDS").filter(|s| *s > 0) {
        let share = Duration::from_secs(secs) / TARGETS;
        return (Some(Instant::now() + share), 0);
    }
    let cases = env_u64("FUZZ_CASES").unwrap_or(u64::from(BATCH));
    (None, cases.min(u64::from(u32::MAX)) as u32)
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name} must be a whole number, not '{v}'"),
    }
}

/// One edit of a corpus input. Positions are taken modulo the input's length, so every edit
/// applies to every input, and dropping edits (what shrinking does) keeps the rest valid.
#[derive(Debug, Clone)]
enum Edit {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    Token {
        at: usize,
        token: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    Splice {
        at: usize,
        from: usize,
        other_at: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Edit::Token { at, token }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 1usize..16, 1usize..64).prop_map(|(at, len, times)| Edit::Repeat {
            at,
            len,
            times
        }),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, from, other_at)| Edit::Splice { at, from, other_at }),
    ]
}

fn mutate(seeds: &[Vec<u8>], index: usize, edits: &[Edit], dictionary: &[&[u8]]) -> Vec<u8> {
    let mut v = seeds[index].clone();
    for e in edits {
        let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match *e {
            Edit::Flip { at, bit } if !v.is_empty() => {
                let i = at % v.len();
                v[i] ^= 1 << bit;
            }
            Edit::Set { at, byte } if !v.is_empty() => {
                let i = at % v.len();
                v[i] = byte;
            }
            Edit::Insert { at, byte } => v.insert(pos(at, v.len()), byte),
            Edit::Token { at, token } if !dictionary.is_empty() => {
                let i = pos(at, v.len());
                let t = dictionary[token % dictionary.len()];
                v.splice(i..i, t.iter().copied());
            }
            Edit::Delete { at, len } if !v.is_empty() => {
                let i = at % v.len();
                let end = (i + len).min(v.len());
                v.drain(i..end);
            }
            Edit::Repeat { at, len, times } if !v.is_empty() => {
                let i = at % v.len();
                let piece: Vec<u8> = v[i..(i + len).min(v.len())].to_vec();
                for _ in 0..times {
                    v.splice(i..i, piece.iter().copied());
                }
            }
            Edit::Splice { at, from, other_at } => {
                let other = &seeds[from % seeds.len()];
                let j = pos(other_at, other.len());
                let i = pos(at, v.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ => {}
        }
    }
    v
}

/// The property of `target` on `input`, with a panic turned into a finding.
fn catch(target: &Target, input: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| (target.check)(input)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        Err(format!("panicked: {what}"))
    })
}

fn corpus_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// The corpus files of a target, sorted by name.
pub fn load_corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let bytes = std::fs::read(&path).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
        })
        .collect();
    files.sort();
    files
}

fn seeds_len(name: &str) -> usize {
    load_corpus(name).len()
}

/// Writes a finding under the workspace's target directory; answers where.
fn save_failure(name: &str, input: &[u8]) -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("fuzz-failures").join(name);
    // FNV-1a: a stable name for the same input.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

/// An input as a finding shows it: UTF-8 text escaped, other bytes as `\xNN`.
pub fn shown(input: &[u8]) -> String {
    let text: String = input
        .utf8_chunks()
        .flat_map(|chunk| {
            let valid = chunk.valid().escape_debug().collect::<String>();
            let invalid: String = chunk
                .invalid()
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect();
            [valid, invalid]
        })
        .collect();
    format!("\"{text}\" ({} bytes)", input.len())
}

/// The input as UTF-8, for targets whose format is text; `None` for other bytes (which the
/// server's own readers refuse before parsing).
pub fn text(input: &[u8]) -> Option<&str> {
    std::str::from_utf8(input).ok()
}

/// A JSON value of bounded depth and width, for generators.
pub fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(Value::from),
        "[ -~\\u{0}-\\u{1f}\\u{80}-\\u{10ffff}]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "m.room.member",
            "join",
            "invite",
            "leave",
            "ban",
            "@a:x",
            "!r:x",
            "#a:x",
            "$e",
            "public",
            "shared",
            "",
            "*",
            "m.*",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(depth, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_.]{0,8}|[ -~]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
