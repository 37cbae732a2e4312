//! `realtime-voice-server`: reads the configuration, binds, prints one "listening" line and serves
//! until SIGTERM or SIGINT. Usage: `realtime-voice-server [--dev] [--faults]`, or
//! `realtime-voice-server migrate` to apply the database migrations and exit; see docs/SERVER.md.

use realtime_voice_server::store::{Db, Target};
use realtime_voice_server::{log, serve_with_shutdown, Config};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "migrate") {
        return migrate().await;
    }
    let config = match Config::from_env_and_args(args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("realtime-voice-server: {e}");
            std::process::exit(2);
        }
    };
    let addr = config.addr;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("realtime-voice-server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    log::log(
        log::Level::Info,
        "starting",
        &[
            ("addr", bound.to_string().into()),
            ("dev", config.dev.into()),
            ("faults", config.faults.into()),
            ("protocol", format!("{:?}", config.protocol).into()),
        ],
    );
    println!("realtime-voice-server listening on http://{bound}/");
    if let Err(e) = serve_with_shutdown(config, listener, shutdown_signal()).await {
        eprintln!("realtime-voice-server: {e}");
        std::process::exit(1);
    }
    log::log(log::Level::Info, "stopped", &[]);
}

/// `realtime-voice-server migrate`: applies the migrations of DATABASE_URL / DATABASE_PATH and
/// exits (a deploy step; needs no JWT secret).
async fn migrate() {
    let env = |k: &str| std::env::var(k).ok();
    let Some(target) = Target::from_env(
        env("DATABASE_URL").as_deref(),
        env("DATABASE_PATH").as_deref(),
    ) else {
        eprintln!("realtime-voice-server: DATABASE_URL must be postgres://…, postgresql://… or sqlite://path");
        std::process::exit(2);
    };
    let kind = target.kind();
    // The database clients are synchronous: off the async workers.
    match tokio::task::spawn_blocking(move || Db::migrate(&target)).await {
        Ok(Ok(applied)) => {
            println!("realtime-voice-server: {kind} migrations applied now: {applied:?}");
            return;
        }
        Ok(Err(e)) => eprintln!("realtime-voice-server: {e}"),
        Err(e) => eprintln!("realtime-voice-server: migration task failed: {e}"),
    }
    std::process::exit(1);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
