//! The `tortie` plugin's commands: ADD (IPAM, veth, routes, endpoint, with
//! rollback), DEL (idempotent), CHECK, STATUS and GC.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::config::NetConf;
use crate::delegate::{exec_ipam, find_plugin};
use crate::endpoint;
use crate::env::{CniEnv, Command};
use crate::error::CniError;
use crate::ipam_plugin;
use crate::lock::lock_host;
use crate::naming::{host_veth_name, POD_GATEWAY_V4, POD_GATEWAY_V6};
use crate::result::{CniResult, Interface, IpConfig, Route};
use crate::state::{self, AttachmentState};
use crate::wiring::{self, host_prefix, Plan};

/// Test-only fault injection: `TORTIE_CNI_FAIL_AFTER=<step>` makes ADD fail
/// right after that step (`ipam`, `veth`, `pod`, `endpoint`), to prove rollback.
pub const FAIL_AFTER_ENV: &str = "TORTIE_CNI_FAIL_AFTER";

/// One plugin invocation: environment, validated config, and the raw stdin.
#[derive(Debug)]
pub struct Invocation {
    /// The CNI_* environment.
    pub env: CniEnv,
    /// The validated network configuration.
    pub conf: NetConf,
    /// stdin as received (passed unchanged to the IPAM plugin).
    pub raw: Vec<u8>,
    /// The fault injection point, if any (tests only).
    pub fail_after: Option<String>,
}

/// What ADD has done so far, so a failure can undo it in reverse.
#[derive(Debug, Default)]
struct Undo {
    ipam: bool,
    veth: Option<String>,
    endpoint: bool,
}

impl Invocation {
    fn fault(&self, step: &str) -> Result<(), CniError> {
        match &self.fail_after {
            Some(s) if s == step => Err(CniError::Injected(step.into())),
            _ => Ok(()),
        }
    }

    fn host_veth(&self) -> String {
        let pod = match (&self.env.args.pod_namespace, &self.env.args.pod_name) {
            (Some(ns), Some(pod)) => Some((ns.as_str(), pod.as_str())),
            _ => None,
        };
        host_veth_name(pod, &self.env.container_id)
    }

    fn netns(&self) -> PathBuf {
        self.env.netns.clone().unwrap_or_default()
    }

    /// Runs the IPAM plugin for `command` under the host IPAM lock:
    /// `tortie-ipam` in-process, any other type exec'd from CNI_PATH.
    fn ipam_exec(&self, command: Command) -> Result<Option<CniResult>, CniError> {
        let ipam = self.conf.require_ipam()?;
        let binary = match ipam.ipam_type.as_str() {
            ipam_plugin::IPAM_TYPE => None,
            other => Some(find_plugin(other, &self.env.path)?),
        };
        let _lock = lock_host(
            &self.conf.state_dir.join("ipam.lock"),
            self.conf.lock_timeout,
        )?;
        match binary {
            Some(binary) => exec_ipam(&binary, command, &self.raw),
            None => self.ipam_in_process(command),
        }
    }

