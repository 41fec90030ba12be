//! The agent's state and what it does with each event: a snapshot changes
//! sessions (only those concerned), Calico's import/export policy, the
//! prefixes we originate, the dataplane's settings and felix's input; a new
//! AS, route reflector cluster id or listen port replaces the speaker (all
//! sessions reset); the speaker's FIB stream (its Loc-RIB after the import
//! policy) changes felix's input. The task tree around it is
//! [`crate::agent`].

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;
use tortie_bgp_rib::PolicyConfig;
use tortie_bgp_speaker::{EventRx, FibEvent, FibRx, PeerStatus, SpeakerEvent};
use tortie_bgp_wire::{Origin, PathAttributes, Prefix};
use tortie_felix::FelixInput;

use crate::agent::{AgentError, Shared};
use crate::bgp::SpeakerParams;
use crate::dataplane::DataplaneTask;
use crate::feed::{felix_input, FeedContext};
use crate::felixcfg::DataplaneSettings;
use crate::netpol::{policy_input, PolicyTask};
use crate::peers::{diff, Desired, LocalIdentity, PeerMap};
use crate::snapshot::Snapshot;

pub(crate) struct Agent {
    me: LocalIdentity,
    node_ip: IpNet,
    router_id: Ipv4Addr,
    bgp_port_flag: Option<u16>,
    secrets_dir: std::path::PathBuf,
    logs: Option<crate::logs::LogControl>,
    /// The BGP log level set last (`logSeverityScreen`).
    bgp_log: Option<tortie_model::LogSeverity>,
    pub(crate) shared: Arc<Shared>,
    /// The sessions the datastore calls for (passwords not read yet).
    desired: Desired,
    running: PeerMap,
    originated: BTreeSet<Prefix>,
    pub(crate) dataplane: Option<DataplaneTask>,
    /// The network-policy task.
    pub(crate) netpol: Option<PolicyTask>,
    last_input: Option<FelixInput>,
    last_settings: Option<DataplaneSettings>,
    connected: Vec<IpNet>,
    /// What the running speaker was started with.
    params: SpeakerParams,
    /// The policy the speaker has.
    policy: PolicyConfig,
    /// The running speaker's events and FIB stream.
    pub(crate) events: EventRx,
    pub(crate) fib_rx: FibRx,
}

/// IPv4 subnets of this namespace's interfaces (workload veths excluded).
fn connected_subnets() -> Vec<IpNet> {
    crate::autodetect::read_interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.name != "lo" && !i.name.starts_with("cali"))
        .flat_map(|i| i.addrs)
        .filter(|a| a.addr().is_ipv4() && a.prefix_len() < 32)
        .map(|a| a.trunc())
        .collect()
}

impl Agent {
    pub(crate) async fn on_snapshot(&mut self, snap: Snapshot) -> Result<(), AgentError> {
        let params = SpeakerParams::from_snapshot(&snap, &self.me.name, self.bgp_port_flag);
        let built = crate::policy::build(&snap, &self.me.name);
        if let Some(why) = self.params.restart_reason(&params) {
            self.restart_speaker(params, built.policy.clone(), &why)
                .await?;
        }
        self.set_policy(built).await;
        self.set_bgp_log(&snap);
        let desired = crate::peers::desired(&snap, &self.me);
        if desired.problems != self.desired.problems {
            for p in &desired.problems {
                tracing::warn!(problem = %p, "BGP filters");
            }
        }
        self.desired = desired;
        self.apply_peers().await;
        if let Some(dp) = &self.dataplane {
            self.connected = connected_subnets();
            let settings = DataplaneSettings::from_spec(&crate::felixcfg::effective(
                &snap.felix_configs,
                &self.me.name,
            ));
            if self.last_settings != Some(settings) {
                dp.set_settings(settings);
                self.last_settings = Some(settings);
            }
        }
        self.originate(&snap).await;
        if let Some(np) = &self.netpol {
            np.set_input(policy_input(&snap, &self.me.name));
        }
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snap;
        self.feed();
        Ok(())
    }

    /// BGPConfiguration `logSeverityScreen` (`node.<name>`'s, else
    /// `default`'s, else Info) as the BGP crates' log level.
    fn set_bgp_log(&mut self, snap: &Snapshot) {
        let Some(logs) = &self.logs else { return };
        let sev = snap
            .bgp_setting(&self.me.name, |c| c.log_severity_screen)
            .unwrap_or(tortie_model::LogSeverity::Info);
        if self.bgp_log != Some(sev) {
            logs.set_bgp(sev);
            tracing::info!(
                level = crate::logs::level(sev),
                "BGP log level (logSeverityScreen)"
            );
            self.bgp_log = Some(sev);
        }
    }

