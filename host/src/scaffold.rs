//! `sluice plugin new NAME [--lang rust|typescript]`: a ready-to-build plugin (an indexer with
//! routes and a test that runs it in the real host runtime) that needs nothing but this binary
//! and the package registry (crates.io, npm): the SDK, what it shares with the host and the WIT
//! contract are written into it (`sluice-sdk/`), from the copies built into the binary.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Files to write: (path, text).
type Files = &'static [(&'static str, &'static str)];

/// The language a new plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// A Rust crate built with cargo for `wasm32-wasip2`.
    Rust,
    /// A TypeScript project built with jco/componentize-js (npm).
    Typescript,
}

/// The crate's own files (templates in `host/templates/plugin/`).
const RUST_TEMPLATES: [(&str, &str); 6] = [
    ("Cargo.toml", include_str!("../templates/plugin/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../templates/plugin/lib.rs.tmpl")),
    ("tests/plugin.rs", include_str!("../templates/plugin/test.rs.tmpl")),
    ("README.md", include_str!("../templates/plugin/README.md.tmpl")),
    (".cargo/config.toml", include_str!("../templates/plugin/cargo-config.toml.tmpl")),
    (".gitignore", "/target\n"),
];

/// A TypeScript project's own files (templates in `host/templates/plugin-ts/`).
const TYPESCRIPT_TEMPLATES: [(&str, &str); 6] = [
    ("package.json", include_str!("../templates/plugin-ts/package.json.tmpl")),
    ("tsconfig.json", include_str!("../templates/plugin-ts/tsconfig.json.tmpl")),
    ("src/plugin.ts", include_str!("../templates/plugin-ts/plugin.ts.tmpl")),
    ("test/plugin.test.mjs", include_str!("../templates/plugin-ts/test.mjs.tmpl")),
    ("README.md", include_str!("../templates/plugin-ts/README.md.tmpl")),
    (".gitignore", "/node_modules\n/dist\n/sluice-sdk/types\n"),
];

/// The TypeScript SDK and the WIT world.
const TYPESCRIPT_SDK: [(&str, &str); 3] = [
    ("sluice.ts", include_str!("../../plugin-sdk-ts/sluice.ts")),
    ("testing.mjs", include_str!("../../plugin-sdk-ts/testing.mjs")),
    ("wit/sluice.wit", include_str!("../../wit/sluice.wit")),
];

/// The SDK's sources, the shared Casper crate's and the WIT world, as in this repository.
const SDK_SOURCES: [(&str, &str); 12] = [
    ("plugin-sdk/src/lib.rs", include_str!("../../plugin-sdk/src/lib.rs")),
    ("plugin-sdk/src/amount.rs", include_str!("../../plugin-sdk/src/amount.rs")),
    ("plugin-sdk/src/casper.rs", include_str!("../../plugin-sdk/src/casper.rs")),
    ("plugin-sdk/src/collection.rs", include_str!("../../plugin-sdk/src/collection.rs")),
    ("plugin-sdk/src/contract.rs", include_str!("../../plugin-sdk/src/contract.rs")),
    ("plugin-sdk/src/manifest.rs", include_str!("../../plugin-sdk/src/manifest.rs")),
    ("plugin-sdk/src/router.rs", include_str!("../../plugin-sdk/src/router.rs")),
    ("plugin-sdk/src/testing.rs", include_str!("../../plugin-sdk/src/testing.rs")),
    ("casper/src/lib.rs", include_str!("../../casper/src/lib.rs")),
    ("casper/src/account.rs", include_str!("../../casper/src/account.rs")),
    ("casper/src/contract_event.rs", include_str!("../../casper/src/contract_event.rs")),
    ("wit/sluice.wit", include_str!("../../wit/sluice.wit")),
];

/// Their manifests, which take versions from the workspace's.
const SDK_MANIFESTS: [(&str, &str); 2] = [
    ("plugin-sdk/Cargo.toml", include_str!("../../plugin-sdk/Cargo.toml")),
    ("casper/Cargo.toml", include_str!("../../casper/Cargo.toml")),
];
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// Where the crate keeps the SDK.
const SDK_DIR: &str = "sluice-sdk";

