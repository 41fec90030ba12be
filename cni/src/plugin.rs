//! The `tortie` plugin's commands: ADD (IPAM, veth, routes, endpoint, with
//! rollback), DEL (idempotent), CHECK, STATUS and GC.

use std::collections::BTreeSet;
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
use crate::wiring::{self, host_prefix, Plan, VethOrigin};

/// Test-only fault injection, honoured by debug builds only (what `cargo
/// test` builds; a release build never reads it):
/// `TORTIE_CNI_FAIL_AFTER=<step>` makes ADD fail right after that step
/// (`ipam`, `veth`, `pod`, `endpoint`), `<step>:panic` makes it panic
/// there, to prove the rollback and the panic answer.
pub const FAIL_AFTER_ENV: &str = "TORTIE_CNI_FAIL_AFTER";

/// An injected fault (see [`FAIL_AFTER_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The ADD step after which it strikes.
    pub step: String,
    /// Panic instead of returning an error.
    pub panic: bool,
}

impl Fault {
    /// The fault `value` of [`FAIL_AFTER_ENV`] asks for: always `None` in a
    /// release build.
    pub fn from_env_value(value: Option<&str>) -> Option<Self> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let v = value.filter(|v| !v.is_empty())?;
        let (step, panic) = match v.strip_suffix(":panic") {
            Some(step) => (step, true),
            None => (v, false),
        };
        Some(Self {
            step: step.to_string(),
            panic,
        })
    }
}

/// One plugin invocation: environment, validated config, and the raw stdin.
#[derive(Debug)]
pub struct Invocation {
    /// The CNI_* environment.
    pub env: CniEnv,
    /// The validated network configuration.
    pub conf: NetConf,
    /// stdin as received (passed unchanged to the IPAM plugin).
    pub raw: Vec<u8>,
    /// The injected fault, if any (debug builds, tests only).
    pub fail_after: Option<Fault>,
}

/// What this ADD invocation itself created, so a failure undoes exactly
/// that, in reverse — never what an earlier ADD of the same attachment made
/// (its address, veth or endpoint may be in use by the running pod).
#[derive(Debug, Default)]
struct Undo {
    /// Addresses allocated by this invocation (IPAM DEL on failure).
    ipam: bool,
    /// The veth pair created by this invocation.
    veth: Option<String>,
    /// The endpoint as it was before this invocation wrote it.
    endpoint: Option<endpoint::Previous>,
}

impl Invocation {
    fn fault(&self, step: &str) -> Result<(), CniError> {
        match &self.fail_after {
            Some(f) if f.step == step && f.panic => panic!("injected panic after step {step}"),
            Some(f) if f.step == step => Err(CniError::Injected(step.into())),
            _ => Ok(()),
        }
    }

    fn host_veth(&self) -> String {
        host_veth_name(self.env.args.k8s_pod(), &self.env.container_id)
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
        // STATUS changes nothing: it does not wait for the lock.
        let _lock = match command {
            Command::Status => None,
            _ => Some(self.lock()?),
        };
        match binary {
            Some(binary) => exec_ipam(&binary, command, &self.raw),
            None => self.ipam_in_process(command),
        }
    }

    fn lock(&self) -> Result<crate::lock::HostLock, CniError> {
        lock_host(
            &self.conf.state_dir.join("ipam.lock"),
            self.conf.lock_timeout,
        )
    }

    /// IPAM ADD: the result, and whether this invocation allocated it.
    ///
    /// `tortie-ipam` (in-process) knows: its handle owned nothing before.
    /// Another IPAM plugin cannot tell a new allocation from one it returns
    /// again, so with `traces` of an earlier ADD its addresses count as
    /// that ADD's and a failure here does not release them (the runtime's
    /// DEL does).
    fn ipam_add(&self, traces: &[String]) -> Result<(CniResult, bool), CniError> {
        let ipam = self.conf.require_ipam()?;
        let (result, fresh) = if ipam.ipam_type == ipam_plugin::IPAM_TYPE {
            let _lock = self.lock()?;
            let (v, fresh) = ipam_plugin::add_json(self).map_err(as_delegate)?;
            (CniResult::from_json(&v)?, fresh)
        } else {
            let r = self
                .ipam_exec(Command::Add)?
                .ok_or_else(|| CniError::Ipam("IPAM plugin returned no result".into()))?;
            (r, traces.is_empty())
        };
        Ok((result, fresh))
    }

