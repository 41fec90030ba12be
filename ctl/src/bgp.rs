//! `tortiectl bgp rib [--afi ipv4|ipv6] [-o json]`: the local tortie-node's
//! Loc-RIB over its control socket.

use clap::{Args, Subcommand, ValueEnum};
use tortie_node_api::RibEntry;
use tortie_node_api::{self as api, Request, Response};

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

fn table(entries: &[RibEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .flat_map(|e| {
            e.paths.iter().map(move |p| {
                vec![
                    e.prefix.clone(),
                    p.next_hop.to_string(),
                    p.peer.to_string(),
                    p.as_path
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    p.local_pref.to_string(),
                    if p.best { "*".into() } else { String::new() },
                ]
            })
        })
        .collect();
    boxed(
        &[
            "PREFIX",
            "NEXT HOP",
            "PEER",
            "AS PATH",
            "LOCAL PREF",
            "BEST",
        ],
        &rows,
    )
}
