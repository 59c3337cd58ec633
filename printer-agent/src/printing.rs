//! One printer's worker: the agent's queue for it (the printer has none of its own), one
//! job at a time through the IPP driver, every step recorded in the store with the
//! events that report it before anything else happens.
//!
//! After a restart a job is taken up where the store says it was: `printing` jobs are
//! followed again by the printer's job id; a job that was being submitted when the
//! agent stopped has an unknown fate (the printer may have taken it) and is reported
//! ended as `unknown` with nothing confirmed, never resubmitted blindly.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::events;
use crate::inserting::Declare;
use crate::ipp::client::{Document, IppPrinter};
use crate::ipp::driver::{NotPrinted, Pacing, Report, follow, print_and_follow};
use crate::ipp::watch::{Ending, Step};
use crate::snmp::{LifeCountWitness, SnmpPrinter, Verdict};
use crate::status::{Statuses, replace_reasons, replace_supplies};
use crate::store::{HeldJob, JobStage, Store};

/// What a printer worker needs.
pub struct Worker {
    pub name: String,
    pub ipp: IppPrinter,
    pub pacing: Pacing,
    pub store: Arc<Store>,
    /// Woken when the outbox has something new.
    pub outbox: Arc<Notify>,
    /// Woken when a job for this printer arrives.
    pub jobs: Arc<Notify>,
    pub statuses: Arc<Statuses>,
    /// The inserter that follows the printer.
    pub inserter: Option<mpsc::Sender<Declare>>,
    /// The printer's SNMP agent: its life count is a second witness of every job.
    pub snmp: Option<Arc<SnmpPrinter>>,
    /// Impressions of the current job counted so far (for the metrics and pages/hour).
    pub seen: std::sync::atomic::AtomicU64,
}

/// Records what the IPP driver reports about one job as it goes; the first store
/// failure stops the recording and is returned by [`Recorder::done`].
struct Recorder<'a> {
    worker: &'a Worker,
    job: &'a HeldJob,
    device_job: i32,
    failed: Option<crate::store::StoreError>,
}

impl<'a> Recorder<'a> {
    fn new(worker: &'a Worker, job: &'a HeldJob, device_job: i32) -> Self {
        Self {
            worker,
            job,
            device_job,
            failed: None,
        }
    }

    fn take(&mut self, r: Report) {
        if let Report::Accepted { job_id } = r {
            self.device_job = job_id;
        }
        if self.failed.is_none()
            && let Err(e) = self.worker.report(self.job, self.device_job, r)
        {
            self.failed = Some(e);
        }
    }

    /// The printer's job id, or the store failure that stopped the recording.
    fn done(self) -> Result<i32, crate::store::StoreError> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.device_job),
        }
    }
}

/// The life count before a job, if SNMP can give one that counts impressions.
async fn life_count(name: &str, snmp: Option<&SnmpPrinter>) -> Option<u32> {
    let snmp = snmp?;
    match snmp.poll().await {
        Ok(s) if s.counts_impressions() => Some(s.life_count),
        Ok(s) => {
            tracing::warn!(printer = %name, unit = s.life_count_unit, "prtMarkerLifeCount does not count impressions: no second witness");
            None
        }
        Err(e) => {
            metrics::counter!("pressrun_agent_snmp_failures_total", "printer" => name.to_string())
                .increment(1);
            tracing::warn!(printer = %name, "SNMP poll failed, no second witness for this job: {e}");
            None
        }
    }
}

/// At most 1 KiB (the dispatcher refuses an event text above 4 KiB, which would hold
/// the agent's outbox), cut on a character boundary.
fn bounded(mut text: String) -> String {
    const MAX: usize = 1024;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The metric label of how a job ended: its state word.
fn ended_kind(end: &Ending) -> &'static str {
    match end {
        Ending::Final { state, .. } => state.as_str(),
        Ending::Vanished { .. } => "unknown",
    }
}

