//! A template folder and its fragment library on disk as a [`TemplateSource`]: listed once
//! without opening anything, then every file opened only if it is a regular file inside its
//! root, and read with a bound.
//!
//! The listing decides what the source holds: regular files, and symbolic links whose
//! target is a regular file inside the same root. Symbolic links that point out, to a
//! folder or nowhere, FIFOs, sockets and devices are listed as refused (a template that
//! names one gets the reason) and are not part of the content hash. Hidden names and names
//! that are not UTF-8 are not listed at all. A file is opened with `O_NOFOLLOW` and
//! `O_NONBLOCK` (so a FIFO swapped in after the listing cannot block), checked to be the
//! very regular file the listing saw, and read with `take(limit + 1)` so a growing file
//! cannot exceed its limit.

use std::collections::BTreeMap;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ContentHasher, FileKind, RelPath, Root, SourceError, SourceLimits, TemplateSource};

/// Deepest folder nesting listed.
const MAX_DEPTH: usize = 32;

/// A template folder and its fragment library.
pub struct FolderSource {
    template: Tree,
    fragments: Option<Tree>,
    /// How diagnostics name the fragment library (also when it does not exist).
    fragments_shown: PathBuf,
    limits: SourceLimits,
    /// Bytes handed out, by bundle path: the content hash uses these very bytes.
    cache: BTreeMap<String, Vec<u8>>,
}

/// One listed root.
struct Tree {
    root: Root,
    /// The path as given, for messages.
    shown: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// A listed name.
enum Entry {
    Folder,
    File { real: PathBuf, len: u64, id: FileId },
    Refused(String),
}

/// The identity of an open file (device and inode), to notice a file swapped after listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId(meta.dev(), meta.ino())
    }

    #[cfg(not(unix))]
    fn of(meta: &Metadata) -> FileId {
        FileId(meta.len(), 0)
    }
}

impl FolderSource {
    /// Lists a template folder and its fragment library (`fragments`, else the manifest's
    /// `[template] fragments`, else `../fragments`; a missing library is empty) with the
    /// default limits.
    pub fn open(template: &Path, fragments: Option<&Path>) -> Result<Self, SourceError> {
        Self::with_limits(template, fragments, SourceLimits::default())
    }

    /// Lists a template folder and its fragment library with the given limits.
    pub fn with_limits(
        template: &Path,
        fragments: Option<&Path>,
        limits: SourceLimits,
    ) -> Result<Self, SourceError> {
        let mut count = 0;
        let tree = Tree::list(Root::Template, template, &limits, &mut count)?;
        let mut src = FolderSource {
            template: tree,
            fragments: None,
            fragments_shown: template.join("../fragments"),
            limits,
            cache: BTreeMap::new(),
        };
        let lib = match fragments {
            Some(f) => Some(f.to_path_buf()),
            None => src.manifest_fragments().map(|rel| template.join(rel)),
        };
        if let Some(lib) = lib {
            if lib.is_dir() {
                src.fragments = Some(Tree::list(Root::Fragments, &lib, &limits, &mut count)?);
            }
            src.fragments_shown = lib;
        }
        src.check_total()?;
        Ok(src)
    }

    /// The fragment library folder this source reads (which may not exist: then it is empty).
    pub fn library(&self) -> &Path {
        &self.fragments_shown
    }

