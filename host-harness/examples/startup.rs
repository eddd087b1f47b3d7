//! Measures what loading and calling the component costs: compiling it,
//! loading the cached compiled artifact, and a fresh instance per call.
//!
//! `cargo run --release -p as2-harness --example startup` prints a table of medians.

use std::time::{Duration, Instant};

use as2_harness::runtime::{COMPONENT_WASM, Limits, Runtime, Station};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("as2-startup-{}", std::process::id()));
    let cache = dir.join("cache");
    let station = Station::open(&dir.join("station"))?;

    let compile = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                Runtime::new(None, Limits::default()).map(|_| started.elapsed())
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    Runtime::new(Some(&cache), Limits::default())?; // fills the cache
    let load_cached = median(
        (0..20)
            .map(|_| {
                let started = Instant::now();
                Runtime::new(Some(&cache), Limits::default()).map(|_| started.elapsed())
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let runtime = Runtime::new(Some(&cache), Limits::default())?;
    let calls: Vec<Duration> = (0..2000)
        .map(|_| {
            let started = Instant::now();
            runtime
                .call(&station, |guest, store| guest.call_config_schema(store))
                .map(|_| started.elapsed())
        })
        .collect::<Result<_, _>>()?;
    let per_call = median(calls);

    println!("component size: {} KiB", COMPONENT_WASM.len() / 1024);
    println!("| step | median |");
    println!("|---|---|");
    println!("| compile the component (Cranelift, Component::new + linking) | {compile:.2?} |");
    println!("| load the cached compiled artifact (+ linking) | {load_cached:.2?} |");
    println!("| fresh instance from InstancePre + one call (config-schema) | {per_call:.2?} |");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
