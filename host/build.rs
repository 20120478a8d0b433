//! Builds the bundled plugins (every crate in `plugins/` with a `plugin.toml`) for
//! `wasm32-wasip2` and embeds their components and manifests in the binary, so that
//! `plugboard serve` installs them with nothing built by hand. The target is added with
//! rustup when the toolchain lacks it. The plugins build in `target/wasm-plugins/default`
//! with their own lock, beside the build that runs this script.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    for dir in ["plugins", "sdk/src", "sdk/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out = PathBuf::from(env("OUT_DIR"));
    let plugins = bundled(&root.join("plugins"));
    let target_dir = target_dir(&out).join("wasm-plugins").join("default");
    if !plugins.is_empty() {
        ensure_wasm_target();
        build(&root, &target_dir, &plugins);
    }
    let mut code = String::from(
        "/// The bundled plugins: (id, manifest, component).\n\
         pub const BUNDLED: &[(&str, &str, &[u8])] = &[\n",
    );
    for p in &plugins {
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("plugin")
            .join(format!("{}.wasm", p.package.replace('-', "_")));
        let _ = writeln!(
            code,
            "    ({:?}, include_str!({:?}), include_bytes!({:?})),",
            p.id,
            p.manifest.display().to_string(),
            wasm.display().to_string()
        );
    }
    code.push_str("];\n");
    std::fs::write(out.join("bundled.rs"), code).expect("write bundled.rs");
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is set by cargo"))
}

struct Bundled {
    id: String,
    package: String,
    manifest: PathBuf,
}

/// The plugin crates: a directory with a `Cargo.toml` (its package name) and a `plugin.toml`
/// (its id).
fn bundled(dir: &Path) -> Vec<Bundled> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for d in dirs {
        let (Ok(cargo), Ok(manifest)) = (
            std::fs::read_to_string(d.join("Cargo.toml")),
            std::fs::read_to_string(d.join("plugin.toml")),
        ) else {
            continue;
        };
        let (Some(package), Some(id)) =
            (first_string(&cargo, "name"), first_string(&manifest, "id"))
        else {
            continue;
        };
        out.push(Bundled {
            id,
            package,
            manifest: d.join("plugin.toml"),
        });
    }
    out
}

/// The first `key = "value"` of a TOML text (the package name, the plugin id: both on
/// their own line near the top).
fn first_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `target/` of the build running this script: OUT_DIR is `target/<profile>/build/<pkg>/out`
/// (or `target/<triple>/<profile>/…`).
fn target_dir(out: &Path) -> PathBuf {
    out.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("target"))
}

fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let has_std = libdir
        .and_then(|d| std::fs::read_dir(d).ok())
        .is_some_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        });
    if !has_std {
        let status = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "the bundled plugins need the wasm32-wasip2 target and `rustup target add \
                 wasm32-wasip2` failed ({other:?})"
            ),
        }
    }
}

fn build(root: &Path, target_dir: &Path, plugins: &[Bundled]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir);
    for p in plugins {
        cmd.args(["-p", &p.package]);
    }
    // What the outer build set (clippy's wrapper, its flags, its target) is not for the
    // plugins.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run cargo for the bundled plugins");
    if !out.status.success() {
        panic!(
            "building the bundled plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
