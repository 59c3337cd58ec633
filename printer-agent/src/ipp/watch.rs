//! What a print job's polled IPP attributes mean, as a state machine without I/O.
//!
//! Progress comes only from `job-impressions-completed` (DEVICES.md: `job-state` alone
//! says nothing about what was printed: a cancelled job may have printed everything, an
//! aborted one part). A job the printer no longer knows is *unknown*, never done. A count
//! that goes down is a device fault, kept and reported, and never lowers what was seen.

/// `job-state` (RFC 8011 5.3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Pending,
    PendingHeld,
    Processing,
    ProcessingStopped,
    Canceled,
    Aborted,
    Completed,
}

impl JobState {
    /// From the enum's number; `None` for a value RFC 8011 does not define.
    pub fn from_ipp(n: i32) -> Option<Self> {
        Some(match n {
            3 => Self::Pending,
            4 => Self::PendingHeld,
            5 => Self::Processing,
            6 => Self::ProcessingStopped,
            7 => Self::Canceled,
            8 => Self::Aborted,
            9 => Self::Completed,
            _ => return None,
        })
    }

    /// The job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Canceled | Self::Aborted | Self::Completed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PendingHeld => "pending-held",
            Self::Processing => "processing",
            Self::ProcessingStopped => "processing-stopped",
            Self::Canceled => "canceled",
            Self::Aborted => "aborted",
            Self::Completed => "completed",
        }
    }
}

/// One poll of Get-Job-Attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPoll {
    pub state: JobState,
    pub reasons: Vec<String>,
    pub message: String,
    /// `job-impressions-completed` (absent counts as 0).
    pub completed: u64,
}

/// How a print job ended, as far as the printer can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `job-state` final: completed, aborted or canceled, with the impressions done.
    Final {
        state: JobState,
        completed: u64,
        reasons: Vec<String>,
        message: String,
        /// For a job that did not complete: the printer's `printer-state-reasons` as the
        /// job ended (what stopped it: `media-jam`, `cover-open`, …), filled in by the
        /// driver; empty when not asked or none.
        printer_reasons: Vec<String>,
    },
    /// The printer no longer knows the job: what was printed after `completed` is
    /// unknown.
    Vanished { completed: u64 },
}

/// What a poll changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing new.
    Same,
    /// More impressions are confirmed: the new count.
    Progress(u64),
    /// The count went down (a device fault): the count seen before stands.
    Regressed { seen: u64, polled: u64 },
    /// More impressions than the job has: not believed.
    Beyond { polled: u64, impressions: u64 },
    /// The job is over.
    Ended(Ending),
}

/// The watch over one submitted print job.
#[derive(Clone, Debug)]
pub struct JobWatch {
    impressions: u64,
    completed: u64,
    ended: bool,
}

impl JobWatch {
    /// A job of `impressions` impressions, just accepted.
    pub fn new(impressions: u64) -> Self {
        Self {
            impressions,
            completed: 0,
            ended: false,
        }
    }

    /// Impressions confirmed so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// A poll's answer (`None`: the printer says the job does not exist).
    pub fn observe(&mut self, poll: Option<&JobPoll>) -> Vec<Step> {
        if self.ended {
            return vec![];
        }
        let Some(p) = poll else {
            self.ended = true;
            return vec![Step::Ended(Ending::Vanished {
                completed: self.completed,
            })];
        };
        let mut steps = Vec::new();
        if p.completed > self.impressions {
            steps.push(Step::Beyond {
                polled: p.completed,
                impressions: self.impressions,
            });
        } else if p.completed < self.completed {
            steps.push(Step::Regressed {
                seen: self.completed,
                polled: p.completed,
            });
        } else if p.completed > self.completed {
            self.completed = p.completed;
            steps.push(Step::Progress(p.completed));
        }
        if p.state.is_final() {
            self.ended = true;
            steps.push(Step::Ended(Ending::Final {
                state: p.state,
                completed: self.completed,
                reasons: p.reasons.clone(),
                message: p.message.trim().to_string(),
                printer_reasons: Vec::new(),
            }));
        } else if steps.is_empty() {
            steps.push(Step::Same);
        }
        steps
    }
}

