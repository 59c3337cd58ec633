use super::*;

/// A job of `pieces` duplex pieces of two sheets each (four impressions per piece).
fn job(id: &str, pieces: u32) -> JobPlan {
    JobPlan {
        print_job: id.into(),
        origin: id.into(),
        pieces: (1..=pieces)
            .map(|p| PiecePlan {
                piece: format!("{p:06}"),
                sheet_last_impression: vec![u64::from(p) * 4 - 2, u64::from(p) * 4],
            })
            .collect(),
    }
}

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("state.sqlite")).unwrap();
    (dir, l)
}

fn inserted(job: &str, piece: u32, outcome: Outcome, seq: u64) -> Event {
    Event::Inserted {
        print_job: job.into(),
        piece: format!("{piece:06}"),
        outcome,
        reason: (outcome != Outcome::Ok).then(|| "test".into()),
        inserter: "ins1".into(),
        seq,
    }
}

fn impressions(job: &str, completed: u64) -> Event {
    Event::Impressions {
        print_job: job.into(),
        printer: "p1".into(),
        completed,
        evidence: "ipp job 1".into(),
    }
}

fn sent(job: &str, printer: &str) -> Event {
    Event::Sent {
        print_job: job.into(),
        printer: printer.into(),
        device_job: "1".into(),
    }
}

#[test]
fn a_run_printed_and_inserted_is_complete() {
    let (_d, mut l) = open();
    assert_eq!(l.register("r", &[job("J000001", 3)]).unwrap(), 1);
    // Registering again (a resumed run) changes nothing.
    assert_eq!(l.register("r", &[job("J000001", 3)]).unwrap(), 0);
    let r = l.reconcile("r").unwrap();
    assert_eq!((r.expected, r.printed, r.complete), (3, 0, false));
    assert_eq!(r.unresolved_pieces.len(), 3);
    l.record("r", &[sent("J000001", "p1"), impressions("J000001", 6)])
        .unwrap();
    let r = l.reconcile("r").unwrap();
    // Impression 6 completes sheet 1 of piece 2: piece 1 printed, piece 2 half.
    assert_eq!((r.printed, r.sheets_printed), (1, 3));
    l.record("r", &[impressions("J000001", 12)]).unwrap();
    let batch: Vec<Event> = (1..=3)
        .map(|p| inserted("J000001", p, Outcome::Ok, p.into()))
        .collect();
    assert!(l.record("r", &batch).unwrap().is_empty());
    let r = l.reconcile("r").unwrap();
    assert_eq!(
        (
            r.expected,
            r.printed,
            r.inserted_ok,
            r.unresolved,
            r.complete
        ),
        (3, 3, 3, 0, true)
    );
    assert_eq!(r.by_printer["p1"], 6);
    assert_eq!(r.by_inserter["ins1"]["ok"], 3);
    let events = l.events("r").unwrap();
    let count = |e: &str| events.iter().filter(|x| x.event == e).count();
    assert_eq!(
        (
            count("assembled"),
            count("sent"),
            count("printed"),
            count("inserted")
        ),
        (6, 6, 6, 3)
    );
    assert!(
        events
            .iter()
            .filter(|e| e.event == "printed")
            .all(|e| e.device.as_deref() == Some("p1"))
    );
}

#[test]
fn device_reports_that_do_not_fit_are_kept_but_not_applied() {
    let (_d, mut l) = open();
    l.register("r", &[job("J000001", 2)]).unwrap();
    let found = l
        .record(
            "r",
            &[
                impressions("J000001", 9),
                impressions("J000002", 1),
                inserted("J000001", 7, Outcome::Ok, 1),
                impressions("J000001", 4),
                impressions("J000001", 3),
                inserted("J000001", 1, Outcome::Ok, 2),
                inserted("J000001", 1, Outcome::Jammed, 3),
            ],
        )
        .unwrap();
    assert!(matches!(
        found[0],
        Finding::Implausible { completed: 9, .. }
    ));
    assert!(matches!(found[1], Finding::UnknownJob { .. }));
    assert!(matches!(found[2], Finding::UnexpectedPiece { .. }));
    assert!(
        matches!(found[3], Finding::Implausible { completed: 3, .. }),
        "{found:?}"
    );
    assert!(matches!(found[4], Finding::Duplicate { .. }));
    let r = l.reconcile("r").unwrap();
    // The first report stands; the duplicate is counted, once.
    assert_eq!(
        (
            r.inserted_ok,
            r.duplicates,
            r.disagreements,
            r.sheets_printed
        ),
        (1, 1, 4, 2)
    );
}

