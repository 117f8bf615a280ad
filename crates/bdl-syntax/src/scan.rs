//! A tolerant scanner that runs before and around pest.
//!
//! Before parsing, [`prescan`] rejects what pest should never see: files above
//! [`crate::MAX_SOURCE_BYTES`], NUL bytes, unterminated strings and block comments, and bracket
//! nesting deeper than [`crate::MAX_NESTING`] (which would otherwise recurse without bound). It is
//! a single loop over the bytes, so it cannot overflow the stack whatever the input.
//!
//! When a whole-file parse fails, error recovery uses the splitting functions here to cut the
//! file into items, and a block into statements, so that each piece can be parsed on its own.
//! They skip strings and comments and track brackets, and they assume [`prescan`] found nothing.

use crate::{MAX_NESTING, MAX_SOURCE_BYTES};
use bdl_diagnostics::{Diagnostic, FileId, Span};
use std::ops::Range;

/// Checks the raw text for problems that must stop parsing, returning their diagnostics.
pub fn prescan(file: FileId, text: &str) -> Vec<Diagnostic> {
    let bytes = text.as_bytes();
    if bytes.len() > MAX_SOURCE_BYTES {
        let mut start = MAX_SOURCE_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let end = text[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
        return vec![Diagnostic::error(
            "E0009",
            format!(
                "source file is too large ({} bytes; the limit is {} bytes)",
                bytes.len(),
                MAX_SOURCE_BYTES
            ),
        )
        .with_label(
            Span::new(file, start..end),
            "the file goes on past the limit here",
        )
        .with_hint(
            "a model file holds the model only; put data in CSV or JSON files named by `data from`",
        )];
    }
    if let Some(position) = bytes.iter().position(|&byte| byte == 0) {
        return vec![Diagnostic::error("E0008", "the source contains a NUL byte")
            .with_label(Span::new(file, position..position + 1), "NUL byte here")
            .with_hint("the file may be binary or corrupted; a model file is plain UTF-8 text")];
    }
    let mut diagnostics = Vec::new();
    let mut open_brackets: Vec<usize> = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        match bytes[position] {
            b'"' => {
                let start = position;
                position += 1;
                loop {
                    match bytes.get(position) {
                        None | Some(b'\n') | Some(b'\r') => {
                            diagnostics.push(
                                Diagnostic::error("E0002", "unterminated string literal")
                                    .with_label(
                                        Span::new(file, start..start + 1),
                                        "this string is never closed",
                                    )
                                    .with_hint("close the string with `\"` on the same line"),
                            );
                            break;
                        }
                        Some(b'"') => {
                            position += 1;
                            break;
                        }
                        Some(b'\\') => position += 2,
                        Some(_) => position += 1,
                    }
                }
            }
            b'/' if bytes.get(position + 1) == Some(&b'/') => {
                while position < bytes.len() && bytes[position] != b'\n' {
                    position += 1;
                }
            }
            b'/' if bytes.get(position + 1) == Some(&b'*') => {
                let start = position;
                match text[position + 2..].find("*/") {
                    Some(offset) => position += 2 + offset + 2,
                    None => {
                        diagnostics.push(
                            Diagnostic::error("E0003", "unterminated block comment")
                                .with_label(
                                    Span::new(file, start..start + 2),
                                    "this comment is never closed",
                                )
                                .with_hint(
                                    "close the comment with `*/` (block comments do not nest)",
                                ),
                        );
                        position = bytes.len();
                    }
                }
            }
            b'(' | b'[' | b'{' => {
                open_brackets.push(position);
                if open_brackets.len() > MAX_NESTING {
                    let outermost = open_brackets[0];
                    diagnostics.push(
                        Diagnostic::error("E0006", "nesting too deep")
                            .with_label(
                                Span::new(file, position..position + 1),
                                format!(
                                    "this bracket is nested more than {MAX_NESTING} levels deep"
                                ),
                            )
                            .with_secondary(
                                Span::new(file, outermost..outermost + 1),
                                "the outermost bracket opens here",
                            )
                            .with_hint(
                                "split the expression with `let` bindings or helper functions",
                            ),
                    );
                    return diagnostics;
                }
                position += 1;
            }
            b')' | b']' | b'}' => {
                open_brackets.pop();
                position += 1;
            }
            _ => position += 1,
        }
    }
    diagnostics
}

