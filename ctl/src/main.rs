//! tortiectl: the calicoctl-style command line for tortie — resources
//! (create, apply, replace, delete, get, label) against the datastore.
//!
//! `main` only parses flags and dispatches: each command family lives in
//! its own module. To add one, add a variant to [`Command`] holding the
//! module's clap `Args`/`Subcommand` type and one arm in [`run`].
//!
//! Exit codes: 0 success, 1 failure (one line per problem on stderr),
//! 2 usage error.

mod bgp;
mod context;
mod ipam;
mod lab;
mod label;
mod node_status;
mod output;
mod resources;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use context::{GlobalArgs, UsageError};

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(
    name = "tortiectl",
    version,
    about = "Manage tortie resources (calicoctl-style)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Every tortiectl command.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create resources from a manifest (fails if any exists).
    Create(resources::FileArgs),
    /// Create or replace resources from a manifest.
    Apply(resources::FileArgs),
    /// Replace existing resources from a manifest.
    Replace(resources::FileArgs),
    /// Delete resources named in a manifest, or KIND NAME.
    Delete(resources::DeleteArgs),
    /// Show resources of a kind.
    Get(resources::GetArgs),
    /// Set or remove labels of a resource.
    Label(label::LabelArgs),
    /// IP address management: show, check, release, configure.
    Ipam(ipam::IpamArgs),
    /// The local tortie-node: status.
    Node(node_status::NodeArgs),
    /// The local tortie-node's BGP routes.
    Bgp(bgp::BgpArgs),
    /// A whole cluster in network namespaces on this machine (root).
    Lab(lab::LabArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = cli.global.context()?;
    match cli.command {
        Command::Create(a) => resources::create(&ctx, &a),
        Command::Apply(a) => resources::apply(&ctx, &a),
        Command::Replace(a) => resources::replace(&ctx, &a),
        Command::Delete(a) => resources::delete(&ctx, &a),
        Command::Get(a) => resources::get(&ctx, &a),
        Command::Label(a) => label::label(&ctx, &a),
        Command::Ipam(a) => ipam::ipam(&ctx, &a),
        Command::Node(a) => node_status::node(&a),
        Command::Bgp(a) => bgp::bgp(&a),
        Command::Lab(a) => lab::lab(&ctx, &a),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    context::init_logging(cli.global.log_level.as_deref());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("{line}");
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
