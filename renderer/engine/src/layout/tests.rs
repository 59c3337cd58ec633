//! Layout tests on hand-built documents.

use super::frame::{ItemKind, Page, Role, Tag};
use super::limits::{Budget, Exceeded, Limits};
use super::{Blame, LayoutContext, LayoutEnv, LayoutError, layout_document};
use crate::doc::*;
use crate::image::ImageStore;
use crate::style::*;
use crate::text::font::FontBook;

struct Fixture {
    fonts: FontBook,
    images: ImageStore,
    styles: StyleSheet,
    masters: PageMasters,
}

fn fixture() -> Fixture {
    let fonts = FontBook::with_defaults();
    let regular = fonts.select("sans", false, false).unwrap();
    let bold = fonts.select("sans", true, false).unwrap();
    let base = Style {
        name: "default".into(),
        family: "sans".into(),
        bold: false,
        italic: false,
        font: regular,
        size: 10.0,
        leading: 12.0,
        color: Color::BLACK,
        align: Align::Left,
        space_before: 0.0,
        space_after: 4.0,
        indent_left: 0.0,
        indent_right: 0.0,
        first_line_indent: 0.0,
        hyphenate: false,
        underline: false,
    };
    let heading = Style {
        name: "h1".into(),
        bold: true,
        font: bold,
        size: 16.0,
        leading: 20.0,
        space_before: 8.0,
        ..base.clone()
    };
    let master = PageMaster {
        width: 595.0,
        height: 842.0,
        margins: Margins {
            top: 40.0,
            right: 50.0,
            bottom: 40.0,
            left: 50.0,
        },
        header_height: 20.0,
        footer_height: 20.0,
        body_offset: 0.0,
        regions: vec![FixedRegion {
            name: "window".into(),
            x: 57.0,
            y: 128.0,
            width: 255.0,
            height: 128.0,
        }],
    };
    let first = PageMaster {
        body_offset: 200.0,
        ..master.clone()
    };
    Fixture {
        fonts,
        images: ImageStore::default(),
        styles: StyleSheet {
            styles: vec![base, heading],
        },
        masters: PageMasters {
            first,
            rest: master,
        },
    }
}

fn para(text: &str, style: u32) -> Block {
    let role = if style == 1 {
        ParagraphRole::Heading(1)
    } else {
        ParagraphRole::Paragraph
    };
    Block::new(BlockKind::Paragraph(Paragraph {
        role,
        style: StyleId(style),
        inlines: vec![Inline::Text {
            text: text.into(),
            style: StyleId(style),
        }],
    }))
}

fn cell(text: &str) -> Cell {
    Cell {
        blocks: vec![para(text, 0)],
        align: None,
        fill: None,
    }
}

fn table(rows: usize) -> Block {
    let columns = vec![
        TableColumn {
            width: Width::Points(80.0),
            align: Align::Left,
        },
        TableColumn {
            width: Width::Fraction(1.0),
            align: Align::Left,
        },
        TableColumn {
            width: Width::Points(80.0),
            align: Align::Right,
        },
    ];
    let header = Some(Row {
        cells: vec![cell("Date"), cell("Description"), cell("Amount")],
    });
    let rows = (0..rows)
        .map(|i| Row {
            cells: vec![
                cell("2026-01-01"),
                cell(&format!("Row{i} payment")),
                cell(&format!("{i}.00")),
            ],
        })
        .collect();
    let footer = Some(Row {
        cells: vec![cell(""), cell("Closing balance"), cell("99.00")],
    });
    let style = TableStyle {
        padding: 2.0,
        row_rule: Some((Color::BLACK, 0.3)),
        border: Some((Color::BLACK, 0.5)),
        header_fill: Color::parse_hex("#dde"),
        stripe_fill: Color::parse_hex("#f4f4f4"),
        footer_fill: None,
    };
    Block::new(BlockKind::Table(Table {
        columns,
        header,
        rows,
        footer,
        style,
    }))
}

fn footer_page_x_of_y() -> Vec<Block> {
    let s = StyleId(0);
    vec![Block::new(BlockKind::Paragraph(Paragraph {
        role: ParagraphRole::Paragraph,
        style: s,
        inlines: vec![
            Inline::Text {
                text: "Page ".into(),
                style: s,
            },
            Inline::PageNumber { style: s },
            Inline::Text {
                text: " of ".into(),
                style: s,
            },
            Inline::PageCount { style: s },
        ],
    }))]
}

fn texts(page: &Page) -> Vec<String> {
    page.items
        .iter()
        .filter_map(|i| {
            if let ItemKind::Text(r) = &i.kind {
                Some(r.text.clone())
            } else {
                None
            }
        })
        .collect()
}

