//! The async BGP speaker: a listener, one task per peer driving the pure
//! session FSM over TCP (with TCP MD5 and GTSM), an instance loop that owns
//! the pure RIB (`tortie-bgp-rib`: best path, policy, route reflection,
//! ADD-PATH, graceful restart) and sends what it says, once per update
//! group, an event stream out and a FIB stream for the dataplane.
//!
//! Must not: decide routing itself (the RIB does), touch the kernel routing
//! table, or let one peer's failure (even a panic) affect another peer.
//!
//! RFCs: 4271 (transport §8, UPDATE handling §9 for the Adj-RIB-In, §9.4
//! origination), 2385 (TCP MD5), 5082 (GTSM), 4486 (Cease / max prefixes),
//! 4724 §2 (End-of-RIB) and §4.1 (restarting speaker: R bit, deferred
//! selection, [`SpeakerOptions::restart`]), 2918 (ROUTE-REFRESH answered, and
//! sent after an import policy change, [`SpeakerHandle::set_policy`]), 7606
//! (treat-as-withdraw).
//! The FSM is `tortie-bgp-session`, the codec `tortie-bgp-wire`.
//!
//! ```no_run
//! # async fn f() -> Result<(), tortie_bgp_speaker::SpeakerError> {
//! use tortie_bgp_speaker::{PeerConfig, Speaker, SpeakerConfig};
//! let cfg = SpeakerConfig { asn: 64512, router_id: "10.0.0.1".parse().unwrap(),
//!                           listen: Some("0.0.0.0:179".parse().unwrap()), peers: vec![] };
//! let (handle, mut events) = Speaker::start(cfg)?;
//! handle.add_peer(PeerConfig::new("10.0.0.2".parse().unwrap(), 64512)).await?;
//! while let Some(ev) = events.recv().await { println!("{ev:?}"); }
//! # Ok(()) }
//! ```

pub mod config;
mod instance;
mod peer;
pub mod rib;
mod routing;
pub mod status;
mod sys;
pub mod transport;

pub use config::{
    AddPathConfig, AfiName, Establishment, GracefulRestartConfig, NextHopMode, PeerConfig,
    PeerType, RestartOptions, SpeakerConfig, SpeakerOptions, TimersConfig,
};
pub use rib::{AdjRibIn, Originated, Path};
pub use routing::FibEvent;
pub use status::{render_metrics, MessageCounters, PeerStatus};
pub use tortie_bgp_rib::{FibRoute, FibUpdate, RibEntry, RibPath};

use instance::{Command, Instance};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tortie_bgp_session::Negotiated;
use tortie_bgp_wire::{Family, Nlri, PathAttributes, Prefix};

/// The receiving end of [`SpeakerHandle::subscribe_fib`].
pub type FibRx = mpsc::UnboundedReceiver<FibEvent>;
use tracing::Instrument;

/// What the speaker tells its owner.
#[derive(Debug, Clone)]
pub enum SpeakerEvent {
    /// A session reached Established.
    PeerUp {
        /// The peer.
        peer: IpAddr,
        /// What both sides negotiated.
        negotiated: Arc<Negotiated>,
    },
    /// A session left Established: every route learned from it is gone.
    PeerDown {
        /// The peer.
        peer: IpAddr,
        /// Why, in words.
        reason: String,
    },
    /// Routes of one family changed in a peer's Adj-RIB-In.
    Routes {
        /// The peer.
        peer: IpAddr,
        /// The family.
        family: Family,
        /// New or replaced paths.
        announced: Vec<(Nlri, Arc<Path>)>,
        /// Withdrawn NLRI.
        withdrawn: Vec<Nlri>,
    },
    /// The peer finished sending its initial table of a family (RFC 4724 §2).
    EndOfRib {
        /// The peer.
        peer: IpAddr,
        /// The family.
        family: Family,
    },
}

/// Errors of the speaker's API.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
    /// A peer with this address exists already.
    #[error("peer {0} exists already")]
    PeerExists(IpAddr),
    /// No peer with this address.
    #[error("no peer {0}")]
    NoSuchPeer(IpAddr),
    /// The MD5 key could not be installed on the listener.
    #[error("cannot set the TCP MD5 key for {0}: {1}")]
    Md5(IpAddr, #[source] std::io::Error),
    /// The speaker has shut down.
    #[error("the speaker has stopped")]
    Stopped,
}

/// How [`SpeakerHandle::shutdown_with`] ends the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// A Cease / Administrative Shutdown NOTIFICATION (RFC 4486 §4) on
    /// every session: peers drop our routes at once.
    Cease,
    /// Close every connection without a NOTIFICATION: peers that
    /// negotiated graceful restart keep our routes for the restart time
    /// (RFC 4724 §4.2), as for a crash; for a planned restart.
    GracefulRestart,
}

/// The receiving end of the speaker's events.
pub type EventRx = mpsc::UnboundedReceiver<SpeakerEvent>;

/// Entry points.
#[derive(Debug)]
pub struct Speaker;

