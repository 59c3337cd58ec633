//! TrueType subsetting that keeps glyph numbering: unused glyphs become empty.
//!
//! Content streams address glyphs by their original ids (Identity-H with an identity
//! CIDToGIDMap), so the subset keeps every glyph slot and only drops outlines: `glyf` is
//! rewritten with the used glyphs (plus glyph 0 and every component of a composite
//! glyph), `loca` is rebuilt (short offsets whenever they fit), and only the tables a
//! PDF reader needs for a CIDFontType2 are kept: `head`, `hhea`, `maxp`, `hmtx`, `cvt `,
//! `fpgm`, `prep`, `glyf`, `loca`. Table checksums and `head.checksumAdjustment` are
//! recomputed; the output is a pure function of the font and the glyph set.

/// A font that cannot be subset (damaged or not TrueType-flavoured).
#[derive(Debug, thiserror::Error)]
pub enum SubsetError {
    /// A table the subsetter needs is missing.
    #[error("font has no '{0}' table; use a TrueType (glyf) font")]
    MissingTable(&'static str),
    /// The font's tables are inconsistent.
    #[error("font is damaged: {0}")]
    Damaged(&'static str),
}

/// Tables copied into the subset, in tag order (the table directory must be sorted).
const KEPT: [&[u8; 4]; 9] = [
    b"cvt ", b"fpgm", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp", b"prep",
];

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Finds a table in the font's directory.
fn table<'a>(data: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let count = u16_at(data, 4)? as usize;
    (0..count).find_map(|i| {
        let rec = 12 + 16 * i;
        if data.get(rec..rec + 4)? != tag {
            return None;
        }
        let off = u32_at(data, rec + 8)? as usize;
        let len = u32_at(data, rec + 12)? as usize;
        data.get(off..off.checked_add(len)?)
    })
}

/// Whether the font has TrueType outlines (a `glyf` table).
pub(crate) fn has_glyf(data: &[u8]) -> bool {
    table(data, b"glyf").is_some()
}

fn checksum(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        sum = sum.wrapping_add(u32::from_be_bytes(last));
    }
    sum
}

/// Returns the glyph ids a composite glyph refers to.
fn components(glyph: &[u8], out: &mut Vec<u16>) -> Result<(), SubsetError> {
    const ARGS_ARE_WORDS: u16 = 0x0001;
    const HAVE_SCALE: u16 = 0x0008;
    const MORE_COMPONENTS: u16 = 0x0020;
    const HAVE_XY_SCALE: u16 = 0x0040;
    const HAVE_2X2: u16 = 0x0080;
    let damaged = || SubsetError::Damaged("truncated composite glyph");
    if glyph.len() < 10 || (glyph[0] as i8) >= 0 {
        return Ok(());
    }
    let mut at = 10;
    loop {
        let flags = u16_at(glyph, at).ok_or_else(damaged)?;
        let gid = u16_at(glyph, at + 2).ok_or_else(damaged)?;
        out.push(gid);
        at += 4 + if flags & ARGS_ARE_WORDS != 0 { 4 } else { 2 };
        at += if flags & HAVE_SCALE != 0 {
            2
        } else if flags & HAVE_XY_SCALE != 0 {
            4
        } else if flags & HAVE_2X2 != 0 {
            8
        } else {
            0
        };
        if flags & MORE_COMPONENTS == 0 {
            return Ok(());
        }
    }
}

