//! Helpers shared by the browser tests: the reference server's address and a timeout around
//! every await, so that a hung promise fails one test with a message instead of the whole run.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Base URL of the reference server the Makefile started (e.g. `http://127.0.0.1:18080`).
pub fn server() -> &'static str {
    option_env!("RV_TEST_SERVER").unwrap_or("http://127.0.0.1:18080")
}

/// Awaits `promise`, failing with `what` if it neither resolves nor rejects within `ms`.
pub async fn within(ms: i32, what: &str, promise: Promise) -> Result<JsValue, String> {
    let timer = Promise::new(&mut |resolve, _reject| {
        let window = web_sys::window().expect("browser tests run in a window");
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_1(
            &resolve,
            ms,
            &JsValue::from_str("__timeout__"),
        );
    });
    let raced = Promise::race(&js_sys::Array::of2(&promise, &timer));
    match JsFuture::from(raced).await {
        Ok(v) if v.as_string().as_deref() == Some("__timeout__") => {
            Err(format!("timed out after {ms} ms: {what}"))
        }
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{what} failed: {e:?}")),
    }
}

/// POSTs `body` as JSON to `path` on the reference server and returns the parsed reply.
pub async fn post_json(path: &str, body: &str) -> Result<JsValue, String> {
    fetch_json("POST", path, Some(body)).await
}

/// GETs `path` on the reference server and returns the parsed reply.
pub async fn get_json(path: &str) -> Result<JsValue, String> {
    fetch_json("GET", path, None).await
}

async fn fetch_json(method: &str, path: &str, body: Option<&str>) -> Result<JsValue, String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        let headers = web_sys::Headers::new().map_err(|e| format!("{e:?}"))?;
        headers
            .set("Content-Type", "application/json")
            .map_err(|e| format!("{e:?}"))?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(body));
    }
    let url = format!("{}{}", server(), path);
    let response: web_sys::Response =
        within(10_000, &url, window.fetch_with_str_and_init(&url, &init))
            .await?
            .unchecked_into();
    if !response.ok() {
        return Err(format!("{method} {path}: HTTP {}", response.status()));
    }
    within(
        10_000,
        "response body",
        response.json().map_err(|e| format!("{e:?}"))?,
    )
    .await
}

/// A new interview and a dev token for it: `(token, interview_id)`.
pub async fn dev_token() -> (String, String) {
    dev_token_for("dev-user").await
}

/// A new interview of `user` and a dev token for it. The test server runs with
/// `REALTIME_ROLLOUT_PERCENT=50` (scripts/with-server.sh): `dev-user` (md5 bucket 34) has realtime,
/// `rollout-out` (bucket 64) does not.
pub async fn dev_token_for(user: &str) -> (String, String) {
    let v = post_json("/dev/token", &format!(r#"{{"user_id":"{user}"}}"#))
        .await
        .expect("POST /dev/token");
    (
        prop(&v, "token").as_string().expect("token"),
        prop(&v, "interview_id").as_string().expect("interview_id"),
    )
}

/// `obj[key]`, or undefined.
pub fn prop(obj: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `obj[key]` as a number, or NaN.
pub fn num(obj: &JsValue, key: &str) -> f64 {
    prop(obj, key).as_f64().unwrap_or(f64::NAN)
}

/// When the page handed each `input_audio_buffer.append` to a WebSocket whose URL contains
/// `key`, on the page's clock (`performance.now()`, the clock the shell gives the session): the
/// client's own send decisions, free of the arrival jitter a loaded machine adds on the way to
/// the server. Installed by wrapping `WebSocket.prototype.send`; a later call replaces the log.
pub struct AppendSends(js_sys::Array);

impl AppendSends {
    /// Starts recording for sockets whose URL contains `key` (an interview id).
    pub fn record(key: &str) -> AppendSends {
        let install = js_sys::Function::new_with_args(
            "key",
            r#"const p = WebSocket.prototype;
            if (!p.__rvSend) p.__rvSend = p.send;
            const log = [];
            p.send = function (data) {
              if (typeof data === "string" && this.url.includes(key)
                  && data.startsWith('{"type":"input_audio_buffer.append"')) {
                log.push(performance.now());
              }
              return p.__rvSend.call(this, data);
            };
            return log;"#,
        );
        let log = install
            .call1(&JsValue::NULL, &JsValue::from_str(key))
            .ok()
            .and_then(|v| v.dyn_into::<js_sys::Array>().ok())
            .expect("WebSocket.prototype.send wrapped");
        AppendSends(log)
    }

    /// The window the pace is judged in: a second, less 50 ms for what can pass between the
    /// session's decision (on the clock it read when its input came) and the socket's `send`,
    /// which a loaded WebKitGTK stretched past 10 ms. A client pacing 11 a second still shows
    /// 11 in it (they span 909 ms), and a burst of 11 shows at once.
    const PACE_WINDOW_MS: f64 = 950.0;

    /// The most appends sent within any [`Self::PACE_WINDOW_MS`] so far: the pace as sent.
    pub fn most_in_a_second(&self) -> usize {
        let window_ms = Self::PACE_WINDOW_MS;
        let times: Vec<f64> = self.0.iter().filter_map(|v| v.as_f64()).collect();
        let mut most = 0;
        let mut first = 0;
        for (last, t) in times.iter().enumerate() {
            while t - times[first] >= window_ms {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// How many appends were sent so far.
    pub fn count(&self) -> u32 {
        self.0.length()
    }
}
