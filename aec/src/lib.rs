//! The opt-in echo canceller (`echoCanceller: "wasm"`): WebRTC's AEC3, as ported by the `aec3`
//! crate, behind a C ABI with no imports, so that the capture worklet can instantiate it
//! synchronously on the audio thread with `new WebAssembly.Instance(module, {})`.
//!
//! The worklet works in 10 ms frames of the context's rate (16–48 kHz, 44.1 kHz included). For
//! each frame it copies what the playback worklet played into [`rv_aec_render_buffer`] and calls
//! [`rv_aec_render`], then copies the microphone's frame into [`rv_aec_capture_buffer`] and
//! calls [`rv_aec_capture`], which replaces it with the echo-cancelled frame. Everything is
//! allocated by [`rv_aec_init`]; the calls after it only read and write the two buffers.
//!
//! The canceller itself ([`Canceller`]) is plain Rust and tested natively.

pub use aec3::api::config::EchoCanceller3Config;
use aec3::voip::VoipAec3;

/// Why the canceller could not be set up or run (returned to the worklet as a negative code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AecError {
    /// The context's rate is outside 16–48 kHz.
    UnsupportedRate(u32),
    /// The AEC pipeline refused a frame or its configuration.
    Pipeline,
    /// A call came before a successful [`rv_aec_init`].
    NotInitialised,
}

impl AecError {
    /// The code the C ABI returns for it.
    pub fn code(self) -> i32 {
        match self {
            AecError::UnsupportedRate(_) => -1,
            AecError::Pipeline => -2,
            AecError::NotInitialised => -3,
        }
    }
}

/// One mono echo canceller in 10 ms frames, with the frame buffers the worklet fills.
pub struct Canceller {
    aec: VoipAec3,
    /// The far-end (played) frame, filled before [`Canceller::render`].
    pub render: Vec<f32>,
    /// The near-end (microphone) frame, filled before [`Canceller::capture`] and replaced by the
    /// echo-cancelled frame.
    pub capture: Vec<f32>,
    out: Vec<f32>,
    /// Energy in and out over the frames of the current second.
    energy: (f64, f64, u32),
    attenuation_db: f32,
    delay_ms: i32,
}

impl Canceller {
    /// A canceller for `rate_hz` (16 000–48 000): AEC3 with its high-pass filter, no noise
    /// suppression or gain control (the page's own constraints decide those).
    pub fn new(rate_hz: u32) -> Result<Canceller, AecError> {
        Canceller::with_config(rate_hz, Canceller::config())
    }

    /// WebRTC's AEC3 defaults, with the delay search twice as long (10 matched filters: echo
    /// paths up to ≈ 1 s instead of ≈ 0.5 s). In a browser the echo comes back through the
    /// output's and the sound server's buffers as well as the room (90–220 ms in the echo lab),
    /// and a Bluetooth speaker typically adds 100–300 ms more.
    pub fn config() -> EchoCanceller3Config {
        let mut c = EchoCanceller3Config::default();
        c.delay.num_filters = 10;
        c
    }

    /// A canceller with AEC3 tuned by `config` (the defaults are WebRTC's).
    pub fn with_config(rate_hz: u32, config: EchoCanceller3Config) -> Result<Canceller, AecError> {
        if !(16_000..=48_000).contains(&rate_hz) {
            return Err(AecError::UnsupportedRate(rate_hz));
        }
        let aec = VoipAec3::builder(rate_hz as usize, 1, 1)
            .with_config(config)
            .enable_high_pass(true)
            .build()
            .map_err(|_| AecError::Pipeline)?;
        let n = aec.capture_frame_samples();
        Ok(Canceller {
            aec,
            render: vec![0.0; n],
            capture: vec![0.0; n],
            out: vec![0.0; n],
            energy: (0.0, 0.0, 0),
            attenuation_db: 0.0,
            delay_ms: 0,
        })
    }

    /// Samples per 10 ms frame.
    pub fn frame_len(&self) -> usize {
        self.capture.len()
    }

    /// Feeds [`Canceller::render`] as the frame just played.
    pub fn render(&mut self) -> Result<(), AecError> {
        self.aec
            .handle_render_frame(&self.render)
            .map_err(|_| AecError::Pipeline)
    }

