//! `fault-proxy --control 127.0.0.1:PORT`: serves the fault lab's control API
//! ([`fault_proxy::control`]) on a loopback address. Port 0 picks a free port; the first line on
//! stdout names the real one: `fault-proxy control on 127.0.0.1:PORT`.

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: fault-proxy [--control 127.0.0.1:PORT]   (default 127.0.0.1:18099)";

/// The control address, `Ok(None)` for `--help`, or why the arguments are wrong.
fn parse_args() -> Result<Option<SocketAddr>, String> {
    let mut control: SocketAddr = ([127, 0, 0, 1], 18099).into();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--control" => {
                let value = args.next().ok_or("--control needs an address")?;
                control = value
                    .parse()
                    .map_err(|_| format!("{value:?} is not an IP:port"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !control.ip().is_loopback() {
        // The API opens proxies and resets connections: never offer that to the network.
        return Err(format!(
            "refusing to serve the control API on non-loopback {control}"
        ));
    }
    Ok(Some(control))
}

#[tokio::main]
async fn main() -> ExitCode {
    let control = match parse_args() {
        Ok(Some(control)) => control,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("fault-proxy: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(control).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fault-proxy: cannot listen on {control}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("fault-proxy control on {addr}"),
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            return ExitCode::FAILURE;
        }
    }
    match fault_proxy::control::serve(listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-proxy: control server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
