//! A small, strict JSON parser and writer, so the client needs no serde (size budget).
//!
//! - Parsing builds a [`Value`] tree that **borrows** from the input wherever a string has no
//!   escapes, so a long base64 audio delta is never copied by the parser.
//! - Objects keep their key order (a `Vec` of pairs); lookups take the first matching key.
//! - Numbers keep their source text (validated against the JSON grammar), so writing a value back
//!   reproduces it exactly; [`Value::as_u64`] reads integers exactly, [`Value::as_f64`] converts
//!   (correctly rounded for up to 15 significant digits and exponents within ±22, within a few
//!   ulp beyond). No `core` float parser or printer is linked: they cost ~20 KB of gzipped wasm.
//! - Strings get full escape handling, including `\u` surrogate pairs; lone surrogates are errors.
//! - Nesting is limited to [`MAX_DEPTH`]; the caller checks the frame size before parsing
//!   ([`parse`] takes the limit), so a hostile frame cannot exhaust memory or the stack.
//!
//! The writer side is [`write_str`] (correct escaping) and [`Value::write`].

use std::borrow::Cow;
use std::fmt;

use crate::text::{write_parts, Message, Part::*};

/// Maximum nesting of arrays and objects accepted by [`parse`]: realtime events nest about 6 deep.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value; strings borrow from the input unless they contained escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any number, as its source text (see [`Value::as_f64`] and [`Value::as_u64`]).
    Number(&'a str),
    /// A string, borrowed from the input when it had no escape sequences.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Value<'a>>),
    /// An object, keys in input order.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// Why a JSON text was rejected, with the byte offset where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The text is longer than the configured limit (checked before parsing).
    TooLarge {
        /// Length of the text in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The text ended in the middle of a value.
    UnexpectedEnd {
        /// Byte offset of the end.
        offset: usize,
    },
    /// A character that cannot start or continue a value here.
    UnexpectedChar {
        /// Byte offset of the character.
        offset: usize,
        /// The character found.
        found: char,
    },
    /// A malformed number.
    InvalidNumber {
        /// Byte offset where the number starts.
        offset: usize,
    },
    /// A malformed escape sequence or a lone UTF-16 surrogate.
    InvalidEscape {
        /// Byte offset of the backslash.
        offset: usize,
    },
    /// A raw control character (below U+0020) inside a string.
    ControlInString {
        /// Byte offset of the character.
        offset: usize,
    },
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Byte offset of the opening bracket that went too deep.
        offset: usize,
    },
    /// Non-whitespace after the top-level value.
    TrailingCharacters {
        /// Byte offset of the first extra character.
        offset: usize,
    },
}

impl Message for JsonError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        let (what, offset) = match *self {
            JsonError::TooLarge { len, max } => {
                return write_parts(
                    out,
                    &[
                        S("JSON text of "),
                        N(len as u64),
                        S(" bytes exceeds the limit of "),
                        N(max as u64),
                        S(" bytes"),
                    ],
                )
            }
            JsonError::UnexpectedChar { offset, found } => {
                return write_parts(
                    out,
                    &[
                        S("unexpected character U+"),
                        Hex(u64::from(u32::from(found)), 4),
                        S(" at byte "),
                        N(offset as u64),
                    ],
                )
            }
            JsonError::TooDeep { offset } => {
                return write_parts(
                    out,
                    &[
                        S("nesting deeper than "),
                        N(MAX_DEPTH as u64),
                        S(" at byte "),
                        N(offset as u64),
                    ],
                )
            }
            JsonError::UnexpectedEnd { offset } => ("JSON text ends early", offset),
            JsonError::InvalidNumber { offset } => ("invalid number", offset),
            JsonError::InvalidEscape { offset } => ("invalid escape sequence", offset),
            JsonError::ControlInString { offset } => {
                ("unescaped control character in string", offset)
            }
            JsonError::TrailingCharacters { offset } => {
                ("unexpected data after the JSON value", offset)
            }
        };
        write_parts(out, &[S(what), S(" at byte "), N(offset as u64)])
    }
}

