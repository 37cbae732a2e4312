//! Chunker: turns the stream of 24 kHz PCM16 samples into `input_audio_buffer.append` chunks of
//! at least `chunk_ms`, never more than `max_chunks_per_second` in any 1000 ms window (the
//! backend's limit), with a bounded backlog whose overflow is counted.
//!
//! Sans-IO: time enters as the caller's `now_ms`; the caller asks [`Chunker::next_ready_ms`]
//! when to poll again. All memory (the sample ring and the send-time ring) is allocated once in
//! [`Chunker::new`].

use std::fmt;

use crate::text::{write_parts, Message, Part::*};

/// Shortest chunk the backend accepts at its rate limit, in ms.
pub const MIN_CHUNK_MS: u32 = 100;
/// Largest accepted backlog, in ms (10 minutes), to keep the ring's size sane.
pub const MAX_BACKLOG_MS: u32 = 600_000;

/// Chunker settings. The defaults match the backend: 24 kHz, 100 ms chunks, 10 per second,
/// up to 1 s per chunk when catching up, 10 s of backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerConfig {
    /// Sample rate of the pushed samples, in Hz (24 000 for the realtime API).
    pub sample_rate: u32,
    /// Nominal chunk duration, in ms (≥ [`MIN_CHUNK_MS`]).
    pub chunk_ms: u32,
    /// Most chunks emitted in any 1000 ms window.
    pub max_chunks_per_second: u32,
    /// Largest chunk, in ms, used when catching up on a backlog (≥ `chunk_ms`).
    pub max_chunk_ms: u32,
    /// Backlog bound, in ms; beyond it the oldest samples are dropped and counted.
    pub max_backlog_ms: u32,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        ChunkerConfig {
            sample_rate: 24_000,
            chunk_ms: 100,
            max_chunks_per_second: 10,
            max_chunk_ms: 1_000,
            max_backlog_ms: 10_000,
        }
    }
}

/// Why a [`ChunkerConfig`] was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkerError {
    /// `sample_rate` outside 8 000..=192 000 Hz.
    UnsupportedSampleRate {
        /// The rejected rate.
        rate: u32,
    },
    /// `chunk_ms` below [`MIN_CHUNK_MS`].
    ChunkTooShort {
        /// The configured chunk duration.
        chunk_ms: u32,
        /// The minimum.
        min_ms: u32,
    },
    /// `max_chunk_ms` below `chunk_ms`.
    MaxChunkBelowChunk {
        /// The configured cap.
        max_chunk_ms: u32,
        /// The configured chunk duration.
        chunk_ms: u32,
    },
    /// The rate limit and the largest chunk cannot carry one second of audio per second, so
    /// the backlog would grow without end.
    CannotKeepUp {
        /// The configured rate limit.
        max_chunks_per_second: u32,
        /// The configured cap.
        max_chunk_ms: u32,
    },
    /// `max_backlog_ms` below `max_chunk_ms` or above [`MAX_BACKLOG_MS`].
    UnsupportedBacklog {
        /// The configured backlog bound.
        max_backlog_ms: u32,
        /// The configured chunk cap (the lower bound).
        max_chunk_ms: u32,
    },
}

impl Message for ChunkerError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match *self {
            Self::UnsupportedSampleRate { rate } => write_parts(
                out,
                &[
                    S("chunker: unsupported sample rate "),
                    N(u64::from(rate)),
                    S(" Hz"),
                ],
            ),
            Self::ChunkTooShort { chunk_ms, min_ms } => write_parts(
                out,
                &[
                    S("chunker: chunk of "),
                    N(u64::from(chunk_ms)),
                    S(" ms is below the "),
                    N(u64::from(min_ms)),
                    S(" ms minimum"),
                ],
            ),
            Self::MaxChunkBelowChunk {
                max_chunk_ms,
                chunk_ms,
            } => write_parts(
                out,
                &[
                    S("chunker: max_chunk_ms "),
                    N(u64::from(max_chunk_ms)),
                    S(" is below chunk_ms "),
                    N(u64::from(chunk_ms)),
                ],
            ),
            Self::CannotKeepUp {
                max_chunks_per_second,
                max_chunk_ms,
            } => write_parts(
                out,
                &[
                    S("chunker: "),
                    N(u64::from(max_chunks_per_second)),
                    S(" chunks/s of at most "),
                    N(u64::from(max_chunk_ms)),
                    S(" ms cannot carry 1000 ms of audio per second"),
                ],
            ),
            Self::UnsupportedBacklog {
                max_backlog_ms,
                max_chunk_ms,
            } => write_parts(
                out,
                &[
                    S("chunker: max_backlog_ms "),
                    N(u64::from(max_backlog_ms)),
                    S(" must be within "),
                    N(u64::from(max_chunk_ms)),
                    S("..="),
                    N(u64::from(MAX_BACKLOG_MS)),
                ],
            ),
        }
    }
}

