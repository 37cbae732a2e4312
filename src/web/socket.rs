//! The WebSocket, mirrored faithfully: it opens what the core asks, forwards open / message /
//! close / error to the shell's callbacks, and reports `bufferedAmount` for backpressure. The
//! browser calls are in `glue.js` (`socketOpen`, `socketSend`, `socketClose`).

use js_sys::Array;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = socketOpen)]
    fn socket_open(url: &str, protocols: &Array, on: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = socketSend)]
    fn socket_send(ws: &JsValue, frame: &str) -> f64;
    #[wasm_bindgen(js_name = socketBuffered)]
    fn socket_buffered(ws: &JsValue) -> u32;
    #[wasm_bindgen(js_name = socketClose)]
    fn socket_close(ws: &JsValue, code: u16, reason: &str, detach: bool);
}

/// What the socket reports back; the shell turns each into a core input.
#[derive(Debug)]
pub enum SocketEvent {
    /// The handshake completed.
    Opened,
    /// A text frame arrived (binary frames are reported as an error frame; the protocol is JSON).
    Message(String),
    /// A binary frame arrived: the relay should never send one.
    Binary(usize),
    /// The socket closed: the browser's code and reason, and whether it had opened.
    Closed {
        code: u16,
        reason: String,
        was_open: bool,
    },
    /// The browser's `error` event (always followed by `close`).
    Error,
}

/// The events' callback, called by `glue.js` as `on(kind, text, n, wasOpen)`.
type OnEvent = Closure<dyn FnMut(u32, Option<String>, f64, bool)>;

/// One live WebSocket and the closure that keeps its handlers alive.
pub struct Socket {
    ws: JsValue,
    _on: OnEvent,
}

impl Socket {
    /// Opens `url` with `protocols`; every event goes to `sink`, tagged with this socket's `id` so
    /// that events of a socket the core has already left are told apart and ignored.
    pub fn open(
        url: &str,
        protocols: &[String],
        id: u32,
        sink: impl Fn(u32, SocketEvent) + 'static,
    ) -> Result<Socket, JsValue> {
        let on = OnEvent::new(move |kind, text: Option<String>, n, was_open| {
            sink(
                id,
                match kind {
                    0 => SocketEvent::Opened,
                    1 => SocketEvent::Message(text.unwrap_or_default()),
                    2 => SocketEvent::Binary(n as usize),
                    3 => SocketEvent::Error,
                    _ => SocketEvent::Closed {
                        code: n as u16,
                        reason: text.unwrap_or_default(),
                        was_open,
                    },
                },
            )
        });
        let list: Array = protocols.iter().map(|p| JsValue::from_str(p)).collect();
        let ws = socket_open(url, &list, on.as_ref())?;
        Ok(Socket { ws, _on: on })
    }

    /// Sends a text frame: the bytes queued since, or `None` when the socket is not open (the
    /// core then learns of the close through the close event).
    pub fn send(&self, frame: &str) -> Option<u32> {
        let queued = socket_send(&self.ws, frame);
        (queued >= 0.0).then_some(queued as u32)
    }

    /// Bytes queued by `send` but not yet handed to the network.
    pub fn buffered_amount(&self) -> u32 {
        socket_buffered(&self.ws)
    }

    /// Closes with `code` (1000 or 3000–4999, as browsers allow) and `reason`.
    pub fn close(&self, code: u16, reason: &str) {
        socket_close(&self.ws, code, reason, false);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Detach the handlers first, so no event reaches a freed closure.
        socket_close(&self.ws, 0, "", true);
    }
}