    /// `tortie-ipam` without the exec: its result goes through the same JSON
    /// (for this config's cniVersion) and its errors are reported as a
    /// delegate's, exactly as if the binary had run.
    fn ipam_in_process(&self, command: Command) -> Result<Option<CniResult>, CniError> {
        let out = ipam_plugin::run_command(self, command).map_err(|e| CniError::Delegate {
            plugin: ipam_plugin::IPAM_TYPE.into(),
            code: e.code(),
            msg: e.msg(),
            details: e.details(),
        })?;
        match (command, out) {
            (Command::Add, Some(v)) => CniResult::from_json(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Runs the command; `Ok(Some(json))` is printed on stdout.
    pub fn run(&self) -> Result<Option<serde_json::Value>, CniError> {
        match self.env.command {
            Command::Add => self.add().map(Some),
            Command::Del => self.del().map(|_| None),
            Command::Check => self.check().map(|_| None),
            Command::Status => self.status().map(|_| None),
            Command::Gc => self.gc().map(|_| None),
            Command::Version => Ok(Some(crate::version::version_info())),
        }
    }

    fn add(&self) -> Result<serde_json::Value, CniError> {
        self.conf.require_ipam()?;
        let host_veth = self.host_veth();
        let netns = self.netns();
        if let Some(st) = state::load(
            &self.conf.state_dir,
            &self.env.container_id,
            &self.env.ifname,
        ) {
            if st.host_veth == host_veth
                && Path::new(&st.netns) == netns
                && self.verify(&st.result, &host_veth).is_ok()
            {
                return Ok(st.result.to_json(self.conf.cni_version));
            }
        }
        let mut undo = Undo::default();
        match self.add_steps(&host_veth, &mut undo) {
            Ok(result) => Ok(result.to_json(self.conf.cni_version)),
            Err(e) => {
                self.rollback(&undo);
                Err(e)
            }
        }
    }

    fn add_steps(&self, host_veth: &str, undo: &mut Undo) -> Result<CniResult, CniError> {
        let ipam_result = self
            .ipam_exec(Command::Add)?
            .ok_or_else(|| CniError::Ipam("IPAM plugin returned no result".into()))?;
        undo.ipam = true;
        self.fault("ipam")?;
        let addresses: Vec<IpNet> = ipam_result
            .ips
            .iter()
            .map(|ip| host_prefix(ip.address))
            .collect();
        if addresses.is_empty() {
            return Err(CniError::Ipam("IPAM plugin returned no addresses".into()));
        }
        let netns = self.netns();
        let plan = Plan {
            host_veth,
            ifname: &self.env.ifname,
            netns_path: &netns,
            mtu: self.conf.effective_mtu(),
            addresses: &addresses,
        };
        wiring::setup_host(&plan)?;
        undo.veth = Some(host_veth.to_string());
        self.fault("veth")?;
        let wired = wiring::setup_pod(&plan)?;
        self.fault("pod")?;
        let result = build_result(&plan, &wired, &ipam_result);
        endpoint::write(&self.conf, &self.env, &result, host_veth)?;
        undo.endpoint = true;
        self.fault("endpoint")?;
        state::save(
            &self.conf.state_dir,
            &AttachmentState {
                container_id: self.env.container_id.clone(),
                ifname: self.env.ifname.clone(),
                netns: netns.display().to_string(),
                host_veth: host_veth.to_string(),
                result: result.clone(),
            },
        )?;
        Ok(result)
    }

    /// Best-effort undo of a failed ADD, newest step first.
    fn rollback(&self, undo: &Undo) {
        if undo.endpoint {
            let _ = endpoint::delete(&self.conf, &self.env);
        }
        if let Some(veth) = &undo.veth {
            let _ = wiring::teardown(veth);
        }
        if undo.ipam {
            let _ = self.ipam_exec(Command::Del);
        }
    }

    fn del(&self) -> Result<(), CniError> {
        let recorded = state::load(
            &self.conf.state_dir,
            &self.env.container_id,
            &self.env.ifname,
        );
        let host_veth = recorded
            .as_ref()
            .map(|s| s.host_veth.clone())
            .unwrap_or_else(|| self.host_veth());
        wiring::teardown(&host_veth)?;
        self.ipam_exec(Command::Del)?;
        endpoint::delete(&self.conf, &self.env)?;
        state::remove(
            &self.conf.state_dir,
            &self.env.container_id,
            &self.env.ifname,
        )
    }

    fn check(&self) -> Result<(), CniError> {
        if !self.conf.cni_version.allows_check() {
            return Err(CniError::CommandNotAllowed {
                command: "CHECK",
                version: self.conf.cni_version.as_str().into(),
            });
        }
        let prev = self.conf.prev_result.as_ref().ok_or_else(|| {
            CniError::config("prevResult", "missing; CHECK needs the result of ADD")
        })?;
        let prev = CniResult::from_json(prev)?;
        self.ipam_exec(Command::Check)?;
        self.verify(&prev, &self.host_veth())
    }

    /// Compares the kernel with `result` (the pod interface's MAC, addresses, routes).
    fn verify(&self, result: &CniResult, host_veth: &str) -> Result<(), CniError> {
        let pod_if = result
            .interfaces
            .iter()
            .position(|i| i.name == self.env.ifname && i.sandbox.is_some());
        let addresses: Vec<IpNet> = result
            .ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == pod_if)
            .map(|ip| host_prefix(ip.address))
            .collect();
        let netns = self.netns();
        let plan = Plan {
            host_veth,
            ifname: &self.env.ifname,
            netns_path: &netns,
            mtu: 0,
            addresses: &addresses,
        };
        let mac = pod_if.map(|i| result.interfaces[i].mac.as_str());
        wiring::check(&plan, mac)
    }

    fn status(&self) -> Result<(), CniError> {
        self.require_1_1("STATUS")?;
        endpoint::status(&self.conf)?;
        self.ipam_exec(Command::Status).map(drop)
    }

    /// GC: forget attachments the runtime no longer lists, then let IPAM do the same.
    fn gc(&self) -> Result<(), CniError> {
        self.require_1_1("GC")?;
        for st in state::list(&self.conf.state_dir) {
            let valid = self
                .conf
                .valid_attachments
                .iter()
                .any(|a| a.container_id == st.container_id && a.ifname == st.ifname);
            if !valid {
                wiring::teardown(&st.host_veth)?;
                state::remove(&self.conf.state_dir, &st.container_id, &st.ifname)?;
            }
        }
        self.ipam_exec(Command::Gc).map(drop)
    }

    fn require_1_1(&self, command: &'static str) -> Result<(), CniError> {
        if self.conf.cni_version.allows_status_and_gc() {
            Ok(())
        } else {
            Err(CniError::CommandNotAllowed {
                command,
                version: self.conf.cni_version.as_str().into(),
            })
        }
    }
}

/// The ADD result: host veth, pod interface, the pod's /32s, the default routes.
fn build_result(plan: &Plan<'_>, wired: &wiring::Wired, ipam: &CniResult) -> CniResult {
    let mut routes = Vec::new();
    if plan.addresses.iter().any(|a| a.addr().is_ipv4()) {
        routes.push(Route {
            dst: "0.0.0.0/0".parse().expect("valid default"),
            gw: Some(IpAddr::V4(POD_GATEWAY_V4)),
        });
    }
    if plan.addresses.iter().any(|a| a.addr().is_ipv6()) {
        routes.push(Route {
            dst: "::/0".parse().expect("valid default"),
            gw: Some(IpAddr::V6(POD_GATEWAY_V6)),
        });
    }
    CniResult {
        interfaces: vec![
            Interface {
                name: plan.host_veth.to_string(),
                mac: wired.host_mac.clone(),
                sandbox: None,
                mtu: Some(plan.mtu),
            },
            Interface {
                name: plan.ifname.to_string(),
                mac: wired.pod_mac.clone(),
                sandbox: Some(plan.netns_path.display().to_string()),
                mtu: Some(plan.mtu),
            },
        ],
        ips: plan
            .addresses
            .iter()
            .map(|a| IpConfig {
                version: None,
                address: *a,
                gateway: None,
                interface: Some(1),
            })
            .collect(),
        routes,
        dns: ipam.dns.clone(),
    }
}
