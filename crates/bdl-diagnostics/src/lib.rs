//! Spans, source files and diagnostics: the one vocabulary every stage of bdl uses to report
//! a problem, and the one place that renders it (with ariadne).
//!
//! Stages below the binary never print. They return [`Diagnostic`] values; the driver collects
//! them and calls [`render`] (or reads [`Diagnostic::location`] for machine-readable output).
//! Messages are lowercase without a trailing period; a hint is kept apart from the message.

use std::fmt;
use std::ops::Range;

/// Identifies one source text held by a [`SourceMap`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The file the range belongs to.
    pub file: FileId,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// A span over `range` in `file`; offsets beyond `u32::MAX` are clamped.
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        let clamp = |offset: usize| u32::try_from(offset).unwrap_or(u32::MAX);
        Span {
            file,
            start: clamp(range.start),
            end: clamp(range.end.max(range.start)),
        }
    }

    /// The byte range as `usize`s.
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both `self` and `other` (which must share a file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One source text and the name it is reported under.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (usually the path as the user typed it).
    pub name: String,
    /// The full text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(name: String, text: String) -> SourceFile {
        SourceFile {
            line_starts: line_starts(&text),
            name,
            text,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let column = self
            .text
            .get(line_start..offset)
            .map_or(offset - line_start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }
}

/// The byte offsets where lines start: after each `\n`, `\r\n` or lone `\r` (old Mac files).
fn line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    for (offset, &byte) in bytes.iter().enumerate() {
        let lone_return = byte == b'\r' && bytes.get(offset + 1) != Some(&b'\n');
        if byte == b'\n' || lone_return {
            starts.push(offset + 1);
        }
    }
    starts
}

/// All source texts of one session, addressed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a text and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile::new(name.into(), text.into()));
        id
    }

    /// Replaces the text of a file already in the map: a large data file is registered without
    /// its text, which is filled in only when a diagnostic needs an excerpt of it. Does nothing
    /// for an id that did not come from this map.
    pub fn set_text(&mut self, file: FileId, text: impl Into<String>) {
        if let Some(entry) = self.files.get_mut(file.0 as usize) {
            let name = std::mem::take(&mut entry.name);
            *entry = SourceFile::new(name, text.into());
        }
    }

    /// The file behind an id, if the id came from this map.
    pub fn get(&self, file: FileId) -> Option<&SourceFile> {
        self.files.get(file.0 as usize)
    }

    /// The text a span covers, if it is valid.
    pub fn snippet(&self, span: Span) -> Option<&str> {
        self.get(span.file)?.text.get(span.range())
    }
}

/// How serious a diagnostic is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Stops the pipeline (exit code 1).
    Error,
    /// Reported, but the program still runs.
    Warning,
    /// Extra information.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A span with a message attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// What the label points at.
    pub span: Span,
    /// What it says there.
    pub message: String,
    /// The primary label is the one the diagnostic's location refers to.
    pub primary: bool,
}

/// A problem found in a user's program, data or command, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// A stable code such as `E0201`; docs/diagnostics.md lists them.
    pub code: String,
    /// One lowercase sentence without a trailing period.
    pub message: String,
    /// Located labels; the first primary one gives the location.
    pub labels: Vec<Label>,
    /// Further facts, one per line.
    pub notes: Vec<String>,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new diagnostic without labels.
    pub fn new(severity: Severity, code: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            code: code.into(),
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            hint: None,
        }
    }

    /// A new error.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Error, code, message)
    }

    /// A new warning.
    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Warning, code, message)
    }

    /// Adds the primary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span, or the first label's span.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels
            .iter()
            .find(|label| label.primary)
            .or(self.labels.first())
            .map(|l| l.span)
    }

    /// The file name, 1-based line and column of the primary span.
    pub fn location(&self, sources: &SourceMap) -> Option<Location> {
        let span = self.primary_span()?;
        let file = sources.get(span.file)?;
        let (line, column) = file.line_col(span.start as usize);
        Some(Location {
            file: file.name.clone(),
            line,
            column,
        })
    }
}