fn page_text(page: &Page) -> String {
    texts(page).join(" ")
}

fn lay(doc: &Document, f: &Fixture) -> super::frame::LaidOutDocument {
    lay_within(doc, f, &mut Budget::unlimited()).unwrap()
}

fn lay_within(
    doc: &Document,
    f: &Fixture,
    budget: &mut Budget,
) -> Result<super::frame::LaidOutDocument, LayoutError> {
    let env = LayoutEnv {
        fonts: &f.fonts,
        images: &f.images,
        styles: &f.styles,
        masters: &f.masters,
        structure: true,
    };
    layout_document(doc, &env, budget, &mut LayoutContext::new())
}

fn pages_limit(max_pages: u32) -> Budget {
    Budget::new(&Limits {
        max_pages,
        ..Limits::UNLIMITED
    })
}

#[test]
fn a_long_table_spans_pages_with_its_header_on_every_page_and_rows_whole() {
    let f = fixture();
    let doc = Document {
        body: vec![para("Statement", 1), table(150)],
        first: MasterContent {
            footer: footer_page_x_of_y(),
            ..Default::default()
        },
        rest: MasterContent {
            footer: footer_page_x_of_y(),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = lay(&doc, &f);
    let n = out.pages.len();
    assert!(n >= 3, "150 rows need several pages, got {n}");
    let mut seen_rows = Vec::new();
    for (i, page) in out.pages.iter().enumerate() {
        let t = texts(page);
        assert_eq!(
            t.iter().filter(|s| s.as_str() == "Description").count(),
            1,
            "header once on page {}",
            i + 1
        );
        assert!(
            page_text(page).contains(&format!("Page {} of {n}", i + 1)),
            "footer on page {}: {:?}",
            i + 1,
            page_text(page)
        );
        for s in &t {
            if let Some(r) = s.strip_prefix("Row") {
                seen_rows.push(r.trim_end_matches(" payment").to_string());
            }
        }
        // Nothing of the body below the body area.
        let (_, y, _, h) = if i == 0 {
            f.masters.first.body_area()
        } else {
            f.masters.rest.body_area()
        };
        for item in &page.items {
            if let (ItemKind::Text(r), Tag::Struct(_)) = (&item.kind, item.tag) {
                assert!(
                    r.y <= y + h + 0.01,
                    "text below the body area on page {}",
                    i + 1
                );
            }
        }
    }
    let expected: Vec<String> = (0..150).map(|i| format!("{i}")).collect();
    assert_eq!(seen_rows, expected, "every row exactly once, in order");
    // Repeated headers are artifacts; the first is real content (TH cells).
    let th = out
        .structure
        .nodes
        .iter()
        .filter(|n| n.role == Role::TH)
        .count();
    assert_eq!(th, 3);
    assert!(page_text(out.pages.last().unwrap()).contains("Closing balance"));
}

#[test]
fn a_heading_is_never_the_last_thing_on_a_page() {
    let f = fixture();
    let mut body = Vec::new();
    for i in 0..60 {
        body.push(para(&format!("Heading {i}"), 1));
        body.push(para("A paragraph of ordinary text that follows its heading and says something useful about the account.", 0));
    }
    let doc = Document {
        body,
        ..Default::default()
    };
    let out = lay(&doc, &f);
    assert!(out.pages.len() > 2);
    for page in &out.pages {
        let last = texts(page).last().cloned().unwrap();
        assert!(
            !last.starts_with("Heading"),
            "a page ends with a heading: {last}"
        );
    }
}

#[test]
fn page_breaks_and_the_address_window() {
    let f = fixture();
    let window = vec![para("Ms Zoë Müller", 0), para("12 High Street", 0)];
    let doc = Document {
        body: vec![
            para("First", 0),
            Block::new(BlockKind::PageBreak),
            para("Second", 0),
        ],
        first: MasterContent {
            regions: vec![(0, window)],
            ..Default::default()
        },
        ..Default::default()
    };
    let out = lay(&doc, &f);
    assert_eq!(out.pages.len(), 2);
    assert!(
        page_text(&out.pages[0]).contains("First") && !page_text(&out.pages[0]).contains("Second")
    );
    // The address sits inside the window region and comes first in reading order.
    let addr = out.pages[0]
        .items
        .iter()
        .find_map(|i| {
            if let ItemKind::Text(r) = &i.kind {
                r.text.contains("Zo").then_some(r.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert!(
        addr.x >= 57.0 && addr.y > 128.0 && addr.y < 128.0 + 128.0,
        "{addr:?}"
    );
    let root = &out.structure.nodes[0];
    let first_child = &out.structure.nodes[root.children[0].0 as usize];
    assert_eq!(first_child.role, Role::P);
    // Body text starts below the first page's body offset.
    let first = out.pages[0]
        .items
        .iter()
        .find_map(|i| {
            if let ItemKind::Text(r) = &i.kind {
                (r.text == "First").then_some(r.y)
            } else {
                None
            }
        })
        .unwrap();
    assert!(first > 40.0 + 20.0 + 200.0);
}

#[test]
fn layout_is_deterministic() {
    let f = fixture();
    let doc = Document {
        body: vec![para("Statement", 1), table(40)],
        ..Default::default()
    };
    assert_eq!(lay(&doc, &f), lay(&doc, &f));
}

#[test]
fn a_laid_out_table_becomes_a_valid_pdf_with_the_header_on_every_page() {
    use crate::pdf::{EncodeScratch, PdfEnv, PdfFileWriter, PdfOptions, encode_document};
    use std::sync::Arc;
    let f = fixture();
    let doc = Document {
        meta: DocMeta {
            id: "t1".into(),
            title: "Table test".into(),
            lang: "en-GB".into(),
        },
        body: vec![para("Statement Ωμέγα Привет", 1), table(120)],
        first: MasterContent {
            footer: footer_page_x_of_y(),
            ..Default::default()
        },
        rest: MasterContent {
            footer: footer_page_x_of_y(),
            ..Default::default()
        },
    };
    let out = lay(&doc, &f);
    let env = PdfEnv {
        fonts: Arc::new(FontBook::with_defaults()),
        images: Arc::new(ImageStore::default()),
    };
    let opts = PdfOptions {
        tagged: true,
        compression: 1,
    };
    let enc = encode_document(&out, &doc.meta, &env, &opts, &mut EncodeScratch::default());
    let mut w = PdfFileWriter::new(env, opts);
    w.add_document(&enc);
    let bytes = w.finish(&doc.meta);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pdf");
    std::fs::write(&path, bytes).unwrap();
    if let Some(keep) = std::env::var_os("PRESSRUN_KEEP_PDF") {
        std::fs::copy(&path, keep).unwrap();
    }
    let check = std::process::Command::new("qpdf")
        .arg("--check")
        .arg(&path)
        .output()
        .expect("qpdf is required (scripts/test.sh installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let n = out.pages.len();
    for p in 1..=n {
        let t = std::process::Command::new("pdftotext")
            .args(["-f", &p.to_string(), "-l", &p.to_string()])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext is required (scripts/test.sh installs poppler-utils)");
        let text = String::from_utf8_lossy(&t.stdout);
        assert!(
            text.contains("Description"),
            "header missing on page {p}: {text}"
        );
        assert!(
            text.contains(&format!("Page {p} of {n}")),
            "footer on page {p}: {text}"
        );
        if p == 1 {
            assert!(text.contains("Statement Ωμέγα Привет"), "{text}");
        }
    }
}

/// A paragraph of `n` lines `L0`, `L1`, … (forced line breaks).
fn lines_para(n: usize) -> Block {
    let s = StyleId(0);
    let mut inlines = Vec::new();
    for i in 0..n {
        if i > 0 {
            inlines.push(Inline::LineBreak);
        }
        inlines.push(Inline::Text {
            text: format!("L{i}"),
            style: s,
        });
    }
    Block::new(BlockKind::Paragraph(Paragraph {
        role: ParagraphRole::Paragraph,
        style: s,
        inlines,
    }))
}

#[test]
fn a_table_row_taller_than_pages_is_sliced_in_order_across_them() {
    let f = fixture();
    let mut t = table(1);
    let BlockKind::Table(tb) = &mut t.kind else {
        unreachable!()
    };
    tb.rows[0].cells[1].blocks = vec![lines_para(300)];
    let doc = Document {
        body: vec![para("Before", 0), t],
        ..Default::default()
    };
    let out = lay(&doc, &f);
    // 300 lines of 12 pt are 3,600 pt: more than four pages of this body area.
    assert!(out.pages.len() >= 5, "{} pages", out.pages.len());
    let mut seen = Vec::new();
    for (i, page) in out.pages.iter().enumerate() {
        let (_, y, _, h) = if i == 0 {
            f.masters.first.body_area()
        } else {
            f.masters.rest.body_area()
        };
        for item in &page.items {
            if let ItemKind::Text(r) = &item.kind
                && let Some(n) = r.text.strip_prefix('L')
            {
                seen.push(n.parse::<usize>().unwrap());
                // A slice takes the items whose top is above its cut.
                assert!(
                    r.y - r.size >= y - 0.01 && r.y - r.size < y + h,
                    "page {i} line {n} at {} outside {y}..{}",
                    r.y,
                    y + h
                );
            }
        }
    }
    assert_eq!(
        seen,
        (0..300).collect::<Vec<_>>(),
        "every line once, in order"
    );
}

#[test]
fn the_page_limit_stops_the_flow_early() {
    let f = fixture();
    let body: Vec<Block> = (0..5_000)
        .map(|i| para(&format!("Paragraph {i}"), 0))
        .collect();
    let doc = Document {
        body,
        ..Default::default()
    };
    let mut full = Budget::unlimited();
    let pages = lay_within(&doc, &f, &mut full).unwrap().pages.len();
    assert!(pages > 50, "{pages}");
    let mut limited = pages_limit(3);
    let e = lay_within(&doc, &f, &mut limited).unwrap_err();
    assert_eq!(
        e,
        LayoutError::Limit {
            exceeded: Exceeded::Pages(3),
            at: Blame::Unknown
        }
    );
    // Three pages hold about 170 of the 5,000 one-line paragraphs.
    assert!(
        limited.work() * 10 < full.work(),
        "{} of {} units of work",
        limited.work(),
        full.work()
    );
}

#[test]
fn a_document_of_exactly_the_page_limit_passes_and_one_more_page_fails() {
    let f = fixture();
    // Three columns side by side: only the rows count towards the page budget.
    let doc = Document {
        body: vec![para("Statement", 1), table(400)],
        ..Default::default()
    };
    let n = lay(&doc, &f).pages.len() as u32;
    assert!(n >= 5, "{n}");
    assert_eq!(
        lay_within(&doc, &f, &mut pages_limit(n))
            .unwrap()
            .pages
            .len() as u32,
        n
    );
    let e = lay_within(&doc, &f, &mut pages_limit(n - 1)).unwrap_err();
    assert!(
        matches!(e, LayoutError::Limit { exceeded: Exceeded::Pages(m), .. } if m == n - 1),
        "{e:?}"
    );
}

#[test]
fn a_giant_paragraph_is_stopped_and_named() {
    let f = fixture();
    let doc = Document {
        body: vec![para("Dear customer,", 0), lines_para(50_000)],
        ..Default::default()
    };
    let mut budget = pages_limit(2);
    let e = lay_within(&doc, &f, &mut budget).unwrap_err();
    let LayoutError::Limit { exceeded, at } = e else {
        panic!("{e:?}")
    };
    assert_eq!(exceeded, Exceeded::Pages(2));
    let Blame::Paragraph(text) = at else {
        panic!("{at:?}")
    };
    assert!(text.starts_with("L0\nL1\n"), "{}", &text[..20]);
    // Two pages hold about 120 lines: the breaker stopped long before line 50,000.
    assert!(budget.work() < 1_000, "{}", budget.work());
}

#[test]
fn a_giant_table_is_named() {
    let f = fixture();
    let doc = Document {
        body: vec![para("Statement", 1), table(20_000)],
        ..Default::default()
    };
    let mut budget = pages_limit(3);
    let e = lay_within(&doc, &f, &mut budget).unwrap_err();
    assert_eq!(
        e,
        LayoutError::Limit {
            exceeded: Exceeded::Pages(3),
            at: Blame::Table { rows: 20_000 }
        }
    );
    assert!(budget.work() < 2_000, "{}", budget.work());
}

#[test]
fn page_breaks_past_the_limit_stop_pagination() {
    let f = fixture();
    let mut body = Vec::new();
    for i in 0..2_000 {
        if i > 0 {
            body.push(Block::new(BlockKind::PageBreak));
        }
        body.push(para(&format!("Page {i}"), 0));
    }
    let doc = Document {
        body,
        ..Default::default()
    };
    assert_eq!(lay(&doc, &f).pages.len(), 2_000);
    let mut budget = pages_limit(10);
    let e = lay_within(&doc, &f, &mut budget).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Limit {
                exceeded: Exceeded::Pages(10),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_zero_time_limit_stops_the_layout() {
    let f = fixture();
    let doc = Document {
        body: vec![para("Statement", 1), table(10)],
        ..Default::default()
    };
    let mut budget = Budget::new(&Limits {
        max_compose_time: std::time::Duration::ZERO,
        ..Limits::default()
    });
    let e = lay_within(&doc, &f, &mut budget).unwrap_err();
    assert!(
        matches!(e, LayoutError::Limit { exceeded: Exceeded::Time(t), .. } if t.is_zero()),
        "{e:?}"
    );
    assert_eq!(budget.work(), 1, "stopped at the first check");
}
