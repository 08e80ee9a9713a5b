//! Positions in `pipeline.toml` and their rendering as `--> file:line:col` with a caret.
//!
//! Spans are byte ranges into the source text (what `toml::Spanned` gives); lines and
//! columns are computed only when a message is rendered. Stored 0-based, printed 1-based.

use std::fmt::Write as _;
use std::ops::Range;

/// A byte range in one source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The byte range.
    pub range: Range<usize>,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Span {
    /// The span of `range`.
    pub fn new(range: Range<usize>) -> Self {
        Self { range }
    }

    /// Where the span starts in `source`.
    pub fn start(&self, source: &str) -> LineCol {
        line_col(source, self.range.start)
    }

    /// Renders the `-->` pointer, the source line and a caret under the span.
    pub fn render(&self, source: &str, file: &str) -> String {
        let LineCol { line, column } = self.start(source);
        let text = source.lines().nth(line - 1).unwrap_or("");
        let width = {
            let end = self.range.end.min(source.len());
            let covered = source.get(self.range.start..end).unwrap_or("");
            let first_line = covered.lines().next().unwrap_or("");
            first_line.chars().count().max(1)
        };
        let gutter = line.to_string().len();
        let mut out = String::new();
        let _ = writeln!(out, "{:gutter$}--> {file}:{line}:{column}", "");
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {text}");
        let _ = write!(
            out,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        out
    }
}

impl Span {
    /// Renders a span inside a `--set` argument: the argument, with a caret under the span.
    pub fn render_override(&self, source: &str) -> String {
        let LineCol { line, column } = self.start(source);
        let text = source.lines().nth(line - 1).unwrap_or("");
        let end = self.range.end.min(source.len());
        let width = source
            .get(self.range.start..end)
            .map_or(1, |s| s.chars().count().max(1));
        format!(
            " --> --set argument\n  |\n  | {text}\n  | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        )
    }
}

/// The line and column of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> LineCol {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    LineCol { line, column }
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let source = "a = 1\nbb = 2\n";
        assert_eq!(line_col(source, 0), LineCol { line: 1, column: 1 });
        assert_eq!(line_col(source, 6), LineCol { line: 2, column: 1 });
        assert_eq!(line_col(source, 11), LineCol { line: 2, column: 6 });
    }

    #[test]
    fn render_points_a_caret_at_the_span() {
        let source = "[stages.a]\nkind = \"nope\"\n";
        let span = Span::new(18..24);
        assert_eq!(
            span.render(source, "pipeline.toml"),
            " --> pipeline.toml:2:8\n  |\n2 | kind = \"nope\"\n  |        ^^^^^^"
        );
    }
}
