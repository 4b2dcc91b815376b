//! The terminal while `lab watch` draws on it: raw mode, the alternate screen
//! and a hidden cursor, all given back when the guard drops, and also when
//! anything panics (a hook restores the terminal before the panic's message).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::style::{Color, Print, ResetColor, SetForegroundColor};
use crossterm::terminal::{self, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute, queue};

use crate::lab::report::watch::{Class, Frame};

/// Whether this process has the terminal in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook that restores the terminal, once per process.
static HOOK: Once = Once::new();

/// Holds the terminal; restores it on drop.
#[derive(Debug)]
pub struct Terminal(());

impl Terminal {
    /// Raw mode, the alternate screen, the cursor hidden.
    pub fn enter() -> io::Result<Terminal> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = Terminal(());
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back, if this process holds it: cursor shown, main
/// screen, raw mode off. Idempotent; errors are ignored (nothing is left to do).
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), cursor::Show, LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// The terminal's size, or 80x24 when it cannot tell (a pty nobody sized).
pub fn size() -> (u16, u16) {
    match terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (cols, rows),
        _ => (80, 24),
    }
}

fn color(class: Class) -> Color {
    match class {
        Class::Pass => Color::Green,
        Class::Near => Color::Yellow,
        Class::Off => Color::Red,
        Class::Unmeasured => Color::DarkGrey,
    }
}

/// Draws a frame from the top left, then `footer` on the last row.
pub fn draw(frame: &Frame, footer: &str) -> io::Result<()> {
    let (_, rows) = size();
    let mut out = io::stdout().lock();
    for (y, line) in frame.lines.iter().enumerate() {
        queue!(out, cursor::MoveTo(0, y as u16))?;
        for span in line {
            match span.class {
                Some(class) => queue!(
                    out,
                    SetForegroundColor(color(class)),
                    Print(&span.text),
                    ResetColor
                )?,
                None => queue!(out, Print(&span.text))?,
            }
        }
        queue!(out, Clear(ClearType::UntilNewLine))?;
    }
    queue!(
        out,
        cursor::MoveTo(0, frame.lines.len() as u16),
        Clear(ClearType::FromCursorDown),
        cursor::MoveTo(0, rows.saturating_sub(1)),
        SetForegroundColor(Color::DarkGrey),
        Print(footer),
        ResetColor
    )?;
    out.flush()
}
