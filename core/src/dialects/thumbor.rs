//! thumbor's and imagor's URLs:
//! `/{hmac|unsafe}/[meta/][trim/][AxB:CxD/][fit-in/|full-fit-in/|adaptive-fit-in/][-][W]x[-][H]/[halign/][valign/][smart/][filters:f(a)[:g(b)…]/]{image}`.
//!
//! The mapping follows thumbor's own transformer: without `fit-in` a box is
//! filled (cropped to exactly W×H, enlarging a small image) and a single
//! side resizes proportionally, enlarging too; `fit-in` fits without
//! enlarging unless `upscale()`; `filters:fill(colour)` letterboxes a fit-in
//! image to the box, centred. thumbor rotates (counter-clockwise) after it
//! resizes; Kiln rotates first, so the box, flips and gravity are turned to
//! match. Sources are keys in the originals bucket.

use super::signer::ThumborSigning;
use super::{
    decode_path, hex_colour, malformed, native, rotate_after_resize, signed_as_sent_or_decoded,
    source_key, unsupported, with_presets, DialectError, DialectRequest,
};
use crate::format::OutputFormat;
use crate::options::{
    Compass, FormatChoice, Gravity, ImageOptions, Presets, ResizeMode, MAX_DIMENSION,
};

/// Parses and checks `path`: what follows the dialect's prefix, starting
/// with the signature segment (no leading slash).
pub fn parse(
    path: &str,
    signing: &ThumborSigning,
    originals_bucket: &str,
) -> Result<DialectRequest, DialectError> {
    parse_with(path, signing, originals_bucket, &Presets::default())
}

/// [`parse`], with `filters:preset(NAME)` read from `presets`.
pub fn parse_with(
    path: &str,
    signing: &ThumborSigning,
    originals_bucket: &str,
    presets: &Presets,
) -> Result<DialectRequest, DialectError> {
    let (signature, signed) = path
        .split_once('/')
        .ok_or_else(|| malformed("expected /{signature}/[options/]{image}"))?;
    let url = Parts::read(signed)?;
    let source = source_key(&decode_path(url.image)?, originals_bucket)?;
    if !signed_as_sent_or_decoded(signed, |p| signing.verify(signature, p)) {
        return Err(DialectError::BadSignature);
    }
    let options = url.options(presets)?;
    Ok(DialectRequest { source, options })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum FitIn {
    #[default]
    None,
    Fit,
    Full,
    Adaptive,
    AdaptiveFull,
}

/// One side of the requested size: `-` flips, `orig` is the source's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Side {
    flip: bool,
    value: Option<u32>,
    orig: bool,
}

/// The URL's parts in thumbor's order, still as text.
#[derive(Debug, Default)]
struct Parts<'a> {
    meta: bool,
    trim: bool,
    crop: Option<[u32; 4]>,
    fit_in: FitIn,
    width: Side,
    height: Side,
    halign: Option<&'a str>,
    valign: Option<&'a str>,
    smart: bool,
    filters: Option<&'a str>,
    image: &'a str,
}

fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn side(text: &str) -> Option<Side> {
    let (flip, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    match text {
        "" => Some(Side {
            flip,
            ..Side::default()
        }),
        "orig" => Some(Side {
            flip,
            orig: true,
            value: None,
        }),
        _ => digits(text).map(|v| Side {
            flip,
            value: Some(v),
            orig: false,
        }),
    }
}

fn crop(segment: &str) -> Option<[u32; 4]> {
    let (a, b) = segment.split_once(':')?;
    let (l, t) = a.split_once('x')?;
    let (r, bt) = b.split_once('x')?;
    Some([digits(l)?, digits(t)?, digits(r)?, digits(bt)?])
}

impl<'a> Parts<'a> {
    fn read(mut rest: &'a str) -> Result<Self, DialectError> {
        let mut parts = Parts::default();
        // Each optional part, in order, is taken when the next segment is it.
        let next = |rest: &'a str| rest.split_once('/');
        let mut step = 0;
        while let Some((segment, tail)) = next(rest) {
            match step {
                0 if segment == "debug" => {
                    return Err(unsupported("debug/ is not supported"));
                }
                0 if segment == "meta" => parts.meta = true,
                1 if segment == "trim" || segment.starts_with("trim:") => parts.trim = true,
                2 if crop(segment).is_some() => parts.crop = crop(segment),
                3 if segment.ends_with("fit-in") => {
                    parts.fit_in = match segment {
                        "fit-in" => FitIn::Fit,
                        "full-fit-in" => FitIn::Full,
                        "adaptive-fit-in" => FitIn::Adaptive,
                        "adaptive-full-fit-in" => FitIn::AdaptiveFull,
                        _ => return Err(malformed(format!("unknown fit mode {segment:?}"))),
                    }
                }
                4 if segment
                    .split_once('x')
                    .is_some_and(|(w, h)| side(w).is_some() && side(h).is_some()) =>
                {
                    let (w, h) = segment.split_once('x').unwrap_or_default();
                    parts.width = side(w).unwrap_or_default();
                    parts.height = side(h).unwrap_or_default();
                }
                5 if matches!(segment, "left" | "right" | "center") => {
                    parts.halign = Some(segment);
                }
                6 if matches!(segment, "top" | "bottom" | "middle") => {
                    parts.valign = Some(segment);
                }
                7 if segment == "smart" => parts.smart = true,
                8 if segment.starts_with("filters:") => {
                    // thumbor's filter list ends at the first ")/" (arguments
                    // may contain slashes).
                    let end = rest
                        .find(")/")
                        .ok_or_else(|| malformed("filters: must end with ')' and '/'"))?;
                    parts.filters = Some(&rest["filters:".len()..=end]);
                    rest = &rest[end + 2..];
                    step = 9;
                    continue;
                }
                0..=8 => {
                    step += 1;
                    continue;
                }
                _ => break,
            };
            rest = tail;
            step += 1;
        }
        if rest.is_empty() {
            return Err(malformed("the image is missing"));
        }
        parts.image = rest;
        Ok(parts)
    }

    fn options(&self, presets: &Presets) -> Result<ImageOptions, DialectError> {
        if self.meta {
            return Err(unsupported("meta/ is not supported yet"));
        }
        if self.trim {
            return Err(unsupported("trim/ is not supported yet"));
        }
        match self.fit_in {
            FitIn::Full | FitIn::AdaptiveFull => {
                return Err(unsupported("full-fit-in/ is not supported"))
            }
            FitIn::Adaptive => return Err(unsupported("adaptive-fit-in/ is not supported")),
            FitIn::None | FitIn::Fit => {}
        }
        if self.width.orig || self.height.orig {
            return Err(unsupported("orig sizes are not supported"));
        }
        let (width, height) = (
            self.width.value.unwrap_or(0),
            self.height.value.unwrap_or(0),
        );
        if width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(malformed("size is larger than 65535"));
        }
        let fit_in = self.fit_in == FitIn::Fit;
        let mut o = ImageOptions {
            width,
            height,
            ..ImageOptions::default()
        };
        o.flip.horizontal = self.width.flip;
        o.flip.vertical = self.height.flip;
        if let Some([left, top, right, bottom]) = self.crop {
            // thumbor ignores an empty crop; one past the image is clamped
            // by the renderer as thumbor clamps it.
            if right > left && bottom > top {
                o.crop = Some(crate::options::CropRect {
                    x: left,
                    y: top,
                    width: right - left,
                    height: bottom - top,
                });
            }
        }
        let boxed = width > 0 && height > 0;
        (o.mode, o.upscale) = match (fit_in, boxed) {
            (true, _) => (ResizeMode::Fit, false),
            (false, true) => (ResizeMode::Fill, false),
            // One side: proportional, and thumbor enlarges to it.
            (false, false) => (ResizeMode::Fit, width > 0 || height > 0),
        };
        o.gravity = self.gravity();
        let mut filters = Filters::default();
        if let Some(list) = self.filters {
            for call in split_calls(list)? {
                filters.apply(call, &mut o, fit_in && boxed)?;
            }
        }
        if o.crop.is_some() && (filters.rotate != 0 || o.flip.horizontal || o.flip.vertical) {
            return Err(unsupported(
                "a manual crop together with rotate() or a flip is not supported",
            ));
        }
        if filters.no_upscale && o.mode == ResizeMode::Fill {
            return Err(unsupported(
                "no_upscale() on a cropped WxH is not supported (use fit-in/)",
            ));
        }
        if filters.no_upscale {
            o.upscale = false;
        }
        rotate_after_resize(&mut o, filters.rotate);
        with_presets(o, &filters.presets, presets, "preset()")
    }

    fn gravity(&self) -> Gravity {
        if self.smart {
            return Gravity::Smart;
        }
        let compass = match (self.halign, self.valign) {
            (Some("left"), Some("top")) => Compass::NorthWest,
            (Some("right"), Some("top")) => Compass::NorthEast,
            (Some("left"), Some("bottom")) => Compass::SouthWest,
            (Some("right"), Some("bottom")) => Compass::SouthEast,
            (Some("left"), _) => Compass::West,
            (Some("right"), _) => Compass::East,
            (_, Some("top")) => Compass::North,
            (_, Some("bottom")) => Compass::South,
            _ => Compass::Centre,
        };
        Gravity::Compass(compass)
    }
}