#[test]
fn reprints_keep_the_piece_and_an_operator_resolves_the_rest() {
    let (_d, mut l) = open();
    l.register("r", &[job("J000001", 3)]).unwrap();
    l.record(
        "r",
        &[
            sent("J000001", "p1"),
            impressions("J000001", 12),
            inserted("J000001", 1, Outcome::Ok, 1),
            inserted("J000001", 2, Outcome::Jammed, 2),
            inserted("J000001", 3, Outcome::Diverted, 3),
        ],
    )
    .unwrap();
    let r = l.reconcile("r").unwrap();
    assert_eq!((r.inserted_ok, r.unresolved, r.by_reason.len()), (1, 2, 2));
    // Piece 2 is reprinted in its own job, keeping its id.
    let mut reprint = job("J000001", 2);
    reprint.print_job = "J000001R1".into();
    reprint.pieces.remove(0);
    reprint.pieces[0].sheet_last_impression = vec![2, 4];
    l.register("r", &[reprint]).unwrap();
    l.record(
        "r",
        &[
            sent("J000001R1", "p2"),
            impressions("J000001R1", 4),
            inserted("J000001R1", 2, Outcome::Ok, 4),
        ],
    )
    .unwrap();
    let r = l.reconcile("r").unwrap();
    assert_eq!(
        (r.inserted_ok, r.reprinted, r.unresolved, r.print_jobs),
        (2, 1, 1, 1)
    );
    // The reprint's two sheets are confirmed by the same printer's count.
    assert_eq!(r.by_printer["p1"], 8);
    let three: PieceId = "J000001/3".parse().unwrap();
    let one: PieceId = "J000001/000001".parse().unwrap();
    assert!(matches!(
        l.resolve("r", &one, "op", "x"),
        Err(LedgerError::AlreadyOk { .. })
    ));
    assert!(matches!(
        l.resolve("r", &three, "op", " "),
        Err(LedgerError::NoReason)
    ));
    let missing: PieceId = "J000009/1".parse().unwrap();
    assert!(matches!(
        l.resolve("r", &missing, "op", "x"),
        Err(LedgerError::NoSuchPiece { .. })
    ));
    l.resolve("r", &three, "op", "destroyed, customer called")
        .unwrap();
    let r = l.reconcile("r").unwrap();
    assert_eq!((r.resolved, r.unresolved, r.complete), (1, 0, true));
    let last = l.events("r").unwrap().pop().unwrap();
    assert_eq!(
        (last.event.as_str(), last.device.as_deref()),
        ("resolved", Some("op"))
    );
    // A reprint of a piece its origin does not have is refused.
    let mut bad = job("J000001", 1);
    bad.print_job = "J000001R2".into();
    bad.pieces[0].piece = "000099".into();
    assert!(matches!(
        l.register("r", &[bad]),
        Err(LedgerError::ReprintOfUnknown { .. })
    ));
    // A reprint of a piece inserted OK (or resolved) is refused, and changes nothing.
    for done in [1, 3] {
        let mut again = job("J000001", 1);
        again.print_job = format!("J000001R{}", 2 + done);
        again.pieces[0].piece = format!("{done:06}");
        assert!(matches!(
            l.register("r", &[again]),
            Err(LedgerError::ReprintOfDone { .. })
        ));
    }
    let r = l.reconcile("r").unwrap();
    assert_eq!((r.inserted_ok, r.resolved, r.complete), (2, 1, true));
}

