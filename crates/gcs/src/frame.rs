//! Bridge framing: a 16-byte little-endian header, then a UTF-8 JSON body.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | u32 | message type |
//! | 4 | u32 | total size, header included |
//! | 8 | u64 | message id (responses repeat the request's; notifications use 0) |

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::rpc::Rpc;

pub const HEADER_LEN: usize = 16;
/// The largest message the host accepts, as hcsshim enforces it; the guest sets no limit, so
/// this is the only bound on what a misbehaving guest can make the host allocate.
pub const MAX_MESSAGE_SIZE: u32 = 0x10000;

/// A message type: kind (request, response, notification) | category | RPC index << 8 | 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
    Notification,
}

impl MessageType {
    const KIND_MASK: u32 = 0xF000_0000;
    const REQUEST: u32 = 0x1000_0000;
    const RESPONSE: u32 = 0x2000_0000;
    const NOTIFY: u32 = 0x3000_0000;

    /// The container notification (exit and lifecycle events): `Notify | ComputeSystem | 1 << 8 | 1`.
    pub const CONTAINER_NOTIFICATION: MessageType = MessageType(0x3010_0101);

    pub fn request(rpc: Rpc) -> Self {
        Self(Self::REQUEST | rpc.id())
    }

    pub fn response(rpc: Rpc) -> Self {
        Self(Self::RESPONSE | rpc.id())
    }

    /// The type of the answer to this message: the same identifier with the response kind,
    /// whatever this one was (hcsshim's guest, internal/guest/prot `GetResponseIdentifier`).
    #[must_use]
    pub fn response_to(self) -> Self {
        Self(Self::RESPONSE | (self.0 & !Self::KIND_MASK))
    }

    pub fn kind(self) -> Option<MessageKind> {
        match self.0 & Self::KIND_MASK {
            Self::REQUEST => Some(MessageKind::Request),
            Self::RESPONSE => Some(MessageKind::Response),
            Self::NOTIFY => Some(MessageKind::Notification),
            _ => None,
        }
    }

    /// The RPC of a request or response.
    pub fn rpc(self) -> Option<Rpc> {
        match self.kind()? {
            MessageKind::Request | MessageKind::Response => Rpc::from_id(self.0 & !Self::KIND_MASK),
            MessageKind::Notification => None,
        }
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind(), self.rpc()) {
            (Some(kind), Some(rpc)) => write!(f, "{kind:?}({})", rpc.name()),
            _ if *self == Self::CONTAINER_NOTIFICATION => f.write_str("Notification(Container)"),
            _ => write!(f, "MessageType(0x{:08x})", self.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub message_type: MessageType,
    /// Total length, header included.
    pub size: u32,
    pub id: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.message_type.0.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.size.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.id.to_le_bytes());
        bytes
    }

    /// Reads a header and checks its size against `max_size` before anything is allocated.
    pub fn decode(bytes: &[u8; HEADER_LEN], max_size: u32) -> Result<Self, FrameError> {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[8..16]);
        let header = Self {
            message_type: MessageType(word(0)),
            size: word(4),
            id: u64::from_le_bytes(id),
        };
        if (header.size as usize) < HEADER_LEN {
            return Err(FrameError::TooSmall { size: header.size });
        }
        if header.size > max_size {
            return Err(FrameError::TooLarge {
                size: header.size,
                max: max_size,
            });
        }
        if header.message_type.kind().is_none() {
            return Err(FrameError::UnknownKind(header.message_type.0));
        }
        Ok(header)
    }

    pub fn body_len(&self) -> usize {
        self.size as usize - HEADER_LEN
    }
}

/// One message: its header fields and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub message_type: MessageType,
    pub id: u64,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("message size {size} is smaller than the 16-byte header")]
    TooSmall { size: u32 },
    #[error("message size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: u32, max: u32 },
    #[error("message type 0x{0:08x} is not a request, response or notification")]
    UnknownKind(u32),
    #[error("the stream ended inside a message")]
    Truncated,
    #[error("message body of {len} bytes does not fit a frame")]
    BodyTooLarge { len: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes one frame from the front of `buffer`: `Ok(None)` when more bytes are needed,
/// otherwise the frame and how many bytes it used. Pure, so it is what the fuzzer drives.
pub fn decode(buffer: &[u8], max_size: u32) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header_bytes) = buffer.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::decode(header_bytes, max_size)?;
    let total = header.size as usize;
    let Some(body) = buffer.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    Ok(Some((
        Frame {
            message_type: header.message_type,
            id: header.id,
            body: body.to_vec(),
        },
        total,
    )))
}

