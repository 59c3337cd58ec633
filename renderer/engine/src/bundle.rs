//! Template bundles: a template folder, its fragment library, fonts and assets as one
//! content-addressed set of files, so stateless renderer nodes can cache templates by hash.
//!
//! Paths inside a bundle are relative and use `/`: `template/…` for the template folder
//! and `fragments/…` for the fragment library. The hash is SHA-256 over the files sorted
//! by path, each as `path \0 length \0 bytes`, so the same files always give the same hash.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diag::Diagnostics;
use crate::template::{CompileOptions, Compiled, compile};

/// Largest bundle accepted (fonts and images included).
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// A bundle that cannot be built or used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("bundle is larger than {} MiB", MAX_BUNDLE_BYTES >> 20)]
    TooLarge,
    #[error("bundle path {0:?} is not a safe relative path")]
    BadPath(String),
    #[error("bundle hash mismatch: announced {announced}, content hashes to {actual}")]
    HashMismatch { announced: String, actual: String },
    #[error("template in bundle does not compile:\n{0}")]
    Compile(Diagnostics),
    #[error("cannot materialize bundle: {0}")]
    Materialize(std::io::Error),
}

/// A content-addressed template bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// SHA-256 (hex) of the files.
    pub hash: String,
    /// Files sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    /// Reads a template folder and its fragment library (the `fragments` override, else
    /// the manifest's `[template] fragments`, else `../fragments`; a missing library is empty).
    pub fn from_dir(template: &Path, fragments: Option<&Path>) -> Result<Bundle, BundleError> {
        let mut files = Vec::new();
        let mut total = 0u64;
        collect(template, "template", &mut files, &mut total)?;
        let frag_dir = match fragments {
            Some(f) => Some(f.to_path_buf()),
            None => manifest_fragments(template),
        };
        if let Some(dir) = frag_dir.filter(|d| d.is_dir()) {
            collect(&dir, "fragments", &mut files, &mut total)?;
        }
        Ok(Bundle::from_files(files))
    }

    /// Builds a bundle from files, sorting them and computing the hash.
    pub fn from_files(mut files: Vec<(String, Vec<u8>)>) -> Bundle {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let hash = hash_files(&files);
        Bundle { hash, files }
    }

    /// Checks a received bundle against the hash it was announced with.
    pub fn verify(files: Vec<(String, Vec<u8>)>, announced: &str) -> Result<Bundle, BundleError> {
        let b = Bundle::from_files(files);
        if b.hash != announced {
            return Err(BundleError::HashMismatch {
                announced: announced.to_string(),
                actual: b.hash,
            });
        }
        Ok(b)
    }

    /// Compiles the bundle's template. The files are written to a private temporary folder
    /// only for the compile and removed at once: nothing stays on disk.
    pub fn compile(&self) -> Result<Compiled, BundleError> {
        let tmp = tempfile::Builder::new()
            .prefix("pressrun-bundle-")
            .tempdir()
            .map_err(BundleError::Materialize)?;
        for (path, bytes) in &self.files {
            if !safe(path) {
                return Err(BundleError::BadPath(path.clone()));
            }
            let dest = tmp.path().join(path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(BundleError::Materialize)?;
            }
            std::fs::write(&dest, bytes).map_err(BundleError::Materialize)?;
        }
        let template = tmp.path().join("template");
        let fragments = tmp.path().join("fragments");
        std::fs::create_dir_all(&fragments).map_err(BundleError::Materialize)?;
        compile(
            &template,
            &CompileOptions {
                fragments: Some(fragments),
            },
        )
        .map_err(BundleError::Compile)
    }

    /// Total size of the files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

fn hash_files(files: &[(String, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (path, bytes) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(bytes.len().to_string().as_bytes());
        h.update([0]);
        h.update(bytes);
    }
    hex::encode(h.finalize())
}

fn safe(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The fragment library a template folder names (`[template] fragments`, else
/// `../fragments`), as a path; `None` when the manifest cannot be read.
pub fn fragment_library(template: &Path) -> Option<PathBuf> {
    manifest_fragments(template)
}

fn manifest_fragments(template: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(template.join("template.toml")).ok()?;
    let value: toml::Table = text.parse().ok()?;
    let rel = value
        .get("template")
        .and_then(|t| t.get("fragments"))
        .and_then(|f| f.as_str())
        .unwrap_or("../fragments");
    Some(template.join(rel))
}

fn collect(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let err = |source| BundleError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let rel = format!("{prefix}/{name}");
        let kind = e.file_type().map_err(err)?;
        if kind.is_dir() {
            collect(&path, &rel, files, total)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(|source| BundleError::Read {
                path: path.display().to_string(),
                source,
            })?;
            *total += bytes.len() as u64;
            if *total > MAX_BUNDLE_BYTES {
                return Err(BundleError::TooLarge);
            }
            files.push((rel, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_content_not_order() {
        let a = Bundle::from_files(vec![
            ("template/b".into(), b"2".to_vec()),
            ("template/a".into(), b"1".to_vec()),
        ]);
        let b = Bundle::from_files(vec![
            ("template/a".into(), b"1".to_vec()),
            ("template/b".into(), b"2".to_vec()),
        ]);
        assert_eq!(a, b);
        let c = Bundle::from_files(vec![
            ("template/a".into(), b"1".to_vec()),
            ("template/b".into(), b"3".to_vec()),
        ]);
        assert_ne!(a.hash, c.hash);
        assert!(Bundle::verify(c.files.clone(), &a.hash).is_err());
        assert!(Bundle::verify(c.files.clone(), &c.hash).is_ok());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe("template/body.xml"));
        for p in [
            "/etc/passwd",
            "../x",
            "template/../../x",
            "a//b",
            "",
            "a\\b",
        ] {
            assert!(!safe(p), "{p}");
        }
        let b = Bundle::from_files(vec![("../evil".into(), b"x".to_vec())]);
        assert!(matches!(b.compile(), Err(BundleError::BadPath(_))));
    }

    #[test]
    fn a_folder_reads_into_a_sorted_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("assets")).unwrap();
        std::fs::write(
            t.join("template.toml"),
            "[template]\nfragments = \"../frags\"\n",
        )
        .unwrap();
        std::fs::write(t.join("assets/logo.png"), b"png").unwrap();
        std::fs::write(t.join(".hidden"), b"no").unwrap();
        std::fs::create_dir_all(dir.path().join("frags")).unwrap();
        std::fs::write(dir.path().join("frags/legal.xml"), b"<fragment/>").unwrap();
        let b = Bundle::from_dir(&t, None).unwrap();
        let paths: Vec<&str> = b.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "fragments/legal.xml",
                "template/assets/logo.png",
                "template/template.toml"
            ]
        );
    }
}
