//! The device events the agent reports to the dispatcher (`pressrun.v1.DeviceEvent`).

use pressrun_proto::v1::{
    DeviceEvent, Impressions, JobEnded, PieceReport, Queued, device_event::Kind,
};

fn event(job: &str, device: &str, kind: Kind) -> DeviceEvent {
    DeviceEvent {
        print_job: job.to_string(),
        device: device.to_string(),
        kind: Some(kind),
    }
}

/// The job is on the agent's disk, verified, queued to `printer`.
pub fn queued(job: &str, printer: &str) -> DeviceEvent {
    event(job, printer, Kind::Queued(Queued {}))
}

/// The printer took the job as its job `device_job`.
pub fn accepted(job: &str, printer: &str, device_job: i32) -> DeviceEvent {
    event(job, printer, Kind::Accepted(device_job.to_string()))
}

/// `job-impressions-completed` reached `completed`.
pub fn impressions(job: &str, printer: &str, completed: u64, device_job: i32) -> DeviceEvent {
    event(
        job,
        printer,
        Kind::Impressions(Impressions {
            completed,
            evidence: format!("ipp job {device_job}"),
        }),
    )
}

/// The printer is done with the job.
pub fn ended(job: &str, printer: &str, how: String, completed: u64) -> DeviceEvent {
    event(job, printer, Kind::Ended(JobEnded { how, completed }))
}

/// The inserter's (or, for `unknown`, the host's) verdict on a piece.
pub fn piece(
    job: &str,
    inserter: &str,
    piece: &str,
    outcome: &str,
    reason: &str,
    seq: u64,
) -> DeviceEvent {
    event(
        job,
        inserter,
        Kind::Piece(PieceReport {
            piece: piece.to_string(),
            outcome: outcome.to_string(),
            reason: reason.to_string(),
            seq,
        }),
    )
}

/// Two witnesses disagree.
pub fn disagreement(job: &str, printer: &str, detail: String) -> DeviceEvent {
    event(job, printer, Kind::Disagreement(detail))
}
