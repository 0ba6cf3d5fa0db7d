//! A JPEG marker scan up to the first scan: size and component count (SOF),
//! the EXIF block (APP1) and the ICC profile (APP2 chunks, reassembled).
//! Borrowed, no pixel work: this is what the limits are checked against.
//!
//! The scan is stricter than either decoder, on purpose. libjpeg-turbo and
//! zune-jpeg (the `image` crate's decoder) read some header structures
//! differently: RST/TEM markers carry no length for libjpeg but a length for
//! zune, zune skips SOF types it does not know and bytes that are not
//! markers, libjpeg refuses unknown markers. A file built on one of those
//! differences could show this scan one frame and a decoder another. So
//! every such structure is refused here — restart, TEM, SOI, DNL, reserved
//! and JPG-extension markers before the first scan, a second frame header,
//! a segment shorter than its length field, any byte between segments
//! that is not a marker — and the decoders' own header reads are compared
//! with this one before any buffer is allocated (the worker's `decode.rs`).

pub struct JpegHeader<'a> {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    /// The TIFF structure after `Exif\0\0`.
    pub exif: Option<&'a [u8]>,
    pub icc: Option<Vec<u8>>,
}

const ICC_TAG: &[u8] = b"ICC_PROFILE\0";
const EXIF_TAG: &[u8] = b"Exif\0\0";

