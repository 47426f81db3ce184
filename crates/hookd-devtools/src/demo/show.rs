//! What the person watching sees: one aligned line per thing that happens, stamped with the
//! seconds since the demo began. Colour only on a terminal (and never with `NO_COLOR` set), so
//! that a log file or CI output holds plain text.

use std::io::IsTerminal as _;
use std::time::Instant;

/// Who a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Gateway,
    Hookd,
    Merchant,
    Impostor,
}

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Actor::Gateway => "gateway",
            Actor::Hookd => "hookd",
            Actor::Merchant => "merchant",
            Actor::Impostor => "impostor",
        }
    }
}

/// The mark at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Something sent.
    Sent,
    /// Delivered and verified.
    Ok,
    /// Delivered after failed attempts.
    Retried,
    /// Failed or refused.
    Failed,
    /// Worth a look: ignored, stale, a duplicate.
    Note,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Sent => "→",
            Mark::Ok => "✓",
            Mark::Retried => "↻",
            Mark::Failed => "✗",
            Mark::Note => "·",
        }
    }
}

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    color: bool,
}

impl Paint {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub fn detect() -> Self {
        Self {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    #[cfg(test)]
    pub fn plain() -> Self {
        Self { color: false }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }
    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
    pub fn cyan(self, text: &str) -> String {
        self.wrap("36", text)
    }

    fn mark(self, mark: Mark) -> String {
        let symbol = mark.symbol();
        match mark {
            Mark::Sent => self.cyan(symbol),
            Mark::Ok => self.green(symbol),
            Mark::Retried => self.yellow(symbol),
            Mark::Failed => self.red(symbol),
            Mark::Note => self.dim(symbol),
        }
    }
}

/// Prints the demo's lines. Each line is one `println!`, so lines from concurrent tasks never
/// mix.
pub struct Show {
    started: Instant,
    pub paint: Paint,
}

impl Show {
    pub fn new(paint: Paint) -> Self {
        Self {
            started: Instant::now(),
            paint,
        }
    }

    /// Seconds since the start, e.g. ` 12.3s`.
    fn clock(&self) -> String {
        format!("{:>5.1}s", self.started.elapsed().as_secs_f64())
    }

    /// `  3.2s  merchant  ✓ pay_ada       payment.captured    verified · …`
    pub fn event(&self, actor: Actor, mark: Mark, payment: &str, event: &str, detail: &str) {
        println!(
            "{}",
            event_line(
                self.paint,
                &self.clock(),
                actor,
                mark,
                payment,
                event,
                detail
            )
        );
    }

    /// A line about the demo itself rather than a payment.
    pub fn say(&self, actor: &str, text: &str) {
        println!(
            "{}  {} {}",
            self.paint.dim(&self.clock()),
            self.paint.bold(&format!("{actor:<8}")),
            text
        );
    }

    pub fn heading(&self, title: &str) {
        println!("\n{}", self.paint.bold(&format!("── {title} ──")));
    }

    pub fn plain(&self, text: &str) {
        println!("{text}");
    }
}

/// One aligned event line; pure, so its layout is tested.
pub fn event_line(
    paint: Paint,
    clock: &str,
    actor: Actor,
    mark: Mark,
    payment: &str,
    event: &str,
    detail: &str,
) -> String {
    format!(
        "{}  {} {} {} {} {}",
        paint.dim(clock),
        paint.bold(&format!("{:<8}", actor.name())),
        paint.mark(mark),
        format_args!("{payment:<12}"),
        format_args!("{event:<19}"),
        detail
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_aligned_and_free_of_escape_codes() {
        let line = event_line(
            Paint::plain(),
            "  3.2s",
            Actor::Merchant,
            Mark::Ok,
            "pay_ada",
            "payment.captured",
            "verified",
        );
        assert_eq!(
            line,
            "  3.2s  merchant ✓ pay_ada      payment.captured    verified"
        );
        let other = event_line(
            Paint::plain(),
            " 13.0s",
            Actor::Hookd,
            Mark::Failed,
            "pay_margaret",
            "payment.authorized",
            "x",
        );
        assert_eq!(line.find("verified"), other.find(" x").map(|i| i + 1));
        assert!(!other.contains('\x1b'));
    }

    #[test]
    fn colour_wraps_only_when_asked() {
        assert_eq!(Paint { color: true }.red("x"), "\x1b[31mx\x1b[0m");
        assert_eq!(Paint::plain().red("x"), "x");
    }
}
