//! Error recovery: when a whole file does not parse, parse it piece by piece so that several
//! independent errors are reported in one run and the rest of the tree is still built.
//!
//! The file is cut into items (see [`scan::split_items`]). An item that does not parse alone is
//! parsed again as a *skeleton*: the insides of its `{ ... }` bodies are blanked out (byte for
//! byte, so positions stay true) and each body is recovered on its own, statement by statement.
//! A statement that holds blocks (`plate`, `if`, `for`) is recovered the same way, so an error
//! deep inside nested plates costs only the statement it is in. Recursion follows brace nesting,
//! which [`scan::prescan`] has bounded.

use crate::ast::*;
use crate::builder::Builder;
use crate::errors::syntax_error;
use crate::grammar::{BdlParser, Rule};
use crate::scan::{self, BraceGroup};
use bdl_diagnostics::{Diagnostic, Span};
use pest::iterators::Pair;
use pest::Parser;
use std::ops::Range;

/// What a body holds.
#[derive(Copy, Clone, PartialEq, Eq)]
enum BodyKind {
    Statements,
    DataEntries,
    Settings,
}

/// The recovered contents of one body.
enum Body {
    Statements(Vec<Stmt>),
    DataEntries(Vec<DataEntry>),
    Settings(Vec<Setting>),
}

/// Parses `text` item by item, reporting every error through `builder`.
pub(crate) fn items(builder: &Builder, text: &str) -> Vec<Item> {
    scan::split_items(text)
        .into_iter()
        .map(|range| item(builder, text, range))
        .collect()
}

/// Parses `range` of `text` with `rule`, returning the entry rule's pair.
fn parse_piece<'t>(
    text: &'t str,
    rule: Rule,
) -> Result<Pair<'t, Rule>, Box<pest::error::Error<Rule>>> {
    let mut pairs = BdlParser::parse(rule, text).map_err(Box::new)?;
    pairs.next().ok_or_else(|| {
        Box::new(pest::error::Error::new_from_pos(
            pest::error::ErrorVariant::CustomError {
                message: "empty input".to_string(),
            },
            pest::Position::from_start(text),
        ))
    })
}

/// The first child of an entry rule that is not end-of-input.
fn entry_child(pair: Pair<'_, Rule>) -> Option<Pair<'_, Rule>> {
    pair.into_inner().find(|inner| inner.as_rule() != Rule::EOI)
}

fn report(
    builder: &Builder,
    text: &str,
    offset: usize,
    piece: &str,
    error: &pest::error::Error<Rule>,
) {
    builder.report(syntax_error(
        builder.file(),
        text,
        offset,
        piece.len(),
        error,
    ));
}

/// `range` of `text` with the inside of every brace group blanked out, and a `}` added for a
/// group that is never closed.
fn skeleton(text: &str, range: &Range<usize>, groups: &[BraceGroup]) -> String {
    let mut bytes = text.as_bytes()[range.clone()].to_vec();
    let mut unclosed = false;
    for group in groups {
        let start = group.open + 1 - range.start;
        let end = group.close.unwrap_or(range.end) - range.start;
        for byte in &mut bytes[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        unclosed |= group.close.is_none();
    }
    if unclosed {
        bytes.push(b'}');
    }
    String::from_utf8(bytes).unwrap_or_default()
}

fn report_unclosed(builder: &Builder, groups: &[BraceGroup]) {
    for group in groups.iter().filter(|group| group.close.is_none()) {
        builder.report(
            Diagnostic::error("E0014", "unclosed `{`")
                .with_label(
                    Span::new(builder.file(), group.open..group.open + 1),
                    "this brace is never closed",
                )
                .with_hint("add the missing `}`"),
        );
    }
}

/// Recovers the body of one brace group.
fn body(builder: &Builder, text: &str, group: &BraceGroup, end: usize, kind: BodyKind) -> Body {
    let inside = group.open + 1..group.close.unwrap_or(end);
    let pieces = scan::split_statements(text, inside);
    match kind {
        BodyKind::Statements => Body::Statements(
            pieces
                .into_iter()
                .map(|piece| statement(builder, text, piece))
                .collect(),
        ),
        BodyKind::DataEntries => Body::DataEntries(
            pieces
                .into_iter()
                .map(|piece| data_entry(builder, text, piece))
                .collect(),
        ),
        BodyKind::Settings => Body::Settings(
            pieces
                .into_iter()
                .filter_map(|piece| setting(builder, text, piece))
                .collect(),
        ),
    }
}

fn item(builder: &Builder, text: &str, range: Range<usize>) -> Item {
    let span = Span::new(builder.file(), range.clone());
    let piece = &text[range.clone()];
    let error = match parse_piece(piece, Rule::item_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            return builder.items(pair).pop().unwrap_or(Item::Error(span));
        }
        Err(error) => error,
    };
    let groups = scan::brace_groups(text, range.clone());
    if groups.is_empty() {
        report(builder, text, range.start, piece, &error);
        return Item::Error(span);
    }
    report_unclosed(builder, &groups);
    let shell = skeleton(text, &range, &groups);
    match parse_piece(&shell, Rule::item_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            let mut item = builder.items(pair).pop().unwrap_or(Item::Error(span));
            let kind = match &item {
                Item::Data(_) => BodyKind::DataEntries,
                Item::Infer(_) => BodyKind::Settings,
                _ => BodyKind::Statements,
            };
            let mut bodies: Vec<Body> = groups
                .iter()
                .map(|group| body(builder, text, group, range.end, kind))
                .collect();
            if bodies.len() == 1 {
                if let Some(contents) = bodies.pop() {
                    fill_item(&mut item, contents);
                }
            }
            item
        }
        Err(shell_error) => {
            report(builder, text, range.start, &shell, &shell_error);
            let kind = if piece.starts_with("data") {
                BodyKind::DataEntries
            } else if piece.starts_with("infer") {
                BodyKind::Settings
            } else {
                BodyKind::Statements
            };
            for group in &groups {
                body(builder, text, group, range.end, kind);
            }
            Item::Error(span)
        }
    }
}

