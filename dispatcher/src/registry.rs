//! The template registry (issue 9, its store and rules): immutable, content-addressed
//! template versions, their lifecycle — draft → submitted → approved (by someone other
//! than the author) or rejected → in force from an effective date (optionally to one) →
//! retired — every transition recorded with who, when and why, and the question a
//! production run asks: which version of a template is approved and in force on a date.
//!
//! A version is `NAME@VERSION` from the template's manifest (`[template] id`, `version`)
//! and holds the template's bundle — every file of the template folder and of its
//! fragment library — under the bundle's hash. Publishing the same files again is a
//! no-op; publishing other files under a version that exists is refused.
//!
//! Dates are calendar days: a version is in force on D when `from <= D` and (no `to`, or
//! `D < to`); of several such versions the one with the latest `from` (then the latest
//! schedule) applies.

use std::fmt;

use jiff::civil::Date;
use pressrun_engine::bundle::Bundle;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// Where a version is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Retired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Submitted => "submitted",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => State::Draft,
            "submitted" => State::Submitted,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "retired" => State::Retired,
            _ => return None,
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template version as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    pub name: String,
    pub version: String,
    /// The bundle's hash (hex): the template's identity.
    pub hash: String,
    pub state: State,
    pub author: String,
    /// In force from this day (set by `schedule`).
    pub from: Option<String>,
    /// Until the day before this one (exclusive), if set.
    pub to: Option<String>,
}

impl Version {
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One recorded transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub seq: i64,
    pub at: String,
    pub event: String,
    pub principal: String,
    pub comment: String,
}

