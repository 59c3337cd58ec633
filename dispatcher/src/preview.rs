//! Previews of templates that are not approved and in force: the rendered document with
//! "PREVIEW – NOT APPROVED" across the middle of every page, drawn as an artifact (not document content,
//! so a screen reader skips it) over the page, and never a document that can be sent.

use lopdf::{Dictionary, Document, Object, Stream};

/// The watermark's text, in WinAnsiEncoding (0x96 is the en dash).
const TEXT: &[u8] = b"PREVIEW \x96 NOT APPROVED";
/// The resource name of the watermark's font (Helvetica-Bold, a standard font).
const FONT: &[u8] = b"PRwm";

/// Draws the watermark on every page of `pdf`. Each page's own content is wrapped in
/// `q … Q` first, so nothing it leaves set can move or hide the watermark.
pub fn watermark(pdf: &[u8]) -> Result<Vec<u8>, String> {
    let mut doc = Document::load_mem(pdf).map_err(|e| format!("the rendered PDF: {e}"))?;
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica-Bold".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    let font_id = doc.add_object(font);
    let pages: Vec<_> = doc.get_pages().into_values().collect();
    if pages.is_empty() {
        return Err("the rendered PDF has no pages".into());
    }
    for page in pages {
        let (w, h) = media_box(&doc, page);
        // Across the middle of the page, grey, as wide as 80 % of the page (Helvetica-Bold
        // averages about 0.6 em per character of this text).
        let em = 0.6 * TEXT.len() as f32;
        let size = (w * 0.8 / em).max(8.0);
        let (x, y) = ((w - em * size) / 2.0, h / 2.0 - size / 3.0);
        let mut ops = Vec::new();
        ops.extend_from_slice(
            b"Q\n/Artifact <</Type /Pagination /Subtype /Watermark>> BDC\nq\n0.55 g\nBT\n/",
        );
        ops.extend_from_slice(FONT);
        ops.extend_from_slice(format!(" {size:.2} Tf\n1 0 0 1 {x:.2} {y:.2} Tm\n(").as_bytes());
        ops.extend_from_slice(TEXT);
        ops.extend_from_slice(b") Tj\nET\nQ\nEMC\n");
        let open = doc.add_object(Stream::new(Dictionary::new(), b"q\n".to_vec()));
        let mark = doc.add_object(Stream::new(Dictionary::new(), ops));
        let contents: Vec<Object> = match doc
            .get_dictionary(page)
            .map_err(|e| e.to_string())?
            .get(b"Contents")
        {
            Ok(Object::Reference(id)) => vec![Object::Reference(*id)],
            Ok(Object::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let mut all = vec![Object::Reference(open)];
        all.extend(contents);
        all.push(Object::Reference(mark));
        doc.get_dictionary_mut(page)
            .map_err(|e| e.to_string())?
            .set("Contents", all);
        add_font(&mut doc, page, font_id)?;
    }
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The page's MediaBox width and height (A4 if it has none of its own).
fn media_box(doc: &Document, page: lopdf::ObjectId) -> (f32, f32) {
    let number = |o: &Object| match o {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    };
    doc.get_dictionary(page)
        .ok()
        .and_then(|d| d.get(b"MediaBox").ok())
        .and_then(|b| b.as_array().ok())
        .and_then(|a| {
            let v: Vec<f32> = a.iter().filter_map(number).collect();
            (v.len() == 4).then(|| (v[2] - v[0], v[3] - v[1]))
        })
        .unwrap_or((595.28, 841.89))
}

/// Puts the watermark's font into the page's font resources (following references).
fn add_font(
    doc: &mut Document,
    page: lopdf::ObjectId,
    font: lopdf::ObjectId,
) -> Result<(), String> {
    let resources = doc
        .get_or_create_resources(page)
        .and_then(Object::as_dict_mut)
        .map_err(|e| e.to_string())?;
    if !resources.has(b"Font") {
        resources.set("Font", Dictionary::new());
    }
    let fonts = resources.get_mut(b"Font").map_err(|e| e.to_string())?;
    let fonts = match fonts {
        Object::Reference(id) => {
            let id = *id;
            doc.get_object_mut(id).map_err(|e| e.to_string())?
        }
        other => other,
    };
    fonts
        .as_dict_mut()
        .map_err(|e| e.to_string())?
        .set(FONT, Object::Reference(font));
    Ok(())
}
