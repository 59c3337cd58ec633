//! Which printer takes a print job: a capable printer that is up, with the least work
//! queued. Plain data in, a choice out; the same inputs always give the same choice.

/// A printer as routing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub agent: String,
    pub printer: String,
    pub duplex: bool,
    /// Attached, and not stopped, down or unreachable.
    pub up: bool,
    /// Impressions handed to it and not yet confirmed.
    pub queued_impressions: u64,
}

/// What a print job needs of a printer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    pub duplex: bool,
    pub impressions: u64,
}

/// The index of the printer that takes a job with `needs`, or `None` if no capable
/// printer is up. Ties go to the first by agent and printer name.
pub fn choose(needs: Needs, candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.up && (c.duplex || !needs.duplex))
        .min_by(|(_, a), (_, b)| {
            (a.queued_impressions, &a.agent, &a.printer).cmp(&(
                b.queued_impressions,
                &b.agent,
                &b.printer,
            ))
        })
        .map(|(i, _)| i)
}

/// Routes jobs one after the other, counting each choice as queued work, so that a run's
/// jobs spread over the printers. Returns, per job, the chosen candidate.
pub fn spread(jobs: &[Needs], candidates: &mut [Candidate]) -> Vec<Option<usize>> {
    jobs.iter()
        .map(|&needs| {
            let i = choose(needs, candidates)?;
            candidates[i].queued_impressions += needs.impressions;
            Some(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(name: &str, duplex: bool, up: bool, queued: u64) -> Candidate {
        Candidate {
            agent: "a".into(),
            printer: name.into(),
            duplex,
            up,
            queued_impressions: queued,
        }
    }

    #[test]
    fn a_duplex_job_goes_to_a_duplex_printer_that_is_up() {
        let c = [
            printer("p1", false, true, 0),
            printer("p2", true, false, 0),
            printer("p3", true, true, 500),
        ];
        let duplex = Needs {
            duplex: true,
            impressions: 10,
        };
        assert_eq!(choose(duplex, &c), Some(2));
        let simplex = Needs {
            duplex: false,
            impressions: 10,
        };
        assert_eq!(choose(simplex, &c), Some(0));
        assert_eq!(choose(duplex, &c[..2]), None);
    }

    #[test]
    fn jobs_spread_over_printers_by_queued_work() {
        let mut c = [printer("p1", true, true, 0), printer("p2", true, true, 0)];
        let job = Needs {
            duplex: true,
            impressions: 100,
        };
        let big = Needs {
            duplex: true,
            impressions: 300,
        };
        assert_eq!(
            spread(&[big, job, job, job], &mut c),
            [Some(0), Some(1), Some(1), Some(1)]
        );
        assert_eq!(
            (c[0].queued_impressions, c[1].queued_impressions),
            (300, 300)
        );
    }
}