#[test]
fn numbered_batches_are_recorded_once_and_jobs_show_where_they_are() {
    let (_d, mut l) = open();
    l.register("r", &[job("J000001", 2), job("J000002", 1)])
        .unwrap();
    let queued = Event::Queued {
        print_job: "J000001".into(),
        printer: "p1".into(),
        agent: "a1".into(),
    };
    let batch = [queued, sent("J000001", "p1"), impressions("J000001", 4)];
    let numbered = |n| Batch {
        run: "r",
        events: &batch,
        numbered: Some(("a1", n)),
    };
    l.record_group(&[numbered(1)]).unwrap();
    // The same batch again (an agent that reconnected) and an older one: skipped.
    l.record_group(&[numbered(1), numbered(0)]).unwrap();
    assert_eq!(l.last_recorded("a1").unwrap(), 1);
    assert_eq!(l.last_recorded("a2").unwrap(), 0);
    let r = l.reconcile("r").unwrap();
    assert_eq!(r.sheets_printed, 2);
    // The same acceptance reported without a number does not reset the count either.
    l.record("r", &[sent("J000001", "p1")]).unwrap();
    l.record(
        "r",
        &[Event::Ended {
            print_job: "J000001".into(),
            printer: "p1".into(),
            how: "aborted: media-jam".into(),
            completed: 4,
        }],
    )
    .unwrap();
    let jobs = l.jobs("r").unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].queued_to.as_deref(), Some("a1/p1"));
    assert_eq!(jobs[0].completed, 4);
    assert_eq!(jobs[0].ended.as_deref(), Some("aborted: media-jam"));
    assert_eq!(jobs[1].printer, None);
    // Piece 1 is printed, piece 2 is not: both are open until the inserter says OK.
    l.record("r", &[inserted("J000001", 1, Outcome::Ok, 1)])
        .unwrap();
    let open: Vec<String> = l
        .open_pieces("r", "J000001")
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(open, ["J000001/000002"]);
}

#[test]
fn the_event_log_is_append_only_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let mut l = Ledger::open(&path).unwrap();
    l.register("r", &[job("J000001", 1)]).unwrap();
    drop(l);
    let conn = Connection::open(&path).unwrap();
    let e = conn
        .execute("UPDATE ledger_events SET event='printed'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn.execute("DELETE FROM ledger_events", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.events("r").unwrap().len(), 2);
    assert!(matches!(
        l.reconcile("nope"),
        Err(LedgerError::NoSuchRun { .. })
    ));
}

#[test]
fn piece_names() {
    let p: PieceId = "J000001/42".parse().unwrap();
    assert_eq!(p.to_string(), "J000001/000042");
    assert!("J000001".parse::<PieceId>().is_err());
    assert!("J00/0001/2".parse::<PieceId>().is_err());
    assert!("../x/1".parse::<PieceId>().is_err());
}

#[test]
fn the_writer_commits_many_devices_batches_and_answers_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let mut l = Ledger::open(&path).unwrap();
    let jobs: Vec<JobPlan> = (1..=4).map(|j| job(&format!("J00000{j}"), 50)).collect();
    l.register("r", &jobs).unwrap();
    let w = Writer::start(l);
    std::thread::scope(|s| {
        for j in 1..=4 {
            let w = w.clone();
            s.spawn(move || {
                let id = format!("J00000{j}");
                w.record("r", vec![sent(&id, "p1")]).unwrap();
                for done in (10..=200).step_by(10) {
                    assert!(
                        w.record("r", vec![impressions(&id, done)])
                            .unwrap()
                            .is_empty()
                    );
                }
                for p in 1..=50 {
                    let found = w
                        .record("r", vec![inserted(&id, p, Outcome::Ok, p.into())])
                        .unwrap();
                    assert!(found.is_empty());
                }
                let again = w
                    .record("r", vec![inserted(&id, 1, Outcome::Ok, 99)])
                    .unwrap();
                assert!(matches!(again[0], Finding::Duplicate { .. }));
            });
        }
    });
    drop(w);
    let r = Ledger::open(&path).unwrap().reconcile("r").unwrap();
    assert_eq!(
        (r.inserted_ok, r.sheets_printed, r.duplicates, r.complete),
        (200, 400, 4, true)
    );
}
