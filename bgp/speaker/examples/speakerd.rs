//! Runs the speaker from a JSON config, for interop experiments by hand:
//!
//! ```text
//! cargo run -p tortie-bgp-speaker --example speakerd -- speaker.json
//! ```
//!
//! `speaker.json`:
//! ```json
//! {"speaker": {"asn": 65001, "router_id": "10.77.0.1", "listen": "0.0.0.0:17901",
//!              "peers": [{"address": "10.77.0.2", "asn": 65002, "port": 17900,
//!                         "next_hop_v6": "fd77::1", "password": "x",
//!                         "timers": {"hold_time": 9, "connect_retry": 2}}]},
//!  "originate": ["10.1.0.0/24", "fd01::/64"],
//!  "status_file": "/tmp/speakerd-status.json",
//!  "options": {"cluster_id": "10.99.0.1", "route_events": false}}
//! ```
//! `options` (all optional): `cluster_id` makes it a route reflector (peers
//! with `"route_reflector_client": true` are its clients), `route_events:
//! false` skips the per-peer Adj-RIB-In copies and per-route logs (benchmarks);
//! `"restart": {"selection_deferral": 360, "peer_wait": 30}` (seconds) starts
//! it as a restarting speaker (RFC 4724 §4.1) and logs when the restart completes.
//! Events are logged (`RUST_LOG=info`, `bgp::packet=trace` for messages);
//! the peer status JSON is rewritten to `status_file` after every event
//! and every 200 ms.
//! Ctrl-C sends Cease / Administrative Shutdown to every peer and exits.

use anyhow::Context;
use serde::Deserialize;
use tortie_bgp_speaker::{RestartOptions, Speaker, SpeakerConfig, SpeakerEvent, SpeakerOptions};
use tortie_bgp_wire::{PathAttributes, Prefix};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    speaker: SpeakerConfig,
    #[serde(default)]
    originate: Vec<String>,
    #[serde(default)]
    status_file: Option<std::path::PathBuf>,
    #[serde(default)]
    options: Options,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    cluster_id: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    route_events: Option<bool>,
    #[serde(default)]
    restart: Option<RestartOptions>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let path = std::env::args()
        .nth(1)
        .context("usage: speakerd CONFIG.json")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let file: File = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let prefixes = file
        .originate
        .iter()
        .map(|p| {
            p.parse::<Prefix>()
                .with_context(|| format!("originate: {p:?} is not a prefix"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = SpeakerOptions {
        cluster_id: file.options.cluster_id,
        route_events: file.options.route_events.unwrap_or(true),
        restart: file.options.restart,
        ..SpeakerOptions::default()
    };
    let (handle, mut events) = Speaker::start_with(file.speaker, options)?;
    handle
        .originate(prefixes, PathAttributes::default())
        .await?;
    // The status is also rewritten every 200 ms: without `Routes` events
    // (route_events: false) counts change with no event.
    let mut fib = handle.subscribe_fib().await?;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                log_event(&ev);
                write_status(&handle, file.status_file.as_deref()).await?;
            }
            Some(ev) = fib.recv() => {
                if ev == tortie_bgp_speaker::FibEvent::RestartComplete {
                    tracing::info!("restart complete");
                }
            }
            _ = tick.tick() => write_status(&handle, file.status_file.as_deref()).await?,
            _ = tokio::signal::ctrl_c() => {
                handle.shutdown().await?;
                break;
            }
        }
    }
    Ok(())
}

async fn write_status(
    handle: &tortie_bgp_speaker::SpeakerHandle,
    path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(f) = path {
        let st = handle.peer_status().await?;
        std::fs::write(f, serde_json::to_string_pretty(&st)?)?;
    }
    Ok(())
}

fn log_event(ev: &SpeakerEvent) {
    match ev {
        SpeakerEvent::PeerUp { peer, negotiated } => {
            tracing::info!(%peer, families = ?negotiated.families, hold = negotiated.hold_time, "peer up")
        }
        SpeakerEvent::PeerDown { peer, reason } => tracing::info!(%peer, %reason, "peer down"),
        SpeakerEvent::Routes {
            peer,
            family,
            announced,
            withdrawn,
        } => {
            for (n, p) in announced {
                tracing::info!(%peer, %family, prefix = %n, next_hop = %p.next_hop, "route");
            }
            for n in withdrawn {
                tracing::info!(%peer, %family, prefix = %n, "withdrawn");
            }
        }
        SpeakerEvent::EndOfRib { peer, family } => tracing::info!(%peer, %family, "End-of-RIB"),
    }
}