/// Calls `visit` with the offset and value of every byte in `range` that lies outside strings
/// and comments. The newline ending a line comment is visited; newlines inside block comments
/// are not (a block comment does not end a statement).
fn for_each_code_byte(text: &str, range: Range<usize>, mut visit: impl FnMut(usize, u8) -> bool) {
    let bytes = text.as_bytes();
    let end = range.end.min(bytes.len());
    let mut position = range.start;
    while position < end {
        match bytes[position] {
            b'"' => {
                if !visit(position, b'"') {
                    return;
                }
                position += 1;
                while position < end && bytes[position] != b'"' && bytes[position] != b'\n' {
                    position += if bytes[position] == b'\\' { 2 } else { 1 };
                }
                position += 1;
            }
            b'/' if bytes.get(position + 1) == Some(&b'/') => {
                while position < end && bytes[position] != b'\n' {
                    position += 1;
                }
            }
            b'/' if bytes.get(position + 1) == Some(&b'*') => {
                position = text[position + 2..end]
                    .find("*/")
                    .map_or(end, |offset| position + 2 + offset + 2);
            }
            byte => {
                if !visit(position, byte) {
                    return;
                }
                position += 1;
            }
        }
    }
}

/// Whether `text` at `position` starts with one of `words` as a whole word.
fn starts_with_word(text: &str, position: usize, words: &[&str]) -> bool {
    let rest = &text.as_bytes()[position..];
    words.iter().any(|word| {
        rest.starts_with(word.as_bytes())
            && rest
                .get(word.len())
                .is_none_or(|&next| !(next.is_ascii_alphanumeric() || next == b'_'))
    })
}

/// The offset of the first non-blank byte at or after `position` on its line.
fn first_token(text: &str, mut position: usize, end: usize) -> usize {
    let bytes = text.as_bytes();
    while position < end && matches!(bytes[position], b' ' | b'\t' | b'\r') {
        position += 1;
    }
    position
}

/// Trims blank bytes (spaces, tabs, newlines, `;`) from both ends of a range.
fn trim(text: &str, range: Range<usize>) -> Range<usize> {
    let bytes = text.as_bytes();
    let (mut start, mut end) = (range.start, range.end);
    while start < end && matches!(bytes[start], b' ' | b'\t' | b'\r' | b'\n' | b';') {
        start += 1;
    }
    while end > start && matches!(bytes[end - 1], b' ' | b'\t' | b'\r' | b'\n' | b';') {
        end -= 1;
    }
    start..end
}

/// Whether a range holds only blanks and comments.
fn is_blank(text: &str, range: Range<usize>) -> bool {
    let mut blank = true;
    for_each_code_byte(text, range, |_, byte| {
        blank = matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | b';');
        blank
    });
    blank
}

/// Cuts a file into top-level items: a new item starts on every line whose first word is an
/// item keyword (`data`, `network`, `fn`, `model`, `infer`), whatever the bracket depth, so
/// that a missing `}` costs one item and not the rest of the file.
pub fn split_items(text: &str) -> Vec<Range<usize>> {
    const ITEM_WORDS: [&str; 5] = ["data", "network", "fn", "model", "infer"];
    let mut starts = vec![0];
    let mut at_line_start = true;
    for_each_code_byte(text, 0..text.len(), |position, byte| {
        if byte == b'\n' {
            at_line_start = true;
        } else if at_line_start && !matches!(byte, b' ' | b'\t' | b'\r') {
            at_line_start = false;
            if position > 0 && starts_with_word(text, position, &ITEM_WORDS) {
                starts.push(position);
            }
        }
        true
    });
    starts.push(text.len());
    starts
        .windows(2)
        .map(|pair| trim(text, pair[0]..pair[1]))
        .filter(|range| !is_blank(text, range.clone()))
        .collect()
}

