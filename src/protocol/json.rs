//! A small, strict JSON parser and writer, so the client needs no serde (size budget).
//!
//! - Parsing builds a [`Value`] tree that **borrows** from the input wherever a string has no
//!   escapes, so a long base64 audio delta is never copied by the parser.
//! - Objects keep their key order (a `Vec` of pairs); lookups take the first matching key.
//! - Numbers are `f64`; integers up to 2^53 are parsed exactly from their digits.
//! - Strings get full escape handling, including `\u` surrogate pairs; lone surrogates are errors.
//! - Nesting is limited to [`MAX_DEPTH`]; the caller checks the frame size before parsing
//!   ([`parse`] takes the limit), so a hostile frame cannot exhaust memory or the stack.
//!
//! The writer side is [`write_str`] (correct escaping) and [`Value::write`].

use std::borrow::Cow;
use std::fmt;

/// Maximum nesting of arrays and objects accepted by [`parse`]: realtime events nest about 6 deep.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value; strings borrow from the input unless they contained escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any number, as `f64` (integers up to 2^53 are exact).
    Number(f64),
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

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::TooLarge { len, max } => {
                write!(
                    f,
                    "JSON text of {len} bytes exceeds the limit of {max} bytes"
                )
            }
            JsonError::UnexpectedEnd { offset } => {
                write!(f, "JSON text ends early at byte {offset}")
            }
            JsonError::UnexpectedChar { offset, found } => {
                write!(f, "unexpected character {found:?} at byte {offset}")
            }
            JsonError::InvalidNumber { offset } => write!(f, "invalid number at byte {offset}"),
            JsonError::InvalidEscape { offset } => {
                write!(f, "invalid escape sequence at byte {offset}")
            }
            JsonError::ControlInString { offset } => {
                write!(f, "unescaped control character in string at byte {offset}")
            }
            JsonError::TooDeep { offset } => {
                write!(f, "nesting deeper than {MAX_DEPTH} at byte {offset}")
            }
            JsonError::TrailingCharacters { offset } => {
                write!(f, "unexpected data after the JSON value at byte {offset}")
            }
        }
    }
}

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
        match self.src[self.pos..].chars().next() {
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
        let mut i = self.pos;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => return Err(JsonError::InvalidNumber { offset: start }),
        }
        let int_end = i;
        let mut is_int = true;
        if b.get(i) == Some(&b'.') {
            is_int = false;
            i += 1;
            let d = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == d {
                return Err(JsonError::InvalidNumber { offset: start });
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            is_int = false;
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let d = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == d {
                return Err(JsonError::InvalidNumber { offset: start });
            }
        }
        self.pos = i;
        // Integers of up to 15 digits fit below 2^53 and convert exactly.
        if is_int && int_end - int_start <= 15 {
            let mut n: u64 = 0;
            for &d in &b[int_start..int_end] {
                n = n * 10 + u64::from(d - b'0');
            }
            let f = n as f64;
            return Ok(Value::Number(if neg { -f } else { f }));
        }
        // Out-of-range numbers (e.g. 1e999) would become infinity, which JSON cannot write back:
        // refused like any other invalid number (found by the parse_frame fuzz target).
        match self.src[start..i].parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            _ => Err(JsonError::InvalidNumber { offset: start }),
        }
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
                    return Ok(Cow::Borrowed(&self.src[start..i]));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => return Err(JsonError::ControlInString { offset: i }),
                Some(_) => i += 1,
            }
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.src[start..i]);
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
                    out.push_str(&self.src[run..i]);
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

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer that fits exactly.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n <= 9_007_199_254_740_992.0 => {
                Some(*n as u64)
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
            Value::Number(n) => write_f64(out, *n),
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
        out.push_str(&s[run..i]);
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
    out.push_str(&s[run..]);
    out.push('"');
}

/// Appends a number: integers without a fraction, non-finite values as `null` (JSON has none).
pub fn write_f64(out: &mut String, n: f64) {
    use std::fmt::Write;
    if !n.is_finite() {
        out.push_str("null");
    } else if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        // Exact integer below 2^53: print without ".0".
        let _ = write!(out, "{}", n as i64);
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut String, n: u64) {
    use std::fmt::Write;
    let _ = write!(out, "{n}");
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
        assert_eq!(p("-12.5e1").unwrap(), Value::Number(-125.0));
        assert_eq!(p("0").unwrap(), Value::Number(0.0));
        let v = p(r#"{"b":1,"a":[1,"x",{}],"b":2}"#).unwrap();
        assert_eq!(v.get("b"), Some(&Value::Number(1.0)));
        match &v {
            Value::Object(f) => {
                let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_ref()).collect();
                assert_eq!(keys, ["b", "a", "b"]);
            }
            _ => panic!("not an object"),
        }
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
        write_f64(&mut n, f64::NAN);
        assert_eq!(n, "null");
    }
}