fn fill_item(item: &mut Item, contents: Body) {
    match (item, contents) {
        (Item::Model(model), Body::Statements(stmts)) => model.body.stmts = stmts,
        (Item::Function(function), Body::Statements(stmts)) => function.body.stmts = stmts,
        (Item::Data(data), Body::DataEntries(entries)) => data.entries = entries,
        (Item::Infer(infer), Body::Settings(settings)) => infer.settings = settings,
        _ => {}
    }
}

fn statement(builder: &Builder, text: &str, range: Range<usize>) -> Stmt {
    let span = Span::new(builder.file(), range.clone());
    let error_stmt = Stmt {
        kind: StmtKind::Error,
        span,
    };
    let piece = &text[range.clone()];
    let error = match parse_piece(piece, Rule::stmt_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            return entry_child(pair).map_or(error_stmt, |stmt| builder.stmt(stmt));
        }
        Err(error) => error,
    };
    let groups = scan::brace_groups(text, range.clone());
    if groups.is_empty() {
        report(builder, text, range.start, piece, &error);
        return error_stmt;
    }
    report_unclosed(builder, &groups);
    let shell = skeleton(text, &range, &groups);
    match parse_piece(&shell, Rule::stmt_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            let mut stmt = match entry_child(pair) {
                Some(stmt) => builder.stmt(stmt),
                None => error_stmt,
            };
            let bodies: Vec<Vec<Stmt>> = groups
                .iter()
                .filter_map(|group| {
                    match body(builder, text, group, range.end, BodyKind::Statements) {
                        Body::Statements(stmts) => Some(stmts),
                        _ => None,
                    }
                })
                .collect();
            let mut blocks = blocks_of(&mut stmt);
            if blocks.len() == bodies.len() {
                for (block, stmts) in blocks.iter_mut().zip(bodies) {
                    block.stmts = stmts;
                }
            }
            stmt
        }
        Err(shell_error) => {
            report(builder, text, range.start, &shell, &shell_error);
            for group in &groups {
                body(builder, text, group, range.end, BodyKind::Statements);
            }
            error_stmt
        }
    }
}

/// The blocks of a statement in source order.
fn blocks_of(stmt: &mut Stmt) -> Vec<&mut Block> {
    fn if_blocks<'a>(conditional: &'a mut If, blocks: &mut Vec<&'a mut Block>) {
        blocks.push(&mut conditional.then_block);
        match &mut conditional.else_branch {
            Some(Else::Block(block)) => blocks.push(block),
            Some(Else::If(nested)) => if_blocks(nested, blocks),
            None => {}
        }
    }
    let mut blocks = Vec::new();
    match &mut stmt.kind {
        StmtKind::Plate(plate) => blocks.push(&mut plate.body),
        StmtKind::For(for_) => blocks.push(&mut for_.body),
        StmtKind::If(conditional) => if_blocks(conditional, &mut blocks),
        _ => {}
    }
    blocks
}

fn data_entry(builder: &Builder, text: &str, range: Range<usize>) -> DataEntry {
    let span = Span::new(builder.file(), range.clone());
    let piece = &text[range.clone()];
    match parse_piece(piece, Rule::data_entry_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            entry_child(pair).map_or(DataEntry::Error(span), |entry| builder.data_entry(entry))
        }
        Err(error) => {
            report(builder, text, range.start, piece, &error);
            DataEntry::Error(span)
        }
    }
}

fn setting(builder: &Builder, text: &str, range: Range<usize>) -> Option<Setting> {
    let piece = &text[range.clone()];
    match parse_piece(piece, Rule::setting_only) {
        Ok(pair) => {
            builder.set_offset(range.start);
            entry_child(pair).and_then(|entry| builder.setting(entry))
        }
        Err(error) => {
            report(builder, text, range.start, piece, &error);
            None
        }
    }
}
