//! The indicium as a picture: a Data Matrix (ECC 200) holding the exact text line, with the
//! human-readable lines beside it (docs/indicium.md).
//!
//! ```text
//!   +-------------------------------------------------------------+
//!   |  quiet zone (4 modules)                                     |
//!   |   +--------+    PK14MX 04012345671SL USPS1NP USX63          |
//!   |   | Data   |    20261129IB4 65FC2 1NJA 0648430J             |
//!   |   | Matrix |    242B526248FCD19CCFD 2329ABC12CA06EF8VTZ     |
//!   |   +--------+                                                |
//!   +-------------------------------------------------------------+
//! ```
//!
//! Encoding uses the `datamatrix` crate, reading uses rxing. The symbol holds the bytes of
//! [`Indicium::to_text`], printable ASCII only, so any reader returns the very line the text
//! parser reads, with no character-set guess in between.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use datamatrix::{DataMatrix, DataMatrixBuilder, SymbolList};
use image::codecs::png::PngEncoder;
use image::{
    DynamicImage, ExtendedColorType, ImageEncoder as _, ImageError, ImageFormat, ImageReader,
    Limits,
};
use rxing::common::HybridBinarizer;
use rxing::datamatrix::DataMatrixReader;
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader as _};
use rxing::{BinaryBitmap, DecodeHints, Exceptions, Luma8LuminanceSource};

use crate::Indicium;

/// The blank margin around the symbol and between symbol and text, in modules. ECC 200 asks for
/// one; more keeps a reader's finder away from the text and the paper's edge.
pub const QUIET_ZONE: u32 = 4;

/// The largest module [`to_png`] draws, in pixels.
pub const MAX_MODULE_PX: u32 = 40;

/// The largest PNG [`read_png`] accepts, in bytes.
pub const MAX_PNG_BYTES: usize = 20 * 1024 * 1024;

/// The largest width or height [`read_png`] accepts, in pixels.
pub const MAX_PNG_SIDE: u32 = 8000;

/// What decoding a PNG may allocate: an 8-bit RGBA picture of the largest size.
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

/// Glyph cell of the bitmap font, in font pixels: 8 wide, 8 high plus 2 between lines.
const GLYPH: u32 = 8;
const LINE_PITCH: u32 = 10;

/// Why a symbol could not be drawn or read. [`Self::ModuleSize`] is our caller's mistake,
/// [`Self::ReaderFault`] and [`Self::Render`] are a library's, the rest are the input's.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// Our caller's mistake: a module size outside 1 to [`MAX_MODULE_PX`].
    #[error("module size {0} px is outside 1 to {MAX_MODULE_PX}")]
    ModuleSize(u32),
    /// The input is larger than [`MAX_PNG_BYTES`]; nothing of it was read.
    #[error("PNG of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// [`MAX_PNG_BYTES`].
        max: usize,
    },
    /// The picture is wider or taller than [`MAX_PNG_SIDE`], or would need more memory to decode
    /// than a picture of that size.
    #[error(
        "the picture exceeds {MAX_PNG_SIDE}x{MAX_PNG_SIDE} pixels or its decoding memory limit"
    )]
    Dimensions,
    /// The bytes are not a PNG that decodes.
    #[error("not a readable PNG")]
    Png(#[source] ImageError),
    /// The picture holds no Data Matrix symbol that a reader can find.
    #[error("no Data Matrix symbol found")]
    NotFound,
    /// Something like a symbol was found but does not decode: too damaged, not ECC 200, or no
    /// symbol at all (dense text can look like one to the finder).
    #[error("no Data Matrix symbol could be decoded (a candidate was found)")]
    Unreadable,
    /// The picture holds more than one symbol, of different texts: a picture is one mailpiece,
    /// and verifying one of them would leave the others unanswered.
    #[error(
        "the picture holds {0} Data Matrix symbols of different texts: give one mailpiece a picture"
    )]
    Several(usize),
    /// The reader failed on this picture in a way it does not report as an error.
    #[error("the Data Matrix reader failed on this picture")]
    ReaderFault,
    /// Drawing failed: the text did not fit a symbol or the PNG encoder refused the raster.
    /// Neither happens for a valid [`Indicium`]; it is reported rather than assumed.
    #[error("could not draw the symbol: {0}")]
    Render(&'static str),
}

