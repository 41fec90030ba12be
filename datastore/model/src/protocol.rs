//! IP protocols and ports as Calico writes them (`numorstring.Protocol`,
//! `numorstring.Port`): a protocol by name (`TCP`, `UDP`, `ICMP`, `ICMPv6`,
//! `SCTP`, `UDPLite`) or number (1–255); a port as a number, a range
//! `"min:max"` or a named port (a Kubernetes IANA service name).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol names Calico accepts, with their IP protocol numbers.
const NAMES: [(&str, u8); 6] = [
    ("TCP", 6),
    ("UDP", 17),
    ("ICMP", 1),
    ("ICMPv6", 58),
    ("SCTP", 132),
    ("UDPLite", 136),
];

/// The protocol names, for error messages.
pub const PROTOCOL_NAMES: &str = "TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255";

/// IP protocol number of ICMP.
pub const ICMP: u8 = 1;
/// IP protocol number of ICMPv6.
pub const ICMPV6: u8 = 58;

/// A protocol given by name (`TCP`, `UDP`, `SCTP`, ...) or number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Protocol {
    /// IP protocol number.
    Number(u8),
    /// Protocol name.
    Name(String),
}

impl Protocol {
    /// The protocol named `name`.
    pub fn named(name: &str) -> Protocol {
        Protocol::Name(name.to_string())
    }

    /// The IP protocol number, or `None` for a name Calico does not know
    /// (or the invalid number 0).
    pub fn number(&self) -> Option<u8> {
        match self {
            Protocol::Number(0) => None,
            Protocol::Number(n) => Some(*n),
            Protocol::Name(s) => NAMES.iter().find(|(n, _)| n == s).map(|(_, p)| *p),
        }
    }

    /// True if the protocol has ports (TCP, UDP, SCTP, UDPLite).
    pub fn supports_ports(&self) -> bool {
        matches!(self.number(), Some(6 | 17 | 132 | 136))
    }

    /// True for ICMP or ICMPv6.
    pub fn is_icmp(&self) -> bool {
        matches!(self.number(), Some(ICMP | ICMPV6))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Number(n) => write!(f, "{n}"),
            Protocol::Name(s) => f.write_str(s),
        }
    }
}

/// A port match: one port, an inclusive range, or a named port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// Ports `min..=max` (one port when equal).
    Range {
        /// First port.
        min: u16,
        /// Last port.
        max: u16,
    },
    /// A named port of the endpoint (`spec.ports[].name`).
    Named(String),
}

impl Port {
    /// A single port.
    pub fn single(p: u16) -> Port {
        Port::Range { min: p, max: p }
    }

    /// Parses Calico's string form: `"80"`, `"80:90"` or a port name.
    pub fn parse(s: &str) -> Result<Port, String> {
        let num = |t: &str| {
            t.parse::<u16>()
                .map_err(|_| format!("`{t}` is not a port number 0-65535"))
        };
        if let Some((a, b)) = s.split_once(':') {
            let (min, max) = (num(a)?, num(b)?);
            if min > max {
                return Err(format!("range `{s}` runs backwards; write min:max"));
            }
            return Ok(Port::Range { min, max });
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return num(s).map(Port::single);
        }
        if is_port_name(s) {
            Ok(Port::Named(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is neither a port, a range min:max nor a port name (at most 15 lower case alphanumerics or '-', with a letter)"
            ))
        }
    }

    /// The port name, for a named port.
    pub fn name(&self) -> Option<&str> {
        match self {
            Port::Named(n) => Some(n),
            Port::Range { .. } => None,
        }
    }
}

/// True if `s` is a Kubernetes port name (IANA service name): 1–15
/// characters of `[a-z0-9-]`, at least one letter, no leading, trailing or
/// doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Range { min, max } if min == max => write!(f, "{min}"),
            Port::Range { min, max } => write!(f, "{min}:{max}"),
            Port::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Range { min, max } if min == max => s.serialize_u16(*min),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => u16::try_from(n).map(Port::single).map_err(|_| {
                serde::de::Error::custom(format_args!("{n} is not a port number 0-65535"))
            }),
            Raw::Text(t) => Port::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_resolve_names_and_numbers() {
        assert_eq!(Protocol::named("TCP").number(), Some(6));
        assert_eq!(Protocol::named("ICMPv6").number(), Some(58));
        assert_eq!(Protocol::Number(132).number(), Some(132));
        assert_eq!(Protocol::named("tcp").number(), None);
        assert_eq!(Protocol::Number(0).number(), None);
        assert!(Protocol::named("UDPLite").supports_ports());
        assert!(!Protocol::named("ICMP").supports_ports());
        assert!(Protocol::Number(1).is_icmp());
    }

    #[test]
    fn ports_read_numbers_ranges_and_names() {
        let p: Vec<Port> = serde_json::from_str(r#"[80, "81", "1000:2000", "http"]"#).unwrap();
        assert_eq!(
            p,
            vec![
                Port::single(80),
                Port::single(81),
                Port::Range {
                    min: 1000,
                    max: 2000
                },
                Port::Named("http".into())
            ]
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"[80,81,"1000:2000","http"]"#
        );
        for bad in [r#""90:80""#, r#""HTTP""#, "70000", r#""a--b""#, r#""80:x""#] {
            assert!(serde_json::from_str::<Port>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_follow_kubernetes() {
        assert!(is_port_name("http"));
        assert!(is_port_name("dns-tcp"));
        assert!(is_port_name("h2c"));
        assert!(!is_port_name("123"));
        assert!(!is_port_name("-a"));
        assert!(!is_port_name("a-"));
        assert!(!is_port_name("abcdefghijklmnop"));
    }
}
