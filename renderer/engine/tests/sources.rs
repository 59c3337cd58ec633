//! Templates read through the source interface: every file a template names stays inside
//! its folder, fragment library or bundle, is a regular file within its size limit, and a
//! folder, its bundle and the compiled template share one content hash.

use std::path::{Path, PathBuf};

use pressrun_engine::bundle::{Bundle, BundleError};
use pressrun_engine::diag::{Diagnostic, Diagnostics};
use pressrun_engine::source::{
    FileKind, FolderSource, MAX_BUNDLE_BYTES, MAX_FONT_BYTES, MAX_IMAGE_BYTES, SourceError,
    SourceLimits, TemplateSource, read_regular,
};
use pressrun_engine::template::{CompileOptions, compile};

const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A template folder `t` (with an empty `../fragments`) inside a temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A template whose `[fonts]` section names `font` (line 5) and whose body shows the
    /// image `image` (line 1 of body.xml), when given.
    fn new(font: Option<&str>, image: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        std::fs::create_dir_all(f.t().join("fonts")).unwrap();
        std::fs::create_dir_all(f.t().join("assets")).unwrap();
        std::fs::create_dir_all(f.root().join("fragments")).unwrap();
        let mut toml = String::from("[template]\nid = \"t\"\nversion = \"1\"\n[fonts]\n");
        if let Some(font) = font {
            toml.push_str(&format!("Brand = {{ regular = {font:?} }}\n"));
        }
        f.write("template.toml", toml.as_bytes());
        let body = match image {
            Some(src) => format!(
                "<document><body><image src={src:?} alt=\"logo\"/><p>hi</p></body></document>"
            ),
            None => "<document><body><p>hi</p></body></document>".to_string(),
        };
        f.write("body.xml", body.as_bytes());
        f
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn t(&self) -> PathBuf {
        self.dir.path().join("t")
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.t().join(rel), bytes).unwrap();
    }

    fn compile(&self) -> Result<[u8; 32], Vec<Diagnostic>> {
        compile(&self.t(), &CompileOptions::default())
            .map(|c| c.template.content_hash)
            .map_err(|Diagnostics(d)| d)
    }

    /// The one error of a compile that must fail, as `file name:line` and message.
    fn error(&self) -> (String, u32, String) {
        let d = self.compile().expect_err("the compile must fail");
        assert_eq!(d.len(), 1, "{d:?}");
        let loc = d[0].location.as_ref().expect("errors name a file");
        (
            loc.file.file_name().unwrap().to_string_lossy().to_string(),
            loc.line,
            d[0].message.clone(),
        )
    }
}

fn png() -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([x as u8 * 60, y as u8 * 60, 0]));
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn a_font_inside_the_folder_loads() {
    let f = Fixture::new(Some("fonts/brand.ttf"), None);
    f.write("fonts/brand.ttf", FONT);
    f.compile().unwrap();
}

#[test]
fn font_paths_out_of_the_folder_are_errors_at_their_line() {
    for path in [
        "/etc/shadow",
        "/proc/self/environ",
        "/dev/zero",
        "../outside.ttf",
        "fonts/../../outside.ttf",
        ".hidden.ttf",
    ] {
        let f = Fixture::new(Some(path), None);
        std::fs::write(f.root().join("outside.ttf"), FONT).unwrap();
        let (file, line, msg) = f.error();
        assert_eq!((file.as_str(), line), ("template.toml", 5), "{path}: {msg}");
        assert!(msg.starts_with("cannot read font"), "{path}: {msg}");
    }
}

#[test]
fn image_paths_out_of_the_folder_are_errors_at_their_line() {
    for path in [
        "/etc/passwd",
        "../outside.png",
        "assets/../../outside.png",
        "/dev/zero",
    ] {
        let f = Fixture::new(None, Some(path));
        std::fs::write(f.root().join("outside.png"), png()).unwrap();
        let (file, line, msg) = f.error();
        assert_eq!((file.as_str(), line), ("body.xml", 1), "{path}: {msg}");
        assert!(msg.starts_with("cannot read image"), "{path}: {msg}");
    }
    let f = Fixture::new(None, Some("assets/logo.png"));
    f.write("assets/logo.png", &png());
    f.compile().unwrap();
}

