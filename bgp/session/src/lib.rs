//! Sans-IO BGP session: the RFC 4271 §8 finite state machine of one peer
//! over up to two connections (one per direction), its timers as
//! deadlines, OPEN validation and capability negotiation into one
//! [`Negotiated`] value, and §6.8 collision resolution between the two.
//!
//! Must not: do I/O, read a clock (`now` is a parameter), log, or know the
//! wire format (the speaker maps codec types to [`OpenInfo`] and
//! [`Notification`]).
//!
//! RFCs: 4271 (§4.2, §6.2, §6.5, §6.8, §8, §10), 4486 (Cease subcodes),
//! 5492 (capabilities), 4760, 6793, 2918, 4724, 7911, 8654, 8950 (negotiated
//! capabilities), 6286 (BGP Identifier), 6608 (FSM error subcodes).

pub mod capability;
pub mod collision;
pub mod fsm;
pub mod notification;
pub mod timer;

pub use capability::{
    negotiate, AddPathMode, AddPathNegotiated, Capabilities, Expectation, Family,
    GracefulRestartCap, Negotiated, OpenInfo, AS_TRANS,
};
pub use collision::{resolve as resolve_collision, Conn};
pub use fsm::{DownReason, Input, Output, PeerMode, Session, SessionConfig, State};
pub use notification::Notification;
pub use timer::Timer;
