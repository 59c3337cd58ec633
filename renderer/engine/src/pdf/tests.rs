//! End-to-end tests of PDF emission, checked with qpdf, poppler's tools and lopdf.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::image::{ImageAsset, ImageStore};
use crate::layout::frame::{Item, ItemKind, Page, PosGlyph, Role, Stroke, Tag};
use crate::style::Color;

const TEXT: &str = "Grüße Ωμέγα Привет";

fn env_with_images() -> PdfEnv {
    let mut images = ImageStore::default();
    let mut png = Vec::new();
    let img = image::RgbaImage::from_fn(6, 5, |x, y| {
        image::Rgba([x as u8 * 40, y as u8 * 50, 90, if x == 0 { 0 } else { 255 }])
    });
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    images.add(ImageAsset::load("logo.png", &png).unwrap());
    let mut jpg = Vec::new();
    let img = image::RgbImage::from_fn(12, 8, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 7]));
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut jpg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    images.add(ImageAsset::load("photo.jpg", &jpg).unwrap());
    PdfEnv {
        fonts: Arc::new(FontBook::with_defaults()),
        images: Arc::new(images),
    }
}

/// Shapes `text` naively: one glyph per char, hmtx advances, optional extra tracking.
fn run(env: &PdfEnv, font: FontId, text: &str, x: f32, y: f32, extra: f32) -> TextRun {
    let f = env.fonts.font(font);
    let glyphs = text
        .char_indices()
        .map(|(i, c)| {
            let id = f.ttf().glyph_index(c).map_or(0, |g| g.0);
            PosGlyph {
                id,
                advance: f.glyph_advance(id) + extra,
                dx: 0.0,
                dy: 0.0,
                cluster: i as u32,
            }
        })
        .collect();
    TextRun {
        x,
        y,
        font,
        size: 12.0,
        color: Color::BLACK,
        glyphs,
        text: text.to_string(),
    }
}

fn text_item(tag: Tag, run: TextRun) -> Item {
    Item {
        tag,
        kind: ItemKind::Text(run),
    }
}

fn meta(title: &str) -> DocMeta {
    DocMeta {
        id: "doc-1".into(),
        title: title.into(),
        lang: "de-DE".into(),
    }
}

/// A two-page letter: text on both pages, a rule, a box, two images and a footer.
fn letter(env: &PdfEnv, greeting: &str) -> LaidOutDocument {
    let mut structure = StructTree::new();
    let root = structure.root();
    let h1 = structure.push(root, Role::H(1), None);
    let p1 = structure.push(root, Role::P, None);
    let fig = structure.push(root, Role::Figure, Some("Company logo".into()));
    let table = structure.push(root, Role::Table, None);
    let tr = structure.push(table, Role::TR, None);
    let th = structure.push(tr, Role::TH, None);
    let p2 = structure.push(root, Role::P, None);
    let regular = FontId(0);
    let bold = FontId(1);
    let page1 = Page {
        width: 595.28,
        height: 841.89,
        items: vec![
            text_item(
                Tag::Struct(h1),
                run(env, bold, "Statement", 72.0, 90.0, 0.0),
            ),
            text_item(
                Tag::Struct(p1),
                run(env, regular, greeting, 72.0, 120.0, 0.0),
            ),
            text_item(
                Tag::Struct(p1),
                run(env, FontId(4), "justified text", 72.0, 136.0, 25.0),
            ),
            Item {
                tag: Tag::Struct(fig),
                kind: ItemKind::Image {
                    image: crate::image::ImageId(0),
                    x: 400.0,
                    y: 60.0,
                    w: 60.0,
                    h: 50.0,
                },
            },
            Item {
                tag: Tag::Artifact,
                kind: ItemKind::Line {
                    x0: 72.0,
                    y0: 150.0,
                    x1: 523.0,
                    y1: 150.0,
                    stroke: Stroke {
                        color: Color {
                            r: 0.2,
                            g: 0.3,
                            b: 0.4,
                        },
                        width: 0.5,
                    },
                },
            },
            Item {
                tag: Tag::Struct(th),
                kind: ItemKind::Rect {
                    x: 72.0,
                    y: 160.0,
                    w: 200.0,
                    h: 20.0,
                    fill: Some(Color {
                        r: 0.9,
                        g: 0.9,
                        b: 0.9,
                    }),
                    stroke: None,
                },
            },
            text_item(Tag::Struct(th), run(env, bold, "Amount", 76.0, 174.0, 0.0)),
            text_item(
                Tag::Artifact,
                run(env, regular, "Page 1 of 2", 72.0, 800.0, 0.0),
            ),
        ],
    };
    let page2 = Page {
        width: 595.28,
        height: 841.89,
        items: vec![
            text_item(
                Tag::Struct(p2),
                run(env, regular, "Seite zwei", 72.0, 90.0, 0.0),
            ),
            Item {
                tag: Tag::Struct(fig),
                kind: ItemKind::Image {
                    image: crate::image::ImageId(1),
                    x: 72.0,
                    y: 120.0,
                    w: 120.0,
                    h: 80.0,
                },
            },
            text_item(
                Tag::Artifact,
                run(env, regular, "Page 2 of 2", 72.0, 800.0, 0.0),
            ),
        ],
    };
    LaidOutDocument {
        pages: vec![page1, page2],
        structure,
    }
}