/// `quality(80):format(webp)` → `[("quality", ["80"]), ("format", ["webp"])]`.
fn split_calls(list: &str) -> Result<Vec<(&str, Vec<&str>)>, DialectError> {
    let mut calls = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let open = rest
            .find('(')
            .ok_or_else(|| malformed(format!("filter {rest:?} has no arguments in ()")))?;
        let close = rest[open..]
            .find(')')
            .map(|i| open + i)
            .ok_or_else(|| malformed(format!("filter {rest:?} is not closed")))?;
        let name = &rest[..open];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(malformed(format!("invalid filter name {name:?}")));
        }
        let inner = rest[open + 1..close].trim();
        let args = if inner.is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(str::trim).collect()
        };
        calls.push((name, args));
        if calls.len() > 32 {
            return Err(malformed("too many filters"));
        }
        rest = &rest[close + 1..];
        rest = rest.strip_prefix(':').unwrap_or(rest);
    }
    Ok(calls)
}

/// Filters that act after the others are read.
#[derive(Default)]
struct Filters {
    rotate: u16,
    no_upscale: bool,
    presets: Vec<String>,
}

fn one_arg<'a>(name: &str, args: &[&'a str]) -> Result<&'a str, DialectError> {
    match args {
        [one] => Ok(one),
        _ => Err(malformed(format!("{name}() takes one argument"))),
    }
}

