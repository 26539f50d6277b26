//! Makes the layering a compile-time fact: the pure modules (they take values and return
//! values) may not use actix, tokio or sled, nor the modules that do. A violation stops
//! the build with the file and line, so it cannot land by accident.

use std::fs;
use std::path::{Path, PathBuf};

/// The pure modules, as files or directories under `src/`.
const PURE: &[&str] = &[
    "units.rs",
    "random.rs",
    "authorization.rs",
    "config",
    "ocpp",
    "allocation",
    "tariff",
    "station/limits.rs",
    "station/limits",
    "station/phases.rs",
    "store/records.rs",
];

/// Crates a pure module may not name.
const IMPURE_CRATES: &[&str] = &["actix", "tokio", "sled", "tokio_modbus", "tokio_serial"];
/// Our modules a pure module may not use (`crate::store::records` is plain data).
const IMPURE_MODULES: &[&str] = &[
    "store",
    "station",
    "supervisor",
    "meter",
    "zone",
    "calendar",
];
const ALLOWED_PATHS: &[&str] = &[
    "crate::store::records",
    "crate::station::limits",
    "crate::station::phases",
];

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    for entry in PURE {
        collect(&src.join(entry), &mut files);
    }
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in words(code) {
                if IMPURE_CRATES.contains(&word) {
                    problems.push(format!("{}:{}: names `{word}`", file.display(), n + 1));
                }
            }
            for module in IMPURE_MODULES {
                let path = format!("crate::{module}");
                let mut rest = code;
                while let Some(at) = rest.find(&path) {
                    let tail = &rest[at..];
                    let boundary = tail[path.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    if boundary && !ALLOWED_PATHS.iter().any(|a| tail.starts_with(a)) {
                        problems.push(format!("{}:{}: uses `{path}`", file.display(), n + 1));
                    }
                    rest = &tail[path.len()..];
                }
            }
        }
    }
    if !problems.is_empty() {
        panic!(
            "pure modules must not use actix, tokio, sled or the actor modules \
             (see ARCHITECTURE.md, \"What may know what\"):\n{}",
            problems.join("\n")
        );
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                collect(&e.path(), out);
            }
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The identifiers of a line of code.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}