/// Create the plugin `name` in `language` in `parent`; returns its folder.
pub fn new_plugin(name: &str, parent: &Path, language: Language) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "a plugin name is lowercase letters, digits, `-` and `_`"
    );
    let dir = std::path::absolute(parent.join(name))?;
    anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
    let sluice = std::env::current_exe().context("finding this binary")?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &name.replace('-', "_"))
            .replace("{{dir}}", &dir.display().to_string())
            .replace("{{sluice}}", &sluice.display().to_string())
            .replace("{{version}}", env!("CARGO_PKG_VERSION"))
    };
    let (templates, sdk_files): (Files, Files) = match language {
        Language::Rust => (&RUST_TEMPLATES, &SDK_SOURCES),
        Language::Typescript => (&TYPESCRIPT_TEMPLATES, &TYPESCRIPT_SDK),
    };
    let mut files: Vec<(PathBuf, String)> = templates.iter().map(|(file, text)| (dir.join(file), fill(text))).collect();
    let sdk = dir.join(SDK_DIR);
    files.extend(sdk_files.iter().map(|(file, text)| (sdk.join(file), text.to_string())));
    if language == Language::Rust {
        for (file, manifest) in SDK_MANIFESTS {
            files.push((sdk.join(file), standalone_manifest(manifest)?));
        }
    }
    for (path, text) in files {
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// A workspace member's manifest made standalone: what it takes from the workspace
/// (`edition.workspace = true`, `serde.workspace = true`, …) written out, and the shared
/// Casper crate found beside the SDK.
fn standalone_manifest(member: &str) -> anyhow::Result<String> {
    let workspace: toml::Table = WORKSPACE_MANIFEST.parse()?;
    let shared = |section: &str| workspace["workspace"].get(section).and_then(toml::Value::as_table).cloned();
    let (package_fields, dependencies) =
        (shared("package").unwrap_or_default(), shared("dependencies").unwrap_or_default());
    let mut manifest: toml::Table = member.parse()?;
    if let Some(package) = manifest.get_mut("package").and_then(toml::Value::as_table_mut) {
        for (field, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = package_fields.get(field).cloned().with_context(|| format!("workspace.package.{field}"))?;
            }
        }
    }
    for section in ["dependencies", "dev-dependencies"] {
        let Some(table) = manifest.get_mut(section).and_then(toml::Value::as_table_mut) else { continue };
        for (name, value) in table.iter_mut() {
            if !is_inherited(value) {
                continue;
            }
            let mut resolved = match dependencies.get(name).with_context(|| format!("workspace.dependencies.{name}"))? {
                toml::Value::String(version) => {
                    toml::Table::from_iter([("version".to_owned(), version.clone().into())])
                }
                toml::Value::Table(table) => table.clone(),
                other => anyhow::bail!("workspace.dependencies.{name} = {other}"),
            };
            if name == "sluice-casper" {
                resolved.insert("path".into(), "../casper".into());
            }
            // A member's own keys (features) come on top of the workspace's.
            for (key, local) in value.as_table().into_iter().flatten().filter(|(key, _)| *key != "workspace") {
                resolved.insert(key.clone(), local.clone());
            }
            *value = toml::Value::Table(resolved);
        }
    }
    // `[package]` first, as people write it.
    let package = toml::Table::from_iter(manifest.remove("package").map(|p| ("package".to_owned(), p)));
    Ok(format!("{}\n{}", toml::to_string(&package)?, toml::to_string(&manifest)?))
}

/// `{ workspace = true }`.
fn is_inherited(value: &toml::Value) -> bool {
    value.get("workspace").and_then(toml::Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_source_is_written_into_a_new_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for dir in ["plugin-sdk/src", "casper/src", "wit"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let file = format!("{dir}/{}", entry.unwrap().file_name().to_string_lossy());
                assert!(SDK_SOURCES.iter().any(|(written, _)| *written == file), "{file} is not in SDK_SOURCES");
            }
        }
    }

    #[test]
    fn member_manifests_become_standalone() {
        let sdk: toml::Table = standalone_manifest(SDK_MANIFESTS[0].1).unwrap().parse().unwrap();
        assert_eq!(sdk["package"]["edition"].as_str(), Some("2024"));
        assert_eq!(sdk["dependencies"]["sluice-casper"]["path"].as_str(), Some("../casper"));
        assert_eq!(sdk["dependencies"]["serde"]["features"][0].as_str(), Some("derive"));
        assert!(sdk.to_string().find("workspace").is_none(), "{sdk}");
    }
}
