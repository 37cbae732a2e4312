//! Browser tests (wasm-bindgen-test), run by `make test-browser` in Chromium, Firefox and WebKit
//! against the real reference server, which the Makefile starts on `RV_TEST_SERVER`.
#![cfg(target_arch = "wasm32")]

mod support;

mod capture;
mod client;
mod devices;
mod echo_canceller;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
