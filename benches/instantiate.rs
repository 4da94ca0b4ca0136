//! The in-shim part of a container start: instantiate hello (WASI preview 1) from its precompiled
//! artifact and run its `_start`, as `Executor::run` does (a new `Store` with a WASI p1 context and
//! a memory limiter, the epoch deadline armed, `instantiate_async` through an `InstancePre`,
//! `call_async`), with stdout and stderr discarded.
//!
//! The artifact comes from a real image store (`ImageStore::import` + `compiled_path`), so it is the
//! `.cwasm` a shim maps. It is deserialized once; each iteration only instantiates and runs.
//!
//! - `prepare`: what CreateContainer costs in the shim: `load_module` (deserialize the `.cwasm`)
//!   then `instantiate_pre` on an existing WASI p1 linker.
//! - `run/on-demand`: the engine of `wasmlet_wasm::new_engine()` (the shim's; on-demand allocator).
//! - `run/pooling`: the same configuration plus a small pooling allocator (the only difference;
//!   checked through `compat_hash`, and the same `.cwasm` loads in both).
//! - `run/on-demand+runtime`: as `run/on-demand`, plus building the current-thread tokio runtime
//!   that `Executor::run` makes for every container.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, OptLevel, PoolingAllocationConfig,
    ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

struct Host {
    wasi: WasiP1Ctx,
    limiter: AllowAll,
}

/// Stands in for the shim's `MemoryLimiter` with no limit set (the callback is still installed).
struct AllowAll;

impl ResourceLimiter for AllowAll {
    fn memory_growing(&mut self, _current: usize, _desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, _desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// `wasmlet_wasm::new_engine()`'s configuration with a small pooling allocator. Any other
/// difference from the shim's engine is caught by the compat-hash check in [`pooling_engine`].
fn pooling_config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(8)
        .total_component_instances(8)
        .total_memories(8)
        .total_tables(8)
        .total_stacks(8)
        .max_memory_size(64 << 20);
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn pooling_engine() -> Engine {
    let engine = Engine::new(&pooling_config()).expect("pooling engine");
    let shim = wasmlet_wasm::new_engine().expect("shim engine");
    assert_eq!(
        wasmlet_wasm::compat_hash(&engine),
        wasmlet_wasm::compat_hash(&shim),
        "benches/instantiate.rs: the pooling engine's config drifted from wasmlet_wasm::new_engine(); \
         copy the new setting into pooling_config()"
    );
    engine
}

fn linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut Host| &mut h.wasi).expect("linking WASI p1");
    linker
}

fn prepare(engine: &Engine, linker: &Linker<Host>, artifact: &Path) -> InstancePre<Host> {
    let module: Module = wasmlet_wasm::load_module(engine, artifact).expect("loading hello's .cwasm");
    assert!(module.get_export("_start").is_some());
    linker.instantiate_pre(&module).expect("instantiate_pre")
}

/// One container run, as `Executor::run` does it for a core module.
async fn run_hello(engine: &Engine, pre: &InstancePre<Host>) {
    let mut builder = WasiCtxBuilder::new();
    builder.args(&["hello"]);
    builder.stdout(std::io::empty());
    builder.stderr(std::io::empty());
    let mut store = Store::new(engine, Host { wasi: builder.build_p1(), limiter: AllowAll });
    store.limiter(|h| &mut h.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
    let instance = pre.instantiate_async(&mut store).await.expect("instantiating hello");
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").expect("hello's _start");
    match start.call_async(&mut store, ()).await {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => {}
        Err(e) => panic!("hello failed: {e:#}"),
    }
}

/// Imports hello into a fresh image store and returns its compiled artifact (the store's
/// directory must outlive the benches).
fn hello_artifact(dir: &Path) -> PathBuf {
    let store = wasmlet_image::ImageStore::open(dir.join("images")).expect("opening the image store");
    store.import(Path::new(wasmlet_wasm_apps::HELLO_P1), Some("localhost/hello:bench")).expect("importing hello");
    let image = store.resolve("localhost/hello:bench").expect("resolving hello").expect("hello was imported");
    store.compiled_path(&image).expect("hello's compiled artifact")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn instantiate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifact = hello_artifact(dir.path());

    let on_demand = wasmlet_wasm::new_engine().expect("shim engine");
    let on_demand_linker = linker(&on_demand);
    let on_demand_pre = prepare(&on_demand, &on_demand_linker, &artifact);
    let pooling = pooling_engine();
    let pooling_pre = prepare(&pooling, &linker(&pooling), &artifact);
    let rt = current_thread();

    let mut group = c.benchmark_group("instantiate");
    group.bench_function("prepare", |b| b.iter(|| prepare(&on_demand, &on_demand_linker, &artifact)));
    group.bench_function("run/on-demand", |b| b.iter(|| rt.block_on(run_hello(&on_demand, &on_demand_pre))));
    group.bench_function("run/pooling", |b| b.iter(|| rt.block_on(run_hello(&pooling, &pooling_pre))));
    group.bench_function("run/on-demand+runtime", |b| {
        b.iter(|| current_thread().block_on(run_hello(&on_demand, &on_demand_pre)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = instantiate
}
criterion_main!(benches);
