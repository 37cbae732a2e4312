//! The WebSocket, mirrored faithfully: it opens what the core asks, forwards open / message /
//! close / error to the shell's callbacks, and reports `bufferedAmount` for backpressure.

use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

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

/// One live WebSocket and the closures that keep its handlers alive.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl Socket {
    /// Opens `url` with `protocols`; every event goes to `sink`, tagged with this socket's `id` so
    /// that events of a socket the core has already left are told apart and ignored.
    pub fn open(
        url: &str,
        protocols: &[String],
        id: u32,
        sink: impl Fn(u32, SocketEvent) + Clone + 'static,
    ) -> Result<Socket, JsValue> {
        let ws = if protocols.is_empty() {
            WebSocket::new(url)?
        } else {
            let list = js_sys::Array::new();
            for p in protocols {
                list.push(&JsValue::from_str(p));
            }
            WebSocket::new_with_str_sequence(url, &list)?
        };
        ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
        let opened = std::rc::Rc::new(std::cell::Cell::new(false));

        let s = sink.clone();
        let o = opened.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| {
            o.set(true);
            s(id, SocketEvent::Opened)
        });
        let s = sink.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            match data.as_string() {
                Some(text) => s(id, SocketEvent::Message(text)),
                None => {
                    let len = data
                        .dyn_ref::<js_sys::ArrayBuffer>()
                        .map(|b| b.byte_length() as usize)
                        .unwrap_or(0);
                    s(id, SocketEvent::Binary(len))
                }
            }
        });
        let s = sink.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            s(
                id,
                SocketEvent::Closed {
                    code: e.code(),
                    reason: e.reason(),
                    was_open: opened.get(),
                },
            )
        });
        let s = sink;
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_| s(id, SocketEvent::Error));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        })
    }

    /// Sends a text frame. Fails only when the socket is not open (the core then learns of the
    /// close through the close event).
    pub fn send(&self, frame: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(frame)
    }

    /// Bytes queued by `send` but not yet handed to the network.
    pub fn buffered_amount(&self) -> u32 {
        self.ws.buffered_amount()
    }

    /// Closes with `code` (1000 or 3000–4999, as browsers allow) and `reason`.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Detach the handlers first, so no event reaches a freed closure.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(1000);
        }
    }
}
