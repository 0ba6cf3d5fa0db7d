//! imgproxy's URLs: `/{signature}/{options}/plain/{source}[@ext]` and
//! `/{signature}/{options}/{base64url(source)}[.ext]`, options as
//! `name:arg[:arg…]` segments applied in order (a later one overrides).
//!
//! The mapping follows imgproxy's defaults: `rt:fit`, no enlarging,
//! centre gravity. `fill` without `el:1` never enlarges (Kiln's
//! `fill-max`), `fill-down` keeps the box's aspect ratio (`fill-down`),
//! `auto` picks fill or fit by orientation (`auto`), `ex:1` letterboxes a
//! fit (`pad`). `cb` is kept in the cache key. Sources are keys in the
//! originals bucket, also spelled `s3://{that bucket}/{key}` or
//! `local:///{key}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::signer::ImgproxySigning;
use super::{
    decode_path, hex_colour, malformed, native, signed_as_sent_or_decoded, source_key, unsupported,
    with_presets, DialectError, DialectRequest,
};
use crate::format::OutputFormat;
use crate::options::{
    Compass, FormatChoice, Gravity, ImageOptions, Presets, ResizeMode, Sigma, MAX_DIMENSION,
};

/// Parses and checks `path`: what follows the dialect's prefix, starting
/// with the signature segment (no leading slash).
pub fn parse(
    path: &str,
    signing: &ImgproxySigning,
    originals_bucket: &str,
) -> Result<DialectRequest, DialectError> {
    parse_with(path, signing, originals_bucket, &Presets::default())
}

