//! Where pixels go: from source size, requested box and mode to the output size
//! and the (fractional) source window that is resampled into it. Pure, so every
//! mode's geometry is unit-tested without decoding an image.

use kiln_core::options::{CropRect, ResizeMode};

/// A window of the source, in source pixels (fractional for exact aspect ratios).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub window: Window,
    pub out_width: u32,
    pub out_height: u32,
}

/// Clamps a requested crop to the image; `None` when nothing of it is inside.
pub fn clamp_crop(crop: CropRect, width: u32, height: u32) -> Option<CropRect> {
    if crop.x >= width || crop.y >= height {
        return None;
    }
    Some(CropRect {
        x: crop.x,
        y: crop.y,
        width: crop.width.min(width - crop.x),
        height: crop.height.min(height - crop.y),
    })
}

fn dim(value: f64) -> u32 {
    (value.round() as u32).max(1)
}

/// Plans a resize of a `src_w`×`src_h` image (after orientation and crop) into
/// the requested `box_w`×`box_h` (0 = derive), never producing a side larger
/// than `max_dim`.
pub fn plan(
    src_w: u32,
    src_h: u32,
    box_w: u32,
    box_h: u32,
    mode: ResizeMode,
    max_dim: u32,
) -> Plan {
    let (sw, sh) = (f64::from(src_w), f64::from(src_h));
    let full = Window {
        left: 0.0,
        top: 0.0,
        width: sw,
        height: sh,
    };
    let plan = match mode {
        ResizeMode::Fill if box_w > 0 && box_h > 0 => {
            let (bw, bh) = (f64::from(box_w), f64::from(box_h));
            let scale = (bw / sw).max(bh / sh);
            let (win_w, win_h) = ((bw / scale).min(sw), (bh / scale).min(sh));
            Plan {
                window: Window {
                    left: (sw - win_w) / 2.0,
                    top: (sh - win_h) / 2.0,
                    width: win_w,
                    height: win_h,
                },
                out_width: box_w,
                out_height: box_h,
            }
        }
        _ => {
            let scale = match (box_w, box_h) {
                (0, 0) => 1.0,
                (0, h) => f64::from(h) / sh,
                (w, 0) => f64::from(w) / sw,
                (w, h) => (f64::from(w) / sw).min(f64::from(h) / sh),
            }
            .min(1.0); // fit never upscales
            Plan {
                window: full,
                out_width: dim(sw * scale),
                out_height: dim(sh * scale),
            }
        }
    };
    limit(plan, max_dim)
}

/// Shrinks the output (same window) until both sides fit `max_dim`.
fn limit(plan: Plan, max_dim: u32) -> Plan {
    let longest = plan.out_width.max(plan.out_height);
    if longest <= max_dim {
        return plan;
    }
    let scale = f64::from(max_dim) / f64::from(longest);
    Plan {
        out_width: dim(f64::from(plan.out_width) * scale),
        out_height: dim(f64::from(plan.out_height) * scale),
        ..plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        let p = plan(4000, 3000, 800, 800, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (800, 600));
        let p = plan(4000, 3000, 0, 300, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (400, 300));
        let p = plan(4000, 3000, 1000, 0, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (1000, 750));
        let p = plan(200, 100, 800, 800, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (200, 100));
        let p = plan(200, 100, 0, 0, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (200, 100));
    }

    #[test]
    fn fill_covers_the_box_and_crops_the_centre() {
        let p = plan(4000, 3000, 1200, 630, ResizeMode::Fill, 8192);
        assert_eq!((p.out_width, p.out_height), (1200, 630));
        // Width-bound: the whole width is kept, the height window is centred.
        assert!((p.window.width - 4000.0).abs() < 1e-9);
        assert!((p.window.height - 2100.0).abs() < 1e-9);
        assert!((p.window.top - 450.0).abs() < 1e-9);
        let tall = plan(1000, 2000, 100, 100, ResizeMode::Fill, 8192);
        assert_eq!(
            (tall.window.width, tall.window.height, tall.window.top),
            (1000.0, 1000.0, 500.0)
        );
    }

    #[test]
    fn output_is_limited_to_the_maximum_dimension() {
        let p = plan(20000, 10000, 0, 0, ResizeMode::Fit, 8192);
        assert_eq!((p.out_width, p.out_height), (8192, 4096));
    }

    #[test]
    fn crops_are_clamped_to_the_image() {
        let c = CropRect {
            x: 50,
            y: 50,
            width: 100,
            height: 100,
        };
        assert_eq!(
            clamp_crop(c, 120, 200),
            Some(CropRect {
                x: 50,
                y: 50,
                width: 70,
                height: 100
            })
        );
        assert_eq!(clamp_crop(c, 50, 200), None);
    }
}
