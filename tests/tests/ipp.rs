//! The IPP driver against a real IPP Everywhere printer: ippeveprinter (CUPS) on
//! 127.0.0.1 with `tests/peers/ipp-print-command`, which "prints" page by page, can jam
//! on demand and keeps a ground-truth log of the impressions it put out.

use std::path::Path;
use std::time::Duration;

use pressrun_tests::peers::Printer;
use printer_agent::ipp::client::{Document, IppPrinter};
use printer_agent::ipp::driver::{Pacing, Report, follow, print_and_follow};
use printer_agent::ipp::watch::{Ending, JobState, Step};

/// A valid PDF of `pages` empty A4 pages.
fn pdf(pages: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    let mut obj = |out: &mut Vec<u8>, body: String| {
        offsets.push(out.len());
        let n = offsets.len();
        out.extend_from_slice(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    };
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 3)).collect();
    obj(&mut out, "<< /Type /Catalog /Pages 2 0 R >>".into());
    obj(
        &mut out,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    );
    for _ in 0..pages {
        obj(
            &mut out,
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>".into(),
        );
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A print file of `pages` pages written in `dir`.
fn doc(dir: &std::path::Path, name: &str, pages: usize) -> Document {
    let path = dir.join(format!("{name}.pdf"));
    std::fs::write(&path, pdf(pages)).unwrap();
    Document {
        pdf: path,
        name: name.into(),
        duplex: true,
        media: None,
        copies: 1,
    }
}

fn pacing() -> Pacing {
    Pacing {
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        attempts: 200,
        lost_polls: 5,
    }
}

/// The impressions the peer really put out for `job_id` (its ground-truth log).
fn printed(dir: &Path, job_id: i32) -> usize {
    std::fs::read_to_string(dir.join("printed.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("job={job_id} ")))
        .count()
}

#[test]
fn jobs_print_page_by_page_wait_while_busy_jam_and_vanish_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Printer::start_with_ms(dir.path(), 30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let printer = IppPrinter::new(&peer.uri, Duration::from_secs(10)).unwrap();
    rt.block_on(async {
        // A 6-page job: progress only upwards, to 6, completed; the peer printed 6.
        let mut reports = Vec::new();
        let (id, end) = print_and_follow(
            &printer,
            &doc(dir.path(), "J000001", 6),
            6,
            &pacing(),
            &mut |r| reports.push(r),
        )
        .await
        .unwrap();
        let counts: Vec<u64> = reports
            .iter()
            .filter_map(|r| match r {
                Report::Step(Step::Progress(n)) => Some(*n),
                _ => None,
            })
            .collect();
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&6), "{reports:?}");
        assert!(
            matches!(
                end,
                Ending::Final {
                    state: JobState::Completed,
                    completed: 6,
                    ..
                }
            ),
            "{end:?}"
        );
        assert_eq!(printed(dir.path(), id), 6);

        // Two jobs at once: the printer has no queue, so the second waits (busy) and
        // prints after the first.
        let slow = printer.clone();
        let long = doc(dir.path(), "J000002", 20);
        let first = tokio::spawn(async move {
            print_and_follow(&slow, &long, 20, &pacing(), &mut |_| {}).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut waited = 0;
        let (second_id, second) = print_and_follow(
            &printer,
            &doc(dir.path(), "J000003", 4),
            4,
            &pacing(),
            &mut |r| {
                if matches!(r, Report::Waiting { .. }) {
                    waited += 1;
                }
            },
        )
        .await
        .unwrap();
        let (first_id, first) = first.await.unwrap().unwrap();
        assert!(waited > 0, "the second job was never refused as busy");
        assert!(
            matches!(
                first,
                Ending::Final {
                    state: JobState::Completed,
                    completed: 20,
                    ..
                }
            ),
            "{first:?}"
        );
        assert!(
            matches!(
                second,
                Ending::Final {
                    state: JobState::Completed,
                    completed: 4,
                    ..
                }
            ),
            "{second:?}"
        );
        assert_eq!(
            (
                printed(dir.path(), first_id),
                printed(dir.path(), second_id)
            ),
            (20, 4)
        );

        // A jam after impression 3: the job is aborted with the count the peer printed,
        // and the printer says media-jam (with its -report suffix taken off).
        std::fs::write(dir.path().join("jam-after"), "3").unwrap();
        let (jam_id, jammed) = print_and_follow(
            &printer,
            &doc(dir.path(), "J000004", 8),
            8,
            &pacing(),
            &mut |_| {},
        )
        .await
        .unwrap();
        let Ending::Final {
            state,
            completed,
            message,
            printer_reasons,
            ..
        } = &jammed
        else {
            panic!("{jammed:?}")
        };
        assert_eq!((*state, *completed), (JobState::Aborted, 3));
        // What stopped the printer comes with the ending.
        assert_eq!(printer_reasons, &["media-jam"], "{jammed:?}");
        assert!(message.contains("media jam"), "{message:?}");
        assert_eq!(printed(dir.path(), jam_id), 3);
        let status = printer.printer().await.unwrap();
        assert!(
            status
                .reasons
                .iter()
                .any(|r| r.keyword == "media-jam" && r.stops_printing()),
            "{status:?}"
        );

        // A job the printer does not know (as after the 60 s it keeps finished jobs) is
        // vanished: unknown, never done.
        let gone = follow(&printer, 9999, 5, &pacing(), &mut |_| {}).await;
        assert_eq!(gone, Ending::Vanished { completed: 0 });
    });
    // A printer that is not there: the submission gives up, saying why.
    rt.block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nobody = IppPrinter::new(
            &format!("ipp://127.0.0.1:{port}/ipp/print"),
            Duration::from_secs(2),
        )
        .unwrap();
        let mut p = pacing();
        p.attempts = 3;
        let mut waits = 0;
        let e = print_and_follow(&nobody, &doc(dir.path(), "J000005", 1), 1, &p, &mut |r| {
            if matches!(r, Report::Waiting { .. }) {
                waits += 1;
            }
        })
        .await
        .unwrap_err();
        assert_eq!(waits, 2);
        assert!(e.to_string().contains("after 3 attempts"), "{e}");
    });
}