/// A `printer-state-reasons` keyword split into the reason and its severity suffix
/// (`media-jam-warning` → `media-jam`, Warning). ippeveprinter sends `-report` while idle
/// and `-warning` while processing; `none` is no reason at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub keyword: String,
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Report,
    Warning,
    Error,
    /// No suffix.
    Plain,
}

impl Reason {
    pub fn parse(k: &str) -> Option<Self> {
        if k == "none" || k.is_empty() {
            return None;
        }
        for (suffix, severity) in [
            ("-report", Severity::Report),
            ("-warning", Severity::Warning),
            ("-error", Severity::Error),
        ] {
            if let Some(base) = k.strip_suffix(suffix) {
                return Some(Self {
                    keyword: base.to_string(),
                    severity,
                });
            }
        }
        Some(Self {
            keyword: k.to_string(),
            severity: Severity::Plain,
        })
    }

    /// A reason that stops the printer from putting sheets out (PWG 5100.x keywords).
    pub fn stops_printing(&self) -> bool {
        matches!(
            self.keyword.as_str(),
            "media-jam"
                | "media-empty"
                | "media-needed"
                | "door-open"
                | "cover-open"
                | "toner-empty"
                | "marker-supply-empty"
                | "offline"
                | "shutdown"
                | "paused"
                | "stopped"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(state: JobState, completed: u64) -> JobPoll {
        JobPoll {
            state,
            reasons: vec![],
            message: String::new(),
            completed,
        }
    }

    #[test]
    fn progress_comes_from_the_count_and_an_end_is_final() {
        let mut w = JobWatch::new(5);
        assert_eq!(w.observe(Some(&poll(JobState::Pending, 0))), [Step::Same]);
        assert_eq!(
            w.observe(Some(&poll(JobState::Processing, 2))),
            [Step::Progress(2)]
        );
        assert_eq!(
            w.observe(Some(&poll(JobState::Processing, 1))),
            [Step::Regressed { seen: 2, polled: 1 }]
        );
        assert_eq!(
            w.observe(Some(&poll(JobState::Processing, 9))),
            [Step::Beyond {
                polled: 9,
                impressions: 5
            }]
        );
        let end = w.observe(Some(&poll(JobState::Aborted, 3)));
        assert_eq!(end[0], Step::Progress(3));
        assert!(matches!(
            &end[1],
            Step::Ended(Ending::Final {
                state: JobState::Aborted,
                completed: 3,
                ..
            })
        ));
        assert!(w.ended() && w.observe(None).is_empty());
    }

    #[test]
    fn a_vanished_job_is_unknown_beyond_what_was_seen() {
        let mut w = JobWatch::new(5);
        w.observe(Some(&poll(JobState::Processing, 4)));
        assert_eq!(
            w.observe(None),
            [Step::Ended(Ending::Vanished { completed: 4 })]
        );
        // A cancelled job can have printed everything: its count decides, not its state.
        let mut w = JobWatch::new(5);
        let end = w.observe(Some(&poll(JobState::Canceled, 5)));
        assert_eq!(end[0], Step::Progress(5));
    }

    #[test]
    fn reasons_lose_their_suffix() {
        let r = Reason::parse("media-jam-warning").unwrap();
        assert_eq!(
            (r.keyword.as_str(), r.severity),
            ("media-jam", Severity::Warning)
        );
        assert!(r.stops_printing());
        assert_eq!(
            Reason::parse("media-empty-report").unwrap().severity,
            Severity::Report
        );
        assert!(Reason::parse("none").is_none());
        assert!(!Reason::parse("toner-low-report").unwrap().stops_printing());
        assert_eq!(JobState::from_ipp(9), Some(JobState::Completed));
        assert_eq!(JobState::from_ipp(2), None);
    }
}
