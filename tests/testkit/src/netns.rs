//! Network namespaces created for one test and deleted when dropped.
//!
//! Every process started inside is killed before the namespace goes
//! (`ip netns pids`), so nothing a test started outlives it.

use std::io;
use std::process::{Command, Output, Stdio};

/// A named network namespace (`/var/run/netns/NAME`) owned by a test.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

impl Netns {
    /// Creates namespace `name` (deleting a leftover of the same name first)
    /// and brings its loopback up.
    pub fn create(name: &str) -> io::Result<Self> {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path, as CNI_NETNS or setns want it.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip netns exec NAME <args...>`, failing on a non-zero exit.
    pub fn exec(&self, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// `ip -n NAME <args...>`, failing on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `ip -n NAME <args...>` returning stdout as a string.
    pub fn ip_out(&self, args: &[&str]) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&self.ip(args)?.stdout).into_owned())
    }

    /// A `Command` that runs `prog` inside the namespace.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Joins `self` and `other` with a veth pair: `a_if` here with `a_cidr`,
    /// `b_if` in `other` with `b_cidr`; both ends up.
    pub fn veth_to(
        &self,
        a_if: &str,
        a_cidr: &str,
        other: &Netns,
        b_if: &str,
        b_cidr: &str,
    ) -> io::Result<()> {
        self.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            &other.name,
        ])?;
        self.ip(&["addr", "add", a_cidr, "dev", a_if])?;
        self.ip(&["link", "set", a_if, "up"])?;
        other.ip(&["addr", "add", b_cidr, "dev", b_if])?;
        other.ip(&["link", "set", b_if, "up"])?;
        Ok(())
    }

    /// Plugs this namespace into bridge `bridge` of namespace `bridge_ns`
    /// (one the test may not own, e.g. a lab's router): a veth whose end
    /// `port` there is a port of the bridge, and whose end `if_name` here
    /// gets `cidr`; both ends up. Deleting either namespace removes the veth.
    pub fn plug_into_bridge(
        &self,
        if_name: &str,
        cidr: &str,
        bridge_ns: &str,
        bridge: &str,
        port: &str,
    ) -> io::Result<()> {
        self.ip(&[
            "link", "add", if_name, "type", "veth", "peer", "name", port, "netns", bridge_ns,
        ])?;
        let there = |args: &[&str]| run(Command::new("ip").args(["-n", bridge_ns]).args(args));
        there(&["link", "set", port, "master", bridge])?;
        there(&["link", "set", port, "up"])?;
        self.ip(&["addr", "add", cidr, "dev", if_name])?;
        self.ip(&["link", "set", if_name, "up"])?;
        Ok(())
    }

    /// Runs one `nft` command inside the namespace, e.g. `add rule inet t
    /// in tcp dport 17900 drop` (its rules go with the namespace).
    pub fn nft(&self, command: &str) -> io::Result<()> {
        let mut args = vec!["nft"];
        args.extend(command.split_whitespace());
        self.exec(&args).map(|_| ())
    }

    /// PIDs of processes running inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "root: creates network namespaces (full suite)"]
    fn namespaces_are_created_joined_and_removed() {
        let p = crate::unique_prefix("ns");
        let a_name = format!("{p}a");
        {
            let a = Netns::create(&a_name).unwrap();
            let b = Netns::create(&format!("{p}b")).unwrap();
            a.veth_to("va", "10.99.0.1/30", &b, "vb", "10.99.0.2/30")
                .unwrap();
            let out = a.exec(&["ping", "-c1", "-W2", "10.99.0.2"]).unwrap();
            assert!(out.status.success());
        }
        let list = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        assert!(
            !list.contains(&a_name),
            "namespace {a_name} left behind: {list}"
        );
    }
}
