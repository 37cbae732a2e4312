//! Several instances of the real server binary sharing a private Redis and a private Postgres,
//! behind a round-robin TCP proxy (a load balancer without sticky sessions): one socket per
//! interview across instances (4409), take-back across instances (4410 to the old socket),
//! per-interview budgets shared, a killed instance's interview free within the lease and
//! continued elsewhere from the shared history; Redis or Postgres going away mid-session.
//! Needs `redis-server` and `postgresql` (installed by `make setup`).

mod common;
mod multi;

use std::time::{Duration, Instant};

use common::{append, expect_close, next_frame, send, token, until, Frame, Ws, WAIT};
use multi::{Instance, Postgres, Redis, RoundRobin};
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;

/// The lease the instances use here (REDIS_LOCK_LEASE_S).
const LEASE: Duration = Duration::from_secs(2);

fn env(redis: &Redis, db_url: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", db_url.to_string()),
        ("REDIS_LOCK_LEASE_S", (LEASE.as_secs_f64()).to_string()),
    ];
    v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
    v
}

async fn open(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
        .await
        .expect("connect timeout")
        .expect("handshake");
    ws
}

fn query(user: &str, interview: &str, resume: Option<&str>) -> String {
    let mut q = format!("?token={}", token(user, interview));
    if let Some(r) = resume {
        q.push_str(&format!("&resume={r}"));
    }
    q
}

/// Reads up to `session.created` and returns the connection's session id.
async fn session_id(ws: &mut Ws) -> String {
    let seen = until(ws, "session.created").await;
    let id = seen.last().expect("session.created")["session"]["id"]
        .as_str()
        .expect("session id")
        .to_string();
    assert!(id.starts_with("sess_"), "{id}");
    id
}

/// The first frame must be a close with `code`.
async fn closed_with(ws: &mut Ws, code: u16) -> String {
    match next_frame(ws).await {
        Frame::Close(Some((c, reason))) => {
            assert_eq!(c, code, "{reason}");
            reason
        }
        other => panic!("expected close {code}, got {other:?}"),
    }
}

/// Cancels the greeting in progress (so that text turns can follow at once).
async fn skip_greeting(ws: &mut Ws) {
    until(ws, "response.created").await;
    send(ws, json!({"type": "response.cancel"})).await;
    until(ws, "response.done").await;
}

/// One text turn: the candidate's text, then the interviewer's text reply.
async fn text_turn(ws: &mut Ws, text: &str) -> String {
    send(
        ws,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
               "content": [{"type": "input_text", "text": text}]}}),
    )
    .await;
    send(
        ws,
        json!({"type": "response.create", "response": {"output_modalities": ["text"]}}),
    )
    .await;
    let seen = until(ws, "response.done").await;
    let errors: Vec<&Value> = seen.iter().filter(|e| e["type"] == "error").collect();
    assert!(errors.is_empty(), "{errors:?}");
    seen.iter()
        .find(|e| e["type"] == "response.output_text.done")
        .and_then(|e| e["text"].as_str())
        .expect("a text reply")
        .to_string()
}

/// The first `chars` characters of the next spoken response's transcript (deltas come a word
/// at a time, in step with the audio).
async fn spoken_start(ws: &mut Ws, chars: usize) -> String {
    let mut said = String::new();
    while said.len() < chars {
        let seen = until(ws, "response.output_audio_transcript.delta").await;
        said.push_str(seen.last().expect("delta")["delta"].as_str().unwrap_or(""));
    }
    said
}

