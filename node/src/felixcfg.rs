//! The FelixConfiguration that applies to this node (Calico's rule: the
//! `default` resource, with the fields of `node.<nodename>` winning), and
//! what the agent takes from it: felix's knobs (VXLAN VNI and port, tunnel
//! MTUs) and the dataplane settings (route protocol numbers, the period of
//! the full kernel re-read). Pure.

use std::time::Duration;

use serde_json::Value;
use tortie_felix::input::FelixKnobs;
use tortie_model::{FelixConfiguration, FelixConfigurationSpec};

/// The effective spec for node `node`: `default`'s fields, overridden field
/// by field by `node.<node>`'s.
pub fn effective(configs: &[FelixConfiguration], node: &str) -> FelixConfigurationSpec {
    let named = |name: &str| configs.iter().find(|c| c.metadata.name == name);
    let as_object = |c: Option<&FelixConfiguration>| match c.map(|c| serde_json::to_value(&c.spec))
    {
        Some(Ok(Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    };
    let mut merged = as_object(named("default"));
    merged.extend(as_object(named(&format!("node.{node}"))));
    serde_json::from_value(Value::Object(merged)).unwrap_or_default()
}

/// What the dataplane loop is configured with besides its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// `rtm_protocol` of computed routes (`deviceRouteProtocol`).
    pub proto_felix: u8,
    /// `rtm_protocol` of BGP-learned routes (`bgpRouteProtocol`).
    pub proto_bgp: u8,
    /// Full re-read period (`routeRefreshInterval`).
    pub resync: Duration,
}

impl DataplaneSettings {
    /// The settings a spec gives (defaults where it is silent).
    pub fn from_spec(spec: &FelixConfigurationSpec) -> Self {
        Self {
            proto_felix: spec.device_route_protocol(),
            proto_bgp: spec.bgp_route_protocol(),
            resync: spec.route_refresh_interval(),
        }
    }
}

/// felix's knobs from a spec.
pub fn knobs(spec: &FelixConfigurationSpec) -> FelixKnobs {
    FelixKnobs {
        ipip_mtu: spec.ipip_mtu(),
        vxlan_mtu: spec.vxlan_mtu(),
        vxlan_vni: spec.vxlan_vni,
        vxlan_port: spec.vxlan_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::ObjectMeta;

    fn fc(name: &str, json: &str) -> FelixConfiguration {
        FelixConfiguration {
            metadata: ObjectMeta::named(name),
            spec: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn the_node_resource_wins_field_by_field_over_default() {
        let all = [
            fc(
                "default",
                r#"{"routeRefreshInterval": "30s", "vxlanVNI": 10}"#,
            ),
            fc("node.n1", r#"{"routeRefreshInterval": "5s"}"#),
            fc("node.n2", r#"{"bgpRouteProtocol": 90}"#),
        ];
        let s = effective(&all, "n1");
        assert_eq!(s.route_refresh_interval(), Duration::from_secs(5));
        assert_eq!(s.vxlan_vni, Some(10));
        assert_eq!(s.bgp_route_protocol(), 84);
        let d = DataplaneSettings::from_spec(&effective(&all, "n2"));
        assert_eq!((d.proto_felix, d.proto_bgp), (80, 90));
        assert_eq!(d.resync, Duration::from_secs(30));
    }

    #[test]
    fn without_any_resource_the_defaults_are_felix_own() {
        let d = DataplaneSettings::from_spec(&effective(&[], "n1"));
        let c = tortie_felix::FelixConfig::default();
        assert_eq!((d.proto_felix, d.proto_bgp), (c.proto_felix, c.proto_bgp));
        assert_eq!(d.resync, Duration::from_secs(90));
    }
}
