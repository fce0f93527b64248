//! Printing for a terminal that text from files and from BuildKit reaches: a scenario's known-issue id,
//! a Dockerfile line in a lint fix or a step name can hold escape sequences that would repaint or
//! retitle the user's terminal. Everything printed goes through [`printable`], which shows control and
//! bidirectional-override characters as escapes (`\x1b`) instead of sending them.
//!
//! Printing also survives a closed stdout or stderr: `println!` panics when its stream is gone
//! (`bkcache run | head`), and a run that panics leaves its builders behind; these drop what cannot be
//! written instead, and the run goes on to remove what it created.

use std::borrow::Cow;

/// `text` with every control character but newline and tab, and every bidirectional override, written
/// as a visible escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match hidden(c) {
                true if (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
                true => format!("\\u{{{:x}}}", c as u32),
                false => c.to_string(),
            })
            .collect(),
    )
}

/// `print!`, escaped, ignoring a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), "{}", $crate::output::printable(&format!($($arg)*)));
    }};
}

/// `println!`, escaped, ignoring a closed stdout.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), "{}", $crate::output::printable(&format!($($arg)*)));
    }};
}

/// `eprintln!`, escaped, ignoring a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{}", $crate::output::printable(&format!($($arg)*)));
    }};
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(printable("plain\n\tline"), "plain\n\tline");
        assert_eq!(printable("\x1b]0;owned\x07title"), "\\x1b]0;owned\\x07title");
        assert_eq!(printable("a\u{9b}31mb\rc"), "a\\x9b31mb\\x0dc");
        assert_eq!(printable("evil\u{202e}txt.sh"), "evil\\u{202e}txt.sh");
    }
}
