//! `http-server [PORT=8080] [MESSAGE=hello from wasm]`: a tiny HTTP/1.1 server on 0.0.0.0:PORT
//! (WASI 0.2 sockets: build for wasm32-wasip2). Prints `listening on PORT`, then answers every
//! request with `200 OK` and MESSAGE followed by a newline, logging `request N: <request line>`.
//! Closes each connection after one response.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().map(|p| p.parse()) {
        None => 8080,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("http-server: PORT must be a number");
            std::process::exit(2);
        }
    };
    let message = args.next().unwrap_or_else(|| "hello from wasm".to_string());
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("http-server: cannot listen on {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {port}");
    let body = format!("{message}\n");
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let mut reader = BufReader::new(&stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            continue;
        }
        // Read and drop the headers up to the blank line.
        let mut header = String::new();
        while reader.read_line(&mut header).map(|n| n > 0).unwrap_or(false) && header != "\r\n" && header != "\n" {
            header.clear();
        }
        println!("request {}: {}", n + 1, request_line.trim_end());
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = (&stream).write_all(response.as_bytes());
    }
}
