//! Guards that own a Docker resource and remove it when dropped, so a scenario that fails or
//! panics half-way still leaves the engine as it found it.
//!
//! Removal in `Drop` cannot return an error: a failure is printed, and the leftover check at the
//! end of the run turns it into a failed run.

use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use super::flags::LABEL;
use crate::docker;
use crate::wait::{self, Poll};

/// Runs `cleanup` with a fresh shell and prints any failure (destructors cannot return one).
fn in_drop(what: &str, cleanup: impl FnOnce(&Shell) -> Result<()>) {
    let result = Shell::new()
        .context("opening a shell")
        .and_then(|sh| cleanup(&sh));
    if let Err(err) = result {
        eprintln!("e2e cleanup: could not remove {what}: {err:#}");
    }
}

/// A container started with `docker run --detach`, removed with its anonymous volumes on drop.
pub struct Container {
    /// The full container ID.
    pub id: String,
}

impl Container {
    /// `docker run --detach --label accountservice.e2e=1 <args>`.
    pub fn run(sh: &Shell, args: &[&str]) -> Result<Self> {
        let id = cmd!(sh, "docker run --detach --label {LABEL} {args...}")
            .quiet()
            .read()
            .context("docker run")?;
        Ok(Self { id })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let id = self.id.clone();
        in_drop(&format!("container {id}"), |sh| {
            cmd!(sh, "docker rm --force --volumes {id}")
                .quiet()
                .ignore_stdout()
                .run()?;
            Ok(())
        });
    }
}

/// Removes a service and waits until its containers are gone (their anonymous volumes go with
/// them), so the network they used can be removed next.
pub fn remove_service(sh: &Shell, name: &str) -> Result<()> {
    cmd!(sh, "docker service rm {name}")
        .quiet()
        .ignore_stdout()
        .run()?;
    wait::until(
        &format!("the containers of service {name} to be removed"),
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let left = docker::service_containers(sh, name)?;
            Ok(if left.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} left", left.len()))
            })
        },
    )
}

/// A Swarm service, removed (with its tasks' containers) on drop.
pub struct Service {
    /// The service name.
    pub name: String,
}

impl Service {
    /// `docker service create --detach --no-resolve-image --name <name> <args>`, labelled.
    pub fn create(sh: &Shell, name: &str, args: &[&str]) -> Result<Self> {
        cmd!(
            sh,
            "docker service create --detach --no-resolve-image --name {name}
                --label {LABEL} --container-label {LABEL} {args...}"
        )
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("creating service {name}"))?;
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let name = self.name.clone();
        in_drop(&format!("service {name}"), |sh| remove_service(sh, &name));
    }
}

/// Removes a network, retrying while the engine still releases endpoints of removed tasks.
pub fn remove_network(sh: &Shell, name: &str) -> Result<()> {
    wait::until(
        &format!("network {name} to be removed"),
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let output = cmd!(sh, "docker network rm {name}")
                .quiet()
                .ignore_status()
                .output()?;
            Ok(
                if output.status.success() || !docker::network_exists(sh, name)? {
                    Poll::Ready(())
                } else {
                    Poll::Pending(String::from_utf8_lossy(&output.stderr).trim().to_owned())
                },
            )
        },
    )
}

/// An attachable overlay network, removed on drop.
pub struct Network {
    /// The network name.
    pub name: String,
}

impl Network {
    /// Creates an attachable overlay network.
    pub fn overlay(sh: &Shell, name: &str) -> Result<Self> {
        docker::create_overlay_network(sh, name)?;
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let name = self.name.clone();
        in_drop(&format!("network {name}"), |sh| remove_network(sh, &name));
    }
}

/// An image tag made for a scenario, untagged on drop.
pub struct Tag {
    /// `repository:tag`.
    pub name: String,
}

impl Tag {
    /// Takes ownership of an existing tag.
    pub fn adopt(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let name = self.name.clone();
        in_drop(&format!("image tag {name}"), |sh| {
            cmd!(sh, "docker rmi {name}")
                .quiet()
                .ignore_stdout()
                .run()?;
            Ok(())
        });
    }
}

/// Membership of a Swarm for the run: joins (initialises) one if the node is not in a Swarm,
/// and on drop leaves it again only if it initialised it, removing the `docker_gwbridge`
/// network that `swarm init` creates when it was not there before.
pub struct Swarm {
    initialised: bool,
    gwbridge_existed: bool,
}

impl Swarm {
    /// Makes sure the node is a Swarm manager.
    pub fn join(sh: &Shell) -> Result<Self> {
        let gwbridge_existed = docker::network_exists(sh, "docker_gwbridge")?;
        let initialised = docker::ensure_swarm(sh)?;
        Ok(Self {
            initialised,
            gwbridge_existed,
        })
    }

    /// Whether this run initialised the Swarm.
    pub fn initialised(&self) -> bool {
        self.initialised
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if !self.initialised {
            return;
        }
        in_drop("the swarm this run initialised", |sh| {
            cmd!(sh, "docker swarm leave --force")
                .quiet()
                .ignore_stdout()
                .run()?;
            if !self.gwbridge_existed && docker::network_exists(sh, "docker_gwbridge")? {
                remove_network(sh, "docker_gwbridge")?;
            }
            Ok(())
        });
    }
}
