//! BGP AS numbers as Calico writes them: a number, a decimal string
//! (`"64512"`) or asdot notation (`"1.10"`, RFC 5396).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 4-octet AS number (RFC 6793). Serialized as a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(pub u32);

impl AsNumber {
    /// Calico's default AS number for nodes (`BGPConfiguration.spec.asNumber`).
    pub const DEFAULT: AsNumber = AsNumber(64512);
}

/// Why a string is not an AS number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an AS number: use 1..4294967295 or asdot `X.Y` with X and Y in 0..65535")]
pub struct AsNumberError(pub String);

impl FromStr for AsNumber {
    type Err = AsNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AsNumberError(s.to_owned());
        let t = s.trim();
        if let Some((high, low)) = t.split_once('.') {
            let high: u16 = high.parse().map_err(|_| err())?;
            let low: u16 = low.parse().map_err(|_| err())?;
            return Ok(AsNumber((u32::from(high) << 16) | u32::from(low)));
        }
        t.parse::<u32>().map(AsNumber).map_err(|_| err())
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for AsNumber {
    fn from(v: u32) -> Self {
        AsNumber(v)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AsNumberVisitor)
    }
}

struct AsNumberVisitor;

impl Visitor<'_> for AsNumberVisitor {
    type Value = AsNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AS number: 0..4294967295, \"64512\" or asdot \"1.10\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
        u32::try_from(v)
            .map(AsNumber)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
        u32::try_from(v)
            .map(AsNumber)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<AsNumber, E> {
        // YAML reads an unquoted asdot value such as `1.10` as a float, which
        // has already lost the trailing zero; insist on quoting.
        Err(E::custom(
            "reads as a decimal number; quote asdot AS numbers, e.g. \"1.10\"",
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_numbers_parse() {
        assert_eq!("64512".parse::<AsNumber>().unwrap(), AsNumber(64512));
        let n: AsNumber = serde_json::from_str("4294967295").unwrap();
        assert_eq!(n, AsNumber(u32::MAX));
        let n: AsNumber = serde_yaml::from_str("\"65000\"").unwrap();
        assert_eq!(n, AsNumber(65000));
    }

    #[test]
    fn asdot_notation_is_high_and_low_16_bits() {
        assert_eq!("1.10".parse::<AsNumber>().unwrap(), AsNumber(65546));
        assert_eq!("0.64512".parse::<AsNumber>().unwrap(), AsNumber(64512));
    }

    #[test]
    fn out_of_range_and_garbage_are_rejected() {
        assert!("4294967296".parse::<AsNumber>().is_err());
        assert!("1.65536".parse::<AsNumber>().is_err());
        assert!("abc".parse::<AsNumber>().is_err());
        assert!(serde_json::from_str::<AsNumber>("-1").is_err());
        assert!(serde_yaml::from_str::<AsNumber>("1.10").is_err());
    }

    #[test]
    fn serializes_as_a_number() {
        assert_eq!(serde_json::to_string(&AsNumber(65546)).unwrap(), "65546");
    }
}
