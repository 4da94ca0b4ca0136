//! `http-handler`: a `wasi:http/incoming-handler` component (build for wasm32-wasip2), which a
//! runtime serves on a port, one fresh instance per request.
//!
//! Every request is answered `200 OK` (`text/plain`) with the body
//! `MESSAGE path=PATH count=N` and a newline, where MESSAGE is the environment variable of that
//! name (`hello from wasm` when unset), PATH the request's path and query, and N how many requests
//! this instance has handled (a global counter: it stays 1 when every request gets a new instance).
//! Each request also prints `request N: METHOD PATH` to stdout.
//!
//! `GET /trap` panics (a trap, since the guests abort on panic) before answering, so the runtime's
//! error path can be tested; `GET /spin` loops forever without answering (a request in flight
//! that only the runtime can end).
//!
//! Built for wasm32-wasip1 it is only a stub: `main` prints that it needs WASI 0.2 and exits 2.
//! As a wasip2 binary it also exports `wasi:cli/run`, doing the same.

fn main() {
    eprintln!(
        "http-handler: a wasi:http/incoming-handler component, to be served by the runtime (not run)"
    );
    std::process::exit(2);
}

#[cfg(target_env = "p2")]
mod handler {
    use std::sync::atomic::{AtomicU32, Ordering};

    use wasip2::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    /// Requests this instance has handled.
    static COUNT: AtomicU32 = AtomicU32::new(0);

    struct Handler;

    wasip2::http::proxy::export!(Handler);

    impl wasip2::exports::http::incoming_handler::Guest for Handler {
        fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
            let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
            let path = request.path_with_query().unwrap_or_default();
            let method = match request.method() {
                Method::Get => "GET".to_string(),
                Method::Post => "POST".to_string(),
                Method::Put => "PUT".to_string(),
                Method::Delete => "DELETE".to_string(),
                Method::Head => "HEAD".to_string(),
                Method::Other(m) => m,
                other => format!("{other:?}"),
            };
            println!("request {n}: {method} {path}");
            match path.as_str() {
                "/trap" => panic!("http-handler: trapping on request for /trap"),
                "/spin" => {
                    let mut spins = 0u64;
                    loop {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                }
                _ => {}
            }
            let message =
                std::env::var("MESSAGE").unwrap_or_else(|_| "hello from wasm".to_string());
            let body = format!("{message} path={path} count={n}\n");

            let headers = Fields::new();
            let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
            let _ = headers.set("content-length", &[body.len().to_string().into_bytes()]);
            let response = OutgoingResponse::new(headers);
            let out_body = response.body().expect("the response body is taken once");
            ResponseOutparam::set(response_out, Ok(response));
            let stream = out_body.write().expect("the body stream is taken once");
            stream
                .blocking_write_and_flush(body.as_bytes())
                .expect("writing the response body");
            let _ = stream.flush();
            drop(stream);
            OutgoingBody::finish(out_body, None).expect("finishing the response body");
        }
    }
}
