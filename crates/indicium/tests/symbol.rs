//! The Data Matrix as a reader meets it: drawn, then scaled, turned, soiled, and read back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use image::imageops::{self, FilterType};
use image::{GrayImage, ImageFormat, Luma};
use postkey_indicium::symbol::{
    MAX_MODULE_PX, MAX_PNG_BYTES, MAX_PNG_SIDE, SymbolError, read_png, to_png, to_svg,
};
use postkey_indicium::{Indicium, parse};
use postkey_wire::{Date, Isn, Mailpiece, SubdomainId, Token, Zip};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn example() -> Indicium {
    Indicium {
        mailpiece: Mailpiece {
            isn: Isn::parse("0401234567").unwrap(),
            subdomain: SubdomainId::parse("USPS/US").unwrap(),
            date: Date::parse("20261129").unwrap(),
            value: 65,
            count: 1,
            zip: Zip::normalize("06484").unwrap(),
        },
        vendor: Token::parse_hex("242B526248FCD19C").unwrap(),
        postal: Token::parse_hex("2329ABC12CA06EF8").unwrap(),
    }
}

fn random_indicium(rng: &mut ChaCha20Rng) -> Indicium {
    let mut word = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.random_range(0..36)]))
            .collect()
    };
    let (isn, zip) = (word(16), word(10));
    Indicium {
        mailpiece: Mailpiece {
            isn: Isn::parse(&isn).unwrap(),
            subdomain: SubdomainId::parse("EARTH/DE").unwrap(),
            date: Date::new(rng.random_range(2000..=9999), rng.random_range(1..=12), 28).unwrap(),
            value: rng.random(),
            count: rng.random(),
            zip: Zip::parse(&zip).unwrap(),
        },
        vendor: Token::from_bytes(rng.random()),
        postal: Token::from_bytes(rng.random()),
    }
}

fn decode_png(png: &[u8]) -> GrayImage {
    image::load_from_memory_with_format(png, ImageFormat::Png).unwrap().into_luma8()
}

fn encode_png(image: &GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Turns `image` by `degrees` about its centre onto a canvas large enough for the result,
/// sampling bilinearly, with white where the picture does not reach.
fn rotate(image: &GrayImage, degrees: f64) -> GrayImage {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (out_w, out_h) = (w * cos.abs() + h * sin.abs(), w * sin.abs() + h * cos.abs());
    let (out_w, out_h) = (out_w.ceil() as u32, out_h.ceil() as u32);
    let sample = |x: f64, y: f64| -> f64 {
        let (x0, y0) = (x.floor(), y.floor());
        let at = |xi: f64, yi: f64| {
            if xi < 0.0 || yi < 0.0 || xi >= w || yi >= h {
                255.0
            } else {
                f64::from(image.get_pixel(xi as u32, yi as u32).0[0])
            }
        };
        let (fx, fy) = (x - x0, y - y0);
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
        let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    GrayImage::from_fn(out_w, out_h, |ox, oy| {
        // Inverse mapping: where in the source does this output pixel's centre come from?
        let (dx, dy) = (
            f64::from(ox) + 0.5 - f64::from(out_w) / 2.0,
            f64::from(oy) + 0.5 - f64::from(out_h) / 2.0,
        );
        let (sx, sy) = (cos * dx + sin * dy + w / 2.0 - 0.5, -sin * dx + cos * dy + h / 2.0 - 0.5);
        Luma([sample(sx, sy).round() as u8])
    })
}

#[test]
fn the_symbol_reads_back_as_the_exact_text_line() {
    let indicium = example();
    for module_px in [2, 3, 5, 8] {
        let png = to_png(&indicium, module_px).unwrap();
        let text = read_png(&png).unwrap();
        assert_eq!(text, indicium.to_text(), "{module_px} px");
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.indicium, indicium);
        assert!(parsed.repairs.is_empty());
    }
}

#[test]
fn random_indicia_read_back() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..6 {
        let indicium = random_indicium(&mut rng);
        let png = to_png(&indicium, 3).unwrap();
        assert_eq!(parse(&read_png(&png).unwrap()).unwrap().indicium, indicium);
    }
}

#[test]
fn the_picture_has_the_layout_of_the_docs() {
    // Quiet zone all round, symbol top left, text to its right: the corners are white and the
    // picture is wider than tall.
    let image = decode_png(&to_png(&example(), 4).unwrap());
    // A 36×36 symbol and 39 characters of text at 8 px: (4 + 36 + 4) × 4 + 39 × 8 + 4 × 4.
    assert_eq!(image.dimensions(), (816, 176), "docs/indicium.md gives this size");
    for (x, y) in [(0, 0), (image.width() - 1, image.height() - 1)] {
        assert_eq!(image.get_pixel(x, y).0[0], 255);
    }
    // Four modules of quiet zone at 4 px, then the symbol's solid left edge.
    assert_eq!(image.get_pixel(15, 20).0[0], 255);
    assert_eq!(image.get_pixel(16, 20).0[0], 0);
    let dark = image.pixels().filter(|p| p.0[0] == 0).count();
    let light = image.pixels().filter(|p| p.0[0] == 255).count();
    assert_eq!(dark + light, image.pixels().count(), "pure black on white");
}

