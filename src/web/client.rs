//! The `VoiceClient` JavaScript class: the drain loop between the core [`Session`] and the
//! browser. Every input goes to the session with `performance.now()`; after it, the outputs are
//! drained and performed in order and one timer is armed for `poll_timeout()`. Outputs are drained
//! with the session borrowed and performed with the borrow released, so app listeners may call
//! back into the client.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;

use super::audio::{self, get, AudioEvent, AudioGraph, AudioOptions};
use super::socket::{Socket, SocketEvent};
use super::then;
use crate::session::{
    AppEvent, AudioFailure, AudioState, EchoCanceller, HttpFailure, MicLoss, Output, Session,
    SessionConfig, State, TokenFailure, TokenSource,
};
use crate::text::{concat, Message, Part::*};

#[wasm_bindgen(typescript_custom_section)]
const TS_API: &str = include_str!("api.d.ts");

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = captureWorkletUrl)]
    fn capture_worklet_url() -> String;
    #[wasm_bindgen(js_name = playbackWorkletUrl)]
    fn playback_worklet_url() -> String;
    #[wasm_bindgen(js_name = echoCancellerUrl)]
    fn echo_canceller_url() -> String;
    #[wasm_bindgen(js_name = requestLock)]
    fn request_lock(name: &str, on_result: &Function);
    #[wasm_bindgen(js_name = listenWindow)]
    fn listen_window_js(on: &JsValue) -> Function;
    #[wasm_bindgen(js_name = onGesture)]
    fn on_gesture(f: &JsValue) -> Function;
    #[wasm_bindgen(js_name = postJson)]
    fn post_json(url: &str, token: &str, body: &str) -> Promise;
    #[wasm_bindgen(catch, js_name = client)]
    fn client_js() -> Result<JsValue, JsValue>;
    fn forget(js: &JsValue);
    fn listen(js: &JsValue, name: &str, f: &Function);
    fn unlisten(js: &JsValue, name: &str, f: &Function) -> bool;
    #[wasm_bindgen(js_name = emit)]
    fn emit_js(js: &JsValue, name: &str, json: &str);
    #[wasm_bindgen(catch)]
    fn pending(js: &JsValue) -> Result<js_sys::Array, JsValue>;
    fn later(f: &JsValue, ms: f64) -> f64;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: f64);
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The events an app may listen to (`on(name, …)` refuses any other name).
pub const EVENTS: [&str; 9] = [
    "status",
    "mode",
    "transcript",
    "speech",
    "level",
    "metrics",
    "error",
    "event",
    "audio",
];

/// A realtime voice conversation with an AI through a backend relay. See the README and
/// `docs/API.md`.
#[wasm_bindgen]
pub struct VoiceClient {
    shell: Rc<Shell>,
}

struct Shell {
    me: Weak<Shell>,
    core: RefCell<Session>,
    token_provider: Option<Function>,
    single_tab_lock: Option<String>,
    /// The capture and playback worklets' URLs and the opt-in echo canceller's.
    worklets: (String, String, String),
    /// The app's `micConstraints` (an empty object when not given).
    app_constraints: JsValue,
    /// `setInputDevice` / `setOutputDevice` promises, settled by the open or `setSinkId` the
    /// session asks for (or at once when it asks for none).
    device_waiters: RefCell<Vec<(Function, Function)>>,
    sink_waiters: RefCell<Vec<(Function, Function)>>,
    /// The latest `Output::OpenMic`: a microphone opened for an older one is not used.
    mic_seq: Cell<u64>,
    /// The client's JS side (glue.js `client()`): the app's listeners and what the glue needs to
    /// stop this client and tell the app when the wasm can no longer run.
    js: JsValue,
    /// Registered tools: name, definition (JSON text), handler.
    tools: RefCell<Vec<(String, String, Function)>>,
    waiters: RefCell<Vec<(Function, Function)>>,
    socket: RefCell<Option<Socket>>,
    socket_id: Cell<u32>,
    graph: Rc<RefCell<Option<AudioGraph>>>,
    /// The audio graph object `connect()` created inside the user gesture, not started yet.
    prepared: RefCell<Option<JsValue>>,
    audio_epoch: Cell<u32>,
    mic_buf: RefCell<Vec<f32>>,
    /// The raw capture's samples of a pair block (reused).
    mic_raw: RefCell<Vec<f32>>,
    ctx_rate: Cell<u32>,
    /// The microphone blocks' channels and whether they come as a pair (0: none yet).
    mic_format: Cell<(u32, bool)>,
    lock: RefCell<LockState>,
    lock_released: RefCell<Option<Promise>>,
    timer: RefCell<Option<(f64, u64)>>,
    timer_cb: RefCell<Option<Closure<dyn FnMut()>>>,
    /// The window listeners' closure and the function that removes them.
    window_listeners: Listening<dyn FnMut(u32, bool)>,
    /// The next-gesture listener and the function that removes it.
    gesture_listener: Listening<dyn FnMut()>,
}

/// Browser listeners: the closure they call, kept alive, and the function that removes them.
type Listening<F> = RefCell<Option<(Closure<F>, Function)>>;

enum LockState {
    None,
    Pending,
    Held(Function),
}

fn now_ms() -> u64 {
    performance_now() as u64
}

