//! When to draw: only when something changed, never more often than a frame budget
//! allows, and when a relative time on screen is due to change its text. No tick.

use std::time::{Duration, Instant};

/// Decides frames for the event loop. Pure logic over instants, so it is tested
/// without a terminal or a clock.
#[derive(Debug, Clone)]
pub struct FramePacer {
    min_gap: Duration,
    last_draw: Option<Instant>,
    dirty: bool,
    /// When a visible relative time next changes its text.
    clock_at: Option<Instant>,
}

impl FramePacer {
    /// Frames at least `min_gap` apart; the first frame is due at once.
    pub fn new(min_gap: Duration) -> FramePacer {
        FramePacer {
            min_gap,
            last_draw: None,
            dirty: true,
            clock_at: None,
        }
    }

    /// Something on screen changed.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// When the loop must wake up by itself; None: sleep until an event.
    pub fn wake_at(&self) -> Option<Instant> {
        let frame = match (self.dirty, self.last_draw) {
            (true, Some(last)) => Some(last + self.min_gap),
            (true, None) => Some(Instant::now()),
            (false, _) => None,
        };
        match (frame, self.clock_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether to draw now (a due clock counts as a change).
    pub fn should_draw(&mut self, now: Instant) -> bool {
        if self.clock_at.is_some_and(|at| now >= at) {
            self.clock_at = None;
            self.dirty = true;
        }
        self.dirty
            && self
                .last_draw
                .is_none_or(|last| now.duration_since(last) >= self.min_gap)
    }

    /// A frame was drawn at `now`; `next_change` is how long until something on it
    /// changes by itself.
    pub fn drawn(&mut self, now: Instant, next_change: Option<Duration>) {
        self.last_draw = Some(now);
        self.dirty = false;
        self.clock_at = next_change.map(|d| now + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(50);

    #[test]
    fn idle_screen_without_clock_never_wakes() {
        let mut p = FramePacer::new(GAP);
        let t0 = Instant::now();
        assert!(p.should_draw(t0), "first frame at once");
        p.drawn(t0, None);
        assert_eq!(p.wake_at(), None);
        assert!(!p.should_draw(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn bursts_are_coalesced_to_the_frame_budget() {
        let mut p = FramePacer::new(GAP);
        let t0 = Instant::now();
        p.drawn(t0, None);
        p.mark_dirty();
        let soon = t0 + Duration::from_millis(10);
        assert!(!p.should_draw(soon), "too soon after the last frame");
        assert_eq!(p.wake_at(), Some(t0 + GAP));
        p.mark_dirty();
        assert!(p.should_draw(t0 + GAP));
        p.drawn(t0 + GAP, None);
        assert!(!p.is_dirty());
        assert_eq!(p.wake_at(), None);
    }

    #[test]
    fn a_visible_clock_wakes_once_when_its_text_changes() {
        let mut p = FramePacer::new(GAP);
        let t0 = Instant::now();
        p.drawn(t0, Some(Duration::from_secs(42)));
        assert_eq!(p.wake_at(), Some(t0 + Duration::from_secs(42)));
        assert!(!p.should_draw(t0 + Duration::from_secs(41)));
        assert!(p.should_draw(t0 + Duration::from_secs(42)));
        p.drawn(t0 + Duration::from_secs(42), Some(Duration::from_secs(60)));
        assert_eq!(p.wake_at(), Some(t0 + Duration::from_secs(102)));
    }

    #[test]
    fn frame_deadline_and_clock_pick_the_earlier() {
        let mut p = FramePacer::new(GAP);
        let t0 = Instant::now();
        p.drawn(t0, Some(Duration::from_millis(20)));
        p.mark_dirty();
        assert_eq!(p.wake_at(), Some(t0 + Duration::from_millis(20)));
    }
}