/// [`parse`], with `pr:NAME[:NAME…]` read from `presets`.
pub fn parse_with(
    path: &str,
    signing: &ImgproxySigning,
    originals_bucket: &str,
    presets: &Presets,
) -> Result<DialectRequest, DialectError> {
    let (signature, rest) = path
        .split_once('/')
        .ok_or_else(|| malformed("expected /{signature}/{options}/{source}"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > 64 {
        return Err(malformed("too many path segments"));
    }
    // Options are the leading segments with a ':'; the source follows.
    let first_source = segments
        .iter()
        .position(|s| !s.contains(':'))
        .ok_or_else(|| malformed("the source is missing"))?;
    let (options, source_parts) = segments.split_at(first_source);
    let (decoded, extension) = decode_source(source_parts)?;
    let source = source_key(&decoded, originals_bucket)?;
    // imgproxy signs the path after the signature, leading slash included.
    let path = format!("/{rest}");
    if !signed_as_sent_or_decoded(&path, |p| signing.verify(signature, p)) {
        return Err(DialectError::BadSignature);
    }
    let mut state = State::default();
    for segment in options {
        let mut args = segment.split(':');
        let name = args.next().unwrap_or_default();
        state.apply(name, &args.collect::<Vec<_>>())?;
    }
    if let Some(ext) = extension {
        state.format = Some(format(&ext)?);
    }
    Ok(DialectRequest {
        source,
        options: with_presets(state.options()?, &state.presets, presets, "pr")?,
    })
}

/// The source and the extension that may follow it (`@png` or `.png`).
fn decode_source(parts: &[&str]) -> Result<(String, Option<String>), DialectError> {
    match parts {
        ["plain", rest @ ..] if !rest.is_empty() => {
            let joined = rest.join("/");
            let (url, ext) = match joined.rsplit_once('@') {
                Some((url, ext)) => (url, Some(ext.to_owned())),
                None => (joined.as_str(), None),
            };
            if url.is_empty() {
                return Err(malformed("the source is empty"));
            }
            Ok((decode_path(url)?, ext.filter(|e| !e.is_empty())))
        }
        _ => {
            let joined: String = parts.concat();
            let (encoded, ext) = match joined.split_once('.') {
                Some((encoded, ext)) => (encoded, Some(ext.to_owned())),
                None => (joined.as_str(), None),
            };
            if ext.as_deref().is_some_and(|e| e.contains('.')) {
                return Err(malformed("the source names several formats"));
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map_err(|_| malformed("the source is not valid base64url"))?;
            let url = String::from_utf8(bytes).map_err(|_| malformed("the source is not UTF-8"))?;
            Ok((url, ext.filter(|e| !e.is_empty())))
        }
    }
}

fn format(name: &str) -> Result<FormatChoice, DialectError> {
    let format = match name {
        "jpg" | "jpeg" => OutputFormat::Jpeg,
        "png" => OutputFormat::Png,
        "webp" => OutputFormat::Webp,
        "avif" => OutputFormat::Avif,
        "best" => return Err(unsupported("format best is not supported")),
        other => return Err(unsupported(format!("format {other:?} is not supported"))),
    };
    Ok(FormatChoice::Fixed(format))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ResizingType {
    #[default]
    Fit,
    Fill,
    FillDown,
    Force,
    Auto,
}

/// imgproxy's processing options as the URL sets them.
#[derive(Debug, Default)]
struct State {
    resizing: ResizingType,
    width: u32,
    height: u32,
    enlarge: bool,
    extend: Option<Gravity>,
    gravity: Gravity,
    background: Option<[u8; 3]>,
    quality: Option<u8>,
    format: Option<FormatChoice>,
    dpr: Option<String>,
    blur: Option<Sigma>,
    sharpen: Option<Sigma>,
    rotate: u16,
    flip: (bool, bool),
    cache_buster: Option<String>,
    expires: Option<i64>,
    presets: Vec<String>,
}

fn arity(name: &str, args: &[&str], max: usize) -> Result<(), DialectError> {
    if args.is_empty() || args.len() > max {
        return Err(malformed(format!("{name} takes 1 to {max} arguments")));
    }
    Ok(())
}

fn dimension(name: &str, text: &str) -> Result<u32, DialectError> {
    let value: u32 = text
        .parse()
        .map_err(|_| malformed(format!("{name}: {text:?} is not a whole number")))?;
    if value > MAX_DIMENSION {
        return Err(malformed(format!("{name}: {value} is larger than 65535")));
    }
    Ok(value)
}

/// Go's `strconv.ParseBool`, as imgproxy reads flags (but strict: a bad
/// value is an error here, not a silent false).
fn boolean(name: &str, text: &str) -> Result<bool, DialectError> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(malformed(format!("{name}: {text:?} is not a boolean"))),
    }
}

fn gravity(name: &str, args: &[&str]) -> Result<Gravity, DialectError> {
    let compass = |c| Ok(Gravity::Compass(c));
    let offsets_zero = |rest: &[&str]| rest.iter().all(|o| o.parse::<f64>() == Ok(0.0));
    match args {
        ["fp", x, y] => Ok(native(&format!("g:fp:{x}:{y}"), name)?.gravity),
        ["sm"] => Ok(Gravity::Smart),
        [kind, rest @ ..] if rest.len() <= 2 => {
            if !offsets_zero(rest) {
                return Err(unsupported(format!(
                    "{name}: gravity offsets are not supported"
                )));
            }
            match *kind {
                "ce" => compass(Compass::Centre),
                "no" => compass(Compass::North),
                "so" => compass(Compass::South),
                "ea" => compass(Compass::East),
                "we" => compass(Compass::West),
                "noea" => compass(Compass::NorthEast),
                "nowe" => compass(Compass::NorthWest),
                "soea" => compass(Compass::SouthEast),
                "sowe" => compass(Compass::SouthWest),
                "obj" | "objw" => Err(unsupported(format!(
                    "{name}: object gravity is not supported"
                ))),
                other => Err(malformed(format!("{name}: unknown gravity {other:?}"))),
            }
        }
        _ => Err(malformed(format!("{name}: unknown gravity"))),
    }
}

/// A sigma option (`bl`, `sh`), where 0 means off, as Kiln's `token`.
fn unless_zero(name: &str, text: &str, token: &str) -> Result<Option<ImageOptions>, DialectError> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(None);
    }
    native(&format!("{token}:{text}"), name).map(Some)
}

