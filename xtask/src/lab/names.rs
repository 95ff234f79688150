//! Every name and path the lab gives, which its parts and its tear-down share.

/// Every name the lab gives (namespaces, cgroups, hostnames) starts with this.
pub const PREFIX: &str = "aslab";

/// The lab's directory: node data roots, sockets, pidfiles, logs, the saved image.
pub const ROOT: &str = "/run/aslab";

/// The switch namespace (it holds the bridge `br0`).
pub const SWITCH: &str = "aslab-switch";

/// Nodes in the lab.
pub const NODES: usize = 3;
