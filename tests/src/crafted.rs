//! Hostile files, made in the test: each is built to hit one weakness an
//! attacker would aim at (see `tests/it/hostile/`).

/// A JPEG segment: marker, length, payload.
fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(
        &u16::try_from(payload.len() + 2)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    s.extend_from_slice(payload);
    s
}

/// `SOI | RST0 | decoy SOF 100×100×4 | decoy SOS | filler | real SOF
/// 65535×65535×3 | SOS`: a scan that reads RST0 as length-less (libjpeg's
/// reading) sees a small 4-component image; zune-jpeg reads the decoy's
/// `FF C0` as RST0's length, skips to the real frame and would allocate
/// ~12.9 GB for it.
pub fn decoy_frame_jpeg() -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xD0];
    let mut decoy = vec![8, 0, 100, 0, 100, 4];
    for id in 1..=4u8 {
        decoy.extend([id, 0x11, 0]);
    }
    jpeg.extend(segment(0xC0, &decoy));
    jpeg.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    jpeg.resize(6 + 0xFFC0 - 2, 0);
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

/// A progressive JPEG of `width`×`height` whose last scan is repeated
/// `extra` times: each repeat is one more pass over every block of the
/// image (decoders only warn about it), a few bytes each — the image is one
/// flat colour, so a refinement scan is a handful of end-of-band runs.
pub fn many_scans_jpeg(width: usize, height: usize, extra: usize) -> Vec<u8> {
    let pixels = [90u8, 140, 200].repeat(width * height);
    let image = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    };
    let mut compressor = turbojpeg::Compressor::new().expect("a TurboJPEG compressor");
    let _ = compressor.set_quality(75);
    let _ = compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2);
    let _ = compressor.set_progressive(true);
    let jpeg = compressor
        .compress_to_vec(image)
        .expect("a progressive JPEG");
    let last_scan = last_scan(&jpeg);
    let end = jpeg.len() - 2; // before EOI
    let mut out = jpeg[..end].to_vec();
    for _ in 0..extra {
        out.extend_from_slice(&jpeg[last_scan..end]);
    }
    out.extend([0xFF, 0xD9]);
    out
}

/// Where the last SOS segment of a JPEG starts.
fn last_scan(jpeg: &[u8]) -> usize {
    (0..jpeg.len() - 1)
        .rev()
        .find(|&i| jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA)
        .expect("a scan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repeated_scans_are_there() {
        let one = many_scans_jpeg(64, 64, 0);
        let more = many_scans_jpeg(64, 64, 50);
        let scans = |j: &[u8]| j.windows(2).filter(|w| w == &[0xFF, 0xDA]).count();
        assert_eq!(scans(&more), scans(&one) + 50);
        assert_eq!(&more[more.len() - 2..], &[0xFF, 0xD9]);
        assert_eq!(decoy_frame_jpeg().len(), 6 + 0xFFC0 - 2 + 19 + 14 + 64 + 2);
    }
}
