//! Motion-JPEG frames from webcams: many UVC cameras send each frame as a
//! JPEG *without* Huffman tables (no DHT segment), relying on the standard
//! tables of ITU-T T.81 Annex K.3 (the AVI MJPEG convention). Such a frame is
//! not a valid JPEG on its own. libjpeg-turbo decodes it with those tables
//! anyway; [`with_huffman_tables`] inserts them before the first
//! start-of-scan for other decoders, and [`has_huffman_tables`] tells
//! the frames that need them apart (counted as `camera.repaired`). A decoder may
//! also report success on a truncated frame (grey-filled bottom): the marker
//! walk of [`crate::decode::check_jpeg_complete`] refuses frames that end
//! before their end-of-image marker.

use std::borrow::Cow;

use crate::decode::{decode_bytes_into, DecodeError, DecodeLimits, DecodeTarget, Decoded};

/// Table K.3: luminance DC, code lengths 1..=16 (number of codes of each length).
const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
/// Table K.3: luminance DC values (difference categories).
const LUMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/// Table K.4: chrominance DC code lengths.
const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
/// Table K.4: chrominance DC values.
const CHROMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/// Table K.5: luminance AC code lengths.
const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
/// Table K.5: luminance AC values (run/size).
#[rustfmt::skip]
const LUMA_AC_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
/// Table K.6: chrominance AC code lengths.
const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
/// Table K.6: chrominance AC values.
#[rustfmt::skip]
const CHROMA_AC_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// The DHT segment (marker `FFC4`, T.81 B.2.4.2) holding the four tables of
/// Annex K.3: class/destination `0x00` luminance DC, `0x01` chrominance DC,
/// `0x10` luminance AC, `0x11` chrominance AC.
pub fn standard_dht_segment() -> Vec<u8> {
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &LUMA_DC_BITS, &LUMA_DC_VALUES),
        (0x01, &CHROMA_DC_BITS, &CHROMA_DC_VALUES),
        (0x10, &LUMA_AC_BITS, &LUMA_AC_VALUES),
        (0x11, &CHROMA_AC_BITS, &CHROMA_AC_VALUES),
    ];
    let len: usize = 2 + tables
        .iter()
        .map(|(_, b, v)| 1 + b.len() + v.len())
        .sum::<usize>();
    let mut seg = Vec::with_capacity(2 + len);
    seg.extend([0xFF, 0xC4]);
    seg.extend((len as u16).to_be_bytes());
    for (tc_th, bits, values) in tables {
        seg.push(tc_th);
        seg.extend_from_slice(bits);
        seg.extend_from_slice(values);
    }
    seg
}

/// Where the segments before the first start-of-scan are, and whether one of
/// them is a DHT: `Some((has_dht, sos_offset))`, or `None` when the data is
/// not a JPEG or ends before a start-of-scan.
fn scan_header(b: &[u8]) -> Option<(bool, usize)> {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    let mut dht = false;
    loop {
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            0xDA => return Some((dht, start)),
            0xD9 => return None,
            0xD0..=0xD8 | 0x01 => continue,
            0xC4 => dht = true,
            _ => {}
        }
        let len = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize;
        if len < 2 {
            return None;
        }
        i += len;
    }
}

/// Whether the JPEG in `b` defines Huffman tables (a DHT segment) before its
/// first scan.
pub fn has_huffman_tables(b: &[u8]) -> bool {
    matches!(scan_header(b), Some((true, _)))
}

/// The frame as a complete JPEG: unchanged (borrowed) if it has a DHT
/// segment or is not a JPEG at all (the decoder then says what is wrong),
/// else a copy with the standard tables ([`standard_dht_segment`]) inserted
/// just before the first start-of-scan.
pub fn with_huffman_tables(b: &[u8]) -> Cow<'_, [u8]> {
    match scan_header(b) {
        Some((false, sos)) => {
            let dht = standard_dht_segment();
            let mut out = Vec::with_capacity(b.len() + dht.len());
            out.extend_from_slice(&b[..sos]);
            out.extend_from_slice(&dht);
            out.extend_from_slice(&b[sos..]);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(b),
    }
}

