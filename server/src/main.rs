//! `realtime-voice-server`: the reference backend. For now it serves `/health` and the static
//! demo (`www/`) and package (`pkg/`) folders; the realtime endpoint comes with the backend issue.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::{routing::get, Router};
use tower_http::services::ServeDir;

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => match p.parse() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("PORT must be a number from 1 to 65535, got {p:?}");
                std::process::exit(2);
            }
        },
        Err(_) => 8080,
    };
    let root = std::env::var("STATIC_ROOT").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("."));
    // ServeDir guesses `.wasm` as application/wasm through mime_guess.
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .nest_service("/pkg", ServeDir::new(root.join("pkg")))
        .fallback_service(ServeDir::new(root.join("www")));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("realtime-voice-server listening on http://{addr}/");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}
