//! The canonical form: one fixed token order, defaults and no-ops dropped, no
//! expiry. Two option lists that render the same bytes map to one string, and
//! so to one cache key.

use super::parse::mode_token;
use super::{FormatChoice, Fraction, Gravity, ImageOptions, ResizeMode, Sigma};

use crate::format::OutputFormat;

/// `2500` ten-thousandths → `0.25`; whole numbers lose the point.
fn decimal(value: u32, digits: u32) -> String {
    let scale = 10u32.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn fraction(f: Fraction) -> String {
    decimal(u32::from(f.0), 4)
}

fn sigma(s: Sigma) -> String {
    decimal(u32::from(s.0), 1)
}

impl ImageOptions {
    /// The canonical token list (see the module documentation).
    pub fn canonical(&self) -> String {
        let mut tokens = vec![format!("{}x{}", self.width, self.height)];
        if self.mode != ResizeMode::Fit {
            tokens.push(mode_token(self.mode).into());
        }
        // Gravity places a fill window or a padded image; elsewhere it is a no-op.
        // Smart placement means nothing to padding, so it pads centred.
        let gravity = match (self.mode, self.gravity) {
            (mode, Gravity::Compass(c)) if mode.needs_box() && c != Default::default() => {
                Some(format!("g:{}", c.token()))
            }
            (mode, Gravity::Smart) if mode.needs_box() && mode != ResizeMode::Pad => {
                Some("g:smart".into())
            }
            (mode, Gravity::Focal { x, y }) if mode.needs_box() => {
                Some(format!("g:fp:{}:{}", fraction(x), fraction(y)))
            }
            _ => None,
        };
        tokens.extend(gravity);
        if let Some(c) = self.crop {
            tokens.push(format!("crop:{}:{}:{}:{}", c.x, c.y, c.width, c.height));
        }
        if let Some([r, g, b]) = self.background {
            tokens.push(format!("bg:{r:02x}{g:02x}{b:02x}"));
        }
        match self.format {
            Some(FormatChoice::Fixed(f)) => tokens.push(format!("f:{}", f.token())),
            Some(FormatChoice::Auto) => tokens.push("f:auto".into()),
            Some(FormatChoice::Compatible) => tokens.push("f:compat".into()),
            None => {}
        }
        // Quality means nothing to PNG; dropping it keeps equivalent URLs together.
        let lossless = self.format == Some(FormatChoice::Fixed(OutputFormat::Png));
        if let (Some(q), false) = (self.quality, lossless) {
            tokens.push(format!("q:{q}"));
        }
        if self.dpr != Self::DPR_ONE {
            tokens.push(format!("dpr:{}", decimal(u32::from(self.dpr), 2)));
        }
        if self.rotate != 0 {
            tokens.push(format!("r:{}", self.rotate));
        }
        match (self.flip.horizontal, self.flip.vertical) {
            (true, true) => tokens.push("flip:hv".into()),
            (true, false) => tokens.push("flip:h".into()),
            (false, true) => tokens.push("flip:v".into()),
            (false, false) => {}
        }
        if let Some(s) = self.blur {
            tokens.push(format!("blur:{}", sigma(s)));
        }
        if let Some(s) = self.sharpen {
            tokens.push(format!("sharpen:{}", sigma(s)));
        }
        if self.grayscale {
            tokens.push("gray".into());
        }
        // Fill and force always reach the box, fill-down and fill-max never
        // enlarge; only fit, pad and auto can be told to.
        if self.upscale
            && matches!(
                self.mode,
                ResizeMode::Fit | ResizeMode::Pad | ResizeMode::Auto
            )
        {
            tokens.push("up".into());
        }
        if let Some(cb) = &self.cache_buster {
            tokens.push(format!("cb:{cb}"));
        }
        tokens.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        ImageOptions::parse(s).unwrap().canonical()
    }

    #[test]
    fn equivalent_lists_share_one_canonical_form() {
        for form in [
            "800x600,f:webp",
            "f:webp,800x600",
            "fit,f:webp,800x600",
            "800x600,fit,f:webp,exp:99",
            "800x600,f:webp,g:ne",
            "800x600,f:webp,dpr:1.00",
            "800x600,f:webp,r:0",
        ] {
            assert_eq!(canon(form), "800x600,f:webp", "{form}");
        }
        assert_eq!(canon("f:jpg,10x10"), "10x10,f:jpeg");
        assert_eq!(canon("10x10,f:png,q:50"), "10x10,f:png");
        assert_eq!(canon("10x10,fill,g:c"), "10x10,fill");
        assert_eq!(canon("10x10,fill,up"), "10x10,fill");
        assert_eq!(canon("10x10,pad,smart"), "10x10,pad");
        assert_eq!(canon("10x10,flip:vh,bg:FFaa00"), "10x10,bg:ffaa00,flip:hv");
        assert_eq!(canon("10x10,fill,fp:0.5000:0.1"), "10x10,fill,g:fp:0.5:0.1");
        assert_eq!(canon("10x10,blur:2.0,dpr:2.50"), "10x10,dpr:2.5,blur:2");
    }

    #[test]
    fn different_renders_keep_different_forms() {
        let distinct = [
            "800x600",
            "800x600,fill",
            "800x600,pad",
            "800x600,force",
            "800x600,fill,g:n",
            "800x600,fill,smart",
            "800x600,up",
            "800x600,dpr:2",
            "800x600,r:90",
            "800x600,flip:h",
            "800x600,blur:1",
            "800x600,sharpen:1",
            "800x600,f:auto",
            "800x600,f:avif",
            "800x600,fill-down",
            "800x600,fill-max",
            "800x600,auto",
            "800x600,auto,up",
            "800x600,gray",
            "800x600,cb:1",
            "800x600,cb:2",
        ];
        let forms: std::collections::HashSet<String> = distinct.iter().map(|s| canon(s)).collect();
        assert_eq!(forms.len(), distinct.len());
    }

    #[test]
    fn canonical_form_parses_back_to_the_same_options() {
        for s in [
            "q:90,crop:0:0:5:5,fill,1x2,f:jpeg",
            "300x200,pad,g:sw,bg:102030,up,dpr:3.25,r:270,flip:v,blur:0.5,sharpen:10,f:avif",
            "300x200,fill,fp:0.3333:0.9999,f:compat",
            "300x200,fill-down,g:smart,gray",
            "300x200,fill-max,g:se",
            "300x200,auto,up,g:fp:0.1:0.2,cb:v1.2_a-b",
        ] {
            let o = ImageOptions::parse(s).unwrap();
            assert_eq!(ImageOptions::parse(&o.canonical()).unwrap(), o, "{s}");
        }
    }
}
