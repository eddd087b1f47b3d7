//! The wasmtime host: loads the connector component once (caching the
//! compiled artifact), instantiates it per call from an `InstancePre`, and
//! serves its imports (implemented in [`crate::host`]). Each call runs under
//! a memory cap and a deadline; a trapping guest is reported as an error and
//! the host carries on.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use sha2::Digest as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub use crate::host::{CallState, bindings};
pub use crate::outgoing::CallOptions;
pub use crate::station::Station;

pub use bindings::as2::connector::types::{
    Disposition, Error as ConnectorError, ErrorCode, Header, HttpRequest, HttpResponse, Mic,
    OutgoingDocument, StateEntry,
};
pub use bindings::exports::as2::connector::connector as api;

/// A business document held in memory: one to send, or one received and
/// read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name for Content-Disposition (RFC 2183), if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// The compiled connector component, embedded at build time.
pub const COMPONENT_WASM: &[u8] = include_bytes!(env!("AS2_COMPONENT_WASM"));

/// The connector built with its fault switch (feature `fault-component`):
/// connections named `fault: loop`, `fault: allocate` or `fault: panic`
/// misbehave, for the sandbox tests.
#[cfg(feature = "fault-component")]
pub const FAULT_COMPONENT_WASM: &[u8] = include_bytes!(env!("AS2_FAULT_COMPONENT_WASM"));

/// Limits applied to every call into the component.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most linear memory the guest may grow to.
    pub memory_bytes: usize,
    /// Wall-clock deadline of one call, host calls (HTTP) included.
    pub deadline: Duration,
    /// Most bytes one call may write to blobs (the messages it builds), so
    /// that no call can fill the disk.
    pub blob_bytes: u64,
}

impl Limits {
    /// How long the component may keep sending in one call, told to it as
    /// `AS2_CALL_BUDGET_MS`: four fifths of the deadline, so that a resend
    /// that would end past it is left to `resume` rather than cut off.
    pub fn call_budget_ms(&self) -> u64 {
        u64::try_from(self.deadline.as_millis() * 4 / 5).unwrap_or(u64::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            deadline: Duration::from_secs(300),
            blob_bytes: 16 << 30,
        }
    }
}

/// Why a call into the component failed at the host level.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped: a panic, the memory cap, or the deadline.
    #[error("the connector component stopped: {reason}")]
    Trap {
        /// What happened.
        reason: String,
        /// What the guest wrote to stderr (a panic message, say).
        guest_output: String,
    },
    /// The host could not run the call.
    #[error("the host could not run the connector: {0:#}")]
    Host(anyhow::Error),
}

const EPOCH_TICK: Duration = Duration::from_millis(10);
const GUEST_OUTPUT_CAPACITY: usize = 1 << 20;

/// The loaded component, ready to instantiate.
pub struct Runtime {
    engine: Engine,
    pre: bindings::As2ConnectorPre<CallState>,
    /// Limits for each call.
    pub limits: Limits,
    /// Holds calls back while every pooled instance slot is in use.
    gate: CallGate,
}

/// Instances that can run at once. Each call is a fresh instance, and with
/// wasmtime's pooling allocator it takes a reserved slot instead of mapping
/// its memory afresh: a fresh instance and the smallest call took 60 µs
/// against 107–112 µs without the pool on the project's machine
/// (docs/benchmarks.md). Calls beyond this many wait for a slot; 2 cores are
/// saturated long before.
const POOLED_INSTANCES: u32 = 128;

/// Linear memory a slot keeps resident between calls, where the kernel can
/// tell wasmtime which of its pages a call wrote (`PAGEMAP_SCAN`, Linux 6.7
/// and later): those pages are zeroed in place rather than unmapped, so the
/// next call neither faults them in again nor pays for the `madvise`.
/// Measured side by side (docs/benchmarks.md): a fresh instance and the
/// smallest call 36.8 µs with slots reset by `madvise`, 19.7 µs keeping
/// 1 MiB; a 10 MB parse 23.5 and 29.8 ms keeping 1 MiB, 19.4 and 20.5 ms
/// keeping 16 MiB, no faster at 32 MiB. The cost is memory: a slot keeps
/// what its calls wrote, up to this much, while it stays warm. Without
/// `PAGEMAP_SCAN` the kept bytes would be zeroed whole every call (53 µs at
/// 1 MiB), so nothing is kept there.
const KEEP_RESIDENT: usize = 16 << 20;

fn pool(limits: &Limits) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        // The component's core modules: the connector and the shims that
        // wasm-component-ld adds, each with at most one memory and table.
        .total_core_instances(POOLED_INSTANCES * 8)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 8)
        .max_memory_size(limits.memory_bytes.min(4 << 30))
        .table_keep_resident(64 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT);
    }
    pool
}

/// Set (to anything) to have wasmtime write `/tmp/perf-<pid>.map`, so that
/// `perf report` names the component's functions (docs/benchmarks.md).
const PERF_MAP_VARIABLE: &str = "AS2_HARNESS_PERF_MAP";

