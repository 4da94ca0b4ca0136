//! Serving a component that exports `wasi:http/incoming-handler` (the `wasi:http/proxy` world):
//! instead of calling `wasi:cli/run`, the container thread listens on `0.0.0.0:<port>` (the shim
//! already sits in the pod's network namespace), speaks HTTP/1.1 with hyper, and answers every
//! request with a **new instance** of the component, made from a pre-linked [`ProxyPre`].
//!
//! - Instances come from a pooling allocator: the component is mapped a second time into an engine
//!   of the same configuration as the shim's (so the same `.cwasm` loads) plus a pool sized for
//!   [`MAX_CONCURRENT_REQUESTS`] instances; a request waits for a free slot. The pool lives in the
//!   shim (a fork of the zygote), never in the zygote, whose forks it would slow down.
//! - Each instance gets its own WASI context from the container's [`WasmSpec`] (argv, env,
//!   preopens, stdout/stderr into the container's CRI log) and its own [`MemoryLimiter`] on the
//!   container's [`MemoryCap`]: the memory limit applies per instance.
//! - A request whose instance traps (or never sets a response) is answered `500`, the trap is
//!   written to the container's stderr log, and the server goes on serving.
//! - One thread (the container's) runs the connections and the guests, see [`serve`]. While
//!   requests are in flight, the pooling engine's epoch ticks every [`TICK`]: a guest that
//!   computes for long yields to the other requests at the next tick, and a request whose client
//!   went away before the response head is dropped there.
//! - The container runs until stopped: [`StopHandle::stop`] ends the accept loop, drops the
//!   connections, and interrupts guests still running (epoch of the pooling engine); the exit is
//!   that of any stopped Wasm container (137).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::cri_log::{CriLog, LogStream};
use crate::executor::{KILLED_EXIT_CODE, Outcome, StopHandle, wasi_builder};
use crate::limiter::{MemoryCap, MemoryLimiter};
use crate::protocol::WasmSpec;

/// The interface whose export makes a component an HTTP handler (any `0.2.x`).
const HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2.";
/// The port served when the daemon named none ([`WasmSpec::http_port`]).
pub(crate) const DEFAULT_PORT: u16 = 8080;
/// Requests served at once (instances alive at once); more wait for a slot. Sizes the pool.
const MAX_CONCURRENT_REQUESTS: u32 = 64;
/// Core instances per component instance the pool has room for (a component made by
/// wasm-component-ld holds a handful: the program, the adapter's shims and fix-ups).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Bytes of each pooled linear memory and table kept resident (reset in place) between requests.
const KEEP_RESIDENT: usize = 64 << 10;
/// How often the epoch ticks while requests are in flight (a long-running guest yields at each).
const TICK: Duration = Duration::from_millis(10);
/// How long the guests still running get to unwind after a stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Whether `component` exports `wasi:http/incoming-handler@0.2.x`.
pub(crate) fn exports_handler(engine: &Engine, component: &Component) -> bool {
    component.component_type().exports(engine).any(|(name, _)| name.starts_with(HANDLER_EXPORT))
}

