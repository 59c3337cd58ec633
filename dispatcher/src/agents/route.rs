//! Which printer takes a print job: a capable printer that is up, with the least work
//! queued. Plain data in, a choice out; the same inputs always give the same choice.

/// A printer as routing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub agent: String,
    pub printer: String,
    pub duplex: bool,
    /// The media its agent declares it has; empty: not declared, takes any.
    pub media: Vec<String>,
    /// Attached, and not stopped, down or unreachable.
    pub up: bool,
    /// Impressions handed to it and not yet confirmed.
    pub queued_impressions: u64,
}

/// What a print job needs of a printer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    pub duplex: bool,
    /// The profile's media keyword, if it names one.
    pub media: Option<String>,
    pub impressions: u64,
}

impl Candidate {
    /// Whether it can print a job with `needs` (up or not).
    pub fn capable(&self, needs: &Needs) -> bool {
        (self.duplex || !needs.duplex)
            && needs
                .media
                .as_ref()
                .is_none_or(|m| self.media.is_empty() || self.media.contains(m))
    }
}

/// The index of the printer that takes a job with `needs`, or `None` if no capable
/// printer is up. Ties go to the first by agent and printer name.
pub fn choose(needs: &Needs, candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.up && c.capable(needs))
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
        .map(|needs| {
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
            media: Vec::new(),
            up,
            queued_impressions: queued,
        }
    }

    fn needs(duplex: bool, impressions: u64) -> Needs {
        Needs {
            duplex,
            media: None,
            impressions,
        }
    }

    #[test]
    fn a_duplex_job_goes_to_a_duplex_printer_that_is_up() {
        let c = [
            printer("p1", false, true, 0),
            printer("p2", true, false, 0),
            printer("p3", true, true, 500),
        ];
        assert_eq!(choose(&needs(true, 10), &c), Some(2));
        assert_eq!(choose(&needs(false, 10), &c), Some(0));
        assert_eq!(choose(&needs(true, 10), &c[..2]), None);
    }

    #[test]
    fn a_job_on_named_media_goes_to_a_printer_that_has_it_or_declares_none() {
        let mut letter = printer("p1", true, true, 0);
        letter.media = vec!["na_letter_8.5x11in".into()];
        let mut a4 = printer("p2", true, true, 900);
        a4.media = vec!["iso_a4_210x297mm".into(), "iso_a3_297x420mm".into()];
        let any = printer("p3", true, true, 5000);
        let on_a4 = Needs {
            media: Some("iso_a4_210x297mm".into()),
            ..needs(true, 10)
        };
        assert_eq!(
            choose(&on_a4, &[letter.clone(), a4.clone(), any.clone()]),
            Some(1)
        );
        assert_eq!(choose(&on_a4, &[letter.clone(), any]), Some(1));
        assert_eq!(choose(&on_a4, &[letter.clone()]), None);
        // Without media any printer will do: the least loaded.
        assert_eq!(choose(&needs(true, 10), &[a4, letter]), Some(1));
    }

    #[test]
    fn jobs_spread_over_printers_by_queued_work() {
        let mut c = [printer("p1", true, true, 0), printer("p2", true, true, 0)];
        let job = needs(true, 100);
        let big = needs(true, 300);
        assert_eq!(
            spread(&[big, job.clone(), job.clone(), job], &mut c),
            [Some(0), Some(1), Some(1), Some(1)]
        );
        assert_eq!(
            (c[0].queued_impressions, c[1].queued_impressions),
            (300, 300)
        );
    }
}