    /// Reads the password files again: a rotated secret resets only the
    /// sessions that use it; a secret that appears starts its sessions, one
    /// that goes away stops them.
    pub(crate) async fn on_secrets_poll(&mut self) {
        if !self.desired.passwords.is_empty() {
            self.apply_peers().await;
        }
    }

    /// Brings the speaker's sessions to `self.desired` with the passwords
    /// read now: only the sessions that changed are touched. A session
    /// whose password cannot be read is not run (never without its
    /// password): it shows in status as `Idle` with the reason.
    async fn apply_peers(&mut self) {
        let dir = self.secrets_dir.clone();
        let resolved = crate::peers::resolve(&self.desired, |pw| crate::secrets::resolve(&dir, pw));
        self.set_blocked(&resolved.blocked);
        let speaker = self.shared.speaker();
        let d = diff(&self.running, &resolved.peers);
        for p in d.remove {
            tracing::info!(peer = %p, "removing peer");
            if let Err(e) = speaker.remove_peer(p).await {
                tracing::warn!(peer = %p, error = %e, "remove_peer failed");
            }
            self.shared
                .learned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget(&p);
        }
        for p in d.add {
            tracing::info!(peer = %p.address, peer_type = p.peer_type.as_str(), md5 = p.password.is_some(), "adding peer");
            if let Err(e) = speaker.add_peer(p.clone()).await {
                tracing::warn!(peer = %p.address, error = %e, "add_peer failed");
            }
        }
        for p in d.update {
            let old = self.running.get(&p.address);
            if old.is_some_and(|o| o.password != p.password) {
                tracing::info!(peer = %p.address, "the peer's password changed: resetting its session");
            } else {
                tracing::info!(peer = %p.address, "updating peer");
            }
            if let Err(e) = speaker.update_peer(p.clone()).await {
                tracing::warn!(peer = %p.address, error = %e, "update_peer failed");
            }
        }
        self.running = resolved.peers;
    }

    /// Publishes the held-back sessions for status; logs each new reason.
    fn set_blocked(
        &self,
        blocked: &std::collections::BTreeMap<std::net::IpAddr, crate::peers::Blocked>,
    ) {
        let mut shown = self
            .shared
            .blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::with_capacity(blocked.len());
        for (addr, b) in blocked {
            match shown
                .iter()
                .find(|s| s.address == *addr && s.last_error.as_deref() == Some(&b.error))
            {
                Some(same) => next.push(same.clone()),
                None => {
                    tracing::error!(peer = %addr, error = %b.error, "BGP session not started: its password cannot be read");
                    let mut st = PeerStatus::new(*addr, b.cfg.asn, b.cfg.peer_type);
                    st.last_error = Some(b.error.clone());
                    next.push(st);
                }
            }
        }
        for gone in shown.iter().filter(|s| !blocked.contains_key(&s.address)) {
            tracing::info!(peer = %gone.address, "the peer's password can be read again");
        }
        *shown = next;
    }

    /// Hands a changed policy to the speaker (sessions stay up).
    async fn set_policy(&mut self, built: crate::policy::BuiltPolicy) {
        if built.policy == self.policy {
            return;
        }
        for p in &built.problems {
            tracing::warn!(problem = %p, "BGP policy");
        }
        tracing::info!(
            pools = built.policy.pools.len(),
            local_blocks = built.policy.local_blocks.len(),
            service_cidrs = built.policy.service_cidrs.len(),
            "BGP import/export policy changed"
        );
        if let Err(e) = self
            .shared
            .speaker()
            .set_policy(Some(built.policy.clone()))
            .await
        {
            tracing::warn!(error = %e, "set_policy failed");
        }
        self.policy = built.policy;
    }

