//! `cargo xtask dist`: static release binaries of the service and the probe in `target/dist/`.
//!
//! Both are linked statically against glibc (`-C target-feature=+crt-static`; musl is not
//! installable here) so that they run in an empty `FROM scratch` image. The target triple is
//! given explicitly: with `--target`, `RUSTFLAGS` reach only the shipped code and not build
//! scripts or proc macros, which must stay dynamic to run on the host.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use crate::elf;
use crate::project::Project;

/// The target both binaries are built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// What one shipped binary is built from.
struct Recipe {
    package: &'static str,
    /// The cargo profile: `release` for the service, `probe` (size first, `panic = "abort"`)
    /// for the healthchecker, which runs in every replica every few seconds.
    profile: &'static str,
}

const RECIPES: [Recipe; 2] = [
    Recipe {
        package: "accountservice",
        profile: "release",
    },
    Recipe {
        package: "healthchecker",
        profile: "probe",
    },
];

/// One binary in `target/dist/`.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The binary's file name (also the package name).
    pub name: &'static str,
    /// Where it was copied.
    pub path: PathBuf,
    /// Its size on disk in bytes.
    pub size: u64,
}

/// The binaries `dist` produced, service first.
#[derive(Debug, Clone)]
pub struct Dist {
    /// `accountservice`, then `healthchecker`.
    pub artifacts: Vec<Artifact>,
}

/// Builds, copies, checks that each binary is static, and prints the sizes.
pub fn run(sh: &Shell, project: &Project) -> Result<Dist> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let dist_dir = project.dist_dir();
    sh.create_dir(&dist_dir)?;
    let mut artifacts = Vec::new();
    for recipe in &RECIPES {
        let Recipe { package, profile } = recipe;
        cmd!(
            sh,
            "{cargo} build --package {package} --bin {package} --profile {profile} --target {TARGET}"
        )
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .run()
        .with_context(|| format!("building {package} (static, profile {profile})"))?;

        let built = project.target_dir.join(TARGET).join(profile).join(package);
        let path = dist_dir.join(package);
        sh.copy_file(&built, &path)
            .with_context(|| format!("copying {} to {}", built.display(), path.display()))?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let is_static = elf::is_static(&bytes)
            .with_context(|| format!("inspecting {} as ELF", path.display()))?;
        ensure!(
            is_static,
            "{} has a PT_INTERP header: it is dynamically linked and cannot run FROM scratch",
            path.display()
        );
        artifacts.push(Artifact {
            name: package,
            path,
            size: u64::try_from(bytes.len())?,
        });
    }

    println!("static binaries in {}:", dist_dir.display());
    for artifact in &artifacts {
        println!(
            "  {:<15} {:>9} bytes ({:.2} MiB), static (no PT_INTERP)",
            artifact.name,
            artifact.size,
            mib(artifact.size)
        );
    }
    Ok(Dist { artifacts })
}

/// Bytes in mebibytes, for display.
pub fn mib(bytes: u64) -> f64 {
    // Precision loss is irrelevant for sizes printed with two decimals.
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}
