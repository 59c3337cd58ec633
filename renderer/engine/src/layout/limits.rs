//! Per-record limits: the most pages a document may have and the longest one record may
//! take to compose, checked while laying out so that a pathological record stops early.
//!
//! [`Limits`] is the plain setting (run parameters, a template may change it);
//! [`Budget`] is what one document's composition spends against it. The page limit is
//! checked twice: the flow charges the height of every unit it makes and stops as soon
//! as that height could not fit on `max_pages` pages, and pagination stops at the first
//! page past the limit. The time limit is cooperative: the line breaker, the flow and
//! pagination call [`Budget::tick`] once per line or unit, and every
//! [`TICKS_PER_CLOCK_READ`]th call reads the monotonic clock. A time-limit rejection
//! therefore depends on the machine and its load; nothing in a document's bytes does.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Calls to [`Budget::tick`] between two readings of the clock (the first call reads it).
pub const TICKS_PER_CLOCK_READ: u32 = 32;

/// Per-record limits of composition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Most pages one document may have; a record whose document would have more is
    /// rejected.
    pub max_pages: u32,
    /// Longest one record may take to bind and lay out (measured on the machine that
    /// composes it); a record that takes longer is rejected.
    pub max_compose_time: Duration,
}

impl Limits {
    /// No limits: any number of pages, any time.
    pub const UNLIMITED: Limits = Limits {
        max_pages: u32::MAX,
        max_compose_time: Duration::MAX,
    };
}

impl Default for Limits {
    /// 2,000 pages and 10 seconds per record.
    fn default() -> Self {
        Limits {
            max_pages: 2_000,
            max_compose_time: Duration::from_secs(10),
        }
    }
}

/// Which limit a record exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// The document would have more than `max_pages` pages.
    Pages(u32),
    /// Composing took longer than `max_compose_time`.
    Time(Duration),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Pages(n) => write!(
                f,
                "the document would have more than {n} pages (the per-record page limit): \
                 shorten the record's data or raise the limit"
            ),
            Exceeded::Time(t) => write!(
                f,
                "composing the record took longer than {} (the per-record time limit, \
                 measured on the machine that composed it): shorten the record's data or \
                 raise the limit",
                format_duration(*t)
            ),
        }
    }
}

fn format_duration(t: Duration) -> String {
    if t.subsec_nanos() == 0 {
        format!("{} s", t.as_secs())
    } else {
        format!("{} ms", t.as_millis())
    }
}

/// What one document's composition has spent of its [`Limits`].
#[derive(Clone, Debug)]
pub struct Budget {
    limits: Limits,
    /// `None` when the time limit is too far away to matter.
    deadline: Option<Instant>,
    ticks: u32,
    /// Flow height (points) still allowed before the document certainly exceeds the
    /// page limit; set by the layout from the page masters.
    height_left: f32,
    /// Ticks so far: a work counter for tests and benchmarks.
    work: u64,
}

impl Budget {
    /// Starts spending `limits`: the time limit runs from now.
    pub fn new(limits: &Limits) -> Self {
        Budget {
            limits: *limits,
            deadline: Instant::now().checked_add(limits.max_compose_time),
            ticks: 0,
            height_left: f32::INFINITY,
            work: 0,
        }
    }

    /// A budget without limits (benchmarks, tests, measuring).
    pub fn unlimited() -> Self {
        Budget {
            limits: Limits::UNLIMITED,
            deadline: None,
            ticks: 0,
            height_left: f32::INFINITY,
            work: 0,
        }
    }

    /// Returns the limits being spent.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Returns how many times [`Budget::tick`] was called: lines broken, units flowed and
    /// placed, pages finished.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Counts one unit of work and, every [`TICKS_PER_CLOCK_READ`] calls (starting with the
    /// first), checks the time limit.
    #[inline]
    pub fn tick(&mut self) -> Result<(), Exceeded> {
        self.work += 1;
        let read = self.ticks == 0;
        self.ticks = if read {
            TICKS_PER_CLOCK_READ - 1
        } else {
            self.ticks - 1
        };
        if read { self.check_time() } else { Ok(()) }
    }

    /// Checks the time limit now.
    pub fn check_time(&self) -> Result<(), Exceeded> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Exceeded::Time(self.limits.max_compose_time)),
            _ => Ok(()),
        }
    }

    /// Sets the flow height that `max_pages` pages of at most `page_height` points of
    /// body each can hold.
    pub(crate) fn set_page_height(&mut self, page_height: f32) {
        self.height_left = if self.limits.max_pages == u32::MAX {
            f32::INFINITY
        } else {
            self.limits.max_pages as f32 * page_height.max(1.0)
        };
    }

    /// Charges `height` points of flow; fails once more flow has been made than
    /// `max_pages` pages can hold (so the document certainly has more pages).
    pub(crate) fn charge(&mut self, height: f32) -> Result<(), Exceeded> {
        self.height_left -= height.max(0.0);
        if self.height_left < 0.0 {
            return Err(Exceeded::Pages(self.limits.max_pages));
        }
        self.tick()
    }

    /// Returns the most lines of at least `line_height` points a paragraph may still
    /// make before its lines alone exceed the height left.
    pub(crate) fn lines_left(&self, line_height: f32) -> usize {
        let h = line_height.max(0.5);
        let n = self.height_left.max(0.0) / h;
        if n >= usize::MAX as f32 {
            usize::MAX
        } else {
            n as usize + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_time_limit_is_exceeded_at_the_first_tick() {
        let limits = Limits {
            max_compose_time: Duration::ZERO,
            ..Limits::default()
        };
        let mut b = Budget::new(&limits);
        assert_eq!(b.tick(), Err(Exceeded::Time(Duration::ZERO)));
        assert_eq!(b.work(), 1);
    }

    #[test]
    fn the_default_time_limit_is_not_exceeded_at_once_and_unlimited_never() {
        let mut b = Budget::new(&Limits::default());
        for _ in 0..100 {
            assert_eq!(b.tick(), Ok(()));
        }
        let mut u = Budget::new(&Limits::UNLIMITED);
        assert!(u.deadline.is_none());
        assert_eq!(u.tick(), Ok(()));
        assert_eq!(u.lines_left(12.0), usize::MAX);
    }

    #[test]
    fn charging_more_than_the_pages_hold_fails() {
        let limits = Limits {
            max_pages: 2,
            ..Limits::UNLIMITED
        };
        let mut b = Budget::new(&limits);
        b.set_page_height(100.0);
        assert_eq!(b.lines_left(10.0), 21);
        assert!(b.charge(150.0).is_ok());
        assert!(b.charge(50.0).is_ok(), "exactly two pages of flow fit");
        assert_eq!(b.charge(0.5), Err(Exceeded::Pages(2)));
    }

    #[test]
    fn messages_say_what_to_do() {
        let m = Exceeded::Pages(2000).to_string();
        assert!(
            m.contains("2000 pages") && m.contains("raise the limit"),
            "{m}"
        );
        let t = Exceeded::Time(Duration::from_secs(10)).to_string();
        assert!(t.contains("10 s") && t.contains("machine"), "{t}");
        let z = Exceeded::Time(Duration::from_millis(250)).to_string();
        assert!(z.contains("250 ms"), "{z}");
    }
}