    /// Replaces the speaker: every session resets, peers, originations and
    /// the FIB subscription are set up again on the new one.
    async fn restart_speaker(
        &mut self,
        params: SpeakerParams,
        policy: PolicyConfig,
        why: &str,
    ) -> Result<(), AgentError> {
        tracing::warn!(
            change = why,
            "restarting the BGP speaker in-process: every BGP session resets"
        );
        let _ = self.shared.speaker().shutdown().await;
        let (speaker, events) =
            crate::bgp::start(params, self.router_id, Some(policy.clone()), None).await?;
        let fib_rx = speaker.subscribe_fib().await?;
        self.shared.replace_speaker(speaker, params.asn);
        self.shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if self.bgp_port_flag.is_none() {
            self.me.port = params.port;
        }
        self.running = PeerMap::new();
        self.originated = BTreeSet::new();
        self.policy = policy;
        self.params = params;
        self.events = events;
        self.fib_rx = fib_rx;
        Ok(())
    }

    async fn originate(&mut self, snap: &Snapshot) {
        let want = crate::policy::originations(snap, &self.me.name, &self.policy);
        let gone: Vec<Prefix> = self.originated.difference(&want).copied().collect();
        let new: Vec<Prefix> = want.difference(&self.originated).copied().collect();
        let speaker = self.shared.speaker();
        if !gone.is_empty() {
            tracing::info!(count = gone.len(), "withdrawing prefixes");
            let _ = speaker.withdraw(gone).await;
        }
        if !new.is_empty() {
            tracing::info!(count = new.len(), "originating prefixes");
            let attrs = PathAttributes {
                origin: Some(Origin::Igp),
                ..PathAttributes::default()
            };
            let _ = speaker.originate(new, attrs).await;
        }
        self.originated = want;
    }

    pub(crate) fn on_fib(&mut self, ev: FibEvent) {
        if ev == FibEvent::RestartComplete {
            self.on_restart_complete();
            return;
        }
        let changed = self
            .shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_fib(&ev);
        if changed {
            self.feed();
        }
    }

    /// The speaker's restart is over and felix has the whole Loc-RIB (the
    /// FIB stream sent it just before): felix may sweep the BGP routes of
    /// the previous run that are not in it.
    fn on_restart_complete(&mut self) {
        tracing::info!("graceful restart complete: sweeping stale BGP routes");
        if let Some(dp) = &self.dataplane {
            dp.release_hold();
        }
    }

    pub(crate) fn on_speaker_event(&mut self, ev: SpeakerEvent) {
        match &ev {
            SpeakerEvent::PeerUp { peer, .. } => tracing::info!(peer = %peer, "peer up"),
            SpeakerEvent::PeerDown { peer, reason } => {
                tracing::info!(peer = %peer, reason = %reason, "peer down")
            }
            _ => {}
        }
        self.shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_event(&ev);
    }

    fn feed(&mut self) {
        let Some(dp) = &self.dataplane else { return };
        let hops = self
            .shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_hops();
        let input = {
            let snap = self
                .shared
                .snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ctx = FeedContext {
                me: &self.me.name,
                node_ip: self.node_ip,
                connected: &self.connected,
            };
            felix_input(&snap, ctx, &hops)
        };
        if self.last_input.as_ref() != Some(&input) {
            dp.set_input(input.clone());
            self.last_input = Some(input);
        }
    }
}

impl Agent {
    /// A fresh agent state around a started speaker.
    pub(crate) fn new(start: AgentStart) -> Self {
        Self {
            me: start.me,
            node_ip: start.node_ip,
            router_id: start.router_id,
            bgp_port_flag: start.bgp_port_flag,
            secrets_dir: start.secrets_dir,
            logs: start.logs,
            bgp_log: None,
            shared: start.shared,
            desired: Desired::default(),
            running: PeerMap::new(),
            originated: BTreeSet::new(),
            dataplane: start.dataplane,
            netpol: start.netpol,
            last_input: None,
            last_settings: None,
            connected: Vec::new(),
            params: start.params,
            policy: start.policy,
            events: start.events,
            fib_rx: start.fib_rx,
        }
    }
}

/// What [`Agent::new`] needs.
pub(crate) struct AgentStart {
    pub me: LocalIdentity,
    pub node_ip: IpNet,
    pub router_id: Ipv4Addr,
    pub bgp_port_flag: Option<u16>,
    pub secrets_dir: std::path::PathBuf,
    pub logs: Option<crate::logs::LogControl>,
    pub shared: Arc<Shared>,
    pub dataplane: Option<DataplaneTask>,
    pub netpol: Option<PolicyTask>,
    pub params: SpeakerParams,
    pub policy: PolicyConfig,
    pub events: EventRx,
    pub fib_rx: FibRx,
}
