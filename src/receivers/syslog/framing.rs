//! Splitting a TCP byte stream into syslog messages (RFC 6587).
//!
//! The first byte of a connection picks its framing: a digit means octet counting
//! (`MSG-LEN SP SYSLOG-MSG`), anything else means non-transparent framing, one message
//! per line. Frames longer than the limit are truncated: the first `max` bytes are kept
//! and the rest is skipped, exactly by the count or up to the next line feed, so the
//! stream stays in step and the next message is read whole.

/// One message as it came off the wire, at most the configured size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The size the sender gave it; larger than `bytes.len()` when truncated.
    pub original_len: u64,
}

impl Frame {
    pub fn is_truncated(&self) -> bool {
        self.original_len > self.bytes.len() as u64
    }
}

/// The stream cannot be split into messages any more; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("expected an octet count at the start of a frame, found byte 0x{0:02x}")]
    ExpectedOctetCount(u8),
    #[error("the octet count has more than {MAX_COUNT_DIGITS} digits")]
    OctetCountTooLong,
    #[error("expected a space after the octet count, found byte 0x{0:02x}")]
    ExpectedSpace(u8),
    #[error("the connection ended inside an octet count")]
    EndedInOctetCount,
}

const MAX_COUNT_DIGITS: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    OctetCounted,
    LineFeed,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Between frames.
    Boundary,
    /// Reading MSG-LEN.
    Count { value: u64, digits: u32 },
    /// Reading an octet-counted message of `len` bytes, `remaining` still to come.
    Counted { len: u64, remaining: u64 },
    /// Reading a line; `len` bytes of it seen so far.
    Line { len: u64 },
}

