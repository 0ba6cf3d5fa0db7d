//! libjpeg-turbo decompression with what the `turbojpeg` crate does not
//! expose: a row range. Rows below the range are never entropy-decoded
//! (libjpeg-turbo stops reading the file), rows above it are decoded but not
//! transformed; `fill` crops and `crop:` save that work.
//!
//! The only `unsafe` in Kiln: calls into TurboJPEG's C API, each checked.
#![allow(unsafe_code)]

use turbojpeg_sys as sys;

/// One TurboJPEG decompressor, destroyed on drop.
pub struct Turbo {
    handle: sys::tjhandle,
}

/// The JPEG's full size.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub width: usize,
    pub height: usize,
}

/// A decoded band of a scaled image: all columns, rows `top..top + height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub width: usize,
    /// Full scaled height (the band's coordinates are relative to this image).
    pub full_height: usize,
    pub top: usize,
    pub height: usize,
}

/// `ceil(dimension / denom)`, TurboJPEG's TJSCALED for 1/denom.
pub fn scaled(dimension: usize, denom: usize) -> usize {
    dimension.div_ceil(denom)
}

impl Turbo {
    pub fn new() -> Option<Self> {
        // SAFETY: tj3Init has no preconditions; a null handle is checked.
        let handle = unsafe { sys::tj3Init(sys::TJINIT_TJINIT_DECOMPRESS as CInt) };
        (!handle.is_null()).then_some(Self { handle })
    }

    /// Refuse images of more than `max_pixels` and progressive files of more
    /// than `max_scans` scans (both checked by libjpeg-turbo itself).
    pub fn set_limits(&mut self, max_pixels: u64, max_scans: u32) {
        let pixels = CInt::try_from(max_pixels).unwrap_or(CInt::MAX);
        let scans = CInt::try_from(max_scans).unwrap_or(CInt::MAX);
        // SAFETY: the handle is live; both parameters take any positive int.
        unsafe {
            sys::tj3Set(self.handle, sys::TJPARAM_TJPARAM_MAXPIXELS as CInt, pixels);
            sys::tj3Set(self.handle, sys::TJPARAM_TJPARAM_SCANLIMIT as CInt, scans);
        }
    }

    pub fn read_header(&mut self, jpeg: &[u8]) -> Option<Header> {
        // SAFETY: the handle is live; the pointer and length describe `jpeg`.
        let status =
            unsafe { sys::tj3DecompressHeader(self.handle, jpeg.as_ptr(), jpeg.len() as _) };
        if status != 0 {
            return None;
        }
        // SAFETY: the handle is live.
        let get = |param| unsafe { sys::tj3Get(self.handle, param as CInt) };
        let width = usize::try_from(get(sys::TJPARAM_TJPARAM_JPEGWIDTH)).ok()?;
        let height = usize::try_from(get(sys::TJPARAM_TJPARAM_JPEGHEIGHT)).ok()?;
        (width > 0 && height > 0).then_some(Header { width, height })
    }

    /// Decodes rows `top..top + height` of the image scaled by `1/denom`, as
    /// packed RGB, into `out` (at least `width * height * 3` bytes). Call
    /// [`Turbo::read_header`] on the same data first.
    pub fn decompress_rows(
        &mut self,
        jpeg: &[u8],
        header: Header,
        denom: usize,
        rows: (usize, usize),
        out: &mut [u8],
    ) -> Option<Band> {
        let width = scaled(header.width, denom);
        let full_height = scaled(header.height, denom);
        let top = rows.0.min(full_height.saturating_sub(1));
        let height = rows.1.clamp(1, full_height - top);
        if out.len() < width * height * 3 {
            return None;
        }
        let factor = sys::tjscalingfactor {
            num: 1,
            denom: CInt::try_from(denom).ok()?,
        };
        let region = sys::tjregion {
            x: 0,
            y: CInt::try_from(top).ok()?,
            w: 0,
            h: if top == 0 && height == full_height {
                0
            } else {
                CInt::try_from(height).ok()?
            },
        };
        let pitch = CInt::try_from(width * 3).ok()?;
        // SAFETY: the handle is live and has read this JPEG's header; `out`
        // holds `height` rows of `pitch` bytes, checked above, which is all
        // TurboJPEG writes for a cropping region of `height` rows.
        let status = unsafe {
            if sys::tj3SetScalingFactor(self.handle, factor) != 0
                || sys::tj3SetCroppingRegion(self.handle, region) != 0
            {
                return None;
            }
            sys::tj3Decompress8(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len() as _,
                out.as_mut_ptr(),
                pitch,
                sys::TJPF_TJPF_RGB as CInt,
            )
        };
        (status == 0).then_some(Band {
            width,
            full_height,
            top,
            height,
        })
    }
}

type CInt = std::ffi::c_int;

impl Drop for Turbo {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { sys::tj3Destroy(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn striped_jpeg() -> Vec<u8> {
        // 64×64: rows 0..32 white, 32..64 black.
        let pixels: Vec<u8> = (0..64 * 64)
            .flat_map(|i| if i / 64 < 32 { [255u8; 3] } else { [0u8; 3] })
            .collect();
        turbojpeg::compress(
            turbojpeg::Image {
                pixels: pixels.as_slice(),
                width: 64,
                pitch: 64 * 3,
                height: 64,
                format: turbojpeg::PixelFormat::RGB,
            },
            95,
            turbojpeg::Subsamp::None,
        )
        .unwrap()
        .to_vec()
    }

    #[test]
    fn decodes_a_scaled_row_band() {
        let jpeg = striped_jpeg();
        let mut turbo = Turbo::new().unwrap();
        let header = turbo.read_header(&jpeg).unwrap();
        assert_eq!((header.width, header.height), (64, 64));
        let mut out = vec![0u8; 32 * 32 * 3];
        // Half scale is 32×32; rows 20..28 straddle the white/black edge at 16.
        let band = turbo
            .decompress_rows(&jpeg, header, 2, (12, 8), &mut out)
            .unwrap();
        assert_eq!(
            band,
            Band {
                width: 32,
                full_height: 32,
                top: 12,
                height: 8
            }
        );
        let row = |r: usize| out[r * 32 * 3];
        assert!(row(0) > 200, "row 12 is white");
        assert!(row(7) < 50, "row 19 is black");
        // The whole image, and garbage refused without writing past `out`.
        let band = turbo
            .decompress_rows(&jpeg, header, 1, (0, 64), &mut vec![0; 64 * 64 * 3])
            .unwrap();
        assert_eq!((band.height, band.full_height), (64, 64));
        assert!(turbo
            .decompress_rows(&jpeg, header, 1, (0, 64), &mut [0; 10])
            .is_none());
        assert!(turbo.read_header(b"not a jpeg").is_none());
    }
}
