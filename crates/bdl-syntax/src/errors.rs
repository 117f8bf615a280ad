//! Turns pest's parse errors into diagnostics a user understands: the location, what was found
//! there, what was expected (grammar rule names mapped to words), and a hint.

use crate::grammar::Rule;
use bdl_diagnostics::{Diagnostic, FileId, Span};
use pest::error::{ErrorVariant, InputLocation};
use std::collections::BTreeSet;

/// Words for what a rule expects, or `None` for rules that never head an error message.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::ident | Rule::named_arg => "a name",
        Rule::expr | Rule::inner | Rule::expr_stmt | Rule::paren | Rule::list | Rule::neg => {
            "an expression"
        }
        Rule::not | Rule::boolean | Rule::none => "an expression",
        Rule::int | Rule::real | Rule::bound_value => "a number",
        Rule::string | Rule::sources | Rule::string_list => "a string",
        Rule::range
        | Rule::or
        | Rule::and
        | Rule::eq
        | Rule::ne
        | Rule::le
        | Rule::ge
        | Rule::lt
        | Rule::gt
        | Rule::add
        | Rule::sub
        | Rule::pow
        | Rule::mul
        | Rule::div
        | Rule::rem
        | Rule::matmul => "an operator",
        Rule::call_args => "`(`",
        Rule::index_args | Rule::dims => "`[`",
        Rule::index_item => "an index",
        Rule::colon => "`:`",
        Rule::comprehension => "`for`",
        Rule::block | Rule::data_body | Rule::infer_body => "`{`",
        Rule::data_block
        | Rule::network_decl
        | Rule::fn_decl
        | Rule::model_block
        | Rule::infer_block
        | Rule::kw_data
        | Rule::kw_network
        | Rule::kw_fn
        | Rule::kw_model
        | Rule::kw_infer => "an item (`data`, `network`, `fn`, `model` or `infer`)",
        Rule::let_stmt
        | Rule::assign_stmt
        | Rule::plate_stmt
        | Rule::if_stmt
        | Rule::for_stmt
        | Rule::return_stmt
        | Rule::kw_let
        | Rule::kw_plate
        | Rule::kw_if
        | Rule::kw_for
        | Rule::kw_return => "a statement",
        Rule::kw_from => "`from`",
        Rule::kw_as => "`as`",
        Rule::kw_else => "`else`",
        Rule::kw_in => "`in`",
        Rule::data_decl => "a declaration `name: type`",
        Rule::data_type | Rule::base_type => "a type (`int`, `real`, `vector` or `matrix`)",
        Rule::bounds => "`<`",
        Rule::bound => "a bound (`lower=...` or `upper=...`)",
        Rule::setting => "a setting `name = value`",
        Rule::params => "`(`",
        _ => return None,
    })
}

/// The literal tokens worth naming in an "expected ..." list.
const PUNCTUATION: [&str; 13] = [
    ")", "]", "}", "{", ",", "=", ":", "\n", "\r\n", ";", "as", "in", "else",
];

/// Words for a literal token the parser tried.
fn describe_token(token: &str) -> String {
    match token {
        "\n" | "\r\n" | "\r" | ";" => "a line break or `;`".to_string(),
        other => format!("`{other}`"),
    }
}

/// What the text at `position` looks like, for "unexpected ..." messages: the token there and
/// its length in bytes.
fn found_at(text: &str, position: usize) -> (String, usize) {
    let rest = text.get(position..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if first == '\n' || rest.starts_with("\r\n") {
        return ("a line break".to_string(), 1);
    }
    if first.is_ascii_digit() {
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let mut length = digits(rest);
        if rest[length..].starts_with('.')
            && rest[length + 1..].starts_with(|c: char| c.is_ascii_digit())
        {
            length += 1 + digits(&rest[length + 1..]);
        }
        return (format!("number `{}`", &rest[..length]), length);
    }
    if first.is_ascii_alphanumeric() || first == '_' {
        let length = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..length];
        if crate::KEYWORDS.contains(&word) {
            return (format!("keyword `{word}`"), length);
        }
        return (format!("`{word}`"), length);
    }
    for operator in ["==", "!=", "<=", ">=", "**", "..", "//", "/*"] {
        if rest.starts_with(operator) {
            return (format!("`{operator}`"), 2);
        }
    }
    if first == '"' {
        return ("a string".to_string(), 1);
    }
    let shown = if first.is_control() || first == '\u{fffd}' {
        format!("character U+{:04X}", u32::from(first))
    } else {
        format!("`{first}`")
    };
    (shown, first.len_utf8())
}

