//! Who calls `dispatcher serve`: the users file (`--users users.toml`), bearer tokens
//! mapped to a user name and roles, the rights each call needs, and the access log that
//! records every checked call — allowed or refused — with the principal's name.
//!
//! The file holds no secret: each user's `token_sha256` is the hex SHA-256 of the token.
//! A token is identified by hashing it and comparing against every entry in constant
//! time. The server reloads the file on SIGHUP; a file that does not check out leaves the
//! users in force unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes and publishes templates; renders previews.
    Author,
    /// Approves or rejects template versions (never their own).
    Approver,
    /// Runs production: submits, watches and cancels runs, prints, attaches printer agents.
    Operator,
    /// Reads: runs, reconciliations, the fleet, the access log.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Author => "author",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

/// A call of the server, as the rights see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    SubmitRun,
    WatchRun,
    CancelRun,
    ListRuns,
    RenderNow,
    AttachAgent,
    PrintRun,
    Reconcile,
    Fleet,
    /// Templates: publish a version, submit it for approval.
    TemplatePublish,
    TemplateSubmit,
    /// Templates: approve or reject a submitted version (never one's own).
    TemplateApprove,
    TemplateReject,
    /// Templates: put an approved version in force, or retire it.
    TemplateSchedule,
    TemplateRetire,
    /// Templates: list, show, in force on a date, fetch.
    TemplateRead,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SubmitRun => "SubmitRun",
            Action::WatchRun => "WatchRun",
            Action::CancelRun => "CancelRun",
            Action::ListRuns => "ListRuns",
            Action::RenderNow => "RenderNow",
            Action::AttachAgent => "Attach",
            Action::PrintRun => "PrintRun",
            Action::Reconcile => "Reconcile",
            Action::Fleet => "Fleet",
            Action::TemplatePublish => "TemplatePublish",
            Action::TemplateSubmit => "TemplateSubmit",
            Action::TemplateApprove => "TemplateApprove",
            Action::TemplateReject => "TemplateReject",
            Action::TemplateSchedule => "TemplateSchedule",
            Action::TemplateRetire => "TemplateRetire",
            Action::TemplateRead => "TemplateRead",
        }
    }

    /// The roles that may make the call (admin may make every call).
    pub fn allowed(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::SubmitRun | Action::CancelRun | Action::PrintRun | Action::AttachAgent => {
                &[Operator, Admin]
            }
            Action::WatchRun | Action::ListRuns | Action::Reconcile | Action::Fleet => {
                &[Operator, Auditor, Admin]
            }
            Action::RenderNow => &[Author, Operator, Admin],
            Action::TemplatePublish | Action::TemplateSubmit => &[Author, Admin],
            Action::TemplateApprove
            | Action::TemplateReject
            | Action::TemplateSchedule
            | Action::TemplateRetire => &[Approver, Admin],
            Action::TemplateRead => &[Author, Approver, Operator, Auditor, Admin],
        }
    }
}

/// One `[[user]]` of the users file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub roles: BTreeSet<Role>,
    token_sha256: [u8; 32],
}

impl User {
    pub fn may(&self, action: Action) -> bool {
        action.allowed().iter().any(|r| self.roles.contains(r))
    }
}

/// Why a users file was refused: the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct UsersError {
    pub path: String,
    /// 1-based; 0 when the whole file is at fault (it cannot be read).
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: toml::Spanned<String>,
    roles: toml::Spanned<Vec<Role>>,
    token_sha256: toml::Spanned<String>,
}

/// The users in force.
#[derive(Clone, Debug, Default)]
pub struct Users {
    users: Vec<User>,
}

/// The users file is small: a bigger one is a mistake (or `/dev/zero`).
const MAX_USERS_FILE: u64 = 1 << 20;