/// Builds a subset of a TrueType font that keeps only the outlines of `glyphs` (plus
/// glyph 0 and composite components) while keeping every glyph id where it was.
pub fn subset_truetype(data: &[u8], glyphs: &[u16]) -> Result<Vec<u8>, SubsetError> {
    let head = table(data, b"head").ok_or(SubsetError::MissingTable("head"))?;
    let maxp = table(data, b"maxp").ok_or(SubsetError::MissingTable("maxp"))?;
    let loca = table(data, b"loca").ok_or(SubsetError::MissingTable("loca"))?;
    let glyf = table(data, b"glyf").ok_or(SubsetError::MissingTable("glyf"))?;
    if head.len() < 54 {
        return Err(SubsetError::Damaged("head table too short"));
    }
    let num_glyphs = u16_at(maxp, 4).ok_or(SubsetError::Damaged("maxp too short"))? as usize;
    let long_loca = u16_at(head, 50) == Some(1);
    let offset = |i: usize| -> Option<usize> {
        if long_loca {
            u32_at(loca, 4 * i).map(|v| v as usize)
        } else {
            u16_at(loca, 2 * i).map(|v| v as usize * 2)
        }
    };
    let glyph_data = |g: usize| -> Result<&[u8], SubsetError> {
        let bad = SubsetError::Damaged("loca points outside glyf");
        let (a, b) = (offset(g).ok_or(bad)?, offset(g + 1));
        let b = b.ok_or(SubsetError::Damaged("loca points outside glyf"))?;
        if a > b {
            return Err(SubsetError::Damaged("loca offsets decrease"));
        }
        glyf.get(a..b)
            .ok_or(SubsetError::Damaged("loca points outside glyf"))
    };

    // Closure of the glyph set under composite references.
    let mut keep = vec![false; num_glyphs];
    let mut work: Vec<u16> = Vec::with_capacity(glyphs.len() + 1);
    work.push(0);
    work.extend_from_slice(glyphs);
    while let Some(g) = work.pop() {
        let g = g as usize;
        if g >= num_glyphs || keep[g] {
            continue;
        }
        keep[g] = true;
        components(glyph_data(g)?, &mut work)?;
    }

    // New glyf with 4-byte aligned glyphs; offsets for loca.
    let mut new_glyf = Vec::new();
    let mut offsets = Vec::with_capacity(num_glyphs + 1);
    for (g, &k) in keep.iter().enumerate() {
        offsets.push(new_glyf.len());
        if k {
            new_glyf.extend_from_slice(glyph_data(g)?);
            while new_glyf.len() % 4 != 0 {
                new_glyf.push(0);
            }
        }
    }
    offsets.push(new_glyf.len());
    let short = new_glyf.len() <= 0x1FFFE;
    let mut new_loca = Vec::with_capacity(offsets.len() * if short { 2 } else { 4 });
    for &o in &offsets {
        if short {
            new_loca.extend_from_slice(&((o / 2) as u16).to_be_bytes());
        } else {
            new_loca.extend_from_slice(&(o as u32).to_be_bytes());
        }
    }
    let mut new_head = head.to_vec();
    new_head[8..12].copy_from_slice(&[0; 4]);
    new_head[50..52].copy_from_slice(&(if short { 0u16 } else { 1 }).to_be_bytes());

    let mut tables: Vec<(&[u8; 4], &[u8])> = Vec::with_capacity(KEPT.len());
    for tag in KEPT {
        let data: &[u8] = match tag {
            b"glyf" => &new_glyf,
            b"loca" => &new_loca,
            b"head" => &new_head,
            _ => match table(data, tag) {
                Some(t) => t,
                None if matches!(tag, b"cvt " | b"fpgm" | b"prep") => continue,
                None => {
                    return Err(SubsetError::MissingTable(match tag {
                        b"hhea" => "hhea",
                        _ => "hmtx",
                    }));
                }
            },
        };
        tables.push((tag, data));
    }

    // Directory then 4-byte aligned tables.
    let n = tables.len() as u16;
    let entry_selector = 15 - n.leading_zeros() as u16;
    let search_range = (1u16 << entry_selector) * 16;
    let mut out = Vec::with_capacity(
        12 + 16 * tables.len() + tables.iter().map(|t| t.1.len() + 3).sum::<usize>(),
    );
    out.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&search_range.to_be_bytes());
    out.extend_from_slice(&entry_selector.to_be_bytes());
    out.extend_from_slice(&(n * 16 - search_range).to_be_bytes());
    let mut at = 12 + 16 * tables.len();
    let mut head_at = 0;
    for (tag, t) in &tables {
        out.extend_from_slice(*tag);
        out.extend_from_slice(&checksum(t).to_be_bytes());
        out.extend_from_slice(&(at as u32).to_be_bytes());
        out.extend_from_slice(&(t.len() as u32).to_be_bytes());
        if *tag == b"head" {
            head_at = at;
        }
        at += t.len().div_ceil(4) * 4;
    }
    for (_, t) in &tables {
        out.extend_from_slice(t);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    let adjustment = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    out[head_at + 8..head_at + 12].copy_from_slice(&adjustment.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::font::FontBook;

    #[test]
    fn subset_keeps_numbering_and_only_used_outlines() {
        let book = FontBook::with_defaults();
        let font = book.font(crate::text::font::FontId(0));
        let face = font.ttf();
        let a = face.glyph_index('A').unwrap().0;
        let b = face.glyph_index('B').unwrap().0;
        let z = face.glyph_index('z').unwrap().0;
        let out = subset_truetype(font.data(), &[a, b]).unwrap();
        assert!(out.len() * 5 < font.data().len(), "{} bytes", out.len());

        let sub = ttf_parser::Face::parse(&out, 0).expect("subset parses");
        assert_eq!(sub.number_of_glyphs(), face.number_of_glyphs());
        let bbox = |f: &ttf_parser::Face<'_>, g: u16| {
            struct Sink;
            impl ttf_parser::OutlineBuilder for Sink {
                fn move_to(&mut self, _: f32, _: f32) {}
                fn line_to(&mut self, _: f32, _: f32) {}
                fn quad_to(&mut self, _: f32, _: f32, _: f32, _: f32) {}
                fn curve_to(&mut self, _: f32, _: f32, _: f32, _: f32, _: f32, _: f32) {}
                fn close(&mut self) {}
            }
            f.outline_glyph(ttf_parser::GlyphId(g), &mut Sink)
        };
        assert_eq!(bbox(&sub, a), bbox(face, a));
        assert!(bbox(&sub, b).is_some());
        assert!(bbox(&sub, z).is_none(), "unused glyph keeps its outline");
        assert!(bbox(face, z).is_some());
        assert_eq!(
            sub.glyph_hor_advance(ttf_parser::GlyphId(z)),
            face.glyph_hor_advance(ttf_parser::GlyphId(z))
        );
        // The whole-file checksum rule of the OpenType spec holds.
        assert_eq!(checksum(&out), 0xB1B0_AFBA);
        // Deterministic.
        assert_eq!(out, subset_truetype(font.data(), &[b, a]).unwrap());
    }

    #[test]
    fn composite_components_are_kept() {
        let book = FontBook::with_defaults();
        let font = book.font(crate::text::font::FontId(0));
        let face = font.ttf();
        // 'Ü' is a composite of 'U' and the dieresis in Liberation Sans.
        let u_uml = face.glyph_index('Ü').unwrap().0;
        let out = subset_truetype(font.data(), &[u_uml]).unwrap();
        let sub = ttf_parser::Face::parse(&out, 0).unwrap();
        let mut sink = Vec::new();
        struct Count<'a>(&'a mut Vec<u8>);
        impl ttf_parser::OutlineBuilder for Count<'_> {
            fn move_to(&mut self, _: f32, _: f32) {
                self.0.push(b'm');
            }
            fn line_to(&mut self, _: f32, _: f32) {}
            fn quad_to(&mut self, _: f32, _: f32, _: f32, _: f32) {}
            fn curve_to(&mut self, _: f32, _: f32, _: f32, _: f32, _: f32, _: f32) {}
            fn close(&mut self) {}
        }
        sub.outline_glyph(ttf_parser::GlyphId(u_uml), &mut Count(&mut sink));
        let mut orig = Vec::new();
        face.outline_glyph(ttf_parser::GlyphId(u_uml), &mut Count(&mut orig));
        assert!(!orig.is_empty());
        assert_eq!(sink, orig, "components of the composite glyph were dropped");
    }

    #[test]
    fn missing_glyf_is_an_error() {
        assert!(matches!(
            subset_truetype(b"\0\x01\0\0\0\0", &[1]),
            Err(SubsetError::MissingTable(_))
        ));
    }
}