/// Cuts the inside of a block (between its braces) into statements: at a newline or `;` outside
/// brackets, and also at a newline followed by a statement keyword even inside an unclosed
/// `(` or `[`, so that one missing `)` costs one statement.
pub fn split_statements(text: &str, range: Range<usize>) -> Vec<Range<usize>> {
    const STATEMENT_WORDS: [&str; 5] = ["let", "plate", "if", "for", "return"];
    let mut pieces = Vec::new();
    let mut start = range.start;
    let mut round_or_square = 0usize;
    let mut curly = 0usize;
    for_each_code_byte(text, range.clone(), |position, byte| {
        match byte {
            b'(' | b'[' => round_or_square += 1,
            b')' | b']' => round_or_square = round_or_square.saturating_sub(1),
            b'{' => curly += 1,
            b'}' => curly = curly.saturating_sub(1),
            b'\n' | b';' => {
                let keyword_follows = byte == b'\n' && {
                    let next = first_token(text, position + 1, range.end);
                    next < range.end && starts_with_word(text, next, &STATEMENT_WORDS)
                };
                if curly == 0 && (round_or_square == 0 || keyword_follows) {
                    round_or_square = 0;
                    pieces.push(start..position);
                    start = position + 1;
                }
            }
            _ => {}
        }
        true
    });
    pieces.push(start..range.end);
    pieces
        .into_iter()
        .map(|piece| trim(text, piece))
        .filter(|piece| !is_blank(text, piece.clone()))
        .collect()
}

/// A `{ ... }` group found at the top level of a piece of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BraceGroup {
    /// Offset of `{`.
    pub open: usize,
    /// Offset of the matching `}`, if there is one.
    pub close: Option<usize>,
}

/// The top-level brace groups of `range`, in order. Parentheses are not counted: braces never
/// belong inside them, and an unclosed `(` must not hide the `}` that closes a block.
pub fn brace_groups(text: &str, range: Range<usize>) -> Vec<BraceGroup> {
    let mut groups = Vec::new();
    let mut depth = 0usize;
    let mut open = None;
    for_each_code_byte(text, range, |position, byte| {
        match byte {
            b'{' => {
                if depth == 0 {
                    open = Some(position);
                }
                depth += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    if let Some(start) = open.take() {
                        groups.push(BraceGroup {
                            open: start,
                            close: Some(position),
                        });
                    }
                }
            }
            _ => {}
        }
        true
    });
    if let Some(start) = open {
        groups.push(BraceGroup {
            open: start,
            close: None,
        });
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_split_at_item_keywords_on_new_lines() {
        let text = "data {\n x: real\n}\nmodel {\n let a = (\n}\ninfer { }\n";
        let items: Vec<&str> = split_items(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(
            items,
            ["data {\n x: real\n}", "model {\n let a = (\n}", "infer { }"]
        );
    }

    #[test]
    fn statements_split_at_newlines_outside_brackets() {
        let text = "let a = f(1,\n 2)\nobserve(\"y\", d, y); let b = (\nlet c = 3";
        let pieces: Vec<&str> = split_statements(text, 0..text.len())
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(
            pieces,
            [
                "let a = f(1,\n 2)",
                "observe(\"y\", d, y)",
                "let b = (",
                "let c = 3"
            ]
        );
    }

    #[test]
    fn braces_inside_strings_and_comments_are_ignored() {
        let text = "plate(\"{\", N) /* { */ { a } else { b";
        let groups = brace_groups(text, 0..text.len());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].close, Some(text.find("a }").unwrap() + 2));
        assert_eq!(groups[1].close, None);
    }

    #[test]
    fn deep_nesting_is_reported_without_recursion() {
        let text = "(".repeat(20_000);
        let diagnostics = prescan(FileId(0), &text);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, "E0006");
    }
}