impl Users {
    /// Reads and checks a users file: a regular file of at most 1 MiB; every user with a
    /// name (letters, digits, `.`, `_`, `@`, `-`; at most 64), at least one role and a
    /// 64-hex-digit `token_sha256`; names and tokens unique.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let bytes = pressrun_engine::source::read_regular(
            path,
            MAX_USERS_FILE,
            pressrun_engine::source::FileKind::Text,
        )
        .map_err(|e| UsersError {
            path: shown.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| UsersError {
            path: shown.clone(),
            line: 0,
            message: "not UTF-8 text".into(),
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses the text of a users file named `path` (for the messages).
    pub fn parse(path: &str, text: &str) -> Result<Self, UsersError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |offset: usize, message: String| UsersError {
            path: path.to_string(),
            line: line_of(offset),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            err(at, e.message().trim_end().to_string())
        })?;
        let mut users = Vec::new();
        let mut names = BTreeMap::new();
        let mut tokens = BTreeMap::new();
        for u in raw.user {
            let name = u.name.get_ref();
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
            if !ok {
                return Err(err(
                    u.name.span().start,
                    format!(
                        "user name {name:?}: use 1 to 64 letters, digits, '.', '_', '@' or '-'"
                    ),
                ));
            }
            if let Some(first) = names.insert(name.clone(), u.name.span().start) {
                return Err(err(
                    u.name.span().start,
                    format!(
                        "user {name:?} is declared twice (first at line {})",
                        line_of(first)
                    ),
                ));
            }
            if u.roles.get_ref().is_empty() {
                return Err(err(
                    u.roles.span().start,
                    format!(
                        "user {name:?} has no role: give at least one of author, approver, operator, auditor, admin"
                    ),
                ));
            }
            let hex_text = u.token_sha256.get_ref();
            let mut hash = [0u8; 32];
            if hex_text.len() != 64 || hex::decode_to_slice(hex_text, &mut hash).is_err() {
                return Err(err(
                    u.token_sha256.span().start,
                    format!(
                        "user {name:?}: token_sha256 must be the 64 hex digits of the token's SHA-256 (e.g. `printf %s TOKEN | sha256sum`)"
                    ),
                ));
            }
            if let Some(other) = tokens.insert(hash, name.clone()) {
                return Err(err(
                    u.token_sha256.span().start,
                    format!("users {other:?} and {name:?} have the same token"),
                ));
            }
            users.push(User {
                name: name.clone(),
                roles: u.roles.into_inner().into_iter().collect(),
                token_sha256: hash,
            });
        }
        Ok(Self { users })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user whose token this is. Every entry is compared, in constant time, so the
    /// answer's timing says nothing about which hash matched or how closely.
    pub fn identify(&self, token: &str) -> Option<&User> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for u in &self.users {
            let diff = u
                .token_sha256
                .iter()
                .zip(hash.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(u);
            }
        }
        found
    }
}

/// The principal a call was made by, put into the request's extensions by [`Check`].
#[derive(Clone, Debug)]
pub struct Principal(pub Option<User>);

/// The users file in force and the access log: shared by every service of the server.
pub struct Gate {
    path: PathBuf,
    users: RwLock<Users>,
    log: Mutex<Connection>,
}

impl Gate {
    /// Loads the users file and opens the access log in the run registry's database.
    pub fn open(users: &Path, state: &Path) -> anyhow::Result<Arc<Self>> {
        let loaded = Users::load(users)?;
        let conn = open_log(state)?;
        Ok(Arc::new(Self {
            path: users.to_path_buf(),
            users: RwLock::new(loaded),
            log: Mutex::new(conn),
        }))
    }

    /// Reads the users file again (SIGHUP). A file that does not check out is reported
    /// and the users in force stay as they were.
    pub fn reload(&self) -> Result<usize, UsersError> {
        let users = Users::load(&self.path)?;
        let n = users.len();
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = users;
        Ok(n)
    }