impl State {
    fn apply(&mut self, name: &str, args: &[&str]) -> Result<(), DialectError> {
        let arg = |i: usize| args.get(i).copied().filter(|a| !a.is_empty());
        match name {
            // rs:type:w:h:enlarge:extend[:gravity[:x:y]] and
            // s:w:h:enlarge:extend[…]: the extend option's own arguments
            // follow it.
            "resize" | "rs" => {
                arity(name, args, 8)?;
                if let Some(rt) = arg(0) {
                    self.apply("rt", &[rt])?;
                }
                self.apply("s", &args[1..])?;
            }
            "size" | "s" => {
                if args.len() > 7 {
                    return Err(malformed(format!("{name} takes up to 7 arguments")));
                }
                if let Some(w) = arg(0) {
                    self.width = dimension(name, w)?;
                }
                if let Some(h) = arg(1) {
                    self.height = dimension(name, h)?;
                }
                if let Some(el) = arg(2) {
                    self.enlarge = boolean(name, el)?;
                }
                if arg(3).is_some() {
                    self.apply("ex", &args[3..])?;
                }
            }
            "resizing_type" | "rt" => {
                arity(name, args, 1)?;
                self.resizing = match args[0] {
                    "fit" => ResizingType::Fit,
                    "fill" => ResizingType::Fill,
                    "fill-down" => ResizingType::FillDown,
                    "force" => ResizingType::Force,
                    "auto" => ResizingType::Auto,
                    other => return Err(malformed(format!("{name}: unknown type {other:?}"))),
                };
            }
            "width" | "w" => {
                arity(name, args, 1)?;
                self.width = dimension(name, args[0])?;
            }
            "height" | "h" => {
                arity(name, args, 1)?;
                self.height = dimension(name, args[0])?;
            }
            "enlarge" | "el" => {
                arity(name, args, 1)?;
                self.enlarge = boolean(name, args[0])?;
            }
            "extend" | "ex" => {
                arity(name, args, 4)?;
                self.extend = if boolean(name, args[0])? {
                    Some(if args.len() > 1 {
                        gravity(name, &args[1..])?
                    } else {
                        Gravity::default()
                    })
                } else {
                    None
                };
            }
            "gravity" | "g" => {
                arity(name, args, 3)?;
                self.gravity = gravity(name, args)?;
            }
            "background" | "bg" => {
                arity(name, args, 3)?;
                self.background = match args {
                    [""] => None,
                    [hex] => Some(hex_colour(hex).ok_or_else(|| {
                        malformed(format!("{name}: expected a hex colour or R:G:B"))
                    })?),
                    [r, g, b] => {
                        let c = |t: &str| {
                            t.parse::<u8>()
                                .map_err(|_| malformed(format!("{name}: {t:?} is not 0..255")))
                        };
                        Some([c(r)?, c(g)?, c(b)?])
                    }
                    _ => return Err(malformed(format!("{name}: expected a hex colour or R:G:B"))),
                };
            }
            "quality" | "q" => {
                arity(name, args, 1)?;
                self.quality = match args[0] {
                    "0" => None,
                    q => native(&format!("q:{q}"), name)?.quality,
                };
            }
            "format" | "f" | "ext" => {
                arity(name, args, 1)?;
                self.format = Some(format(args[0])?);
            }
            "dpr" => {
                arity(name, args, 1)?;
                self.dpr = Some(args[0].to_owned());
            }
            "blur" | "bl" => {
                arity(name, args, 1)?;
                self.blur = unless_zero(name, args[0], "blur")?.and_then(|o| o.blur);
            }
            "sharpen" | "sh" => {
                arity(name, args, 1)?;
                self.sharpen = unless_zero(name, args[0], "sharpen")?.and_then(|o| o.sharpen);
            }
            "rotate" | "rot" => {
                arity(name, args, 1)?;
                let degrees: i64 = args[0]
                    .parse()
                    .map_err(|_| malformed(format!("{name}: whole degrees expected")))?;
                if degrees % 90 != 0 {
                    return Err(unsupported(format!("{name}: only multiples of 90")));
                }
                self.rotate = u16::try_from(degrees.rem_euclid(360)).unwrap_or(0);
            }
            "flip" | "fl" => {
                arity(name, args, 2)?;
                self.flip = (
                    boolean(name, args[0])?,
                    args.get(1).map_or(Ok(false), |v| boolean(name, v))?,
                );
            }
            // Kiln always applies EXIF orientation and always strips
            // metadata and colour profiles (writing sRGB): the defaults
            // are honoured, turning them off is not.
            "auto_rotate" | "ar" | "strip_metadata" | "sm" | "strip_color_profile" | "scp" => {
                arity(name, args, 1)?;
                if !boolean(name, args[0])? {
                    return Err(unsupported(format!("{name}:0 is not supported")));
                }
            }
            "cachebuster" | "cb" => {
                arity(name, args, 1)?;
                self.cache_buster = Some(args[0].to_owned()).filter(|c| !c.is_empty());
            }
            "expires" | "exp" => {
                arity(name, args, 1)?;
                self.expires = Some(
                    args[0]
                        .parse()
                        .map_err(|_| malformed(format!("{name}: UNIX seconds expected")))?,
                );
            }
            "preset" | "pr" => {
                arity(name, args, 8)?;
                self.presets.extend(args.iter().map(|a| (*a).to_owned()));
            }
            "max_bytes"
            | "mb"
            | "crop"
            | "c"
            | "padding"
            | "pd"
            | "trim"
            | "t"
            | "watermark"
            | "wm"
            | "zoom"
            | "z"
            | "min-width"
            | "mw"
            | "min-height"
            | "mh"
            | "extend_aspect_ratio"
            | "extend_ar"
            | "exar"
            | "pixelate"
            | "pix"
            | "raw"
            | "skip_processing"
            | "skp"
            | "format_quality"
            | "fq"
            | "keep_copyright"
            | "kcr" => return Err(unsupported(format!("option {name} is not supported"))),
            // Options that change the response, not the pixels.
            "filename" | "fn" | "return_attachment" | "att" => {
                return Err(unsupported(format!("option {name} is not supported")))
            }
            _ => return Err(malformed(format!("unknown option {name:?}"))),
        }
        Ok(())
    }