/// The indicium as a PNG: black modules on white, `module_px` pixels each, a quiet zone of
/// [`QUIET_ZONE`] modules, and the lines of [`Indicium::lines`] to the right of the symbol in an
/// 8×8 bitmap font scaled to half a module per font pixel (at least one pixel).
pub fn to_png(indicium: &Indicium, module_px: u32) -> Result<Vec<u8>, SymbolError> {
    if !(1..=MAX_MODULE_PX).contains(&module_px) {
        return Err(SymbolError::ModuleSize(module_px));
    }
    let matrix = Matrix::of(indicium)?;
    let lines = indicium.lines();
    let m = module_px;
    let scale = (m / 2).max(1);
    let quiet = QUIET_ZONE * m;
    let text_x = quiet + matrix.width * m + quiet;
    let longest = lines.iter().map(String::len).max().unwrap_or(0) as u32;
    let text_width = longest * GLYPH * scale;
    let text_height = lines.len() as u32 * LINE_PITCH * scale;
    let width = text_x + text_width + quiet;
    let height = quiet + (matrix.height * m).max(text_height) + quiet;

    let mut raster = Raster::white(width, height);
    for (x, y) in matrix.dark() {
        raster.fill(quiet + x * m, quiet + y * m, m, m);
    }
    for (row, line) in lines.iter().enumerate() {
        let top = quiet + row as u32 * LINE_PITCH * scale;
        for (col, c) in line.bytes().enumerate() {
            raster.glyph(text_x + col as u32 * GLYPH * scale, top, c, scale);
        }
    }

    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&raster.pixels, width, height, ExtendedColorType::L8)
        .map_err(|_| SymbolError::Render("the PNG encoder refused the raster"))?;
    Ok(png)
}