crate::text::display_by_message!(ChunkerError);

impl std::error::Error for ChunkerError {}

/// Describes the chunk [`Chunker::poll_chunk`] wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkInfo {
    /// Number of samples in the chunk.
    pub samples: usize,
    /// Capture time of the chunk's first sample, in the caller's `now_ms` clock.
    pub captured_at_ms: u64,
    /// Duration of the chunk, in ms (rounded down).
    pub duration_ms: u32,
    /// True when this chunk completes a [`Chunker::flush`]: everything pushed before the flush
    /// has now been emitted, so the caller may send `input_audio_buffer.commit`.
    pub ends_flush: bool,
}

/// Bounded chunker with a sliding-window rate limit. See the module docs.
#[derive(Debug, Clone)]
pub struct Chunker {
    config: ChunkerConfig,
    chunk_samples: usize,
    max_chunk_samples: usize,
    /// Sample ring, sized from `max_backlog_ms` once.
    ring: Vec<i16>,
    head: usize,
    len: usize,
    /// Samples ever pushed / ever taken out of the ring (emitted, dropped or discarded).
    pushed: u64,
    consumed: u64,
    /// Sample `base_index` was captured at `base_ms`; later ones are extrapolated at the rate.
    base_ms: u64,
    base_index: u64,
    /// A pending flush covers samples up to (excluding) this index.
    flush_until: Option<u64>,
    /// Send times of the last `max_chunks_per_second` chunks (a ring indexed by `sent`).
    sent_at: Vec<u64>,
    sent: u64,
    dropped: u64,
    discarded: u64,
}

