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