#[cfg(unix)]
#[test]
fn symlinks_that_point_out_are_errors_and_links_inside_work() {
    let f = Fixture::new(Some("fonts/link.ttf"), Some("assets/link.png"));
    std::fs::write(f.root().join("outside.ttf"), FONT).unwrap();
    std::fs::write(f.root().join("outside.png"), png()).unwrap();
    symlink(f.root().join("outside.ttf"), f.t().join("fonts/link.ttf"));
    symlink("../../outside.png", f.t().join("assets/link.png"));
    let d = f.compile().unwrap_err();
    assert_eq!(d.len(), 2, "{d:?}");
    for e in &d {
        assert!(
            e.message.contains("symbolic link that points outside"),
            "{e}"
        );
    }
    let lines: Vec<(String, u32)> = d
        .iter()
        .map(|e| {
            let l = e.location.as_ref().unwrap();
            (
                l.file.file_name().unwrap().to_string_lossy().to_string(),
                l.line,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("template.toml".to_string(), 5),
            ("body.xml".to_string(), 1)
        ]
    );

    // A link to a file inside the folder is a file of the template, in the bundle too.
    let f = Fixture::new(Some("fonts/link.ttf"), None);
    f.write("fonts/real.ttf", FONT);
    symlink("real.ttf", f.t().join("fonts/link.ttf"));
    let hash = f.compile().unwrap();
    let bundle = Bundle::from_dir(&f.t(), None).unwrap();
    assert!(
        bundle
            .files
            .iter()
            .any(|(p, _)| p == "template/fonts/link.ttf")
    );
    assert_eq!(hex::encode(hash), bundle.hash);
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_folders_are_errors_that_never_block() {
    let f = Fixture::new(Some("fonts/zero.ttf"), None);
    symlink("/dev/zero", f.t().join("fonts/zero.ttf"));
    let (file, line, msg) = f.error();
    assert_eq!((file.as_str(), line), ("template.toml", 5), "{msg}");

    let f = Fixture::new(Some("fonts/pipe.ttf"), Some("assets/pipe.png"));
    mkfifo(&f.t().join("fonts/pipe.ttf"));
    mkfifo(&f.t().join("assets/pipe.png"));
    let d = f.compile().unwrap_err();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|e| e.message.contains("FIFO")), "{d:?}");

    // A link inside the folder to a FIFO inside it is refused too.
    let f = Fixture::new(Some("fonts/link.ttf"), None);
    mkfifo(&f.t().join("fonts/pipe"));
    symlink("pipe", f.t().join("fonts/link.ttf"));
    let (_, line, msg) = f.error();
    assert_eq!(line, 5);
    assert!(msg.contains("FIFO"), "{msg}");

    let f = Fixture::new(Some("fonts"), None);
    let (_, line, msg) = f.error();
    assert_eq!(line, 5);
    assert!(msg.contains("folder"), "{msg}");

    // Opening a FIFO directly returns at once instead of waiting for a writer.
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("p"));
    assert!(matches!(
        read_regular(&dir.path().join("p"), 10, FileKind::Font),
        Err(SourceError::Refused(_))
    ));
    assert!(matches!(
        read_regular(Path::new("/dev/zero"), 10, FileKind::Font),
        Err(SourceError::Refused(_))
    ));
}

#[cfg(unix)]
#[test]
fn a_fifo_the_template_does_not_use_is_left_alone() {
    let f = Fixture::new(None, None);
    mkfifo(&f.t().join("notes.pipe"));
    let hash = f.compile().unwrap();
    let bundle = Bundle::from_dir(&f.t(), None).unwrap();
    assert!(!bundle.files.iter().any(|(p, _)| p.contains("pipe")));
    assert_eq!(hex::encode(hash), bundle.hash);
}

#[test]
fn oversized_assets_are_errors_at_their_line() {
    // Sparse files: the size is checked before anything is read.
    let f = Fixture::new(Some("fonts/big.ttf"), Some("assets/big.png"));
    let font = std::fs::File::create(f.t().join("fonts/big.ttf")).unwrap();
    font.set_len(MAX_FONT_BYTES + 1).unwrap();
    let image = std::fs::File::create(f.t().join("assets/big.png")).unwrap();
    image.set_len(MAX_IMAGE_BYTES + 1).unwrap();
    let d = f.compile().unwrap_err();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].to_string().contains("template.toml:5:"), "{}", d[0]);
    assert!(d[1].to_string().contains("body.xml:1:"), "{}", d[1]);
    for e in &d {
        assert!(e.message.contains("more than the 32 MiB allowed"), "{e}");
    }
}

#[test]
fn an_oversized_template_folder_is_an_error_naming_the_largest_file() {
    let f = Fixture::new(None, None);
    let big = std::fs::File::create(f.t().join("scans.bin")).unwrap();
    big.set_len(MAX_BUNDLE_BYTES + 1).unwrap();
    let d = f.compile().unwrap_err();
    assert_eq!(d.len(), 1);
    let loc = d[0].location.as_ref().unwrap();
    assert!(loc.file.ends_with("scans.bin"), "{}", d[0]);
    assert!(d[0].message.contains("a bundle may hold"), "{}", d[0]);
    assert!(matches!(
        Bundle::from_dir(&f.t(), None),
        Err(BundleError::Source(SourceError::BundleTooLarge { .. }))
    ));
}

