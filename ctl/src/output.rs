//! Printing resources: YAML, JSON, and calicoctl-style aligned tables
//! (`-o wide` adds columns). Table cells come from the resource's JSON so
//! they read exactly what `-o yaml` shows.

use clap::ValueEnum;
use serde_json::Value;
use tortie_model::manifest::list_value_of;
use tortie_model::{Kind, Resource};

/// Output format of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table (the default).
    Table,
    /// A table with more columns.
    Wide,
    /// YAML (a `<Kind>List` for several).
    Yaml,
    /// JSON (a `<Kind>List` for several).
    Json,
}

/// One table column: header, JSON pointer into the resource, and what to
/// print when the field is absent (false booleans are not serialized).
struct Column {
    header: &'static str,
    pointer: &'static str,
    absent: &'static str,
}

const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        absent: "",
    }
}

/// A boolean column: absent means `false`.
const fn flag(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        absent: "false",
    }
}

/// The columns calicoctl prints for `kind` (plain, then the extra wide ones).
fn columns(kind: Kind, wide: bool, all_namespaces: bool) -> Vec<Column> {
    let mut cols = match kind {
        Kind::IpPool if wide => vec![
            col("NAME", "/metadata/name"),
            col("CIDR", "/spec/cidr"),
            flag("NAT", "/spec/natOutgoing"),
            col("IPIPMODE", "/spec/ipipMode"),
            col("VXLANMODE", "/spec/vxlanMode"),
            flag("DISABLED", "/spec/disabled"),
            flag("DISABLEBGPEXPORT", "/spec/disableBGPExport"),
            col("SELECTOR", "/spec/nodeSelector"),
        ],
        Kind::IpPool => vec![
            col("NAME", "/metadata/name"),
            col("CIDR", "/spec/cidr"),
            col("SELECTOR", "/spec/nodeSelector"),
        ],
        Kind::BgpConfiguration => vec![
            col("NAME", "/metadata/name"),
            col("LOGSEVERITY", "/spec/logSeverityScreen"),
            col("MESHENABLED", "/spec/nodeToNodeMeshEnabled"),
            col("ASNUMBER", "/spec/asNumber"),
        ],
        Kind::BgpPeer => vec![
            col("NAME", "/metadata/name"),
            col("PEERIP", "/spec/peerIP"),
            col("NODE", "/spec/node"),
            col("ASN", "/spec/asNumber"),
        ],
        Kind::Node if wide => vec![
            col("NAME", "/metadata/name"),
            col("ASN", "/spec/bgp/asNumber"),
            col("IPV4", "/spec/bgp/ipv4Address"),
            col("IPV6", "/spec/bgp/ipv6Address"),
        ],
        Kind::Node | Kind::FelixConfiguration | Kind::BgpFilter => {
            vec![col("NAME", "/metadata/name")]
        }
        Kind::NetworkPolicy | Kind::GlobalNetworkPolicy if wide => vec![
            col("NAME", "/metadata/name"),
            col("ORDER", "/spec/order"),
            col("SELECTOR", "/spec/selector"),
        ],
        Kind::NetworkSet | Kind::GlobalNetworkSet if wide => {
            vec![col("NAME", "/metadata/name"), col("NETS", "/spec/nets")]
        }
        Kind::NetworkPolicy
        | Kind::GlobalNetworkPolicy
        | Kind::NetworkSet
        | Kind::GlobalNetworkSet
        | Kind::Profile => vec![col("NAME", "/metadata/name")],
        Kind::WorkloadEndpoint => vec![
            col("WORKLOAD", "/spec/pod"),
            col("NODE", "/spec/node"),
            col("NETWORKS", "/spec/ipNetworks"),
            col("INTERFACE", "/spec/interfaceName"),
        ],
    };
    if kind == Kind::WorkloadEndpoint && wide {
        cols.insert(0, col("NAME", "/metadata/name"));
    }
    if kind.is_namespaced() && all_namespaces {
        cols.insert(0, col("NAMESPACE", "/metadata/namespace"));
    }
    cols
}

/// A JSON value as a table cell: strings bare, lists comma-joined, absent empty.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Left-aligned columns separated by three spaces, as calicoctl prints.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The table of `items` of `kind`.
pub fn table(kind: Kind, items: &[Resource], wide: bool, all_namespaces: bool) -> String {
    let cols = columns(kind, wide, all_namespaces);
    let headers: Vec<&str> = cols.iter().map(|c| c.header).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            cols.iter()
                .map(|c| match v.pointer(c.pointer) {
                    None | Some(Value::Null) => c.absent.to_string(),
                    some => cell(some),
                })
                .collect()
        })
        .collect();
    render_table(&headers, &rows)
}

/// Renders one resource (`single`) or a list of `kind` in `format`.
pub fn render(
    kind: Kind,
    items: &[Resource],
    single: bool,
    format: Format,
    all_ns: bool,
) -> anyhow::Result<String> {
    Ok(match (format, single) {
        (Format::Yaml, true) => items[0].to_yaml(),
        (Format::Json, true) => serde_json::to_string_pretty(&items[0])? + "\n",
        (Format::Yaml, false) => serde_yaml::to_string(&list_value_of(kind, items))?,
        (Format::Json, false) => serde_json::to_string_pretty(&list_value_of(kind, items))? + "\n",
        (Format::Table, _) => table(kind, items, false, all_ns),
        (Format::Wide, _) => table(kind, items, true, all_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_three_spaces_apart() {
        let t = render_table(
            &["NAME", "CIDR", "SELECTOR"],
            &[
                vec![
                    "default-ipv4-ippool".into(),
                    "10.0.0.0/16".into(),
                    "all()".into(),
                ],
                vec!["p2".into(), "10.1.0.0/16".into(), String::new()],
            ],
        );
        assert_eq!(
            t,
            "NAME                  CIDR          SELECTOR\n\
             default-ipv4-ippool   10.0.0.0/16   all()\n\
             p2                    10.1.0.0/16\n"
        );
    }

    #[test]
    fn cells_join_lists_and_leave_absent_values_empty() {
        let v = serde_json::json!({"a": ["10.0.0.1/32", "fd00::1/128"], "b": true});
        assert_eq!(cell(v.pointer("/a")), "10.0.0.1/32,fd00::1/128");
        assert_eq!(cell(v.pointer("/b")), "true");
        assert_eq!(cell(v.pointer("/missing")), "");
    }
}
