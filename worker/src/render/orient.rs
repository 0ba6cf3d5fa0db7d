//! Orientation as one transform: the EXIF orientation, then `r:` (clockwise
//! rotation), then `flip:` compose into a single element of the eight-element
//! group of square symmetries. The pipeline plans in upright coordinates, maps
//! the source window back into stored coordinates, resizes there, and applies
//! the transform once to the small output — never to the full-size image.

use image::metadata::Orientation;

use kiln_core::options::Flip;

/// A signed permutation matrix acting on centred pixel coordinates
/// (x to the right, y down): `upright = m · stored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transform {
    m: [[i8; 2]; 2],
}

const IDENTITY: Transform = Transform {
    m: [[1, 0], [0, 1]],
};
const ROTATE_90: Transform = Transform {
    m: [[0, -1], [1, 0]],
};
const FLIP_H: Transform = Transform {
    m: [[-1, 0], [0, 1]],
};
const FLIP_V: Transform = Transform {
    m: [[1, 0], [0, -1]],
};

/// A window in pixel coordinates (fractional).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl Transform {
    /// `other` applied after `self`.
    fn then(self, other: Self) -> Self {
        let (a, b) = (other.m, self.m);
        let mut m = [[0i8; 2]; 2];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        Self { m }
    }

    fn rotate_cw(quarter_turns: u16) -> Self {
        (0..quarter_turns % 4).fold(IDENTITY, |t, _| t.then(ROTATE_90))
    }

    fn from_orientation(orientation: Orientation) -> Self {
        match orientation {
            Orientation::NoTransforms => IDENTITY,
            Orientation::Rotate90 => Self::rotate_cw(1),
            Orientation::Rotate180 => Self::rotate_cw(2),
            Orientation::Rotate270 => Self::rotate_cw(3),
            Orientation::FlipHorizontal => FLIP_H,
            Orientation::FlipVertical => FLIP_V,
            Orientation::Rotate90FlipH => Self::rotate_cw(1).then(FLIP_H),
            Orientation::Rotate270FlipH => Self::rotate_cw(3).then(FLIP_H),
        }
    }

    /// The EXIF orientation, then `rotate` degrees clockwise, then the flips.
    pub fn new(exif: Orientation, rotate_degrees: u16, flip: Flip) -> Self {
        let mut t = Self::from_orientation(exif).then(Self::rotate_cw(rotate_degrees / 90));
        if flip.horizontal {
            t = t.then(FLIP_H);
        }
        if flip.vertical {
            t = t.then(FLIP_V);
        }
        t
    }

    /// The same transform as the `image` crate applies it.
    pub fn as_orientation(self) -> Orientation {
        const ALL: [Orientation; 8] = [
            Orientation::NoTransforms,
            Orientation::Rotate90,
            Orientation::Rotate180,
            Orientation::Rotate270,
            Orientation::FlipHorizontal,
            Orientation::FlipVertical,
            Orientation::Rotate90FlipH,
            Orientation::Rotate270FlipH,
        ];
        ALL.into_iter()
            .find(|o| Self::from_orientation(*o) == self)
            .unwrap_or(Orientation::NoTransforms)
    }

    /// Whether width and height trade places.
    pub fn swaps_axes(self) -> bool {
        self.m[0][0] == 0
    }

    /// Upright size of a stored `width`×`height` image (or the stored size of
    /// an upright one: the swap is its own inverse).
    pub fn swap_dims<T>(self, width: T, height: T) -> (T, T) {
        if self.swaps_axes() {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// Maps a rectangle of the upright image back into stored coordinates.
    /// `stored` is the stored image's size.
    pub fn rect_to_stored(self, rect: Rect, stored: (f64, f64)) -> Rect {
        let (up_w, up_h) = self.swap_dims(stored.0, stored.1);
        // The inverse of an orthogonal matrix is its transpose.
        let inverse = |x: f64, y: f64| {
            let (cx, cy) = (x - up_w / 2.0, y - up_h / 2.0);
            let m = self.m;
            (
                f64::from(m[0][0]) * cx + f64::from(m[1][0]) * cy + stored.0 / 2.0,
                f64::from(m[0][1]) * cx + f64::from(m[1][1]) * cy + stored.1 / 2.0,
            )
        };
        let (x1, y1) = inverse(rect.left, rect.top);
        let (x2, y2) = inverse(rect.left + rect.width, rect.top + rect.height);
        Rect {
            left: x1.min(x2),
            top: y1.min(y2),
            width: (x2 - x1).abs(),
            height: (y2 - y1).abs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flip(horizontal: bool, vertical: bool) -> Flip {
        Flip {
            horizontal,
            vertical,
        }
    }

    #[test]
    fn rotations_and_flips_compose() {
        let none = Flip::default();
        let t = Transform::new(Orientation::NoTransforms, 90, none);
        assert_eq!(t.as_orientation(), Orientation::Rotate90);
        // EXIF 6 (rotate 90) then r:270 is upright again.
        let t = Transform::new(Orientation::Rotate90, 270, none);
        assert_eq!(t.as_orientation(), Orientation::NoTransforms);
        // Flipping both ways is a half turn.
        let t = Transform::new(Orientation::NoTransforms, 0, flip(true, true));
        assert_eq!(t.as_orientation(), Orientation::Rotate180);
        let t = Transform::new(Orientation::NoTransforms, 90, flip(true, false));
        assert_eq!(t.as_orientation(), Orientation::Rotate90FlipH);
        assert!(t.swaps_axes());
        assert_eq!(t.swap_dims(400, 300), (300, 400));
    }

    #[test]
    fn every_orientation_round_trips() {
        for exif in 1..=8 {
            let o = Orientation::from_exif(exif).unwrap();
            assert_eq!(
                Transform::new(o, 0, Flip::default()).as_orientation(),
                o,
                "EXIF {exif}"
            );
        }
    }

    #[test]
    fn upright_windows_map_back_to_stored_pixels() {
        // Stored 400×300, rotated 90° clockwise: upright 300×400. The upright
        // top-left 100×50 corner was the stored bottom-left 50×100 corner.
        let t = Transform::new(Orientation::Rotate90, 0, Flip::default());
        let r = t.rect_to_stored(
            Rect {
                left: 0.0,
                top: 0.0,
                width: 100.0,
                height: 50.0,
            },
            (400.0, 300.0),
        );
        assert_eq!(
            r,
            Rect {
                left: 0.0,
                top: 200.0,
                width: 50.0,
                height: 100.0
            }
        );
        // A horizontal flip mirrors the window.
        let t = Transform::new(Orientation::NoTransforms, 0, flip(true, false));
        let r = t.rect_to_stored(
            Rect {
                left: 0.0,
                top: 10.0,
                width: 100.0,
                height: 50.0,
            },
            (400.0, 300.0),
        );
        assert_eq!(
            (r.left, r.top, r.width, r.height),
            (300.0, 10.0, 100.0, 50.0)
        );
    }
}
