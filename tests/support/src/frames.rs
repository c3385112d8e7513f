//! gRPC's length-prefixed message framing, for tests that speak HTTP/2 or
//! HTTP/1.1 (gRPC-Web) by hand: a flag byte (compressed, or in gRPC-Web
//! `0x80` for the trailers), a 4-byte big-endian length, the payload.

/// One frame: its flag byte and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Whether the compressed flag is set.
    pub fn compressed(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Whether this is a gRPC-Web trailers frame.
    pub fn trailers(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// `payload` as a frame, with the compressed flag when `compressed`.
pub fn frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![u8::from(compressed)];
    frame.extend((payload.len() as u32).to_be_bytes());
    frame.extend(payload);
    frame
}

/// An uncompressed frame of `message`.
pub fn message_frame(message: &impl prost::Message) -> Vec<u8> {
    frame(false, &message.encode_to_vec())
}

/// The frames of a whole body, in order (a cut last frame is an error).
pub fn frames(mut body: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a frame header cut short");
        let len = u32::from_be_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
        assert!(body.len() >= 5 + len, "a frame cut short");
        frames.push(Frame {
            flags: body[0],
            payload: body[5..5 + len].to_vec(),
        });
        body = &body[5 + len..];
    }
    frames
}
