//! A real etcd server for one test: free loopback ports, a temporary data
//! directory, health checked before use, killed (by PID) on drop; it can be
//! stopped and started again on the same data directory and ports to test
//! clients across a server restart.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until, ChildGuard};

/// How long a fresh or restarted etcd may take to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running (or stopped) etcd owned by a test.
#[derive(Debug)]
pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<ChildGuard>,
}

impl Etcd {
    /// Starts `etcd` on two free loopback ports with a new data directory and
    /// waits until `/health` says so.
    pub fn start() -> io::Result<Self> {
        let mut etcd = Self {
            dir: tempfile::Builder::new().prefix("tortie-etcd-").tempdir()?,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.start_again()?;
        Ok(etcd)
    }

    /// `127.0.0.1:PORT` of the client listener.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The datastore URL tortie takes: `etcd://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoint())
    }

    /// The data directory (kept across stop/start).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Is the server process running?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: etcd syncs every commit, so nothing is lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts the server again on the same ports and data directory (a no-op
    /// if it runs) and waits for it to be healthy.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))?;
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg("tortie-test")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("tortie-test={peer}")])
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = ChildGuard::spawn("etcd", &mut cmd)?;
        let port = self.client_port;
        let healthy = wait_until(
            "etcd to report healthy",
            START_TIMEOUT,
            Duration::from_millis(20),
            || child.try_exit().is_some() || healthy(port),
        );
        if let Some(status) = child.try_exit() {
            return Err(io::Error::other(format!(
                "etcd exited with {status}; see {}",
                self.dir.path().join("etcd.log").display()
            )));
        }
        healthy.map_err(io::Error::other)?;
        self.child = Some(child);
        Ok(())
    }
}

/// True when `GET /health` on the client port answers `"health":"true"`.
fn healthy(port: u16) -> bool {
    let probe = || -> io::Result<bool> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body.contains("\"health\":\"true\""))
    };
    probe().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "root: starts a real etcd server (full suite)"]
    fn etcd_starts_healthy_stops_and_restarts_on_the_same_data() {
        let mut etcd = Etcd::start().unwrap();
        assert!(healthy(etcd.client_port));
        etcd.stop();
        assert!(!healthy(etcd.client_port));
        etcd.start_again().unwrap();
        assert!(healthy(etcd.client_port));
        assert!(etcd.data_dir().join("data").exists());
    }
}