/// A resolved position: `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's name in the source map.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Whether any diagnostic in the list is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Renders one diagnostic as text: a header, then for located diagnostics the
/// `file:line:col` excerpt with labels, then notes and the hint.
///
/// `color` adds ANSI colours; the driver passes `true` only when writing to a terminal.
pub fn render(diagnostic: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let located: Vec<&Label> = diagnostic
        .labels
        .iter()
        .filter(|label| sources.get(label.span.file).is_some())
        .collect();
    if located.is_empty() {
        return render_unlocated(diagnostic);
    }
    let kind = match diagnostic.severity {
        Severity::Error => ariadne::ReportKind::Error,
        Severity::Warning => ariadne::ReportKind::Warning,
        Severity::Note => ariadne::ReportKind::Advice,
    };
    let name_of = |file: FileId| {
        sources
            .get(file)
            .map(|f| f.name.clone())
            .unwrap_or_default()
    };
    let primary = diagnostic.primary_span().unwrap_or(located[0].span);
    // Spans are clamped to the text and widened to character boundaries, so that a span from
    // any source (even one that splits a multi-byte character) renders instead of panicking.
    let clamp = |span: Span| {
        let text = sources.get(span.file).map_or("", |f| f.text.as_str());
        let mut start = (span.start as usize).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (span.end as usize).clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        start..end
    };
    let mut files: Vec<FileId> = located.iter().map(|label| label.span.file).collect();
    files.sort();
    files.dedup();
    // Each file is shown through an excerpt: only the labelled lines, long ones cut to a window
    // around their labels; spans are mapped into it.
    let excerpts: Vec<(FileId, Excerpt)> = files
        .iter()
        .filter_map(|&file| {
            let source = sources.get(file)?;
            let ranges: Vec<Range<usize>> = located
                .iter()
                .filter(|label| label.span.file == file)
                .map(|label| clamp(label.span))
                .collect();
            Some((file, Excerpt::new(source, &ranges)))
        })
        .collect();
    let excerpt_of = |file: FileId| excerpts.iter().find(|(f, _)| *f == file).map(|(_, e)| e);
    let clamp = |span: Span| {
        let range = clamp(span);
        match excerpt_of(span.file) {
            Some(excerpt) => excerpt.map(range.start)..excerpt.map(range.end),
            None => range,
        }
    };
    let config = ariadne::Config::default()
        .with_color(color)
        .with_index_type(ariadne::IndexType::Byte);
    let mut builder = ariadne::Report::build(kind, (name_of(primary.file), clamp(primary)))
        .with_config(config)
        .with_code(&diagnostic.code)
        .with_message(&diagnostic.message);
    for (order, label) in located.iter().enumerate() {
        let mut ariadne_label = ariadne::Label::new((name_of(label.span.file), clamp(label.span)))
            .with_message(&label.message)
            .with_order(i32::try_from(order).unwrap_or(i32::MAX));
        if color {
            let tint = match (label.primary, diagnostic.severity) {
                (false, _) => ariadne::Color::Cyan,
                (true, Severity::Error) => ariadne::Color::Red,
                (true, Severity::Warning) => ariadne::Color::Yellow,
                (true, Severity::Note) => ariadne::Color::Blue,
            };
            ariadne_label = ariadne_label.with_color(tint);
        }
        builder = builder.with_label(ariadne_label);
    }
    for note in &diagnostic.notes {
        builder = builder.with_note(note);
    }
    for (file, excerpt) in &excerpts {
        for (line, length, shown, label) in &excerpt.cut {
            builder = builder.with_note(format!(
                "line {line} of `{}` is {length} characters long; the excerpt shows characters {}–{} (the label starts at character {label}, where columns above count from the excerpt)",
                name_of(*file),
                shown.start,
                shown.end
            ));
        }
    }
    if let Some(hint) = &diagnostic.hint {
        builder = builder.with_help(hint);
    }
    let cache = ariadne::sources(
        excerpts
            .into_iter()
            .map(|(file, excerpt)| (name_of(file), excerpt.text)),
    );
    let mut buffer = Vec::new();
    match builder.finish().write(cache, &mut buffer) {
        Ok(()) => String::from_utf8_lossy(&buffer).into_owned(),
        Err(_) => render_unlocated(diagnostic),
    }
}

/// Lines longer than this (in bytes) are cut to a window around their labels in excerpts.
const LONG_LINE: usize = 200;
/// The bytes of context kept on each side of the labels of a cut line.
const LINE_CONTEXT: usize = 40;

/// What a rendered diagnostic shows of one source: the lines its labels touch (other lines
/// empty, so that line numbers stay right), a line longer than [`LONG_LINE`] cut to a window
/// around its labels with `…` on each cut side, and how to map an offset of the source into it.
struct Excerpt {
    text: String,
    /// For each kept line: its start in the source, the kept window in the source, and where
    /// the window starts in `text`.
    lines: Vec<(usize, Range<usize>, usize)>,
    /// The cut lines: 1-based line number, length in characters, the 1-based characters
    /// shown, and the character where the first label on it starts.
    cut: Vec<(usize, usize, Range<usize>, usize)>,
}