/// If `position` is a blank just after a keyword, the keyword's start.
fn keyword_ending_at(text: &str, position: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if !matches!(
        bytes.get(position),
        Some(b' ' | b'\t' | b'\n' | b'\r') | None
    ) {
        return None;
    }
    let before = text.get(..position)?;
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |index| index + 1);
    let word = &before[start..];
    (!word.is_empty() && crate::KEYWORDS.contains(&word)).then_some(start)
}

/// Joins alternatives as "a, b or c".
fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {}", rest.join(", "), last),
    }
}

/// The diagnostic for a pest error raised while parsing `piece`, which starts at `offset` in
/// `file`.
///
/// `text` is the whole file, so that an error at the end of a piece shows what follows it.
pub(crate) fn syntax_error(
    file: FileId,
    text: &str,
    offset: usize,
    piece_length: usize,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let position = match error.location {
        InputLocation::Pos(position) => position,
        InputLocation::Span((start, _)) => start,
    };
    let mut expected: BTreeSet<String> = BTreeSet::new();
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        expected.extend(
            positives
                .iter()
                .filter_map(|rule| describe(*rule))
                .map(String::from),
        );
    }
    // pest's own position is where the failing rule started; the furthest token it tried is
    // usually closer to the mistake. The grammar's one-character lookaheads (before operators)
    // may reach one character too far on a lone `=`, `!` or `.`; then the rule's start is right.
    let mut attempts_position = position;
    if let Some(attempts) = error.parse_attempts() {
        let lone_operator = attempts.max_position == position + 1
            && matches!(
                text.as_bytes().get(offset + position),
                Some(b'=' | b'!' | b'.')
            );
        if !lone_operator {
            attempts_position = attempts.max_position;
        }
        for token in attempts.expected_tokens() {
            // Only literal tokens are worth naming; ranges and built-in rules are not.
            // Operators and the tokens that start an expression are summed up by the rule
            // names ("an operator", "an expression"); whitespace and comments are never news.
            let text = token.to_string();
            if format!("{token:?}").starts_with("Sensitive") && PUNCTUATION.contains(&text.as_str())
            {
                expected.insert(describe_token(&text));
            }
        }
    }
    let mut position = position.max(attempts_position).min(piece_length);
    // pest may stop just after a keyword it rejected as a name; point at the keyword instead.
    let wants_name =
        expected.is_empty() || expected.contains("a name") || expected.contains("a statement");
    if wants_name {
        if let Some(keyword_start) = keyword_ending_at(text, offset + position) {
            position = keyword_start.saturating_sub(offset);
        }
    }
    let (found, length) = found_at(text, offset + position);
    // Right after a complete expression inside brackets, what may follow is an operator or a
    // closing token; names and numbers there come from rules pest merely probed.
    if ["`)`", "`]`", "`,`"]
        .iter()
        .any(|closer| expected.contains(*closer))
        && !expected.contains("an expression")
        && !expected.contains("a statement")
    {
        for probed in ["a name", "a number", "a string"] {
            expected.remove(probed);
        }
        expected.insert("an operator".to_string());
    }
    // Descriptions that are subsumed by a broader one are dropped.
    if expected.contains("an expression") {
        for narrower in ["a number", "a string", "a name", "`(`", "`[`"] {
            expected.remove(narrower);
        }
    }
    // A line break is a real expectation only where a statement could end; in the middle of
    // an expression or inside brackets a newline is merely skipped.
    const AFTER_COMPLETE: [&str; 6] =
        ["an operator", "`(`", "`[`", "end of file", "`else`", "`as`"];
    if expected
        .iter()
        .any(|item| item != "a line break or `;`" && !AFTER_COMPLETE.contains(&item.as_str()))
    {
        expected.remove("a line break or `;`");
    }
    if expected.contains("a line break or `;`") {
        expected.remove("end of file");
    }
    let mut expected: Vec<String> = expected.into_iter().collect();
    expected.sort_by_key(|item| (item.starts_with('`'), item.clone()));
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", one_of(&expected))
    };
    let start = offset + position;
    let span = Span::new(
        file,
        start..start + length.max(usize::from(found != "end of file")),
    );
    let label = if found == "end of file" {
        "the file ends here".to_string()
    } else {
        format!("unexpected {}", found.strip_prefix("a ").unwrap_or(&found))
    };
    Diagnostic::error("E0001", format!("syntax error: {message}"))
        .with_label(span, label)
        .with_hint(habit_hint(text, start).unwrap_or_else(|| hint(&expected, &found)))
}

