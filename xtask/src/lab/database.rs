//! The lab's database: a real PostgreSQL server in a network namespace of its own, plugged into
//! the lab's switch with its own address, outside Swarm as a managed database would be. Every
//! replica uses it (`--database-url`). It can be stopped and started again (an outage everyone
//! sees), and one node can be cut off from it alone (its namespace drops what its containers send
//! the database, but not what they send their peers). Tear-down finds it like everything else of
//! the lab: its processes live in a lab namespace, its files in the lab directory.

use std::path::PathBuf;

use anyhow::Result;
use xshell::{Shell, cmd};

use super::names::{PREFIX, ROOT, SWITCH};
use super::node::{Node, SUBNET};
use crate::postgres::Server;

/// The database's port.
const PORT: u16 = 5432;

/// The lab's database server.
pub struct Database {
    /// The server, in its namespace.
    pub server: Server,
    /// Its address on the lab network.
    pub addr: String,
}

impl Database {
    /// Makes the namespace, plugs it into the switch, creates the cluster and starts it.
    pub fn create(host: &Shell) -> Result<Self> {
        let name = format!("{PREFIX}-db");
        let addr = format!("{SUBNET}.20");
        let cidr = format!("{addr}/24");
        cmd!(host, "ip netns add {name}").quiet().run()?;
        cmd!(host, "ip -n {name} link set lo up").quiet().run()?;
        cmd!(
            host,
            "ip -n {SWITCH} link add db type veth peer name eth0 netns {name}"
        )
        .quiet()
        .run()?;
        cmd!(host, "ip -n {SWITCH} link set db master br0 up")
            .quiet()
            .run()?;
        cmd!(host, "ip -n {name} addr add {cidr} dev eth0")
            .quiet()
            .run()?;
        cmd!(host, "ip -n {name} link set eth0 up").quiet().run()?;
        let server = Server::init(
            &PathBuf::from(ROOT).join("db"),
            &addr,
            PORT,
            &format!("{SUBNET}.0/24"),
            Some(PathBuf::from("/run/netns").join(&name)),
        )?;
        server.start()?;
        Ok(Self { server, addr })
    }

    /// `--database-url` for the service, as an environment variable.
    pub fn env(&self) -> String {
        format!("ACCOUNTSERVICE_DATABASE_URL={}", self.server.url())
    }

    /// Makes `node` drop every packet its containers send the database (a rule in its own
    /// namespace, ahead of Docker's); its peers it still reaches.
    pub fn cut_off(&self, host: &Shell, node: &Node) -> Result<()> {
        let (netns, addr) = (node.netns(), &self.addr);
        let netns = format!("--net={}", netns.display());
        cmd!(
            host,
            "nsenter {netns} -- iptables -w 5 -I FORWARD 1 -d {addr} -j DROP"
        )
        .quiet()
        .run()?;
        Ok(())
    }

    /// Removes the rule [`Database::cut_off`] added.
    pub fn reconnect(&self, host: &Shell, node: &Node) -> Result<()> {
        let (netns, addr) = (node.netns(), &self.addr);
        let netns = format!("--net={}", netns.display());
        cmd!(
            host,
            "nsenter {netns} -- iptables -w 5 -D FORWARD -d {addr} -j DROP"
        )
        .quiet()
        .run()?;
        Ok(())
    }
}