fn how(end: &Ending) -> (String, u64) {
    match end {
        Ending::Final {
            state,
            completed,
            reasons,
            message,
            printer_reasons,
        } => {
            let mut how = state.as_str().to_string();
            if !reasons.is_empty() {
                how.push_str(": ");
                how.push_str(&reasons.join(", "));
            }
            if !printer_reasons.is_empty() {
                how.push_str("; printer: ");
                let shown: Vec<&str> = printer_reasons
                    .iter()
                    .take(16)
                    .map(String::as_str)
                    .collect();
                how.push_str(&shown.join(", "));
            }
            if !message.is_empty() {
                how.push_str(&format!(" ({message})"));
            }
            (bounded(how), *completed)
        }
        Ending::Vanished { completed } => (
            "unknown: the printer no longer knows the job".to_string(),
            *completed,
        ),
    }
}

impl Worker {
    /// The printer does not answer: its state for the fleet.
    fn unreachable(&self, why: String) {
        self.statuses.update(&self.name, |s| {
            s.state = "unreachable".into();
            replace_reasons(s, false, vec![why]);
        });
    }

    /// Runs for ever: the next open job of this printer, or waits for one.
    pub async fn run(self) {
        loop {
            let open = match self.store.open_jobs(&self.name) {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(printer = %self.name, "cannot read the agent's store: {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            self.statuses.update(&self.name, |s| {
                s.queued_jobs = open.len() as u64;
                s.queued_impressions = open
                    .iter()
                    .map(|j| j.header.impressions.saturating_sub(j.completed))
                    .sum();
            });
            let Some(job) = open.into_iter().next() else {
                self.jobs.notified().await;
                continue;
            };
            if let Err(e) = self.one(job).await {
                tracing::error!(printer = %self.name, "cannot record a job's progress: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }

    fn advance(
        &self,
        job: &HeldJob,
        stage: JobStage,
        device_job: Option<i32>,
        completed: u64,
        events: Vec<pressrun_proto::v1::DeviceEvent>,
    ) -> Result<(), crate::store::StoreError> {
        self.store
            .advance(job, stage, device_job, completed, events)?;
        self.outbox.notify_one();
        Ok(())
    }

    async fn one(&self, job: HeldJob) -> Result<(), crate::store::StoreError> {
        self.seen
            .store(job.completed, std::sync::atomic::Ordering::Relaxed);
        let id = job.header.print_job.clone();
        let name = self.name.clone();
        match job.stage {
            JobStage::Ended => Ok(()),
            JobStage::Submitting => {
                tracing::error!(printer = %name, job = %id, "the agent stopped while submitting this job: its fate is unknown");
                self.advance(
                    &job,
                    JobStage::Ended,
                    None,
                    0,
                    vec![events::ended(
                        &id,
                        &name,
                        "unknown: the agent stopped while submitting it".into(),
                        0,
                    )],
                )
            }
            JobStage::Printing => {
                let device_job = job.device_job.unwrap_or(0);
                tracing::info!(printer = %name, job = %id, device_job, "following a job again after a restart");
                let mut rec = Recorder::new(self, &job, device_job);
                follow(
                    &self.ipp,
                    device_job,
                    job.header.impressions,
                    &self.pacing,
                    &mut |r| rec.take(r),
                )
                .await;
                rec.done().map(|_| ())
            }
            JobStage::Queued => {
                // Submit only to a printer that answers: while it does not, the job stays
                // queued (so it can be withdrawn and moved to another printer).
                let mut wait = self.pacing.backoff;
                loop {
                    match self.ipp.printer().await {
                        Ok(_) => break,
                        Err(e) => {
                            self.unreachable(e.to_string());
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(self.pacing.backoff_max);
                            if self.store.stage(&job.header.run_id, &id)? != Some(JobStage::Queued)
                            {
                                return Ok(());
                            }
                        }
                    }
                }
                // The file is streamed to the printer; check it is there before the
                // job counts as submitted.
                let pdf = job.pdf();
                let problem = match std::fs::metadata(&pdf) {
                    Ok(m) if m.is_file() => None,
                    Ok(_) => Some("the agent's print file is not a regular file".to_string()),
                    Err(e) => Some(format!("the agent cannot read its print file: {e}")),
                };
                if let Some(why) = problem {
                    return self.advance(
                        &job,
                        JobStage::Ended,
                        None,
                        0,
                        vec![events::ended(&id, &name, format!("not printed: {why}"), 0)],
                    );
                }
                let before = life_count(&name, self.snmp.as_deref()).await;
                self.advance(&job, JobStage::Submitting, None, 0, Vec::new())?;
                let doc = Document {
                    pdf,
                    name: format!("{}-{}", job.header.run_id, id),
                    duplex: job.header.duplex,
                    media: Some(job.header.media.clone()).filter(|m| !m.is_empty()),
                    copies: 1,
                };
                let mut rec = Recorder::new(self, &job, 0);
                let result = print_and_follow(
                    &self.ipp,
                    &doc,
                    job.header.impressions,
                    &self.pacing,
                    &mut |r| rec.take(r),
                )
                .await;
                let device_job = rec.done()?;
                if let (Ok((_, end)), Some(before)) = (&result, before) {
                    self.cross_check(&job, device_job, end, before).await?;
                }
                if let Err(e) = result {
                    // A request lost once sent leaves the job's fate unknown: reported
                    // as such (its pieces are reprinted), never sent again blindly.
                    let how = match e {
                        NotPrinted::Lost(_) => format!("unknown: {e}"),
                        _ => format!("not printed: {e}"),
                    };
                    tracing::error!(printer = %name, job = %id, "{how}");
                    self.advance(
                        &job,
                        JobStage::Ended,
                        None,
                        0,
                        vec![events::ended(&id, &name, bounded(how), 0)],
                    )?;
                }
                Ok(())
            }
        }
    }

    /// The SNMP life count over the job against IPP's impressions: a disagreement is an
    /// event (the ledger counts it) and a metric.
    async fn cross_check(
        &self,
        job: &HeldJob,
        device_job: i32,
        end: &Ending,
        before: u32,
    ) -> Result<(), crate::store::StoreError> {
        let (_, ipp) = how(end);
        let Some(after) = life_count(&self.name, self.snmp.as_deref()).await else {
            return Ok(());
        };
        match LifeCountWitness::start(before).judge(after, ipp) {
            Verdict::Agree { impressions } => {
                tracing::info!(printer = %self.name, job = %job.header.print_job, impressions, "SNMP life count agrees with IPP");
                Ok(())
            }
            Verdict::Disagree { ipp, snmp } => {
                metrics::counter!("pressrun_agent_witness_disagreements_total", "printer" => self.name.clone())
                    .increment(1);
                tracing::warn!(printer = %self.name, job = %job.header.print_job, ipp, snmp, "SNMP and IPP disagree");
                self.advance(
                    job,
                    JobStage::Ended,
                    None,
                    0,
                    vec![events::disagreement(
                        &job.header.print_job,
                        &self.name,
                        format!(
                            "ipp job {device_job}: {ipp} impressions completed, SNMP prtMarkerLifeCount went from {before} to {after} ({snmp})"
                        ),
                    )],
                )
            }
        }
    }

    /// A new confirmed count of the current job: the impressions it adds.
    fn counted(&self, n: u64) {
        let before = self.seen.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        if n > before {
            metrics::counter!("pressrun_agent_impressions_total", "printer" => self.name.clone())
                .increment(n - before);
            self.statuses
                .update(&self.name, |s| s.impressions_printed += n - before);
        }
    }

    /// Records one step the IPP driver reported.
    fn report(
        &self,
        job: &HeldJob,
        device_job: i32,
        r: Report,
    ) -> Result<(), crate::store::StoreError> {
        let id = &job.header.print_job;
        let name = &self.name;
        match r {
            Report::Waiting { attempt, why } => {
                tracing::warn!(printer = %name, job = %id, attempt, "waiting for the printer: {why}");
                self.unreachable(why);
                Ok(())
            }
            Report::Accepted { job_id } => {
                tracing::info!(printer = %name, job = %id, device_job = job_id, "printer accepted the job");
                self.advance(
                    job,
                    JobStage::Printing,
                    Some(job_id),
                    0,
                    vec![events::accepted(id, name, job_id)],
                )?;
                if let Some(tx) = &self.inserter {
                    let pieces = job
                        .header
                        .pieces
                        .iter()
                        .map(|p| {
                            (
                                p.piece.clone(),
                                p.sheets,
                                u32::from_str_radix(&p.feeders, 16).unwrap_or(0),
                            )
                        })
                        .collect();
                    let on_paper = if job.header.origin.is_empty() {
                        id.clone()
                    } else {
                        job.header.origin.clone()
                    };
                    let d = Declare {
                        run: job.header.run_id.clone(),
                        job: on_paper,
                        print_job: id.clone(),
                        pieces,
                    };
                    if tx.try_send(d).is_err() {
                        tracing::error!(printer = %name, job = %id, "the inserter driver does not take the job");
                    }
                }
                Ok(())
            }
            Report::Step(Step::Progress(n)) => {
                self.counted(n);
                self.advance(
                    job,
                    JobStage::Printing,
                    None,
                    n,
                    vec![events::impressions(id, name, n, device_job)],
                )
            }
            Report::Step(Step::Ended(end)) => {
                if let Ending::Final {
                    printer_reasons, ..
                } = &end
                    && !printer_reasons.is_empty()
                {
                    // What stopped the job, seen as it ended (a condition shorter than
                    // the printer watch's poll is not missed).
                    self.statuses
                        .update(name, |s| replace_reasons(s, false, printer_reasons.clone()));
                }
                let (how, completed) = how(&end);
                self.counted(completed);
                let kind = ended_kind(&end).to_string();
                metrics::counter!("pressrun_agent_jobs_ended_total", "printer" => name.clone(), "how" => kind)
                    .increment(1);
                tracing::info!(printer = %name, job = %id, %how, completed, "job ended");
                self.advance(
                    job,
                    JobStage::Ended,
                    None,
                    completed,
                    vec![
                        events::impressions(id, name, completed, device_job),
                        events::ended(id, name, how, completed),
                    ],
                )
            }
            Report::Step(Step::Beyond {
                polled,
                impressions,
            }) => self.advance(
                job,
                JobStage::Printing,
                None,
                0,
                vec![events::disagreement(
                    id,
                    name,
                    format!("ipp job {device_job}: {polled} impressions completed, the job has {impressions}"),
                )],
            ),
            Report::Step(Step::Regressed { seen, polled }) => {
                tracing::warn!(printer = %name, job = %id, seen, polled, "the printer's count went down: the higher count stands");
                Ok(())
            }
            Report::Step(Step::Same) => Ok(()),
            Report::PollFailed { why } => {
                self.unreachable(why);
                Ok(())
            }
        }
    }
}

/// Polls the printer's own state (Get-Printer-Attributes) every `every` for the fleet view.
pub async fn watch_printer(
    name: String,
    ipp: IppPrinter,
    statuses: Arc<Statuses>,
    every: Duration,
) {
    loop {
        let up = ipp.printer().await;
        metrics::gauge!("pressrun_agent_printer_up", "printer" => name.clone()).set(
            if matches!(&up, Ok(p) if p.state != 5) {
                1.0
            } else {
                0.0
            },
        );
        match up {
            Ok(p) => statuses.update(&name, |s| {
                s.state = match p.state {
                    3 => "idle",
                    4 => "processing",
                    5 => "stopped",
                    _ => "unknown",
                }
                .into();
                replace_reasons(
                    s,
                    false,
                    p.reasons.iter().map(|r| r.keyword.clone()).collect(),
                );
                replace_supplies(
                    s,
                    false,
                    p.markers
                        .iter()
                        .map(|(n, l)| pressrun_proto::v1::Supply {
                            name: n.clone(),
                            level: i64::from(*l),
                        })
                        .collect(),
                );
            }),
            Err(e) => statuses.update(&name, |s| {
                s.state = "unreachable".into();
                replace_reasons(s, false, vec![e.to_string()]);
            }),
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls the printer's SNMP agent every `poll_seconds` for the fleet view: the device
/// and printer status, `hrPrinterDetectedErrorState`'s conditions, critical alerts,
/// supplies and input trays, as reasons and supplies prefixed `snmp:`. An agent that
/// does not answer is the reason `snmp:unreachable` (and a metric), never a guess.
pub async fn watch_snmp(name: String, snmp: Arc<SnmpPrinter>, statuses: Arc<Statuses>) {
    let mut failing = false;
    loop {
        match snmp.poll().await {
            Ok(st) => {
                if failing {
                    tracing::info!(printer = %name, "the SNMP agent answers again");
                    failing = false;
                }
                metrics::gauge!("pressrun_agent_snmp_up", "printer" => name.clone()).set(1.0);
                statuses.update(&name, |s| {
                    replace_reasons(s, true, snmp_reasons(&st));
                    replace_supplies(s, true, snmp_supplies(&st));
                });
            }
            Err(e) => {
                metrics::counter!("pressrun_agent_snmp_failures_total", "printer" => name.clone())
                    .increment(1);
                metrics::gauge!("pressrun_agent_snmp_up", "printer" => name.clone()).set(0.0);
                if !failing {
                    tracing::warn!(printer = %name, "the SNMP agent does not answer: {e}");
                    failing = true;
                }
                // What it said before is stale now: no supplies from SNMP until it answers.
                statuses.update(&name, |s| {
                    replace_reasons(s, true, vec![format!("{}unreachable", crate::status::SNMP)]);
                    replace_supplies(s, true, Vec::new());
                });
            }
        }
        tokio::time::sleep(snmp.poll_every()).await;
    }
}

/// What SNMP says is wrong, as `snmp:` reasons.
fn snmp_reasons(st: &crate::snmp::PrinterStatus) -> Vec<String> {
    use crate::snmp::status::{AlertSeverity, DeviceStatus};
    let p = crate::status::SNMP;
    let mut out = Vec::new();
    if !matches!(st.device, DeviceStatus::Running) {
        out.push(format!("{p}device-{}", st.device.as_str()));
    }
    out.extend(
        st.errors
            .conditions
            .iter()
            .map(|c| format!("{p}{}", c.as_str())),
    );
    for a in &st.alerts {
        if a.severity == AlertSeverity::Critical {
            let r = format!("{p}alert-{}", a.code);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Supplies and input trays as percentages (-1 when the printer gives no level).
fn snmp_supplies(st: &crate::snmp::PrinterStatus) -> Vec<pressrun_proto::v1::Supply> {
    use crate::snmp::status::Amount;
    let p = crate::status::SNMP;
    let percent = |level: Amount, max: Amount| match (level, max) {
        (Amount::Value(l), Amount::Value(m)) if m > 0 => i64::from(l.min(m)) * 100 / i64::from(m),
        _ => -1,
    };
    let supplies = st.supplies.iter().map(|s| pressrun_proto::v1::Supply {
        name: format!(
            "{p}{}",
            s.description.as_deref().map_or_else(
                || format!("supply {}", s.index),
                |d| d.chars().take(64).collect()
            )
        ),
        level: percent(s.level, s.max),
    });
    let trays = st.inputs.iter().map(|t| pressrun_proto::v1::Supply {
        name: format!(
            "{p}tray {}",
            t.name
                .as_deref()
                .map_or_else(|| t.index.to_string(), |n| n.chars().take(64).collect())
        ),
        level: percent(t.level, t.max),
    });
    supplies.chain(trays).take(32).collect()
}
