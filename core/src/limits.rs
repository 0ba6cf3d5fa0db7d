//! How large a source may be and how large a rendition may be asked for:
//! one place for the checks the api makes from a URL or an upload's header
//! and the worker makes from an image header before any pixel is decoded.

/// Limits on sources and outputs (`KILN_MAX_SOURCE_*`,
/// `KILN_MAX_OUTPUT_DIMENSION`; read by `kiln-infra`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLimits {
    pub max_bytes: u64,
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
    pub max_output_dimension: u32,
}

/// A requested output over `max_output_dimension` (the limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("requested size exceeds the {0} px limit")]
pub struct OutputTooLarge(pub u32);

/// A source over one of its limits; the message names the limit, never more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{width}x{height} is over the {limit}")]
pub struct SourceTooLarge {
    pub width: u32,
    pub height: u32,
    /// The limit crossed, e.g. `20000 px width limit`.
    pub limit: String,
}

impl SourceLimits {
    /// A requested output box (0 = unset side) within `max_output_dimension`.
    pub fn check_output(&self, width: u32, height: u32) -> Result<(), OutputTooLarge> {
        let limit = self.max_output_dimension;
        if width > limit || height > limit {
            return Err(OutputTooLarge(limit));
        }
        Ok(())
    }

    /// A source's dimensions within the width, height and pixel limits.
    pub fn check_source(&self, width: u32, height: u32) -> Result<(), SourceTooLarge> {
        let over = |limit: String| SourceTooLarge {
            width,
            height,
            limit,
        };
        if width > self.max_width {
            return Err(over(format!("{} px width limit", self.max_width)));
        }
        if height > self.max_height {
            return Err(over(format!("{} px height limit", self.max_height)));
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(over(format!("{} pixel limit", self.max_pixels)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SourceLimits = SourceLimits {
        max_bytes: 1 << 20,
        max_width: 4000,
        max_height: 3000,
        max_pixels: 10_000_000,
        max_output_dimension: 2048,
    };

    #[test]
    fn outputs_up_to_the_dimension_limit_pass() {
        assert_eq!(LIMITS.check_output(2048, 0), Ok(()));
        assert_eq!(LIMITS.check_output(0, 2049), Err(OutputTooLarge(2048)));
        assert_eq!(
            LIMITS.check_output(2049, 10).unwrap_err().to_string(),
            "requested size exceeds the 2048 px limit"
        );
    }

    #[test]
    fn each_source_limit_is_named_when_crossed() {
        assert_eq!(LIMITS.check_source(4000, 2500), Ok(()));
        let message = |w, h| LIMITS.check_source(w, h).unwrap_err().to_string();
        assert_eq!(message(4001, 10), "4001x10 is over the 4000 px width limit");
        assert_eq!(
            message(10, 3001),
            "10x3001 is over the 3000 px height limit"
        );
        assert_eq!(
            message(4000, 2501),
            "4000x2501 is over the 10000000 pixel limit"
        );
    }
}
