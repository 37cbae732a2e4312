//! Level meter: RMS and peak of a block in dBFS, for UI meters (not for any decision).

/// Level of one block of samples, in dB relative to full scale (1.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Root-mean-square level in dBFS (a full-scale sine reads about -3.01).
    pub rms_dbfs: f32,
    /// Absolute peak in dBFS.
    pub peak_dbfs: f32,
}

impl Level {
    /// The floor reported for silence (and empty blocks), so meters need no `-inf` case.
    pub const FLOOR_DBFS: f32 = -100.0;

    /// The level of silence: both values at [`Level::FLOOR_DBFS`].
    pub const SILENCE: Level = Level {
        rms_dbfs: Self::FLOOR_DBFS,
        peak_dbfs: Self::FLOOR_DBFS,
    };

    /// The level of linear RMS and peak amplitudes (full scale 1.0), e.g. as measured by the
    /// playback worklet; non-finite or non-positive values read as the floor.
    pub fn from_linear(rms: f32, peak: f32) -> Level {
        let db = |x: f32| {
            if x.is_finite() && x > 0.0 {
                to_dbfs(f64::from(x))
            } else {
                Self::FLOOR_DBFS
            }
        };
        Level {
            rms_dbfs: db(rms),
            peak_dbfs: db(peak),
        }
    }
}

/// Measures RMS and peak of `samples` (full scale 1.0). NaN samples are ignored; values below
/// [`Level::FLOOR_DBFS`] read as the floor.
pub fn measure_level(samples: &[f32]) -> Level {
    let mut sum = 0.0f64;
    let mut peak = 0.0f32;
    let mut n = 0usize;
    for &x in samples {
        if x.is_nan() {
            continue;
        }
        sum += f64::from(x) * f64::from(x);
        peak = peak.max(x.abs());
        n += 1;
    }
    if n == 0 {
        return Level::SILENCE;
    }
    Level {
        rms_dbfs: to_dbfs((sum / n as f64).sqrt()),
        peak_dbfs: to_dbfs(f64::from(peak)),
    }
}

fn to_dbfs(amplitude: f64) -> f32 {
    let db = 20.0 * amplitude.log10();
    // log10(0) is -inf, which `max` turns into the floor as well.
    (db as f32).max(Level::FLOOR_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_empty_read_the_floor() {
        assert_eq!(measure_level(&[]), Level::SILENCE);
        assert_eq!(measure_level(&[0.0; 128]), Level::SILENCE);
        assert_eq!(measure_level(&[f32::NAN; 4]), Level::SILENCE);
    }

    #[test]
    fn full_scale_sine_and_square() {
        let sine: Vec<f32> = (0..4800)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48000.0).sin())
            .collect();
        let l = measure_level(&sine);
        assert!((l.rms_dbfs - (-3.0103)).abs() < 0.01, "{l:?}");
        assert!(l.peak_dbfs.abs() < 0.01, "{l:?}");
        let square: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect();
        let l = measure_level(&square);
        assert!((l.rms_dbfs - (-6.0206)).abs() < 0.001, "{l:?}");
        assert!((l.peak_dbfs - (-6.0206)).abs() < 0.001, "{l:?}");
    }
}