#[test]
fn a_scaled_picture_still_reads() {
    let indicium = example();
    let image = decode_png(&to_png(&indicium, 3).unwrap());
    let (w, h) = (image.width() * 17 / 10, image.height() * 17 / 10);
    for filter in [FilterType::Nearest, FilterType::Triangle] {
        let scaled = imageops::resize(&image, w, h, filter);
        assert_eq!(read_png(&encode_png(&scaled)).unwrap(), indicium.to_text(), "{filter:?}");
    }
    let shrunk = imageops::resize(
        &decode_png(&to_png(&indicium, 8).unwrap()),
        w / 2,
        h / 2,
        FilterType::Triangle,
    );
    assert_eq!(read_png(&encode_png(&shrunk)).unwrap(), indicium.to_text());
}

#[test]
fn a_turned_picture_still_reads() {
    let indicium = example();
    let image = decode_png(&to_png(&indicium, 4).unwrap());
    for degrees in [-6.0, -2.5, 3.0, 7.0] {
        let turned = rotate(&image, degrees);
        assert_ne!(turned, image);
        assert_eq!(read_png(&encode_png(&turned)).unwrap(), indicium.to_text(), "{degrees}°");
    }
}

#[test]
fn a_soiled_picture_still_reads() {
    let indicium = example();
    let mut image = decode_png(&to_png(&indicium, 4).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(0x5a1);
    let mut flipped = 0;
    for pixel in image.pixels_mut() {
        // Salt and pepper on 3% of the pixels.
        if rng.random_range(0..100) < 3 {
            pixel.0[0] = if rng.random() { 0 } else { 255 };
            flipped += 1;
        }
    }
    assert!(flipped > 1000);
    assert_eq!(read_png(&encode_png(&image)).unwrap(), indicium.to_text());
}

#[test]
fn black_on_transparent_reads_as_black_on_white() {
    let image = decode_png(&to_png(&example(), 4).unwrap());
    let rgba = image::RgbaImage::from_fn(image.width(), image.height(), |x, y| {
        let dark = image.get_pixel(x, y).0[0] < 128;
        // Transparent black where the paper shows: read as grey levels alone, all would be black.
        image::Rgba(if dark { [0, 0, 0, 255] } else { [0, 0, 0, 0] })
    });
    let mut png = std::io::Cursor::new(Vec::new());
    rgba.write_to(&mut png, ImageFormat::Png).unwrap();
    assert_eq!(read_png(png.get_ref()).unwrap(), example().to_text());
}

#[test]
fn a_picture_without_a_symbol_is_told_apart_from_bytes_that_are_no_png() {
    for (w, h) in [(300, 200), (1, 1)] {
        let blank = GrayImage::from_pixel(w, h, Luma([255]));
        assert!(matches!(read_png(&encode_png(&blank)), Err(SymbolError::NotFound)));
    }
    // Only the human-readable text, the symbol cut off.
    let image = decode_png(&to_png(&example(), 4).unwrap());
    let text_only =
        imageops::crop_imm(&image, 200, 0, image.width() - 200, image.height()).to_image();
    // Dense text can look like a candidate to the finder; either way no text comes out.
    assert!(matches!(
        read_png(&encode_png(&text_only)),
        Err(SymbolError::NotFound | SymbolError::Unreadable)
    ));

    for garbage in [&b""[..], b"not a picture", &[0x89, b'P', b'N', b'G', 0, 0, 0]] {
        assert!(matches!(read_png(garbage), Err(SymbolError::Png(_))), "{garbage:?}");
    }
    let png = to_png(&example(), 2).unwrap();
    assert!(matches!(read_png(&png[..png.len() / 2]), Err(SymbolError::Png(_))));
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    assert!(matches!(read_png(gif), Err(SymbolError::Png(_))));
}

#[test]
fn oversize_input_is_refused_before_decoding() {
    let big = vec![0u8; MAX_PNG_BYTES + 1];
    assert!(matches!(
        read_png(&big),
        Err(SymbolError::TooLarge { len, max: MAX_PNG_BYTES }) if len == MAX_PNG_BYTES + 1
    ));
    // A small file that claims a picture too wide: refused from its header.
    let wide = GrayImage::from_pixel(MAX_PNG_SIDE + 1, 1, Luma([255]));
    let wide = encode_png(&wide);
    assert!(wide.len() < 10_000);
    assert!(matches!(read_png(&wide), Err(SymbolError::Dimensions)));
    let tall = encode_png(&GrayImage::from_pixel(1, MAX_PNG_SIDE + 1, Luma([255])));
    assert!(matches!(read_png(&tall), Err(SymbolError::Dimensions)));
}

#[test]
fn module_sizes_are_bounded() {
    for bad in [0, MAX_MODULE_PX + 1, u32::MAX] {
        assert!(matches!(to_png(&example(), bad), Err(SymbolError::ModuleSize(n)) if n == bad));
    }
    assert!(to_png(&example(), MAX_MODULE_PX).is_ok());
    assert!(to_png(&example(), 1).is_ok());
}

/// The dark modules an SVG of ours draws, read back from its path (`M x y h n v1 h-n z` runs)
/// and painted into a raster of `px` pixels per module.
fn raster_of_svg(svg: &str, px: u32) -> GrayImage {
    let view = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
    let mut dims = view.split(['"', ' ']).map(|n| n.parse::<u32>().unwrap());
    let (w, h) = (dims.next().unwrap(), dims.next().unwrap());
    let mut image = GrayImage::from_pixel(w * px, h * px, Luma([255]));
    let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    for run in path.split('M').filter(|r| !r.is_empty()) {
        let (x, rest) = run.split_once(' ').unwrap();
        let (y, rest) = rest.split_once('h').unwrap();
        let (n, rest) = rest.split_once('v').unwrap();
        assert_eq!(rest, format!("1h-{n}z"));
        let (x, y, n): (u32, u32, u32) =
            (x.parse().unwrap(), y.parse().unwrap(), n.parse().unwrap());
        for py in y * px..(y + 1) * px {
            for pxl in x * px..(x + n) * px {
                image.put_pixel(pxl, py, Luma([0]));
            }
        }
    }
    image
}

#[test]
fn the_svg_draws_the_same_symbol_and_the_text_lines() {
    let indicium = example();
    let svg = to_svg(&indicium).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    for line in indicium.lines() {
        assert!(svg.contains(&format!(">{line}</text>")), "{line}");
    }
    assert_eq!(svg.matches("<text ").count(), 3);
    // Nothing but the escaped forms of XML's special characters appears in text content.
    for bad in ['&', '<', '>'] {
        let contents = svg.split("</text>").filter_map(|t| t.rsplit_once('>').map(|(_, c)| c));
        assert!(contents.into_iter().all(|c| !c.contains(bad)));
    }
    let raster = raster_of_svg(&svg, 4);
    assert_eq!(read_png(&encode_png(&raster)).unwrap(), indicium.to_text());
    // The same modules as the PNG: its symbol area, pixel for pixel, with the text painted out.
    let png = decode_png(&to_png(&indicium, 4).unwrap());
    let symbol_side = raster.height().min(png.height());
    for y in 0..symbol_side {
        for x in 0..symbol_side {
            assert_eq!(png.get_pixel(x, y), raster.get_pixel(x, y), "({x}, {y})");
        }
    }
}

#[test]
fn noise_and_damaged_files_give_errors_not_panics() {
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for (w, h) in [(64, 64), (300, 120), (7, 500)] {
        let noise = GrayImage::from_fn(w, h, |_, _| Luma([rng.random()]));
        let got = read_png(&encode_png(&noise));
        assert!(matches!(got, Err(SymbolError::NotFound | SymbolError::Unreadable)), "{got:?}");
    }
    let png = to_png(&example(), 2).unwrap();
    for _ in 0..200 {
        let mut damaged = png.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..damaged.len());
            damaged[i] ^= 1 << rng.random_range(0..8);
        }
        // Whatever the damage, an answer and no panic; an answer with text is the exact line.
        if let Ok(text) = read_png(&damaged) {
            assert_eq!(text, example().to_text());
        }
    }
}

#[test]
fn a_picture_of_two_mailpieces_is_refused_never_one_of_them_verified() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (a, b) = (random_indicium(&mut rng), random_indicium(&mut rng));
    let (left, right) = (decode_png(&to_png(&a, 4).unwrap()), decode_png(&to_png(&b, 4).unwrap()));
    let gap = 40;
    let mut both = GrayImage::from_pixel(
        left.width() + gap + right.width(),
        left.height().max(right.height()),
        image::Luma([255]),
    );
    image::imageops::replace(&mut both, &left, 0, 0);
    image::imageops::replace(&mut both, &right, i64::from(left.width() + gap), 0);
    assert!(
        matches!(read_png(&encode_png(&both)), Err(SymbolError::Several(2))),
        "{:?}",
        read_png(&encode_png(&both))
    );
    // The same symbol twice is one mailpiece's picture: read as it.
    let mut twice =
        GrayImage::from_pixel(2 * left.width() + gap, left.height(), image::Luma([255]));
    image::imageops::replace(&mut twice, &left, 0, 0);
    image::imageops::replace(&mut twice, &left, i64::from(left.width() + gap), 0);
    assert_eq!(read_png(&encode_png(&twice)).unwrap(), a.to_text());
}
