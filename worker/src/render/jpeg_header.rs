//! A JPEG marker scan up to the first scan: size and component count (SOF),
//! the EXIF block (APP1) and the ICC profile (APP2 chunks, reassembled).
//! Borrowed, no pixel work: this is what the limits are checked against.

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

/// `None` when the data is not a JPEG or ends before a frame header.
pub fn read(data: &[u8]) -> Option<JpegHeader<'_>> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    let mut frame = None;
    let mut exif = None;
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    loop {
        // Markers may be padded with any number of 0xFF fill bytes.
        while *data.get(pos)? == 0xFF && *data.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *data.get(pos)? != 0xFF {
            return None;
        }
        let marker = *data.get(pos + 1)?;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            pos += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let length = usize::from(u16::from_be_bytes([
            *data.get(pos + 2)?,
            *data.get(pos + 3)?,
        ]));
        let payload = data.get(pos + 4..pos + 2 + length.max(2))?;
        match marker {
            m if is_frame_header(m) && payload.len() >= 6 => {
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
}