/// The first `error` event's code after an append, proven by a marker: an unknown event type
/// answered `invalid_value` means nothing was refused before it.
async fn append_outcome(ws: &mut Ws, ms: usize) -> String {
    send(ws, append(&vec![0u8; ms * 48])).await;
    send(ws, json!({"type": "marker.unknown"})).await;
    let seen = until(ws, "error").await;
    seen.last().expect("error")["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_lock_the_take_back_the_budgets_and_the_history() {
    let redis = Redis::start().await;
    let pg = Postgres::start().await;
    let db = pg.create_db("rv_two").await;
    // The schema comes from versioned migrations, applied once (here by the subcommand).
    for applied in ["[1]", "[]"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-voice-server"))
            .arg("migrate")
            .env("DATABASE_URL", &db)
            .output()
            .expect("migrate");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains(&format!("applied now: {applied}")),
            "{said}"
        );
    }
    let nullable = pg
        .query_texts(
            "rv_two",
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_name = 'interviews' AND column_name = 'realtime_cost_usd'",
        )
        .await;
    assert_eq!(nullable, vec!["NO".to_string()]);
    // Audio refills at 1 % of real time: a spent burst stays spent for the whole test.
    let e = env(&redis, &db, &[("RATE_LIMIT_AUDIO_REALTIME_FACTOR", "0.01")]);
    let mut a = Instance::start(&e).await;
    let b = Instance::start(&e).await;
    let proxy = RoundRobin::start(vec![a.addr, b.addr]).await;

    // 1. Two sockets for one interview through the balancer land on both instances: 4409.
    assert_eq!(proxy.next_backend(), a.addr);
    let mut first = open(&proxy.ws_url("iv-lock", &query("u1", "iv-lock", None))).await;
    let s1 = session_id(&mut first).await;
    assert_eq!(proxy.next_backend(), b.addr);
    let mut second = open(&proxy.ws_url("iv-lock", &query("u1", "iv-lock", None))).await;
    closed_with(&mut second, 4409).await;

    // 2. Take-back across instances: the reconnect on B presents the session id from A.
    let mut back = open(&b.ws_url("iv-lock", &query("u1", "iv-lock", Some(&s1)))).await;
    let (code, reason) = expect_close(&mut first).await;
    assert_eq!((code, reason.as_str()), (4410, "taken over"));
    let s2 = session_id(&mut back).await;
    assert_ne!(s1, s2);
    // The old proof is spent; another user is refused even with the current one.
    let mut stale = open(&a.ws_url("iv-lock", &query("u1", "iv-lock", Some(&s1)))).await;
    closed_with(&mut stale, 4409).await;
    let mut other = open(&a.ws_url("iv-lock", &query("u2", "iv-lock", Some(&s2)))).await;
    closed_with(&mut other, 1008).await;
    drop(back);

    // 3. The audio budget is per interview across instances: 12 s spent on A, then nothing on B.
    let mut on_a = open(&a.ws_url("iv-budget", &query("u1", "iv-budget", None))).await;
    let sa = session_id(&mut on_a).await;
    for _ in 0..3 {
        assert_eq!(append_outcome(&mut on_a, 4000).await, "invalid_value");
    }
    let mut on_b = open(&b.ws_url("iv-budget", &query("u1", "iv-budget", Some(&sa)))).await;
    assert_eq!(expect_close(&mut on_a).await.0, 4410);
    session_id(&mut on_b).await;
    assert_eq!(append_outcome(&mut on_b, 1000).await, "rate_limit_exceeded");
    // Another interview on B has its own budget.
    let mut fresh = open(&b.ws_url("iv-budget-2", &query("u1", "iv-budget-2", None))).await;
    session_id(&mut fresh).await;
    assert_eq!(append_outcome(&mut fresh, 1000).await, "invalid_value");
    drop((on_b, fresh));

    // 4. An instance killed mid-interview. Two interviews on A have started (the script position
    // is in Postgres, visible from B).
    let mut crash = open(&a.ws_url("iv-crash", &query("u1", "iv-crash", None))).await;
    let s_crash = session_id(&mut crash).await;
    let mut lease = open(&a.ws_url("iv-lease", &query("u1", "iv-lease", None))).await;
    session_id(&mut lease).await;
    for iv in ["iv-crash", "iv-lease"] {
        wait_question_index(b.addr, "u1", iv, 1).await;
    }
    a.kill();
    // The dead instance's lock still stands for a newcomer without proof...
    let killed_at = Instant::now();
    let mut early = open(&b.ws_url("iv-lease", &query("u1", "iv-lease", None))).await;
    closed_with(&mut early, 4409).await;
    // ...the client's own reconnect (with its session id) takes it back at once...
    let mut resumed =
        open(&proxy.ws_url("iv-crash", &query("u1", "iv-crash", Some(&s_crash)))).await;
    session_id(&mut resumed).await;
    let took_back_after = killed_at.elapsed();
    assert!(took_back_after < LEASE, "{took_back_after:?}");
    // ...and without proof the interview is free once the lease runs out.
    let mut freed = loop {
        let mut ws = open(&b.ws_url("iv-lease", &query("u1", "iv-lease", None))).await;
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "session.created" => break ws,
            Frame::Close(Some((4409, _))) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            killed_at.elapsed() < LEASE + Duration::from_secs(3),
            "not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let free_after = killed_at.elapsed();
    assert!(
        free_after <= LEASE + Duration::from_millis(1500),
        "{free_after:?}"
    );
    // Both continue the interview from the shared history.
    for ws in [&mut resumed, &mut freed] {
        let said = spoken_start(ws, "Welcome back.".len()).await;
        assert!(said.starts_with("Welcome back."), "{said}");
    }
    // 5. A graceful stop (SIGTERM) closes its sessions 1001 and releases their locks before the
    // process exits: the interview is free elsewhere at once, not after the lease.
    let mut b = b;
    let c = Instance::start(&e).await;
    let mut held = open(&b.ws_url("iv-term", &query("u1", "iv-term", None))).await;
    session_id(&mut held).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = b.terminate();
        (s, b)
    });
    assert_eq!(expect_close(&mut held).await.0, 1001);
    let (status, _b) = status.await.expect("terminate");
    assert!(status.success(), "{status}");
    let stopped_at = Instant::now();
    let mut moved = open(&c.ws_url("iv-term", &query("u1", "iv-term", None))).await;
    session_id(&mut moved).await;
    assert!(stopped_at.elapsed() < LEASE);
    println!(
        "killed instance: taken back after {took_back_after:?}, free without proof after \
         {free_after:?} (lease {LEASE:?})"
    );
    drop(proxy);
}

