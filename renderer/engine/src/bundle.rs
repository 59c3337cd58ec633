//! Template bundles: a template folder and its fragment library as one content-addressed
//! set of files in memory, so stateless renderer nodes can cache templates by hash and
//! compile them without writing anything to disk.
//!
//! Paths inside a bundle are relative, normalised and use `/`: `template/…` for the
//! template folder and `fragments/…` for the fragment library. The hash is the
//! [`ContentHasher`] hash of the files, the very value a template compiled from the bundle
//! (or from the folder the bundle was read from) carries as its `content_hash`.

use std::path::PathBuf;

use crate::diag::Diagnostics;
use crate::source::{
    ContentHasher, FileKind, FolderSource, RelPath, Root, SourceError, SourceLimits, TemplateSource,
};
use crate::template::{Compiled, compile_source};

pub use crate::source::MAX_BUNDLE_BYTES;

/// A bundle that cannot be built or used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The folder could not be read into a bundle.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// The files are more than a bundle may hold.
    #[error("bundle is {size} bytes, more than the {} MiB allowed; remove files the template does not use", .limit >> 20)]
    TooLarge { size: u64, limit: u64 },
    /// More files than a bundle may hold.
    #[error("bundle holds more than {0} files; remove files the template does not use")]
    TooManyFiles(usize),
    /// A file's path is not a safe bundle path.
    #[error("bundle path {path:?} is not allowed: {reason}")]
    BadPath { path: String, reason: String },
    /// The files do not hash to the announced hash.
    #[error("bundle hash mismatch: announced {announced}, content hashes to {actual}")]
    HashMismatch { announced: String, actual: String },
    /// The template does not compile.
    #[error("template in bundle does not compile:\n{0}")]
    Compile(Diagnostics),
}

/// A content-addressed template bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The [`ContentHasher`] hash of the files, in hex.
    pub hash: String,
    /// Files sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    /// Reads a template folder and its fragment library (the `fragments` override, else
    /// the manifest's `[template] fragments`, else `../fragments`; a missing library is
    /// empty) through [`FolderSource`], so it holds exactly the files a compile of the
    /// folder hashes.
    pub fn from_dir(
        template: &std::path::Path,
        fragments: Option<&std::path::Path>,
    ) -> Result<Bundle, BundleError> {
        let files = FolderSource::open(template, fragments)?.into_files()?;
        Ok(Bundle::from_files(files))
    }

    /// Builds a bundle from files, sorting them and computing the hash.
    pub fn from_files(mut files: Vec<(String, Vec<u8>)>) -> Bundle {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let hash = hex::encode(ContentHasher::of_files(
            files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
        ));
        Bundle { hash, files }
    }

    /// Checks a received bundle (paths, size) and its content against the hash it was
    /// announced with.
    pub fn verify(files: Vec<(String, Vec<u8>)>, announced: &str) -> Result<Bundle, BundleError> {
        let limits = SourceLimits::default();
        check_size(
            files.iter().map(|(_, b)| b.len() as u64),
            files.len(),
            &limits,
        )?;
        let b = Bundle::from_files(files);
        b.check(&limits)?;
        if b.hash != announced {
            return Err(BundleError::HashMismatch {
                announced: announced.to_string(),
                actual: b.hash,
            });
        }
        Ok(b)
    }

    /// Checks that the files are sorted, unique, under `template/` or `fragments/` with
    /// normalised paths, and within the limits.
    pub fn check(&self, limits: &SourceLimits) -> Result<(), BundleError> {
        check_size(
            self.files.iter().map(|(_, b)| b.len() as u64),
            self.files.len(),
            limits,
        )?;
        let mut last: Option<&str> = None;
        for (path, _) in &self.files {
            let bad = |reason: String| BundleError::BadPath {
                path: path.clone(),
                reason,
            };
            if last.is_some_and(|l| l >= path.as_str()) {
                return Err(bad(
                    "files must be unique and sorted by path; build bundles with Bundle::from_files"
                        .into(),
                ));
            }
            last = Some(path);
            let rest = path
                .strip_prefix("template/")
                .or_else(|| path.strip_prefix("fragments/"))
                .ok_or_else(|| bad("a bundle holds only template/… and fragments/…".into()))?;
            RelPath::exact(rest).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Compiles the bundle's template from memory with the default limits.
    pub fn compile(&self) -> Result<Compiled, BundleError> {
        self.compile_with(SourceLimits::default())
    }

    /// Compiles the bundle's template from memory. The compiled template's `content_hash`
    /// is the bundle's hash (checked), and a compiler panic is an error, not a crash.
    pub fn compile_with(&self, limits: SourceLimits) -> Result<Compiled, BundleError> {
        self.check(&limits)?;
        let compiled = compile_source(&mut self.source(limits)).map_err(BundleError::Compile)?;
        let actual = hex::encode(compiled.template.content_hash);
        if actual != self.hash {
            return Err(BundleError::HashMismatch {
                announced: self.hash.clone(),
                actual,
            });
        }
        Ok(compiled)
    }

    /// Returns the bundle as a [`TemplateSource`].
    pub fn source(&self, limits: SourceLimits) -> BundleSource<'_> {
        BundleSource {
            bundle: self,
            limits,
        }
    }

    /// Total size of the files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

/// The fragment library a template folder names (`[template] fragments`, else
/// `../fragments`), as a path; `None` when the folder cannot be listed.
pub fn fragment_library(template: &std::path::Path) -> Option<std::path::PathBuf> {
    FolderSource::open(template, None)
        .ok()
        .map(|s| s.library().to_path_buf())
}

fn check_size(
    sizes: impl Iterator<Item = u64>,
    count: usize,
    limits: &SourceLimits,
) -> Result<(), BundleError> {
    if count > limits.files {
        return Err(BundleError::TooManyFiles(limits.files));
    }
    let size = sizes.fold(0u64, u64::saturating_add);
    if size > limits.bundle {
        return Err(BundleError::TooLarge {
            size,
            limit: limits.bundle,
        });
    }
    Ok(())
}

/// A bundle in memory as a [`TemplateSource`].
pub struct BundleSource<'a> {
    bundle: &'a Bundle,
    limits: SourceLimits,
}

