//! `cargo xtask image`: the `FROM scratch` container image, built offline from `dist`'s binaries.
//!
//! The build context is a directory holding only the two binaries, `deploy/Dockerfile` and an
//! empty `data/` directory: nothing else of the checkout is sent to the engine, and nothing is
//! pulled.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::dist::{self, Dist, mib};
use crate::project::Project;

/// The image repository name.
pub const REPOSITORY: &str = "accountservice";

/// The tag every task refers to by default.
pub const LATEST: &str = "accountservice:latest";

/// What `image` built.
#[derive(Debug, Clone)]
pub struct Image {
    /// `accountservice:<version>-<commit>`: names exactly this build.
    pub versioned_tag: String,
    /// Uncompressed size as the engine reports it, in bytes.
    pub size: u64,
}

/// Runs `dist`, then builds and tags the image and prints its size.
pub fn run(sh: &Shell, project: &Project) -> Result<Image> {
    let dist = dist::run(sh, project)?;
    build(sh, project, &dist)
}

/// Builds the image from already built binaries.
pub fn build(sh: &Shell, project: &Project, dist: &Dist) -> Result<Image> {
    let context = project.dist_dir().join("image-context");
    if context.exists() {
        sh.remove_path(&context)?;
    }
    sh.create_dir(context.join("data"))?;
    for artifact in &dist.artifacts {
        sh.copy_file(&artifact.path, context.join(artifact.name))?;
    }
    sh.copy_file(
        project.root.join("deploy/Dockerfile"),
        context.join("Dockerfile"),
    )?;

    let version = project.version();
    let revision = project.revision(sh)?;
    let versioned_tag = format!("{REPOSITORY}:{version}-{revision}");
    cmd!(
        sh,
        "docker build --tag {LATEST} --tag {versioned_tag}
            --label org.opencontainers.image.title=accountservice
            --label org.opencontainers.image.version={version}
            --label org.opencontainers.image.revision={revision}
            {context}"
    )
    .run()
    .context("building the image (is the Docker Engine running? `docker info` tells)")?;

    let size = image_size(sh, LATEST)?;
    println!(
        "image {LATEST} = {versioned_tag}: {size} bytes ({:.2} MiB) uncompressed",
        mib(size)
    );
    Ok(Image {
        versioned_tag,
        size,
    })
}

/// An image's uncompressed size in bytes.
pub fn image_size(sh: &Shell, image: &str) -> Result<u64> {
    let format = "{{.Size}}";
    let size = cmd!(sh, "docker image inspect --format {format} {image}")
        .quiet()
        .read()
        .with_context(|| format!("inspecting image {image}"))?;
    size.trim()
        .parse()
        .with_context(|| format!("image size {size:?} is not a number"))
}