fn js_error(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

#[wasm_bindgen]
impl VoiceClient {
    /// Creates a client from the options object (see `VoiceClientOptions`). Throws an Error
    /// naming the offending option when one is invalid.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "VoiceClientOptions")] options: &JsValue,
    ) -> Result<VoiceClient, JsValue> {
        if !options.is_object() {
            return Err(js_error("VoiceClient options must be an object"));
        }
        // The core validates everything but the parts that cannot be JSON: the token provider
        // function travels as `tokenProvider: true`, `singleTab` is the shell's own.
        let copy = Object::assign(&Object::new(), options.unchecked_ref());
        let provider = get(&copy, "tokenProvider");
        let token_provider = if provider.is_undefined() || provider.is_null() {
            None
        } else if let Some(f) = provider.dyn_ref::<Function>() {
            Reflect::set(&copy, &"tokenProvider".into(), &JsValue::TRUE)?;
            Some(f.clone())
        } else {
            return Err(js_error(
                "tokenProvider must be a function returning a token or a Promise of one",
            ));
        };
        let single_tab = match get(&copy, "singleTab") {
            v if v.is_undefined() => true,
            v => v
                .as_bool()
                .ok_or_else(|| js_error("singleTab must be true or false"))?,
        };
        Reflect::delete_property(&copy, &"singleTab".into())?;
        let json: String = JSON::stringify(&copy)?.into();
        let config = SessionConfig::from_json(&json).map_err(|e| js_error(&e.message()))?;
        if token_provider.is_none() && matches!(config.token, TokenSource::Provider) {
            return Err(js_error(
                "tokenProvider must be a function returning a token or a Promise of one",
            ));
        }

        let app_constraints = match &config.mic_constraints_json {
            Some(j) => JSON::parse(j)?,
            None => Object::new().into(),
        };
        let worklets = (
            config
                .capture_worklet_url
                .clone()
                .unwrap_or_else(capture_worklet_url),
            config
                .playback_worklet_url
                .clone()
                .unwrap_or_else(playback_worklet_url),
            config
                .echo_canceller_url
                .clone()
                .unwrap_or_else(echo_canceller_url),
        );
        let lock_name =
            single_tab.then(|| concat(&[S("realtime-voice:"), S(&config.interview_id)]));
        let js = client_js()?;
        let seed = (js_sys::Math::random() * 9.007_199_254_740_991e15) as u64 ^ now_ms();
        let shell = Rc::new_cyclic(|me| Shell {
            me: me.clone(),
            core: RefCell::new({
                let mut core = Session::new(config, seed);
                // Raw server events are copied only once the app listens to them.
                core.set_raw_events_wanted(false);
                core
            }),
            token_provider,
            single_tab_lock: lock_name,
            worklets,
            app_constraints,
            device_waiters: RefCell::new(Vec::new()),
            sink_waiters: RefCell::new(Vec::new()),
            mic_seq: Cell::new(0),
            js,
            tools: RefCell::new(Vec::new()),
            waiters: RefCell::new(Vec::new()),
            socket: RefCell::new(None),
            socket_id: Cell::new(0),
            graph: Rc::new(RefCell::new(None)),
            prepared: RefCell::new(None),
            audio_epoch: Cell::new(0),
            mic_buf: RefCell::new(Vec::new()),
            mic_raw: RefCell::new(Vec::new()),
            ctx_rate: Cell::new(0),
            mic_format: Cell::new((0, false)),
            lock: RefCell::new(LockState::None),
            lock_released: RefCell::new(None),
            timer: RefCell::new(None),
            timer_cb: RefCell::new(None),
            window_listeners: RefCell::new(None),
            gesture_listener: RefCell::new(None),
        });
        shell.listen_window();
        Ok(VoiceClient { shell })
    }

    /// Connects (call it from a user gesture: audio can only start there in some browsers). In
    /// voice mode it also starts the microphone and playback. Resolves with the status once
    /// connected (or in text mode); rejects with an Error when the session fails or closes first.
    #[wasm_bindgen(unchecked_return_type = "Promise<StatusEvent>")]
    pub fn connect(&self) -> Promise {
        let shell = self.shell.clone();
        // Already up: the session ignores a second connect, so answer from the current status.
        let current = shell.core.borrow().status().clone();
        if matches!(current.state, State::Connected | State::Text) {
            let value = JSON::parse(&AppEvent::Status(current).to_json()).unwrap_or(JsValue::NULL);
            return Promise::resolve(&value);
        }
        let promise = shell.promise(&shell.waiters);
        // Audio may only start inside the gesture: prepare the context now, before any await.
        if shell.core.borrow().mode() == crate::session::Mode::Voice
            && shell.graph.borrow().is_none()
            && shell.prepared.borrow().is_none()
        {
            match audio::unlock() {
                Ok(g) => *shell.prepared.borrow_mut() = Some(g),
                Err(_) => { /* reported when the session asks for audio */ }
            }
        }
        let lock_state = match *shell.lock.borrow() {
            LockState::None => 0,
            LockState::Pending => 1,
            LockState::Held(_) => 2,
        };
        match (&shell.single_tab_lock, lock_state) {
            // Waiting for the lock already: this call just waits too.
            (Some(_), 1) => {}
            (Some(name), 0) => {
                *shell.lock.borrow_mut() = LockState::Pending;
                let me = shell.me.clone();
                let cb = Closure::once_into_js(move |held: JsValue, release: JsValue| {
                    let release = release.dyn_into::<Function>().ok();
                    let shell = me.upgrade();
                    // Freed, or disconnected while waiting: let the lock go at once.
                    let wanted = shell
                        .as_ref()
                        .is_some_and(|s| matches!(*s.lock.borrow(), LockState::Pending));
                    let Some(shell) = shell.filter(|_| wanted) else {
                        if let Some(f) = release {
                            let _ = f.call0(&JsValue::NULL);
                        }
                        return;
                    };
                    match (held.as_bool(), release) {
                        (Some(false), _) => {
                            *shell.lock.borrow_mut() = LockState::None;
                            shell.input(|s, now| s.handle_busy_elsewhere(now));
                        }
                        (_, release) => {
                            *shell.lock.borrow_mut() = match release {
                                Some(f) => LockState::Held(f),
                                None => LockState::None, // no Web Locks here: nothing enforced
                            };
                            shell.input(|s, now| s.connect(now));
                        }
                    }
                });
                request_lock(name, cb.unchecked_ref());
            }
            _ => shell.input(|s, now| s.connect(now)),
        }
        promise
    }

    /// Ends the session: closes the socket (1000), stops the microphone and playback. The
    /// Promise settles once the interview is free for another tab (the Web Lock is released).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn disconnect(&self) -> Promise {
        self.shell.input(|s, now| s.disconnect(now));
        self.shell.release_lock();
        self.shell
            .reject_waiters("disconnected before the connection was established");
        self.shell.close_prepared();
        self.shell
            .lock_released
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Promise::resolve(&JsValue::UNDEFINED))
    }

    /// Mutes the microphone (nothing is sent or buffered while muted) or unmutes it.
    #[wasm_bindgen(js_name = setMuted)]
    pub fn set_muted(&self, muted: bool) {
        self.shell.input(|s, now| s.set_muted(now, muted));
    }

    /// Interrupts the assistant: fades out playback and truncates its answer where it was heard.
    pub fn interrupt(&self) {
        self.shell.input(|s, now| s.interrupt(now));
    }

    /// Sends a text message (over the socket, or HTTP in text mode when configured). Throws when
    /// there is no way to send it.
    #[wasm_bindgen(js_name = sendText)]
    pub fn send_text(&self, text: &str) -> Result<(), JsValue> {
        let r = self.shell.core.borrow_mut().send_text(now_ms(), text);
        self.shell.pump();
        r.map_err(|e| js_error(&e.message()))
    }

    /// Sends a `session.update` with the given session object (beta or GA shape per `protocol`).
    #[wasm_bindgen(js_name = updateSession)]
    pub fn update_session(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] session: &JsValue,
    ) -> Result<(), JsValue> {
        let json: String = JSON::stringify(session)?.into();
        let r = self.shell.core.borrow_mut().update_session(now_ms(), &json);
        self.shell.pump();
        r.map_err(|e| js_error(&e.message()))
    }

    /// Gives the model a tool that runs in the page: `definition` is `{name, description?,
    /// parameters?}` (a JSON Schema), `handler(args)` returns the result or a Promise of it.
    /// Returns a function that unregisters the tool. Throws on an invalid definition or a name
    /// already registered.
    #[wasm_bindgen(js_name = registerTool, skip_typescript)]
    pub fn register_tool(
        &self,
        definition: &JsValue,
        handler: Function,
    ) -> Result<Function, JsValue> {
        let name = Reflect::get(definition, &"name".into())?
            .as_string()
            .ok_or_else(|| js_error("invalid tool definitions: a tool needs a string name"))?;
        let def = JSON::stringify(definition)?
            .as_string()
            .ok_or_else(|| js_error("invalid tool definitions: not a JSON object"))?;
        let shell = &self.shell;
        if shell.tools.borrow().iter().any(|(n, _, _)| *n == name) {
            return Err(js_error(&concat(&[
                S("a tool named "),
                Quoted(&name),
                S(" is already registered"),
            ])));
        }
        shell
            .tools
            .borrow_mut()
            .push((name.clone(), def, handler.clone()));
        if let Err(e) = shell.set_tools() {
            shell.tools.borrow_mut().pop();
            return Err(e);
        }
        let me = shell.me.clone();
        let off = Closure::once_into_js(move || {
            if let Some(shell) = me.upgrade() {
                shell
                    .tools
                    .borrow_mut()
                    .retain(|(n, _, h)| !(*n == name && *h == handler));
                // The remaining definitions were valid a moment ago.
                let _ = shell.set_tools();
            }
        });
        Ok(off.unchecked_into())
    }

    /// Sends any client event the API does not wrap (`{type, ...}`) on the open connection.
    #[wasm_bindgen(js_name = sendEvent, skip_typescript)]
    pub fn send_event(&self, event: &JsValue) -> Result<(), JsValue> {
        let json = JSON::stringify(event)?
            .as_string()
            .ok_or_else(|| js_error("invalid client event: not a JSON object"))?;
        let r = self.shell.core.borrow_mut().send_event(now_ms(), &json);
        self.shell.pump();
        r.map_err(|e| js_error(&e.message()))
    }

    /// Adds a listener for `event`; returns a function that removes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: Function) -> Result<Function, JsValue> {
        if !EVENTS.contains(&event) {
            let mut msg = concat(&[S("unknown event \""), S(event), S("\"; events are ")]);
            for (i, e) in EVENTS.iter().enumerate() {
                if i > 0 {
                    msg.push_str(", ");
                }
                msg.push_str(e);
            }
            return Err(js_error(&msg));
        }
        listen(&self.shell.js, event, &listener);
        if event == "event" {
            self.shell.core.borrow_mut().set_raw_events_wanted(true);
        }
        let me = self.shell.me.clone();
        let name = event.to_string();
        let off = Closure::once_into_js(move || {
            if let Some(shell) = me.upgrade() {
                shell.remove_listener(&name, &listener);
            }
        });
        Ok(off.unchecked_into())
    }

    /// Removes a listener added with `on`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: &Function) {
        self.shell.remove_listener(event, listener);
    }

    /// The current status (`{state, reason, detail, closeCode, attempt}`).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn status(&self) -> JsValue {
        let json = AppEvent::Status(self.shell.core.borrow().status().clone()).to_json();
        JSON::parse(&json).unwrap_or(JsValue::NULL)
    }

    /// The current mode: `"voice"` or `"text"`.
    #[wasm_bindgen(getter, unchecked_return_type = "\"voice\" | \"text\"")]
    pub fn mode(&self) -> String {
        self.shell.core.borrow().mode().as_str().to_string()
    }

    /// A snapshot of the metrics.
    #[wasm_bindgen(skip_typescript)]
    pub fn metrics(&self) -> JsValue {
        let json = self.shell.core.borrow().metrics().to_json();
        JSON::parse(&json).unwrap_or(JsValue::NULL)
    }

    /// Resumes audio the browser suspended or interrupted. Call it from a user gesture; the
    /// client also does it by itself on the next click or key press.
    pub fn resume(&self) {
        if let Some(g) = self.shell.graph.borrow().as_ref() {
            g.resume();
        }
    }

    /// Lists the microphones (`[{deviceId, label}]`; labels are empty before permission).
    #[wasm_bindgen(js_name = listInputDevices, unchecked_return_type = "Promise<AudioDevice[]>")]
    pub fn list_input_devices(&self) -> Promise {
        audio::list_devices("audioinput")
    }

    /// Lists the output devices (`[{deviceId, label}]`).
    #[wasm_bindgen(js_name = listOutputDevices, unchecked_return_type = "Promise<AudioDevice[]>")]
    pub fn list_output_devices(&self) -> Promise {
        audio::list_devices("audiooutput")
    }

    /// Uses the microphone `device_id` from now on (switches at once when capturing; if it is
    /// unplugged later, the client goes on with the default one and comes back to it when it
    /// returns).
    #[wasm_bindgen(js_name = setInputDevice, unchecked_return_type = "Promise<void>")]
    pub fn set_input_device(&self, device_id: String) -> Promise {
        let shell = &self.shell;
        shell.device_promise(&shell.device_waiters, |s, now| {
            s.set_input_device(now, Some(&device_id))
        })
    }

    /// Plays the AI's voice on the output `device_id` (where the browser has `setSinkId`;
    /// rejects elsewhere). If it disappears later, the default device takes over until it
    /// returns.
    #[wasm_bindgen(js_name = setOutputDevice, unchecked_return_type = "Promise<void>")]
    pub fn set_output_device(&self, device_id: String) -> Promise {
        if !audio::has_set_sink_id() {
            return Promise::reject(&js_error(
                "this browser cannot choose the output device (no setSinkId)",
            ));
        }
        let shell = &self.shell;
        shell.device_promise(&shell.sink_waiters, |s, now| {
            s.set_output_device(now, Some(&device_id))
        })
    }
}

