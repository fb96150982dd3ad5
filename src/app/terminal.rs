//! The terminal: raw mode and the alternate screen while the app runs, and a guard that
//! gives the terminal back however the app ends (return, error, panic, signal) and
//! while the app is suspended (Ctrl-Z, SIGTSTP).

use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::layout::Rect;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Set while the terminal is in raw mode; restoring twice is harmless.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static MOUSE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Owns the terminal's raw mode; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen; mouse capture only when asked (it
    /// steals the terminal's own text selection).
    pub fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        install_panic_hook();
        take_terminal(mouse)?;
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// Ctrl-Z: gives the terminal back and stops the process the way the terminal's own
    /// Ctrl-Z would (SIGTSTP with its default action), so the shell gets its prompt
    /// back. When the shell continues it (`fg`), takes the terminal again. Where nothing
    /// could ever continue it (no job control: an orphaned process group) the kernel does
    /// not stop it, and it carries on at once.
    pub fn suspend(&mut self) -> io::Result<()> {
        restore();
        stop_self();
        self.resume()
    }

    /// Takes the terminal again after the process was stopped and continued, also by a
    /// SIGSTOP from outside that gave no warning (the shell may have reset the tty
    /// modes meanwhile): raw mode re-applied, the alternate screen, the cursor hidden,
    /// and the next frame drawn whole.
    pub fn resume(&mut self) -> io::Result<()> {
        // crossterm skips enabling raw mode when it believes it is on; make it re-apply.
        if ACTIVE.swap(false, Ordering::SeqCst) {
            let _ = disable_raw_mode();
        }
        take_terminal(MOUSE.load(Ordering::SeqCst))?;
        // Not `Terminal::clear`: it asks the terminal where the cursor is, and the answer
        // goes to the input reader instead. A resize clears and forgets the last frame
        // from the size alone (and the pane may have changed size meanwhile).
        let size = self.terminal.size()?;
        self.terminal
            .resize(Rect::new(0, 0, size.width, size.height))
    }
}

/// Raw mode, the alternate screen and the hidden cursor (and mouse capture when asked);
/// all undone if any step fails.
fn take_terminal(mouse: bool) -> io::Result<()> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    MOUSE.store(mouse, Ordering::SeqCst);
    let mut out = io::stdout();
    let entered = execute!(out, EnterAlternateScreen, cursor::Hide).and_then(|()| {
        if mouse {
            execute!(out, EnableMouseCapture)
        } else {
            Ok(())
        }
    });
    if let Err(e) = entered {
        restore();
        return Err(e);
    }
    Ok(())
}

/// Stops this process with SIGTSTP's default action. The tokio handler that lets the
/// event loop see SIGTSTP would swallow it, so the default is put back for the
/// duration of one `raise`, then the handler is reinstated. `raise` returns once the
/// process is continued.
fn stop_self() {
    // SAFETY: plain libc calls with valid pointers to zero-initialised `sigaction`s (a
    // valid value: no flags, an empty mask); SIG_DFL is a valid disposition for
    // SIGTSTP, and the previous action is put back exactly as it was read.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTSTP, &default, &mut previous) != 0 {
            tracing::warn!("cannot suspend: {}", io::Error::last_os_error());
            return;
        }
        libc::raise(libc::SIGTSTP);
        libc::sigaction(libc::SIGTSTP, &previous, std::ptr::null_mut());
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back: leaves the alternate screen, shows the cursor, ends raw
/// mode. Errors are ignored (after SIGHUP there is no terminal to write to).
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if MOUSE.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// Restores the terminal before the panic message is printed, so it is readable and the
/// shell is usable afterwards (over SSH a raw-mode terminal is hard to recover).
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            tracing::error!("panic: {info}");
            previous(info);
        }));
    });
}