    /// Who holds this token, if anyone.
    pub fn identify(&self, token: &str) -> Option<User> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .identify(token)
            .cloned()
    }

    /// Checks the call's principal against the action's roles and records the attempt
    /// (durably: refused attempts too). `target` names what the call is about (a run).
    pub fn authorize<T>(
        &self,
        req: &tonic::Request<T>,
        action: Action,
        target: &str,
    ) -> Result<String, tonic::Status> {
        let principal = req
            .extensions()
            .get::<Principal>()
            .and_then(|p| p.0.clone());
        let (who, allowed, why) = match &principal {
            None => ("(unknown)".to_string(), false, "no known token".to_string()),
            Some(u) if u.may(action) => (u.name.clone(), true, String::new()),
            Some(u) => (
                u.name.clone(),
                false,
                format!(
                    "{} needs one of the roles {}; {} has {}",
                    action.as_str(),
                    names(action.allowed()),
                    u.name,
                    names(&u.roles.iter().copied().collect::<Vec<_>>())
                ),
            ),
        };
        if let Err(e) = self.record(&who, action, target, allowed, &why) {
            tracing::error!("cannot record the access log: {e}");
            return Err(tonic::Status::unavailable(
                "the access log cannot be written: refused",
            ));
        }
        metrics::counter!("pressrun_access_total", "action" => action.as_str(), "allowed" => if allowed { "yes" } else { "no" })
            .increment(1);
        if allowed {
            Ok(who)
        } else {
            tracing::warn!(principal = %who, action = action.as_str(), %target, "refused: {why}");
            Err(if principal.is_none() {
                tonic::Status::unauthenticated("missing or unknown bearer token")
            } else {
                tonic::Status::permission_denied(why)
            })
        }
    }

    fn record(
        &self,
        who: &str,
        action: Action,
        target: &str,
        allowed: bool,
        why: &str,
    ) -> rusqlite::Result<()> {
        let target: String = target.chars().take(256).collect();
        let conn = self.log.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT INTO access_log (at, principal, action, target, allowed, why)
             VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, ?3, ?4, ?5)",
            params![who, action.as_str(), target, allowed, why],
        )?;
        Ok(())
    }
}

fn names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

const LOG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    why TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
";

fn open_log(state: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(state)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(LOG_SCHEMA)?;
    Ok(conn)
}

/// One row of the access log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    pub seq: i64,
    pub at: String,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub allowed: bool,
    pub why: String,
}