/// Decodes one MJPEG frame into RGB8: inserts the standard Huffman tables if
/// the frame has none, refuses frames that end before their end-of-image
/// marker ([`DecodeError::TruncatedJpeg`], counted as `truncated`), then
/// decodes within `limits`, shrunk while decoding as far as `target` allows.
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_mjpeg(
    b: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Decoded, DecodeError> {
    decode_mjpeg_into(b, limits, target, Vec::new())
}

/// As [`decode_mjpeg`], into `buf` (an earlier frame's pixel buffer, reused).
/// libjpeg-turbo, the only JPEG decoder, decodes frames without Huffman
/// tables with the standard ones itself, so no copy with the tables
/// inserted is made ([`with_huffman_tables`] gives one, for other tools).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_mjpeg_into(
    b: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
    buf: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    decode_bytes_into(b, limits, target, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::io::Cursor;

    /// A real baseline JPEG from the `image` crate's encoder (which writes
    /// the Annex K tables as four DHT segments).
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) * 3) as u8,
            ])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    /// The segments of `b` before the first scan: (marker, whole segment).
    fn segments(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 2;
        while b[i + 1] != 0xDA {
            let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            out.push((b[i + 1], b[i..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }

    /// `b` without its DHT segments, as a DHT-less webcam would send it.
    fn strip_dht(b: &[u8]) -> Vec<u8> {
        let mut out = b[..2].to_vec();
        let mut i = 2;
        while b[i + 1] != 0xDA {
            let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            if b[i + 1] != 0xC4 {
                out.extend_from_slice(&b[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&b[i..]);
        out
    }

    /// The tables in a DHT payload, by class/destination byte (T.81 B.2.4.2).
    fn tables(mut p: &[u8]) -> std::collections::BTreeMap<u8, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        while !p.is_empty() {
            let n: usize = p[1..17].iter().map(|&b| usize::from(b)).sum();
            out.insert(p[0], p[1..17 + n].to_vec());
            p = &p[17 + n..];
        }
        out
    }

    #[test]
    fn standard_tables_equal_the_encoders_tables() {
        // The `image` encoder writes the Annex K tables, one DHT segment each:
        // ours hold the same four tables, byte for byte.
        let j = jpeg(32, 16);
        let mut theirs = std::collections::BTreeMap::new();
        for (m, seg) in segments(&j) {
            if m == 0xC4 {
                theirs.extend(tables(&seg[4..]));
            }
        }
        let ours = standard_dht_segment();
        assert_eq!(
            u16::from_be_bytes([ours[2], ours[3]]) as usize,
            ours.len() - 2
        );
        let ours = tables(&ours[4..]);
        assert_eq!(
            ours.keys().copied().collect::<Vec<_>>(),
            [0x00, 0x01, 0x10, 0x11]
        );
        assert_eq!(ours, theirs);
        // Each table's code count equals its number of values.
        for (bits, n) in [
            (LUMA_DC_BITS, 12),
            (CHROMA_DC_BITS, 12),
            (LUMA_AC_BITS, 162),
            (CHROMA_AC_BITS, 162),
        ] {
            assert_eq!(bits.iter().map(|&b| usize::from(b)).sum::<usize>(), n);
        }
    }

    #[test]
    fn frame_with_tables_is_left_alone() {
        let j = jpeg(48, 32);
        assert!(has_huffman_tables(&j));
        assert!(matches!(with_huffman_tables(&j), Cow::Borrowed(_)));
    }

    #[test]
    fn frame_without_tables_gets_them_and_decodes_to_the_same_pixels() {
        // Odd size: partial MCUs at the right and bottom edges.
        let j = jpeg(61, 37);
        let stripped = strip_dht(&j);
        assert!(stripped.len() < j.len() - 400, "the DHT segments are gone");
        assert!(!has_huffman_tables(&stripped));
        let fixed = with_huffman_tables(&stripped);
        assert!(has_huffman_tables(&fixed));
        // Tables go right before the scan, after the frame header.
        let segs: Vec<u8> = segments(&fixed).into_iter().map(|(m, _)| m).collect();
        assert_eq!(segs.last(), Some(&0xC4), "{segs:x?}");
        let limits = DecodeLimits::default();
        let want = crate::decode::decode_bytes(&j, &limits).unwrap();
        let got = decode_mjpeg(&stripped, &limits, &DecodeTarget::full())
            .unwrap()
            .image;
        assert_eq!(got.dimensions(), (61, 37));
        assert_eq!(got.as_raw(), want.as_raw(), "identical pixels");
    }

    #[test]
    fn truncated_frames_are_refused_with_or_without_tables() {
        let limits = DecodeLimits::default();
        let j = jpeg(64, 48);
        let stripped = strip_dht(&j);
        for b in [&j, &stripped] {
            for cut in [b.len() - 2, b.len() * 2 / 3, b.len() / 2] {
                let e = decode_mjpeg(&b[..cut], &limits, &DecodeTarget::full()).unwrap_err();
                assert_eq!(e.reason(), "truncated", "cut at {cut} of {}: {e}", b.len());
            }
        }
        // A buffer of zeros (a frame the driver never filled) and garbage.
        assert!(decode_mjpeg(&[0u8; 4096], &limits, &DecodeTarget::full()).is_err());
        assert!(decode_mjpeg(&[0xFF, 0xD8, 0xFF], &limits, &DecodeTarget::full()).is_err());
        // Padding after EOI (bytesused rounded up by some drivers) is fine.
        let mut padded = stripped.clone();
        padded.extend([0u8; 100]);
        assert_eq!(
            decode_mjpeg(&padded, &limits, &DecodeTarget::full())
                .unwrap()
                .image
                .dimensions(),
            (64, 48)
        );
    }
}
