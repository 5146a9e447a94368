//! Animated GIFs of rendered episodes (`rein eval --gif`), encoded with the `gif` crate.

use anyhow::{Context, Result};
use std::path::Path;

/// Encodes RGB frames as an animated GIF (`delay_cs`: hundredths of a second per frame). The
/// renders use few colours, so frames are indexed against an exact palette; beyond 256
/// colours the `gif` crate's quantiser takes over.
pub fn write_gif(path: &Path, frames: &[rein_core::RgbFrame], delay_cs: u16) -> Result<()> {
    use std::collections::HashMap;
    let first = frames.first().context("no frames to write")?;
    let (w, h) = (first.width as u16, first.height as u16);
    let mut palette: HashMap<[u8; 3], u8> = HashMap::new();
    let mut exact = true;
    'scan: for f in frames {
        for px in f.data.chunks_exact(3) {
            let key = [px[0], px[1], px[2]];
            if !palette.contains_key(&key) {
                if palette.len() == 256 {
                    exact = false;
                    break 'scan;
                }
                let idx = palette.len() as u8;
                palette.insert(key, idx);
            }
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut flat = vec![0u8; palette.len() * 3];
    for (c, &i) in &palette {
        flat[i as usize * 3..i as usize * 3 + 3].copy_from_slice(c);
    }
    let global: &[u8] = if exact { &flat } else { &[] };
    let mut enc =
        gif::Encoder::new(std::io::BufWriter::new(file), w, h, global).context("starting GIF")?;
    enc.set_repeat(gif::Repeat::Infinite)
        .context("GIF repeat")?;
    for f in frames {
        let mut frame = if exact {
            let idx: Vec<u8> = f
                .data
                .chunks_exact(3)
                .map(|p| palette[&[p[0], p[1], p[2]]])
                .collect();
            gif::Frame::from_indexed_pixels(w, h, idx, None)
        } else {
            gif::Frame::from_rgb_speed(w, h, &f.data, 10)
        };
        frame.delay = delay_cs;
        enc.write_frame(&frame).context("writing GIF frame")?;
    }
    Ok(())
}