/// Reads the next frame. `Ok(None)` is a clean end of stream between frames; a stream that
/// ends inside a frame is [`FrameError::Truncated`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: u32,
) -> Result<Option<Frame>, FrameError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = reader.read(&mut header_bytes[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let header = Header::decode(&header_bytes, max_size)?;
    let mut body = vec![0u8; header.body_len()];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(Frame {
        message_type: header.message_type,
        id: header.id,
        body,
    }))
}

/// Encodes a frame into one buffer, so it reaches the stream in a single write.
pub fn encode(message_type: MessageType, id: u64, body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let size = u32::try_from(HEADER_LEN + body.len())
        .map_err(|_| FrameError::BodyTooLarge { len: body.len() })?;
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(
        &Header {
            message_type,
            size,
            id,
        }
        .encode(),
    );
    bytes.extend_from_slice(body);
    Ok(bytes)
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message_type: MessageType,
    id: u64,
    body: &[u8],
) -> Result<(), FrameError> {
    writer.write_all(&encode(message_type, id, body)?).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_types_match_hcsshim() {
        assert_eq!(MessageType::request(Rpc::Create).0, 0x1010_0101);
        assert_eq!(MessageType::response(Rpc::Create).0, 0x2010_0101);
        assert_eq!(MessageType::request(Rpc::NegotiateProtocol).0, 0x1010_0B01);
        assert_eq!(
            MessageType::request(Rpc::ModifyServiceSettings).0,
            0x1020_0101
        );
        assert_eq!(
            MessageType::request(Rpc::ExecuteProcess).rpc(),
            Some(Rpc::ExecuteProcess)
        );
        assert_eq!(
            MessageType::CONTAINER_NOTIFICATION.kind(),
            Some(MessageKind::Notification)
        );
        assert_eq!(
            format!("{:?}", MessageType::response(Rpc::Start)),
            "Response(Start)"
        );
    }

    #[test]
    fn header_is_little_endian_and_counts_itself() {
        let frame = encode(
            MessageType::request(Rpc::Start),
            0x0102_0304_0506_0708,
            b"{}\n",
        )
        .unwrap();
        assert_eq!(
            frame[..16],
            [
                0x01, 0x02, 0x10, 0x10, 19, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01
            ]
        );
        let (decoded, used) = decode(&frame, MAX_MESSAGE_SIZE).unwrap().unwrap();
        assert_eq!(used, 19);
        assert_eq!(decoded.body, b"{}\n");
        assert_eq!(decoded.id, 0x0102_0304_0506_0708);
    }

    #[test]
    fn partial_input_asks_for_more() {
        let frame = encode(MessageType::request(Rpc::Start), 1, b"{}").unwrap();
        for cut in 0..frame.len() {
            assert!(
                decode(&frame[..cut], MAX_MESSAGE_SIZE).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_errors_not_allocations() {
        let mut small = Header {
            message_type: MessageType::request(Rpc::Start),
            size: 15,
            id: 1,
        }
        .encode();
        assert!(matches!(
            decode(&small, MAX_MESSAGE_SIZE),
            Err(FrameError::TooSmall { size: 15 })
        ));
        small[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&small, MAX_MESSAGE_SIZE),
            Err(FrameError::TooLarge { .. })
        ));
        let unknown = Header {
            message_type: MessageType(0x4010_0101),
            size: 16,
            id: 1,
        }
        .encode();
        assert!(matches!(
            decode(&unknown, MAX_MESSAGE_SIZE),
            Err(FrameError::UnknownKind(_))
        ));
    }

    #[tokio::test]
    async fn reader_tells_clean_end_from_truncation() {
        let frame = encode(MessageType::request(Rpc::Start), 7, b"{\"a\":1}").unwrap();
        let mut whole: &[u8] = &frame;
        assert!(
            read_frame(&mut whole, MAX_MESSAGE_SIZE)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            read_frame(&mut whole, MAX_MESSAGE_SIZE)
                .await
                .unwrap()
                .is_none()
        );
        let mut cut: &[u8] = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut cut, MAX_MESSAGE_SIZE).await,
            Err(FrameError::Truncated)
        ));
        let mut cut_header: &[u8] = &frame[..5];
        assert!(matches!(
            read_frame(&mut cut_header, MAX_MESSAGE_SIZE).await,
            Err(FrameError::Truncated)
        ));
    }
}
