//! Sources: the one interface through which the template compiler reads every file, with
//! paths confined to their root, sizes bounded and the contents hashed into one identity.
//!
//! The compiler never touches the file system. It asks a [`TemplateSource`] for
//! `template.toml`, `body.xml`, fragments, fonts and images by a [`RelPath`] inside one of
//! two roots ([`Root::Template`], [`Root::Fragments`]). A template folder on disk
//! ([`FolderSource`]) and a bundle in memory ([`crate::bundle::BundleSource`]) implement
//! it; a registry version will too. Both describe the same files the same way, so folder →
//! compile and folder → bundle → compile give the same [`ContentHasher`] hash.

mod folder;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use folder::{FolderSource, open_regular, read_regular};

/// Largest `template.toml`, `body.xml` or fragment file (4 MiB).
pub const MAX_TEXT_BYTES: u64 = 4 << 20;
/// Largest font file (32 MiB; a full CJK font is about 20 MiB).
pub const MAX_FONT_BYTES: u64 = 32 << 20;
/// Largest image file (32 MiB).
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;
/// Largest bundle: all files of a template folder and its fragment library (256 MiB).
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// Most files a template folder and its fragment library may hold together.
pub const MAX_FILES: usize = 10_000;
/// Longest path inside a root, in bytes.
const MAX_PATH_BYTES: usize = 1024;

/// The tree of a source a file lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Root {
    /// The template folder: `template.toml`, `body.xml`, fonts, images.
    Template,
    /// The fragment library: `NAME.xml` files.
    Fragments,
}

impl Root {
    /// Returns the folder name of the root inside a bundle (`template`, `fragments`).
    pub fn prefix(self) -> &'static str {
        match self {
            Root::Template => "template",
            Root::Fragments => "fragments",
        }
    }

    /// Returns how messages name the root.
    pub fn describe(self) -> &'static str {
        match self {
            Root::Template => "the template folder",
            Root::Fragments => "the fragment library",
        }
    }
}

/// What a file is for; chooses its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `template.toml`, `body.xml`, a fragment.
    Text,
    /// A TrueType or OpenType font.
    Font,
    /// A PNG or JPEG image.
    Image,
    /// A file of a run's output read back (a print file, a manifest, `production.json`).
    Output,
}

impl FileKind {
    fn describe(self) -> &'static str {
        match self {
            FileKind::Text => "a text file",
            FileKind::Font => "a font",
            FileKind::Image => "an image",
            FileKind::Output => "an output file",
        }
    }
}

/// Size limits a source enforces before it reads a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLimits {
    /// Largest text file in bytes.
    pub text: u64,
    /// Largest font file in bytes.
    pub font: u64,
    /// Largest image file in bytes.
    pub image: u64,
    /// Largest total of all files in bytes.
    pub bundle: u64,
    /// Most files.
    pub files: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            text: MAX_TEXT_BYTES,
            font: MAX_FONT_BYTES,
            image: MAX_IMAGE_BYTES,
            bundle: MAX_BUNDLE_BYTES,
            files: MAX_FILES,
        }
    }
}

impl SourceLimits {
    /// Returns the limit for one kind of file.
    pub fn of(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::Text => self.text,
            FileKind::Font => self.font,
            FileKind::Image => self.image,
            // Not part of a template: the caller's limit applies.
            FileKind::Output => self.bundle,
        }
    }
}

/// A file a source cannot hand out, or a source that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path as written is not a confined relative path.
    #[error("{0}")]
    BadPath(String),
    /// Nothing at that path.
    #[error("no such file in {}", .0.describe())]
    NotFound(Root),
    /// The entry exists but may not be read (special file, link out of the root, folder).
    #[error("{0}")]
    Refused(String),
    /// One file is over its limit.
    #[error(
        "it is {} bytes, more than the {} allowed for {}; make it smaller",
        .size, mib(*.limit), .kind.describe()
    )]
    TooLarge {
        size: u64,
        limit: u64,
        kind: FileKind,
    },
    /// All files together are over the bundle limit.
    #[error(
        "the template's files come to {} bytes, more than the {} a bundle may hold \
         (largest: {largest}); remove files the template does not use",
        .size, mib(*.limit)
    )]
    BundleTooLarge {
        size: u64,
        limit: u64,
        largest: String,
    },
    /// Too many files.
    #[error(
        "the template's folders hold more than {0} files; remove files the template does not use"
    )]
    TooManyFiles(usize),
    /// The operating system refused.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// A path inside a root: relative, `/`-separated, normalised (no empty, `.` or `..`