impl Excerpt {
    fn new(source: &SourceFile, ranges: &[Range<usize>]) -> Excerpt {
        let text = source.text.as_str();
        let starts = &source.line_starts;
        let line_of = |offset: usize| starts.partition_point(|&start| start <= offset) - 1;
        let mut kept: Vec<usize> = ranges
            .iter()
            .flat_map(|range| line_of(range.start)..=line_of(range.end.max(range.start)))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        let mut excerpt = Excerpt {
            text: String::new(),
            lines: Vec::new(),
            cut: Vec::new(),
        };
        let mut previous = 0;
        for line in kept {
            // Empty lines up to this one keep its number.
            excerpt
                .text
                .extend(std::iter::repeat_n('\n', line - previous));
            let line_start = starts[line];
            let mut line_end = starts.get(line + 1).copied().unwrap_or(text.len());
            while line_end > line_start && matches!(text.as_bytes()[line_end - 1], b'\n' | b'\r') {
                line_end -= 1;
            }
            let content = &text[line_start..line_end];
            let mut window = line_start..line_end;
            if content.len() > LONG_LINE {
                let (low, high) = ranges
                    .iter()
                    .filter(|r| r.end >= line_start && r.start <= line_end)
                    .fold((line_end, line_start), |(low, high), r| {
                        (
                            low.min(r.start.max(line_start)),
                            high.max(r.end.min(line_end)),
                        )
                    });
                let mut from = low.saturating_sub(LINE_CONTEXT).max(line_start);
                let mut to = (high + LINE_CONTEXT).min(line_end);
                while !text.is_char_boundary(from) {
                    from -= 1;
                }
                while !text.is_char_boundary(to) {
                    to += 1;
                }
                window = from..to;
                let chars_before = text[line_start..from].chars().count();
                let label_start = low.max(from);
                excerpt.cut.push((
                    line + 1,
                    content.chars().count(),
                    chars_before + 1..chars_before + text[from..to].chars().count(),
                    chars_before + 1 + text[from..label_start].chars().count(),
                ));
            }
            if window.start > line_start {
                excerpt.text.push('…');
            }
            excerpt
                .lines
                .push((line_start, window.clone(), excerpt.text.len()));
            excerpt.text.push_str(&text[window.clone()]);
            if window.end < line_end {
                excerpt.text.push('…');
            }
            previous = line;
        }
        excerpt.text.push('\n');
        excerpt
    }

    /// Where a source offset falls in the excerpt (clamped into its line's window).
    fn map(&self, offset: usize) -> usize {
        let index = self
            .lines
            .partition_point(|(line_start, _, _)| *line_start <= offset)
            .saturating_sub(1);
        match self.lines.get(index) {
            Some((_, window, at)) => at + offset.clamp(window.start, window.end) - window.start,
            None => 0,
        }
    }
}

/// Renders a diagnostic that points at no source text (a missing file, a bad flag).
fn render_unlocated(diagnostic: &Diagnostic) -> String {
    let mut text = format!(
        "{}[{}]: {}\n",
        diagnostic.severity, diagnostic.code, diagnostic.message
    );
    for note in &diagnostic.notes {
        text.push_str(&format!("  = note: {note}\n"));
    }
    if let Some(hint) = &diagnostic.hint {
        text.push_str(&format!("  = help: {hint}\n"));
    }
    text
}

/// Renders a list of diagnostics, one after the other.
pub fn render_all(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    diagnostics
        .iter()
        .map(|diagnostic| render(diagnostic, sources, color))
        .collect()
}

/// Suggests the closest candidate to a misspelt name, for "did you mean" hints.
///
/// A candidate qualifies when its edit distance (a swap of two neighbouring characters counts
/// as one edit) is at most a third of the name's length (at least one), so that unrelated short
/// names are not suggested. Failing that, a candidate that starts with a name of three or more
/// characters qualifies (`covariance` → `covariance_matrix`).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let candidates: Vec<&'a str> = candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .collect();
    let close = candidates
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    close.or_else(|| {
        let lowered = name.to_lowercase();
        (name.chars().count() >= 3)
            .then(|| {
                candidates
                    .iter()
                    .filter(|candidate| candidate.to_lowercase().starts_with(&lowered))
                    .min_by_key(|candidate| candidate.len())
                    .copied()
            })
            .flatten()
    })
}