/// Waits until the interview's stored script position reaches `index`.
async fn wait_question_index(addr: std::net::SocketAddr, user: &str, iv: &str, index: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = common::get(
            addr,
            &format!("/api/v1/interviews/{iv}"),
            Some(&token(user, iv)),
        )
        .await;
        if r.status == 200 && r.json()["questions_asked"].as_u64() >= Some(index) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{iv}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects until the connection is admitted (a dependency coming back), within `WAIT`.
async fn admitted(url: &str) -> Ws {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut ws = open(url).await;
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "session.created" => return ws,
            Frame::Close(Some((1013, _))) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_or_postgres_going_away_keeps_sessions_and_refuses_new_ones_retryably() {
    let mut redis = Redis::start().await;
    let mut pg = Postgres::start().await;
    let db = pg.create_db("rv_outage").await;
    let server = Instance::start(&env(&redis, &db, &[])).await;
    let mut live = open(&server.ws_url("iv-live", &query("u1", "iv-live", None))).await;
    session_id(&mut live).await;
    skip_greeting(&mut live).await;
    text_turn(&mut live, "before any outage").await;

    // Redis goes away: the session goes on; a new connection is told to retry (1013).
    redis.kill();
    text_turn(&mut live, "while redis is away").await;
    let mut refused = open(&server.ws_url("iv-new", &query("u1", "iv-new", None))).await;
    let reason = closed_with(&mut refused, 1013).await;
    assert!(reason.contains("try again later"), "{reason}");
    let ready = common::get(server.addr, "/ready", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["coordination"], false);
    redis.restart().await;
    let mut back = admitted(&server.ws_url("iv-new", &query("u1", "iv-new", None))).await;
    drop(back.close(None).await);
    text_turn(&mut live, "after redis came back").await;

    // Postgres goes away: the session goes on; new connections and reads are refused retryably.
    pg.stop();
    text_turn(&mut live, "while postgres is away").await;
    let mut refused = open(&server.ws_url("iv-new-2", &query("u1", "iv-new-2", None))).await;
    closed_with(&mut refused, 1013).await;
    let tok = token("u1", "iv-live");
    let r = common::get(server.addr, "/api/v1/interviews/iv-live", Some(&tok)).await;
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        common::get(server.addr, "/ready", None).await.json()["database"],
        false
    );
    pg.restart().await;
    admitted(&server.ws_url("iv-new-2", &query("u1", "iv-new-2", None))).await;

    // Nothing committed before the outage is lost, nor what the live session said during it.
    let r = common::get(server.addr, "/api/v1/interviews/iv-live", Some(&tok)).await;
    assert_eq!(r.status, 200);
    let texts: Vec<String> = r.json()["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .filter_map(|t| t["text"].as_str().map(str::to_string))
        .collect();
    // Turns of the session that went on through the outage were held and stored since.
    for said in [
        "before any outage",
        "while redis is away",
        "after redis came back",
        "while postgres is away",
    ] {
        assert!(texts.iter().any(|t| t == said), "{said}: {texts:?}");
    }
    let stored = pg
        .query_texts(
            "rv_outage",
            "SELECT COUNT(*) FROM interviews WHERE realtime_cost_usd IS NULL",
        )
        .await;
    assert_eq!(stored, vec!["0".to_string()]);
    assert_eq!(common::get(server.addr, "/ready", None).await.status, 200);
}

/// The simulated OpenAI upstream's key in the relay scenario.
const KEY: &str = "sk-test-multi-0123456789";

/// What the simulated upstream's sessions received, once `cond` holds (within `WAIT`).
async fn upstream_sessions_when(
    up: std::net::SocketAddr,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = common::get(up, "/dev/upstream/sessions", None)
            .await
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default();
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "upstream sessions: {s:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reconnect_landing_on_another_instance_replays_there_and_stops_the_old_upstream() {
    use realtime_voice_server::config::{ApiKey, UpstreamKind};
    use realtime_voice_server::store::Target;
    let redis = Redis::start().await;
    let pg = Postgres::start().await;
    let db = pg.create_db("rv_relay").await;
    let mut up = common::dev();
    up.relay.simulated_openai_key = Some(ApiKey::new(KEY));
    let up = common::start(up).await;
    let relay = || {
        let mut c = common::dev();
        c.relay.upstream = UpstreamKind::OpenAi;
        c.relay.api_key = Some(ApiKey::new(KEY));
        c.relay.url = format!("ws://{}/v1/realtime", up.addr);
        c.relay.grace_ms = 30_000;
        c.redis_url = Some(redis.url());
        c.redis_lock_lease_ms = LEASE.as_millis() as u64;
        c.database = Target::Postgres(db.clone());
        c
    };
    let a = common::start(relay()).await;
    let b = common::start(relay()).await;
    // Some history, written through A.
    let tok = token("u1", "iv-relay");
    let r = common::post_json(
        a.addr,
        "/api/v1/interviews/iv-relay/messages",
        Some(&tok),
        &json!({"text": "my first answer"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut ws = open(&multi::ws_url(
        a.addr,
        "iv-relay",
        &query("u1", "iv-relay", None),
    ))
    .await;
    let id = session_id(&mut ws).await;
    until(&mut ws, "response.output_audio.delta").await;
    // The browser drops; A keeps its upstream session for the grace period. The reconnect lands
    // on B (no sticky session): B cannot re-attach to A's upstream, so it replays the interview
    // into a new one and A's relay is told to stop.
    drop(ws);
    let url = multi::ws_url(b.addr, "iv-relay", &query("u1", "iv-relay", Some(&id)));
    let mut ws = open(&url).await;
    session_id(&mut ws).await;
    let status = common::next_event(&mut ws).await;
    assert_eq!(
        (&status["type"], &status["status"], &status["reason"]),
        (
            &json!("relay.status"),
            &json!("upstream_renewed"),
            &json!("browser_away")
        )
    );
    // The replay reaches B's upstream session some time after the session itself: waited for
    // (the history in it), not read at the first sight of two sessions.
    let replayed = |v: &Value| {
        serde_json::from_value::<Vec<(String, String)>>(v["items"].clone())
            .is_ok_and(|i| i.contains(&("user".to_string(), "my first answer".to_string())))
    };
    let s = upstream_sessions_when(up.addr, |s| {
        s.len() == 2 && s[0]["ended"] == true && replayed(&s[1])
    })
    .await;
    assert_eq!(s[1]["ended"], false);
}

/// Resident memory of a process, KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The 200-session load run split over two instances behind the round-robin proxy, with Redis
/// and Postgres: a report, not part of `make test` (`make server-load-two`). Runs the `load`
/// example next to this test binary (build it first: `cargo build --release --example load`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 30 s load report; run by make server-load-two"]
async fn load_200_sessions_over_two_instances() {
    let sessions = std::env::var("LOAD_SESSIONS").unwrap_or_else(|_| "200".into());
    let seconds = std::env::var("LOAD_SECONDS").unwrap_or_else(|_| "30".into());
    let exe = std::env::current_exe().expect("test exe");
    let load = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples").join("load"))
        .expect("examples dir");
    assert!(load.exists(), "build the load example first: {load:?}");
    let redis = Redis::start().await;
    let pg = Postgres::start().await;
    let db = pg.create_db("rv_load").await;
    // Production-like: no recording of received audio (that is --dev's), a real secret.
    const SECRET: &str = "load-report-secret-0123456789abcdef";
    let e = env(&redis, &db, &[("JWT_SECRET", SECRET)]);
    let a = Instance::start_with(&[], &e).await;
    let b = Instance::start_with(&[], &e).await;
    let proxy = RoundRobin::start(vec![a.addr, b.addr]).await;
    let rss_before = (rss_kib(a.pid()), rss_kib(b.pid()));
    let mut cmd = std::process::Command::new(&load);
    cmd.args(["--sessions", &sessions, "--seconds", &seconds])
        .args(["--url", &format!("ws://{}", proxy.addr)])
        .env("JWT_SECRET", SECRET);
    // The proxy runs on this runtime: wait for the load process off it.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("load task")
        .expect("load example");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    println!(
        "instance RSS KiB before/after: A {} → {}, B {} → {}",
        rss_before.0,
        rss_kib(a.pid()),
        rss_before.1,
        rss_kib(b.pid())
    );
    for (name, i) in [("A", &a), ("B", &b)] {
        let accepted = i.log_text().matches("\"connection accepted\"").count();
        println!("instance {name}: {accepted} connections accepted");
    }
    let turns = pg
        .query_texts("rv_load", "SELECT COUNT(*) FROM turns")
        .await;
    let interviews = pg
        .query_texts("rv_load", "SELECT COUNT(*) FROM interviews")
        .await;
    println!("postgres: {interviews:?} interviews, {turns:?} turns");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