impl TemplateSource for BundleSource<'_> {
    fn root_name(&self, root: Root) -> PathBuf {
        PathBuf::from(root.prefix())
    }

    fn read(&mut self, root: Root, path: &RelPath, kind: FileKind) -> Result<Vec<u8>, SourceError> {
        let key = path.bundle_path(root);
        let files = &self.bundle.files;
        let Ok(i) = files.binary_search_by(|(p, _)| p.as_str().cmp(&key)) else {
            let folder = format!("{key}/");
            if files.iter().any(|(p, _)| p.starts_with(&folder)) {
                return Err(SourceError::Refused(
                    "it is a folder, not a file; name a file inside it".into(),
                ));
            }
            return Err(SourceError::NotFound(root));
        };
        let bytes = &files[i].1;
        let limit = self.limits.of(kind);
        if bytes.len() as u64 > limit {
            return Err(SourceError::TooLarge {
                size: bytes.len() as u64,
                limit,
                kind,
            });
        }
        Ok(bytes.clone())
    }

    fn fragment_names(&self) -> Vec<String> {
        self.bundle
            .files
            .iter()
            .filter_map(|(p, _)| p.strip_prefix("fragments/"))
            .filter(|rest| !rest.contains('/'))
            .filter_map(|rest| rest.strip_suffix(".xml"))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn content_hash(&mut self) -> Result<[u8; 32], SourceError> {
        Ok(ContentHasher::of_files(
            self.bundle
                .files
                .iter()
                .map(|(p, b)| (p.as_str(), b.as_slice())),
        ))
    }
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
        for p in [
            "/etc/passwd",
            "../x",
            "template/../../x",
            "template/a//b",
            "template/./a",
            "",
            "template/a\\b",
            "template/.hidden",
            "elsewhere/a",
            "template",
        ] {
            let b = Bundle::from_files(vec![(p.into(), b"x".to_vec())]);
            assert!(
                matches!(b.compile(), Err(BundleError::BadPath { .. })),
                "{p}"
            );
            assert!(
                matches!(
                    Bundle::verify(b.files.clone(), &b.hash),
                    Err(BundleError::BadPath { .. })
                ),
                "{p}"
            );
        }
        let dup = Bundle {
            hash: String::new(),
            files: vec![
                ("template/a".into(), b"1".to_vec()),
                ("template/a".into(), b"2".to_vec()),
            ],
        };
        assert!(matches!(dup.compile(), Err(BundleError::BadPath { .. })));
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
        let mut src = FolderSource::open(&t, None).unwrap();
        assert_eq!(hex::encode(src.content_hash().unwrap()), b.hash);
        assert_eq!(src.fragment_names(), ["legal"]);
    }

    #[test]
    fn an_oversized_bundle_is_refused_before_it_is_hashed() {
        let limits = SourceLimits {
            bundle: 10,
            ..SourceLimits::default()
        };
        let b = Bundle::from_files(vec![
            ("template/a".into(), vec![0; 6]),
            ("template/b".into(), vec![0; 6]),
        ]);
        assert!(matches!(
            b.compile_with(limits),
            Err(BundleError::TooLarge { size: 12, .. })
        ));
        // Zeroed memory is not touched unless it is read: the size check comes first.
        let huge = vec![(
            "template/big.ttf".to_string(),
            vec![0u8; (MAX_BUNDLE_BYTES + 1) as usize],
        )];
        assert!(matches!(
            Bundle::verify(huge, "0"),
            Err(BundleError::TooLarge { .. })
        ));
    }
}