/// The store's data of one request's instance.
pub(crate) struct HttpHost {
    ctx: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for HttpHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl WasiHttpView for HttpHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// A handler component linked in its own pooling engine, ready to instantiate per request.
pub(crate) struct HttpPrepared {
    pre: ProxyPre<HttpHost>,
}

/// Maps the container's artifact into a new pooling engine (configured as `engine`, so the same
/// artifact loads) and links it against WASI 0.2 and `wasi:http`.
pub(crate) fn prepare(engine: &Engine, spec: &WasmSpec, component: &Component) -> Result<HttpPrepared, String> {
    let resources = component.resources_required();
    let memories = resources.as_ref().map_or(1, |r| r.num_memories.max(1));
    let tables = resources.as_ref().map_or(1, |r| r.num_tables.max(1));
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_REQUESTS)
        .total_core_instances(MAX_CONCURRENT_REQUESTS * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(MAX_CONCURRENT_REQUESTS * memories)
        .total_tables(MAX_CONCURRENT_REQUESTS * tables)
        .total_stacks(MAX_CONCURRENT_REQUESTS)
        // Reset the first pages of a slot by hand instead of handing them back to the kernel:
        // every request touches them, and a refault costs more than the copy (≈ +15 % req/s).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut config: Config = engine.config().clone();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let pooling = Engine::new(&config).map_err(|e| format!("creating the HTTP handler's pooling engine: {e:#}"))?;
    let component = wasmlet_wasm::load_component(&pooling, &spec.artifact).map_err(|e| e.to_string())?;
    let mut linker = Linker::new(&pooling);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("linking WASI p2: {e:#}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| format!("linking wasi:http: {e:#}"))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| format!("linking component: {e:#}"))?;
    let pre = ProxyPre::new(pre).map_err(|e| format!("the component's wasi:http/incoming-handler export: {e:#}"))?;
    Ok(HttpPrepared { pre })
}

/// What every request's task shares.
struct Server {
    pre: ProxyPre<HttpHost>,
    spec: WasmSpec,
    log: Option<Arc<CriLog>>,
    stop: StopHandle,
    cap: Arc<MemoryCap>,
    slots: Arc<Semaphore>,
    ticker: Ticker,
}

/// The thread ticking the pooling engine's epoch while requests are in flight: a thread of its own,
/// since a guest computing on the serving thread holds up every task until it yields.
#[derive(Default)]
struct Ticker {
    done: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

/// Serves the handler until the container is stopped (or its port cannot be bound). Blocks the
/// calling thread, the container's thread, already in the container's cgroup (which the epoch
/// thread it starts inherits).
pub(crate) fn serve(prepared: HttpPrepared, spec: &WasmSpec, log: Option<Arc<CriLog>>, stop: StopHandle, cap: Arc<MemoryCap>) -> Outcome {
    let port = spec.http_port.unwrap_or(DEFAULT_PORT);
    // One thread serves every connection and runs every guest. With several, each page-table
    // change of a request (copy-on-write faults, slot resets) becomes a TLB shootdown IPI to the
    // other cores, which in a VM costs more than the cores give: 2 worker threads served ≈ 35 %
    // fewer requests/s than this on 2 vCPUs.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Outcome::error(1, format!("creating the HTTP handler's runtime: {e}")),
    };
    // A stop also interrupts guests running in the pooling engine.
    stop.also_interrupt(prepared.pre.engine().clone());
    let server = Arc::new(Server {
        pre: prepared.pre,
        spec: spec.clone(),
        log,
        stop,
        cap,
        slots: Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS as usize)),
        ticker: Ticker::default(),
    });
    let ticking = Arc::clone(&server);
    let ticker = match std::thread::Builder::new().name("http-epoch".into()).spawn(move || tick_while_busy(&ticking)) {
        Ok(t) => t,
        Err(e) => return Outcome::error(1, format!("starting the HTTP handler's epoch thread: {e}")),
    };
    let _ = server.ticker.thread.set(ticker.thread().clone());
    let span = tracing::Span::current();
    let outcome = runtime.block_on(accept_loop(Arc::clone(&server), port).instrument(span));
    // Guests still running were interrupted by the stop; give them a moment to unwind.
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    server.ticker.done.store(true, Ordering::SeqCst);
    ticker.thread().unpark();
    let _ = ticker.join();
    outcome
}

async fn accept_loop(server: Arc<Server>, port: u16) -> Outcome {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return Outcome::error(1, format!("serving wasi:http/incoming-handler: listening on {addr}: {e}")),
    };
    tracing::info!(%addr, "serving wasi:http/incoming-handler");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = server.stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let server = Arc::clone(&server);
                    connections.spawn(serve_connection(server, socket, peer).in_current_span());
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off briefly.
                    tracing::warn!(%addr, error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(%addr, connections = connections.len(), "HTTP handler stopped");
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Outcome::error(KILLED_EXIT_CODE, "stopped".into())
}

/// Bumps the pooling engine's epoch every [`TICK`] while any request holds a slot; parks when
/// none does (a request unparks it).
fn tick_while_busy(server: &Server) {
    while !server.ticker.done.load(Ordering::SeqCst) {
        if server.slots.available_permits() == MAX_CONCURRENT_REQUESTS as usize {
            std::thread::park();
            continue;
        }
        std::thread::sleep(TICK);
        server.pre.engine().increment_epoch();
    }
}

/// A guest's epoch deadline: trap once the container is stopped, else yield at every tick.
fn arm_epoch(store: &mut Store<HttpHost>, stop: &StopHandle) {
    let stop = stop.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| Ok(if stop.stopped() { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) }));
}