/// The access log of a run registry, oldest first (empty if the server never checked).
pub fn access_log(state: &Path) -> rusqlite::Result<Vec<Access>> {
    let conn = open_log(state)?;
    let mut stmt = conn.prepare(
        "SELECT seq, at, principal, action, target, allowed, why FROM access_log ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Access {
            seq: r.get(0)?,
            at: r.get(1)?,
            principal: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            allowed: r.get(5)?,
            why: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// The server-side interceptor: finds the principal of the call's bearer token and puts
/// it into the request (an unknown token is let through as no principal, so the
/// handler's check refuses it and the attempt is recorded with the action).
#[derive(Clone)]
pub struct Check(pub Arc<Gate>);

impl tonic::service::Interceptor for Check {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let user = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.0.identify(t));
        req.extensions_mut().insert(Principal(user));
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(t: &str) -> String {
        hex::encode(Sha256::digest(t.as_bytes()))
    }

    fn file(users: &[(&str, &str, &str)]) -> String {
        users
            .iter()
            .map(|(n, roles, t)| {
                format!(
                    "[[user]]\nname = \"{n}\"\nroles = [{roles}]\ntoken_sha256 = \"{}\"\n\n",
                    sha(t)
                )
            })
            .collect()
    }

    #[test]
    fn tokens_are_known_by_their_hash_and_roles_give_rights() {
        let u = Users::parse(
            "users.toml",
            &file(&[
                ("ana", "\"operator\"", "t-ana"),
                ("ben", "\"auditor\"", "t-ben"),
                ("root", "\"admin\"", "t-root"),
            ]),
        )
        .unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u.identify("t-ana").unwrap().name, "ana");
        assert!(u.identify("t-an").is_none());
        assert!(u.identify("").is_none());
        let ben = u.identify("t-ben").unwrap();
        assert!(ben.may(Action::Reconcile) && !ben.may(Action::SubmitRun));
        let root = u.identify("t-root").unwrap();
        for a in [
            Action::SubmitRun,
            Action::WatchRun,
            Action::CancelRun,
            Action::ListRuns,
            Action::RenderNow,
            Action::AttachAgent,
            Action::PrintRun,
            Action::Reconcile,
            Action::Fleet,
        ] {
            assert!(root.may(a), "{a:?}");
        }
    }

    #[test]
    fn a_bad_users_file_names_its_line() {
        let good = file(&[("ana", "\"operator\"", "a")]);
        let cases = [
            (
                good.replace("\"operator\"", "\"boss\""),
                3,
                "unknown variant",
            ),
            (good.replace("\"operator\"", ""), 3, "no role"),
            (good.replace(&sha("a"), "abc"), 4, "64 hex digits"),
            (
                good.replace("name = \"ana\"", "name = \"a b\""),
                2,
                "user name",
            ),
            (
                good.replace("name = \"ana\"", "name = \"ana\"\nextra = 1"),
                3,
                "unknown field",
            ),
            (
                format!("{good}{}", file(&[("ana", "\"auditor\"", "b")])),
                7,
                "declared twice",
            ),
            (
                format!("{good}{}", file(&[("ben", "\"auditor\"", "a")])),
                9,
                "same token",
            ),
        ];
        for (text, line, what) in cases {
            let e = Users::parse("users.toml", &text).unwrap_err();
            assert_eq!(e.line, line, "{e}\n{text}");
            assert!(e.to_string().contains(what), "{e}");
            assert!(e.to_string().starts_with("users.toml:"), "{e}");
        }
    }

    #[test]
    fn a_users_file_is_a_small_regular_file() {
        assert!(Users::load(Path::new("/dev/zero")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("users.toml");
        std::fs::write(&big, vec![b'#'; (MAX_USERS_FILE + 1) as usize]).unwrap();
        assert!(Users::load(&big).is_err());
    }

    #[test]
    fn every_check_is_recorded_and_the_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        std::fs::write(&users, file(&[("ben", "\"auditor\"", "t-ben")])).unwrap();
        let state = dir.path().join("state.sqlite");
        let gate = Gate::open(&users, &state).unwrap();
        let ben = gate.identify("t-ben").unwrap();
        let mut req = tonic::Request::new(());
        req.extensions_mut().insert(Principal(Some(ben)));
        assert!(gate.authorize(&req, Action::Reconcile, "r1").is_ok());
        let e = gate.authorize(&req, Action::SubmitRun, "r2").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut anon = tonic::Request::new(());
        anon.extensions_mut().insert(Principal(None));
        let e = gate.authorize(&anon, Action::Fleet, "").unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let log = access_log(&state).unwrap();
        let got: Vec<(&str, &str, bool)> = log
            .iter()
            .map(|a| (a.principal.as_str(), a.action.as_str(), a.allowed))
            .collect();
        assert_eq!(
            got,
            [
                ("ben", "Reconcile", true),
                ("ben", "SubmitRun", false),
                ("(unknown)", "Fleet", false)
            ]
        );
        assert!(log[1].why.contains("operator"), "{:?}", log[1]);
        let conn = Connection::open(&state).unwrap();
        assert!(conn.execute("DELETE FROM access_log", []).is_err());
        assert!(
            conn.execute("UPDATE access_log SET allowed = 1", [])
                .is_err()
        );
        // A reload takes a new file; a broken one leaves the users in force.
        std::fs::write(&users, file(&[("ana", "\"operator\"", "t-ana")])).unwrap();
        assert_eq!(gate.reload().unwrap(), 1);
        assert!(gate.identify("t-ben").is_none() && gate.identify("t-ana").is_some());
        std::fs::write(&users, "[[user]]\nname = 1\n").unwrap();
        assert!(gate.reload().is_err());
        assert!(gate.identify("t-ana").is_some());
    }
}
