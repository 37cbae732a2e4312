//! Connection lifecycle: dead peers are noticed and their interview freed (ping, idle timeout,
//! write deadlines), and a reconnect of the same client takes its interview back (4410 to the
//! old socket) while anyone else still gets 4409. Short intervals keep each case to seconds.

mod common;

use std::time::{Duration, Instant};

use common::*;
use realtime_voice_server::Config;

/// Pings every 200 ms, a peer silent for 1 s is dead, writes give up after 1 s.
fn fast() -> Config {
    let mut c = dev();
    c.limits.ws_ping_interval_ms = 200;
    c.limits.ws_idle_timeout_ms = 1000;
    c.limits.ws_send_timeout_ms = 1000;
    c
}

/// Connects until admitted (first event `session.created`) or the deadline passes; returns the
/// socket and the close codes seen before.
async fn connect_until_admitted(
    s: &Server,
    user: &str,
    interview: &str,
    query: &str,
    within: Duration,
) -> (Ws, Vec<u16>) {
    let deadline = Instant::now() + within;
    let mut refusals = Vec::new();
    loop {
        let mut ws = connect(s, user, interview, query).await;
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "session.created" => return (ws, refusals),
            Frame::Close(Some((code, _))) => refusals.push(code),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "not admitted within {within:?}; refusals {refusals:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why: a client whose path went silent (no FIN, no RST) kept its interview until SESSION_MAX_S;
/// every new connection of the same user got 4409. A client that stops reading (and so never
/// answers a ping) is such a peer; here it also leaves the server's audio unread.
#[tokio::test]
async fn a_silent_peer_is_dropped_and_the_same_user_gets_back_in() {
    let s = start(fast()).await;
    let mut dead = connect(&s, "u", "iv-dead", "").await;
    assert_eq!(next_event(&mut dead).await["type"], "session.created");
    // From now on `dead` is never read: no pong, no close answer, its receive buffer fills.
    let t0 = Instant::now();
    let (mut ws, refusals) =
        connect_until_admitted(&s, "u", "iv-dead", "", Duration::from_secs(10)).await;
    assert!(refusals.iter().all(|c| *c == 4409), "{refusals:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    until(&mut ws, "response.output_audio.delta").await;
    drop(dead);
}

/// Why, through the network fault lab: a path that goes silent both ways (no FIN, no RST) kept
/// the interview; the same user was refused 4409 for as long as we watched. Now, with the
/// default intervals (ping 10 s, idle 20 s), the same user is back in ≤ 30 s.
#[tokio::test]
async fn through_a_blackholing_proxy_the_same_user_is_back_within_30_s() {
    let s = start(dev()).await;
    let proxy = fault_proxy::FaultProxy::start(s.addr).await.expect("proxy");
    let via = format!(
        "ws://{}/api/v1/interviews/iv-hole/realtime/connect?token={}",
        proxy.local_addr(),
        token("u", "iv-hole")
    );
    let mut dead = connect_url(&via).await;
    let sess = next_event(&mut dead).await["session"]["id"].clone();
    assert!(sess.is_string());
    proxy.blackhole_existing();
    let t0 = Instant::now();
    // New connections through the same proxy pass; the old one is silent both ways.
    let deadline = t0 + Duration::from_secs(30);
    let mut refusals = 0;
    let mut ws = loop {
        let mut ws = connect_url(&via).await;
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "session.created" => break ws,
            Frame::Close(Some((4409, _))) => refusals += 1,
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "still held after 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = t0.elapsed();
    assert!(took <= Duration::from_secs(30), "{took:?}");
    assert!(refusals > 0, "the interview was held for a while first");
    until(&mut ws, "response.output_audio.delta").await;
    drop(dead);
}

/// Why: the interview's slot was freed only after a transcript read at the end of the session;
/// it must be free as soon as the session ends.
#[tokio::test]
async fn the_slot_is_free_as_soon_as_the_client_closes() {
    let s = start(dev()).await;
    let mut a = connect(&s, "u", "iv-free", "").await;
    next_event(&mut a).await;
    a.close(None).await.expect("close");
    while !matches!(
        next_frame(&mut a).await,
        Frame::Close(_) | Frame::Dropped(_)
    ) {}
    let (_b, refusals) =
        connect_until_admitted(&s, "u", "iv-free", "", Duration::from_secs(2)).await;
    assert!(refusals.len() <= 2, "{refusals:?}");
}

/// Why (take-back): the same client reconnecting while its old socket still looks alive was
/// refused 4409 until the old one died. With `resume=<previous session id>` it takes over; the
/// old socket is closed 4410 "taken over"; the interview continues.
#[tokio::test]
async fn the_same_client_takes_its_interview_back_with_its_session_id() {
    let s = start(dev()).await;
    let mut old = connect(&s, "u", "iv-back", "").await;
    let created = next_event(&mut old).await;
    let sess = created["session"]["id"].as_str().unwrap().to_string();
    assert!(sess.starts_with("sess_") && sess.len() == 37, "{sess}");
    until(&mut old, "response.done").await;
    // No proof, a wrong proof, or another user with the right proof: 4409.
    for (user, query) in [
        ("u", String::new()),
        (
            "u",
            "&resume=sess_00000000000000000000000000000000".to_string(),
        ),
        ("mallory", format!("&resume={sess}")),
    ] {
        let mut ws = connect(&s, user, "iv-back", &query).await;
        let (code, _) = expect_close(&mut ws).await;
        // mallory's token is valid but the interview is u's: 1008 comes first.
        assert!(
            code == 4409 || (user == "mallory" && code == 1008),
            "{user}: {code}"
        );
    }
    let mut new = connect(&s, "u", "iv-back", &format!("&resume={sess}")).await;
    assert_eq!(expect_close(&mut old).await, (4410, "taken over".into()));
    let created = next_event(&mut new).await;
    assert_eq!(created["type"], "session.created");
    let new_sess = created["session"]["id"].as_str().unwrap().to_string();
    assert_ne!(new_sess, sess);
    // The interview went on: the next line is question 2 after "Welcome back.".
    let done = until(&mut new, "response.output_audio_transcript.done").await;
    let said = done.last().unwrap()["transcript"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(said.starts_with("Welcome back."), "{said}");
    // The old id is spent; the new one works, also through the subprotocol auth.
    let mut ws = connect(&s, "u", "iv-back", &format!("&resume={sess}")).await;
    assert_eq!(expect_close(&mut ws).await.0, 4409);
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = s
        .ws_url("iv-back", &format!("?resume={new_sess}"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("realtime, bearer.{}", token("u", "iv-back"))
            .parse()
            .unwrap(),
    );
    let (mut third, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(expect_close(&mut new).await, (4410, "taken over".into()));
    assert_eq!(next_event(&mut third).await["type"], "session.created");
}

/// Take-back is atomic: of many simultaneous take-backs with the same proof exactly one wins;
/// the interview is never held by two sockets nor left free.
#[tokio::test]
async fn concurrent_take_backs_admit_exactly_one() {
    let s = start(dev()).await;
    let mut old = connect(&s, "u", "iv-race", "").await;
    let sess = next_event(&mut old).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = s.ws_url(
            "iv-race",
            &format!("?token={}&resume={sess}", token("u", "iv-race")),
        );
        tasks.push(tokio::spawn(async move {
            let mut ws = connect_url(&url).await;
            match next_frame(&mut ws).await {
                Frame::Event(e) if e["type"] == "session.created" => (true, ws),
                Frame::Close(Some((4409, _))) => (false, ws),
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut winners = 0;
    let mut keep = Vec::new();
    for t in tasks {
        let (won, ws) = t.await.unwrap();
        winners += usize::from(won);
        keep.push(ws);
    }
    assert_eq!(winners, 1);
    assert_eq!(expect_close(&mut old).await.0, 4410);
}
