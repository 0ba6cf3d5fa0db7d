//! What an image file says about itself in its first bytes: its format and
//! stored size, read without decoding (no pixel buffer, no image library).
//! The api checks uploads against the limits with this; the worker's probe
//! uses the same JPEG scan and cross-checks it with the decoders.

pub mod jpeg;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }
}

/// Format and stored size (before any EXIF orientation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

/// The format the leading bytes announce, if it is one Kiln decodes.
pub fn sniff(data: &[u8]) -> Option<ImageKind> {
    match data {
        [0xFF, 0xD8, 0xFF, ..] => Some(ImageKind::Jpeg),
        [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n', ..] => Some(ImageKind::Png),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(ImageKind::Gif),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(ImageKind::Webp),
        _ => None,
    }
}

/// The header of `data` (a prefix of the file is enough: for a JPEG, up to
/// its first scan). `None` when it is not an image Kiln decodes, is cut
/// short, or has a structure the decoders could read differently.
pub fn read(data: &[u8]) -> Option<Header> {
    let kind = sniff(data)?;
    let (width, height) = match kind {
        ImageKind::Jpeg => {
            let header = jpeg::read(data)?;
            (header.width, header.height)
        }
        ImageKind::Png => png(data)?,
        ImageKind::Gif => gif(data)?,
        ImageKind::Webp => webp(data)?,
    };
    (width > 0 && height > 0).then_some(Header {
        kind,
        width,
        height,
    })
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn le16(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        data.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 3)?;
    Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
}

/// The IHDR chunk, which must come first.
fn png(data: &[u8]) -> Option<(u32, u32)> {
    if data.get(12..16)? != b"IHDR" || be32(data, 8)? != 13 {
        return None;
    }
    Some((be32(data, 16)?, be32(data, 20)?))
}

/// The logical screen (every frame is drawn within it).
fn gif(data: &[u8]) -> Option<(u32, u32)> {
    Some((le16(data, 6)?, le16(data, 8)?))
}

/// The first chunk: lossy `VP8 `, lossless `VP8L` or extended `VP8X`.
fn webp(data: &[u8]) -> Option<(u32, u32)> {
    let chunk = data.get(12..16)?;
    let body = 20;
    match chunk {
        b"VP8 " => {
            if data.get(body + 3..body + 6)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            Some((
                le16(data, body + 6)? & 0x3FFF,
                le16(data, body + 8)? & 0x3FFF,
            ))
        }
        b"VP8L" => {
            if *data.get(body)? != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes(data.get(body + 1..body + 5)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(data, body + 4)? + 1, le24(data, body + 7)? + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(width.to_be_bytes());
        png.extend(height.to_be_bytes());
        png.extend([8, 6, 0, 0, 0]);
        png
    }

    #[test]
    fn reads_png_gif_and_webp_sizes() {
        assert_eq!(
            read(&png_header(100_000, 3)),
            Some(Header {
                kind: ImageKind::Png,
                width: 100_000,
                height: 3
            })
        );
        let gif = b"GIF89a\x40\x01\xf0\x00\x00\x00\x00";
        assert_eq!(read(gif).map(|h| (h.width, h.height)), Some((320, 240)));
        // VP8X canvas 1000 x 600 (stored minus one, 24-bit little-endian).
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x10\0\0\0".to_vec();
        vp8x.extend([0xE7, 0x03, 0x00, 0x57, 0x02, 0x00]);
        assert_eq!(read(&vp8x).map(|h| (h.width, h.height)), Some((1000, 600)));
        // VP8L: 14 bits each of width-1 and height-1.
        let bits: u32 = 639 | (479 << 14);
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        vp8l.extend(bits.to_le_bytes());
        assert_eq!(read(&vp8l).map(|h| (h.width, h.height)), Some((640, 480)));
        // VP8: frame tag, start code, 14-bit sizes.
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
        vp8.extend([0x20, 0x03, 0x58, 0x02]);
        assert_eq!(read(&vp8).map(|h| (h.width, h.height)), Some((800, 600)));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(read(b"<svg xmlns=..."), None);
        assert_eq!(read(b"%PDF-1.7"), None);
        assert_eq!(read(&png_header(0, 10)), None, "zero size");
        assert_eq!(read(&png_header(10, 10)[..20]), None, "cut short");
        let mut not_ihdr = png_header(10, 10);
        not_ihdr[12..16].copy_from_slice(b"tEXt");
        assert_eq!(read(&not_ihdr), None);
        assert_eq!(sniff(b"GIF89a"), Some(ImageKind::Gif));
        assert_eq!(sniff(b"GIF90a"), None);
    }
}