impl Filters {
    fn apply(
        &mut self,
        (name, args): (&str, Vec<&str>),
        o: &mut ImageOptions,
        letterboxed: bool,
    ) -> Result<(), DialectError> {
        match name {
            "quality" => {
                o.quality = native(
                    &format!("q:{}", one_arg(name, &args)?),
                    &format!("{name}()"),
                )?
                .quality
            }
            "format" => {
                let format = match one_arg(name, &args)? {
                    "jpeg" | "jpg" => OutputFormat::Jpeg,
                    "png" => OutputFormat::Png,
                    "webp" => OutputFormat::Webp,
                    "avif" => OutputFormat::Avif,
                    other => return Err(unsupported(format!("format({other}) is not supported"))),
                };
                o.format = Some(FormatChoice::Fixed(format));
            }
            "fill" => {
                let colour = args.first().copied().unwrap_or_default();
                if matches!(colour, "blur" | "auto") {
                    return Err(unsupported(format!("fill({colour}) is not supported yet")));
                }
                let rgb = hex_colour(colour)
                    .ok_or_else(|| malformed(format!("fill({colour}): expected a hex colour")))?;
                // Only a fit-in box leaves room to fill; elsewhere thumbor's
                // fill changes nothing, and so it does here.
                if letterboxed {
                    o.mode = ResizeMode::Pad;
                    o.gravity = Gravity::default();
                    o.background = Some(rgb);
                }
            }
            "background_color" => {
                let colour = one_arg(name, &args)?;
                o.background = Some(hex_colour(colour).ok_or_else(|| {
                    malformed(format!("background_color({colour}): expected a hex colour"))
                })?);
            }
            "blur" => {
                let (radius, sigma) = match args[..] {
                    [r] => (r, "0"),
                    [r, s] => (r, s),
                    _ => return Err(malformed("blur() takes a radius and an optional sigma")),
                };
                let sigma = if sigma == "0" { radius } else { sigma };
                o.blur = native(&format!("blur:{sigma}"), &format!("{name}()"))?.blur;
            }
            "sharpen" => {
                // thumbor: sharpen(amount, radius, luminance_only); Kiln's
                // unsharp mask takes the radius as its sigma.
                let radius = match args[..] {
                    [_, radius] | [_, radius, _] => radius,
                    _ => {
                        return Err(malformed(
                            "sharpen() takes amount, radius[, luminance_only]",
                        ))
                    }
                };
                o.sharpen = native(&format!("sharpen:{radius}"), &format!("{name}()"))?.sharpen;
            }
            "rotate" => {
                let degrees: i64 = one_arg(name, &args)?
                    .parse()
                    .map_err(|_| malformed("rotate() takes whole degrees"))?;
                if degrees % 90 != 0 {
                    return Err(unsupported("rotate() by other than a multiple of 90"));
                }
                self.rotate = u16::try_from(degrees.rem_euclid(360)).unwrap_or(0);
            }
            "preset" => self.presets.push(one_arg(name, &args)?.to_owned()),
            "grayscale" if args.is_empty() => o.grayscale = true,
            "upscale" if args.is_empty() => o.upscale = true,
            "no_upscale" if args.is_empty() => self.no_upscale = true,
            // Kiln always writes sRGB pixels without EXIF or ICC metadata.
            "strip_icc" | "strip_exif" if args.is_empty() => {}
            "max_bytes" | "watermark" | "focal" | "proportion" | "round_corner" | "noise"
            | "brightness" | "contrast" | "rgb" | "equalize" | "saturation" | "convolution"
            | "extract_focal" | "cover" | "frame" | "stretch" | "autojpg" | "max_age"
            | "no_storage" | "red_eye" | "curve" => {
                return Err(unsupported(format!("filter {name}() is not supported")))
            }
            _ => return Err(malformed(format!("unknown filter {name}()"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing() -> ThumborSigning {
        ThumborSigning {
            keys: vec![b"mysecret".to_vec()],
            allow_unsafe: true,
            ..ThumborSigning::default()
        }
    }

    fn canon(path: &str) -> Result<String, DialectError> {
        parse(&format!("unsafe/{path}"), &signing(), "originals").map(|r| r.options.canonical())
    }

    #[test]
    fn seed_002s_signed_url_parses() {
        let path = "cST4Ko5_FqwT3BDn-Wf4gO3RFSk=/500x500/top/raw.githubusercontent.com/cshum/imagor/master/testdata/gopher.png";
        let r = parse(path, &signing(), "originals").unwrap();
        assert_eq!(
            r.source.as_str(),
            "raw.githubusercontent.com/cshum/imagor/master/testdata/gopher.png"
        );
        assert_eq!(r.options.canonical(), "500x500,fill,g:n");
        let forged = path.replace("500x500", "500x501");
        assert_eq!(
            parse(&forged, &signing(), "originals"),
            Err(DialectError::BadSignature)
        );
        let mut strict = signing();
        strict.allow_unsafe = false;
        assert_eq!(
            parse("unsafe/300x200/a.jpg", &strict, "originals"),
            Err(DialectError::BadSignature)
        );
    }

    #[test]
    fn sizes_and_modes_follow_thumbor() {
        assert_eq!(canon("300x200/a.jpg").unwrap(), "300x200,fill");
        assert_eq!(canon("fit-in/300x200/a.jpg").unwrap(), "300x200");
        assert_eq!(canon("300x0/a.jpg").unwrap(), "300x0,up");
        assert_eq!(canon("x200/a.jpg").unwrap(), "0x200,up");
        assert_eq!(canon("a.jpg").unwrap(), "0x0");
        assert_eq!(
            canon("fit-in/300x200/filters:upscale()/a.jpg").unwrap(),
            "300x200,up"
        );
        assert_eq!(canon("300x0/filters:no_upscale()/a.jpg").unwrap(), "300x0");
        assert_eq!(canon("-300x-200/a.jpg").unwrap(), "300x200,fill,flip:hv");
        assert_eq!(canon("-0x0/a.jpg").unwrap(), "0x0,flip:h");
        assert_eq!(
            canon("300x200/left/bottom/a.jpg").unwrap(),
            "300x200,fill,g:sw"
        );
        assert_eq!(
            canon("300x200/smart/a.jpg").unwrap(),
            "300x200,fill,g:smart"
        );
        assert_eq!(
            canon("10x20:110x220/50x50/a.jpg").unwrap(),
            "50x50,fill,crop:10:20:100:200"
        );
        assert_eq!(canon("10x20:5x220/50x50/a.jpg").unwrap(), "50x50,fill");
    }

    #[test]
    fn filters_map_onto_native_options() {
        assert_eq!(
            canon("fit-in/300x200/filters:fill(ff0000):quality(70):format(webp)/a.jpg").unwrap(),
            "300x200,pad,bg:ff0000,f:webp,q:70"
        );
        assert_eq!(
            canon("300x200/filters:fill(fff)/a.jpg").unwrap(),
            "300x200,fill"
        );
        assert_eq!(
            canon("300x200/filters:blur(3):sharpen(1,0.5,true):grayscale():strip_icc():strip_exif()/a.jpg")
                .unwrap(),
            "300x200,fill,blur:3,sharpen:0.5,gray"
        );
        assert_eq!(
            canon("0x0/filters:blur(3,1.5)/a.jpg").unwrap(),
            "0x0,blur:1.5"
        );
        assert_eq!(
            canon("0x0/filters:background_color(00ff00):format(avif)/a.png").unwrap(),
            "0x0,bg:00ff00,f:avif"
        );
    }

    #[test]
    fn rotation_is_counter_clockwise_after_the_crop() {
        // thumbor: crop 300×100 from the left, then turn it a quarter
        // counter-clockwise. Kiln: turn first (270° clockwise), then take a
        // 100×300 window from what was the left and is now the bottom.
        assert_eq!(
            canon("300x100/left/filters:rotate(90)/a.jpg").unwrap(),
            "100x300,fill,g:s,r:270"
        );
        assert_eq!(
            canon("fit-in/300x100/filters:rotate(-90)/a.jpg").unwrap(),
            "100x300,r:90"
        );
        assert_eq!(
            canon("-300x100/filters:rotate(180)/a.jpg").unwrap(),
            "300x100,fill,r:180,flip:h"
        );
        assert_eq!(
            canon("-300x100/filters:rotate(90)/a.jpg").unwrap(),
            "100x300,fill,r:270,flip:v"
        );
        assert_eq!(canon("0x0/filters:rotate(360)/a.jpg").unwrap(), "0x0");
    }

    #[test]
    fn what_kiln_cannot_honour_is_named() {
        for (path, named) in [
            ("meta/300x200/a.jpg", "meta/"),
            ("trim/300x200/a.jpg", "trim/"),
            ("full-fit-in/300x200/a.jpg", "full-fit-in/"),
            ("adaptive-fit-in/300x200/a.jpg", "adaptive-fit-in/"),
            ("origx200/a.jpg", "orig"),
            (
                "300x200/filters:watermark(a.png,0,0,0)/a.jpg",
                "watermark()",
            ),
            ("300x200/filters:max_bytes(1000)/a.jpg", "max_bytes()"),
            ("300x200/filters:focal(1x1:2x2)/a.jpg", "focal()"),
            ("300x200/filters:fill(blur)/a.jpg", "fill(blur)"),
            ("300x200/filters:rotate(45)/a.jpg", "rotate()"),
            ("300x200/filters:format(gif)/a.jpg", "format(gif)"),
            ("300x200/filters:no_upscale()/a.jpg", "no_upscale()"),
            ("10x10:20x20/-30x30/a.jpg", "crop"),
        ] {
            match canon(path) {
                Err(DialectError::Unsupported(message)) => {
                    assert!(message.contains(named), "{path}: {message}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        for bad in [
            "300x200/filters:quality(101)/a.jpg",
            "300x200/filters:nonsense(1)/a.jpg",
            "300x200/filters:quality(80/a.jpg",
            "300x200/",
            "300x200/a%2Fb.jpg",
            "300x200/a/../b.jpg",
        ] {
            assert!(
                matches!(canon(bad), Err(DialectError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(parse("nosig", &signing(), "originals").is_err());
    }

    #[test]
    fn filters_may_hold_slashes_and_the_image_keeps_its_own() {
        let r = parse(
            "unsafe/fit-in/100x100/filters:quality(50)/photos/2024/a.jpg",
            &signing(),
            "originals",
        )
        .unwrap();
        assert_eq!(r.source.as_str(), "photos/2024/a.jpg");
        assert_eq!(r.options.quality, Some(50));
        // Without options the whole rest is the image.
        let r = parse("unsafe/photos/a.jpg", &signing(), "originals").unwrap();
        assert_eq!(r.source.as_str(), "photos/a.jpg");
    }
}
