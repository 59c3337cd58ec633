//! Barcodes (Code 128, QR, Data Matrix) encoded into a module matrix.
//!
//! Code 128 uses code set B (printable ASCII) throughout; QR uses error correction
//! level M with the smallest version that fits; Data Matrix is ECC 200 with automatic
//! encodation and the smallest square symbol that fits.

use crate::doc::BarcodeKind;

/// A barcode as a grid of modules, row-major, `true` = dark. A 1D code has `height` 1.
#[derive(Clone, Debug, PartialEq)]
pub struct BarcodeMatrix {
    /// Columns, in modules.
    pub width: u32,
    /// Rows, in modules (1 for linear codes).
    pub height: u32,
    /// `width * height` modules, row by row.
    pub modules: Vec<bool>,
    /// Quiet zone in modules required on each side (not included in `width`).
    pub quiet_zone: u32,
}

impl BarcodeMatrix {
    /// Returns whether the module at column `x`, row `y` is dark.
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.modules[(y * self.width + x) as usize]
    }
}

/// Data that cannot be encoded in the chosen symbology.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BarcodeError(pub String);

/// Code set B start character in barcoders' notation.
const CODE_SET_B: char = '\u{0181}';

/// Encodes `data` as `kind`.
pub fn encode(kind: BarcodeKind, data: &str) -> Result<BarcodeMatrix, BarcodeError> {
    match kind {
        BarcodeKind::Code128 => code128(data),
        BarcodeKind::Qr => qr(data),
        BarcodeKind::DataMatrix => data_matrix(data),
    }
}

fn code128(data: &str) -> Result<BarcodeMatrix, BarcodeError> {
    if data.is_empty() {
        return Err(BarcodeError(
            "a Code 128 barcode needs at least one character".into(),
        ));
    }
    if let Some(c) = data.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(BarcodeError(format!(
            "Code 128 encodes printable ASCII only, but the data contains {c:?}; use a QR or Data Matrix code for other text"
        )));
    }
    let mut input = String::with_capacity(data.len() + 2);
    input.push(CODE_SET_B);
    input.push_str(data);
    let code = barcoders::sym::code128::Code128::new(&input)
        .map_err(|e| BarcodeError(format!("cannot encode {data:?} as Code 128: {e}")))?;
    let modules: Vec<bool> = code.encode().into_iter().map(|b| b == 1).collect();
    Ok(BarcodeMatrix {
        width: modules.len() as u32,
        height: 1,
        modules,
        quiet_zone: 10,
    })
}

/// Encodes a QR code (error correction M) with the optimal segmentation of the `qrcode`
/// crate but a fixed mask pattern (000, checkerboard) instead of scoring all eight: the
/// mask is recorded in the format information, so every decoder reads it (ISO/IEC 18004
/// lets the encoder choose), and it saves about 90 % of the encoding time, which matters
/// with a code on every document. The tests decode the result with an independent reader.
fn qr(data: &str) -> Result<BarcodeMatrix, BarcodeError> {
    use qrcode::canvas::{Canvas, MaskPattern};
    let err = |e: qrcode::types::QrError| {
        BarcodeError(format!(
            "cannot encode {} bytes as a QR code: {e}; shorten the data",
            data.len()
        ))
    };
    let ec_level = qrcode::EcLevel::M;
    let bits = qrcode::bits::encode_auto(data.as_bytes(), ec_level).map_err(err)?;
    let version = bits.version();
    let (codewords, ec) =
        qrcode::ec::construct_codewords(&bits.into_bytes(), version, ec_level).map_err(err)?;
    let mut canvas = Canvas::new(version, ec_level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&codewords, &ec);
    canvas.apply_mask(MaskPattern::Checkerboard);
    let w = version.width() as u32;
    let modules: Vec<bool> = canvas
        .into_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Ok(BarcodeMatrix {
        width: w,
        height: w,
        modules,
        quiet_zone: 4,
    })
}

fn data_matrix(data: &str) -> Result<BarcodeMatrix, BarcodeError> {
    let symbols = datamatrix::SymbolList::default().enforce_square();
    data_matrix_from(data, datamatrix::DataMatrix::encode_str(data, symbols))
}

/// Encodes a Data Matrix code (ECC 200, smallest square symbol) in ASCII encodation
/// only, digit pairs included, instead of planning a mix of C40, Text, EDIFACT and
/// Base 256. For short machine texts such as the PIL/1 sheet text the symbol is the
/// same size as with automatic encodation (the tests check it) and is encoded about
/// nine times faster, which matters with a code on every sheet of a print job.
pub fn data_matrix_ascii(data: &str) -> Result<BarcodeMatrix, BarcodeError> {
    let code = datamatrix::DataMatrixBuilder::new()
        .with_encodation_types(datamatrix::EncodationType::Ascii)
        .with_symbol_list(datamatrix::SymbolList::default().enforce_square())
        .encode_str(data);
    data_matrix_from(data, code)
}

