//! `rmqttd transform new NAME`: a transform crate that builds as generated, outside any
//! workspace, with the SDK of the checkout this binary was built from, native tests, a
//! golden-file check of the built module, and a README with the commands.
//! `rmqttd transform new --js NAME`: the same transform as a JavaScript file, with its
//! golden files and README.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct NewArgs {
    /// The crate's name (letters, digits, `-` and `_`, starting with a letter).
    name: String,
    /// Where to create it (its directory is `<dir>/<name>`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The SDK (`guest-sdk` of a checkout); by default the one this binary was built
    /// from.
    #[arg(long)]
    sdk: Option<PathBuf>,
    /// A JavaScript transform (`NAME.js`, for `transform.script`) instead of a crate.
    #[arg(long, conflicts_with = "sdk")]
    js: bool,
}

/// The files of a new crate: path, template.
const FILES: [(&str, &str); 8] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    (
        ".cargo/config.toml",
        include_str!("template/cargo-config.toml.tmpl"),
    ),
    (".gitignore", include_str!("template/gitignore.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    (
        "golden/input.jsonl",
        include_str!("template/input.jsonl.tmpl"),
    ),
    ("golden/config", include_str!("template/golden-config.tmpl")),
    (
        "golden/expected.jsonl",
        include_str!("template/expected.jsonl.tmpl"),
    ),
    ("README.md", include_str!("template/README.md.tmpl")),
];

/// The files of a new JavaScript transform: path, template.
const SCRIPT_FILES: [(&str, &str); 5] = [
    ("{{name}}.js", include_str!("template/script.js.tmpl")),
    (
        "golden/input.jsonl",
        include_str!("template/input.jsonl.tmpl"),
    ),
    ("golden/config", include_str!("template/golden-config.tmpl")),
    (
        "golden/expected.jsonl",
        include_str!("template/expected-js.jsonl.tmpl"),
    ),
    ("README.md", include_str!("template/README-js.md.tmpl")),
];

/// Writes the crate and says what to run next.
pub fn run(args: &NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdk = sdk(args, &repo)?;
    let dir = std::path::absolute(args.dir.join(&args.name))?;
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let repo = std::fs::canonicalize(&repo).unwrap_or(repo);
    let lib = args.name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{name}}", &args.name)
            .replace("{{lib}}", &lib)
            .replace("{{sdk}}", &sdk)
            .replace("{{repo}}", &repo.display().to_string())
            .replace("{{dir}}", &dir.display().to_string())
    };
    let files: &[(&str, &str)] = if args.js { &SCRIPT_FILES } else { &FILES };
    for (path, template) in files {
        let file = dir.join(fill(path));
        std::fs::create_dir_all(file.parent().expect("a file is in a directory"))?;
        std::fs::write(&file, fill(template))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    println!("created {}; next:", dir.display());
    if args.js {
        println!(
            "  README.md: check {}.js against golden/, and try it in the demo",
            args.name
        );
        return Ok(());
    }
    println!("  cd {} && cargo test && cargo module", dir.display());
    println!("  then README.md: check the built module against golden/, and try it in the demo");
    Ok(())
}

/// The SDK a new crate depends on, by absolute path; none for a script, which needs none.
fn sdk(args: &NewArgs, repo: &Path) -> Result<String> {
    if args.js {
        return Ok(String::new());
    }
    let sdk = args.sdk.clone().unwrap_or_else(|| repo.join("guest-sdk"));
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("the SDK at {} (give one with --sdk)", sdk.display()))?;
    Ok(sdk.display().to_string())
}

/// A crate name that Cargo takes and that is a Rust identifier once `-` becomes `_`.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_is_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("`{name}` is not a crate name: letters, digits, `-` and `_`, starting with a letter");
    }
    Ok(())
}