/// Optimal-string-alignment distance over characters (Levenshtein plus swaps of neighbours),
/// case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j] is the distance between the first i characters of a and the first j of b.
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = rows[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let mut sources = SourceMap::new();
        let file = sources.add("m.bdl", "ab\nçd\n");
        let source = sources.get(file).unwrap();
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(3), (2, 1));
        assert_eq!(source.line_col(5), (2, 2)); // 'ç' is two bytes, one character
        assert_eq!(source.line_col(100), (3, 1));
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        let mut sources = SourceMap::new();
        let file = sources.add("old_mac.csv", "x\r0.5\r\n1.5\rbad\r");
        let source = sources.get(file).unwrap();
        assert_eq!(source.line_col(2), (2, 1));
        assert_eq!(source.line_col(7), (3, 1));
        assert_eq!(source.line_col(11), (4, 1));
        let diagnostic =
            Diagnostic::error("E0405", "not a number").with_label(Span::new(file, 11..14), "here");
        let text = render(&diagnostic, &sources, false);
        assert!(text.contains("old_mac.csv:4:1"), "{text}");
        assert!(text.contains(" 4 │ bad"), "{text}");
    }

    #[test]
    fn long_lines_are_cut_around_their_labels() {
        let mut sources = SourceMap::new();
        let cells: Vec<String> = (0..500).map(|k| format!("{k}.5")).collect();
        let line = cells.join(",");
        let bad = line.find("250.5").unwrap();
        let text = format!("header\n{line}\n");
        let file = sources.add("wide.csv", text.clone());
        let start = "header\n".len() + bad;
        let diagnostic = Diagnostic::error("E0405", "not a number")
            .with_label(Span::new(file, start..start + 5), "this cell");
        let rendered = render(&diagnostic, &sources, false);
        let longest = rendered.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(longest < 2 * (LONG_LINE + 2 * LINE_CONTEXT), "{rendered}");
        assert!(rendered.contains("249.5,250.5,251.5"), "{rendered}");
        assert!(rendered.contains(" 2 │ …"), "{rendered}");
        assert!(rendered.contains("wide.csv:2:"), "{rendered}");
        let length = line.chars().count();
        assert!(
            rendered.contains(&format!("line 2 of `wide.csv` is {length} characters long")),
            "{rendered}"
        );
        let label_char = line[..bad].chars().count() + 1;
        assert!(
            rendered.contains(&format!("the label starts at character {label_char},")),
            "{rendered}"
        );
        // The label still points at the cell: its text sits right above the label's mark.
        let shown = rendered.lines().find(|l| l.contains("250.5")).unwrap();
        let marks = rendered.lines().find(|l| l.contains('┬')).unwrap();
        let column = |l: &str, pattern: &str| l.find(pattern).map(|b| l[..b].chars().count());
        let cell = column(shown, "250.5").unwrap();
        let mark = column(marks, "─").or(column(marks, "┬")).unwrap();
        assert_eq!(cell, mark, "{rendered}");
    }

    #[test]
    fn rendering_shows_location_excerpt_and_hint() {
        let mut sources = SourceMap::new();
        let file = sources.add("m.bdl", "model {\n  sample(\"w\", Nrmal(0, 1))\n}\n");
        let diagnostic = Diagnostic::error("E0301", "unknown distribution `Nrmal`")
            .with_label(Span::new(file, 22..27), "not a distribution")
            .with_hint("did you mean `Normal`?");
        let text = render(&diagnostic, &sources, false);
        assert!(text.contains("m.bdl:2:15"), "{text}");
        assert!(text.contains("E0301"));
        assert!(text.contains("sample(\"w\", Nrmal(0, 1))"));
        assert!(text.contains("did you mean `Normal`?"));
        assert!(!text.contains('\u{1b}'), "no colour when not asked");
        assert_eq!(
            diagnostic.location(&sources).unwrap().to_string(),
            "m.bdl:2:15"
        );
    }

    #[test]
    fn spans_past_the_end_do_not_panic() {
        let mut sources = SourceMap::new();
        let file = sources.add("m.bdl", "x");
        let diagnostic =
            Diagnostic::error("E0001", "eof").with_label(Span::new(file, 5..9), "here");
        assert!(render(&diagnostic, &sources, true).contains("eof"));
    }

    #[test]
    fn spans_inside_a_character_do_not_panic() {
        let mut sources = SourceMap::new();
        let file = sources.add("m.bdl", "a\u{fffd}b");
        let diagnostic =
            Diagnostic::error("E0007", "utf-8").with_label(Span::new(file, 2..3), "here");
        assert!(render(&diagnostic, &sources, false).contains("m.bdl:1:2"));
    }

    #[test]
    fn unlocated_diagnostics_render_as_one_header() {
        let diagnostic =
            Diagnostic::error("E0901", "cannot read `x.bdl`").with_hint("check the path");
        let text = render(&diagnostic, &SourceMap::new(), false);
        assert_eq!(
            text,
            "error[E0901]: cannot read `x.bdl`\n  = help: check the path\n"
        );
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let names = ["Normal", "HalfNormal", "Gamma"];
        assert_eq!(did_you_mean("Nrmal", names), Some("Normal"));
        assert_eq!(did_you_mean("normal", names), Some("Normal"));
        assert_eq!(did_you_mean("Zeta", names), None);
        assert_eq!(did_you_mean("stpes", ["steps", "seed"]), Some("steps"));
        assert_eq!(
            did_you_mean("covariance", ["scale_tril", "covariance_matrix"]),
            Some("covariance_matrix")
        );
    }
}