/// Resolves (or rejects with `Err`'s message) every promise in `waiters`.
fn settle_all(waiters: Vec<(Function, Function)>, result: &Result<(), String>) {
    for (resolve, reject) in waiters {
        let _ = match result {
            Ok(()) => resolve.call0(&JsValue::NULL),
            Err(m) => reject.call1(&JsValue::NULL, &js_error(m)),
        };
    }
}

impl Shell {
    /// Feeds one input to the session, then drains its outputs.
    fn input(&self, f: impl FnOnce(&mut Session, u64)) {
        f(&mut self.core.borrow_mut(), now_ms());
        self.pump();
    }

    fn pump(&self) {
        loop {
            let next = self.core.borrow_mut().poll_output();
            match next {
                Some(out) => self.perform(out),
                None => break,
            }
        }
        self.arm_timer();
    }

    fn perform(&self, out: Output) {
        match out {
            Output::RequestToken => self.request_token(),
            Output::OpenSocket { url, protocols } => self.open_socket(&url, &protocols),
            Output::Send(frame) => {
                // A failed send means the socket is closing: its close event tells the session.
                let queued = self.socket.borrow().as_ref().and_then(|s| s.send(&frame));
                if let Some(bytes) = queued {
                    self.core
                        .borrow_mut()
                        .handle_socket_buffered(now_ms(), bytes);
                }
            }
            Output::CloseSocket { code, reason } => {
                if let Some(s) = self.socket.borrow_mut().take() {
                    s.close(code, reason);
                }
            }
            Output::StartAudio => self.start_audio(),
            Output::StopAudio => self.stop_audio(),
            Output::OpenMic { device_id, seq } => self.open_mic(device_id, seq),
            Output::SetSink { device_id } => self.set_sink(device_id),
            Output::Play {
                item,
                samples,
                period,
            } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.play(item, &samples, period);
                }
                self.core.borrow_mut().recycle(samples);
            }
            Output::EndOfItem { item } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.end_item(item);
                }
            }
            Output::SetPrebuffer { ms } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.set_prebuffer(ms);
                }
            }
            Output::ResumeAudio { on_gesture: true } => self.resume_on_next_gesture(),
            Output::ResumeAudio { on_gesture: false } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.resume();
                }
            }
            Output::DuckPlayback { db } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.duck(db);
                }
            }
            Output::FlushPlayback { ramp_ms } => {
                if let Some(g) = self.graph.borrow().as_ref() {
                    g.flush(ramp_ms);
                }
            }
            Output::HttpText {
                url,
                token,
                body_json,
                seq,
            } => self.http_text(url, token, body_json, seq),
            Output::ToolCall {
                call_id,
                name,
                arguments,
            } => self.run_tool(call_id, name, arguments),
            Output::Event(e) => self.dispatch(&e),
        }
    }

    /// Hands the registered tools to the core (which sends them to the model).
    fn set_tools(&self) -> Result<(), JsValue> {
        let mut json = String::from("[");
        for (i, (_, def, _)) in self.tools.borrow().iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(def);
        }
        json.push(']');
        let r = self.core.borrow_mut().set_tools(now_ms(), &json);
        r.map_err(|e| js_error(&e.message()))?;
        self.pump();
        Ok(())
    }

    /// Runs a tool's handler outside the drain (it may be async) and gives the core its result.
    fn run_tool(&self, call_id: String, name: String, arguments: String) {
        let handler = self
            .tools
            .borrow()
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, h)| h.clone());
        let me = self.me.clone();
        let done = move |result: Result<String, String>| {
            if let Some(shell) = me.upgrade() {
                shell.input(|s, now| s.handle_tool_result(now, &call_id, result));
            }
        };
        // The handler runs later, outside the drain.
        then(Ok(JsValue::UNDEFINED), move |_| match handler {
            Some(h) => run_handler(&h, &arguments, done),
            None => done(Err(concat(&[
                S("tool "),
                Quoted(&name),
                S(" is not registered"),
            ]))),
        });
    }

    fn dispatch(&self, e: &AppEvent) {
        if let AppEvent::Status(st) = e {
            let settle = match st.state {
                State::Connected | State::Text => Some(true),
                State::Failed(_) | State::Closed => Some(false),
                _ => None,
            };
            if matches!(st.state, State::Failed(_) | State::Closed) {
                self.release_lock();
                self.close_prepared();
            }
            if let Some(ok) = settle {
                let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
                if !waiters.is_empty() {
                    let value = JSON::parse(&e.to_json()).unwrap_or(JsValue::NULL);
                    for (resolve, reject) in waiters {
                        if ok {
                            let _ = resolve.call1(&JsValue::NULL, &value);
                        } else {
                            let msg = concat(&[
                                S("connection "),
                                S(st.state.as_str()),
                                S(": "),
                                S(st.reason.unwrap_or("closed")),
                            ]);
                            let err = js_sys::Error::new(&msg);
                            let _ = Reflect::set(&err, &"status".into(), &value);
                            let _ = reject.call1(&JsValue::NULL, &err);
                        }
                    }
                }
            }
        }
        self.emit(e.name(), &e.to_json());
    }

    /// Hands an event to the app's listeners (glue.js parses it once, only when someone listens,
    /// and logs a listener that throws).
    fn emit(&self, name: &str, json: &str) {
        emit_js(&self.js, name, json);
    }

    fn remove_listener(&self, name: &str, listener: &Function) {
        let raw = unlisten(&self.js, name, listener);
        self.core.borrow_mut().set_raw_events_wanted(raw);
    }

    /// A promise whose resolve and reject go into `waiters` (glue.js rejects it if the wasm
    /// aborts first); a rejected one once it has.
    fn promise(&self, waiters: &RefCell<Vec<(Function, Function)>>) -> Promise {
        match pending(&self.js) {
            Ok(a) => {
                waiters
                    .borrow_mut()
                    .push((a.get(1).unchecked_into(), a.get(2).unchecked_into()));
                a.get(0).unchecked_into()
            }
            Err(e) => Promise::reject(&e),
        }
    }

    fn arm_timer(&self) {
        let want = self.core.borrow().poll_timeout();
        let current = *self.timer.borrow();
        if current.map(|(_, at)| at) == want {
            return;
        }
        if let Some((id, _)) = self.timer.borrow_mut().take() {
            clear_timeout(id);
        }
        let Some(at) = want else { return };
        if self.timer_cb.borrow().is_none() {
            let me = self.me.clone();
            *self.timer_cb.borrow_mut() = Some(Closure::new(move || {
                if let Some(shell) = me.upgrade() {
                    shell.timer.borrow_mut().take();
                    let queued = shell.socket.borrow().as_ref().map(|s| s.buffered_amount());
                    shell.input(|s, now| {
                        // The socket's queue as of now: flow control and dead-link detection
                        // decide on it in this very timeout.
                        if let Some(bytes) = queued {
                            s.handle_socket_buffered(now, bytes);
                        }
                        s.handle_timeout(now)
                    });
                }
            }));
        }
        let delay = at.saturating_sub(now_ms()).min(i32::MAX as u64) as f64;
        let cb = self.timer_cb.borrow();
        if let Some(cb) = cb.as_ref() {
            *self.timer.borrow_mut() = Some((later(cb.as_ref(), delay), at));
        }
    }

    fn request_token(&self) {
        let Some(provider) = self.token_provider.clone() else {
            self.input(|s, now| s.handle_token(now, Err("no token provider".into())));
            return;
        };
        let me = self.me.clone();
        then(provider.call0(&JsValue::NULL), move |result| {
            let token = match result {
                Ok(v) => v.as_string().filter(|t| !t.is_empty()).ok_or_else(|| {
                    TokenFailure::Refused("the token provider returned no string".to_string())
                }),
                // fetch rejects with a TypeError when the network fails: an outage to retry,
                // not a refused token.
                Err(e) if e.is_instance_of::<js_sys::TypeError>() => {
                    Err(TokenFailure::Network(describe(&e)))
                }
                Err(e) => Err(TokenFailure::Refused(describe(&e))),
            };
            if let Some(shell) = me.upgrade() {
                shell.input(|s, now| s.handle_token_result(now, token));
            }
        });
    }

    fn open_socket(&self, url: &str, protocols: &[String]) {
        let id = self.socket_id.get().wrapping_add(1);
        self.socket_id.set(id);
        let me = self.me.clone();
        let sink = move |id: u32, ev: SocketEvent| {
            if let Some(shell) = me.upgrade() {
                shell.on_socket(id, ev);
            }
        };
        match Socket::open(url, protocols, id, sink) {
            Ok(s) => *self.socket.borrow_mut() = Some(s),
            Err(_) => {
                // A malformed URL or refused subprotocol: as the browser would report a failed
                // handshake, later (never re-entrantly inside the drain).
                let me = self.me.clone();
                then(Ok(JsValue::UNDEFINED), move |_| {
                    if let Some(shell) = me.upgrade() {
                        shell.on_socket(
                            id,
                            SocketEvent::Closed {
                                code: 1006,
                                reason: String::new(),
                                was_open: false,
                            },
                        );
                    }
                });
            }
        }
    }

    fn on_socket(&self, id: u32, ev: SocketEvent) {
        if id != self.socket_id.get() {
            return; // a socket the session already left
        }
        match ev {
            SocketEvent::Opened => self.input(|s, now| s.handle_socket_opened(now)),
            SocketEvent::Message(text) => self.input(|s, now| s.handle_socket_message(now, &text)),
            SocketEvent::Binary(len) => self.input(|s, now| s.handle_socket_binary(now, len)),
            SocketEvent::Error => self.input(|s, now| s.handle_socket_error(now)),
            SocketEvent::Closed {
                code,
                reason,
                was_open,
            } => {
                self.socket.borrow_mut().take();
                self.input(|s, now| s.handle_socket_closed(now, code, &reason, was_open));
            }
        }
    }

    fn start_audio(&self) {
        let epoch = self.audio_epoch.get().wrapping_add(1);
        self.audio_epoch.set(epoch);
        let prepared = self.prepared.borrow_mut().take();
        let unlocked = match prepared {
            Some(g) => Ok(g),
            None => audio::unlock(),
        };
        let g = match unlocked {
            Ok(g) => g,
            Err(f) => {
                let me = self.me.clone();
                then(Ok(JsValue::UNDEFINED), move |_| {
                    if let Some(shell) = me.upgrade() {
                        shell.input(|s, now| s.handle_audio_failed(now, f));
                    }
                });
                return;
            }
        };
        let core = self.core.borrow();
        let sink_id = core.output_device().map(str::to_string);
        let options = AudioOptions {
            capture_url: self.worklets.0.clone(),
            playback_url: self.worklets.1.clone(),
            constraints: self.mic_constraints(),
            device_id: core.input_device().map(str::to_string),
            prebuffer_ms: core.prebuffer_ms(),
            echo_canceller_url: (core.echo_canceller() == EchoCanceller::Wasm)
                .then(|| self.worklets.2.clone()),
            raw_beside: core.echo_raw_capture(),
        };
        drop(core);
        let me = self.me.clone();
        let sink: Rc<dyn Fn(AudioEvent)> = Rc::new(move |ev| {
            if let Some(shell) = me.upgrade() {
                shell.on_audio(ev);
            }
        });
        let me = self.me.clone();
        AudioGraph::start(g, options, sink, move |result| {
            let Some(shell) = me.upgrade() else {
                if let Ok(g) = result {
                    g.stop();
                }
                return;
            };
            if shell.audio_epoch.get() != epoch {
                // Audio was stopped (or restarted) while this start was under way.
                if let Ok(g) = result {
                    g.stop();
                }
                return;
            }
            match result {
                Ok(graph) => {
                    let rate = graph.sample_rate();
                    let state = graph.state();
                    shell.ctx_rate.set(rate);
                    *shell.graph.borrow_mut() = Some(graph);
                    shell.input(|s, now| s.handle_playback_started(now, rate));
                    // The context's state goes to the session once the chosen output is set.
                    let finish = move |shell: &Shell, sink_failed: bool| {
                        if sink_failed {
                            shell.input(|s, now| s.handle_sink_failed(now));
                        }
                        shell.mic_format.set((0, false));
                        shell.on_audio(AudioEvent::ContextState(state));
                    };
                    let set = sink_id
                        .filter(|_| audio::has_set_sink_id())
                        .and_then(|id| shell.graph.borrow().as_ref().map(|g| g.set_sink(&id)));
                    match set {
                        Some(p) => {
                            let me = shell.me.clone();
                            then(Ok(p.into()), move |r| {
                                if let Some(shell) = me.upgrade() {
                                    finish(&shell, r.is_err());
                                }
                            });
                        }
                        None => finish(&shell, false),
                    }
                }
                Err(f) => shell.input(|s, now| s.handle_audio_failed(now, f)),
            }
        });
    }

    /// A promise for a device choice `f` hands to the session: settled by the `OpenMic` or
    /// `SetSink` it asks for (which takes `waiters`), or at once when it asks for none (audio is
    /// not running: the choice applies when it starts).
    fn device_promise(
        &self,
        waiters: &RefCell<Vec<(Function, Function)>>,
        f: impl FnOnce(&mut Session, u64),
    ) -> Promise {
        let promise = self.promise(waiters);
        self.input(f);
        let left = std::mem::take(&mut *waiters.borrow_mut());
        settle_all(left, &Ok(()));
        promise
    }

    /// Opens the microphone the session asked for and puts it in place of the current one;
    /// the outcome goes back with the request's `seq`.
    fn open_mic(&self, device_id: Option<String>, seq: u64) {
        self.mic_seq.set(seq);
        let waiters = std::mem::take(&mut *self.device_waiters.borrow_mut());
        let me = self.me.clone();
        let constraints = self.mic_constraints();
        // The player's route follows the canceller the constraints are for.
        if let Some(g) = self.graph.borrow().as_ref() {
            g.route(self.core.borrow().echo_canceller() == EchoCanceller::Wasm);
        }
        audio::open_microphone(&constraints, device_id.as_deref(), move |opened| {
            let Some(shell) = me.upgrade() else {
                if let Ok(stream) = opened {
                    audio::stop_tracks(&stream);
                }
                return;
            };
            let result = match opened {
                // A newer request superseded this one while it was opening.
                Ok(stream) if shell.mic_seq.get() != seq => {
                    audio::stop_tracks(&stream);
                    settle_all(waiters, &Ok(()));
                    return;
                }
                Ok(stream) => match shell.graph.borrow_mut().as_mut() {
                    Some(g) => g.attach_stream(stream),
                    None => {
                        audio::stop_tracks(&stream);
                        Err(AudioFailure::AudioContextFailed)
                    }
                },
                Err(f) => Err(f),
            };
            match result {
                Ok(()) => {
                    settle_all(waiters, &Ok(()));
                    shell.input(|s, now| s.handle_mic_opened(now, seq));
                }
                Err(f) => {
                    let why = concat(&[S("cannot switch microphone: "), S(f.as_str())]);
                    settle_all(waiters, &Err(why));
                    shell.input(|s, now| s.handle_mic_open_failed(now, seq, f));
                }
            }
        });
    }

    /// Routes playback to the output device the session chose (`None`: the default).
    fn set_sink(&self, device_id: Option<String>) {
        let set = match self.graph.borrow().as_ref() {
            Some(g) if audio::has_set_sink_id() => {
                g.set_sink(device_id.as_deref().unwrap_or("")).into()
            }
            _ => JsValue::UNDEFINED,
        };
        let waiters = std::mem::take(&mut *self.sink_waiters.borrow_mut());
        let me = self.me.clone();
        then(Ok(set), move |r| {
            let result = r.map(|_| ()).map_err(|e| describe(&e));
            settle_all(waiters, &result);
            if let (Some(shell), true) = (me.upgrade(), result.is_err()) {
                shell.input(|s, now| s.handle_sink_failed(now));
            }
        });
    }

    fn stop_audio(&self) {
        self.audio_epoch.set(self.audio_epoch.get().wrapping_add(1));
        if let Some(g) = self.graph.borrow_mut().take() {
            g.stop();
        }
        self.close_prepared();
        self.remove_gesture_listener();
    }

    fn on_audio(&self, ev: AudioEvent) {
        match ev {
            AudioEvent::Frames {
                frames,
                channels,
                pair,
                at,
            } => {
                let mut buf = self.mic_buf.borrow_mut();
                buf.resize(frames.length() as usize, 0.0);
                // glue.js hands the buffer back to the worklet once this returns.
                frames.copy_to(&mut buf);
                // A pair is two mono captures: the session sees one channel of each.
                let pair = pair && channels == 2;
                let format = (if pair { 1 } else { channels }, pair);
                // The channel count is known from the first frames: that is when the session
                // learns the format (again if a new device changes it).
                if self.mic_format.get() != format {
                    self.mic_format.set(format);
                    let rate = self.ctx_rate.get();
                    self.core
                        .borrow_mut()
                        .handle_audio_started(now_ms(), rate, format.0 as u16);
                }
                if pair {
                    let mut raw = self.mic_raw.borrow_mut();
                    raw.clear();
                    raw.extend(buf.iter().skip(1).step_by(2));
                    let n = buf.len() / 2;
                    for i in 0..n {
                        buf[i] = buf[2 * i];
                    }
                    buf.truncate(n);
                    self.core
                        .borrow_mut()
                        .handle_mic_pair_at(now_ms(), &buf, &raw, at);
                } else {
                    self.core
                        .borrow_mut()
                        .handle_mic_samples_at(now_ms(), &buf, at);
                }
                drop(buf);
                self.pump();
            }
            AudioEvent::Progress {
                item,
                played,
                at,
                underruns,
                concealed,
                rms,
                peak,
            } => self.input(|s, now| {
                s.handle_playback_progress_at(now, item, played, u64::from(underruns), at);
                s.handle_playback_concealed(now, u64::from(concealed));
                s.handle_output_level(now, rms, peak);
            }),
            AudioEvent::Overflow { frames } => {
                self.input(|s, now| s.handle_playback_overflow(now, u64::from(frames)));
            }
            AudioEvent::Finished { item } => {
                self.input(|s, now| s.handle_playback_finished(now, item));
            }
            AudioEvent::TrackEnded => {
                self.input(|s, now| s.handle_mic_lost(now, MicLoss::TrackEnded))
            }
            AudioEvent::DevicesChanged => {
                let me = self.me.clone();
                audio::device_ids(move |inputs, outputs| {
                    // Where no output can be chosen, the output list says nothing.
                    let outputs = audio::has_set_sink_id().then_some(&outputs[..]);
                    if let Some(shell) = me.upgrade() {
                        shell.input(|s, now| s.handle_devices_changed(now, &inputs, outputs));
                    }
                });
            }
            AudioEvent::ContextState(state) => {
                if let Some(state) = AudioState::from_browser(&state) {
                    self.input(|s, now| s.handle_audio_state(now, state));
                }
            }
            AudioEvent::EchoCancellerStats {
                attenuation_db,
                delay_ms,
            } => {
                self.input(|s, now| s.handle_echo_canceller_stats(now, attenuation_db, delay_ms));
            }
            AudioEvent::EchoCancellerFailed => {
                self.input(|s, now| s.handle_echo_canceller_failed(now));
            }
        }
    }

    /// getUserMedia's audio constraints for the next microphone: the browser's echo
    /// cancellation, noise suppression and gain control unless the wasm echo canceller runs
    /// (it needs the raw signal), mono, then the app's own constraints over them.
    fn mic_constraints(&self) -> JsValue {
        let browser = self.core.borrow().echo_canceller() == EchoCanceller::Browser;
        let defaults = Object::new();
        for (k, v) in [
            ("echoCancellation", JsValue::from_bool(browser)),
            ("noiseSuppression", JsValue::from_bool(browser)),
            ("autoGainControl", JsValue::from_bool(browser)),
            ("channelCount", JsValue::from(1)),
        ] {
            // A plain object: setting a property cannot fail.
            let _ = Reflect::set(&defaults, &k.into(), &v);
        }
        Object::assign(&defaults, self.app_constraints.unchecked_ref()).into()
    }

    /// Safari (and any browser after an interruption) resumes audio only inside a user gesture:
    /// listen once for the next click, tap or key press.
    fn resume_on_next_gesture(&self) {
        if self.gesture_listener.borrow().is_some() {
            return;
        }
        let me = self.me.clone();
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(shell) = me.upgrade() {
                if let Some(g) = shell.graph.borrow().as_ref() {
                    g.resume();
                }
                shell.remove_gesture_listener();
            }
        });
        let off = on_gesture(cb.as_ref());
        *self.gesture_listener.borrow_mut() = Some((cb, off));
    }

    fn remove_gesture_listener(&self) {
        let listener = self.gesture_listener.borrow_mut().take();
        if let Some((_cb, off)) = listener {
            let _ = off.call0(&JsValue::NULL);
        }
    }

    /// Online / offline and visibility changes go to the session (and `navigator.onLine` now,
    /// when it is false).
    fn listen_window(&self) {
        let me = self.me.clone();
        let cb = Closure::<dyn FnMut(u32, bool)>::new(move |kind, yes| {
            if let Some(shell) = me.upgrade() {
                match kind {
                    0 => shell.input(|s, now| s.handle_online(now, yes)),
                    _ => shell.input(|s, now| s.handle_visibility(now, yes)),
                }
            }
        });
        let off = listen_window_js(cb.as_ref());
        *self.window_listeners.borrow_mut() = Some((cb, off));
    }

    /// Lets the Web Lock go; a request still pending is cancelled (its callback releases).
    fn release_lock(&self) {
        let held = std::mem::replace(&mut *self.lock.borrow_mut(), LockState::None);
        if let LockState::Held(release) = held {
            if let Ok(p) = release
                .call0(&JsValue::NULL)
                .and_then(|p| p.dyn_into::<Promise>())
            {
                *self.lock_released.borrow_mut() = Some(p);
            }
        }
    }

    fn http_text(&self, url: String, token: String, body: String, seq: u64) {
        let me = self.me.clone();
        fetch_json(&url, &token, &body, move |reply| {
            if let Some(shell) = me.upgrade() {
                shell.input(|s, now| s.handle_http_reply(now, seq, reply));
            }
        });
    }

    /// Rejects `connect()` promises that no status event will settle.
    fn reject_waiters(&self, why: &str) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, reject) in waiters {
            let _ = reject.call1(&JsValue::NULL, &js_sys::Error::new(why));
        }
    }

    /// Closes an AudioContext prepared in `connect()` that the session never asked for.
    fn close_prepared(&self) {
        if let Some(g) = self.prepared.borrow_mut().take() {
            audio::close(&g);
        }
    }
}

