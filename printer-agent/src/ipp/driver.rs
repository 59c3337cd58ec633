//! Putting one print job through one IPP printer: submit with back-off while the printer
//! is busy or unreachable (it has no queue of its own: the queue is the agent's), then
//! poll the job until it ends or vanishes, reporting every step.

use std::time::Duration;

use super::client::{Document, IppFailure, IppPrinter};
use super::watch::{Ending, JobState, JobWatch, Step};

/// Timing of one printer's driver.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// Between two Get-Job-Attributes (well inside the 60 s after which a finished job
    /// vanishes).
    pub poll: Duration,
    /// First wait after `server-error-busy` or no answer; doubled up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Submission attempts before giving up.
    pub attempts: u32,
    /// Polls in a row without an answer before the job's fate is unknown.
    pub lost_polls: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            backoff: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            attempts: 120,
            lost_polls: 30,
        }
    }
}

/// What the driver reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The printer was busy (or did not answer) and the job waits: attempt n.
    Waiting { attempt: u32, why: String },
    /// The printer accepted the job as its job `job_id`.
    Accepted { job_id: i32 },
    /// A step of the job (progress, a count not believed, the end).
    Step(Step),
    /// A poll got no answer.
    PollFailed { why: String },
}

/// Why the driver stopped before the printer accepted the job.
#[derive(Debug, thiserror::Error)]
pub enum NotPrinted {
    #[error("the printer refused the job: {0}")]
    Refused(IppFailure),
    #[error("the printer did not take the job after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: IppFailure },
    /// The request went out and failed: the printer may have the job (fate unknown).
    #[error("{0}")]
    Lost(IppFailure),
    /// The agent's own print file could not be read.
    #[error("{0}")]
    Unreadable(IppFailure),
}

/// Submits `doc` (retrying while busy or unreachable) and follows it to its end.
pub async fn print_and_follow(
    printer: &IppPrinter,
    doc: &Document,
    impressions: u64,
    pacing: &Pacing,
    report: &mut (dyn FnMut(Report) + Send),
) -> Result<(i32, Ending), NotPrinted> {
    let mut wait = pacing.backoff;
    let mut attempt = 0;
    let job_id = loop {
        attempt += 1;
        match printer.print(doc).await {
            Ok(id) => break id,
            Err(e @ (IppFailure::Busy(_) | IppFailure::Transport(_))) => {
                if attempt >= pacing.attempts {
                    return Err(NotPrinted::GaveUp {
                        attempts: attempt,
                        last: e,
                    });
                }
                report(Report::Waiting {
                    attempt,
                    why: e.to_string(),
                });
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(pacing.backoff_max);
            }
            Err(e @ IppFailure::Lost(_)) => return Err(NotPrinted::Lost(e)),
            Err(e @ IppFailure::File(_)) => return Err(NotPrinted::Unreadable(e)),
            Err(e) => return Err(NotPrinted::Refused(e)),
        }
    };
    report(Report::Accepted { job_id });
    Ok((
        job_id,
        follow(printer, job_id, impressions, pacing, report).await,
    ))
}

/// Polls job `job_id` of `impressions` impressions until it ends, vanishes, or cannot be
/// asked `pacing.lost_polls` times in a row (then it is [`Ending::Vanished`]: unknown).
pub async fn follow(
    printer: &IppPrinter,
    job_id: i32,
    impressions: u64,
    pacing: &Pacing,
    report: &mut (dyn FnMut(Report) + Send),
) -> Ending {
    let mut watch = JobWatch::new(impressions);
    let mut failed = 0;
    loop {
        match printer.job(job_id).await {
            Ok(poll) => {
                failed = 0;
                for step in watch.observe(poll.as_ref()) {
                    if let Step::Ended(mut end) = step {
                        // What stopped the printer is in its own reasons, not the job's
                        // (`aborted-by-system`): ask while the condition still stands.
                        if let Ending::Final {
                            state,
                            printer_reasons,
                            ..
                        } = &mut end
                            && *state != JobState::Completed
                        {
                            match printer.printer().await {
                                Ok(p) => {
                                    *printer_reasons = p
                                        .reasons
                                        .iter()
                                        .map(|r| r.keyword.clone())
                                        .filter(|k| k != "none")
                                        .collect();
                                }
                                Err(e) => tracing::warn!(
                                    job_id,
                                    "cannot ask the printer what stopped the job: {e}"
                                ),
                            }
                        }
                        report(Report::Step(Step::Ended(end.clone())));
                        return end;
                    }
                    if step != Step::Same {
                        report(Report::Step(step));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                report(Report::PollFailed { why: e.to_string() });
                if failed >= pacing.lost_polls {
                    let end = Ending::Vanished {
                        completed: watch.completed(),
                    };
                    report(Report::Step(Step::Ended(end.clone())));
                    return end;
                }
            }
        }
        tokio::time::sleep(pacing.poll).await;
    }
}
