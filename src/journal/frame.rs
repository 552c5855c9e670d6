//! One record on disk: `[u32 crc32c][u32 len][u64 index][payload]`, little-endian.
//!
//! The CRC covers everything after itself (length, index and payload), so a frame checks
//! on its own, wherever it sits: that is what lets a scan find the next good frame after
//! a damaged region, and the index inside it tells exactly which records the gap lost.

use std::ops::Range;

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 16;

/// Appends the frame of `payload`, the record `index`, to `out`.
///
/// The caller has checked that `payload` fits the `u32` length field.
pub(crate) fn encode(out: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A frame header as read, not yet trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub crc: u32,
    pub len: u32,
    pub index: u64,
}

impl Header {
    /// Reads the header at the start of `bytes`, if there are enough of them.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let header: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let [c0, c1, c2, c3, l0, l1, l2, l3, rest @ ..] = *header;
        Some(Header {
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            index: u64::from_le_bytes(rest),
        })
    }

    /// Header and payload together.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether `frame` (this header's whole frame) carries the CRC in the header.
    pub fn checks(&self, frame: &[u8]) -> bool {
        frame.len() as u64 == self.frame_len() && crc32c::crc32c(&frame[4..]) == self.crc
    }
}

/// The index and length of the frame at `pos` in `bytes`, if it is whole, its CRC checks
/// and its index is in `indexes`.
///
/// A length running past the end of `bytes` makes the frame invalid: nothing is ever
/// sized from an unchecked length.
pub(crate) fn valid_frame_at(
    bytes: &[u8],
    pos: usize,
    indexes: &Range<u64>,
) -> Option<(u64, usize)> {
    let header = Header::parse(bytes.get(pos..)?)?;
    if !indexes.contains(&header.index) {
        return None;
    }
    let end = pos.checked_add(usize::try_from(header.frame_len()).ok()?)?;
    let frame = bytes.get(pos..end)?;
    header.checks(frame).then_some((header.index, frame.len()))
}

/// The first position at or after `from` holding a valid frame with its index in
/// `indexes`, and that index.
pub(crate) fn next_valid_frame(
    bytes: &[u8],
    from: usize,
    indexes: &Range<u64>,
) -> Option<(usize, u64)> {
    let last_start = bytes.len().checked_sub(HEADER_LEN)?;
    (from..=last_start)
        .find_map(|pos| valid_frame_at(bytes, pos, indexes).map(|(index, _)| (pos, index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Range<u64> = 0..u64::MAX;

    #[test]
    fn crc32c_matches_rfc_3720_vectors() {
        // RFC 3720, B.4: 32 bytes of zeros, and 32 bytes of 0xFF.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        // The common check value of CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn frame_layout_is_crc_len_index_payload_little_endian() {
        let mut out = vec![0xEE]; // frames append after whatever is already there
        encode(&mut out, 0x0102_0304_0506_0708, b"abc");
        let body = [
            3, 0, 0, 0, // len
            8, 7, 6, 5, 4, 3, 2, 1, // index
            b'a', b'b', b'c',
        ];
        let crc = crc32c::crc32c(&body).to_le_bytes();
        let mut expected = vec![0xEE];
        expected.extend_from_slice(&crc);
        expected.extend_from_slice(&body);
        assert_eq!(out, expected);
    }

    #[test]
    fn valid_frame_at_accepts_a_whole_frame_and_rejects_damage() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, b"payload");
        assert_eq!(valid_frame_at(&bytes, 0, &ALL), Some((7, HEADER_LEN + 7)));
        assert_eq!(
            valid_frame_at(&bytes, 0, &(8..9)),
            None,
            "index outside the wanted range"
        );
        for cut in 0..bytes.len() {
            assert_eq!(valid_frame_at(&bytes[..cut], 0, &ALL), None, "cut at {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(valid_frame_at(&flipped, 0, &ALL), None, "bit {bit}");
        }
    }

    #[test]
    fn a_huge_length_field_is_invalid_not_an_allocation() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 1, b"x");
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(valid_frame_at(&bytes, 0, &ALL), None);
    }

    #[test]
    fn next_valid_frame_skips_garbage() {
        let mut bytes = vec![0u8; 5];
        bytes.extend_from_slice(b"garbage!");
        let at = bytes.len();
        encode(&mut bytes, 42, b"good");
        assert_eq!(next_valid_frame(&bytes, 0, &ALL), Some((at, 42)));
        assert_eq!(next_valid_frame(&bytes, at + 1, &ALL), None);
        assert_eq!(next_valid_frame(&bytes, 0, &(0..42)), None);
        assert_eq!(next_valid_frame(&[], 0, &ALL), None);
    }
}
