//! The client side of SPDY/3.1 as far as the Kubernetes remote command protocol needs it:
//! opening streams (SYN_STREAM with a `streamtype` header), sending data (with FIN to
//! half-close), and reading the server's frames. Header blocks are sent as a zlib stream of
//! stored deflate blocks, each block followed by a sync flush — valid for any zlib reader,
//! and one that does not need SPDY's compression dictionary; the server's header blocks (SYN_REPLY) are never needed, so they
//! are skipped without decoding.

use tokio::io::{AsyncRead, AsyncReadExt};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
/// The server answers a ping with the same frame.
pub const PING: u16 = 6;
const FLAG_FIN: u8 = 0x01;

/// What the server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Data on a stream; `fin` when the server will send no more on it.
    Data {
        /// The stream.
        stream: u32,
        /// Its bytes.
        data: Vec<u8>,
        /// Half-closed by the server.
        fin: bool,
    },
    /// A control frame (SYN_REPLY, SETTINGS, PING, GOAWAY, RST_STREAM, …): its type and
    /// payload.
    Control {
        /// The frame type.
        kind: u16,
        /// The raw payload.
        payload: Vec<u8>,
    },
}

/// The writing side's state: the header compression stream is one per connection.
#[derive(Default)]
pub struct Writer {
    zlib_started: bool,
}

impl Writer {
    /// A SYN_STREAM opening client stream `id` with the given headers.
    pub fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            block.extend_from_slice(&(name.len() as u32).to_be_bytes());
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(&(value.len() as u32).to_be_bytes());
            block.extend_from_slice(value.as_bytes());
        }
        let mut payload = Vec::new();
        payload.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes()); // associated stream
        payload.extend_from_slice(&[0, 0]); // priority, slot
        if !self.zlib_started {
            // zlib header: deflate with a 32 KiB window, no preset dictionary.
            payload.extend_from_slice(&[0x78, 0x01]);
            self.zlib_started = true;
        }
        for chunk in block.chunks(usize::from(u16::MAX)) {
            let len = chunk.len() as u16;
            payload.push(0x00); // a stored block, not the last
            payload.extend_from_slice(&len.to_le_bytes());
            payload.extend_from_slice(&(!len).to_le_bytes());
            payload.extend_from_slice(chunk);
        }
        // A sync flush (an empty stored block): Go's inflater hands out a block's bytes
        // only once the next block begins.
        payload.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        control(SYN_STREAM, 0, &payload)
    }
}

/// A control frame.
pub fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// Data frames carrying `data` on `stream` (split to SPDY's 24-bit length), the last with
/// FIN when `fin`.
pub fn data(stream: u32, data: &[u8], fin: bool) -> Vec<u8> {
    const MAX: usize = (1 << 24) - 1;
    let mut out = Vec::with_capacity(data.len() + 8);
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(MAX).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.push(if fin && i == last { FLAG_FIN } else { 0 });
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(chunk);
    }
    out
}

/// Reads the next frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    if head[0] & 0x80 != 0 {
        return Ok(Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            payload,
        });
    }
    Ok(Frame::Data {
        stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
        data: payload,
        fin: head[4] & FLAG_FIN != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn header_blocks_are_one_zlib_stream_any_reader_decodes() {
        let mut w = Writer::default();
        let a = w.syn_stream(1, &[("streamtype", "error")]);
        let b = w.syn_stream(3, &[("streamtype", "stdin")]);
        assert_eq!(&a[..4], &[0x80, 3, 0, 1], "SYN_STREAM, version 3");
        assert_eq!(
            u32::from_be_bytes([0, a[5], a[6], a[7]]) as usize,
            a.len() - 8
        );
        assert_eq!(&a[8..12], &1u32.to_be_bytes());
        // The two header blocks, joined, decode as one zlib stream.
        let mut stream = a[18..].to_vec();
        stream.extend_from_slice(&b[18..]);
        let mut out = Vec::new();
        let _ = flate2::read::ZlibDecoder::new(stream.as_slice()).read_to_end(&mut out);
        let mut expected = Vec::new();
        for (n, v) in [("streamtype", "error"), ("streamtype", "stdin")] {
            expected.extend_from_slice(&1u32.to_be_bytes());
            expected.extend_from_slice(&(n.len() as u32).to_be_bytes());
            expected.extend_from_slice(n.as_bytes());
            expected.extend_from_slice(&(v.len() as u32).to_be_bytes());
            expected.extend_from_slice(v.as_bytes());
        }
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn data_frames_round_trip_with_fin() {
        let wire = [data(5, b"hello", false), data(3, b"", true)].concat();
        let mut r = wire.as_slice();
        assert_eq!(
            read_frame(&mut r).await.ok(),
            Some(Frame::Data {
                stream: 5,
                data: b"hello".to_vec(),
                fin: false
            })
        );
        assert_eq!(
            read_frame(&mut r).await.ok(),
            Some(Frame::Data {
                stream: 3,
                data: vec![],
                fin: true
            })
        );
        let ping = control(PING, 0, &7u32.to_be_bytes());
        let mut r = ping.as_slice();
        assert_eq!(
            read_frame(&mut r).await.ok(),
            Some(Frame::Control {
                kind: PING,
                payload: 7u32.to_be_bytes().to_vec()
            })
        );
    }
}
