//! Where pixels go: from the (upright, cropped) source size, the requested box,
//! mode and gravity to the output size, the fractional source window resampled
//! into it, and — for `pad` — the canvas and where the image sits on it. Pure,
//! so every mode's geometry is unit-tested without decoding an image.

use kiln_core::options::{CropRect, Gravity, ResizeMode};

use super::orient::Rect;

/// `pad`'s canvas: its size and the top-left corner of the image on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// The part of the source that is resampled, in source pixels.
    pub window: Rect,
    pub out_width: u32,
    pub out_height: u32,
    pub canvas: Option<Canvas>,
    /// `fill` with smart gravity: the window's size is final, its position is
    /// chosen from the image's content.
    pub smart: bool,
}

/// What was asked for, in device pixels.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub box_width: u32,
    pub box_height: u32,
    pub mode: ResizeMode,
    pub gravity: Gravity,
    pub upscale: bool,
    pub max_dimension: u32,
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

/// The anchor fractions a gravity places things by (centre for smart, which
/// is decided later from the pixels).
fn anchor(gravity: Gravity) -> (f64, f64) {
    match gravity {
        Gravity::Compass(c) => c.anchor(),
        Gravity::Focal { x, y } => (x.get(), y.get()),
        Gravity::Smart => (0.5, 0.5),
    }
}

/// Where a `size`-long window starts on a `total`-long side.
fn place(gravity: Gravity, anchor: f64, total: f64, size: f64) -> f64 {
    let free = total - size;
    match gravity {
        // A focal point is centred in the window as far as the image allows.
        Gravity::Focal { .. } => (anchor * total - size / 2.0).clamp(0.0, free),
        _ => free * anchor,
    }
}

/// Plans a resize of a `src_w`×`src_h` image (after orientation and crop).
pub fn plan(src_w: u32, src_h: u32, req: &Request) -> Plan {
    let (sw, sh) = (f64::from(src_w), f64::from(src_h));
    let (bw, bh) = (f64::from(req.box_width), f64::from(req.box_height));
    let full = Rect {
        left: 0.0,
        top: 0.0,
        width: sw,
        height: sh,
    };
    let (ax, ay) = anchor(req.gravity);
    // The scale that fits inside the box (a missing side is unconstrained).
    let fit_scale = match (req.box_width, req.box_height) {
        (0, 0) => 1.0,
        (0, _) => bh / sh,
        (_, 0) => bw / sw,
        _ => (bw / sw).min(bh / sh),
    };
    let fit_scale = if req.upscale {
        fit_scale
    } else {
        fit_scale.min(1.0)
    };
    let simple = |out_w: f64, out_h: f64| Plan {
        window: full,
        out_width: dim(out_w),
        out_height: dim(out_h),
        canvas: None,
        smart: false,
    };
    let cover = |out_w: f64, out_h: f64, scale: f64| {
        let (win_w, win_h) = ((out_w / scale).min(sw), (out_h / scale).min(sh));
        Plan {
            window: Rect {
                left: place(req.gravity, ax, sw, win_w),
                top: place(req.gravity, ay, sh, win_h),
                width: win_w,
                height: win_h,
            },
            out_width: dim(out_w),
            out_height: dim(out_h),
            canvas: None,
            smart: req.gravity == Gravity::Smart,
        }
    };
    let boxed = req.box_width > 0 && req.box_height > 0;
    let same_orientation = (sw >= sh) == (bw >= bh);
    let mode = match req.mode {
        ResizeMode::Auto if boxed && same_orientation && req.upscale => ResizeMode::Fill,
        ResizeMode::Auto if boxed && same_orientation => ResizeMode::FillMax,
        ResizeMode::Auto => ResizeMode::Fit,
        mode => mode,
    };
    let plan = match mode {
        ResizeMode::Fill if boxed => {
            // Fill always produces exactly the box, enlarging a small source.
            cover(bw, bh, (bw / sw).max(bh / sh))
        }
        ResizeMode::FillMax if boxed => {
            // At most the box, never enlarged: a small source keeps its scale.
            let scale = (bw / sw).max(bh / sh).min(1.0);
            cover(bw.min(sw * scale), bh.min(sh * scale), scale)
        }
        ResizeMode::FillDown if boxed => {
            // Never enlarged, and always the box's aspect ratio: a small
            // source gives the largest such window it holds, at its own scale.
            let scale = (bw / sw).max(bh / sh).min(1.0);
            let (scaled_w, scaled_h) = (sw * scale, sh * scale);
            let (out_w, out_h) = if scaled_w >= bw && scaled_h >= bh {
                (bw, bh)
            } else if scaled_w / scaled_h > bw / bh {
                (scaled_h * bw / bh, scaled_h)
            } else {
                (scaled_w, scaled_w * bh / bw)
            };
            cover(out_w, out_h, scale)
        }
        ResizeMode::Pad if boxed => {
            let (out_w, out_h) = (dim(sw * fit_scale), dim(sh * fit_scale));
            let (out_w, out_h) = (out_w.min(req.box_width), out_h.min(req.box_height));
            let offset = |free: u32, anchor: f64| (f64::from(free) * anchor).round() as u32;
            Plan {
                window: full,
                out_width: out_w,
                out_height: out_h,
                canvas: Some(Canvas {
                    width: req.box_width,
                    height: req.box_height,
                    x: offset(req.box_width - out_w, ax),
                    y: offset(req.box_height - out_h, ay),
                }),
                smart: false,
            }
        }
        ResizeMode::Force => match (req.box_width, req.box_height) {
            (0, 0) => simple(sw, sh),
            (0, h) => simple(sw * bh / sh, f64::from(h)),
            (w, 0) => simple(f64::from(w), sh * bw / sw),
            (w, h) => simple(f64::from(w), f64::from(h)),
        },
        _ => simple(sw * fit_scale, sh * fit_scale),
    };
    limit(plan, req.max_dimension)
}

