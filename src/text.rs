//! Messages from pieces of text and numbers without `core::fmt`'s machinery: a `format!` or a
//! `write!` with arguments links the formatting engine, integer padding and, for `{:?}`, the
//! Unicode escape tables (several KB of wasm). Error `Display` impls and the session's messages
//! are built with [`concat`] or [`write_parts`] instead; the text is the same.

use std::fmt;

/// A piece of a message.
#[derive(Clone, Copy)]
pub enum Part<'a> {
    /// Literal text.
    S(&'a str),
    /// An unsigned integer in decimal.
    N(u64),
    /// An unsigned integer in upper-case hexadecimal, zero-padded to the given number of digits.
    Hex(u64, u8),
    /// A string in double quotes with `"` and `\` escaped (what `{:?}` shows for printable text).
    Quoted(&'a str),
}

/// Writes the pieces to `w` (a `String` or a `Formatter`).
pub fn write_parts<W: fmt::Write + ?Sized>(w: &mut W, parts: &[Part<'_>]) -> fmt::Result {
    for p in parts {
        match *p {
            Part::S(s) => w.write_str(s)?,
            Part::N(n) => w.write_str(digits(n, 10, 1, &mut [0; 20]))?,
            Part::Hex(n, width) => w.write_str(digits(n, 16, usize::from(width), &mut [0; 20]))?,
            Part::Quoted(s) => {
                w.write_str("\"")?;
                let mut start = 0;
                for (i, b) in s.bytes().enumerate() {
                    if b == b'"' || b == b'\\' {
                        w.write_str(s.get(start..i).unwrap_or(""))?;
                        w.write_str(if b == b'"' { "\\\"" } else { "\\\\" })?;
                        start = i + 1;
                    }
                }
                w.write_str(s.get(start..).unwrap_or(""))?;
                w.write_str("\"")?;
            }
        }
    }
    Ok(())
}

/// An error's message, written without a `Formatter`: `to_string()` would build one and link
/// `core::fmt::write` for every error type. `Display` writes it, so the text is the same.
pub trait Message {
    /// Appends the message to `out`.
    fn write_message(&self, out: &mut String) -> fmt::Result;

    /// The message as a new `String` (what `to_string()` gives).
    fn message(&self) -> String {
        let mut s = String::new();
        let _ = self.write_message(&mut s);
        s
    }
}

/// `Display` for an error type whose text is its [`Message`]: the same text, for `{}` and
/// `to_string()` in native code (the wasm package calls `message()`).
macro_rules! display_by_message {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::text::Message::message(self))
            }
        }
    };
}
pub(crate) use display_by_message;

/// The pieces as a new `String`.
pub fn concat(parts: &[Part<'_>]) -> String {
    let mut s = String::new();
    let _ = write_parts(&mut s, parts);
    s
}

/// Appends an unsigned integer in decimal.
pub fn push_u64(out: &mut String, n: u64) {
    out.push_str(digits(n, 10, 1, &mut [0; 20]));
}

/// `n` in `base` (10 or 16), at least `width` digits, in `buf`'s tail.
fn digits(mut n: u64, base: u64, width: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width.max(1) {
        i -= 1;
        buf[i] = b"0123456789ABCDEF"[(n % base) as usize];
        n /= base;
        if i == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_match_format() {
        for n in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(concat(&[Part::N(n)]), format!("{n}"));
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        for (n, w) in [
            (0u64, 2u8),
            (0x1f, 2),
            (0xab, 4),
            (0x10ffff, 4),
            (u64::MAX, 2),
        ] {
            assert_eq!(
                concat(&[Part::Hex(n, w)]),
                format!("{n:0width$X}", width = usize::from(w))
            );
        }
        assert_eq!(concat(&[Part::S("a "), Part::N(3), Part::S(" b")]), "a 3 b");
    }

    #[test]
    fn quoted_matches_debug_for_quotes_and_backslashes() {
        for s in ["", "plain", "say \"hi\"", "back\\slash", "\"\\\"", "ünï"] {
            assert_eq!(concat(&[Part::Quoted(s)]), format!("{s:?}"));
        }
    }
}