    /// Reads every file (those already handed out as they were) into bundle paths and
    /// bytes, sorted by path.
    pub fn into_files(self) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
        let mut files = Vec::new();
        self.each_file(&self.cache, |path, bytes| {
            files.push((path.to_string(), bytes.to_vec()));
        })?;
        Ok(files)
    }

    /// The manifest's fragment library path, if it can be read and is relative.
    fn manifest_fragments(&mut self) -> Option<String> {
        let path = RelPath::exact("template.toml").ok()?;
        let bytes = self.read(Root::Template, &path, FileKind::Text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let table: toml::Table = text.trim_start_matches('\u{feff}').parse().ok()?;
        let rel = table
            .get("template")
            .and_then(|t| t.get("fragments"))
            .and_then(|f| f.as_str())
            .unwrap_or("../fragments");
        (!Path::new(rel).is_absolute()).then(|| rel.to_string())
    }

    fn trees(&self) -> impl Iterator<Item = &Tree> {
        // Bundle path order: `fragments/…` before `template/…`.
        self.fragments.iter().chain(std::iter::once(&self.template))
    }

    /// Fails when the listed files are more than a bundle may hold.
    fn check_total(&self) -> Result<(), SourceError> {
        let mut total = 0u64;
        let mut largest = (0u64, String::new());
        for tree in self.trees() {
            for (rel, e) in &tree.entries {
                if let Entry::File { len, .. } = e {
                    total = total.saturating_add(*len);
                    if *len >= largest.0 {
                        largest = (*len, tree.shown.join(rel).display().to_string());
                    }
                }
            }
        }
        if total > self.limits.bundle {
            return Err(SourceError::BundleTooLarge {
                size: total,
                limit: self.limits.bundle,
                largest: largest.1,
            });
        }
        Ok(())
    }

    /// Calls `f` with every file's bundle path and bytes in path order; bytes already
    /// handed out come from `cache`.
    fn each_file(
        &self,
        cache: &BTreeMap<String, Vec<u8>>,
        mut f: impl FnMut(&str, &[u8]),
    ) -> Result<(), SourceError> {
        let mut total = 0u64;
        for tree in self.trees() {
            for (rel, e) in &tree.entries {
                let Entry::File { real, id, .. } = e else {
                    continue;
                };
                let key = format!("{}/{rel}", tree.root.prefix());
                let budget = self.limits.bundle.saturating_sub(total);
                let too_large = |size| SourceError::BundleTooLarge {
                    size,
                    limit: self.limits.bundle,
                    largest: tree.shown.join(rel).display().to_string(),
                };
                let read;
                let bytes: &[u8] = match cache.get(&key) {
                    Some(b) => b,
                    None => {
                        read =
                            read_checked(real, budget, FileKind::Text, Some(*id)).map_err(|e| {
                                match e {
                                    SourceError::TooLarge { size, .. } => too_large(total + size),
                                    e => e,
                                }
                            })?;
                        &read
                    }
                };
                total += bytes.len() as u64;
                if total > self.limits.bundle {
                    return Err(too_large(total));
                }
                f(&key, bytes);
            }
        }
        Ok(())
    }
}

impl TemplateSource for FolderSource {
    fn root_name(&self, root: Root) -> PathBuf {
        match root {
            Root::Template => self.template.shown.clone(),
            Root::Fragments => self.fragments_shown.clone(),
        }
    }