/// What the registry refuses, and why.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no template version {0}")]
    NoSuchVersion(String),
    #[error("no template named {0}")]
    NoSuchTemplate(String),
    #[error("{id} is {state}: {action} needs a version that is {needs}")]
    WrongState {
        id: String,
        state: State,
        action: &'static str,
        needs: &'static str,
    },
    #[error("{id} was published by {author}: its author may not approve or reject it (four eyes)")]
    OwnApproval { id: String, author: String },
    #[error("{id} exists with other content (hash {existing}): publish a new version")]
    Changed { id: String, existing: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{name}: no approved version is in force on {on}")]
    NoneInForce { name: String, on: String },
    #[error("{id} is not in force on {on}: {why}")]
    NotInForce { id: String, on: String, why: String },
    #[error("registry database: {0}")]
    Db(#[from] rusqlite::Error),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS template_files (
    hash TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (hash, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS template_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    hash TEXT NOT NULL,
    state TEXT NOT NULL,
    author TEXT NOT NULL,
    effective_from TEXT,
    effective_to TEXT,
    -- the order of schedules, for ties between versions in force from the same day
    scheduled_seq INTEGER,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS template_events (
    seq INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    event TEXT NOT NULL,
    principal TEXT NOT NULL,
    comment TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS template_events_no_update BEFORE UPDATE ON template_events
    BEGIN SELECT RAISE(ABORT, 'the template history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS template_events_no_delete BEFORE DELETE ON template_events
    BEGIN SELECT RAISE(ABORT, 'the template history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS template_files_no_update BEFORE UPDATE ON template_files
    BEGIN SELECT RAISE(ABORT, 'published template files are immutable'); END;
CREATE TRIGGER IF NOT EXISTS template_files_no_delete BEFORE DELETE ON template_files
    BEGIN SELECT RAISE(ABORT, 'published template files are immutable'); END;
";

/// A lifecycle step: from which state to which, and whether its principal must not be
/// the version's author.
struct Rule {
    action: &'static str,
    from: State,
    needs: &'static str,
    to: State,
    four_eyes: bool,
}

const SUBMIT: Rule = Rule {
    action: "submitted",
    from: State::Draft,
    needs: "a draft",
    to: State::Submitted,
    four_eyes: false,
};
const APPROVE: Rule = Rule {
    action: "approved",
    from: State::Submitted,
    needs: "submitted",
    to: State::Approved,
    four_eyes: true,
};
const REJECT: Rule = Rule {
    action: "rejected",
    from: State::Submitted,
    needs: "submitted",
    to: State::Rejected,
    four_eyes: true,
};
const RETIRE: Rule = Rule {
    action: "retired",
    from: State::Approved,
    needs: "approved",
    to: State::Retired,
    four_eyes: false,
};

/// The registry, in the dispatcher's SQLite database (WAL, `synchronous = FULL`).
pub struct Registry {
    conn: Connection,
}

/// A day as `YYYY-MM-DD`, checked.
pub fn parse_day(s: &str) -> Result<Date, RegistryError> {
    s.parse::<Date>()
        .map_err(|e| RegistryError::Invalid(format!("{s:?} is not a date (YYYY-MM-DD): {e}")))
}

fn split_id(id: &str) -> Result<(&str, &str), RegistryError> {
    id.split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| RegistryError::Invalid(format!("{id:?}: name a version as NAME@VERSION")))
}

impl Registry {
    pub fn open(path: &std::path::Path) -> Result<Self, RegistryError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Publishes a checked template's bundle as the draft `id@version` by `by`. Returns
    /// the version and whether it is new (the same files again change nothing).
    pub fn publish(
        &mut self,
        bundle: &Bundle,
        id: &str,
        version: &str,
        by: &str,
    ) -> Result<(Version, bool), RegistryError> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        };
        if !ok(id) || !ok(version) {
            return Err(RegistryError::Invalid(format!(
                "{id}@{version}: a template id and version are 1 to 64 letters, digits, '.', '_', '-' or '+'"
            )));
        }
        let tx = self.conn.transaction()?;
        if let Some(existing) = get(&tx, id, version)? {
            if existing.hash != bundle.hash {
                return Err(RegistryError::Changed {
                    id: existing.id(),
                    existing: existing.hash,
                });
            }
            return Ok((existing, false));
        }
        for (path, bytes) in &bundle.files {
            tx.execute(
                "INSERT OR IGNORE INTO template_files (hash, path, bytes) VALUES (?1, ?2, ?3)",
                params![bundle.hash, path, bytes],
            )?;
        }
        tx.execute(
            "INSERT INTO template_versions (name, version, hash, state, author)
             VALUES (?1, ?2, ?3, 'draft', ?4)",
            params![id, version, bundle.hash, by],
        )?;
        event(
            &tx,
            id,
            version,
            "published",
            by,
            &format!("hash {}", bundle.hash),
        )?;
        let v = get(&tx, id, version)?.expect("just inserted");
        tx.commit()?;
        Ok((v, true))
    }

    /// Moves `id` by `rule`, checking it and recording who, when and why.
    fn transition(
        &mut self,
        id: &str,
        rule: &Rule,
        by: &str,
        comment: &str,
    ) -> Result<Version, RegistryError> {
        let (name, version) = split_id(id)?;
        let tx = self.conn.transaction()?;
        let v = get(&tx, name, version)?.ok_or_else(|| RegistryError::NoSuchVersion(id.into()))?;
        if v.state != rule.from {
            return Err(RegistryError::WrongState {
                id: v.id(),
                state: v.state,
                action: rule.action,
                needs: rule.needs,
            });
        }
        if rule.four_eyes && v.author == by {
            return Err(RegistryError::OwnApproval {
                id: v.id(),
                author: v.author,
            });
        }
        tx.execute(
            "UPDATE template_versions SET state=?3 WHERE name=?1 AND version=?2",
            params![name, version, rule.to.as_str()],
        )?;
        event(&tx, name, version, rule.action, by, comment)?;
        let v = get(&tx, name, version)?.expect("exists");
        tx.commit()?;
        Ok(v)
    }

    /// Draft → submitted (for approval).
    pub fn submit(&mut self, id: &str, by: &str, comment: &str) -> Result<Version, RegistryError> {
        self.transition(id, &SUBMIT, by, comment)
    }

    /// Submitted → approved, by someone other than its author, with a comment.
    pub fn approve(&mut self, id: &str, by: &str, comment: &str) -> Result<Version, RegistryError> {
        if comment.trim().is_empty() {
            return Err(RegistryError::Invalid("an approval needs a comment".into()));
        }
        self.transition(id, &APPROVE, by, comment)
    }

    /// Submitted → rejected, by someone other than its author, with a reason.
    pub fn reject(&mut self, id: &str, by: &str, comment: &str) -> Result<Version, RegistryError> {
        if comment.trim().is_empty() {
            return Err(RegistryError::Invalid("a rejection needs a reason".into()));
        }
        self.transition(id, &REJECT, by, comment)
    }

    /// Approved → retired on `today`: in force no more from that day (its schedule ends
    /// there, or earlier if it ended earlier), and still the answer for the days it was.
    pub fn retire(
        &mut self,
        id: &str,
        by: &str,
        comment: &str,
        today: Date,
    ) -> Result<Version, RegistryError> {
        let v = self.transition(id, &RETIRE, by, comment)?;
        let day = today.to_string();
        let ends = match &v.to {
            Some(to) if *to <= day => to.clone(),
            _ => day,
        };
        self.conn.execute(
            "UPDATE template_versions SET effective_to=?3
             WHERE name=?1 AND version=?2 AND effective_from IS NOT NULL",
            params![v.name, v.version, ends],
        )?;
        Ok(get(&self.conn, &v.name, &v.version)?.expect("exists"))
    }

    /// Puts an approved version in force from `from` (inclusive) to `to` (exclusive).
    pub fn schedule(
        &mut self,
        id: &str,
        from: Date,
        to: Option<Date>,
        by: &str,
    ) -> Result<Version, RegistryError> {
        if let Some(to) = to
            && to <= from
        {
            return Err(RegistryError::Invalid(format!(
                "the end {to} is not after the start {from}"
            )));
        }
        let (name, version) = split_id(id)?;
        let tx = self.conn.transaction()?;
        let v = get(&tx, name, version)?.ok_or_else(|| RegistryError::NoSuchVersion(id.into()))?;
        if v.state != State::Approved {
            return Err(RegistryError::WrongState {
                id: v.id(),
                state: v.state,
                action: "schedule",
                needs: "approved",
            });
        }
        let seq: i64 = tx.query_row(
            "SELECT coalesce(max(scheduled_seq), 0) + 1 FROM template_versions",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE template_versions SET effective_from=?3, effective_to=?4, scheduled_seq=?5
             WHERE name=?1 AND version=?2",
            params![
                name,
                version,
                from.to_string(),
                to.map(|d| d.to_string()),
                seq
            ],
        )?;
        let comment = match to {
            Some(to) => format!("in force from {from} to {to} (exclusive)"),
            None => format!("in force from {from}"),
        };
        event(&tx, name, version, "scheduled", by, &comment)?;
        let v = get(&tx, name, version)?.expect("exists");
        tx.commit()?;
        Ok(v)
    }

    /// The approved version of `name` in force on `on`.
    pub fn in_force(&self, name: &str, on: Date) -> Result<Version, RegistryError> {
        let day = on.to_string();
        let found = self
            .conn
            .prepare_cached(
                "SELECT name, version, hash, state, author, effective_from, effective_to
                 FROM template_versions
                 WHERE name=?1 AND state IN ('approved', 'retired') AND effective_from <= ?2
                   AND (effective_to IS NULL OR ?2 < effective_to)
                 ORDER BY effective_from DESC, scheduled_seq DESC LIMIT 1",
            )?
            .query_row(params![name, day], row)
            .optional()?;
        match found {
            Some(v) => Ok(v),
            None if self.versions_of(name)?.is_empty() => {
                Err(RegistryError::NoSuchTemplate(name.into()))
            }
            None => Err(RegistryError::NoneInForce {
                name: name.into(),
                on: day,
            }),
        }
    }

    /// What a production run may use: `NAME` (the version in force on the run date) or
    /// `NAME@VERSION` (that version, which must be approved and in force on that date).
    pub fn for_run(&self, spec: &str, run_date: Date) -> Result<Version, RegistryError> {
        let Some((name, version)) = spec.split_once('@') else {
            return self.in_force(spec, run_date);
        };
        let v = get(&self.conn, name, version)?
            .ok_or_else(|| RegistryError::NoSuchVersion(spec.into()))?;
        let on = run_date.to_string();
        let why = match (&v.state, &v.from, &v.to) {
            (State::Approved | State::Retired, Some(from), to) => {
                if on < *from {
                    Some(format!("in force only from {from}"))
                } else if to.as_ref().is_some_and(|t| on >= *t) {
                    Some(format!(
                        "in force only until {}",
                        to.as_deref().unwrap_or("")
                    ))
                } else {
                    None
                }
            }
            (State::Approved, None, _) => Some("approved but not scheduled".to_string()),
            (state, _, _) => Some(format!("it is {state}, not approved")),
        };
        match why {
            None => Ok(v),
            Some(why) => Err(RegistryError::NotInForce {
                id: v.id(),
                on,
                why,
            }),
        }
    }

    /// One version.
    pub fn show(&self, id: &str) -> Result<(Version, Vec<Transition>), RegistryError> {
        let (name, version) = split_id(id)?;
        let v = get(&self.conn, name, version)?
            .ok_or_else(|| RegistryError::NoSuchVersion(id.into()))?;
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, event, principal, comment FROM template_events
             WHERE name=?1 AND version=?2 ORDER BY seq",
        )?;
        let history = stmt
            .query_map(params![name, version], |r| {
                Ok(Transition {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    principal: r.get(3)?,
                    comment: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((v, history))
    }

    /// Every version, by name and publication order.
    pub fn list(&self) -> Result<Vec<Version>, RegistryError> {
        let mut stmt = self.conn.prepare(
            "SELECT v.name, v.version, v.hash, v.state, v.author, v.effective_from, v.effective_to
             FROM template_versions v
             JOIN (SELECT name, version, min(seq) AS first FROM template_events GROUP BY name, version) e
               ON e.name = v.name AND e.version = v.version
             ORDER BY v.name, e.first",
        )?;
        Ok(stmt.query_map([], row)?.collect::<Result<_, _>>()?)
    }

    fn versions_of(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT version FROM template_versions WHERE name=?1")?;
        Ok(stmt
            .query_map(params![name], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// The files of a published version, checked against its hash.
    pub fn bundle(&self, v: &Version) -> Result<Bundle, RegistryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, bytes FROM template_files WHERE hash=?1 ORDER BY path")?;
        let files: Vec<(String, Vec<u8>)> = stmt
            .query_map(params![v.hash], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Bundle::verify(files, &v.hash)
            .map_err(|e| RegistryError::Invalid(format!("{}: stored files damaged: {e}", v.id())))
    }
}

/// A readable diff of two bundles: per file, a unified diff of text (UTF-8) files, the
/// sizes and hashes of other files, and the files only one side has. Empty when equal.
pub fn diff(a_name: &str, a: &Bundle, b_name: &str, b: &Bundle) -> String {
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let left: BTreeMap<&str, &[u8]> = a
        .files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let right: BTreeMap<&str, &[u8]> = b
        .files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let mut paths: Vec<&str> = left.keys().chain(right.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    let short = |c: &[u8]| hex::encode(&Sha256::digest(c)[..8]);
    let mut out = String::new();
    for path in paths {
        match (left.get(path), right.get(path)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => match (std::str::from_utf8(x), std::str::from_utf8(y)) {
                (Ok(x), Ok(y)) => {
                    let d = similar::TextDiff::from_lines(x, y);
                    let _ = write!(
                        out,
                        "{}",
                        d.unified_diff()
                            .context_radius(3)
                            .header(&format!("{a_name}/{path}"), &format!("{b_name}/{path}"))
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "binary {path}: {} bytes ({}) -> {} bytes ({})",
                        x.len(),
                        short(x),
                        y.len(),
                        short(y)
                    );
                }
            },
            (Some(x), None) => {
                let _ = writeln!(out, "only in {a_name}: {path} ({} bytes)", x.len());
            }
            (None, Some(y)) => {
                let _ = writeln!(out, "only in {b_name}: {path} ({} bytes)", y.len());
            }
            (None, None) => {}
        }
    }
    out
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    let state: String = r.get(3)?;
    Ok(Version {
        name: r.get(0)?,
        version: r.get(1)?,
        hash: r.get(2)?,
        state: State::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown state {state:?}").into(),
            )
        })?,
        author: r.get(4)?,
        from: r.get(5)?,
        to: r.get(6)?,
    })
}

fn get(conn: &Connection, name: &str, version: &str) -> rusqlite::Result<Option<Version>> {
    conn.prepare_cached(
        "SELECT name, version, hash, state, author, effective_from, effective_to
         FROM template_versions WHERE name=?1 AND version=?2",
    )?
    .query_row(params![name, version], row)
    .optional()
}

fn event(
    tx: &Transaction,
    name: &str,
    version: &str,
    event: &str,
    by: &str,
    comment: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO template_events (name, version, event, principal, comment, at)
         VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        params![name, version, event, by, comment],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(body: &str) -> Bundle {
        Bundle::from_files(vec![
            (
                "template/template.toml".into(),
                b"[template]\nid = \"t\"\n".to_vec(),
            ),
            ("template/body.xml".into(), body.as_bytes().to_vec()),
        ])
    }

    fn day(s: &str) -> Date {
        parse_day(s).unwrap()
    }

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        (dir, r)
    }

    #[test]
    fn a_diff_shows_changed_lines_and_files_only_one_side_has() {
        let a = bundle("<a>\n<p>one</p>\n</a>\n");
        let mut files = bundle("<a>\n<p>two</p>\n</a>\n").files;
        files.push(("template/assets/logo.png".into(), vec![0xff, 0xd8]));
        let b = Bundle::from_files(files);
        let d = diff("t@1", &a, "t@2", &b);
        assert!(d.contains("--- t@1/template/body.xml"), "{d}");
        assert!(
            d.contains("-<p>one</p>") && d.contains("+<p>two</p>"),
            "{d}"
        );
        assert!(
            d.contains("only in t@2: template/assets/logo.png (2 bytes)"),
            "{d}"
        );
        assert!(!d.contains("template.toml"), "{d}");
        assert_eq!(diff("t@1", &a, "t@1", &a), "");
    }

    #[test]
    fn versions_are_immutable_and_content_addressed() {
        let (_d, mut r) = registry();
        let (v, new) = r.publish(&bundle("<a/>"), "letter", "1.0", "ann").unwrap();
        assert!(new && v.state == State::Draft && v.author == "ann");
        // The same files again: nothing new. Other files under the same version: refused.
        let (again, new) = r.publish(&bundle("<a/>"), "letter", "1.0", "bob").unwrap();
        assert!(!new);
        assert_eq!(again, v);
        let e = r
            .publish(&bundle("<b/>"), "letter", "1.0", "ann")
            .unwrap_err();
        assert!(matches!(e, RegistryError::Changed { .. }), "{e}");
        assert_eq!(r.bundle(&v).unwrap(), bundle("<a/>"));
        assert!(r.publish(&bundle("<a/>"), "a b", "1", "ann").is_err());
    }

    #[test]
    fn four_eyes_and_the_lifecycle_order() {
        let (_d, mut r) = registry();
        r.publish(&bundle("<a/>"), "letter", "1.0", "ann").unwrap();
        // Not submitted yet: cannot be approved or scheduled.
        let e = r.approve("letter@1.0", "bob", "ok").unwrap_err();
        assert!(matches!(e, RegistryError::WrongState { .. }), "{e}");
        r.submit("letter@1.0", "ann", "").unwrap();
        // The author cannot approve their own version; an approval needs a comment.
        let e = r.approve("letter@1.0", "ann", "fine").unwrap_err();
        assert!(matches!(e, RegistryError::OwnApproval { .. }), "{e}");
        assert!(r.approve("letter@1.0", "bob", " ").is_err());
        let e = r
            .schedule("letter@1.0", day("2027-01-01"), None, "bob")
            .unwrap_err();
        assert!(matches!(e, RegistryError::WrongState { .. }), "{e}");
        r.approve("letter@1.0", "bob", "legal checked").unwrap();
        assert!(r.submit("letter@1.0", "ann", "").is_err());
        // A second version is rejected by another principal.
        r.publish(&bundle("<b/>"), "letter", "1.1", "ann").unwrap();
        r.submit("letter@1.1", "ann", "").unwrap();
        assert!(r.reject("letter@1.1", "ann", "no").is_err());
        r.reject("letter@1.1", "cy", "wrong clause").unwrap();
        assert!(
            r.schedule("letter@1.1", day("2027-01-01"), None, "cy")
                .is_err()
        );
        let (v, history) = r.show("letter@1.0").unwrap();
        assert_eq!(v.state, State::Approved);
        let events: Vec<(&str, &str)> = history
            .iter()
            .map(|t| (t.event.as_str(), t.principal.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("published", "ann"),
                ("submitted", "ann"),
                ("approved", "bob")
            ]
        );
        assert_eq!(history[2].comment, "legal checked");
        assert_eq!(
            r.list()
                .unwrap()
                .iter()
                .map(Version::id)
                .collect::<Vec<_>>(),
            ["letter@1.0", "letter@1.1"]
        );
    }

    #[test]
    fn the_version_in_force_on_a_day_at_the_exact_boundaries() {
        let (_d, mut r) = registry();
        for (v, body) in [("1", "<a/>"), ("2", "<b/>")] {
            r.publish(&bundle(body), "letter", v, "ann").unwrap();
            r.submit(&format!("letter@{v}"), "ann", "").unwrap();
            r.approve(&format!("letter@{v}"), "bob", "ok").unwrap();
        }
        r.schedule(
            "letter@1",
            day("2027-01-01"),
            Some(day("2027-07-01")),
            "bob",
        )
        .unwrap();
        r.schedule("letter@2", day("2027-04-01"), None, "bob")
            .unwrap();
        fn on(r: &Registry, d: &str) -> Result<String, RegistryError> {
            r.in_force("letter", day(d)).map(|v| v.version)
        }
        assert!(matches!(
            r.in_force("letter", day("2026-12-31")),
            Err(RegistryError::NoneInForce { .. })
        ));
        assert_eq!(on(&r, "2027-01-01").unwrap(), "1");
        assert_eq!(on(&r, "2027-03-31").unwrap(), "1");
        assert_eq!(on(&r, "2027-04-01").unwrap(), "2");
        assert_eq!(on(&r, "2030-01-01").unwrap(), "2");
        assert!(matches!(
            r.in_force("memo", day("2027-01-01")),
            Err(RegistryError::NoSuchTemplate(_))
        ));
        // A pinned version must be in force on the run date: `to` is exclusive.
        assert!(r.for_run("letter@1", day("2027-06-30")).is_ok());
        let e = r.for_run("letter@1", day("2027-07-01")).unwrap_err();
        assert!(e.to_string().contains("until 2027-07-01"), "{e}");
        let e = r.for_run("letter@2", day("2027-03-31")).unwrap_err();
        assert!(e.to_string().contains("from 2027-04-01"), "{e}");
        // Retired on 2027-05-01: in force no more from that day (version 1 is again),
        // still the answer for the days before; a draft is never used.
        r.retire("letter@2", "bob", "replaced", day("2027-05-01"))
            .unwrap();
        assert_eq!(on(&r, "2027-04-30").unwrap(), "2");
        assert_eq!(on(&r, "2027-05-01").unwrap(), "1");
        assert!(
            r.for_run("letter@2", day("2027-05-01"))
                .unwrap_err()
                .to_string()
                .contains("until 2027-05-01")
        );
        assert!(r.for_run("letter@2", day("2027-04-30")).is_ok());
        assert!(
            r.retire("letter@2", "bob", "again", day("2027-05-02"))
                .is_err()
        );
        r.publish(&bundle("<c/>"), "letter", "3", "ann").unwrap();
        assert!(
            r.for_run("letter@3", day("2027-05-01"))
                .unwrap_err()
                .to_string()
                .contains("draft")
        );
        assert!(
            r.schedule(
                "letter@1",
                day("2027-02-01"),
                Some(day("2027-02-01")),
                "bob"
            )
            .is_err()
        );
        assert!(parse_day("2027-02-30").is_err());
    }

    #[test]
    fn the_history_and_the_files_cannot_be_changed_in_the_database() {
        let (d, mut r) = registry();
        r.publish(&bundle("<a/>"), "letter", "1", "ann").unwrap();
        let conn = Connection::open(d.path().join("r.sqlite")).unwrap();
        assert!(conn.execute("DELETE FROM template_events", []).is_err());
        assert!(
            conn.execute("UPDATE template_events SET principal='x'", [])
                .is_err()
        );
        assert!(
            conn.execute("UPDATE template_files SET bytes=x'00'", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM template_files", []).is_err());
    }
}