    /// Replaces [`Canceller::capture`] with its echo-cancelled version.
    pub fn capture(&mut self) -> Result<(), AecError> {
        let m = self
            .aec
            .process_capture_frame(&self.capture, false, &mut self.out)
            .map_err(|_| AecError::Pipeline)?;
        let power = |x: &[f32]| x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        let (e_in, e_out, frames) = &mut self.energy;
        *e_in += power(&self.capture);
        *e_out += power(&self.out);
        *frames += 1;
        if *frames == 100 {
            self.attenuation_db = (10.0 * ((*e_in + 1e-9) / (*e_out + 1e-9)).log10()) as f32;
            self.energy = (0.0, 0.0, 0);
        }
        self.capture.copy_from_slice(&self.out);
        self.delay_ms = m.delay_ms;
        Ok(())
    }

    /// How much quieter the output was than the microphone over the last full second, in dB:
    /// the echo removed when only echo was there, what a talker lost in double talk. (AEC3's
    /// own ERLE figure rates its linear filter only, which leaves most of the work to the
    /// suppressor in a reverberant room.)
    pub fn attenuation_db(&self) -> f32 {
        self.attenuation_db
    }

    /// The echo path's delay AEC3 estimates, in ms.
    pub fn delay_ms(&self) -> i32 {
        self.delay_ms
    }
}

#[cfg(target_arch = "wasm32")]
mod abi {
    //! The C ABI the capture worklet calls. The audio thread is the module's only thread.
    use super::{AecError, Canceller};
    use core::cell::RefCell;

    struct Slot(RefCell<Option<Canceller>>);
    // SAFETY: wasm32-unknown-unknown without atomics has one thread.
    unsafe impl Sync for Slot {}
    static CANCELLER: Slot = Slot(RefCell::new(None));

    fn with<T>(f: impl FnOnce(&mut Canceller) -> T) -> Result<T, AecError> {
        let mut slot = CANCELLER
            .0
            .try_borrow_mut()
            .map_err(|_| AecError::Pipeline)?;
        slot.as_mut().map(f).ok_or(AecError::NotInitialised)
    }

    fn code(r: Result<(), AecError>) -> i32 {
        r.err().map_or(0, AecError::code)
    }

    /// Sets up a canceller for `rate_hz`: the frame length in samples, or a negative code.
    #[no_mangle]
    pub extern "C" fn rv_aec_init(rate_hz: u32) -> i32 {
        match Canceller::new(rate_hz) {
            Ok(c) => {
                let n = c.frame_len() as i32;
                match CANCELLER.0.try_borrow_mut() {
                    Ok(mut slot) => {
                        *slot = Some(c);
                        n
                    }
                    Err(_) => AecError::Pipeline.code(),
                }
            }
            Err(e) => e.code(),
        }
    }

    /// Where the worklet writes the played frame (null before `rv_aec_init`).
    #[no_mangle]
    pub extern "C" fn rv_aec_render_buffer() -> *mut f32 {
        with(|c| c.render.as_mut_ptr()).unwrap_or(core::ptr::null_mut())
    }

    /// Where the worklet writes the microphone's frame and reads the cancelled one.
    #[no_mangle]
    pub extern "C" fn rv_aec_capture_buffer() -> *mut f32 {
        with(|c| c.capture.as_mut_ptr()).unwrap_or(core::ptr::null_mut())
    }

    /// Feeds the played frame: 0, or a negative code.
    #[no_mangle]
    pub extern "C" fn rv_aec_render() -> i32 {
        code(with(Canceller::render).and_then(|r| r))
    }

    /// Cancels the echo in the microphone's frame, in place: 0, or a negative code.
    #[no_mangle]
    pub extern "C" fn rv_aec_capture() -> i32 {
        code(with(Canceller::capture).and_then(|r| r))
    }

    /// How much quieter the output was than the microphone over the last second, in dB.
    #[no_mangle]
    pub extern "C" fn rv_aec_attenuation_db() -> f32 {
        with(|c| c.attenuation_db()).unwrap_or(0.0)
    }

    /// The echo path's delay estimated after the last frame, in ms.
    #[no_mangle]
    pub extern "C" fn rv_aec_delay_ms() -> i32 {
        with(|c| c.delay_ms()).unwrap_or(-1)
    }
}
