//! The folders of `src/` in layers, as `src/lib.rs` draws them: a module uses only the
//! modules of lower layers (and its own). Read from the source's `crate::` paths, so that
//! a new import that points up fails here, naming the file and the line.

use std::path::{Path, PathBuf};

/// Lowest first; the modules on one line are one layer and do not use each other.
const LAYERS: &[&[&str]] = &[
    &["thread_index", "shape"],
    &["record", "route", "observe"],
    &["config"],
    &["kafka", "spool", "transform", "schema"],
    &["delivery"],
    &["pipeline"],
    &["endpoint"],
    &["hooks"],
    &["control"],
    &["plugin"],
];

/// The crate's root, which may name every module.
const ROOT: &str = "lib";

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to: `src/spool/log.rs` → `spool`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_str().unwrap().trim_end_matches(".rs").to_owned()
}

/// Every `crate::name` in `line` (outside comments), with its name.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::{a, b}` names several.
        if name.is_empty() && after.starts_with('{') {
            let inner = after[1..].split('}').next().unwrap_or_default();
            names.extend(
                inner
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or_default().to_owned()),
            );
        } else {
            names.push(name);
        }
        rest = after;
    }
    names
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == ROOT {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            panic!("src/{module} is in no layer: add it to LAYERS and to lib.rs's drawing");
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                // Macros exported at the crate's root (`crate::log_limited`) are instruments.
                let Some(theirs) = layer_of(&used) else {
                    continue;
                };
                if used != module && theirs >= own {
                    let at = file.strip_prefix(&src).unwrap().display();
                    violations.push(format!("src/{at}:{}: {module} uses {used}", n + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that point up or sideways:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_a_layer_and_every_layer_exists() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("pub ");
            l.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect();
    for m in &declared {
        assert!(layer_of(m).is_some(), "`mod {m}` is in no layer");
    }
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            declared.contains(m),
            "layer module {m} is not declared in lib.rs"
        );
    }
}

#[test]
fn paths_are_read_from_use_lines_and_inline_paths() {
    assert_eq!(crate_paths("use crate::config::{A, B};"), ["config"]);
    assert_eq!(
        crate_paths("use crate::{log_limited, observe::Outcome};"),
        ["log_limited", "observe"]
    );
    assert_eq!(
        crate_paths("let x = crate::observe::clock::wall_ms(); // crate::hooks"),
        ["observe"]
    );
}