/// parts) and never naming a hidden file. The one place where paths are confined.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Checks and normalises a path written in a template (`./fonts//a.ttf` → `fonts/a.ttf`,
    /// `a/../b` → `b`). Absolute paths, `..` that leaves the root, backslashes, NUL and
    /// hidden names are errors.
    pub fn new(path: &str) -> Result<RelPath, SourceError> {
        let bad = |why: &str| Err(SourceError::BadPath(why.to_string()));
        if path.is_empty() {
            return bad("the path is empty");
        }
        if path.len() > MAX_PATH_BYTES {
            return bad("the path is too long");
        }
        if path.contains('\0') {
            return bad("the path contains a NUL character");
        }
        if path.contains('\\') {
            return bad("the path contains a backslash; separate folders with /");
        }
        let bytes = path.as_bytes();
        let drive = bytes.len() >= 2
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && bytes.get(2).is_none_or(|&b| b == b'/');
        if path.starts_with('/') || drive {
            return bad(
                "absolute paths are not allowed; name the file relative to the template folder",
            );
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return bad(
                            "the path leaves its folder with '..'; keep the file inside the template folder",
                        );
                    }
                }
                p if p.starts_with('.') => {
                    return bad("hidden files are not part of a template; rename the file");
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return bad("the path names no file");
        }
        Ok(RelPath(parts.join("/")))
    }

    /// Checks a path that must already be normalised (as in a bundle).
    pub fn exact(path: &str) -> Result<RelPath, SourceError> {
        let p = RelPath::new(path)?;
        if p.0 != path {
            return Err(SourceError::BadPath(format!(
                "the path is not in normal form (expected {:?})",
                p.0
            )));
        }
        Ok(p)
    }

    /// Returns the path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the path of the file inside a bundle (`template/…`, `fragments/…`).
    pub fn bundle_path(&self, root: Root) -> String {
        format!("{}/{}", root.prefix(), self.0)
    }
}

/// Hands the template compiler every file it reads; see the module documentation.
pub trait TemplateSource {
    /// Returns how diagnostics name a root (a folder on disk, or `template` in a bundle).
    fn root_name(&self, root: Root) -> PathBuf;

    /// Reads a file of a root, refusing it when it is larger than the limit of its kind.
    fn read(&mut self, root: Root, path: &RelPath, kind: FileKind) -> Result<Vec<u8>, SourceError>;

    /// Returns the names (without `.xml`) of the fragment files at the top of the
    /// fragment library, sorted.
    fn fragment_names(&self) -> Vec<String>;

    /// Returns the source's identity: the [`ContentHasher`] hash of all its files, with
    /// the bytes of every file already read exactly as they were handed out.
    fn content_hash(&mut self) -> Result<[u8; 32], SourceError>;

    /// Returns how diagnostics name a file.
    fn describe(&self, root: Root, path: &RelPath) -> PathBuf {
        self.root_name(root).join(path.as_str())
    }
}

/// Hashes the files of a source into the identity a bundle and the template compiled from
/// it share.
///
/// SHA-256 over the tag `pressrun-template-v1\0`, then per file in the byte order of its
/// bundle path (`fragments/…` before `template/…`): the path's length as a little-endian
/// `u64`, the path, the content's length as a little-endian `u64`, the content. It covers
/// every regular file of the template folder and of the fragment library, used or not, and
/// nothing else (no file names outside them, no times, no permissions).
pub struct ContentHasher {
    hasher: Sha256,
    last: Option<String>,
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHasher {
    /// Starts a hash.
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"pressrun-template-v1\0");
        Self { hasher, last: None }
    }

    /// Adds a file; files must come in increasing path order.
    pub fn add(&mut self, path: &str, bytes: &[u8]) {
        debug_assert!(
            self.last.as_deref().is_none_or(|l| l < path),
            "files must be hashed in path order"
        );
        self.hasher.update((path.len() as u64).to_le_bytes());
        self.hasher.update(path.as_bytes());
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        if cfg!(debug_assertions) {
            self.last = Some(path.to_string());
        }
    }

    /// Returns the hash.
    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }

    /// Hashes files sorted by path.
    pub fn of_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> [u8; 32] {
        let mut h = ContentHasher::new();
        for (path, bytes) in files {
            h.add(path, bytes);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_confined() {
        for (given, want) in [
            ("fonts/a.ttf", "fonts/a.ttf"),
            ("./fonts//a.ttf", "fonts/a.ttf"),
            ("fonts/../assets/logo.png", "assets/logo.png"),
            ("a/b/../../c", "c"),
            ("x:y.png", "x:y.png"),
        ] {
            assert_eq!(RelPath::new(given).unwrap().as_str(), want, "{given}");
        }
        for bad in [
            "",
            "/etc/shadow",
            "/proc/self/environ",
            "/dev/zero",
            "../x",
            "a/../../x",
            "fonts/../../../etc/passwd",
            "C:/x",
            "c:",
            "a\\b",
            "a\0b",
            ".git/config",
            "fonts/.hidden.ttf",
            ".",
            "a/..",
        ] {
            assert!(
                matches!(RelPath::new(bad), Err(SourceError::BadPath(_))),
                "{bad:?}"
            );
        }
        assert!(RelPath::exact("a/b").is_ok());
        assert!(RelPath::exact("a//b").is_err());
        assert!(RelPath::exact("a/./b").is_err());
    }

    #[test]
    fn the_hash_frames_paths_and_contents() {
        let a = ContentHasher::of_files([("a", b"bc".as_slice())]);
        let b = ContentHasher::of_files([("ab", b"c".as_slice())]);
        assert_ne!(a, b);
        assert_eq!(a, ContentHasher::of_files([("a", b"bc".as_slice())]));
        assert_ne!(a, ContentHasher::of_files([]));
    }
}
