//! `tortiectl bgp rib [--afi ipv4|ipv6] [-o json]`: the local tortie-node's
//! Loc-RIB over its control socket.

use clap::{Args, Subcommand, ValueEnum};
use tortie_node_api::{self as api, Request, Response};
use tortie_node_api::{RibEntry, RibPath};

use crate::node_status::{boxed, SocketArgs, StatusFormat};

/// `tortiectl bgp ...`.
#[derive(Debug, Args)]
pub struct BgpArgs {
    #[command(subcommand)]
    command: BgpCommand,
}

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// The Loc-RIB of the local tortie-node.
    Rib(RibArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AfiArg {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Args)]
struct RibArgs {
    /// Address family.
    #[arg(long, value_enum)]
    afi: Option<AfiArg>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: StatusFormat,
    #[command(flatten)]
    socket: SocketArgs,
}

/// Runs `tortiectl bgp ...`.
pub fn bgp(args: &BgpArgs) -> anyhow::Result<()> {
    match &args.command {
        BgpCommand::Rib(a) => rib(a),
    }
}

fn rib(a: &RibArgs) -> anyhow::Result<()> {
    let afi = a.afi.map(|f| match f {
        AfiArg::Ipv4 => "ipv4".to_string(),
        AfiArg::Ipv6 => "ipv6".to_string(),
    });
    let entries = match api::query(&a.socket.control_socket, &Request::Rib { afi })? {
        Response::Rib(r) => r,
        other => anyhow::bail!("tortie-node answered {other:?} to a rib request"),
    };
    match a.output {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        StatusFormat::Table => print!("{}", table(&entries)),
    }
    Ok(())
}

/// One table row per path: the best path carries `*` and the selection
/// step that chose it (REASON), the others an empty REASON.
fn table(entries: &[RibEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .flat_map(|e| e.paths.iter().map(move |p| row(e, p)))
        .collect();
    boxed(
        &[
            "PREFIX",
            "NEXT HOP",
            "PEER",
            "AS PATH",
            "LOCAL PREF",
            "MED",
            "BEST",
            "REASON",
        ],
        &rows,
    )
}

fn row(e: &RibEntry, p: &RibPath) -> Vec<String> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    vec![
        e.prefix.to_string(),
        or_dash(p.next_hop.map(|a| a.to_string())),
        or_dash(p.peer.map(|a| a.to_string())),
        p.as_path
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        p.local_pref.to_string(),
        or_dash(p.med.map(|m| m.to_string())),
        if p.best { "*".into() } else { String::new() },
        p.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_node_api::BestPathReason;

    fn path(peer: &str, local_pref: u32, reason: Option<BestPathReason>) -> RibPath {
        RibPath {
            peer: peer.parse().ok(),
            next_hop: peer.parse().ok(),
            as_path: vec![65002, 65010],
            local_pref,
            med: None,
            origin: None,
            communities: vec![],
            large_communities: vec![],
            best: reason.is_some(),
            multipath: reason.is_some(),
            stale: false,
            reason,
            path_id: None,
        }
    }

    #[test]
    fn the_table_shows_why_the_best_path_won() {
        let entries = vec![RibEntry {
            prefix: "10.2.0.0/24".parse().unwrap(),
            paths: vec![
                path("10.81.0.2", 200, Some(BestPathReason::LocalPref)),
                path("10.81.0.3", 100, None),
            ],
        }];
        let t = table(&entries);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("REASON"), "{t}");
        let cells =
            |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
        assert_eq!(
            cells(lines[3]),
            [
                "",
                "10.2.0.0/24",
                "10.81.0.2",
                "10.81.0.2",
                "65002 65010",
                "200",
                "-",
                "*",
                "local_pref",
                ""
            ]
        );
        assert_eq!(cells(lines[4])[8], "");
        assert_eq!(cells(lines[4])[7], "");
    }
}
