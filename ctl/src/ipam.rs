//! `tortiectl ipam show | check | release | configure`, as calicoctl's
//! `ipam` commands; the work is done by `tortie-ipam-core`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tortie_ipam_core::{CheckReport, DatastoreIpamStore, Ipam};
use tortie_model::ipam::AllocationBlock;

use crate::context::{Context, UsageError};
use crate::output::render_table;

/// `tortiectl ipam ...`.
#[derive(Debug, Args)]
pub struct IpamArgs {
    #[command(subcommand)]
    command: IpamCommand,
}

#[derive(Debug, Subcommand)]
enum IpamCommand {
    /// Show pool and block usage, borrowed addresses, or one address.
    Show(ShowArgs),
    /// Check IPAM consistency: leaked addresses, affinity problems.
    Check(CheckArgs),
    /// Release an address, or every leak listed in a check report.
    Release(ReleaseArgs),
    /// Change the IPAM configuration.
    Configure(ConfigureArgs),
}

/// Output of `ipam show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShowFormat {
    /// A table.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Also list every block.
    #[arg(long)]
    show_blocks: bool,
    /// List addresses borrowed from other nodes' blocks.
    #[arg(long)]
    show_borrowed: bool,
    /// Show who holds this address.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: ShowFormat,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Write the full report (JSON) to this file.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    /// The address to release.
    #[arg(long, conflicts_with = "from_report")]
    ip: Option<IpAddr>,
    /// Release every leak listed in this `ipam check -o` report.
    #[arg(long)]
    from_report: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ConfigureArgs {
    /// Forbid borrowing addresses from other nodes' blocks.
    #[arg(long = "strictaffinity", action = clap::ArgAction::Set)]
    strict_affinity: Option<bool>,
}

/// Runs an `ipam` command.
pub fn ipam(ctx: &Context, args: &IpamArgs) -> anyhow::Result<()> {
    let open = || -> anyhow::Result<Ipam<DatastoreIpamStore>> {
        Ok(Ipam::new(DatastoreIpamStore::new(ctx.open()?)))
    };
    match &args.command {
        IpamCommand::Show(a) => show(&open()?, a),
        IpamCommand::Check(a) => check(&open()?, a),
        IpamCommand::Release(a) => release(&open()?, a),
        IpamCommand::Configure(a) => {
            let strict = a.strict_affinity.ok_or_else(|| {
                UsageError("ipam configure: give --strictaffinity=true|false".into())
            })?;
            let cfg = open()?.set_strict_affinity(strict)?;
            println!(
                "Successfully set StrictAffinity to: {}",
                cfg.strict_affinity
            );
            Ok(())
        }
    }
}

fn pct(part: u128, whole: u128) -> String {
    let p = (part * 100).checked_div(whole).unwrap_or(0);
    format!("{part} ({p}%)")
}

fn show(ipam: &Ipam<DatastoreIpamStore>, a: &ShowArgs) -> anyhow::Result<()> {
    let blocks = ipam.blocks()?;
    if let Some(ip) = a.ip {
        return show_ip(&blocks, ip, a.output);
    }
    if a.show_borrowed {
        return show_borrowed(&blocks, a.output);
    }
    let pools = ipam.store().pool_views("")?;
    let usage = ipam.usage(&pools)?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for u in &usage {
        rows.push(usage_row(
            "IP Pool",
            &u.cidr.to_string(),
            u.capacity,
            u.in_use,
        ));
        items.push(
            json!({"grouping": "IP Pool", "cidr": u.cidr, "total": u.capacity, "in_use": u.in_use}),
        );
        if !a.show_blocks {
            continue;
        }
        for b in blocks.iter().filter(|b| u.cidr.contains(&b.cidr)) {
            let (total, used) = (b.size() as u128, b.in_use() as u128);
            rows.push(usage_row("Block", &b.cidr.to_string(), total, used));
            items.push(
                json!({"grouping": "Block", "cidr": b.cidr, "total": total, "in_use": used,
                              "affinity": b.affinity}),
            );
        }
    }
    match a.output {
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        ShowFormat::Table => {
            let headers = ["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"];
            print!("{}", render_table(&headers, &rows));
        }
    }
    Ok(())
}

fn usage_row(grouping: &str, cidr: &str, total: u128, used: u128) -> Vec<String> {
    vec![
        grouping.to_string(),
        cidr.to_string(),
        total.to_string(),
        pct(used, total),
        pct(total - used, total),
    ]
}

fn kind_of(handle: &str) -> &'static str {
    if handle.starts_with("ipip-tunnel-addr-") {
        "ipipTunnelAddress"
    } else if handle.starts_with("vxlan-tunnel-addr-") {
        "vxlanTunnelAddress"
    } else {
        "pod"
    }
}