/// A counting semaphore for blocking callers.
struct CallGate {
    free: Mutex<usize>,
    freed: Condvar,
}

impl CallGate {
    fn new(slots: usize) -> Self {
        CallGate {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot; it is given back when the pass is dropped.
    fn enter(&self) -> CallPass<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        CallPass(self)
    }
}

struct CallPass<'a>(&'a CallGate);

impl Drop for CallPass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) the embedded component.
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> anyhow::Result<Self> {
        Self::with_component(COMPONENT_WASM, cache_dir, limits)
    }

    /// A runtime for another build of the connector component (`wasm`), such
    /// as the sandbox tests' fault-switch build.
    pub fn with_component(
        wasm: &[u8],
        cache_dir: Option<&Path>,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&limits)));
        if std::env::var_os(PERF_MAP_VARIABLE).is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let component = load_component(&engine, wasm, cache_dir)?;
        let mut linker: Linker<CallState> = Linker::new(&engine);
        crate::host::add_to_linker(&mut linker)?;
        let pre = bindings::As2ConnectorPre::new(linker.instantiate_pre(&component)?)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Runtime {
            engine,
            pre,
            limits,
            gate: CallGate::new(POOLED_INSTANCES as usize),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `f` on a fresh instance for `station`, under the limits.
    pub fn call<R>(
        &self,
        station: &Arc<Station>,
        f: impl FnOnce(&api::Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_with(station, &CallOptions::default(), f)
    }

    /// [`Runtime::call`] with the host-applied `options` of the call's
    /// connection (the TLS settings of its outgoing https requests, which
    /// `wasi:http` cannot express).
    pub fn call_with<R>(
        &self,
        station: &Arc<Station>,
        options: &CallOptions,
        f: impl FnOnce(&api::Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let _pass = self.gate.enter();
        let guest_output = MemoryOutputPipe::new(GUEST_OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(guest_output.clone())
            .env(
                "AS2_CALL_BUDGET_MS",
                self.limits.call_budget_ms().to_string(),
            )
            .build();
        let state = CallState::new(
            wasi,
            station.clone(),
            options,
            self.limits.memory_bytes,
            self.limits.blob_bytes,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.store_limits());
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        // wasmtime caps what one guest-to-host call may carry at 128 MiB by
        // default, which a large message's record (`state.set` of the exact
        // bytes) exceeds. The guest cannot hold more than its memory cap,
        // which already bounds what it can make the host allocate.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Host(anyhow::anyhow!("instantiating the component: {e:?}")))?;
        let guest = instance.as2_connector_connector();
        f(guest, &mut store).map_err(|e| {
            let output = String::from_utf8_lossy(&guest_output.contents()).trim().to_string();
            let reason = match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => format!("it ran past its deadline of {:?}", self.limits.deadline),
                Some(wasmtime::Trap::UnreachableCodeReached) if output.contains("panicked") => "it panicked".to_string(),
                Some(wasmtime::Trap::UnreachableCodeReached) => "it aborted (out of memory or a panic)".to_string(),
                Some(trap) => trap.to_string(),
                // StoreLimits' trap on a refused memory.grow carries no Trap code.
                None if format!("{e:#}").contains("forcing trap when growing memory") => format!(
                    "it reached its memory cap of {} MiB",
                    self.limits.memory_bytes >> 20
                ),
                None => format!("{e:#}"),
            };
            tracing::error!(station = %station.label, %reason, guest_output = %output, "connector call failed");
            CallError::Trap { reason, guest_output: output }
        })
    }
}

/// Compiles the component, or loads the artifact compiled earlier into
/// `cache_dir` (keyed by the component's hash and the wasmtime version).
fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the connector component");
    };
    let mut hasher = sha2::Sha256::new();
    hasher.update(wasm);
    hasher.update(env!("CARGO_PKG_VERSION"));
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut settings);
    hasher.update(std::hash::Hasher::finish(&settings).to_le_bytes());
    let hash: String = hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = cache_dir.join(format!("as2_connector-{hash}.cwasm"));
    if path.exists() {
        // SAFETY: the file is an artifact this host compiled and wrote into its
        // own cache folder, keyed by the component and the engine's settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unusable cached component: {e:#}")
            }
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the connector component")?;
    let bytes = component.serialize()?;
    if let Err(e) = crate::files::write_durably(&path, &bytes) {
        tracing::warn!(path = %path.display(), "could not cache the compiled component: {e:#}");
    }
    Ok(component)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_call_past_the_pool_waits_for_a_slot_and_runs_once_one_is_free() {
        let gate = Arc::new(CallGate::new(1));
        let first = gate.enter();
        let entered = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (gate, entered) = (gate.clone(), entered.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                entered.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !entered.load(Ordering::SeqCst),
            "entered while no slot was free"
        );
        drop(first);
        waiter.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(*gate.free.lock().unwrap(), 1, "the slot came back");
    }
}
