//! The spool: a shard's encoded documents kept as plain data, so that print production can
//! assemble print jobs in any order and of any size from documents rendered anywhere.
//!
//! A spool file is `PRSPOOL1` followed by one frame per document, in the shard's order:
//! the record number (`u64` LE), the length of the body (`u32` LE) and the body, an
//! [`EncodedDocument`] in postcard. A spool crosses machine and disk boundaries, so
//! [`read_document`] checks everything an assembler would otherwise trust: the frame
//! lengths, that every glyph's text range lies in its text, that fonts and images exist in
//! the template, and (by the caller) that the content hash is the one the index recorded.

use super::EncodedDocument;

/// The first bytes of every spool file.
pub const MAGIC: &[u8; 8] = b"PRSPOOL1";

/// The largest document body a spool may hold (a 10,000-page document of rich pages).
pub const MAX_BODY: u32 = 1 << 30;

/// A spool that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("not a spool file (the first bytes are not {MAGIC:?})")]
    Magic,
    #[error("frame at byte {at} is cut short")]
    Truncated { at: u64 },
    #[error("frame at byte {at} is {len} bytes, over the limit of {MAX_BODY}")]
    TooLarge { at: u64, len: u32 },
    #[error("document of record {record} cannot be decoded: {reason}")]
    Decode { record: u64, reason: String },
}

/// Appends one document's frame to a spool buffer (which starts with [`MAGIC`]).
pub fn push_document(buf: &mut Vec<u8>, record: u64, doc: &EncodedDocument) {
    if buf.is_empty() {
        buf.extend_from_slice(MAGIC);
    }
    buf.extend_from_slice(&record.to_le_bytes());
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    // Serialised straight into the spool (no buffer per document), then the length
    // written before it.
    let mut out = postcard::to_extend(doc, std::mem::take(buf))
        .expect("an encoded document always serialises");
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    *buf = out;
}

/// Where one document's frame lies in a spool file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub record: u64,
    /// Byte offset of the body.
    pub offset: u64,
    pub len: u32,
}

/// Lists the frames of a spool file's bytes (or of its first bytes, read in pieces: see
/// [`frames_from`]).
pub fn frames(bytes: &[u8]) -> Result<Vec<Frame>, SpoolError> {
    frames_from(&mut std::io::Cursor::new(bytes), bytes.len() as u64)
}

/// Lists the frames of a spool of `len` bytes by reading only the frame headers.
pub fn frames_from<R: std::io::Read + std::io::Seek>(
    r: &mut R,
    len: u64,
) -> Result<Vec<Frame>, SpoolError> {
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(SpoolError::Magic);
    }
    let mut out = Vec::new();
    let mut at = 8u64;
    while at < len {
        let mut head = [0u8; 12];
        r.read_exact(&mut head)
            .map_err(|_| SpoolError::Truncated { at })?;
        let record = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let body = u32::from_le_bytes(head[8..].try_into().expect("4 bytes"));
        if body > MAX_BODY {
            return Err(SpoolError::TooLarge { at, len: body });
        }
        let offset = at + 12;
        if offset + u64::from(body) > len {
            return Err(SpoolError::Truncated { at });
        }
        r.seek(std::io::SeekFrom::Start(offset + u64::from(body)))
            .map_err(|_| SpoolError::Truncated { at })?;
        out.push(Frame {
            record,
            offset,
            len: body,
        });
        at = offset + u64::from(body);
    }
    Ok(out)
}

/// Decodes one document body and checks it against the resources it may use.
pub fn read_document(
    record: u64,
    body: &[u8],
    fonts: usize,
    images: usize,
) -> Result<EncodedDocument, SpoolError> {
    let bad = |reason: String| SpoolError::Decode { record, reason };
    let doc: EncodedDocument = postcard::from_bytes(body).map_err(|e| bad(e.to_string()))?;
    if doc.page_count as usize != doc.pages.len() {
        return Err(bad("its page count is not the number of its pages".into()));
    }
    for usage in &doc.fonts {
        if usize::from(usage.font.0) >= fonts {
            return Err(bad(format!("font {} is not in the template", usage.font.0)));
        }
        if !usage.ranges_valid() {
            return Err(bad("a glyph's text lies outside its text".into()));
        }
    }
    for page in &doc.pages {
        if page.fonts.iter().any(|f| usize::from(f.0) >= fonts)
            || page.images.iter().any(|i| i.0 as usize >= images)
            || !page.width.is_finite()
            || !page.height.is_finite()
            || page.width <= 0.0
            || page.height <= 0.0
        {
            return Err(bad("a page uses a resource or size that cannot be".into()));
        }
        // Every font and image a page names must be in the document's lists, which the
        // file writer allocates objects from.
        if page
            .fonts
            .iter()
            .any(|f| !doc.fonts.iter().any(|u| u.font == *f))
            || page.images.iter().any(|i| !doc.images.contains(i))
        {
            return Err(bad(
                "a page uses a font or image the document does not list".into(),
            ));
        }
    }
    if doc.images.iter().any(|i| i.0 as usize >= images) {
        return Err(bad("an image is not in the template".into()));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::EncodedPage;
    use crate::text::font::FontId;

    fn doc(n: u8, fonts: Vec<FontId>) -> EncodedDocument {
        EncodedDocument {
            content_hash: [n; 32],
            page_count: 1,
            pages: vec![EncodedPage {
                width: 595.0,
                height: 842.0,
                content: vec![n; 100 + n as usize],
                fonts,
                images: Vec::new(),
                mcids: Vec::new(),
            }],
            fonts: Vec::new(),
            images: Vec::new(),
            structure: None,
            title: format!("doc {n}"),
            lang: "en".into(),
        }
    }

    #[test]
    fn documents_round_trip_and_damage_is_an_error() {
        let mut buf = Vec::new();
        push_document(&mut buf, 7, &doc(1, Vec::new()));
        push_document(&mut buf, 9, &doc(2, Vec::new()));
        let f = frames(&buf).unwrap();
        assert_eq!(f.iter().map(|f| f.record).collect::<Vec<_>>(), [7, 9]);
        for (frame, n) in f.iter().zip([1, 2]) {
            let body = &buf[frame.offset as usize..][..frame.len as usize];
            assert_eq!(
                read_document(frame.record, body, 1, 0).unwrap(),
                doc(n, Vec::new())
            );
        }
        // Cut short, not a spool, a page naming a font the template does not have.
        assert!(matches!(
            frames(&buf[..buf.len() - 1]),
            Err(SpoolError::Truncated { .. })
        ));
        assert!(matches!(frames(b"PRSPOOL0"), Err(SpoolError::Magic)));
        let mut bad = Vec::new();
        push_document(&mut bad, 1, &doc(3, vec![FontId(5)]));
        let f = frames(&bad).unwrap();
        let body = &bad[f[0].offset as usize..][..f[0].len as usize];
        assert!(matches!(
            read_document(1, body, 1, 0),
            Err(SpoolError::Decode { .. })
        ));
        assert!(matches!(
            read_document(1, &body[..10], 1, 0),
            Err(SpoolError::Decode { .. })
        ));
    }
}