    fn read(&mut self, root: Root, path: &RelPath, kind: FileKind) -> Result<Vec<u8>, SourceError> {
        let limit = self.limits.of(kind);
        let key = path.bundle_path(root);
        if let Some(bytes) = self.cache.get(&key) {
            if bytes.len() as u64 > limit {
                return Err(SourceError::TooLarge {
                    size: bytes.len() as u64,
                    limit,
                    kind,
                });
            }
            return Ok(bytes.clone());
        }
        let tree = match root {
            Root::Template => Some(&self.template),
            Root::Fragments => self.fragments.as_ref(),
        };
        let Some(entry) = tree.and_then(|t| t.entries.get(path.as_str())) else {
            return Err(SourceError::NotFound(root));
        };
        let bytes = match entry {
            Entry::Folder => {
                return Err(SourceError::Refused(
                    "it is a folder, not a file; name a file inside it".into(),
                ));
            }
            Entry::Refused(why) => return Err(SourceError::Refused(why.clone())),
            Entry::File { len, .. } if *len > limit => {
                return Err(SourceError::TooLarge {
                    size: *len,
                    limit,
                    kind,
                });
            }
            Entry::File { real, id, .. } => read_checked(real, limit, kind, Some(*id))?,
        };
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    fn fragment_names(&self) -> Vec<String> {
        let Some(tree) = &self.fragments else {
            return Vec::new();
        };
        tree.entries
            .iter()
            .filter(|(rel, e)| !rel.contains('/') && !matches!(e, Entry::Folder))
            .filter_map(|(rel, _)| rel.strip_suffix(".xml"))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn content_hash(&mut self) -> Result<[u8; 32], SourceError> {
        let mut h = ContentHasher::new();
        self.each_file(&self.cache, |path, bytes| h.add(path, bytes))?;
        Ok(h.finish())
    }
}

impl Tree {
    /// Lists a root (which must be a folder) recursively.
    fn list(
        root: Root,
        shown: &Path,
        limits: &SourceLimits,
        count: &mut usize,
    ) -> Result<Tree, SourceError> {
        let io = |source| SourceError::Io {
            path: shown.display().to_string(),
            source,
        };
        let canonical = std::fs::canonicalize(shown).map_err(io)?;
        if !std::fs::metadata(&canonical).map_err(io)?.is_dir() {
            return Err(SourceError::Refused(format!(
                "{} is not a folder",
                shown.display()
            )));
        }
        let mut tree = Tree {
            root,
            shown: shown.to_path_buf(),
            entries: BTreeMap::new(),
        };
        tree.walk(&canonical, &canonical, "", 0, limits, count)?;
        Ok(tree)
    }

    fn walk(
        &mut self,
        canonical: &Path,
        dir: &Path,
        prefix: &str,
        depth: usize,
        limits: &SourceLimits,
        count: &mut usize,
    ) -> Result<(), SourceError> {
        let io = |source| SourceError::Io {
            path: dir.display().to_string(),
            source,
        };
        if depth > MAX_DEPTH {
            return Err(SourceError::Refused(format!(
                "{} is nested more than {MAX_DEPTH} folders deep",
                dir.display()
            )));
        }
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            names.push(name);
        }
        names.sort();
        for name in names {
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if RelPath::exact(&rel).is_err() {
                continue;
            }
            let path = dir.join(&name);
            // A library holds `NAME.xml` fragments and nothing else is read from it, so a
            // manifest that names a wide folder as its library cannot pull that folder's
            // other files into the template's identity and bundle.
            if self.root == Root::Fragments
                && !name.ends_with(".xml")
                && !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            {
                continue;
            }
            *count += 1;
            if *count > limits.files {
                return Err(SourceError::TooManyFiles(limits.files));
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|source| SourceError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let ft = meta.file_type();
            let entry = if ft.is_dir() {
                self.walk(canonical, &path, &rel, depth + 1, limits, count)?;
                Entry::Folder
            } else if ft.is_file() {
                Entry::File {
                    real: path,
                    len: meta.len(),
                    id: FileId::of(&meta),
                }
            } else if ft.is_symlink() {
                self.link(canonical, &path)
            } else {
                Entry::Refused(special(ft))
            };
            self.entries.insert(rel, entry);
        }
        Ok(())
    }

    /// Classifies a symbolic link: a regular file inside the root, or refused.
    fn link(&self, canonical: &Path, path: &Path) -> Entry {
        let Ok(target) = std::fs::canonicalize(path) else {
            return Entry::Refused("it is a symbolic link that points nowhere".into());
        };
        if !target.starts_with(canonical) {
            return Entry::Refused(format!(
                "it is a symbolic link that points outside {}; copy the file in instead",
                self.root.describe()
            ));
        }
        match std::fs::metadata(&target) {
            Ok(m) if m.is_file() => Entry::File {
                real: target,
                len: m.len(),
                id: FileId::of(&m),
            },
            Ok(m) if m.is_dir() => Entry::Refused(
                "it is a symbolic link to a folder; copy the folder in instead".into(),
            ),
            Ok(m) => Entry::Refused(special(m.file_type())),
            Err(e) => Entry::Refused(format!(
                "it is a symbolic link that cannot be followed: {e}"
            )),
        }
    }
}

/// Says what a special file is.
fn special(ft: FileType) -> String {
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_symlink() {
            "a symbolic link"
        } else {
            "not a regular file"
        }
    };
    #[cfg(not(unix))]
    let what = if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    };
    format!("it is {what}; only regular files can be part of a template")
}

/// Reads a regular file of at most `limit` bytes without ever blocking on a FIFO or
/// following a symbolic link in its last component.
pub fn read_regular(path: &Path, limit: u64, kind: FileKind) -> Result<Vec<u8>, SourceError> {
    read_checked(path, limit, kind, None)
}

/// Opens a regular file of at most `limit` bytes for streaming, without blocking on a
/// FIFO or following a symbolic link in its last component; returns it and its size.
pub fn open_regular(path: &Path, limit: u64, kind: FileKind) -> Result<(File, u64), SourceError> {
    open_checked(path, limit, kind, None)
}

fn open_checked(
    path: &Path,
    limit: u64,
    kind: FileKind,
    expect: Option<FileId>,
) -> Result<(File, u64), SourceError> {
    let io = |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = open_no_follow(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return SourceError::Refused(
                "it is a symbolic link; only regular files can be part of a template".into(),
            );
        }
        io(e)
    })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SourceError::Refused(special(meta.file_type())));
    }
    if expect.is_some_and(|id| id != FileId::of(&meta)) {
        return Err(SourceError::Refused(
            "it was replaced while the template was read; compile again".into(),
        ));
    }
    if meta.len() > limit {
        return Err(SourceError::TooLarge {
            size: meta.len(),
            limit,
            kind,
        });
    }
    Ok((file, meta.len()))
}

fn read_checked(
    path: &Path,
    limit: u64,
    kind: FileKind,
    expect: Option<FileId>,
) -> Result<Vec<u8>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    };
    let (file, len) = open_checked(path, limit, kind, expect)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::TooLarge {
            size: bytes.len() as u64,
            limit,
            kind,
        });
    }
    Ok(bytes)
}

/// Opens for reading without following a final symbolic link and without blocking.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    opts.open(path)
}
