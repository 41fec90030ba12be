//! projectcalico.org/v3-compatible resource types, manifest parsing,
//! validation and label selectors.
//!
//! This crate turns manifest text into typed resources (`IPPool`,
//! `BGPConfiguration`, `BGPPeer`, `Node`, `FelixConfiguration`,
//! `WorkloadEndpoint`, `NetworkPolicy`, `GlobalNetworkPolicy`,
//! `NetworkSet`, `GlobalNetworkSet`, `Profile`, and Kubernetes
//! `NetworkPolicy` / `Namespace` converted as Calico's Kubernetes datastore
//! converts them) with Calico's field names and defaults, checks them
//! the way Calico's validator does (every error names the field path, the
//! value and what would be valid), and evaluates Calico label selectors.
//! It must not do I/O, log, or know how resources are stored or applied:
//! that is the datastore's and the shells' job.

pub mod asn;
pub mod bgpconfig;
pub mod bgpfilter;
pub mod bgppeer;
pub mod common;
pub mod duration;
pub mod error;
pub mod felixconfig;
pub mod ipam;
pub mod ippool;
pub mod k8s;
pub mod manifest;
pub mod meta;
pub mod net;
pub mod networkset;
pub mod node;
pub mod policy;
pub mod profile;
pub mod protocol;
pub mod resource;
pub mod selector;
pub mod validate;
pub mod workload_endpoint;

pub use asn::AsNumber;
pub use bgpconfig::{BgpConfiguration, BgpConfigurationSpec};
pub use bgpfilter::{BgpFilter, BgpFilterSpec};
pub use bgppeer::{BgpPeer, BgpPeerSpec};
pub use common::{is_secret_key, BgpPassword, LogSeverity, SecretKeyRef};
pub use duration::GoDuration;
pub use error::{FieldError, Reason};
pub use felixconfig::{FelixConfiguration, FelixConfigurationSpec};
pub use ippool::{AllowedUse, EncapMode, IpPool, IpPoolSpec};
pub use manifest::{parse_manifest, ManifestError, ManifestErrors};
pub use meta::{ObjectMeta, API_VERSION};
pub use net::PeerIp;
pub use networkset::{GlobalNetworkSet, NetworkSet, NetworkSetSpec};
pub use node::{Node, NodeBgpSpec, NodeSpec};
pub use policy::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkPolicySpec, IcmpFields, NetworkPolicy,
    NetworkPolicySpec, PolicyOrder, PolicyType, Rule,
};
pub use profile::{Profile, ProfileSpec};
pub use protocol::{Port, Protocol};
pub use resource::{Kind, Resource};
pub use selector::Selector;
pub use validate::is_dns1123_subdomain;
pub use workload_endpoint::{WorkloadEndpoint, WorkloadEndpointSpec};
