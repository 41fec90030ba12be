//! `tortiectl node status [-o json]`: asks the local tortie-node over its
//! control socket and prints calicoctl's table (`PEER ADDRESS | PEER TYPE |
//! STATE | SINCE | INFO`) or the JSON object of INTERFACES.md.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tortie_node_api::{self as api, NodeStatus, Request, Response, DEFAULT_CONTROL_SOCKET};

/// `tortiectl node ...`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// BGP sessions and FIB state of the local tortie-node.
    Status(StatusArgs),
}

/// Output format of `node status` and `bgp rib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// A table.
    Table,
    /// JSON.
    Json,
}

/// Where tortie-node listens.
#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The tortie-node control socket.
    #[arg(long, env = "TORTIE_CONTROL_SOCKET", default_value = DEFAULT_CONTROL_SOCKET)]
    pub control_socket: PathBuf,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: StatusFormat,
    #[command(flatten)]
    socket: SocketArgs,
}

/// Runs `tortiectl node ...`.
pub fn node(args: &NodeArgs) -> anyhow::Result<()> {
    match &args.command {
        NodeCommand::Status(a) => status(a),
    }
}

fn status(a: &StatusArgs) -> anyhow::Result<()> {
    let st = match api::query(&a.socket.control_socket, &Request::Status)? {
        Response::Status(s) => s,
        other => anyhow::bail!("tortie-node answered {other:?} to a status request"),
    };
    match a.output {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&st)?),
        StatusFormat::Table => print!("{}", table(&st)),
    }
    Ok(())
}

/// A bordered table like calicoctl's.
pub fn boxed(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (x, c) in w.iter_mut().zip(r) {
            *x = (*x).max(c.chars().count());
        }
    }
    let sep = format!(
        "+{}+\n",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: &[String]| {
        let c: Vec<String> = cells
            .iter()
            .zip(&w)
            .map(|(c, n)| format!(" {c:<n$} "))
            .collect();
        format!("|{}|\n", c.join("|"))
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = sep.clone() + &line(&head) + &sep;
    for r in rows {
        out.push_str(&line(r));
    }
    out + &sep
}

fn table(st: &NodeStatus) -> String {
    let rows: Vec<Vec<String>> = st
        .peers
        .iter()
        .map(|p| {
            let up = if p.state == "Established" {
                "up"
            } else {
                "start"
            };
            let since = p
                .since
                .split('T')
                .nth(1)
                .unwrap_or(&p.since)
                .trim_end_matches('Z');
            let info = match &p.last_error {
                Some(e) if p.state != "Established" => format!("{} ({e})", p.state),
                _ => p.state.clone(),
            };
            vec![
                p.address.to_string(),
                p.peer_type.clone(),
                up.into(),
                since.into(),
                info,
            ]
        })
        .collect();
    format!(
        "tortie-node {} is running (AS {}, router ID {}, {}).\n\nIPv4 BGP status\n{}\nFIB: {} routes, {}\n",
        st.node,
        st.asn,
        st.router_id,
        if st.ready { "ready" } else { "not ready" },
        boxed(&["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"], &rows),
        st.fib.routes,
        if st.fib.in_sync { "in sync" } else { "not in sync" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_calicoctl_columns() {
        let st: NodeStatus = serde_json::from_str(
            r#"{"node": "node1", "router_id": "10.0.1.5", "asn": 64512, "ready": true,
 "peers": [{"address": "10.0.1.6", "asn": 64512, "type": "node-to-node mesh",
            "state": "Established", "since": "2026-11-29T07:00:00Z",
            "prefixes_received": 3, "prefixes_sent": 2, "last_error": null}],
 "fib": {"in_sync": true, "routes": 12}}"#,
        )
        .unwrap();
        let t = table(&st);
        assert!(
            t.contains("| PEER ADDRESS | PEER TYPE         | STATE | SINCE    | INFO        |"),
            "{t}"
        );
        assert!(
            t.contains("| 10.0.1.6     | node-to-node mesh | up    | 07:00:00 | Established |"),
            "{t}"
        );
    }
}