#[test]
fn a_growing_file_cannot_pass_its_limit() {
    // The listing saw a small file; what is read is still bounded by the limit.
    let f = Fixture::new(Some("fonts/brand.ttf"), None);
    f.write("fonts/brand.ttf", b"tiny");
    let limits = SourceLimits {
        font: 100,
        ..SourceLimits::default()
    };
    let mut src = FolderSource::with_limits(&f.t(), None, limits).unwrap();
    f.write("fonts/brand.ttf", &[7u8; 200]);
    let path = pressrun_engine::source::RelPath::new("fonts/brand.ttf").unwrap();
    let r = src.read(
        pressrun_engine::source::Root::Template,
        &path,
        FileKind::Font,
    );
    assert!(
        matches!(r, Err(SourceError::TooLarge { limit: 100, .. })),
        "{r:?}"
    );
}

#[test]
fn folder_bundle_and_template_share_one_hash() {
    for name in ["statement", "insurance-letter"] {
        let dir = examples().join(name);
        let folder = compile(&dir, &CompileOptions::default()).unwrap();
        let bundle = Bundle::from_dir(&dir, None).unwrap();
        let from_bundle = bundle.compile().unwrap();
        assert_eq!(hex::encode(folder.template.content_hash), bundle.hash);
        assert_eq!(
            from_bundle.template.content_hash,
            folder.template.content_hash
        );
        let mut src = FolderSource::open(&dir, None).unwrap();
        assert_eq!(hex::encode(src.content_hash().unwrap()), bundle.hash);
    }
    // A template with its own font, compiled from memory: the same hash again.
    let f = Fixture::new(Some("fonts/brand.ttf"), Some("assets/logo.png"));
    f.write("fonts/brand.ttf", FONT);
    f.write("assets/logo.png", &png());
    let folder = f.compile().unwrap();
    let bundle = Bundle::from_dir(&f.t(), None).unwrap();
    let received = Bundle::verify(bundle.files.clone(), &bundle.hash).unwrap();
    assert_eq!(received.compile().unwrap().template.content_hash, folder);
    // Every file counts, so an edit anywhere is a new identity.
    f.write("README.md", b"notes");
    assert_ne!(f.compile().unwrap(), folder);
}

#[test]
fn a_bundle_compiles_from_memory_with_bundle_paths_in_errors() {
    let f = Fixture::new(Some("fonts/missing.ttf"), None);
    let bundle = Bundle::from_dir(&f.t(), None).unwrap();
    match bundle.compile() {
        Err(BundleError::Compile(Diagnostics(d))) => {
            assert_eq!(d.len(), 1);
            assert!(
                d[0].to_string().starts_with("template/template.toml:5:"),
                "{}",
                d[0]
            );
            assert!(d[0].message.contains("no such file"), "{}", d[0]);
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the compile must fail"),
    }
    // A bundle whose hash does not match its content never yields a template.
    let mut tampered = Bundle::from_dir(&Fixture::new(None, None).t(), None).unwrap();
    assert!(tampered.compile().is_ok());
    tampered.hash = "00".repeat(32);
    assert!(matches!(
        tampered.compile(),
        Err(BundleError::HashMismatch { .. })
    ));
}

#[test]
fn a_bundle_limits_each_file_by_its_kind() {
    let f = Fixture::new(Some("fonts/brand.ttf"), None);
    f.write("fonts/brand.ttf", FONT);
    let bundle = Bundle::from_dir(&f.t(), None).unwrap();
    let limits = SourceLimits {
        font: 1000,
        ..SourceLimits::default()
    };
    match bundle.compile_with(limits) {
        Err(BundleError::Compile(Diagnostics(d))) => {
            assert!(d[0].to_string().contains("template.toml:5:"), "{}", d[0]);
            assert!(d[0].message.contains("allowed for a font"), "{}", d[0]);
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the compile must fail"),
    }
}

#[test]
fn an_absolute_fragment_library_in_the_manifest_is_an_error() {
    let f = Fixture::new(None, None);
    f.write(
        "template.toml",
        b"[template]\nid = \"t\"\nversion = \"1\"\nfragments = \"/etc\"\n",
    );
    let (file, line, msg) = f.error();
    assert_eq!((file.as_str(), line), ("template.toml", 4), "{msg}");
}

#[test]
fn a_library_contributes_only_its_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    for e in std::fs::read_dir(examples().join("fragments")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), lib.join(e.file_name())).unwrap();
    }
    // What else sits in a folder named as the library is not read.
    std::fs::write(lib.join("secret.txt"), "not a fragment").unwrap();
    std::fs::create_dir(lib.join("sub")).unwrap();
    std::fs::write(lib.join("sub/key.pem"), "not a fragment").unwrap();
    let with = Bundle::from_dir(&examples().join("statement"), Some(&lib)).unwrap();
    assert!(
        with.files
            .iter()
            .all(|(p, _)| !p.contains("secret") && !p.contains("key.pem"))
    );
    let plain = Bundle::from_dir(
        &examples().join("statement"),
        Some(&examples().join("fragments")),
    )
    .unwrap();
    assert_eq!(with.hash, plain.hash);
}