crate::text::display_by_message!(JsonError);

impl std::error::Error for JsonError {}

/// Parses one JSON text of at most `max_len` bytes (checked first, before any work).
pub fn parse(text: &str, max_len: usize) -> Result<Value<'_>, JsonError> {
    if text.len() > max_len {
        return Err(JsonError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    let mut p = Parser {
        src: text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(JsonError::TrailingCharacters { offset: p.pos });
    }
    Ok(v)
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> JsonError {
        match self.src.get(self.pos..).unwrap_or("").chars().next() {
            Some(found) => JsonError::UnexpectedChar {
                offset: self.pos,
                found,
            },
            None => JsonError::UnexpectedEnd { offset: self.pos },
        }
    }

    fn expect_lit(&mut self, lit: &str, v: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            Ok(v)
        } else {
            // Point at the first byte that differs.
            let mut i = 0;
            while self.bytes.get(self.pos + i) == lit.as_bytes().get(i) {
                i += 1;
            }
            self.pos += i;
            Err(self.unexpected())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        match self.bytes.get(self.pos) {
            None => Err(JsonError::UnexpectedEnd { offset: self.pos }),
            Some(b'n') => self.expect_lit("null", Value::Null),
            Some(b't') => self.expect_lit("true", Value::Bool(true)),
            Some(b'f') => self.expect_lit("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep { offset: self.pos });
                }
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(self.unexpected()),
                    }
                }
            }
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep { offset: self.pos });
                }
                self.pos += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Value::Object(fields));
                }
                loop {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(self.unexpected());
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b':') {
                        return Err(self.unexpected());
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let v = self.value(depth + 1)?;
                    fields.push((key, v));
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::Object(fields));
                        }
                        _ => return Err(self.unexpected()),
                    }
                }
            }
            Some(_) => Err(self.unexpected()),
        }
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.pos;
        let b = self.bytes;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            i
        };
        let mut i = self.pos + usize::from(b.get(self.pos) == Some(&b'-'));
        i = match b.get(i) {
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i),
            _ => return Err(JsonError::InvalidNumber { offset: start }),
        };
        if b.get(i) == Some(&b'.') {
            let d = i + 1;
            i = digits(d);
            if i == d {
                return Err(JsonError::InvalidNumber { offset: start });
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let d = i;
            i = digits(d);
            if i == d {
                return Err(JsonError::InvalidNumber { offset: start });
            }
        }
        self.pos = i;
        let text = self.src.get(start..i).unwrap_or("");
        // Out-of-range numbers (e.g. 1e999) would be infinite as f64: refused like any other
        // invalid number, as strict parsers do (found by the parse_frame fuzz target).
        if convert_number(text).0.is_none() {
            return Err(JsonError::InvalidNumber { offset: start });
        }
        Ok(Value::Number(text))
    }

    /// Parses a string starting at the opening quote; borrows when there are no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let b = self.bytes;
        let mut i = start;
        // Fast path: scan to the closing quote; stop at the first escape.
        loop {
            match b.get(i) {
                None => return Err(JsonError::UnexpectedEnd { offset: i }),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Cow::Borrowed(self.src.get(start..i).unwrap_or("")));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => return Err(JsonError::ControlInString { offset: i }),
                Some(_) => i += 1,
            }
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(self.src.get(start..i).unwrap_or(""));
        loop {
            match b.get(i) {
                None => return Err(JsonError::UnexpectedEnd { offset: i }),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    let esc_at = i;
                    let e = *b
                        .get(i + 1)
                        .ok_or(JsonError::UnexpectedEnd { offset: i + 1 })?;
                    i += 2;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4(i, esc_at)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    return Err(JsonError::InvalidEscape { offset: esc_at });
                                }
                                let lo = self.hex4(i + 2, esc_at)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::InvalidEscape { offset: esc_at });
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or(JsonError::InvalidEscape { offset: esc_at })?
                        }
                        _ => return Err(JsonError::InvalidEscape { offset: esc_at }),
                    };
                    out.push(c);
                }
                Some(&c) if c < 0x20 => return Err(JsonError::ControlInString { offset: i }),
                Some(_) => {
                    // Copy the run up to the next quote or backslash in one go.
                    let run = i;
                    while let Some(&c) = b.get(i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        i += 1;
                    }
                    out.push_str(self.src.get(run..i).unwrap_or(""));
                }
            }
        }
    }

    fn hex4(&self, at: usize, esc_at: usize) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .ok_or(JsonError::UnexpectedEnd { offset: at })?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(JsonError::InvalidEscape { offset: esc_at }),
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }
}