impl Chunker {
    /// Validates `config` and allocates the backlog ring.
    pub fn new(config: ChunkerConfig) -> Result<Self, ChunkerError> {
        let c = config;
        if !(8_000..=192_000).contains(&c.sample_rate) {
            return Err(ChunkerError::UnsupportedSampleRate {
                rate: c.sample_rate,
            });
        }
        if c.chunk_ms < MIN_CHUNK_MS {
            return Err(ChunkerError::ChunkTooShort {
                chunk_ms: c.chunk_ms,
                min_ms: MIN_CHUNK_MS,
            });
        }
        if c.max_chunk_ms < c.chunk_ms {
            return Err(ChunkerError::MaxChunkBelowChunk {
                max_chunk_ms: c.max_chunk_ms,
                chunk_ms: c.chunk_ms,
            });
        }
        if u64::from(c.max_chunks_per_second) * u64::from(c.max_chunk_ms) < 1000 {
            return Err(ChunkerError::CannotKeepUp {
                max_chunks_per_second: c.max_chunks_per_second,
                max_chunk_ms: c.max_chunk_ms,
            });
        }
        if c.max_backlog_ms < c.max_chunk_ms || c.max_backlog_ms > MAX_BACKLOG_MS {
            return Err(ChunkerError::UnsupportedBacklog {
                max_backlog_ms: c.max_backlog_ms,
                max_chunk_ms: c.max_chunk_ms,
            });
        }
        let samples = |ms: u32| (u64::from(ms) * u64::from(c.sample_rate) / 1000) as usize;
        // The rate limit can never need more slots than one per ms of a second.
        let window = c.max_chunks_per_second.min(1000) as usize;
        Ok(Chunker {
            config: c,
            chunk_samples: samples(c.chunk_ms),
            max_chunk_samples: samples(c.max_chunk_ms),
            ring: vec![0; samples(c.max_backlog_ms)],
            head: 0,
            len: 0,
            pushed: 0,
            consumed: 0,
            base_ms: 0,
            base_index: 0,
            flush_until: None,
            sent_at: vec![0; window],
            sent: 0,
            dropped: 0,
            discarded: 0,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ChunkerConfig {
        &self.config
    }

    /// Samples in a nominal chunk.
    pub fn chunk_samples(&self) -> usize {
        self.chunk_samples
    }

    /// Samples in the largest chunk: reserve this much in the `out` buffer of
    /// [`Chunker::poll_chunk`] once and it never reallocates.
    pub fn max_chunk_samples(&self) -> usize {
        self.max_chunk_samples
    }

    /// Backlog bound, in samples.
    pub fn capacity_samples(&self) -> usize {
        self.ring.len()
    }

    /// Adds `samples`, the first of which was captured at `now_ms`. When the backlog would
    /// exceed its bound, the oldest samples are dropped and counted in
    /// [`Chunker::dropped_samples`].
    pub fn push(&mut self, now_ms: u64, samples: &[i16]) {
        if samples.is_empty() {
            return;
        }
        if self.len == 0 {
            self.base_ms = now_ms;
            self.base_index = self.pushed;
        }
        self.pushed += samples.len() as u64;
        let cap = self.ring.len();
        let overflow = (self.len + samples.len()).saturating_sub(cap);
        // First drop from the ring, then (if the push alone exceeds the bound) its own head.
        let from_ring = overflow.min(self.len);
        self.head = (self.head + from_ring) % cap;
        self.len -= from_ring;
        let samples = &samples[overflow - from_ring..];
        self.dropped += overflow as u64;
        self.consumed += overflow as u64;
        let tail = (self.head + self.len) % cap;
        let first = samples.len().min(cap - tail);
        self.ring[tail..tail + first].copy_from_slice(&samples[..first]);
        self.ring[..samples.len() - first].copy_from_slice(&samples[first..]);
        self.len += samples.len();
    }

    /// Size of the chunk that may be taken now if the rate limit allows, or None.
    fn ready_size(&self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let flush_left = self
            .flush_until
            .filter(|&end| end > self.consumed)
            .map(|end| (end - self.consumed) as usize);
        let size = if self.len >= self.chunk_samples {
            self.len.min(self.max_chunk_samples)
        } else if flush_left.is_some() {
            self.len
        } else {
            return None;
        };
        Some(flush_left.map_or(size, |left| size.min(left)))
    }

    /// Time at which the rate limit next allows a chunk (≤ `now_ms` when it allows one now).
    fn rate_free_at(&self, now_ms: u64) -> u64 {
        let n = self.sent_at.len() as u64;
        if self.sent < n {
            return now_ms;
        }
        // The oldest of the last `n` sends leaves the 1000 ms window at +1000.
        self.sent_at[(self.sent % n) as usize].saturating_add(1000)
    }

    /// If a chunk may be sent at `now_ms` — a full chunk is ready or a flush is pending, and
    /// fewer than `max_chunks_per_second` were emitted in the last 1000 ms — clears `out`,
    /// fills it with the chunk and describes it. When behind, one chunk takes as much backlog
    /// as needed (up to `max_chunk_ms`), so catching up never exceeds the rate.
    pub fn poll_chunk(&mut self, now_ms: u64, out: &mut Vec<i16>) -> Option<ChunkInfo> {
        let size = self.ready_size()?;
        if self.rate_free_at(now_ms) > now_ms {
            return None;
        }
        let captured_at_ms = self.time_of(self.consumed);
        out.clear();
        let cap = self.ring.len();
        let first = size.min(cap - self.head);
        out.extend_from_slice(&self.ring[self.head..self.head + first]);
        out.extend_from_slice(&self.ring[..size - first]);
        self.head = (self.head + size) % cap;
        self.len -= size;
        self.consumed += size as u64;
        let n = self.sent_at.len() as u64;
        self.sent_at[(self.sent % n) as usize] = now_ms;
        self.sent += 1;
        let ends_flush = match self.flush_until {
            Some(end) if end <= self.consumed => {
                self.flush_until = None;
                true
            }
            _ => false,
        };
        Some(ChunkInfo {
            samples: size,
            captured_at_ms,
            duration_ms: (size as u64 * 1000 / u64::from(self.config.sample_rate)) as u32,
            ends_flush,
        })
    }

    /// Capture time of sample `index` (extrapolated from the base at the sample rate).
    fn time_of(&self, index: u64) -> u64 {
        let offset = index.saturating_sub(self.base_index);
        self.base_ms + offset * 1000 / u64::from(self.config.sample_rate)
    }

    /// Earliest time at which [`Chunker::poll_chunk`] could return a chunk given what is
    /// buffered now (`now_ms` if at once), or None until more samples or a flush arrive.
    pub fn next_ready_ms(&self, now_ms: u64) -> Option<u64> {
        self.ready_size()?;
        Some(self.rate_free_at(now_ms).max(now_ms))
    }

    /// Marks everything pushed so far to be emitted, including a partial last chunk (on commit
    /// or stop), still within the rate limit. Samples pushed later are not part of the flush.
    pub fn flush(&mut self) {
        if self.pushed > self.consumed {
            self.flush_until = Some(self.pushed);
        }
    }

    /// True while a [`Chunker::flush`] still has samples to emit.
    pub fn flush_pending(&self) -> bool {
        self.flush_until.is_some_and(|end| end > self.consumed)
    }

    /// Drops the backlog and any pending flush (e.g. on `input_audio_buffer.clear`); counted in
    /// [`Chunker::discarded_samples`], not as lost.
    pub fn clear(&mut self) {
        self.discarded += self.len as u64;
        self.consumed += self.len as u64;
        self.len = 0;
        self.head = 0;
        self.flush_until = None;
    }

    /// Samples waiting to be sent.
    pub fn backlog_samples(&self) -> usize {
        self.len
    }

    /// Samples lost to backlog overflow since construction.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped
    }

    /// Samples discarded on purpose by [`Chunker::clear`] since construction.
    pub fn discarded_samples(&self) -> u64 {
        self.discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_config() {
        let ok = ChunkerConfig::default();
        assert!(Chunker::new(ok).is_ok());
        assert_eq!(
            Chunker::new(ChunkerConfig { chunk_ms: 99, ..ok }).err(),
            Some(ChunkerError::ChunkTooShort {
                chunk_ms: 99,
                min_ms: 100
            })
        );
        assert_eq!(
            Chunker::new(ChunkerConfig {
                max_chunk_ms: 50,
                ..ok
            })
            .err(),
            Some(ChunkerError::MaxChunkBelowChunk {
                max_chunk_ms: 50,
                chunk_ms: 100
            })
        );
        assert_eq!(
            Chunker::new(ChunkerConfig {
                max_chunks_per_second: 0,
                ..ok
            })
            .err(),
            Some(ChunkerError::CannotKeepUp {
                max_chunks_per_second: 0,
                max_chunk_ms: 1000
            })
        );
        assert_eq!(
            Chunker::new(ChunkerConfig {
                max_backlog_ms: 500,
                ..ok
            })
            .err(),
            Some(ChunkerError::UnsupportedBacklog {
                max_backlog_ms: 500,
                max_chunk_ms: 1000
            })
        );
        assert_eq!(
            Chunker::new(ChunkerConfig {
                sample_rate: 0,
                ..ok
            })
            .err(),
            Some(ChunkerError::UnsupportedSampleRate { rate: 0 })
        );
    }

    #[test]
    fn emits_full_chunks_in_order_with_timestamps() {
        let mut c = Chunker::new(ChunkerConfig::default()).unwrap();
        let mut out = Vec::with_capacity(c.max_chunk_samples());
        let block: Vec<i16> = (0..1200).map(|i| i as i16).collect(); // 50 ms
        c.push(1_000, &block);
        assert_eq!(c.poll_chunk(1_050, &mut out), None);
        assert_eq!(c.next_ready_ms(1_050), None);
        c.push(1_050, &block);
        assert_eq!(c.next_ready_ms(1_100), Some(1_100));
        let info = c.poll_chunk(1_100, &mut out).unwrap();
        assert_eq!(info.samples, 2400);
        assert_eq!(info.captured_at_ms, 1_000);
        assert_eq!(info.duration_ms, 100);
        assert!(!info.ends_flush);
        assert_eq!(&out[..1200], &block[..]);
        assert_eq!(&out[1200..], &block[..]);
        assert_eq!(c.backlog_samples(), 0);
    }
}
