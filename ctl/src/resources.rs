//! `create | apply | replace | delete -f FILE|-`, `delete KIND NAME` and
//! `get KIND [NAME]`: manifests are parsed and validated as a whole, then
//! written all-or-none.

use std::io::Read;

use anyhow::Context as _;
use clap::Args;
use tortie_datastore::{typed, BlockingStore};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_model::{parse_manifest, Kind, Resource};

use crate::context::{Context, UsageError};
use crate::output::{render, Format};

/// `-f FILE|-`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Manifest file (YAML or JSON, one or many documents), or `-` for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: String,
}

/// `delete -f FILE|-` or `delete KIND NAME`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Manifest naming the resources to delete, or `-` for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with_all = ["kind", "name"])]
    pub filename: Option<String>,
    /// Resource kind (ippools, bgpconfigs, bgppeers, nodes, workloadendpoints, felixconfigs,
    /// networkpolicies, globalnetworkpolicies, networksets, globalnetworksets, profiles).
    #[arg(required_unless_present = "filename", requires = "name")]
    pub kind: Option<String>,
    /// Resource name.
    pub name: Option<String>,
    /// Namespace of a namespaced kind.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// `get KIND [NAME]`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource kind (ippools, bgpconfigs, bgppeers, nodes, workloadendpoints, felixconfigs,
    /// networkpolicies, globalnetworkpolicies, networksets, globalnetworksets, profiles).
    pub kind: String,
    /// Only this resource.
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
    /// Namespace of a namespaced kind.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Every namespace (namespaced kinds).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// The kind a command-line name means, or a usage error listing them.
pub fn parse_kind(name: &str) -> anyhow::Result<Kind> {
    Kind::from_cli_name(name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        UsageError(format!(
            "unknown resource kind {name:?}; use one of {}",
            names.join(", ")
        ))
        .into()
    })
}

/// Reads and validates a manifest (every problem, one per line).
fn read_manifest(filename: &str) -> anyhow::Result<Vec<Resource>> {
    let text = if filename == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the manifest from stdin")?;
        s
    } else {
        std::fs::read_to_string(filename).with_context(|| format!("{filename}: cannot read"))?
    };
    let resources = parse_manifest(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if resources.is_empty() {
        anyhow::bail!("{filename}: no resources in the manifest");
    }
    Ok(resources)
}

/// `Successfully <verb> N 'Kind' resource(s)` as calicoctl says it.
fn summary(verb: &str, done: &[Resource]) -> String {
    let first = done.first().map(Resource::kind);
    match first {
        Some(k) if done.iter().all(|r| r.kind() == k) => {
            format!("Successfully {verb} {} '{k}' resource(s)", done.len())
        }
        _ => format!("Successfully {verb} {} resource(s)", done.len()),
    }
}

type Write = fn(&dyn tortie_datastore::Store, Vec<Resource>) -> typed::BoxedWrite<'_>;

/// Writes a manifest; returns the store and what was written.
fn write_manifest(
    ctx: &Context,
    filename: &str,
    verb: &str,
    what: &str,
    op: Write,
) -> anyhow::Result<(BlockingStore, Vec<Resource>)> {
    let resources = read_manifest(filename)?;
    let store = ctx.open()?;
    let done = store
        .block_on(op(store.store().as_ref(), resources))
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to {what} any resources: {}",
                indent_rest(&e.to_string())
            )
        })?;
    println!("{}", summary(verb, &done));
    Ok((store, done))
}

/// After Nodes are deleted: releases their empty blocks (block and affinity
/// together); a block that still holds addresses stays affine to its node
/// until they are released (issue 6).
fn release_deleted_nodes(store: BlockingStore, deleted: &[Resource]) -> anyhow::Result<()> {
    let nodes: Vec<&str> = deleted
        .iter()
        .filter(|r| r.kind() == Kind::Node)
        .map(Resource::name)
        .collect();
    if nodes.is_empty() {
        return Ok(());
    }
    let ipam = Ipam::new(DatastoreIpamStore::new(store));
    for node in nodes {
        let r = ipam
            .release_node_affinities(node)
            .with_context(|| format!("node {node} deleted; releasing its empty blocks"))?;
        tracing::info!(node, released = ?r.released, kept = ?r.kept, "released node blocks");
    }
    Ok(())
}

/// Keeps one problem per line: the first after the headline, the rest as is.
fn indent_rest(msg: &str) -> String {
    if msg.contains('\n') {
        format!("\n{msg}")
    } else {
        msg.to_string()
    }
}

/// `tortiectl create -f`.
pub fn create(ctx: &Context, a: &FileArgs) -> anyhow::Result<()> {
    write_manifest(ctx, &a.filename, "created", "create", |s, r| {
        Box::pin(typed::create(s, r))
    })
    .map(drop)
}

/// `tortiectl apply -f`.
pub fn apply(ctx: &Context, a: &FileArgs) -> anyhow::Result<()> {
    write_manifest(ctx, &a.filename, "applied", "apply", |s, r| {
        Box::pin(typed::apply(s, r))
    })
    .map(drop)
}

/// `tortiectl replace -f`.
pub fn replace(ctx: &Context, a: &FileArgs) -> anyhow::Result<()> {
    write_manifest(ctx, &a.filename, "replaced", "replace", |s, r| {
        Box::pin(typed::replace(s, r))
    })
    .map(drop)
}

/// `tortiectl delete -f FILE` or `tortiectl delete KIND NAME`.
pub fn delete(ctx: &Context, a: &DeleteArgs) -> anyhow::Result<()> {
    if let Some(f) = &a.filename {
        let (store, done) = write_manifest(ctx, f, "deleted", "delete", |s, r| {
            Box::pin(typed::delete(s, r))
        })?;
        return release_deleted_nodes(store, &done);
    }
    let (Some(kind), Some(name)) = (&a.kind, &a.name) else {
        return Err(UsageError("delete needs -f FILE or KIND NAME".into()).into());
    };
    let kind = parse_kind(kind)?;
    let store = ctx.open()?;
    let gone = store
        .block_on(typed::delete_one(
            store.store().as_ref(),
            kind,
            Some(&a.namespace),
            name,
        ))
        .map_err(|e| anyhow::anyhow!("Failed to delete any resources: {e}"))?;
    let done = [gone];
    println!("{}", summary("deleted", &done));
    release_deleted_nodes(store, &done)
}

/// `tortiectl get KIND [NAME] [-o ...]`.
pub fn get(ctx: &Context, a: &GetArgs) -> anyhow::Result<()> {
    let kind = parse_kind(&a.kind)?;
    let store = ctx.open()?;
    let s = store.store().as_ref();
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let items = match &a.name {
        Some(name) => vec![store.block_on(typed::get(s, kind, ns, name))?],
        None => store.block_on(typed::list(s, kind, ns))?,
    };
    let all_ns = a.all_namespaces;
    print!(
        "{}",
        render(kind, &items, a.name.is_some(), a.output, all_ns)?
    );
    Ok(())
}