/// Advice for a habit carried over from Pyro or Stan, recognised in the line of the error at
/// byte `start` of `text`: `~` for sampling, `#` comments, `with plate(...)`, a number ending in
/// `.` and `target +=`. Each hint names the bdl form.
fn habit_hint(text: &str, start: usize) -> Option<String> {
    let start = start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text.get(line_start..line_end)?;
    let before = text.get(line_start..start)?;
    let at = text.get(start..line_end)?;
    let statement = line.trim_start();
    if at.starts_with('#') {
        return Some(
            "comments start with `//` (or are enclosed in `/* ... */`), not `#`".to_string(),
        );
    }
    if at.starts_with('~') || line.contains(" ~ ") {
        return Some(
            "bdl has no `~`: a latent reads `let theta = sample(\"theta\", Normal(0, 1))` and \
             data is observed with `observe(\"y\", Normal(mu, 1), y)`"
                .to_string(),
        );
    }
    if statement.starts_with("with ") && statement.contains("plate") {
        return Some(
            "a plate is a block: `plate(\"data\", N) { ... }` runs its statements once for each \
             of N conditionally independent items"
                .to_string(),
        );
    }
    if statement.starts_with("target") && statement.contains("+=") {
        return Some(
            "add a term to the log density with `factor(\"name\", expression)`".to_string(),
        );
    }
    // A number (digits not ending a name such as `w1`) followed by a point and no digit.
    let trailing_dot = |context: &str| {
        let bytes = context.as_bytes();
        bytes.windows(2).enumerate().any(|(i, pair)| {
            let run_start = bytes[..=i]
                .iter()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |p| p + 1);
            let starts_number = run_start == 0 || {
                let before = bytes[run_start - 1];
                !(before.is_ascii_alphanumeric() || before == b'_' || before == b'.')
            };
            pair[0].is_ascii_digit()
                && pair[1] == b'.'
                && starts_number
                && !bytes
                    .get(i + 2)
                    .is_some_and(|next| next.is_ascii_digit() || *next == b'.')
        })
    };
    if before.ends_with('.') && trailing_dot(before) || at.starts_with('.') && trailing_dot(line) {
        return Some(
            "a real literal needs a digit after the point: write `0.0` (or `0`) instead of `0.`"
                .to_string(),
        );
    }
    None
}

/// Advice that fits what was expected and what was found.
fn hint(expected: &[String], found: &str) -> String {
    let expects = |what: &str| expected.iter().any(|item| item == what);
    if found == "end of file" {
        return "a bracket, brace or string may be missing its closing partner".to_string();
    }
    if found == "keyword `else`" {
        return "`else` goes on the same line as the `}` that closes the `if` block".to_string();
    }
    if let Some(keyword) = found.strip_prefix("keyword ") {
        if expects("a name") || expects("a statement") {
            return format!("{keyword} is a keyword and cannot be used as a name");
        }
    }
    if found == "`=`" && expects("an operator") {
        return "use `==` to compare; `let name = value` binds a name".to_string();
    }
    if found == "a line break" && expects("an expression") {
        return "an expression cannot end a line with an operator missing its operand; inside \
                `(...)` or `[...]` lines may be broken freely"
            .to_string();
    }
    if expects("`)`") || expects("`]`") {
        return "check that every `(` and `[` before this point is closed, and that list items \
                are separated by `,`"
            .to_string();
    }
    if expects("a line break or `;`") {
        return "each statement goes on its own line, or statements are separated by `;`"
            .to_string();
    }
    if expects("an item (`data`, `network`, `fn`, `model` or `infer`)") {
        return "a file holds `data`, `network`, `fn`, `model` and `infer` items; statements go \
                inside `model { ... }`"
            .to_string();
    }
    if expects("a statement") || expects("an expression") {
        return "statements start with `let`, `plate`, `if`, `for`, `return` or an expression \
                such as `observe(...)`"
            .to_string();
    }
    if expects("`in`") {
        return "a loop reads `for k in a..b`; a comprehension `[e for k in a..b]`".to_string();
    }
    if expects("`{`") {
        return "a block opens with `{` on the same line as its header".to_string();
    }
    if expects("`:`") {
        return "a data declaration reads `name: type`, e.g. `x: vector[N]`".to_string();
    }
    if expects("`=`") {
        return "write `name = value`".to_string();
    }
    if expects("a type (`int`, `real`, `vector` or `matrix`)") {
        return "the data types are `int`, `real`, `vector[n]` and `matrix[n, m]`".to_string();
    }
    if expects("`(`") {
        return "a function lists its parameters in parentheses: `fn name(a, b) { ... }`"
            .to_string();
    }
    "the language reference (docs/language.md) shows every construct with an example".to_string()
}