fn tool(name: &str, args: &[&str], file: &Path) -> (bool, String) {
    tool_with(name, args, file, &[])
}

/// Runs `name args file after`; fails the test when the tool is missing.
fn tool_with(name: &str, args: &[&str], file: &Path, after: &[&str]) -> (bool, String) {
    let out = Command::new(name)
        .args(args)
        .arg(file)
        .args(after)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{name}` is required for the PDF tests but could not be run ({e}); install qpdf and poppler-utils")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write_tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn qpdf_check(path: &Path) {
    let (ok, out) = tool("qpdf", &["--check"], path);
    assert!(ok, "qpdf --check failed:\n{out}");
    assert!(!out.contains("WARNING"), "qpdf warnings:\n{out}");
}

fn single_pdf(env: &PdfEnv, opts: PdfOptions, doc: &LaidOutDocument) -> Vec<u8> {
    let mut scratch = EncodeScratch::default();
    let enc = encode_document(doc, &meta("Statement"), env, &opts, &mut scratch);
    let mut w = PdfFileWriter::new(env.clone(), opts);
    assert_eq!(w.add_document(&enc), 1);
    w.finish(&meta("Statement"))
}

#[test]
fn two_pages_pass_qpdf_extract_text_and_embed_subsets() {
    let env = env_with_images();
    let doc = letter(&env, TEXT);
    let bytes = single_pdf(&env, PdfOptions::default(), &doc);
    let dir = tempfile::tempdir().unwrap();
    let path = write_tmp(&dir, "letter.pdf", &bytes);
    qpdf_check(&path);

    let (ok, text) = tool_with("pdftotext", &["-enc", "UTF-8"], &path, &["-"]);
    assert!(ok, "{text}");
    assert!(text.contains(TEXT), "pdftotext gave:\n{text}");
    assert!(text.contains("Seite zwei"), "pdftotext gave:\n{text}");
    assert!(text.contains("justified text"), "pdftotext gave:\n{text}");

    let (ok, fonts) = tool("pdffonts", &[], &path);
    assert!(ok, "{fonts}");
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert_eq!(rows.len(), 3, "{fonts}");
    for row in rows {
        assert!(row.contains("CID TrueType"), "{row}");
        assert!(row.contains("Identity-H"), "{row}");
        let cols: Vec<&str> = row.split_whitespace().collect();
        // name type... enc emb sub uni object ID
        let n = cols.len();
        assert_eq!(&cols[n - 5..n - 2], &["yes", "yes", "yes"], "{row}");
        let name = cols[0];
        assert_eq!(name.as_bytes()[6], b'+', "{name}");
        assert!(name[..6].bytes().all(|b| b.is_ascii_uppercase()), "{name}");
    }
    let (ok, info) = tool("pdfinfo", &[], &path);
    assert!(ok && info.contains("Pages:           2"), "{info}");
    assert!(info.contains("Producer:        Pressrun"), "{info}");
    assert!(info.contains("Title:           Statement"), "{info}");
}

/// Renders page 1 at 72 dpi in gray with poppler; returns (width, height, pixels).
fn render_gray(path: &Path, dir: &tempfile::TempDir) -> (usize, usize, Vec<u8>) {
    let prefix = dir.path().join("render");
    let args = ["-r", "72", "-gray", "-f", "1", "-l", "1", "-singlefile"];
    let (ok, out) = tool_with("pdftoppm", &args, path, &[prefix.to_str().unwrap()]);
    assert!(ok, "pdftoppm failed: {out}");
    let pgm = std::fs::read(prefix.with_extension("pgm")).unwrap();
    // P5 header: magic, width, height, maxval, each followed by one whitespace byte.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        let start = at;
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..at]).to_string());
        at += 1;
    }
    assert_eq!(fields[0], "P5");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, pgm[at..].to_vec())
}

#[test]
fn subset_glyphs_and_images_actually_render() {
    let env = env_with_images();
    let bytes = single_pdf(&env, PdfOptions::default(), &letter(&env, TEXT));
    let dir = tempfile::tempdir().unwrap();
    let path = write_tmp(&dir, "render.pdf", &bytes);
    let (w, h, px) = render_gray(&path, &dir);
    assert_eq!((w, h), (596, 842), "595.28 x 841.89 pt at 72 dpi");
    let dark_in = |x0: usize, y0: usize, x1: usize, y1: usize| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| px[y * w + x] < 128)
            .count()
    };
    // "Statement" (bold, baseline 90) and the greeting (baseline 120) have ink.
    assert!(dark_in(72, 80, 140, 92) > 40, "heading did not render");
    assert!(dark_in(72, 110, 180, 122) > 60, "greeting did not render");
    // The table header box is light gray, the rule is dark-ish, empty paper stays white.
    assert!(px[170 * w + 250] > 200 && px[170 * w + 250] < 250);
    assert_eq!(dark_in(300, 300, 500, 500), 0);
    // The PNG (x 400..460, y 60..110) is drawn: not white paper.
    assert!(px[85 * w + 430] < 250, "image did not render");
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let env = env_with_images();
    let doc = letter(&env, TEXT);
    let opts = PdfOptions {
        tagged: true,
        compression: 6,
    };
    let a = single_pdf(&env, opts, &doc);
    let b = single_pdf(&env, opts, &doc);
    assert_eq!(a, b);

    let mut scratch = EncodeScratch::default();
    let e1 = encode_document(&doc, &meta("x"), &env, &opts, &mut scratch);
    // The scratch is reused: leftovers must not leak into the next document.
    let other = letter(&env, "Hello");
    let e2 = encode_document(&other, &meta("x"), &env, &opts, &mut scratch);
    let e3 = encode_document(&doc, &meta("x"), &env, &opts, &mut scratch);
    assert_eq!(e1, e3);
    assert_ne!(e1.content_hash, e2.content_hash);
    // Compression level changes the bytes but not the content hash.
    let fast = PdfOptions {
        compression: 1,
        ..opts
    };
    let e4 = encode_document(&doc, &meta("x"), &env, &fast, &mut scratch);
    assert_eq!(e1.content_hash, e4.content_hash);
}

#[test]
fn glyph_text_comes_from_clusters_and_ligatures() {
    let env = env_with_images();
    let f = env.fonts.font(FontId(4));
    let fi = f
        .ttf()
        .glyph_index('ﬁ')
        .expect("DejaVu has the fi ligature")
        .0;
    let e = f.ttf().glyph_index('e').unwrap().0;
    let acute = f.ttf().glyph_index('\u{301}').unwrap().0;
    // "fié" shaped as [fi-ligature, e, combining acute] with the accent in e's cluster.
    let text = "fie\u{301}";
    let run = TextRun {
        x: 10.0,
        y: 20.0,
        font: FontId(4),
        size: 10.0,
        color: Color::BLACK,
        glyphs: vec![
            PosGlyph {
                id: fi,
                advance: f.glyph_advance(fi),
                dx: 0.0,
                dy: 0.0,
                cluster: 0,
            },
            PosGlyph {
                id: e,
                advance: f.glyph_advance(e),
                dx: 0.0,
                dy: 0.0,
                cluster: 2,
            },
            PosGlyph {
                id: acute,
                advance: 0.0,
                dx: -300.0,
                dy: 120.0,
                cluster: 2,
            },
        ],
        text: text.into(),
    };
    let plain = self::run(&env, FontId(4), "e", 10.0, 40.0, 0.0);
    let doc = LaidOutDocument {
        pages: vec![Page {
            width: 200.0,
            height: 100.0,
            items: vec![
                text_item(Tag::Artifact, run),
                text_item(Tag::Artifact, plain),
            ],
        }],
        structure: StructTree::new(),
    };
    let mut scratch = EncodeScratch::default();
    let enc = encode_document(&doc, &meta("x"), &env, &PdfOptions::default(), &mut scratch);
    let usage = &enc.fonts[0];
    let map: Vec<(u16, Option<&str>)> = usage.glyphs().collect();
    let mut expected = vec![(fi, Some("fi")), (e, Some("e\u{301}")), (acute, None)];
    expected.sort_by_key(|g| g.0);
    assert_eq!(map, expected);

    let content = miniz_oxide::inflate::decompress_to_vec_zlib(&enc.pages[0].content).unwrap();
    let content = String::from_utf8_lossy(&content).to_string();
    // The accent is raised with Ts and moved back with TJ adjustments, then the rise reset.
    assert!(content.contains("1.2 Ts"), "{content}");
    // The next run is back on the baseline.
    assert!(content.contains("\n0 Ts\n"), "{content}");
    assert!(content.contains(" 300 ("), "{content}");
    assert!(content.contains("/F4 10 Tf"), "{content}");
    assert!(content.contains("1 0 0 1 10 80 Tm"), "{content}");
}

#[test]
fn advances_that_differ_from_hmtx_become_tj_adjustments() {
    let env = env_with_images();
    let doc = LaidOutDocument {
        pages: vec![Page {
            width: 200.0,
            height: 100.0,
            items: vec![
                text_item(Tag::Artifact, run(&env, FontId(0), "AV", 0.0, 50.0, -80.0)),
                text_item(Tag::Artifact, run(&env, FontId(0), "plain", 0.0, 70.0, 0.0)),
            ],
        }],
        structure: StructTree::new(),
    };
    let mut scratch = EncodeScratch::default();
    let enc = encode_document(&doc, &meta("x"), &env, &PdfOptions::default(), &mut scratch);
    let content = miniz_oxide::inflate::decompress_to_vec_zlib(&enc.pages[0].content).unwrap();
    let f = env.fonts.font(FontId(0));
    let a = f.ttf().glyph_index('A').unwrap().0;
    let v = f.ttf().glyph_index('V').unwrap().0;
    let lit = |g: u16| {
        let mut b = Vec::new();
        for x in g.to_be_bytes() {
            match x {
                b'(' | b')' | b'\\' => b.extend_from_slice(&[b'\\', x]),
                b'\r' => b.extend_from_slice(b"\\r"),
                _ => b.push(x),
            }
        }
        b
    };
    let mut want = b"[(".to_vec();
    want.extend(lit(a));
    want.extend_from_slice(b") 80 (");
    want.extend(lit(v));
    want.extend_from_slice(b")] TJ");
    assert!(
        content.windows(want.len()).any(|w| w == want),
        "{}",
        String::from_utf8_lossy(&content)
    );
    // A run at hmtx advances is one glyph string; the font is not selected twice.
    let text = String::from_utf8_lossy(&content);
    assert_eq!(text.matches("Tf").count(), 1, "{text}");
    assert!(text.contains("1 0 0 1 0 30 Tm\n[("), "{text}");
}

#[test]
fn a_print_file_shares_fonts_and_adds_blank_pages() {
    let env = env_with_images();
    let opts = PdfOptions::default();
    let mut scratch = EncodeScratch::default();
    let a = encode_document(&letter(&env, TEXT), &meta("A"), &env, &opts, &mut scratch);
    let b = encode_document(
        &letter(&env, "Hallo Welt"),
        &meta("B"),
        &env,
        &opts,
        &mut scratch,
    );
    let mut w = PdfFileWriter::new(env.clone(), opts);
    assert_eq!(w.add_document(&a), 1);
    w.add_blank_page(595.28, 841.89);
    assert_eq!(w.add_document(&b), 4);
    w.add_blank_page(595.28, 841.89);
    assert_eq!(w.page_count(), 6);
    let bytes = w.finish(&meta("Print file"));

    let dir = tempfile::tempdir().unwrap();
    let path = write_tmp(&dir, "print.pdf", &bytes);
    qpdf_check(&path);
    let (_, info) = tool("pdfinfo", &[], &path);
    assert!(info.contains("Pages:           6"), "{info}");

    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    let mut type0 = 0;
    let mut images = 0;
    let mut font_files = Vec::new();
    for obj in pdf.objects.values() {
        let dict = match obj {
            lopdf::Object::Dictionary(d) => d,
            lopdf::Object::Stream(s) => &s.dict,
            _ => continue,
        };
        if dict.get(b"Subtype").and_then(|s| s.as_name()).ok() == Some(&b"Type0"[..]) {
            type0 += 1;
        }
        if dict.get(b"Subtype").and_then(|s| s.as_name()).ok() == Some(&b"Image"[..])
            && dict.get(b"SMask").is_ok()
        {
            images += 1;
        }
        let ff = dict.get(b"FontFile2").and_then(|o| o.as_reference());
        if let (Ok(ff), true) = (ff, name_of(dict, b"FontName").ends_with(b"+LiberationSans")) {
            font_files.push(ff);
        }
    }
    assert_eq!(
        type0, 3,
        "one Type0 object per font, shared by both documents"
    );
    assert_eq!(images, 1, "the PNG is embedded once, with its soft mask");

    // The embedded subsets are smaller than the fonts and keep the glyph numbering.
    let book = FontBook::with_defaults();
    let regular = book.font(FontId(0));
    let mut checked = false;
    for ff in font_files {
        let stream = pdf.get_object(ff).unwrap().as_stream().unwrap();
        let data = stream.decompressed_content().unwrap();
        let face = ttf_parser::Face::parse(&data, 0).expect("subset parses");
        if face.number_of_glyphs() == regular.ttf().number_of_glyphs() {
            checked = true;
            assert!(data.len() * 4 < regular.data().len(), "{}", data.len());
            let used = regular.ttf().glyph_index('ß').unwrap();
            let unused = regular.ttf().glyph_index('Q').unwrap();
            let mut sink = Bounds;
            assert!(face.outline_glyph(used, &mut sink).is_some());
            assert!(face.outline_glyph(unused, &mut sink).is_none());
        }
    }
    assert!(checked, "no subset of Liberation Sans Regular found");
}

struct Bounds;
impl ttf_parser::OutlineBuilder for Bounds {
    fn move_to(&mut self, _: f32, _: f32) {}
    fn line_to(&mut self, _: f32, _: f32) {}
    fn quad_to(&mut self, _: f32, _: f32, _: f32, _: f32) {}
    fn curve_to(&mut self, _: f32, _: f32, _: f32, _: f32, _: f32, _: f32) {}
    fn close(&mut self) {}
}

fn name_of<'a>(d: &'a lopdf::Dictionary, key: &[u8]) -> &'a [u8] {
    d.get(key).and_then(|o| o.as_name()).unwrap_or(b"")
}

#[test]
fn tagged_files_have_a_structure_tree() {
    let env = env_with_images();
    let doc = letter(&env, TEXT);
    let opts = PdfOptions {
        tagged: true,
        compression: 1,
    };
    let bytes = single_pdf(&env, opts, &doc);
    let dir = tempfile::tempdir().unwrap();
    let path = write_tmp(&dir, "tagged.pdf", &bytes);
    qpdf_check(&path);
    let (_, info) = tool("pdfinfo", &[], &path);
    assert!(info.contains("Tagged:          yes"), "{info}");

    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    let cat = pdf.catalog().unwrap();
    assert_eq!(
        cat.get(b"Lang").unwrap().as_str().unwrap(),
        b"de-DE",
        "catalog /Lang"
    );
    let mark = cat.get(b"MarkInfo").unwrap().as_dict().unwrap();
    assert!(mark.get(b"Marked").unwrap().as_bool().unwrap());
    let vp = cat.get(b"ViewerPreferences").unwrap().as_dict().unwrap();
    assert!(vp.get(b"DisplayDocTitle").unwrap().as_bool().unwrap());
    let meta_ref = cat.get(b"Metadata").unwrap().as_reference().unwrap();
    let xmp = pdf.get_object(meta_ref).unwrap().as_stream().unwrap();
    let xmp = String::from_utf8(xmp.content.clone()).unwrap();
    assert!(xmp.contains("<pdfuaid:part>1</pdfuaid:part>"), "{xmp}");
    assert!(xmp.contains(">Statement</rdf:li>"), "{xmp}");

    let root_ref = cat.get(b"StructTreeRoot").unwrap().as_reference().unwrap();
    let root = pdf.get_dictionary(root_ref).unwrap();
    assert_eq!(name_of(root, b"Type"), b"StructTreeRoot");
    assert!(root.get(b"ParentTree").is_ok());
    let top = pdf
        .get_dictionary(root.get(b"K").unwrap().as_reference().unwrap())
        .unwrap();
    assert_eq!(name_of(top, b"S"), b"Document");

    // Walk the element tree: the figure has its alt text and content on both pages,
    // the TH has its scope attribute, and every element points to its parent.
    let mut roles = Vec::new();
    let mut stack = vec![(root.get(b"K").unwrap().as_reference().unwrap(), root_ref)];
    let mut figure_alt = None;
    let mut th_scope = None;
    let mut mcrs = 0;
    while let Some((id, parent)) = stack.pop() {
        let el = pdf.get_dictionary(id).unwrap();
        assert_eq!(el.get(b"P").unwrap().as_reference().unwrap(), parent);
        let role = name_of(el, b"S").to_vec();
        if role == b"Figure" {
            figure_alt = Some(el.get(b"Alt").unwrap().as_str().unwrap().to_vec());
        }
        if role == b"TH" {
            let a = el.get(b"A").unwrap().as_array().unwrap()[0]
                .as_dict()
                .unwrap();
            th_scope = Some((name_of(a, b"O").to_vec(), name_of(a, b"Scope").to_vec()));
        }
        roles.push(role);
        let kids = match el.get(b"K") {
            Ok(lopdf::Object::Array(a)) => a.clone(),
            Ok(o) => vec![o.clone()],
            Err(_) => Vec::new(),
        };
        for k in kids {
            match k {
                lopdf::Object::Reference(r) => stack.push((r, id)),
                lopdf::Object::Integer(_) => mcrs += 1,
                lopdf::Object::Dictionary(d) => {
                    assert_eq!(name_of(&d, b"Type"), b"MCR");
                    mcrs += 1;
                }
                other => panic!("unexpected kid {other:?}"),
            }
        }
    }
    roles.sort();
    let names: Vec<&[u8]> = roles.iter().map(|r| &r[..]).collect();
    assert_eq!(
        names,
        [
            &b"Document"[..],
            b"Figure",
            b"H1",
            b"P",
            b"P",
            b"TH",
            b"TR",
            b"Table"
        ]
    );
    assert_eq!(figure_alt.as_deref(), Some(&b"Company logo"[..]));
    assert_eq!(
        th_scope,
        Some((b"Table".to_vec(), b"Column".to_vec())),
        "TH attributes"
    );
    // Page 1: H1, 2 x P, Figure, Rect + text in TH = 6; page 2: P, Figure = 2.
    assert_eq!(mcrs, 8);

    let pages = pdf.get_pages();
    for (i, (_, id)) in pages.iter().enumerate() {
        let page = pdf.get_dictionary(*id).unwrap();
        assert_eq!(
            page.get(b"StructParents").unwrap().as_i64().unwrap(),
            i as i64
        );
        assert_eq!(name_of(page, b"Tabs"), b"S");
    }
    let content = pdf.get_page_content(*pages.get(&1).unwrap()).unwrap();
    let content = String::from_utf8_lossy(&content);
    assert!(content.contains("/H1 <</MCID 0>> BDC"), "{content}");
    assert!(content.contains("/Figure <</MCID 3>> BDC"), "{content}");
    assert!(
        content.contains("/Artifact <</Type /Pagination>> BDC"),
        "{content}"
    );
}

#[test]
fn a_tagged_print_file_has_one_part_per_document() {
    let env = env_with_images();
    let opts = PdfOptions {
        tagged: true,
        compression: 1,
    };
    let mut scratch = EncodeScratch::default();
    let mut w = PdfFileWriter::new(env.clone(), opts);
    for name in ["A", "B", "C"] {
        let enc = encode_document(&letter(&env, name), &meta(name), &env, &opts, &mut scratch);
        w.add_document(&enc);
    }
    w.add_blank_page(595.28, 841.89);
    let bytes = w.finish(&meta("Run 42"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_tmp(&dir, "tagged-run.pdf", &bytes);
    qpdf_check(&path);
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    let cat = pdf.catalog().unwrap();
    let root = pdf
        .get_dictionary(cat.get(b"StructTreeRoot").unwrap().as_reference().unwrap())
        .unwrap();
    let top = pdf
        .get_dictionary(root.get(b"K").unwrap().as_reference().unwrap())
        .unwrap();
    assert_eq!(name_of(top, b"S"), b"Document");
    let parts = top.get(b"K").unwrap().as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for p in parts {
        let part = pdf.get_dictionary(p.as_reference().unwrap()).unwrap();
        assert_eq!(name_of(part, b"S"), b"Part");
    }
    // 3 documents x 2 pages carry marked content; the blank page has no StructParents.
    assert_eq!(root.get(b"ParentTreeNextKey").unwrap().as_i64().unwrap(), 6);
}

#[test]
fn odd_inputs_still_give_valid_files() {
    let env = env_with_images();
    // A glyph id the font does not have, an empty run, an unpainted rect, and a
    // structure reference outside the tree.
    let mut bad = run(&env, FontId(0), "ok", 10.0, 20.0, 0.0);
    bad.glyphs[0].id = u16::MAX;
    let mut empty = run(&env, FontId(0), "", 10.0, 40.0, 0.0);
    empty.glyphs.clear();
    let doc = LaidOutDocument {
        pages: vec![Page {
            width: 200.0,
            height: 100.0,
            items: vec![
                text_item(Tag::Struct(crate::layout::frame::StructId(99)), bad),
                text_item(Tag::Artifact, empty),
                Item {
                    tag: Tag::Artifact,
                    kind: ItemKind::Rect {
                        x: 0.0,
                        y: 0.0,
                        w: 10.0,
                        h: 10.0,
                        fill: None,
                        stroke: None,
                    },
                },
            ],
        }],
        structure: StructTree::default(),
    };
    let opts = PdfOptions {
        tagged: true,
        compression: 9,
    };
    let bytes = single_pdf(&env, opts, &doc);
    let dir = tempfile::tempdir().unwrap();
    qpdf_check(&write_tmp(&dir, "odd.pdf", &bytes));

    // A print file large enough for intermediate page tree nodes.
    let mut scratch = EncodeScratch::default();
    let plain = PdfOptions::default();
    let enc = encode_document(&letter(&env, "x"), &meta("x"), &env, &plain, &mut scratch);
    let mut w = PdfFileWriter::new(env.clone(), plain);
    for i in 0..70 {
        assert_eq!(w.add_document(&enc), 1 + 3 * i);
        w.add_blank_page(595.28, 841.89);
    }
    let bytes = w.finish(&meta("big"));
    let path = write_tmp(&dir, "big.pdf", &bytes);
    qpdf_check(&path);
    let (_, info) = tool("pdfinfo", &[], &path);
    assert!(info.contains("Pages:           210"), "{info}");
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    assert_eq!(pdf.get_pages().len(), 210);
    let (ok, text) = tool_with("pdftotext", &["-f", "209", "-l", "209"], &path, &["-"]);
    assert!(ok && text.contains("Seite zwei"), "{text}");

    // A file of blank pages only.
    let mut w = PdfFileWriter::new(env.clone(), PdfOptions::default());
    w.add_blank_page(100.0, 100.0);
    let bytes = w.finish(&DocMeta::default());
    qpdf_check(&write_tmp(&dir, "blank.pdf", &bytes));
}

#[test]
fn documents_encoded_on_worker_threads_match_serial_encoding() {
    let env = env_with_images();
    let opts = PdfOptions {
        tagged: true,
        compression: 1,
    };
    let docs: Vec<LaidOutDocument> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|g| letter(&env, g))
        .collect();
    let mut scratch = EncodeScratch::default();
    let serial: Vec<EncodedDocument> = docs
        .iter()
        .map(|d| encode_document(d, &meta("x"), &env, &opts, &mut scratch))
        .collect();
    let parallel: Vec<EncodedDocument> = std::thread::scope(|s| {
        let handles: Vec<_> = docs
            .chunks(2)
            .map(|chunk| {
                let env = env.clone();
                s.spawn(move || {
                    let mut scratch = EncodeScratch::default();
                    chunk
                        .iter()
                        .map(|d| encode_document(d, &meta("x"), &env, &opts, &mut scratch))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(serial, parallel);
}

#[test]
fn a_streamed_print_file_has_a_valid_table_and_its_own_hash() {
    use sha2::Digest;
    let env = env_with_images();
    let opts = PdfOptions::default();
    let mut scratch = EncodeScratch::default();
    let a = encode_document(&letter(&env, TEXT), &meta("A"), &env, &opts, &mut scratch);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.pdf");
    let mut w = PdfFileWriter::streaming(env.clone(), opts, &path).unwrap();
    // More pages than the page tree root takes directly, overlays on some, blank backs.
    let overlay = b"/Artifact BMC\nq 0 g 10 10 5 5 re f Q\nEMC\n".as_slice();
    for i in 0..60 {
        w.register(&a);
        for p in 0..a.pages.len() {
            w.add_page(&a, p, (i % 2 == 0).then_some(overlay));
        }
        w.add_blank_page_with(595.28, 841.89, (i % 3 == 0).then_some(overlay));
    }
    let pages = w.page_count();
    assert!(pages > 64 * 2, "{pages}");
    let (len, sha) = w.finish_streamed(&meta("Job")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(len, bytes.len() as u64);
    assert_eq!(sha, <[u8; 32]>::from(sha2::Sha256::digest(&bytes)));
    qpdf_check(&path);
    let (_, info) = tool("pdfinfo", &[], &path);
    assert!(
        info.contains(&format!("Pages:           {pages}")),
        "{info}"
    );
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    assert_eq!(pdf.get_pages().len() as u32, pages);
}
