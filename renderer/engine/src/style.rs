//! Resolved styles shared by the template compiler, the layouter and the emitters.

use crate::text::font::FontId;

/// An RGB colour with components in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Color {
    pub r: f32,
    pub g: f32,
    pub b: f32,
}

impl Color {
    pub const BLACK: Color = Color {
        r: 0.0,
        g: 0.0,
        b: 0.0,
    };
    pub const WHITE: Color = Color {
        r: 1.0,
        g: 1.0,
        b: 1.0,
    };

    /// Parses `#rrggbb` or `#rgb`.
    pub fn parse_hex(s: &str) -> Option<Color> {
        let h = s.strip_prefix('#')?;
        // Only ASCII hex digits: byte slicing below then never splits a character.
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (r, g, b) = match h.len() {
            6 => (
                u8::from_str_radix(&h[0..2], 16).ok()?,
                u8::from_str_radix(&h[2..4], 16).ok()?,
                u8::from_str_radix(&h[4..6], 16).ok()?,
            ),
            3 => {
                let d = |i: usize| u8::from_str_radix(&h[i..i + 1], 16).ok().map(|v| v * 17);
                (d(0)?, d(1)?, d(2)?)
            }
            _ => return None,
        };
        Some(Color {
            r: r as f32 / 255.0,
            g: g as f32 / 255.0,
            b: b as f32 / 255.0,
        })
    }
}

/// Horizontal alignment of lines in a paragraph or of a cell's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Align {
    #[default]
    Left,
    Right,
    Center,
    Justify,
}

/// Index of a resolved style in a [`StyleSheet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StyleId(pub u32);

/// A fully resolved style: every property has a value (inheritance is done at compile time).
///
/// Paragraph properties (alignment, spacing, indents) are read from the block's style;
/// character properties (font, size, colour) from each inline run's style.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    pub name: String,
    pub family: String,
    pub bold: bool,
    pub italic: bool,
    /// The face chosen for family/bold/italic.
    pub font: FontId,
    /// Font size in points.
    pub size: f32,
    /// Distance between baselines in points.
    pub leading: f32,
    pub color: Color,
    pub align: Align,
    pub space_before: f32,
    pub space_after: f32,
    pub indent_left: f32,
    pub indent_right: f32,
    pub first_line_indent: f32,
    pub hyphenate: bool,
    pub underline: bool,
}

/// All resolved styles of a compiled template. Index 0 is the template's default style.
#[derive(Clone, Debug, Default)]
pub struct StyleSheet {
    pub styles: Vec<Style>,
}

impl StyleSheet {
    /// Returns the style with the given id.
    pub fn get(&self, id: StyleId) -> &Style {
        &self.styles[id.0 as usize]
    }
}

/// Margins of a page in points.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Margins {
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
    pub left: f32,
}

/// A fixed, absolutely positioned area of a page (for example the address block that must
/// show through an envelope window). Coordinates in points from the page's top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedRegion {
    pub name: String,
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// Geometry of one kind of page.
#[derive(Clone, Debug, PartialEq)]
pub struct PageMaster {
    pub width: f32,
    pub height: f32,
    pub margins: Margins,
    /// Height reserved at the top of the margin box for the running header.
    pub header_height: f32,
    /// Height reserved at the bottom of the margin box for the running footer.
    pub footer_height: f32,
    /// Extra offset from the top of the body area at which the flowing body starts
    /// (used on first pages to leave room for the address window).
    pub body_offset: f32,
    pub regions: Vec<FixedRegion>,
}

impl PageMaster {
    /// Returns the body area as (x, y, width, height), y from the top of the page.
    pub fn body_area(&self) -> (f32, f32, f32, f32) {
        let x = self.margins.left;
        let y = self.margins.top + self.header_height + self.body_offset;
        let w = self.width - self.margins.left - self.margins.right;
        let h = self.height - self.margins.bottom - self.footer_height - y;
        (x, y, w, h.max(0.0))
    }
}

/// The page masters of a template: the first page of each document and the pages after it.
#[derive(Clone, Debug, PartialEq)]
pub struct PageMasters {
    pub first: PageMaster,
    pub rest: PageMaster,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_non_ascii_is_refused_not_a_panic() {
        assert_eq!(Color::parse_hex("#fff"), Some(Color::WHITE));
        assert_eq!(Color::parse_hex("#000000"), Some(Color::BLACK));
        for bad in [
            "#€abc", "#€€", "#a€", "#ééé", "#12345", "fff", "#", "#+1+2+3",
        ] {
            assert_eq!(Color::parse_hex(bad), None, "{bad}");
        }
    }
}