impl Drop for VoiceClient {
    fn drop(&mut self) {
        // `free()` from JS: end everything this client started.
        self.shell.core.borrow_mut().disconnect(now_ms());
        while self.shell.core.borrow_mut().poll_output().is_some() {}
        self.shell.socket.borrow_mut().take();
        self.shell.stop_audio();
        self.shell.release_lock();
        self.shell.reject_waiters("the client was freed");
        if let Some((id, _)) = self.shell.timer.borrow_mut().take() {
            clear_timeout(id);
        }
        let listeners = self.shell.window_listeners.borrow_mut().take();
        if let Some((_cb, off)) = listeners {
            let _ = off.call0(&JsValue::NULL);
        }
        self.shell.remove_gesture_listener();
        forget(&self.shell.js);
    }
}

fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        String::from(err.message())
    } else {
        e.as_string().unwrap_or_else(|| "unknown error".into())
    }
}

/// Calls a tool handler with the parsed arguments and gives `done` what it returns (or resolves
/// to), serialised; `undefined` becomes `null`.
fn run_handler(
    handler: &Function,
    arguments: &str,
    done: impl FnOnce(Result<String, String>) + 'static,
) {
    let value = match JSON::parse(arguments) {
        Ok(args) => handler.call1(&JsValue::NULL, &args),
        Err(_) => return done(Err("the model's arguments are not valid JSON".to_string())),
    };
    then(value, move |value| {
        done(value.map_err(|e| describe(&e)).and_then(|value| {
            if value.is_undefined() {
                return Ok("null".to_string());
            }
            JSON::stringify(&value)
                .map_err(|e| describe(&e))?
                .as_string()
                .ok_or_else(|| "the result is not JSON-serialisable".to_string())
        }))
    });
}

/// POSTs `body` to `url` with the bearer `token`; `done` gets the response text (later).
fn fetch_json(
    url: &str,
    token: &str,
    body: &str,
    done: impl FnOnce(Result<String, HttpFailure>) + 'static,
) {
    then(Ok(post_json(url, token, body).into()), move |r| {
        done(match r {
            Ok(text) => text.as_string().ok_or(HttpFailure::Network),
            // postJson rejects with the HTTP status, or with fetch's error.
            Err(e) => Err(e
                .as_f64()
                .map_or(HttpFailure::Network, |n| HttpFailure::Status(n as u16))),
        })
    });
}
