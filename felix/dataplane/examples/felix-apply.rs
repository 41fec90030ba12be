//! `felix-apply`: applies a felix input (JSON `FelixInput`) in the current
//! network namespace (or `--netns PATH`) once, or keeps it in place with
//! `--watch SECS` (monitor + repair). Prints a JSON report.
//!
//! ```text
//! felix-apply [--netns PATH] [--mtu-file PATH] [--no-ipip] [--no-nat] [--watch SECS] INPUT.json|-
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tortie_felix::{compute, FelixConfig, FelixInput};
use tortie_felix_dataplane::{DataplaneOptions, FelixDataplane, IpipSupport, NatSupport};

struct Args {
    netns: Option<PathBuf>,
    mtu_file: Option<String>,
    ipip: IpipSupport,
    nat: NatSupport,
    watch: Option<u64>,
    input: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        netns: None,
        mtu_file: None,
        ipip: IpipSupport::Manage,
        nat: NatSupport::Manage,
        watch: None,
        input: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--netns" => a.netns = Some(it.next().context("--netns needs a path")?.into()),
            "--mtu-file" => a.mtu_file = Some(it.next().context("--mtu-file needs a path")?),
            "--no-ipip" => a.ipip = IpipSupport::Skip,
            "--no-nat" => a.nat = NatSupport::Skip,
            "--watch" => a.watch = Some(it.next().context("--watch needs seconds")?.parse()?),
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => a.input = s.to_string(),
        }
    }
    if a.input.is_empty() {
        bail!("usage: felix-apply [--netns PATH] [--mtu-file PATH] [--no-ipip] [--no-nat] [--watch SECS] INPUT.json|-");
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let mut text = String::new();
    if args.input == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input))?;
    }
    let mut input: FelixInput = serde_json::from_str(&text).context("parsing the felix input")?;
    let mut config = FelixConfig::default();
    if let Some(m) = args.mtu_file {
        config.mtu_file = m;
    }
    let mut f = FelixDataplane::open(DataplaneOptions {
        config: config.clone(),
        netns: args.netns,
        resync_interval: Duration::from_secs(90),
        ipip: args.ipip,
        nat: args.nat,
    })?;
    input.host_interfaces = f.host_interfaces()?;
    let desired = compute(&input, &config);
    f.set_desired(desired.clone());
    let t0 = Instant::now();
    let rep = f.apply(t0)?;
    let took = t0.elapsed();
    if let Some(secs) = args.watch {
        let (_monitors, events) = f.watch(4096)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            s2.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        f.run(&events, &stop);
    }
    println!(
        "{}",
        serde_json::json!({
            "routes": desired.routes.len(), "replaced": rep.replaced, "deleted": rep.deleted,
            "failed": rep.failed, "in_sync": f.in_sync(), "pod_mtu": desired.mtus.pod,
            "apply_seconds": took.as_secs_f64(),
        })
    );
    if rep.failed > 0 {
        bail!("{} route writes failed", rep.failed);
    }
    Ok(())
}