/// A push decoder: feed it what each read returns, in any pieces.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message_bytes: usize,
    framing: Option<Framing>,
    state: State,
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new(max_message_bytes: usize) -> FrameDecoder {
        FrameDecoder {
            max_message_bytes,
            framing: None,
            state: State::Boundary,
            buf: Vec::new(),
        }
    }

    /// Consumes `input`, appending every frame it completes to `out`. After an error the
    /// decoder is unusable; frames completed before it are in `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Frame>) -> Result<(), FramingError> {
        while let Some(&first) = input.first() {
            match self.state {
                State::Boundary => {
                    let framing = *self.framing.get_or_insert(if first.is_ascii_digit() {
                        Framing::OctetCounted
                    } else {
                        Framing::LineFeed
                    });
                    self.state = match framing {
                        // Some senders end octet-counted frames with a line feed outside the
                        // count as well; it carries nothing, so it is skipped.
                        Framing::OctetCounted if matches!(first, b'\n' | b'\r' | b'\0') => {
                            input = &input[1..];
                            State::Boundary
                        }
                        Framing::OctetCounted if first.is_ascii_digit() => State::Count {
                            value: 0,
                            digits: 0,
                        },
                        Framing::OctetCounted => {
                            return Err(FramingError::ExpectedOctetCount(first));
                        }
                        Framing::LineFeed => State::Line { len: 0 },
                    };
                }
                State::Count { value, digits } => {
                    input = &input[1..];
                    self.state = match first {
                        b'0'..=b'9' if digits < MAX_COUNT_DIGITS => State::Count {
                            value: value * 10 + u64::from(first - b'0'),
                            digits: digits + 1,
                        },
                        b'0'..=b'9' => return Err(FramingError::OctetCountTooLong),
                        b' ' if value == 0 => State::Boundary,
                        b' ' => State::Counted {
                            len: value,
                            remaining: value,
                        },
                        other => return Err(FramingError::ExpectedSpace(other)),
                    };
                }
                State::Counted { len, remaining } => {
                    let take = input
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    self.keep(&input[..take]);
                    input = &input[take..];
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        out.push(self.take_frame(len));
                        State::Boundary
                    } else {
                        State::Counted { len, remaining }
                    };
                }
                State::Line { len } => match input.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.keep(&input[..end]);
                        input = &input[end + 1..];
                        let len = len + end as u64;
                        if len > 0 {
                            out.push(self.take_frame(len));
                        }
                        self.state = State::Boundary;
                    }
                    None => {
                        self.keep(input);
                        self.state = State::Line {
                            len: len + input.len() as u64,
                        };
                        input = &[];
                    }
                },
            }
        }
        Ok(())
    }

    /// The connection ended: a last line without its line feed is a message, an
    /// octet-counted message cut short is kept and marked truncated.
    pub fn finish(&mut self) -> Result<Option<Frame>, FramingError> {
        let state = std::mem::replace(&mut self.state, State::Boundary);
        match state {
            State::Boundary => Ok(None),
            State::Count { .. } => Err(FramingError::EndedInOctetCount),
            State::Counted { len, .. } => Ok(Some(self.take_frame(len))),
            State::Line { len } if len > 0 => Ok(Some(self.take_frame(len))),
            State::Line { .. } => Ok(None),
        }
    }

    /// Bytes read that belong to a frame not yet complete.
    pub fn pending_bytes(&self) -> u64 {
        match self.state {
            State::Boundary => 0,
            State::Count { digits, .. } => u64::from(digits),
            State::Counted { len, remaining } => len - remaining,
            State::Line { len } => len,
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = self.max_message_bytes.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take_frame(&mut self, original_len: u64) -> Frame {
        Frame {
            bytes: std::mem::take(&mut self.buf),
            original_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(bytes: &[u8]) -> Frame {
        Frame {
            bytes: bytes.to_vec(),
            original_len: bytes.len() as u64,
        }
    }

    /// Feeds the input in one piece and byte by byte; both must give the same frames.
    fn decode(input: &[u8], max: usize) -> (Vec<Frame>, Result<Option<Frame>, FramingError>) {
        let mut whole = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let fed = whole.feed(input, &mut frames);
        let end = fed.clone().and_then(|()| whole.finish());

        let mut bytewise = FrameDecoder::new(max);
        let mut frames_bytewise = Vec::new();
        let mut fed_bytewise = Ok(());
        for b in input {
            fed_bytewise = bytewise.feed(std::slice::from_ref(b), &mut frames_bytewise);
            if fed_bytewise.is_err() {
                break;
            }
        }
        let end_bytewise = fed_bytewise.and_then(|()| bytewise.finish());
        assert_eq!(
            frames, frames_bytewise,
            "byte-by-byte feeding split differently"
        );
        assert_eq!(end, end_bytewise);
        (frames, end)
    }

    #[test]
    fn line_feed_framing_splits_lines_and_skips_empty_ones() {
        let (frames, end) = decode(b"<13>one\n\n<13>two\r\n<13>three", 1024);
        assert_eq!(frames, vec![frame(b"<13>one"), frame(b"<13>two\r")]);
        assert_eq!(end, Ok(Some(frame(b"<13>three"))));
    }

    #[test]
    fn octet_counting_with_the_line_feed_inside_the_count_as_rsyslog_sends_it() {
        // "<13>a\n" is 6 bytes, "<14>b c\n" is 8.
        let (frames, end) = decode(b"6 <13>a\n8 <14>b c\n", 1024);
        assert_eq!(frames, vec![frame(b"<13>a\n"), frame(b"<14>b c\n")]);
        assert_eq!(end, Ok(None));
    }

    #[test]
    fn octet_counting_keeps_line_feeds_inside_a_message_and_skips_those_between() {
        let (frames, _) = decode(b"11 <13>a\nb\nc d\n\r\n4 <9>x", 1024);
        assert_eq!(frames, vec![frame(b"<13>a\nb\nc d"), frame(b"<9>x")]);
    }

    #[test]
    fn oversize_octet_counted_frame_is_truncated_and_the_next_frame_read_whole() {
        let (frames, _) = decode(b"12 <13>abcdefgh3 <1>", 6);
        assert_eq!(
            frames,
            vec![
                Frame {
                    bytes: b"<13>ab".to_vec(),
                    original_len: 12
                },
                frame(b"<1>")
            ]
        );
        assert!(frames[0].is_truncated());
        assert!(!frames[1].is_truncated());
    }

    #[test]
    fn oversize_line_is_truncated_up_to_the_next_line_feed() {
        let (frames, end) = decode(b"<13>abcdefgh\n<1>x\n<2>longer", 6);
        assert_eq!(
            frames,
            vec![
                Frame {
                    bytes: b"<13>ab".to_vec(),
                    original_len: 12
                },
                frame(b"<1>x")
            ]
        );
        assert_eq!(
            end,
            Ok(Some(Frame {
                bytes: b"<2>lon".to_vec(),
                original_len: 9
            }))
        );
    }

    #[test]
    fn connection_ending_inside_a_counted_frame_keeps_it_marked_truncated() {
        let (frames, end) = decode(b"10 <13>abc", 1024);
        assert!(frames.is_empty());
        let last = end.unwrap().unwrap();
        assert_eq!(
            last,
            Frame {
                bytes: b"<13>abc".to_vec(),
                original_len: 10
            }
        );
        assert!(last.is_truncated());
        assert_eq!(
            decode(b"3 <1>12", 1024).1,
            Err(FramingError::EndedInOctetCount)
        );
    }

    #[test]
    fn broken_octet_framing_is_an_error_after_the_good_frames() {
        let (frames, end) = decode(b"3 <1>x <2>", 1024);
        assert_eq!(frames, vec![frame(b"<1>")]);
        assert_eq!(end, Err(FramingError::ExpectedOctetCount(b'x')));
        assert_eq!(
            decode(b"12x", 1024).1,
            Err(FramingError::ExpectedSpace(b'x'))
        );
        assert_eq!(
            decode(b"12345678901 ", 1024).1,
            Err(FramingError::OctetCountTooLong)
        );
    }

    #[test]
    fn zero_octet_count_is_an_empty_frame_and_skipped() {
        let (frames, _) = decode(b"0 3 <1>", 1024);
        assert_eq!(frames, vec![frame(b"<1>")]);
    }

    #[test]
    fn pending_bytes_counts_the_incomplete_frame() {
        let mut d = FrameDecoder::new(4);
        let mut out = Vec::new();
        d.feed(b"<13>abcdef", &mut out).unwrap();
        assert_eq!(d.pending_bytes(), 10);
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_pieces_never_exceed_the_limit_and_split_alike(
            input in proptest::collection::vec(any::<u8>(), 0..400),
            cut in 0usize..400,
            max in 1usize..64,
        ) {
            let mut whole = FrameDecoder::new(max);
            let mut frames = Vec::new();
            let whole_result = whole.feed(&input, &mut frames);

            let cut = cut.min(input.len());
            let mut split = FrameDecoder::new(max);
            let mut frames_split = Vec::new();
            let split_result = split.feed(&input[..cut], &mut frames_split)
                .and_then(|()| split.feed(&input[cut..], &mut frames_split));

            prop_assert_eq!(&frames, &frames_split);
            prop_assert_eq!(whole_result.is_ok(), split_result.is_ok());
            for f in &frames {
                prop_assert!(f.bytes.len() <= max);
                prop_assert!(f.original_len >= f.bytes.len() as u64);
            }
        }

        #[test]
        fn line_framing_agrees_with_splitting_on_line_feeds(
            lines in proptest::collection::vec("[^\n]{0,40}", 1..10),
        ) {
            // Starting every line with `<` picks line-feed framing for the connection.
            let text: String = lines.iter().map(|l| format!("<{l}\n")).collect();
            let (frames, end) = decode(text.as_bytes(), 1 << 16);
            let expected: Vec<Frame> = lines.iter().map(|l| frame(format!("<{l}").as_bytes())).collect();
            prop_assert_eq!(frames, expected);
            prop_assert_eq!(end, Ok(None));
        }

        #[test]
        fn octet_framing_agrees_with_the_lengths_it_was_built_from(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..60), 1..10),
        ) {
            let mut stream = Vec::new();
            for m in &messages {
                stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
                stream.extend_from_slice(m);
            }
            let (frames, end) = decode(&stream, 1 << 16);
            prop_assert_eq!(frames, messages.iter().map(|m| frame(m)).collect::<Vec<_>>());
            prop_assert_eq!(end, Ok(None));
        }
    }
}
