//! Font objects of a PDF file: Type0 / CIDFontType2 with a subset FontFile2 and a
//! ToUnicode CMap, one per font used in the file.
//!
//! Fonts with CFF outlines (no `glyf` table) cannot be subset by [`super::subset`]; they
//! are embedded whole as `FontFile3 /OpenType` under a CIDFontType0, whose CIDs are the
//! glyph ids for non-CID-keyed CFF (the common case for OpenType fonts).

use std::borrow::Cow;
use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, Str};
use sha2::{Digest, Sha256};

use super::subset::{has_glyf, subset_truetype};
use crate::text::font::Font;

const IDENTITY: SystemInfo<'static> = SystemInfo {
    registry: Str(b"Adobe"),
    ordering: Str(b"Identity"),
    supplement: 0,
};

/// Derives the six-letter subset tag from the font and the glyph set (so the same
/// subset always gets the same tag, and different subsets almost surely differ).
pub(crate) fn subset_tag(font: &Font, glyphs: &BTreeMap<u16, String>) -> [u8; 6] {
    let mut h = Sha256::new();
    h.update(font.hash());
    for &g in glyphs.keys() {
        h.update(g.to_le_bytes());
    }
    let digest = h.finalize();
    let mut tag = [0u8; 6];
    for (t, d) in tag.iter_mut().zip(digest.iter()) {
        *t = b'A' + d % 26;
    }
    tag
}

/// Writes a font's objects; `type0` is the reference pages already point to. `glyphs`
/// maps every glyph the file uses to its text (empty when it has none).
pub(crate) fn write_font(
    pdf: &mut Pdf,
    alloc: &mut impl FnMut() -> Ref,
    font: &Font,
    type0: Ref,
    glyphs: &BTreeMap<u16, String>,
    level: u8,
) {
    let cid_ref = alloc();
    let descriptor_ref = alloc();
    let file_ref = alloc();
    let cmap_ref = alloc();
    let truetype = has_glyf(font.data());

    let mut base_font = Vec::with_capacity(7 + font.postscript_name().len());
    base_font.extend_from_slice(&subset_tag(font, glyphs));
    base_font.push(b'+');
    base_font.extend_from_slice(font.postscript_name().as_bytes());
    let base_font = if truetype {
        Name(&base_font)
    } else {
        Name(font.postscript_name().as_bytes())
    };

    pdf.type0_font(type0)
        .base_font(base_font)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_ref)
        .to_unicode(cmap_ref);

    let mut cid = pdf.cid_font(cid_ref);
    cid.subtype(if truetype {
        CidFontType::Type2
    } else {
        CidFontType::Type0
    })
    .base_font(base_font)
    .system_info(IDENTITY)
    .font_descriptor(descriptor_ref);
    if truetype {
        cid.cid_to_gid_map_predefined(Name(b"Identity"));
    }
    {
        let mut w = cid.widths();
        let ids: Vec<u16> = glyphs.keys().copied().collect();
        let mut i = 0;
        while i < ids.len() {
            let mut j = i + 1;
            while j < ids.len() && ids[j] == ids[j - 1] + 1 {
                j += 1;
            }
            w.consecutive(
                ids[i],
                ids[i..j]
                    .iter()
                    .map(|&g| (font.glyph_advance(g) * 1000.0).round() / 1000.0),
            );
            i = j;
        }
    }
    cid.finish();

    let ttf = font.ttf();
    let scale = font.scale();
    let bbox = ttf.global_bounding_box();
    let italic_angle = ttf.italic_angle();
    let mut flags = FontFlags::SYMBOLIC;
    if italic_angle != 0.0 {
        flags |= FontFlags::ITALIC;
    }
    if ttf.is_monospaced() {
        flags |= FontFlags::FIXED_PITCH;
    }
    let weight = f32::from(ttf.weight().to_number());
    // The usual estimate of the dominant vertical stem width from the weight class.
    let stem_v = 10.0 + 220.0 * ((weight - 50.0) / 900.0).max(0.0);
    let r = |v: f32| v.round();
    let mut desc = pdf.font_descriptor(descriptor_ref);
    desc.name(base_font)
        .flags(flags)
        .bbox(Rect::new(
            r(f32::from(bbox.x_min) * scale),
            r(f32::from(bbox.y_min) * scale),
            r(f32::from(bbox.x_max) * scale),
            r(f32::from(bbox.y_max) * scale),
        ))
        .italic_angle(italic_angle)
        .ascent(r(font.ascender()))
        .descent(r(font.descender()))
        .cap_height(r(font.cap_height()))
        .stem_v(r(stem_v));
    if truetype {
        desc.font_file2(file_ref);
    } else {
        desc.font_file3(file_ref);
    }
    desc.finish();

    if truetype {
        let ids: Vec<u16> = glyphs.keys().copied().collect();
        // A glyf font the subsetter cannot read is embedded whole: the page still shows.
        let sub: Cow<'_, [u8]> = match subset_truetype(font.data(), &ids) {
            Ok(s) => Cow::Owned(s),
            Err(_) => Cow::Borrowed(font.data()),
        };
        let packed = super::deflate(&sub, level);
        pdf.stream(file_ref, &packed)
            .filter(Filter::FlateDecode)
            .pair(Name(b"Length1"), sub.len() as i32);
    } else {
        let packed = super::deflate(font.data(), level);
        pdf.stream(file_ref, &packed)
            .filter(Filter::FlateDecode)
            .pair(Name(b"Subtype"), Name(b"OpenType"));
    }

    let mut cmap = UnicodeCmap::new(Name(b"Adobe-Identity-UCS"), IDENTITY);
    for (&g, text) in glyphs {
        if !text.is_empty() {
            cmap.pair_with_multiple(g, text.chars());
        }
    }
    let cmap = cmap.finish();
    let packed = super::deflate(cmap.as_slice(), level);
    let mut cmap = pdf.cmap(cmap_ref, &packed);
    cmap.name(Name(b"Adobe-Identity-UCS"))
        .system_info(IDENTITY)
        .filter(Filter::FlateDecode);
}
