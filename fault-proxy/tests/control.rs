//! The `fault-proxy` binary and its control API, end to end over real HTTP, as a browser test
//! would drive it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary under test, killed when the test ends however it ends.
struct Binary {
    child: Child,
    control: SocketAddr,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fault-proxy --control 127.0.0.1:0` and reads the port from its first line.
fn start_binary() -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
        .args(["--control", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fault-proxy");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let binary = |control| Binary { child, control };
    let line = match rx.recv_timeout(DEADLINE) {
        Ok(line) => line,
        Err(_) => {
            drop(binary(SocketAddr::from(([127, 0, 0, 1], 0))));
            panic!("no startup line within {DEADLINE:?}");
        }
    };
    let addr = line
        .trim()
        .strip_prefix("fault-proxy control on ")
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    let control: SocketAddr = addr.parse().expect("control address");
    assert!(
        control.ip().is_loopback() && control.port() != 0,
        "{control}"
    );
    binary(control)
}

/// A response: status, lower-cased headers, JSON body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`, as a browser on another origin sends it.
async fn request(
    control: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Response {
    let mut stream = within("control connect", TcpStream::connect(control))
        .await
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {control}\r\nOrigin: http://127.0.0.1:8000\r\nConnection: close\r\n"
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        if !extra_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    within("control write", stream.write_all(head.as_bytes()))
        .await
        .unwrap();
    let mut raw = Vec::new();
    within("control read", stream.read_to_end(&mut raw))
        .await
        .unwrap();
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    let status = status.unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).expect(body)
    };
    Response {
        status,
        headers,
        body,
    }
}

async fn call(control: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    let response = request(control, method, path, body, &[]).await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("*"),
        "{method} {path}: no CORS header"
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{method} {path}: not JSON: {response:?}"
    );
    response
}

#[tokio::test]
async fn control_api_drives_a_proxy_end_to_end() {
    let binary = start_binary();
    let control = binary.control;
    let health = call(control, "GET", "/health", None).await;
    assert_eq!((health.status, health.body), (200, json!({"ok": true})));

    let mut upstream = Upstream::start().await;
    let created = call(
        control,
        "POST",
        "/proxies",
        Some(&json!({"upstream": upstream.addr.to_string()}).to_string()),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    let id = created.body["id"].as_u64().expect("id");
    let port = created.body["port"].as_u64().expect("port") as u16;
    assert_eq!(
        created.body.as_object().map(|o| o.len()),
        Some(2),
        "{created:?}"
    );

    let mut client = within("proxy connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap();
    let mut server = upstream.accept().await;
    client.write_all(b"through").await.unwrap();
    assert_eq!(
        read_exact("through the proxy", &mut server, 7).await,
        b"through"
    );

    let path = format!("/proxies/{id}");
    let state = call(control, "GET", &path, None).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.body["id"], id);
    assert_eq!(state.body["port"], port);
    assert_eq!(state.body["connections"], 1);
    assert_eq!(state.body["faults"]["blackhole"], false);

    // Missing fields take their defaults.
    let set = call(
        control,
        "PUT",
        &format!("{path}/faults"),
        Some(r#"{"latency_ms":40,"up_bytes_per_s":64000}"#),
    )
    .await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(
        set.body["faults"],
        json!({"blackhole": false, "refuse": false, "latency_ms": 40, "jitter_ms": 0,
               "up_bytes_per_s": 64000, "down_bytes_per_s": null})
    );
    assert_eq!(
        call(control, "GET", &path, None).await.body["faults"]["latency_ms"],
        40
    );
    // A `fetch` with a string body and no headers sends text/plain: accepted all the same.
    let plain = request(
        control,
        "PUT",
        &format!("{path}/faults"),
        Some(r#"{"latency_ms":40,"up_bytes_per_s":64000}"#),
        &[("Content-Type", "text/plain;charset=UTF-8")],
    )
    .await;
    assert_eq!(plain.status, 200, "{plain:?}");
    let typo = call(
        control,
        "PUT",
        &format!("{path}/faults"),
        Some(r#"{"latencyMs":40}"#),
    )
    .await;
    assert_eq!(typo.status, 400, "{typo:?}");
    assert!(typo.body["error"].is_string());

    let blackholed = call(control, "POST", &format!("{path}/blackhole-existing"), None).await;
    assert_eq!(
        (blackholed.status, &blackholed.body["connections"]),
        (200, &json!(1))
    );
    client.write_all(b"lost").await.unwrap();
    assert_silent("server of a dead path", &mut server).await;

    let reset = call(control, "POST", &format!("{path}/reset"), None).await;
    assert_eq!(reset.status, 200);
    let e = read_error("client after reset", &mut client).await;
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");

    let deleted = call(control, "DELETE", &path, None).await;
    assert_eq!((deleted.status, deleted.body), (200, json!({})));
    let gone = call(control, "GET", &path, None).await;
    assert_eq!(gone.status, 404);
    assert!(gone.body["error"].is_string());
    // The proxy's listener closes once it is deleted.
    within("proxy port closed", async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let binary = start_binary();
    let preflight = request(
        binary.control,
        "OPTIONS",
        "/proxies/1/faults",
        None,
        &[
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods == "*" || methods.contains("PUT"), "{methods}");
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(
        headers == "*" || headers.contains("content-type"),
        "{headers}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_json_errors() {
    let binary = start_binary();
    let control = binary.control;
    for (body, why) in [
        (r#"{"upstream":"10.0.0.1:80"}"#, "non-loopback upstream"),
        (
            r#"{"upstream":"192.168.1.2:18080"}"#,
            "non-loopback upstream",
        ),
        (r#"{"upstream":"localhost"}"#, "not an IP:port"),
        (r#"{"upstream":"#, "truncated JSON"),
        (r#"{}"#, "no upstream"),
    ] {
        let response = call(control, "POST", "/proxies", Some(body)).await;
        assert_eq!(response.status, 400, "{why}: {response:?}");
        assert!(response.body["error"].is_string(), "{why}: {response:?}");
    }
    for (method, path, status) in [
        ("GET", "/proxies/99", 404),
        ("GET", "/proxies/abc", 400),
        ("POST", "/proxies/99/reset", 404),
        ("DELETE", "/proxies/99", 404),
        ("GET", "/nowhere", 404),
        ("DELETE", "/health", 405),
    ] {
        let response = call(control, method, path, None).await;
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
        assert!(
            response.body["error"].is_string(),
            "{method} {path}: {response:?}"
        );
    }
}

#[tokio::test]
async fn proxies_are_bounded() {
    let binary = start_binary();
    let control = binary.control;
    let body = json!({"upstream": "127.0.0.1:9"}).to_string();
    for _ in 0..fault_proxy::control::MAX_PROXIES {
        assert_eq!(
            call(control, "POST", "/proxies", Some(&body)).await.status,
            200
        );
    }
    let refused = call(control, "POST", "/proxies", Some(&body)).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(
        call(control, "DELETE", "/proxies/1", None).await.status,
        200
    );
    assert_eq!(
        call(control, "POST", "/proxies", Some(&body)).await.status,
        200
    );
}

#[test]
fn the_binary_refuses_a_non_loopback_control_address() {
    let output = Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
        .args(["--control", "0.0.0.0:0"])
        .output()
        .expect("run fault-proxy");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("non-loopback"), "{stderr}");
    assert!(output.stdout.is_empty());
}