fn is_frame_header(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Segments with a length field that both decoders skip or read alike:
/// tables (DHT, DAC, DQT, DRI), APPn and comments.
fn is_plain_segment(marker: u8) -> bool {
    matches!(marker, 0xC4 | 0xCC | 0xDB | 0xDD | 0xE0..=0xEF | 0xFE)
}

/// `None` when the data is not a JPEG, ends before a frame header, or has a
/// header structure the decoders could read differently.
pub fn read(data: &[u8]) -> Option<JpegHeader<'_>> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    let mut frame = None;
    let mut exif = None;
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    loop {
        // Markers may be padded with any number of 0xFF fill bytes; anything
        // else between segments is refused (zune-jpeg would skip it).
        if *data.get(pos)? != 0xFF {
            return None;
        }
        while *data.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        let marker = *data.get(pos + 1)?;
        if marker == 0xDA {
            break;
        }
        let frame_header = is_frame_header(marker);
        if !frame_header && !is_plain_segment(marker) {
            // RSTn, TEM, SOI, EOI, DNL, reserved and JPGn markers.
            return None;
        }
        let length = usize::from(u16::from_be_bytes([
            *data.get(pos + 2)?,
            *data.get(pos + 3)?,
        ]));
        if length < 2 {
            return None;
        }
        let payload = data.get(pos + 4..pos + 2 + length)?;
        match marker {
            m if is_frame_header(m) => {
                if frame.is_some() || payload.len() < 6 {
                    return None;
                }
                let height = u16::from_be_bytes([payload[1], payload[2]]);
                let width = u16::from_be_bytes([payload[3], payload[4]]);
                frame = Some((u32::from(width), u32::from(height), payload[5]));
            }
            0xE1 if exif.is_none() => exif = payload.strip_prefix(EXIF_TAG),
            0xE2 => {
                if let Some(rest) = payload.strip_prefix(ICC_TAG) {
                    if rest.len() >= 2 {
                        icc_chunks.push((rest[0], &rest[2..]));
                    }
                }
            }
            _ => {}
        }
        pos += 2 + length;
    }
    let (width, height, components) = frame?;
    icc_chunks.sort_by_key(|(sequence, _)| *sequence);
    let icc =
        (!icc_chunks.is_empty()).then(|| icc_chunks.iter().flat_map(|c| c.1).copied().collect());
    Some(JpegHeader {
        width,
        height,
        components,
        exif,
        icc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn reads_size_exif_and_a_split_icc_profile() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE1, b"Exif\0\0MM\0*tiff"));
        // ICC chunks out of order: 2 of 2 before 1 of 2.
        jpeg.extend(segment(0xE2, b"ICC_PROFILE\0\x02\x02world"));
        jpeg.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x02hello "));
        jpeg.extend([0xFF, 0xFF]); // fill byte
        jpeg.extend(segment(0xC2, &[8, 0x0B, 0xB8, 0x0F, 0xA0, 3]));
        jpeg.extend(segment(0xDA, &[0; 10]));
        let h = read(&jpeg).unwrap();
        assert_eq!((h.width, h.height, h.components), (4000, 3000, 3));
        assert_eq!(h.exif, Some(&b"MM\0*tiff"[..]));
        assert_eq!(h.icc.as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn refuses_what_is_not_a_jpeg_or_is_cut_short() {
        assert!(read(b"\x89PNG\r\n").is_none());
        assert!(read(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00]).is_none());
        let mut no_frame = vec![0xFF, 0xD8];
        no_frame.extend(segment(0xDA, &[0; 4]));
        assert!(read(&no_frame).is_none());
    }

    /// The review's file: `SOI | RST0 | decoy SOF 100×100×4 | decoy SOS |
    /// filler | real SOF 65535×65535×3 | SOS`. A scan that takes RST0 as
    /// length-less (libjpeg's reading) sees the decoy; zune-jpeg reads the
    /// decoy's `FF C0` as RST0's length and skips straight to the real frame.
    fn decoy_frame_jpeg() -> Vec<u8> {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xD0];
        let mut components = Vec::new();
        for id in 1..=4u8 {
            components.extend([id, 0x11, 0]);
        }
        let mut decoy = vec![8, 0, 100, 0, 100, 4];
        decoy.extend(components);
        jpeg.extend(segment(0xC0, &decoy));
        jpeg.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
        // zune skips 0xFFC0 - 2 bytes from just after the length field.
        let landing = 6 + 0xFFC0 - 2;
        jpeg.resize(landing, 0);
        let mut real = vec![8, 0xFF, 0xFF, 0xFF, 0xFF, 3];
        for id in 1..=3u8 {
            real.extend([id, 0x11, 0]);
        }
        jpeg.extend(segment(0xC0, &real));
        jpeg.extend(segment(0xDA, &[3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]));
        jpeg.extend([0; 64]);
        jpeg.extend([0xFF, 0xD9]);
        jpeg
    }

    #[test]
    fn refuses_structures_the_decoders_read_differently() {
        assert!(read(&decoy_frame_jpeg()).is_none(), "RST before the scan");
        let frame = segment(0xC0, &[8, 0, 10, 0, 10, 3]);
        let scan = segment(0xDA, &[0; 4]);
        let with = |extra: &[u8]| {
            let mut jpeg = vec![0xFF, 0xD8];
            jpeg.extend(extra);
            jpeg.extend(&frame);
            jpeg.extend(&scan);
            jpeg
        };
        assert!(read(&with(&[])).is_some(), "the plain file is fine");
        assert!(read(&with(&frame)).is_none(), "two frame headers");
        assert!(read(&with(&[0xFF, 0x01])).is_none(), "TEM");
        assert!(read(&with(&[0xFF, 0xD8])).is_none(), "a second SOI");
        assert!(read(&with(&segment(0xDC, &[0, 9]))).is_none(), "DNL");
        assert!(read(&with(&segment(0xF7, &[0; 4]))).is_none(), "JPG7");
        assert!(read(&with(&segment(0x30, &[0; 4]))).is_none(), "reserved");
        assert!(
            read(&with(&[0x00, 0x00])).is_none(),
            "bytes between segments"
        );
        assert!(read(&with(&[0xFF, 0xE0, 0x00, 0x01])).is_none(), "length 1");
        let mut lossless = vec![0xFF, 0xD8];
        lossless.extend(segment(0xC3, &[8, 0, 5, 0, 5, 1]));
        lossless.extend(&frame);
        lossless.extend(&scan);
        assert!(read(&lossless).is_none(), "SOF3 then SOF0");
    }
}
