//! The folders `dispatcher serve` may read and write: a request names paths, and every
//! path must resolve (symbolic links and `..` followed) inside one of the roots the server
//! was started with; anything else is PERMISSION_DENIED. No request can touch another
//! run's folder outside the output roots, or read a file outside the data roots.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use pressrun_proto::ServiceError;

/// The server's roots, canonical.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    data: Vec<PathBuf>,
    templates: Vec<PathBuf>,
    out: Vec<PathBuf>,
}

fn canonical_all(paths: &[PathBuf], what: &str) -> anyhow::Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p)
                .with_context(|| format!("--{what}-root {} does not exist", p.display()))
        })
        .collect()
}

impl Roots {
    /// Roots from the command line; each must exist.
    pub fn new(data: &[PathBuf], templates: &[PathBuf], out: &[PathBuf]) -> anyhow::Result<Self> {
        Ok(Self {
            data: canonical_all(data, "data")?,
            templates: canonical_all(templates, "template")?,
            out: canonical_all(out, "out")?,
        })
    }

    /// An input file inside a data root.
    pub fn data(&self, path: &str) -> Result<PathBuf, ServiceError> {
        let p = existing(&self.data, path, "data")?;
        if !p.is_file() {
            return Err(ServiceError::InvalidArgument(format!(
                "{path} is not a regular file"
            )));
        }
        Ok(p)
    }

    /// A template folder inside a template root.
    pub fn template(&self, path: &str) -> Result<PathBuf, ServiceError> {
        let p = existing(&self.templates, path, "template")?;
        if !p.is_dir() {
            return Err(ServiceError::InvalidArgument(format!(
                "{path} is not a template folder"
            )));
        }
        Ok(p)
    }

    /// A production profile (a file kept beside templates) inside a template root.
    pub fn profile(&self, path: &str) -> Result<PathBuf, ServiceError> {
        let p = existing(&self.templates, path, "template")?;
        if !p.is_file() {
            return Err(ServiceError::InvalidArgument(format!(
                "{path} is not a production profile file"
            )));
        }
        Ok(p)
    }

    /// Checks a folder the server found by itself (a template's fragment library) is
    /// inside a template root.
    pub fn template_library(&self, dir: &Path) -> Result<(), ServiceError> {
        match std::fs::canonicalize(dir) {
            Ok(p) if inside(&self.templates, &p) => Ok(()),
            Ok(_) => Err(ServiceError::PermissionDenied(format!(
                "the fragment library {} is outside this server's --template-root",
                dir.display()
            ))),
            // A missing library is empty.
            Err(_) => Ok(()),
        }
    }

    /// An output folder (existing or not) inside an output root.
    pub fn out(&self, path: &str) -> Result<PathBuf, ServiceError> {
        let p = resolve(&self.out, path, "out")?;
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(ServiceError::PermissionDenied(format!(
                "{path}: name the output folder inside an --out-root, without `..`"
            )));
        }
        // The longest part that exists is canonicalized (following symbolic links); the
        // rest are plain names.
        let mut existing = p.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            let Some(parent) = existing.parent() else {
                break;
            };
            rest.push(existing.file_name().unwrap_or_default().to_os_string());
            existing = parent;
        }
        let mut full = std::fs::canonicalize(existing)
            .map_err(|e| ServiceError::InvalidArgument(format!("{path}: {e}")))?;
        for r in rest.iter().rev() {
            full.push(r);
        }
        if !inside(&self.out, &full) || full.components().any(|c| c == Component::ParentDir) {
            return Err(denied(path, "out"));
        }
        Ok(full)
    }
}

fn denied(path: &str, what: &str) -> ServiceError {
    ServiceError::PermissionDenied(format!(
        "{path} is outside this server's --{what}-root folders: name a path inside them"
    ))
}

fn inside(roots: &[PathBuf], p: &Path) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

/// A path as named: absolute, or relative to the first root.
fn resolve(roots: &[PathBuf], path: &str, what: &str) -> Result<PathBuf, ServiceError> {
    if roots.is_empty() {
        return Err(ServiceError::PermissionDenied(format!(
            "this server was started without --{what}-root: it reads and writes no {what} paths"
        )));
    }
    if path.is_empty() || path.contains('\0') {
        return Err(ServiceError::InvalidArgument(format!(
            "empty or invalid {what} path"
        )));
    }
    let p = Path::new(path);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        roots[0].join(p)
    })
}

fn existing(roots: &[PathBuf], path: &str, what: &str) -> Result<PathBuf, ServiceError> {
    let p = resolve(roots, path, what)?;
    let c = std::fs::canonicalize(&p)
        .map_err(|e| ServiceError::InvalidArgument(format!("{path}: {e}")))?;
    if !inside(roots, &c) {
        return Err(denied(path, what));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_roots_are_denied() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["data", "out", "tpl", "elsewhere"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("data/in.jsonl"), b"").unwrap();
        std::fs::write(d.join("elsewhere/secret.jsonl"), b"").unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("out/link")).unwrap();
        let roots = Roots::new(&[d.join("data")], &[d.join("tpl")], &[d.join("out")]).unwrap();
        let s = |p: &Path| p.display().to_string();
        assert!(roots.data(&s(&d.join("data/in.jsonl"))).is_ok());
        assert!(roots.data("in.jsonl").is_ok(), "relative to the root");
        let denied =
            |r: Result<PathBuf, ServiceError>| matches!(r, Err(ServiceError::PermissionDenied(_)));
        assert!(denied(roots.data(&s(&d.join("elsewhere/secret.jsonl")))));
        assert!(denied(
            roots.data(&s(&d.join("data/../elsewhere/secret.jsonl")))
        ));
        assert!(roots.out(&s(&d.join("out/run1"))).is_ok());
        assert!(roots.out("run2/sub").is_ok());
        assert!(denied(roots.out(&s(&d.join("elsewhere/run")))));
        assert!(
            denied(roots.out(&s(&d.join("out/link/run")))),
            "a symlink out"
        );
        assert!(denied(roots.out(&s(&d.join("out/new/../../elsewhere")))));
        assert!(denied(roots.out("run/../../elsewhere")));
        assert!(denied(roots.out("/etc")));
        let none = Roots::default();
        assert!(denied(none.out("/tmp/x")));
    }
}
