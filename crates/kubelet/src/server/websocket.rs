//! The server side of WebSocket (RFC 6455) as far as the Kubernetes channel protocols need
//! it: the handshake answer, reading the client's (masked) frames into whole messages, and
//! writing unmasked binary, pong and close frames.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest message accepted from a client (stdin chunks and resize events are small).
pub const MAX_MESSAGE: usize = 16 << 20;

/// The `Sec-WebSocket-Accept` answer to a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A binary (or text) message.
    Data(Vec<u8>),
    /// A ping, to be answered with its payload.
    Ping(Vec<u8>),
    /// The client closes.
    Close,
}

/// Reads the next message, joining fragments; pongs are skipped.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Message> {
    let mut data: Vec<u8> = Vec::new();
    loop {
        let mut head = [0u8; 2];
        r.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => u64::from(r.read_u16().await?),
            127 => r.read_u64().await?,
            n => u64::from(n),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|l| data.len() + l <= MAX_MESSAGE)
            .ok_or_else(|| std::io::Error::other("websocket message too large"))?;
        let mut mask = [0u8; 4];
        if masked {
            r.read_exact(&mut mask).await?;
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        match opcode {
            0x8 => return Ok(Message::Close),
            0x9 => return Ok(Message::Ping(payload)),
            0xA => continue,
            0x0..=0x2 => {
                data.extend_from_slice(&payload);
                if fin {
                    return Ok(Message::Data(data));
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "websocket opcode {other} is not supported"
                )))
            }
        }
    }
}

/// One unmasked frame (server to client).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Writes a binary message of `channel` followed by `data`.
pub async fn write_channel<W: AsyncWrite + Unpin>(
    w: &mut W,
    channel: u8,
    data: &[u8],
) -> std::io::Result<()> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    w.write_all(&frame(0x2, &payload)).await?;
    w.flush().await
}

/// Writes a normal-closure close frame.
pub async fn write_close<W: AsyncWrite + Unpin>(w: &mut W) -> std::io::Result<()> {
    w.write_all(&frame(0x8, &1000u16.to_be_bytes())).await?;
    w.flush().await
}

/// Answers a ping.
pub async fn write_pong<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&frame(0xA, payload)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn fragments_join_and_control_frames_are_told_apart() {
        let big = vec![7u8; 300];
        let mut wire = client_frame(false, 0x2, b"\x00he");
        wire.extend(client_frame(true, 0x0, b"llo"));
        wire.extend(client_frame(true, 0xA, b""));
        wire.extend(client_frame(true, 0x9, b"p"));
        wire.extend(client_frame(true, 0x2, &big));
        wire.extend(client_frame(true, 0x8, b""));
        let mut r = wire.as_slice();
        assert_eq!(
            read_message(&mut r).await.ok(),
            Some(Message::Data(b"\x00hello".to_vec()))
        );
        // The pong is skipped.
        assert_eq!(
            read_message(&mut r).await.ok(),
            Some(Message::Ping(b"p".to_vec()))
        );
        assert_eq!(read_message(&mut r).await.ok(), Some(Message::Data(big)));
        assert_eq!(read_message(&mut r).await.ok(), Some(Message::Close));
        assert!(read_message(&mut r).await.is_err(), "nothing more");
    }

    #[test]
    fn server_frames_are_unmasked_with_the_right_length_form() {
        assert_eq!(frame(0x2, b"\x01hi"), b"\x82\x03\x01hi");
        let f = frame(0x2, &[0u8; 200]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 200]);
        let f = frame(0x2, &vec![0u8; 70_000]);
        assert_eq!(f[1], 127);
        assert_eq!(f.len(), 70_000 + 10);
    }
}
