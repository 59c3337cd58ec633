//! The printer's life count as an independent witness of what IPP said a job printed.
//!
//! `prtMarkerLifeCount` is read when a job starts and when it ends; the difference is
//! what the marker put on paper meanwhile. The counter is a Counter32, so the difference
//! is taken modulo 2^32: a count that passed 4 294 967 295 during the job still gives the
//! right number (one that went backwards, e.g. a reset, gives a huge one and disagrees).
//! Anything else the printer printed meanwhile (a front-panel copy, a second queue) makes
//! the two disagree: that is the point of a witness.

/// The life count at the start of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifeCountWitness {
    start: u32,
}

/// Whether the life count confirms IPP's impressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Agree { impressions: u64 },
    Disagree { ipp: u64, snmp: u64 },
}

impl LifeCountWitness {
    /// A witness of a job that starts with the life count at `start`.
    pub fn start(start: u32) -> Self {
        Self { start }
    }

    /// The life count the job started with.
    pub fn start_count(self) -> u32 {
        self.start
    }

    /// Impressions between the start and `end`, modulo 2^32.
    pub fn impressions(self, end: u32) -> u64 {
        u64::from(end.wrapping_sub(self.start))
    }

    /// Compares the life count's difference at `end` with IPP's
    /// `job-impressions-completed`.
    pub fn judge(self, end: u32, ipp_impressions: u64) -> Verdict {
        let snmp = self.impressions(end);
        if snmp == ipp_impressions {
            Verdict::Agree { impressions: snmp }
        } else {
            Verdict::Disagree {
                ipp: ipp_impressions,
                snmp,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_is_compared_with_ipp() {
        let w = LifeCountWitness::start(1234);
        assert_eq!(w.start_count(), 1234);
        assert_eq!(w.judge(1240, 6), Verdict::Agree { impressions: 6 });
        assert_eq!(w.judge(1240, 5), Verdict::Disagree { ipp: 5, snmp: 6 });
        assert_eq!(w.judge(1234, 0), Verdict::Agree { impressions: 0 });
        assert_eq!(w.judge(1234, 2), Verdict::Disagree { ipp: 2, snmp: 0 });
    }

    #[test]
    fn a_counter32_that_wraps_during_the_job_still_counts() {
        let w = LifeCountWitness::start(u32::MAX - 2);
        assert_eq!(w.impressions(u32::MAX), 2);
        assert_eq!(w.impressions(0), 3);
        assert_eq!(w.judge(6, 9), Verdict::Agree { impressions: 9 });
        let w = LifeCountWitness::start(4_294_967_290);
        assert_eq!(w.judge(3, 9), Verdict::Agree { impressions: 9 });
    }

    #[test]
    fn a_count_that_went_backwards_disagrees() {
        // A reset (or a swapped engine board) cannot be told from a wrap; it is a huge
        // difference, which no job of that size matches.
        let w = LifeCountWitness::start(1000);
        assert_eq!(
            w.judge(10, 5),
            Verdict::Disagree {
                ipp: 5,
                snmp: (1u64 << 32) - 990
            }
        );
        // IPP counts beyond 2^32 can never agree with a 32-bit difference.
        assert!(matches!(
            LifeCountWitness::start(0).judge(0, 1 << 32),
            Verdict::Disagree { .. }
        ));
    }
}
