//! `smart` gravity: edge-energy saliency. The region is sampled on a grid of
//! at most 128 cells on its long side; each cell scores its luma gradient
//! (detail: faces, text, subjects in focus) plus a little colour saturation
//! (flat sky and walls score low). A summed-area table scores every window
//! position; the best one wins, ties going to the most central.

use super::decode::Frame;
use super::orient::Rect;

const GRID: f64 = 128.0;
const SATURATION_WEIGHT: f64 = 0.25;

/// The top-left corner of the `width`×`height` window inside `region` (all in
/// frame pixels) that holds the most detail.
pub fn best_window(frame: &Frame<'_>, region: Rect, width: f64, height: f64) -> (f64, f64) {
    let step = (region.width.max(region.height) / GRID).max(1.0);
    let cols = ((region.width / step) as usize).max(1);
    let rows = ((region.height / step) as usize).max(1);
    let channels = if frame.has_alpha { 4 } else { 3 };
    let sample = |col: usize, row: usize| -> (f64, f64) {
        let x = ((region.left + (col as f64 + 0.5) * step) as u32).min(frame.width - 1);
        let y = ((region.top + (row as f64 + 0.5) * step) as u32).min(frame.height - 1);
        let at = (y as usize * frame.width as usize + x as usize) * channels;
        let [r, g, b] = [0, 1, 2].map(|c| f64::from(frame.data[at + c]));
        let luma = 0.299 * r + 0.587 * g + 0.114 * b;
        let saturation = r.max(g).max(b) - r.min(g).min(b);
        (luma, saturation)
    };
    let cells: Vec<(f64, f64)> = (0..rows)
        .flat_map(|row| (0..cols).map(move |col| (col, row)))
        .map(|(col, row)| sample(col, row))
        .collect();
    let luma = |col: usize, row: usize| cells[row * cols + col].0;
    // Summed-area table with a zero border: sat[(r, c)] sums cells above-left.
    let mut sat = vec![0.0f64; (rows + 1) * (cols + 1)];
    for row in 0..rows {
        for col in 0..cols {
            let dx = luma((col + 1).min(cols - 1), row) - luma(col.saturating_sub(1), row);
            let dy = luma(col, (row + 1).min(rows - 1)) - luma(col, row.saturating_sub(1));
            let energy = dx.abs() + dy.abs() + SATURATION_WEIGHT * cells[row * cols + col].1;
            sat[(row + 1) * (cols + 1) + col + 1] =
                energy + sat[row * (cols + 1) + col + 1] + sat[(row + 1) * (cols + 1) + col]
                    - sat[row * (cols + 1) + col];
        }
    }
    let win_cols = ((width / step).round() as usize).clamp(1, cols);
    let win_rows = ((height / step).round() as usize).clamp(1, rows);
    let sum = |col: usize, row: usize| {
        let at = |r: usize, c: usize| sat[r * (cols + 1) + c];
        at(row + win_rows, col + win_cols) - at(row, col + win_cols) - at(row + win_rows, col)
            + at(row, col)
    };
    let (free_cols, free_rows) = (cols - win_cols, rows - win_rows);
    let centre_distance = |col: usize, row: usize| {
        (col as f64 - free_cols as f64 / 2.0).abs() + (row as f64 - free_rows as f64 / 2.0).abs()
    };
    let mut best = (free_cols / 2, free_rows / 2);
    let mut best_score = f64::NEG_INFINITY;
    for row in 0..=free_rows {
        for col in 0..=free_cols {
            let score = sum(col, row);
            let better = score > best_score + 1e-9
                || ((score - best_score).abs() <= 1e-9
                    && centre_distance(col, row) < centre_distance(best.0, best.1));
            if better {
                best = (col, row);
                best_score = score;
            }
        }
    }
    let left = (region.left + best.0 as f64 * step).min(region.left + region.width - width);
    let top = (region.top + best.1 as f64 * step).min(region.top + region.height - height);
    (left.max(region.left), top.max(region.top))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat grey image with a detailed checkerboard patch at `(px, py)`.
    fn image_with_detail(width: u32, height: u32, px: u32, py: u32) -> Vec<u8> {
        let mut data = vec![128u8; (width * height * 3) as usize];
        for y in py..py + 60 {
            for x in px..px + 60 {
                let v = if (x / 4 + y / 4) % 2 == 0 { 0 } else { 255 };
                let at = ((y * width + x) * 3) as usize;
                data[at..at + 3].copy_from_slice(&[v, v, v]);
            }
        }
        data
    }

    fn frame(data: &mut [u8], width: u32, height: u32) -> Frame<'_> {
        Frame {
            data,
            width,
            height,
            has_alpha: false,
            full_height: height,
            top: 0,
        }
    }

    fn whole(width: u32, height: u32) -> Rect {
        Rect {
            left: 0.0,
            top: 0.0,
            width: f64::from(width),
            height: f64::from(height),
        }
    }

    #[test]
    fn the_window_moves_to_the_detail() {
        // Detail at the right edge of a wide image: a square window goes right.
        let mut data = image_with_detail(800, 200, 700, 70);
        let (left, top) = best_window(&frame(&mut data, 800, 200), whole(800, 200), 200.0, 200.0);
        assert!((560.0..=600.0).contains(&left), "left {left}");
        assert_eq!(top, 0.0);
        // Detail near the top of a tall image: the window goes up.
        let mut data = image_with_detail(200, 800, 70, 20);
        let (left, top) = best_window(&frame(&mut data, 200, 800), whole(200, 800), 200.0, 200.0);
        assert_eq!(left, 0.0);
        assert!(top <= 20.0, "top {top}");
    }

    #[test]
    fn a_flat_image_keeps_the_centre() {
        let mut data = vec![90u8; 600 * 200 * 3];
        let (left, top) = best_window(&frame(&mut data, 600, 200), whole(600, 200), 200.0, 200.0);
        assert!((left - 200.0).abs() <= 5.0, "left {left}");
        assert_eq!(top, 0.0);
    }
}
