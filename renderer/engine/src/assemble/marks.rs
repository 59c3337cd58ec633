//! Production marks: the overlay drawn over a sheet side at assembly, outside every
//! document's content (and so outside its content hash). Each overlay is one marked-content
//! `/Artifact` sequence in its own graphics state: a white clear zone, the PIL/1 Data Matrix
//! code, and the OMR ladder when the profile asks for one.

use crate::barcode::{self, BarcodeError};
use crate::pdf::push_num;
use crate::production::{DataMatrixMark, OmrMark, TextMark};

/// What identifies one sheet for the inserter.
#[derive(Clone, Copy, Debug)]
pub struct SheetId<'a> {
    pub job: &'a str,
    pub piece: u32,
    /// 1-based sheet of the piece.
    pub k: u32,
    /// Sheets of the piece.
    pub n: u32,
    pub feeders: u8,
}

impl SheetId<'_> {
    /// The human-readable line: `J000001 piece 000042 sheet 2/3 feeders 01`.
    pub fn readable(&self) -> String {
        format!(
            "{} piece {:06} sheet {}/{} feeders {:02X}",
            self.job, self.piece, self.k, self.n, self.feeders
        )
    }

    /// The PIL/1 text the Data Matrix code carries: `PR1|<job>|<piece>|<k>/<n>|<feeders-hex>`.
    pub fn pil_text(&self) -> String {
        format!(
            "PR1|{}|{:06}|{}/{}|{:02X}",
            self.job, self.piece, self.k, self.n, self.feeders
        )
    }
}

fn rect(out: &mut Vec<u8>, x: f32, y: f32, w: f32, h: f32) {
    push_num(out, x);
    out.push(b' ');
    push_num(out, y);
    out.push(b' ');
    push_num(out, w);
    out.push(b' ');
    push_num(out, h);
    out.extend_from_slice(b" re\n");
}

/// Writes the overlay of one sheet side into `out` (cleared first).
pub fn overlay(
    dm: &DataMatrixMark,
    omr: Option<&OmrMark>,
    text: Option<&TextMark>,
    id: &SheetId<'_>,
    out: &mut Vec<u8>,
) -> Result<(), BarcodeError> {
    out.clear();
    out.extend_from_slice(b"/Artifact BMC\nq\n");
    let code = barcode::data_matrix_ascii(&id.pil_text())?;
    let module = dm.size / code.width.max(1) as f32;
    let cz = dm.clear_zone;
    out.extend_from_slice(b"1 g\n");
    rect(
        out,
        dm.x - cz,
        dm.y - cz,
        dm.size + 2.0 * cz,
        module * code.height as f32 + 2.0 * cz,
    );
    out.extend_from_slice(b"f\n0 g\n");
    let top = dm.y + module * code.height as f32;
    for row in 0..code.height {
        // Runs of dark modules in a row become one rectangle.
        let mut col = 0;
        while col < code.width {
            if !code.get(col, row) {
                col += 1;
                continue;
            }
            let start = col;
            while col < code.width && code.get(col, row) {
                col += 1;
            }
            rect(
                out,
                dm.x + start as f32 * module,
                top - (row + 1) as f32 * module,
                (col - start) as f32 * module,
                module,
            );
        }
    }
    out.extend_from_slice(b"f\n");
    if let Some(omr) = omr {
        let bits = omr.bits(id.k, id.n, id.feeders);
        let mut any = false;
        for (i, on) in bits.iter().enumerate() {
            if *on {
                rect(
                    out,
                    omr.x,
                    omr.y - i as f32 * omr.pitch - omr.thickness / 2.0,
                    omr.length,
                    omr.thickness,
                );
                any = true;
            }
        }
        if any {
            out.extend_from_slice(b"f\n");
        }
    }
    if let Some(t) = text {
        out.extend_from_slice(b"BT\n/");
        out.extend_from_slice(crate::pdf::MARK_FONT.as_bytes());
        out.push(b' ');
        push_num(out, t.size);
        out.extend_from_slice(b" Tf\n");
        push_num(out, t.x);
        out.push(b' ');
        push_num(out, t.y);
        out.extend_from_slice(b" Td\n(");
        for b in id.readable().bytes() {
            if matches!(b, b'(' | b')' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.extend_from_slice(b") Tj\nET\n");
    }
    out.extend_from_slice(b"Q\nEMC\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(k: u32, n: u32, feeders: u8) -> SheetId<'static> {
        SheetId {
            job: "J000042",
            piece: 7,
            k,
            n,
            feeders,
        }
    }

    #[test]
    fn overlay_draws_code_ladder_and_line_as_an_artifact() {
        use crate::production::OmrSignal;
        let dm = DataMatrixMark {
            x: 20.0,
            y: 300.0,
            size: 28.0,
            clear_zone: 5.0,
        };
        let omr = OmrMark {
            x: 14.0,
            y: 560.0,
            pitch: 12.0,
            length: 22.0,
            thickness: 1.0,
            marks: vec![
                OmrSignal::Start,
                OmrSignal::Insert,
                OmrSignal::Parity,
                OmrSignal::Safety,
            ],
        };
        let text = TextMark {
            x: 40.0,
            y: 14.0,
            size: 6.0,
        };
        let mut out = Vec::new();
        overlay(&dm, Some(&omr), Some(&text), &id(2, 2, 1), &mut out).unwrap();
        let ops = String::from_utf8(out.clone()).unwrap();
        assert!(ops.starts_with("/Artifact BMC\nq\n") && ops.ends_with("Q\nEMC\n"));
        // The clear zone, white, around the symbol.
        assert!(ops.contains("1 g\n15 295 38 38 re\n"), "{ops}");
        // One bar per printed OMR mark (start, insert on the last sheet, safety; the count
        // is odd, so parity too), at its place on the ladder.
        let bars: Vec<&str> = ops.lines().filter(|l| l.starts_with("14 ")).collect();
        assert_eq!(
            bars,
            [
                "14 559.5 22 1 re",
                "14 547.5 22 1 re",
                "14 535.5 22 1 re",
                "14 523.5 22 1 re"
            ]
        );
        assert!(
            ops.contains("/PRmk 6 Tf\n40 14 Td\n(J000042 piece 000007 sheet 2/2 feeders 01) Tj")
        );
        // Without a ladder or a line: only the code.
        overlay(&dm, None, None, &id(1, 2, 0), &mut out).unwrap();
        let ops = String::from_utf8(out).unwrap();
        assert!(!ops.contains("Tj") && !ops.lines().any(|l| l.starts_with("14 ")));
    }

    #[test]
    fn pil_text_follows_the_protocol() {
        assert_eq!(id(2, 3, 1).pil_text(), "PR1|J000042|000007|2/3|01");
        assert_eq!(id(1, 1, 0xA0).pil_text(), "PR1|J000042|000007|1/1|A0");
    }
}