impl<'a> Value<'a> {
    /// The value of the first field named `key`, if this is an object that has one.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes and returns the first field named `key` (moves a string out without copying).
    pub fn take(&mut self, key: &str) -> Option<Value<'a>> {
        match self {
            Value::Object(fields) => {
                let i = fields.iter().position(|(k, _)| k == key)?;
                Some(std::mem::replace(&mut fields[i].1, Value::Null))
            }
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as `f64`, if this is one (see the module docs for the accuracy).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(t) => number_to_f64(t),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer that fits exactly: plain digits
    /// up to `u64::MAX`, or any other spelling (`1e3`, `2.0`) whose value is an integer ≤ 2^53.
    pub fn as_u64(&self) -> Option<u64> {
        let Value::Number(t) = self else {
            return None;
        };
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return t.bytes().try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
        }
        match number_to_f64(t) {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0 => {
                Some(n as u64)
            }
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Appends this value as compact JSON to `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(t) => out.push_str(t),
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// This value as compact JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

/// Appends `s` as a JSON string literal (quotes included), escaping `"`, `\` and control chars.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(run..i).unwrap_or(""));
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        run = i + 1;
    }
    out.push_str(s.get(run..).unwrap_or(""));
    out.push('"');
}

/// Appends `n` rounded to `decimals` (at most 12) fractional digits, trailing zeros trimmed;
/// non-finite values as `null` (JSON has none). Avoids `core`'s float printer (~7 KB gz).
pub fn write_fixed(out: &mut String, n: f64, decimals: u32) {
    if !n.is_finite() {
        out.push_str("null");
        return;
    }
    let decimals = decimals.min(12);
    let scale = 10u64.pow(decimals);
    // `as` saturates: magnitudes beyond u64 after scaling are clamped (far outside our uses).
    let v = (n.abs() * scale as f64 + 0.5).floor() as u64;
    if n < 0.0 && v > 0 {
        out.push('-');
    }
    write_u64(out, v / scale);
    let mut frac = v % scale;
    if frac > 0 {
        let mut digits = decimals;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        out.push('.');
        let text_len = {
            let mut t = 1;
            let mut x = frac;
            while x >= 10 {
                x /= 10;
                t += 1;
            }
            t
        };
        for _ in text_len..digits {
            out.push('0');
        }
        write_u64(out, frac);
    }
}

/// Converts JSON number text (already validated) to `f64`; `None` when out of range or when
/// it cannot be converted exactly enough.
///
/// Up to 19 significant digits are kept in a `u64`, then scaled by a power of ten: a single,
/// correctly rounded operation when the digits fit 2^53 and the exponent is within ±22 (all our
/// uses), a few ulp at worst otherwise. Digits beyond the 19th only move the exponent, so a
/// long run of trailing zeros stays exact; a non-zero digit there would need arbitrary
/// precision, and such a number is refused (`None`) rather than misread. The work is bounded by
/// the text's length, never by the exponent's value (exponents saturate).
pub fn number_to_f64(text: &str) -> Option<f64> {
    match convert_number(text) {
        (Some(v), false) => Some(v),
        _ => None,
    }
}

/// The number's value (`None` when out of range) and whether digits past the 19th were
/// ignored.
fn convert_number(text: &str) -> (Option<f64>, bool) {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    /// Beyond any exponent an `f64` can use, with room to add digit counts without overflow.
    const EXP_CAP: i64 = 1 << 40;
    let b = text.as_bytes();
    let neg = b.first() == Some(&b'-');
    let mut i = usize::from(neg);
    let mut mant: u64 = 0;
    let mut digits = 0u32;
    let mut exp10: i64 = 0;
    let mut seen_point = false;
    let mut inexact = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                if digits < 19 {
                    mant = mant * 10 + u64::from(c - b'0');
                    if mant > 0 {
                        digits += 1;
                    }
                    if seen_point {
                        exp10 -= 1;
                    }
                } else {
                    inexact |= c != b'0';
                    if !seen_point {
                        exp10 += 1;
                    }
                }
            }
            b'.' => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let eneg = b.get(i) == Some(&b'-');
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            e = (e * 10 + i64::from(c - b'0')).min(EXP_CAP);
            i += 1;
        }
        exp10 = exp10.saturating_add(if eneg { -e } else { e });
    }
    let zero = if neg { -0.0 } else { 0.0 };
    if mant == 0 {
        return (Some(zero), false);
    }
    // Clinger's extended fast path: move excess exponent into the integer while it stays exact
    // (at most 19 steps: the mantissa grows tenfold each time).
    while exp10 > 22 && mant <= (1u64 << 53) / 10 {
        mant *= 10;
        exp10 -= 1;
    }
    // Past these, the result is infinite or zero whatever the (at most 19) digits.
    if exp10 > 330 {
        return (None, inexact);
    }
    if exp10 < -360 {
        return (Some(zero), inexact);
    }
    let mut v = mant as f64;
    let mut e = exp10;
    while e > 22 {
        v *= 1e22;
        e -= 22;
    }
    while e < -22 {
        v /= 1e22;
        e += 22;
    }
    let p = POW10[e.unsigned_abs() as usize];
    v = if e >= 0 { v * p } else { v / p };
    if !v.is_finite() {
        return (None, inexact);
    }
    (Some(if neg { -v } else { v }), inexact)
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut String, n: u64) {
    crate::text::push_u64(out, n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Value<'_>, JsonError> {
        parse(s, 1 << 20)
    }

    #[test]
    fn parses_scalars_and_containers() {
        assert_eq!(p("null").unwrap(), Value::Null);
        assert_eq!(p(" true ").unwrap(), Value::Bool(true));
        assert_eq!(p("-12.5e1").unwrap().as_f64(), Some(-125.0));
        assert_eq!(p("0").unwrap(), Value::Number("0"));
        let v = p(r#"{"b":1,"a":[1,"x",{}],"b":2}"#).unwrap();
        assert_eq!(v.get("b"), Some(&Value::Number("1")));
        match &v {
            Value::Object(f) => {
                let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_ref()).collect();
                assert_eq!(keys, ["b", "a", "b"]);
            }
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn huge_exponents_cost_nothing_and_long_mantissas_are_exact_or_refused() {
        assert_eq!(number_to_f64("0e99999"), Some(0.0));
        assert_eq!(number_to_f64("-0.000e-99999999999999999999"), Some(-0.0));
        assert_eq!(number_to_f64("1e99999999999999999999"), None);
        assert_eq!(number_to_f64("1e-99999999999999999999"), Some(0.0));
        // 1 followed by 100,001 zeros, times 10^-100,001: exactly 1.
        let mut t = String::from("1");
        t.extend(std::iter::repeat_n('0', 100_001));
        t.push_str("e-100001");
        assert_eq!(number_to_f64(&t), Some(1.0));
        // The same digits with a non-zero one past the 19th: refused, not misread.
        let mut t = String::from("1");
        t.extend(std::iter::repeat_n('0', 50));
        t.push_str("7e-50");
        assert_eq!(number_to_f64(&t), None);
        assert!(p(&t).is_ok(), "valid JSON: only its f64 reading is refused");
        assert_eq!(
            number_to_f64("1234567890123456789"),
            Some(1234567890123456789.0)
        );
        assert_eq!(number_to_f64("5e-324"), Some(5e-324));
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(
            p("9007199254740993").unwrap().as_f64(),
            Some(9007199254740992.0)
        );
        assert_eq!(
            p("123456789012345").unwrap().as_u64(),
            Some(123_456_789_012_345)
        );
        assert_eq!(
            p("4503599627370497").unwrap().as_u64(),
            Some(4_503_599_627_370_497)
        );
        assert_eq!(p("-0").unwrap().as_f64(), Some(0.0));
        assert_eq!(p("1.5").unwrap().as_u64(), None);
    }

    #[test]
    fn numbers_keep_their_text_and_convert_accurately() {
        let v = p(r#"[0.8,1e3,-0.0,1E-2,123456789012345678901234567890]"#).unwrap();
        assert_eq!(
            v.to_json(),
            "[0.8,1e3,-0.0,1E-2,123456789012345678901234567890]"
        );
        assert_eq!(p("1e3").unwrap().as_u64(), Some(1000));
        assert_eq!(p("18446744073709551615").unwrap().as_u64(), Some(u64::MAX));
        assert_eq!(p("18446744073709551616").unwrap().as_u64(), None);
        // Against std's correctly rounded parser, over many shapes of number.
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mant = (x >> 11) % 10u64.pow(((x >> 3) % 16) as u32 + 1);
            let frac = ((x >> 40) % 8) as usize;
            let exp = ((x >> 50) % 61) as i64 - 30;
            let mut t = mant.to_string();
            let frac = if frac > 0 && frac < t.len() { frac } else { 0 };
            if frac > 0 {
                t.insert(t.len() - frac, '.');
            }
            let t = format!("{t}e{exp}");
            let want: f64 = t.parse().unwrap();
            let got = number_to_f64(&t).unwrap();
            let digits = mant.to_string().trim_start_matches('0').len();
            let e = exp - frac as i64;
            if digits <= 15 && (-22..=22).contains(&e) {
                assert_eq!(got, want, "{t}");
            } else {
                assert!(
                    (got - want).abs() <= want.abs() * 4.0 * f64::EPSILON,
                    "{t}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        match p(r#""abc""#).unwrap() {
            Value::String(Cow::Borrowed(s)) => assert_eq!(s, "abc"),
            other => panic!("expected borrowed, got {other:?}"),
        }
        let v = p(r#""a\"b\\c\/\n\u00e9\ud83d\ude00z""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"b\\c/\né😀z"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "nul",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "1e",
            "-",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}b\"",
            "[1] 2",
            "{a:1}",
            "'x'",
            "NaN",
            "+1",
            "[",
            "{\"a\":",
            "1e999",
            "-1e400",
        ] {
            assert!(p(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn depth_and_size_limits() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(p(&deep), Err(JsonError::TooDeep { .. })));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(p(&ok).is_ok());
        assert_eq!(
            parse("[1,2,3]", 3),
            Err(JsonError::TooLarge { len: 7, max: 3 })
        );
    }

    #[test]
    fn writer_round_trips() {
        let src = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}é😀";
        let mut out = String::new();
        write_str(&mut out, src);
        assert_eq!(out, "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001fé😀\"");
        assert_eq!(p(&out).unwrap().as_str(), Some(src));
        let v = p(r#"{"a":[1,2.5,-3,true,null,"x"],"b":{}}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"a":[1,2.5,-3,true,null,"x"],"b":{}}"#);
        let mut n = String::new();
        write_fixed(&mut n, f64::NAN, 9);
        assert_eq!(n, "null");
        for (x, d, want) in [
            (0.0125, 9, "0.0125"),
            (3.0, 9, "3"),
            (-2.5, 1, "-2.5"),
            (0.000_000_4, 9, "0.0000004"),
            (1_234.000_000_000_4, 9, "1234"),
            (-0.000_000_000_1, 9, "0"),
            (0.1 + 0.2, 9, "0.3"),
        ] {
            let mut o = String::new();
            write_fixed(&mut o, x, d);
            assert_eq!(o, want, "{x}");
        }
    }
}
