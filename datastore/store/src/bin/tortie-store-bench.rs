//! Datastore benchmarks and the worker process of the multi-process CAS
//! tests. Usage (URL is a datastore URL, e.g. sqlite:///tmp/b.db):
//!
//! ```text
//! tortie-store-bench cas-worker URL KEY N      # N successful CAS increments of KEY; prints "ok conflicts"
//! tortie-store-bench cas URL PROCS N           # PROCS cas-workers at once; prints updates/s
//! tortie-store-bench watch URL N               # write -> watcher-sees-it latency p50/p99 over N writes
//! tortie-store-bench list URL N                # create N resources, time listing them
//! tortie-store-bench idle-watch URL SECS        # hold one idle watch; print this process's context switches/s
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tortie_datastore::{open, OpenOptions, Store, StoreError};

fn usage() -> ExitCode {
    eprintln!(
        "usage: tortie-store-bench cas-worker URL KEY N | cas URL PROCS N | watch URL N | list URL N | idle-watch URL SECS"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-store-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match argv.as_slice() {
        ["cas-worker", url, key, n] => rt.block_on(cas_worker(url, key, parse(n))),
        ["cas", url, procs, n] => cas_many(url, parse(procs), parse(n)),
        ["watch", url, n] => rt.block_on(watch_latency(url, parse(n))),
        ["list", url, n] => rt.block_on(list_bench(url, parse(n))),
        ["idle-watch", url, secs] => rt.block_on(idle_watch(url, parse(secs))),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie-store-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(s: &str) -> usize {
    s.parse().unwrap_or(0)
}

async fn store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open(url, &OpenOptions::default()).await
}

/// Increments the JSON number at `key` `n` times by compare-and-swap,
/// retrying on conflicts; prints `<successes> <conflicts>`.
async fn cas_worker(url: &str, key: &str, n: usize) -> Result<(), StoreError> {
    let s = store(url).await?;
    let (mut done, mut conflicts) = (0usize, 0usize);
    while done < n {
        let Some(kv) = s.get(key).await? else {
            match s.create(key, b"0".to_vec()).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        let v: u64 = std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        match s
            .update(key, (v + 1).to_string().into_bytes(), kv.revision)
            .await
        {
            Ok(_) => done += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) if e.is_transient() => continue,
            Err(e) => return Err(e),
        }
    }
    println!("{done} {conflicts}");
    Ok(())
}

/// Runs `procs` cas-worker processes of this binary at once on one key.
fn cas_many(url: &str, procs: usize, n: usize) -> Result<(), StoreError> {
    let exe = std::env::current_exe().map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let key = format!("/bench/cas/{}", std::process::id());
    let start = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["cas-worker", url, &key, &n.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut conflicts = 0usize;
    for c in children {
        let out = c
            .wait_with_output()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        conflicts += text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
    }
    let secs = start.elapsed().as_secs_f64();
    let total = procs * n;
    println!(
        "cas: {procs} processes x {n} updates = {total} in {secs:.2} s = {:.0} updates/s ({conflicts} conflicts retried; includes process start)",
        total as f64 / secs
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Writes `n` values one at a time and times how long the watch takes to see each.
async fn watch_latency(url: &str, n: usize) -> Result<(), StoreError> {
    let s = store(url).await?;
    let prefix = format!("/bench/watch/{}/", std::process::id());
    let mut w = s.watch(&prefix, 0).await?;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}k{}", i % 16);
        let t = Instant::now();
        let rev = s.put(&key, format!("{{\"i\":{i}}}").into_bytes()).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
                Ok(Some(Ok(ev))) if ev.revision() == rev => break,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) | Err(_) => return Err(StoreError::Unavailable("watch stalled".into())),
            }
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "watch: {n} writes, write->watch latency p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}

/// Creates `n` resource-sized values (in transactions of 100) and times a list of them.
async fn list_bench(url: &str, n: usize) -> Result<(), StoreError> {
    let s = store(url).await?;
    let prefix = format!("/bench/list/{}/", std::process::id());
    let value = br#"{"apiVersion":"projectcalico.org/v3","kind":"WorkloadEndpoint","metadata":{"name":"x","namespace":"default","labels":{"app":"bench"}},"spec":{"node":"node1","pod":"pod","interfaceName":"cali0123456789a","ipNetworks":["10.244.0.1/32"]}}"#;
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| tortie_datastore::TxnOp::Put {
                key: format!("{prefix}{i:06}"),
                value: value.to_vec(),
            })
            .collect();
        s.txn(ops).await?;
    }
    let write = t.elapsed();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = s.list(&prefix).await?;
        times.push(t.elapsed());
        if l.items.len() != n {
            return Err(StoreError::Unavailable(format!(
                "listed {} of {n}",
                l.items.len()
            )));
        }
    }
    times.sort();
    println!(
        "list: {n} values written in {:.2} s; list median {:.1} ms (5 runs)",
        write.as_secs_f64(),
        percentile(&times, 0.5).as_secs_f64() * 1e3
    );
    Ok(())
}

/// Sum of the voluntary and involuntary context switches of every thread of
/// this process (`/proc/self/task/*/status`): each is one wake-up.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Holds one watch on a prefix nobody writes for `secs` seconds and prints
/// the context switches per second of this process meanwhile (the cost of an
/// idle watch; the runtime itself sleeps).
async fn idle_watch(url: &str, secs: usize) -> Result<(), StoreError> {
    let s = store(url).await?;
    let prefix = format!("/bench/idle/{}/", std::process::id());
    let mut w = s.watch(&prefix, 0).await?;
    // Let the watch settle after its start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = context_switches();
    let t = Instant::now();
    let secs = secs.max(1);
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(secs as u64), w.next()).await {
        return Err(StoreError::Unavailable(format!(
            "idle watch got an event: {ev:?}"
        )));
    }
    let switches = context_switches() - before;
    println!(
        "idle-watch: {switches} context switches in {:.1} s = {:.1}/s (whole process, one idle watch)",
        t.elapsed().as_secs_f64(),
        switches as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}