    /// `tortie-ipam` without the exec: its result goes through the same JSON
    /// (for this config's cniVersion) and its errors are reported as a
    /// delegate's, exactly as if the binary had run.
    fn ipam_in_process(&self, command: Command) -> Result<Option<CniResult>, CniError> {
        let out = ipam_plugin::run_command(self, command).map_err(as_delegate)?;
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
        if self.conf.datastore.is_some() {
            // A node name no endpoint name can start with: refused first.
            endpoint::endpoint_identity(&self.conf, &self.env)?;
        }
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
        // No (valid) record: an earlier ADD may still have left its veth
        // and endpoint; they are reused below, and kept on failure.
        let traces = self.traces(&host_veth)?;
        let mut undo = Undo::default();
        // A panic in a step still undoes what this ADD made (and is
        // answered with error JSON by `main_entry`).
        let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.add_steps(&host_veth, &traces, &mut undo)
        }))
        .unwrap_or_else(|payload| Err(crate::panic::error(payload.as_ref())));
        match steps {
            Ok(result) => Ok(result.to_json(self.conf.cni_version)),
            Err(e) => {
                self.rollback(undo);
                Err(explain_traces(e, &traces, &self.conf.state_dir))
            }
        }
    }

    /// What an earlier ADD of this attachment left (the host veth, unless
    /// recorded as another sandbox's; the endpoint naming this container),
    /// for when its state record is gone.
    fn traces(&self, host_veth: &str) -> Result<Vec<String>, CniError> {
        let mut traces = Vec::new();
        let owner = state::veth_owner(&self.conf.state_dir, host_veth);
        if owner.is_none_or(|o| o == self.env.container_id) && wiring::host_veth_exists(host_veth)?
        {
            traces.push(format!("host veth {host_veth} exists"));
        }
        let ipam = self.conf.require_ipam()?;
        if ipam.ipam_type != ipam_plugin::IPAM_TYPE {
            if let Some((name, cid)) = endpoint::stored(&self.conf, &self.env)? {
                if cid == self.env.container_id {
                    traces.push(format!("WorkloadEndpoint {name} names this container"));
                }
            }
        }
        Ok(traces)
    }

    fn add_steps(
        &self,
        host_veth: &str,
        traces: &[String],
        undo: &mut Undo,
    ) -> Result<CniResult, CniError> {
        let (ipam_result, fresh) = self.ipam_add(traces)?;
        undo.ipam = fresh;
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
        if wiring::setup_host(&plan)? == VethOrigin::Created {
            undo.veth = Some(host_veth.to_string());
        }
        self.fault("veth")?;
        let wired = wiring::setup_pod(&plan)?;
        self.fault("pod")?;
        let result = build_result(&plan, &wired, &ipam_result);
        undo.endpoint = endpoint::write(&self.conf, &self.env, &result, host_veth)?;
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

    /// Best-effort undo of a failed ADD, newest step first, of what this
    /// invocation created only.
    fn rollback(&self, undo: Undo) {
        if let Some(previous) = undo.endpoint {
            let _ = endpoint::restore(&self.conf, &self.env, previous);
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
        let superseded = self.superseded(&host_veth)?;
        if !superseded {
            wiring::teardown(&host_veth)?;
        }
        self.ipam_exec(Command::Del)?;
        if !superseded {
            endpoint::delete(&self.conf, &self.env)?;
        }
        state::remove_veth_owner(&self.conf.state_dir, &host_veth, &self.env.container_id)?;
        state::remove(
            &self.conf.state_dir,
            &self.env.container_id,
            &self.env.ifname,
        )
    }

    /// True when a newer sandbox of the same pod (another container ID)
    /// owns the endpoint or records the same host veth: a late DEL of the
    /// old sandbox then releases only its own addresses and state, and
    /// leaves the veth and the endpoint the running pod uses.
    fn superseded(&self, host_veth: &str) -> Result<bool, CniError> {
        let mine = self.env.container_id.as_str();
        if state::veth_owner(&self.conf.state_dir, host_veth).is_some_and(|o| o != mine) {
            return Ok(true);
        }
        Ok(endpoint::stored(&self.conf, &self.env)?
            .is_some_and(|(_, cid)| !cid.is_empty() && cid != mine))
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

    /// GC: deletes the host veths, WorkloadEndpoints and state of this
    /// node's attachments that `cni.dev/valid-attachments` no longer lists
    /// (found in the state directory and among the node's endpoints), then
    /// lets IPAM release their addresses. A veth a listed attachment still
    /// uses is kept. As the spec asks, a failure does not stop the rest;
    /// the first one is reported.
    fn gc(&self) -> Result<(), CniError> {
        self.require_1_1("GC")?;
        self.conf.require_valid_attachments()?;
        let mut errors = Vec::new();
        let recorded = state::list(&self.conf.state_dir);
        let endpoints = endpoint::on_node(&self.conf).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
        let valid = |cid: &str, ifname: &str| self.conf.is_valid_attachment(cid, Some(ifname));
        let in_use: BTreeSet<&str> = recorded
            .iter()
            .filter(|st| valid(&st.container_id, &st.ifname))
            .map(|st| st.host_veth.as_str())
            .chain(
                endpoints
                    .iter()
                    .filter(|ep| valid(&ep.container_id, &ep.ifname))
                    .map(|ep| ep.host_veth.as_str()),
            )
            .collect();
        let remove_veth = |veth: &str, errors: &mut Vec<CniError>| {
            if !in_use.contains(veth) {
                if let Err(e) = wiring::teardown(veth) {
                    errors.push(e);
                }
            }
        };
        for st in recorded
            .iter()
            .filter(|st| !valid(&st.container_id, &st.ifname))
        {
            remove_veth(&st.host_veth, &mut errors);
            let dir = &self.conf.state_dir;
            if let Err(e) = state::remove_veth_owner(dir, &st.host_veth, &st.container_id)
                .and_then(|()| state::remove(dir, &st.container_id, &st.ifname))
            {
                errors.push(e);
            }
        }
        for ep in endpoints
            .iter()
            .filter(|ep| !valid(&ep.container_id, &ep.ifname))
        {
            remove_veth(&ep.host_veth, &mut errors);
            if let Err(e) = endpoint::delete_ref(&self.conf, ep) {
                errors.push(e);
            }
        }
        if let Err(e) = self.ipam_exec(Command::Gc) {
            errors.push(e);
        }
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
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

/// An error of `tortie-ipam` run in-process, reported as the binary's would be.
fn as_delegate(e: CniError) -> CniError {
    CniError::Delegate {
        plugin: ipam_plugin::IPAM_TYPE.into(),
        code: e.code(),
        msg: e.msg(),
        details: e.details(),
    }
}

/// A failed ADD that found traces of an earlier one says so (keeping the
/// code and message, e.g. an IPAM plugin refusing a second allocation).
fn explain_traces(e: CniError, traces: &[String], state_dir: &Path) -> CniError {
    if traces.is_empty() {
        return e;
    }
    let why = format!(
        "the container is already attached ({}) but its record in {} is gone; \
         what that earlier ADD made is kept — DEL the container, then ADD it again",
        traces.join(", "),
        state_dir.join("attachments").display()
    );
    match e {
        CniError::Delegate {
            plugin,
            code,
            msg,
            details,
        } => CniError::Delegate {
            plugin,
            code,
            msg,
            details: if details.is_empty() {
                why
            } else {
                format!("{details}; {why}")
            },
        },
        other => other,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_switch_exists_in_debug_builds_only() {
        let f = Fault::from_env_value(Some("veth:panic"));
        assert_eq!(f.is_some(), cfg!(debug_assertions));
        if let Some(f) = f {
            assert_eq!((f.step.as_str(), f.panic), ("veth", true));
        }
        let f = Fault::from_env_value(Some("ipam"));
        assert_eq!(f.map(|f| f.panic), cfg!(debug_assertions).then_some(false));
        assert_eq!(Fault::from_env_value(Some("")), None);
        assert_eq!(Fault::from_env_value(None), None);
    }
}
