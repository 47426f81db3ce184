//! Free text that users store (names, descriptions, metadata): any Unicode except control
//! characters. NUL in particular cannot be stored by PostgreSQL at all, and the others are
//! invisible in every listing, portal and log that shows the text. Payloads are not text in this
//! sense: they are kept byte for byte.

/// Which line breaks a kind of text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: names, metadata keys and values, flags.
    Single,
    /// Descriptions: tab, line feed and carriage return allowed.
    Multi,
}

/// The first control character `text` may not hold, with its position in characters (from 1).
pub fn forbidden_control(text: &str, lines: Lines) -> Option<(usize, char)> {
    text.chars().enumerate().find_map(|(i, c)| {
        let allowed = lines == Lines::Multi && matches!(c, '\t' | '\n' | '\r');
        (c.is_control() && !allowed).then_some((i + 1, c))
    })
}

/// What a 422 says about `(position, character)` from [`forbidden_control`].
pub fn describe_control((position, c): (usize, char)) -> String {
    format!(
        "must not contain control characters (U+{:04X} at character {position})",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_where_they_are() {
        assert_eq!(forbidden_control("Porto Books", Lines::Single), None);
        assert_eq!(forbidden_control("Café ☕ 東京", Lines::Single), None);
        assert_eq!(
            forbidden_control("a\u{0}b", Lines::Single),
            Some((2, '\u{0}'))
        );
        assert_eq!(
            forbidden_control("a\u{7f}", Lines::Multi),
            Some((2, '\u{7f}'))
        );
        assert_eq!(
            forbidden_control("\u{9b}x", Lines::Multi),
            Some((1, '\u{9b}'))
        );
        assert_eq!(
            forbidden_control("line\nnext", Lines::Single),
            Some((5, '\n'))
        );
        assert_eq!(forbidden_control("line\r\n\tnext", Lines::Multi), None);
        assert_eq!(
            forbidden_control("a\u{0}", Lines::Multi),
            Some((2, '\u{0}'))
        );
    }

    #[test]
    fn the_description_names_the_character_and_its_place() {
        assert_eq!(
            describe_control((2, '\u{0}')),
            "must not contain control characters (U+0000 at character 2)"
        );
    }
}