/// Aborts the task when dropped (a request whose client went away before its response head).
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

async fn serve_connection(server: Arc<Server>, socket: tokio::net::TcpStream, peer: SocketAddr) {
    let service = hyper::service::service_fn(move |req| {
        let server = Arc::clone(&server);
        async move { Ok::<_, std::convert::Infallible>(handle(server, req).await) }
    });
    if let Err(e) = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(socket), service).await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// Answers one request with a new instance: the guest's response, or 500 when it fails before
/// giving one.
async fn handle(server: Arc<Server>, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
    let what = format!("{} {}", req.method(), req.uri());
    let Ok(slot) = Arc::clone(&server.slots).acquire_owned().await else {
        return error_response(503, "the server is stopping");
    };
    if let Some(ticker) = server.ticker.thread.get() {
        ticker.unpark();
    }
    let host = match wasi_builder(&server.spec, &server.log) {
        Ok(mut builder) => HttpHost {
            ctx: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(Arc::clone(&server.cap)),
        },
        Err(e) => return failed(&server, &what, &e),
    };
    let mut store = Store::new(server.pre.engine(), host);
    store.limiter(|h| &mut h.limiter);
    arm_epoch(&mut store, &server.stop);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = store.data_mut().http().new_incoming_request(Scheme::Http, req).and_then(|req| {
        let out = store.data_mut().http().new_response_outparam(sender)?;
        Ok((req, out))
    });
    let (req, out) = match prepared {
        Ok(v) => v,
        Err(e) => return failed(&server, &what, &format!("{e:#}")),
    };
    let pre = server.pre.clone();
    // The guest runs in its own task: it may keep writing the body after it sent the head.
    let mut guest = AbortOnDrop(Some(tokio::spawn(
        async move {
            // Dropped in reverse: the store (and its pool slot) before the permit.
            let _slot = slot;
            let mut store = store;
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
            }
            .await;
            result.map_err(|e| if store.data().limiter.exceeded { format!("memory limit exceeded: {e:#}") } else { format!("{e:#}") })
        }
        .in_current_span(),
    )));
    match receiver.await {
        Ok(Ok(response)) => {
            // A failure after the head (mid-body) shows as a cut connection to the client;
            // log it once the guest is done. From here the guest runs on if the client goes.
            let server = Arc::clone(&server);
            let guest = guest.0.take();
            tokio::spawn(
                async move {
                    if let Some(guest) = guest
                        && let Ok(Err(e)) = guest.await
                    {
                        report(&server, &what, &e);
                    }
                }
                .in_current_span(),
            );
            response
        }
        Ok(Err(code)) => failed(&server, &what, &format!("the guest answered with error {code:?}")),
        Err(_) => {
            let Some(task) = guest.0.as_mut() else { unreachable!("the task is taken only above") };
            let e = match task.await {
                Ok(Ok(())) => "the guest returned without setting a response".to_string(),
                Ok(Err(e)) => e,
                Err(e) => format!("the request's task failed: {e}"),
            };
            failed(&server, &what, &e)
        }
    }
}

/// Reports a failed request (see [`report`]) and answers 500; one cut short by a stop of the
/// container gets 503.
fn failed(server: &Server, what: &str, error: &str) -> hyper::Response<HyperOutgoingBody> {
    if server.stop.stopped() {
        return error_response(503, "the container is stopping");
    }
    report(server, what, error);
    error_response(500, "the wasi:http handler failed; see the container's log")
}

/// Writes why a request failed to the container's stderr log, where the pod's owner sees it.
fn report(server: &Server, what: &str, error: &str) {
    tracing::warn!(request = %what, error = %error, "HTTP request failed");
    if let Some(log) = &server.log {
        log.write(LogStream::Stderr, format!("wasmlet: request {what} failed: {error}\n").as_bytes());
    }
}

fn error_response(status: u16, message: &'static str) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(message.as_bytes())).map_err(|never| match never {}).boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    response
}
