//! Text a plugin hands the host (errors, log lines, derived-event kinds) is other people's
//! input: before the host keeps it, logs it or shows it, it is cut to a bound and its control
//! characters are escaped, so no plugin can fill the disk with one error or forge a log line.

use std::borrow::Cow;

/// Longest plugin-supplied text the host keeps or logs, in bytes (before escaping).
pub const MAX_TEXT: usize = 1024;

/// `text` cut to [`MAX_TEXT`] bytes (at a character boundary, marked `…`) with line breaks
/// and other control characters escaped as `\n`, `\u{1b}`, …: one line, whatever was sent.
pub fn bounded(text: &str) -> Cow<'_, str> {
    let cut = match text.len() > MAX_TEXT {
        true => Some(text.floor_char_boundary(MAX_TEXT)),
        false => None,
    };
    let kept = &text[..cut.unwrap_or(text.len())];
    if cut.is_none() && !kept.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(kept.len() + 16);
    for c in kept.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    if let Some(cut) = cut {
        out.push_str(&format!("… ({} more bytes)", text.len() - cut));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_one_line_and_bounded() {
        assert!(matches!(bounded("plain text"), Cow::Borrowed("plain text")));
        assert_eq!(bounded("a\nINFO forged\r\tb\u{1b}[31m"), "a\\nINFO forged\\r\\tb\\u{1b}[31m");
        let huge = "é".repeat(50 << 20);
        let cut = bounded(&huge);
        assert!(cut.len() < MAX_TEXT + 64, "{}", cut.len());
        assert!(cut.ends_with(&format!("… ({} more bytes)", huge.len() - MAX_TEXT)), "{}", &cut[cut.len() - 40..]);
    }
}
