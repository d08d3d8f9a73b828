//! The `files` grant: a directory a plugin may read as `/files`. The plugin reads a private
//! copy of its regular files, taken when the plugin loads, never the directory itself: a read
//! blocks in host code, beyond the reach of the time limit, and a FIFO or device in the
//! granted directory would block it for as long as no one writes (or forever). Symbolic links
//! and other special files are left out of the copy, which is bounded in files and bytes.

use anyhow::Context;
use std::path::Path;

/// Most files copied.
const MAX_FILES: usize = 10_000;
/// Most bytes copied.
const MAX_BYTES: u64 = 256 << 20;
/// Deepest directory copied.
const MAX_DEPTH: usize = 16;

/// A copy of the regular files under `dir`, removed when dropped.
pub fn snapshot(dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    let copy = tempfile::Builder::new().prefix("sluice-files-").tempdir().context("a directory for the copy")?;
    let mut budget = (MAX_FILES, MAX_BYTES);
    copy_regular_files(dir, copy.path(), 0, &mut budget).with_context(|| format!("copying {}", dir.display()))?;
    Ok(copy)
}

fn copy_regular_files(from: &Path, to: &Path, depth: usize, budget: &mut (usize, u64)) -> anyhow::Result<()> {
    anyhow::ensure!(depth <= MAX_DEPTH, "directories nested deeper than {MAX_DEPTH}");
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        // Of the entry itself: a symbolic link is not followed.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_regular_files(&source, &target, depth + 1, budget)?;
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            anyhow::ensure!(budget.0 > 0 && size <= budget.1, "more than {MAX_FILES} files or {MAX_BYTES} bytes");
            *budget = (budget.0 - 1, budget.1 - size);
            std::fs::copy(&source, &target)?;
        } else {
            tracing::warn!(path = %source.display(), "not a regular file or directory: not granted to the plugin");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_and_directories_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.hex"), "00").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/more.txt"), "more").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let copy = snapshot(dir.path()).unwrap();
        let mut names: Vec<String> = walk(copy.path());
        names.sort();
        assert_eq!(names, ["schema.hex", "sub", "sub/more.txt"]);
        assert_eq!(std::fs::read_to_string(copy.path().join("sub/more.txt")).unwrap(), "more");
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                names.extend(walk(&path).into_iter().map(|inner| format!("{name}/{inner}")));
            }
            names.push(name);
        }
        names
    }
}