impl Speaker {
    /// Binds `config.listen` (if set) and starts the speaker on the current
    /// tokio runtime.
    pub fn start(config: SpeakerConfig) -> Result<(SpeakerHandle, EventRx), SpeakerError> {
        let listener = match config.listen {
            Some(addr) => Some(transport::listen(addr).map_err(|e| SpeakerError::Listen(addr, e))?),
            None => None,
        };
        Ok(Self::start_with_listener(config, listener))
    }

    /// Like [`Speaker::start`], with [`SpeakerOptions`].
    pub fn start_with(
        config: SpeakerConfig,
        options: SpeakerOptions,
    ) -> Result<(SpeakerHandle, EventRx), SpeakerError> {
        let listener = match config.listen {
            Some(addr) => Some(transport::listen(addr).map_err(|e| SpeakerError::Listen(addr, e))?),
            None => None,
        };
        Ok(Self::start_with_options(config, options, listener))
    }

    /// Starts the speaker with a listener bound by the caller (tests inject one).
    pub fn start_with_listener(
        config: SpeakerConfig,
        listener: Option<TcpListener>,
    ) -> (SpeakerHandle, EventRx) {
        Self::start_with_options(config, SpeakerOptions::default(), listener)
    }

    /// Starts the speaker with [`SpeakerOptions`] (route reflection, policy,
    /// multipath) and an optional listener bound by the caller.
    pub fn start_with_options(
        config: SpeakerConfig,
        options: SpeakerOptions,
        listener: Option<TcpListener>,
    ) -> (SpeakerHandle, EventRx) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("bgp", asn = config.asn);
        let instance = Instance::new(config, &options, listener, cmd_rx, events_tx);
        tokio::spawn(instance.run().instrument(span));
        (SpeakerHandle { cmd_tx }, events_rx)
    }
}

/// Controls a running speaker; cheap to clone.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    cmd_tx: mpsc::UnboundedSender<Command>,
}

impl SpeakerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Adds a peer and starts its session.
    pub async fn add_peer(&self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        self.ask(|r| Command::AddPeer(cfg, r)).await?
    }

    /// Replaces a peer's config; restarts that session only if it changed.
    pub async fn update_peer(&self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        self.ask(|r| Command::UpdatePeer(cfg, r)).await?
    }

    /// Stops a peer's session (Cease / Administrative Shutdown) and forgets it.
    pub async fn remove_peer(&self, addr: IpAddr) -> Result<(), SpeakerError> {
        self.ask(|r| Command::RemovePeer(addr, r)).await?
    }

    /// Originates prefixes with these attributes (ORIGIN, MED, communities...;
    /// AS_PATH, NEXT_HOP and LOCAL_PREF are filled per peer).
    pub async fn originate(
        &self,
        prefixes: Vec<Prefix>,
        attrs: PathAttributes,
    ) -> Result<(), SpeakerError> {
        self.ask(|r| Command::Originate(prefixes, Arc::new(attrs), r))
            .await
    }

    /// Stops originating prefixes.
    pub async fn withdraw(&self, prefixes: Vec<Prefix>) -> Result<(), SpeakerError> {
        self.ask(|r| Command::Withdraw(prefixes, r)).await
    }

    /// Replaces the export/import policy at run time (`None` = accept and
    /// export every unicast prefix, as [`SpeakerOptions::policy`] `None`).
    /// Sessions stay up: newly exportable prefixes are announced, no longer
    /// exportable ones withdrawn, and peers under the cluster import rules
    /// are sent a ROUTE-REFRESH (RFC 2918) when those rules changed, so that
    /// prefixes refused before come again.
    pub async fn set_policy(
        &self,
        policy: Option<tortie_bgp_rib::PolicyConfig>,
    ) -> Result<(), SpeakerError> {
        self.ask(|r| Command::SetPolicy(policy, r)).await
    }

    /// Every peer's status, sorted by address.
    pub async fn peer_status(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(Command::Status).await
    }

    /// The Loc-RIB (`tortiectl bgp rib`): every prefix with its paths, best
    /// first; `None` = both families.
    pub async fn rib_query(&self, family: Option<Family>) -> Result<Vec<RibEntry>, SpeakerError> {
        self.ask(|r| Command::RibQuery(family, r)).await
    }

    /// Forwarding changes from now on, starting with the whole current table.
    pub async fn subscribe_fib(&self) -> Result<FibRx, SpeakerError> {
        self.ask(Command::SubscribeFib).await
    }

    /// True while the speaker, started with [`SpeakerOptions::restart`],
    /// still defers route selection after its restart (RFC 4724 §4.1);
    /// false once [`FibEvent::RestartComplete`] was sent (or without restart).
    pub async fn restart_in_progress(&self) -> Result<bool, SpeakerError> {
        self.ask(Command::Restarting).await
    }

    /// Stops every session (Cease / Administrative Shutdown) and the speaker.
    pub async fn shutdown(&self) -> Result<(), SpeakerError> {
        self.shutdown_with(ShutdownMode::Cease).await
    }

    /// Stops every session as `mode` says, and the speaker; returns once
    /// every session task has ended.
    pub async fn shutdown_with(&self, mode: ShutdownMode) -> Result<(), SpeakerError> {
        self.ask(|r| Command::Shutdown(mode, r)).await
    }
}
