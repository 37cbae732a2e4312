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
                power_db(x * x).max(Self::FLOOR_DBFS)
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
        rms_dbfs: power_db((sum / n as f64) as f32).max(Level::FLOOR_DBFS),
        peak_dbfs: power_db(peak * peak).max(Level::FLOOR_DBFS),
    }
}

/// 10·log10 of a power (`-inf` for 0 or less, and for non-finite input), computed from the
/// float's exponent and a short series for the mantissa's log (error below 1e-5 dB), so that
/// no libm `log10` lands in the wasm package.
pub(crate) fn power_db(power: f32) -> f32 {
    if !(power > 0.0 && power.is_finite()) {
        return f32::NEG_INFINITY;
    }
    let bits = power.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    // Subnormals read as the smallest normal's exponent: far below any floor used.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // mantissa in [1, 2)
                                                                // ln(m) = 2·atanh(s), s = (m − 1)/(m + 1) ≤ 1/3: five terms of the series.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 / 9.0))));
    // 10·log10(x) = 10·log10(2)·exp + 10/ln(10)·ln(m)
    3.010_3 * exp as f32 + 4.342_945 * ln_m
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
    fn power_db_matches_log10() {
        for i in 0..4_000 {
            let p = 10f32.powf(-12.0 + i as f32 * 0.003_3);
            let want = 10.0 * f64::from(p).log10();
            let got = f64::from(power_db(p));
            assert!((got - want).abs() < 1e-4, "{p:e}: {got} vs {want}");
        }
        assert_eq!(power_db(0.0), f32::NEG_INFINITY);
        assert_eq!(power_db(-1.0), f32::NEG_INFINITY);
        assert_eq!(power_db(f32::NAN), f32::NEG_INFINITY);
        assert_eq!(power_db(f32::INFINITY), f32::NEG_INFINITY);
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