fn show_borrowed(blocks: &[AllocationBlock], format: ShowFormat) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for b in blocks {
        for o in 0..b.size() {
            let Some(attr) = b.allocations[o].and_then(|i| b.attributes.get(i)) else {
                continue;
            };
            let node = attr.secondary.get("node").map(String::as_str).unwrap_or("");
            if node.is_empty() || Some(node) == b.host() {
                continue;
            }
            let handle = attr.handle_id.as_deref().unwrap_or("");
            let to = match (attr.secondary.get("namespace"), attr.secondary.get("pod")) {
                (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
                _ => handle.to_string(),
            };
            let ip = b
                .ordinal_to_ip(o)
                .map(|i| i.to_string())
                .unwrap_or_default();
            let owner = b.host().unwrap_or("").to_string();
            rows.push(vec![
                ip,
                node.to_string(),
                b.cidr.to_string(),
                owner,
                kind_of(handle).into(),
                to,
            ]);
        }
    }
    let headers = [
        "IP",
        "BORROWING-NODE",
        "BLOCK",
        "BLOCK OWNER",
        "TYPE",
        "ALLOCATED-TO",
    ];
    match format {
        ShowFormat::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({"ip": r[0], "borrowing_node": r[1], "block": r[2], "block_owner": r[3],
                                "type": r[4], "allocated_to": r[5]})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        ShowFormat::Table => print!("{}", render_table(&headers, &rows)),
    }
    Ok(())
}

fn show_ip(blocks: &[AllocationBlock], ip: IpAddr, format: ShowFormat) -> anyhow::Result<()> {
    let found = blocks.iter().find_map(|b| {
        let o = b.ip_to_ordinal(ip)?;
        let attr = b.allocations[o].and_then(|i| b.attributes.get(i));
        Some((b, attr))
    });
    let (block, attr) = match found {
        Some((b, Some(attr))) => (b.cidr, attr),
        _ => {
            match format {
                ShowFormat::Json => println!("{}", json!({"ip": ip, "in_use": false})),
                ShowFormat::Table => println!("IP {ip} is not assigned"),
            }
            return Ok(());
        }
    };
    match format {
        ShowFormat::Json => println!(
            "{}",
            json!({"ip": ip, "in_use": true, "block": block, "handle": attr.handle_id,
                   "attributes": attr.secondary})
        ),
        ShowFormat::Table => {
            println!("IP {ip} is in use");
            println!("Handle: {}", attr.handle_id.as_deref().unwrap_or(""));
            println!("Block: {block}");
            println!("Attributes:");
            for (k, v) in &attr.secondary {
                println!("  {k}: {v}");
            }
        }
    }
    Ok(())
}

fn check(ipam: &Ipam<DatastoreIpamStore>, a: &CheckArgs) -> anyhow::Result<()> {
    let s = ipam.store();
    let report = ipam.check(s.node_names()?, s.addresses_in_use()?)?;
    let m = &report.summary;
    println!("Checking IPAM for inconsistencies...");
    println!(
        "Found {} blocks with {} allocated addresses.",
        m.blocks, m.allocated
    );
    println!(
        "Found {} in-use addresses and {} leaked addresses.",
        m.in_use, m.leaked
    );
    for l in &report.leaked {
        let handle = l.handle.as_deref().unwrap_or("none");
        println!("  leaked: {} handle {handle} block {}", l.ip, l.block);
    }
    for u in &report.in_use_not_allocated {
        println!("  in use but not allocated: {} ({})", u.ip, u.used_by);
    }
    for p in &report.duplicate_affinities {
        println!(
            "  block {} has affinities of several nodes: {}",
            p.block,
            p.nodes.join(", ")
        );
    }
    for p in &report.missing_affinities {
        println!(
            "  block {} of node {} has no confirmed affinity",
            p.block,
            p.nodes.join(",")
        );
    }
    for p in &report.orphan_affinities {
        println!(
            "  affinity of node {} for block {} has no such block",
            p.nodes.join(","),
            p.block
        );
    }
    for d in &report.deleted_node_blocks {
        println!(
            "  block {} belongs to deleted node {} ({} in use)",
            d.block, d.node, d.in_use
        );
    }
    for h in &report.handle_mismatches {
        println!(
            "  handle {} counts {} addresses, blocks hold {}",
            h.handle, h.recorded, h.actual
        );
    }
    println!("Found {} problems other than leaks.", m.problems);
    if let Some(path) = &a.output {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("Report written to {}", path.display());
    }
    Ok(())
}

fn release(ipam: &Ipam<DatastoreIpamStore>, a: &ReleaseArgs) -> anyhow::Result<()> {
    match (&a.ip, &a.from_report) {
        (Some(ip), None) => {
            if ipam.release_ips(&[*ip])?.is_empty() {
                println!("Successfully released IP address {ip}");
                Ok(())
            } else {
                anyhow::bail!("IP address {ip} is not assigned")
            }
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let report: CheckReport = serde_json::from_str(&text)
                .with_context(|| format!("{}: not an ipam check report", path.display()))?;
            let nodes: BTreeSet<String> = ipam.store().node_names()?;
            let done = ipam.release_from_report(&report, &nodes)?;
            for ip in &done.released {
                println!("Released leaked IP address {ip}");
            }
            for ip in &done.skipped {
                println!("Skipped {ip}: released or reassigned since the report");
            }
            for b in &done.blocks_released {
                println!("Released empty block {b} of a deleted node");
            }
            println!(
                "Released {} addresses, {} blocks.",
                done.released.len(),
                done.blocks_released.len()
            );
            Ok(())
        }
        _ => Err(UsageError("ipam release: give --ip IP or --from-report FILE".into()).into()),
    }
}
