//! Where things are: the workspace root, the target directory, and what the build is called
//! (version and commit) when it is tagged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

/// Paths of the checkout xtask runs in.
#[derive(Debug, Clone)]
pub struct Project {
    /// The workspace root (the directory holding the root `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR` when set, else `<root>/target`).
    pub target_dir: PathBuf,
}

impl Project {
    /// Finds the workspace from xtask's own manifest directory, so the tasks work from any
    /// current directory.
    pub fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        Ok(Self { root, target_dir })
    }

    /// `target/dist/`: the static binaries ready to ship.
    pub fn dist_dir(&self) -> PathBuf {
        self.target_dir.join("dist")
    }

    /// The workspace version (every crate inherits it).
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// The short commit hash, with `-dirty` when the work tree has uncommitted changes, so an
    /// image tag never claims to be a commit it is not.
    pub fn revision(&self, sh: &Shell) -> Result<String> {
        let sha = cmd!(sh, "git rev-parse --short=12 HEAD")
            .quiet()
            .read()
            .context("reading the commit with git")?;
        let dirty = !cmd!(sh, "git status --porcelain --untracked-files=no")
            .quiet()
            .read()
            .context("asking git whether the work tree is clean")?
            .is_empty();
        Ok(if dirty { format!("{sha}-dirty") } else { sha })
    }
}
