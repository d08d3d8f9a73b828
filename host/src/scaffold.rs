//! `sluice plugin new NAME`: a ready-to-build plugin crate (an indexer with routes and a test
//! that runs it in the real host runtime), from the templates in `host/templates/plugin/`.

use anyhow::Context;
use std::path::{Path, PathBuf};

const FILES: [(&str, &str); 5] = [
    ("Cargo.toml", include_str!("../templates/plugin/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../templates/plugin/lib.rs.tmpl")),
    ("tests/plugin.rs", include_str!("../templates/plugin/test.rs.tmpl")),
    ("README.md", include_str!("../templates/plugin/README.md.tmpl")),
    (".gitignore", "/target\n"),
];

/// Create the crate `name` in `parent`; returns its folder. The SDK and the host (for tests)
/// are referenced by path, from where this `sluice` was built.
pub fn new_plugin(name: &str, parent: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "a plugin name is lowercase letters, digits, `-` and `_`"
    );
    let dir = std::path::absolute(parent.join(name))?;
    anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk = host.join("../plugin-sdk");
    let sdk = sdk.canonicalize().with_context(|| format!("the plugin SDK is not at {} any more", sdk.display()))?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{host}}", &host.display().to_string())
            .replace("{{dir}}", &dir.display().to_string())
    };
    for (file, template) in FILES {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))?;
        std::fs::write(&path, fill(template)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}
