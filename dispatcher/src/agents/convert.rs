//! An agent's events as the ledger records them. What crosses the wire is checked: an
//! event with no kind, an outcome the ledger does not know, or an over-long name refuses
//! the whole batch (the agent keeps it and the operator sees why).

use dispatcher::ledger::{Event, Outcome};
use pressrun_proto::v1::{DeviceEvent, device_event::Kind};

/// Longest print job, device or piece name accepted.
const NAME: usize = 128;
/// Longest evidence or reason text accepted.
const TEXT: usize = 4096;

fn name<'a>(what: &str, s: &'a str) -> Result<&'a str, String> {
    if s.is_empty() || s.len() > NAME || s.chars().any(char::is_control) {
        return Err(format!(
            "{what} {:?} is empty, longer than {NAME} bytes or has control characters",
            s.chars().take(40).collect::<String>()
        ));
    }
    Ok(s)
}

fn text(what: &str, s: &str) -> Result<String, String> {
    if s.len() > TEXT {
        return Err(format!("{what} is longer than {TEXT} bytes"));
    }
    Ok(s.to_string())
}

/// The ledger event of one device event from `agent`.
pub fn event(agent: &str, e: &DeviceEvent) -> Result<Event, String> {
    let print_job = name("print job", &e.print_job)?.to_string();
    let device = name("device", &e.device)?.to_string();
    Ok(match e.kind.as_ref().ok_or("an event without a kind")? {
        Kind::Queued(_) => Event::Queued {
            print_job,
            printer: device,
            agent: agent.to_string(),
        },
        Kind::Accepted(job) => Event::Sent {
            print_job,
            printer: device,
            device_job: name("device job", job)?.to_string(),
        },
        Kind::Impressions(i) => Event::Impressions {
            print_job,
            printer: device,
            completed: i.completed,
            evidence: text("evidence", &i.evidence)?,
        },
        Kind::Ended(end) => Event::Ended {
            print_job,
            printer: device,
            how: text("how", &end.how)?,
            completed: end.completed,
        },
        Kind::Piece(p) => Event::Inserted {
            print_job,
            piece: name("piece", &p.piece)?.to_string(),
            outcome: match p.outcome.as_str() {
                "ok" => Outcome::Ok,
                "diverted" => Outcome::Diverted,
                "jammed" => Outcome::Jammed,
                "pulled" => Outcome::Pulled,
                "unknown" => Outcome::Unknown,
                o => return Err(format!("{o:?} is not a piece outcome")),
            },
            reason: (!p.reason.is_empty())
                .then(|| text("reason", &p.reason))
                .transpose()?,
            inserter: device,
            seq: p.seq,
        },
        Kind::Disagreement(detail) => Event::Disagreement {
            print_job,
            printer: device,
            detail: text("disagreement", detail)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pressrun_proto::v1::PieceReport;

    fn piece(outcome: &str) -> DeviceEvent {
        DeviceEvent {
            print_job: "J000001".into(),
            device: "ins1".into(),
            kind: Some(Kind::Piece(PieceReport {
                piece: "000001".into(),
                outcome: outcome.into(),
                reason: String::new(),
                seq: 7,
            })),
        }
    }

    #[test]
    fn events_are_checked_before_the_ledger_sees_them() {
        assert!(matches!(
            event("a", &piece("ok")),
            Ok(Event::Inserted {
                outcome: Outcome::Ok,
                reason: None,
                seq: 7,
                ..
            })
        ));
        assert!(event("a", &piece("fine")).unwrap_err().contains("fine"));
        let mut e = piece("ok");
        e.kind = None;
        assert!(event("a", &e).is_err());
        e = piece("ok");
        e.print_job = "J".repeat(1000);
        assert!(event("a", &e).is_err());
        e.print_job = "J1\n".into();
        assert!(event("a", &e).is_err());
    }
}