    fn options(&self) -> Result<ImageOptions, DialectError> {
        let boxed = self.width > 0 && self.height > 0;
        let one_side = !boxed && (self.width > 0 || self.height > 0);
        let mode = match (self.resizing, boxed) {
            (ResizingType::Fill, true) if self.enlarge => ResizeMode::Fill,
            (ResizingType::Fill, true) => ResizeMode::FillMax,
            (ResizingType::FillDown, true) if self.enlarge => ResizeMode::Fill,
            (ResizingType::FillDown, true) => ResizeMode::FillDown,
            (ResizingType::Auto, true) => ResizeMode::Auto,
            (ResizingType::Force, true) => ResizeMode::Force,
            (ResizingType::Force, false) if one_side => {
                return Err(unsupported("rt:force with one side is not supported"))
            }
            _ => ResizeMode::Fit,
        };
        let mut o = ImageOptions {
            width: self.width,
            height: self.height,
            mode,
            gravity: self.gravity,
            background: self.background,
            format: self.format,
            quality: self.quality,
            rotate: self.rotate,
            blur: self.blur,
            sharpen: self.sharpen,
            upscale: self.enlarge,
            cache_buster: self.cache_buster.clone(),
            expires: self.expires,
            ..ImageOptions::default()
        };
        o.flip.horizontal = self.flip.0;
        o.flip.vertical = self.flip.1;
        if let Some(dpr) = &self.dpr {
            o.dpr = native(&format!("dpr:{dpr}"), "dpr")?.dpr;
        }
        if let Some(at) = self.extend {
            match mode {
                ResizeMode::Fit if boxed => {
                    o.mode = ResizeMode::Pad;
                    o.gravity = at;
                }
                // The box is already reached (or unconstrained): nothing to extend.
                ResizeMode::Fill | ResizeMode::Force | ResizeMode::Fit => {}
                _ => return Err(unsupported("ex with a fill that does not enlarge")),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::signer::ImgproxyKey;

    fn signing() -> ImgproxySigning {
        ImgproxySigning {
            keys: vec![ImgproxyKey {
                key: b"secret".to_vec(),
                salt: b"hello".to_vec(),
            }],
            signature_size: 32,
            allow_insecure: true,
        }
    }

    fn canon(path: &str) -> Result<String, DialectError> {
        parse(&format!("insecure/{path}"), &signing(), "originals").map(|r| r.options.canonical())
    }

    #[test]
    fn both_source_forms_and_extensions() {
        let plain = parse(
            "insecure/rs:fit:300:200/plain/photos/a%20b.jpg@webp",
            &signing(),
            "originals",
        )
        .unwrap();
        assert_eq!(plain.source.as_str(), "photos/a b.jpg");
        assert_eq!(plain.options.canonical(), "300x200,f:webp");
        let encoded = URL_SAFE_NO_PAD.encode("s3://originals/photos/a b.jpg");
        let (head, tail) = encoded.split_at(10);
        let b64 = parse(
            &format!("insecure/w:300/h:200/{head}/{tail}.webp"),
            &signing(),
            "originals",
        )
        .unwrap();
        assert_eq!(b64, plain, "the same request in both spellings");
    }

    #[test]
    fn signatures_cover_the_path_with_its_slash() {
        let path =
            "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png";
        let sig = signing().sign(path).unwrap();
        // The source is an http URL: refused by name after the signature.
        let r = parse(&format!("{sig}{path}"), &signing(), "originals");
        assert!(matches!(r, Err(DialectError::Unsupported(m)) if m.contains("remote")));
        let local = "/rs:fill:300:400:0/g:sm/plain/local:///a.jpg";
        let sig = signing().sign(local).unwrap();
        let r = parse(&format!("{sig}{local}"), &signing(), "originals").unwrap();
        assert_eq!(r.options.canonical(), "300x400,fill-max,g:smart");
        let forged = format!("{sig}{}", local.replace("300", "301"));
        assert_eq!(
            parse(&forged, &signing(), "originals"),
            Err(DialectError::BadSignature)
        );
        let mut strict = signing();
        strict.allow_insecure = false;
        assert_eq!(
            parse("insecure/w:10/plain/a.jpg", &strict, "originals"),
            Err(DialectError::BadSignature)
        );
    }

    #[test]
    fn resizing_types_follow_imgproxy() {
        assert_eq!(canon("rs:fit:300:200/plain/a.jpg").unwrap(), "300x200");
        assert_eq!(canon("s:300:200/plain/a.jpg").unwrap(), "300x200");
        assert_eq!(canon("rs:fit:300:200:1/plain/a.jpg").unwrap(), "300x200,up");
        assert_eq!(
            canon("rs:fill:300:200/plain/a.jpg").unwrap(),
            "300x200,fill-max"
        );
        assert_eq!(
            canon("rs:fill:300:200:1/plain/a.jpg").unwrap(),
            "300x200,fill"
        );
        assert_eq!(
            canon("rt:fill-down/w:300/h:200/plain/a.jpg").unwrap(),
            "300x200,fill-down"
        );
        assert_eq!(
            canon("rt:force/s:300:200/plain/a.jpg").unwrap(),
            "300x200,force"
        );
        assert_eq!(
            canon("rt:auto/s:300:200/el:t/plain/a.jpg").unwrap(),
            "300x200,auto,up"
        );
        assert_eq!(canon("rt:fill/w:300/plain/a.jpg").unwrap(), "300x0");
        assert_eq!(
            canon("rs:fit:300:200:0:1/plain/a.jpg").unwrap(),
            "300x200,pad"
        );
        assert_eq!(
            canon("rs:fit:300:200/ex:1:soea/plain/a.jpg").unwrap(),
            "300x200,pad,g:se"
        );
        assert_eq!(
            canon("rs:fill:300:200/g:nowe/plain/a.jpg").unwrap(),
            "300x200,fill-max,g:nw"
        );
        assert_eq!(
            canon("rs:fill:300:200/g:fp:0.25:0.75/plain/a.jpg").unwrap(),
            "300x200,fill-max,g:fp:0.25:0.75"
        );
        // A later option overrides an earlier one.
        assert_eq!(canon("w:100/w:300/plain/a.jpg").unwrap(), "300x0");
    }

    #[test]
    fn other_options_map_onto_native_ones() {
        assert_eq!(
            canon("rs:fit:300:200/bg:ff0000/q:70/f:webp/dpr:2/bl:2/sh:0.5/rot:90/plain/a.jpg")
                .unwrap(),
            "300x200,bg:ff0000,f:webp,q:70,dpr:2,r:90,blur:2,sharpen:0.5"
        );
        assert_eq!(
            canon("bg:255:128:0/ext:png/plain/a.jpg").unwrap(),
            "0x0,bg:ff8000,f:png"
        );
        assert_eq!(
            canon("ar:1/sm:1/scp:t/q:0/bl:0/plain/a.jpg").unwrap(),
            "0x0"
        );
        assert_eq!(canon("cb:v2/plain/a.jpg").unwrap(), "0x0,cb:v2");
        assert_eq!(canon("fl:1:0/plain/a.jpg").unwrap(), "0x0,flip:h");
        let r = parse(
            "insecure/exp:1700000000/plain/a.jpg",
            &signing(),
            "originals",
        )
        .unwrap();
        assert_eq!(r.options.expires, Some(1_700_000_000));
    }

    #[test]
    fn what_kiln_cannot_honour_is_named() {
        for (path, named) in [
            ("mb:1000/plain/a.jpg", "mb"),
            ("c:100:100/plain/a.jpg", "c"),
            ("pd:10/plain/a.jpg", "pd"),
            ("pr:thumb/plain/a.jpg", "thumb"),
            ("ar:0/plain/a.jpg", "ar:0"),
            ("sm:0/plain/a.jpg", "sm:0"),
            ("g:no:10:0/plain/a.jpg", "offsets"),
            ("rot:45/plain/a.jpg", "rot"),
            ("f:gif/plain/a.jpg", "gif"),
            ("rt:force/w:100/plain/a.jpg", "force"),
            ("rs:fill:300:200/ex:1/plain/a.jpg", "ex"),
            ("plain/https://example.com/a.jpg", "remote"),
        ] {
            match canon(path) {
                Err(DialectError::Unsupported(message)) => {
                    assert!(message.contains(named), "{path}: {message}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        for bad in [
            "rs:fit:x:200/plain/a.jpg",
            "q:101/plain/a.jpg",
            "el:maybe/plain/a.jpg",
            "nonsense:1/plain/a.jpg",
            "w:100",
            "w:100/plain/",
            "w:100/plain/a%2Fb.jpg",
            "w:100/plain/a/../b.jpg",
            "w:100/!!notbase64",
            "dpr:9/plain/a.jpg",
            "g:nowhere/plain/a.jpg",
        ] {
            assert!(
                matches!(canon(bad), Err(DialectError::Malformed(_))),
                "{bad}: {:?}",
                canon(bad)
            );
        }
    }
}
