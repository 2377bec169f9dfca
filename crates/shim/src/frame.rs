//! Framing: `[u32 LE length][u8 kind][payload]`. A control frame's payload is one JSON
//! message; a data frame's is `[u64 LE session][u8 stream][bytes]`, so a session's stdio
//! crosses raw, without an encoding step. The length counts kind and payload.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most one frame may hold. A control message is small; data is sent in chunks below
/// this. A peer that announces more is refused before anything is allocated.
pub const MAX_FRAME: usize = 1024 * 1024;
/// The largest data chunk a sender puts in one frame.
pub const MAX_CHUNK: usize = 64 * 1024;

const KIND_CONTROL: u8 = 0;
const KIND_DATA: u8 = 1;

/// Which stream of a session data belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

impl Stream {
    fn byte(self) -> u8 {
        match self {
            Self::Stdin => 0,
            Self::Stdout => 1,
            Self::Stderr => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Stdin),
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Control(serde_json::Value),
    Data {
        session: u64,
        stream: Stream,
        bytes: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer sent a frame of {0} bytes; at most {MAX_FRAME} are allowed")]
    TooLarge(usize),
    #[error("the peer sent a malformed frame: {0}")]
    Malformed(String),
}

pub async fn write_frame(
    writer: &mut (impl AsyncWrite + Unpin),
    frame: &Frame,
) -> Result<(), FrameError> {
    let mut body = Vec::new();
    match frame {
        Frame::Control(message) => {
            body.push(KIND_CONTROL);
            serde_json::to_writer(&mut body, message)
                .map_err(|e| FrameError::Malformed(e.to_string()))?;
        }
        Frame::Data {
            session,
            stream,
            bytes,
        } => {
            body.push(KIND_DATA);
            body.extend_from_slice(&session.to_le_bytes());
            body.push(stream.byte());
            body.extend_from_slice(bytes);
        }
    }
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    // The length fits: it is at most MAX_FRAME.
    let length = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    writer.write_all(&length.to_le_bytes()).await?;
    writer.write_all(&body).await?;
    writer.flush().await?;
    Ok(())
}

/// The next frame, or `None` when the peer closed the connection between frames.
pub async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<Frame>, FrameError> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(FrameError::TooLarge(length));
    }
    if length == 0 {
        return Err(FrameError::Malformed("an empty frame".into()));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    match body[0] {
        KIND_CONTROL => serde_json::from_slice(&body[1..])
            .map(|message| Some(Frame::Control(message)))
            .map_err(|e| FrameError::Malformed(format!("a control message that is not JSON: {e}"))),
        KIND_DATA if body.len() >= 10 => {
            let mut session = [0u8; 8];
            session.copy_from_slice(&body[1..9]);
            let stream = Stream::from_byte(body[9])
                .ok_or_else(|| FrameError::Malformed(format!("unknown stream {}", body[9])))?;
            Ok(Some(Frame::Data {
                session: u64::from_le_bytes(session),
                stream,
                bytes: body[10..].to_vec(),
            }))
        }
        kind => Err(FrameError::Malformed(format!("unknown frame kind {kind}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_unread() {
        let (mut a, mut b) = tokio::io::duplex(4 * MAX_FRAME);
        let frames = [
            Frame::Control(serde_json::json!({"type": "hello", "protocol": 1})),
            Frame::Data {
                session: 7,
                stream: Stream::Stderr,
                bytes: b"\0\xffraw".to_vec(),
            },
        ];
        for frame in &frames {
            write_frame(&mut a, frame).await.unwrap();
        }
        for frame in &frames {
            assert_eq!(read_frame(&mut b).await.unwrap().as_ref(), Some(frame));
        }
        let announced = u32::try_from(MAX_FRAME + 1).unwrap();
        a.write_all(&announced.to_le_bytes()).await.unwrap();
        assert!(matches!(
            read_frame(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));
        drop(a);
        let (c, mut d) = tokio::io::duplex(64);
        drop(c);
        assert!(read_frame(&mut d).await.unwrap().is_none(), "a clean close");
    }
}