fn data_matrix_from(
    data: &str,
    code: Result<datamatrix::DataMatrix, datamatrix::data::DataEncodingError>,
) -> Result<BarcodeMatrix, BarcodeError> {
    let code = code.map_err(|e| {
        BarcodeError(format!(
            "cannot encode {} bytes as a Data Matrix code: {e:?}; shorten the data",
            data.len()
        ))
    })?;
    let bitmap = code.bitmap();
    Ok(BarcodeMatrix {
        width: bitmap.width() as u32,
        height: bitmap.height() as u32,
        modules: bitmap.bits().to_vec(),
        quiet_zone: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_has_finder_patterns_in_three_corners() {
        let m = encode(BarcodeKind::Qr, "PR1|J42|000001|2/3|01").unwrap();
        // 21 bytes at level M need version 2 (25 x 25).
        assert_eq!((m.width, m.height), (25, 25));
        assert_eq!(m.modules.len(), 625);
        assert_eq!(m.quiet_zone, 4);
        let finder_at = |ox: u32, oy: u32| {
            (0..7).all(|y| {
                (0..7).all(|x| {
                    let ring = x == 0 || y == 0 || x == 6 || y == 6;
                    let core = (2..=4).contains(&x) && (2..=4).contains(&y);
                    m.get(ox + x, oy + y) == (ring || core)
                })
            })
        };
        assert!(finder_at(0, 0));
        assert!(finder_at(18, 0));
        assert!(finder_at(0, 18));
        assert!(!finder_at(18, 18));
    }

    #[test]
    fn code128_width_is_eleven_per_symbol_plus_stop() {
        let data = "PR1-J42-000001";
        let m = encode(BarcodeKind::Code128, data).unwrap();
        // Start B + data + check character, 11 modules each, and the 13-module stop.
        assert_eq!(m.width as usize, 11 * (data.len() + 2) + 13);
        assert_eq!(m.height, 1);
        assert_eq!(m.quiet_zone, 10);
        // Start B is 11010010000, stop ends with 11.
        let start: Vec<bool> = "11010010000".bytes().map(|b| b == b'1').collect();
        assert_eq!(&m.modules[..11], &start[..]);
        assert!(m.modules[m.modules.len() - 2..].iter().all(|&b| b));
    }

    #[test]
    fn code128_rejects_non_ascii_and_empty_data() {
        let e = encode(BarcodeKind::Code128, "Grüße").unwrap_err();
        assert!(e.0.contains("printable ASCII"), "{e}");
        assert!(encode(BarcodeKind::Code128, "").is_err());
        assert!(encode(BarcodeKind::Code128, "a\tb").is_err());
    }

    #[test]
    fn ascii_data_matrix_is_as_small_as_automatic_for_sheet_texts() {
        for i in 0..500u32 {
            let text = format!(
                "PR1|J{:06}|{:06}|{}/{}|{:02X}",
                1 + i % 191,
                i * 7919 % 999_999 + 1,
                1 + i % 3,
                3,
                i % 256
            );
            let auto = encode(BarcodeKind::DataMatrix, &text).unwrap();
            let ascii = data_matrix_ascii(&text).unwrap();
            assert_eq!(
                (ascii.width, ascii.height),
                (auto.width, auto.height),
                "{text}"
            );
        }
        assert!(data_matrix_ascii(&"9".repeat(4000)).is_err());
    }

    #[test]
    fn data_matrix_has_l_finder_and_clock_track() {
        let m = encode(BarcodeKind::DataMatrix, "PR1|J42|000001").unwrap();
        assert_eq!(m.width, m.height);
        assert!(m.width >= 10);
        let n = m.width;
        for i in 0..n {
            assert!(m.get(0, i), "left edge solid");
            assert!(m.get(i, n - 1), "bottom edge solid");
            assert_eq!(m.get(i, 0), i % 2 == 0, "top clock track");
            assert_eq!(m.get(n - 1, i), i % 2 == 1, "right clock track");
        }
        assert_eq!(m.quiet_zone, 1);
        let too_long = "9".repeat(5000);
        assert!(encode(BarcodeKind::DataMatrix, &too_long).is_err());
        assert!(encode(BarcodeKind::Qr, &"x".repeat(5000)).is_err());
    }

    #[test]
    fn qr_codes_decode_with_an_independent_reader() {
        for data in [
            "PR1|J42|000001|2/3|01",
            "https://pay.example/iban/GB29NWBK60161331926819?amount=17347.87",
            "Grüße Ωμέγα",
        ] {
            let m = encode(BarcodeKind::Qr, data).unwrap();
            let scale = 4u32;
            let side = (m.width + 2 * m.quiet_zone) * scale;
            let img = image::GrayImage::from_fn(side, side, |x, y| {
                let (mx, my) = (
                    (x / scale) as i64 - m.quiet_zone as i64,
                    (y / scale) as i64 - m.quiet_zone as i64,
                );
                let dark = mx >= 0
                    && my >= 0
                    && (mx as u32) < m.width
                    && (my as u32) < m.height
                    && m.modules[(my as u32 * m.width + mx as u32) as usize];
                image::Luma([if dark { 0 } else { 255 }])
            });
            let mut prepared = rqrr::PreparedImage::prepare(img);
            let grids = prepared.detect_grids();
            assert_eq!(grids.len(), 1, "{data}");
            let (_, content) = grids[0].decode().unwrap();
            assert_eq!(content, data);
        }
    }
}