/// The indicium as SVG: the dark modules as one path in module units, a quiet zone of
/// [`QUIET_ZONE`] modules, and the lines of [`Indicium::lines`] as `<text>` elements to the right,
/// in a monospace font 4 modules high. All text is XML-escaped.
pub fn to_svg(indicium: &Indicium) -> Result<String, SymbolError> {
    use core::fmt::Write as _;

    let matrix = Matrix::of(indicium)?;
    let lines = indicium.lines();
    const FONT: u32 = 4;
    const PITCH: u32 = 5;
    let q = QUIET_ZONE;
    let text_x = q + matrix.width + q;
    let longest = lines.iter().map(String::len).max().unwrap_or(0) as u32;
    // A monospace glyph advances about 0.6 em.
    let text_width = (longest * FONT * 3).div_ceil(5);
    let width = text_x + text_width + q;
    let height = q + matrix.height.max(lines.len() as u32 * PITCH) + q;

    // Writing to a String cannot fail, so the results of `write!` are ignored.
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{w}" height="{h}">"##,
        w = width * 4,
        h = height * 4,
    );
    let _ = write!(svg, r##"<rect width="{width}" height="{height}" fill="#fff"/>"##);
    svg.push_str(r##"<path fill="#000" shape-rendering="crispEdges" d=""##);
    for (x, y, run) in matrix.runs() {
        let _ = write!(svg, "M{} {}h{run}v1h-{run}z", q + x, q + y);
    }
    svg.push_str(r#""/>"#);
    for (row, line) in lines.iter().enumerate() {
        let baseline = q + row as u32 * PITCH + FONT;
        let _ = write!(
            svg,
            r##"<text x="{text_x}" y="{baseline}" font-family="monospace" font-size="{FONT}" fill="#000">{}</text>"##,
            xml_escape(line)
        );
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// Reads the Data Matrix in a PNG and returns the text it holds (for an indicium, the line
/// [`crate::parse`] reads). The PNG is bounded before decoding: at most [`MAX_PNG_BYTES`] bytes
/// and [`MAX_PNG_SIDE`] pixels a side. Transparent pixels count as white paper.
pub fn read_png(bytes: &[u8]) -> Result<String, SymbolError> {
    if bytes.len() > MAX_PNG_BYTES {
        return Err(SymbolError::TooLarge { len: bytes.len(), max: MAX_PNG_BYTES });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_PNG_SIDE);
    limits.max_image_height = Some(MAX_PNG_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        ImageError::Limits(_) => SymbolError::Dimensions,
        other => SymbolError::Png(other),
    })?;
    let (width, height) = (image.width(), image.height());
    read_luma(luma_on_white(image), width, height)
}

/// Grey levels, with any transparency composed over white.
fn luma_on_white(image: DynamicImage) -> Vec<u8> {
    if !image.color().has_alpha() {
        return image.into_luma8().into_raw();
    }
    image
        .into_luma_alpha8()
        .pixels()
        .map(|p| {
            let [l, a] = p.0.map(u32::from);
            // l·a + 255·(1 - a), rounded; at most 255.
            ((l * a + 255 * (255 - a) + 127) / 255) as u8
        })
        .collect()
}

fn read_luma(luma: Vec<u8>, width: u32, height: u32) -> Result<String, SymbolError> {
    let source =
        Luma8LuminanceSource::new(luma, width, height).map_err(|_| SymbolError::NotFound)?;
    let hints = DecodeHints { TryHarder: Some(true), ..DecodeHints::default() };
    // rxing is a port of ZXing and has panicked on malformed pictures before; a picture from
    // outside must not take the caller down with it.
    // Every symbol of the picture: the reader decodes the whole picture, then looks again
    // beside what it found. One mailpiece a picture: two symbols of different texts are refused.
    let result = catch_unwind(AssertUnwindSafe(move || {
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
        GenericMultipleBarcodeReader::new(DataMatrixReader)
            .decode_multiple_with_hints(&mut bitmap, &hints)
    }))
    .map_err(|_| SymbolError::ReaderFault)?;
    match result {
        Ok(found) => {
            let mut texts: Vec<&str> = found.iter().map(|r| r.getText()).collect();
            texts.sort_unstable();
            texts.dedup();
            match texts.as_slice() {
                [one] => Ok((*one).to_owned()),
                [] => Err(SymbolError::NotFound),
                several => Err(SymbolError::Several(several.len())),
            }
        }
        Err(Exceptions::NotFoundException(_)) => Err(SymbolError::NotFound),
        Err(_) => Err(SymbolError::Unreadable),
    }
}

/// The symbol's modules.
struct Matrix {
    width: u32,
    height: u32,
    dark: Vec<bool>,
}

impl Matrix {
    fn of(indicium: &Indicium) -> Result<Self, SymbolError> {
        let text = indicium.to_text();
        // Square symbols: the sizes every reader knows. No macros: the text never starts with
        // a macro header, and the symbol then holds exactly the bytes given.
        let symbol: DataMatrix = DataMatrixBuilder::new()
            .with_symbol_list(SymbolList::default().enforce_square())
            .with_macros(false)
            .encode(text.as_bytes())
            .map_err(|_| SymbolError::Render("the text does not fit a Data Matrix symbol"))?;
        let bitmap = symbol.bitmap();
        let (width, height) = (bitmap.width(), bitmap.height());
        let mut dark = vec![false; width * height];
        for (x, y) in bitmap.pixels() {
            if let Some(d) = dark.get_mut(y * width + x) {
                *d = true;
            }
        }
        // ECC 200 symbols are at most 144 modules a side.
        let side = |n: usize| u32::try_from(n).map_err(|_| SymbolError::Render("symbol too large"));
        Ok(Self { width: side(width)?, height: side(height)?, dark })
    }

    fn dark(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.runs().flat_map(|(x, y, run)| (x..x + run).map(move |x| (x, y)))
    }

    /// Horizontal runs of dark modules: (x, y, length).
    fn runs(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        let width = self.width as usize;
        self.dark.chunks(width.max(1)).zip(0u32..).flat_map(|(row, y)| {
            let mut runs = Vec::new();
            let mut start = None;
            for (x, &d) in row.iter().chain([&false]).enumerate() {
                match (d, start) {
                    (true, None) => start = Some(x),
                    (false, Some(s)) => {
                        runs.push((s as u32, y, (x - s) as u32));
                        start = None;
                    }
                    _ => {}
                }
            }
            runs
        })
    }
}

/// An 8-bit grey raster, white to start with.
struct Raster {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Raster {
    fn white(width: u32, height: u32) -> Self {
        Self { width, height, pixels: vec![255; width as usize * height as usize] }
    }

    /// Blackens a rectangle, clipped to the raster.
    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for row in y..(y + h).min(self.height) {
            let start = row as usize * self.width as usize;
            let (from, to) = (start + x as usize, start + (x + w).min(self.width) as usize);
            if let Some(span) = self.pixels.get_mut(from..to) {
                span.fill(0);
            }
        }
    }

    /// Draws one ASCII character of the 8×8 font, each font pixel `scale` pixels square.
    fn glyph(&mut self, x: u32, y: u32, c: u8, scale: u32) {
        let Some(rows) = font8x8::legacy::BASIC_LEGACY.get(usize::from(c)) else { return };
        for (dy, bits) in (0u32..).zip(rows) {
            for dx in 0..GLYPH {
                // The font's least significant bit is the leftmost pixel.
                if bits >> dx & 1 == 1 {
                    self.fill(x + dx * scale, y + dy * scale, scale, scale);
                }
            }
        }
    }
}

/// `s` with the five XML special characters replaced by entities.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_replaces_every_special_character() {
        assert_eq!(xml_escape(r#"a<b>&"c'd"#), "a&lt;b&gt;&amp;&quot;c&apos;d");
        assert_eq!(xml_escape("PK14MX 04012345671SL"), "PK14MX 04012345671SL");
    }

    #[test]
    fn runs_cover_exactly_the_dark_modules() {
        let m = Matrix {
            width: 4,
            height: 2,
            dark: vec![true, true, false, true, false, false, false, false],
        };
        assert_eq!(m.runs().collect::<Vec<_>>(), [(0, 0, 2), (3, 0, 1)]);
        assert_eq!(m.dark().collect::<Vec<_>>(), [(0, 0), (1, 0), (3, 0)]);
    }

    #[test]
    fn transparency_counts_as_white_paper() {
        let image =
            image::RgbaImage::from_raw(3, 1, vec![0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 128])
                .unwrap();
        assert_eq!(luma_on_white(DynamicImage::ImageRgba8(image)), [0, 255, 255]);
    }
}
