//! Embedded ICC profiles: pixels are converted to sRGB (with qcms, Firefox's
//! colour management) and the output carries no profile, which every browser
//! reads as sRGB. An sRGB profile is recognised by its description and
//! skipped; a profile qcms cannot use (CMYK, broken) leaves pixels as they are.

use qcms::{DataType, Intent, Profile, Transform};

/// Whether the profile's description (`desc` tag, ICC v2 text or v4 `mluc`)
/// names sRGB.
fn describes_srgb(icc: &[u8]) -> bool {
    let be32 = |at: usize| {
        icc.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(count) = be32(128) else {
        return false;
    };
    (0..count.min(64)).any(|i| {
        let entry = 132 + i * 12;
        if icc.get(entry..entry + 4) != Some(b"desc") {
            return false;
        }
        let (Some(offset), Some(size)) = (be32(entry + 4), be32(entry + 8)) else {
            return false;
        };
        let Some(text) = icc.get(offset..offset.saturating_add(size)) else {
            return false;
        };
        // ASCII (v2) or UTF-16BE (v4): compare with the zero bytes removed.
        let letters: Vec<u8> = text.iter().copied().filter(|b| *b != 0).collect();
        letters.windows(4).any(|w| w == b"sRGB")
    })
}

/// Converts 8-bit RGB or RGBA pixels from `icc` to sRGB in place.
pub fn to_srgb(icc: &[u8], pixels: &mut [u8], has_alpha: bool) {
    if describes_srgb(icc) {
        return;
    }
    let Some(input) = Profile::new_from_slice(icc, false) else {
        return;
    };
    let mut output = Profile::new_sRGB();
    output.precache_output_transform();
    let kind = if has_alpha {
        DataType::RGBA8
    } else {
        DataType::RGB8
    };
    if let Some(transform) = Transform::new(&input, &output, kind, Intent::Perceptual) {
        transform.apply(pixels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_with_desc(text: &[u8]) -> Vec<u8> {
        let mut icc = vec![0u8; 128];
        icc.extend(1u32.to_be_bytes());
        icc.extend(b"desc");
        icc.extend(144u32.to_be_bytes());
        icc.extend(u32::try_from(text.len()).unwrap().to_be_bytes());
        icc.extend(text);
        icc
    }

    #[test]
    fn recognises_srgb_descriptions_in_both_encodings() {
        assert!(describes_srgb(&profile_with_desc(
            b"desc\0\0\0\0sRGB IEC61966-2.1"
        )));
        assert!(describes_srgb(&profile_with_desc(b"mluc\0s\0R\0G\0B")));
        assert!(!describes_srgb(&profile_with_desc(
            b"desc\0\0\0\0Display P3"
        )));
        assert!(!describes_srgb(b"short"));
    }
}