/// Shrinks the output (same window) until both sides fit `max_dim`. Fill and
/// pad outputs are already bounded by the box, which the caller caps.
fn limit(plan: Plan, max_dim: u32) -> Plan {
    let longest = plan.out_width.max(plan.out_height);
    if longest <= max_dim || plan.canvas.is_some() {
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
    use kiln_core::options::{Compass, Fraction};

    use super::*;

    fn req(w: u32, h: u32, mode: ResizeMode) -> Request {
        Request {
            box_width: w,
            box_height: h,
            mode,
            gravity: Gravity::default(),
            upscale: false,
            max_dimension: 8192,
        }
    }

    fn with_gravity(mut r: Request, gravity: Gravity) -> Request {
        r.gravity = gravity;
        r
    }

    fn out(p: &Plan) -> (u32, u32) {
        (p.out_width, p.out_height)
    }

    fn origin(p: &Plan) -> (f64, f64) {
        (p.window.left.round(), p.window.top.round())
    }

    #[test]
    fn fit_keeps_aspect_and_enlarges_only_with_up() {
        assert_eq!(
            out(&plan(4000, 3000, &req(800, 800, ResizeMode::Fit))),
            (800, 600)
        );
        assert_eq!(
            out(&plan(4000, 3000, &req(0, 300, ResizeMode::Fit))),
            (400, 300)
        );
        assert_eq!(
            out(&plan(4000, 3000, &req(1000, 0, ResizeMode::Fit))),
            (1000, 750)
        );
        assert_eq!(
            out(&plan(200, 100, &req(800, 800, ResizeMode::Fit))),
            (200, 100)
        );
        assert_eq!(
            out(&plan(200, 100, &req(0, 0, ResizeMode::Fit))),
            (200, 100)
        );
        let mut up = req(800, 800, ResizeMode::Fit);
        up.upscale = true;
        assert_eq!(out(&plan(200, 100, &up)), (800, 400));
    }

    #[test]
    fn fill_covers_the_box_and_gravity_picks_the_region() {
        let fill = req(1200, 630, ResizeMode::Fill);
        let p = plan(4000, 3000, &fill);
        assert_eq!(out(&p), (1200, 630));
        // Width-bound: the whole width is kept, a 2100-high band survives.
        assert_eq!((p.window.width, p.window.height), (4000.0, 2100.0));
        assert_eq!(origin(&p), (0.0, 450.0));
        let at = |c: Compass| origin(&plan(4000, 3000, &with_gravity(fill, Gravity::Compass(c))));
        assert_eq!(at(Compass::North), (0.0, 0.0));
        assert_eq!(at(Compass::South), (0.0, 900.0));
        assert_eq!(at(Compass::NorthEast), (0.0, 0.0));
        // Height-bound: the band moves horizontally.
        let square = req(100, 100, ResizeMode::Fill);
        let at = |c: Compass| {
            origin(&plan(
                4000,
                3000,
                &with_gravity(square, Gravity::Compass(c)),
            ))
        };
        assert_eq!(at(Compass::Centre), (500.0, 0.0));
        assert_eq!(at(Compass::West), (0.0, 0.0));
        assert_eq!(at(Compass::East), (1000.0, 0.0));
        assert_eq!(at(Compass::SouthEast), (1000.0, 0.0));
        assert_eq!(at(Compass::NorthWest), (0.0, 0.0));
        // A small source is enlarged to exactly the box.
        assert_eq!(out(&plan(50, 40, &square)), (100, 100));
    }

    #[test]
    fn focal_points_centre_the_window_within_the_image() {
        let focal = |x: u16, y: u16| Gravity::Focal {
            x: Fraction(x),
            y: Fraction(y),
        };
        let square = req(300, 300, ResizeMode::Fill);
        // A 3000-wide window on an 8000×3000 image, centred on x = 0.7 · 8000.
        let p = plan(8000, 3000, &with_gravity(square, focal(7000, 5000)));
        assert_eq!(origin(&p), (4100.0, 0.0));
        // Near the edge the window stops at the border instead of leaving the image.
        let p = plan(8000, 3000, &with_gravity(square, focal(9_900, 5000)));
        assert_eq!(origin(&p), (5000.0, 0.0));
        let p = plan(8000, 3000, &with_gravity(square, focal(0, 0)));
        assert_eq!(origin(&p), (0.0, 0.0));
        // A wide box on a tall image: the band moves vertically.
        let wide = req(300, 100, ResizeMode::Fill);
        let p = plan(3000, 8000, &with_gravity(wide, focal(5000, 2500)));
        assert_eq!(origin(&p), (0.0, 1500.0));
    }

    #[test]
    fn smart_fill_leaves_the_position_to_the_content() {
        let p = plan(
            4000,
            3000,
            &with_gravity(req(100, 100, ResizeMode::Fill), Gravity::Smart),
        );
        assert!(p.smart);
        assert_eq!((p.window.width, p.window.height), (3000.0, 3000.0));
    }

    #[test]
    fn fill_max_and_fill_down_never_enlarge() {
        // A large source: both are plain fill.
        for mode in [ResizeMode::FillMax, ResizeMode::FillDown] {
            let p = plan(4000, 3000, &req(1200, 630, mode));
            assert_eq!(out(&p), (1200, 630), "{mode:?}");
            assert_eq!((p.window.width, p.window.height), (4000.0, 2100.0));
        }
        // 300×200 into 400×400: fill-max keeps the scale, crops to 200×200…
        let max = plan(300, 200, &req(400, 400, ResizeMode::FillMax));
        assert_eq!(out(&max), (300, 200));
        let max = plan(300, 200, &req(250, 400, ResizeMode::FillMax));
        assert_eq!(out(&max), (250, 200));
        assert_eq!(max.window.width, 250.0);
        assert_eq!(origin(&max), (25.0, 0.0));
        // …fill-down keeps the box's aspect ratio.
        let down = plan(300, 200, &req(400, 400, ResizeMode::FillDown));
        assert_eq!(out(&down), (200, 200));
        assert_eq!(origin(&down), (50.0, 0.0));
        let down = plan(300, 200, &req(800, 400, ResizeMode::FillDown));
        assert_eq!(out(&down), (300, 150));
    }

    #[test]
    fn auto_fills_same_orientations_and_fits_the_others() {
        let auto = req(400, 300, ResizeMode::Auto);
        let landscape = plan(4000, 2000, &auto);
        assert_eq!(
            out(&landscape),
            (400, 300),
            "landscape into landscape: fill"
        );
        let portrait = plan(2000, 4000, &auto);
        assert_eq!(out(&portrait), (150, 300), "portrait into landscape: fit");
        let small = plan(200, 100, &auto);
        assert_eq!(out(&small), (200, 100), "never enlarged without up");
        let mut up = auto;
        up.upscale = true;
        assert_eq!(out(&plan(200, 100, &up)), (400, 300));
    }

    #[test]
    fn pad_letterboxes_to_the_exact_box() {
        let pad = req(500, 500, ResizeMode::Pad);
        let p = plan(4000, 3000, &pad);
        assert_eq!(out(&p), (500, 375));
        assert_eq!(
            p.canvas,
            Some(Canvas {
                width: 500,
                height: 500,
                x: 0,
                y: 63
            })
        );
        let south = plan(
            4000,
            3000,
            &with_gravity(pad, Gravity::Compass(Compass::South)),
        );
        assert_eq!(south.canvas.map(|c| (c.x, c.y)), Some((0, 125)));
        // Without `up` a small image is centred, not enlarged.
        let p = plan(100, 50, &pad);
        assert_eq!(out(&p), (100, 50));
        assert_eq!(p.canvas.map(|c| (c.x, c.y)), Some((200, 225)));
    }

    #[test]
    fn force_stretches_to_the_box() {
        let p = plan(4000, 3000, &req(300, 300, ResizeMode::Force));
        assert_eq!(out(&p), (300, 300));
        assert_eq!((p.window.width, p.window.height), (4000.0, 3000.0));
        assert_eq!(
            out(&plan(100, 50, &req(400, 0, ResizeMode::Force))),
            (400, 200)
        );
    }

    #[test]
    fn output_is_limited_to_the_maximum_dimension() {
        let p = plan(20000, 10000, &req(0, 0, ResizeMode::Fit));
        assert_eq!(out(&p), (8192, 4096));
        let mut tall = req(1000, 0, ResizeMode::Force);
        tall.upscale = true;
        assert_eq!(out(&plan(10, 1000, &tall)).1, 8192);
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
