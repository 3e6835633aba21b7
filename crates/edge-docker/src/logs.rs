//! A container's log stream as an [`AsyncRead`].

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::container::LogOutput;
use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

type LogStream = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The output of one module (stdout and stderr interleaved as Docker recorded them), as bytes.
///
/// With `follow` it stays open until the container stops or the reader is dropped; dropping it
/// closes the connection to Docker.
pub struct DockerLogs {
    stream: LogStream,
    pending: Bytes,
}

impl DockerLogs {
    pub(crate) fn new(
        stream: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
    ) -> DockerLogs {
        DockerLogs {
            stream: Box::pin(stream),
            pending: Bytes::new(),
        }
    }
}

impl fmt::Debug for DockerLogs {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DockerLogs")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for DockerLogs {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let length = self.pending.len().min(buffer.remaining());
                buffer.put_slice(&self.pending[..length]);
                self.pending.advance(length);
                return Poll::Ready(Ok(()));
            }
            match self.stream.as_mut().poll_next(context) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Err(io::Error::other(error)));
                }
                Poll::Ready(Some(Ok(output))) => {
                    self.pending = match output {
                        LogOutput::StdOut { message }
                        | LogOutput::StdErr { message }
                        | LogOutput::Console { message } => message,
                        LogOutput::StdIn { .. } => Bytes::new(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn reads_every_stream_in_order_through_small_buffers() {
        let items = vec![
            Ok(LogOutput::StdOut {
                message: Bytes::from_static(b"out 1\n"),
            }),
            Ok(LogOutput::StdIn {
                message: Bytes::from_static(b"ignored"),
            }),
            Ok(LogOutput::StdErr {
                message: Bytes::from_static(b"err 1\n"),
            }),
            Ok(LogOutput::Console {
                message: Bytes::new(),
            }),
            Ok(LogOutput::Console {
                message: Bytes::from_static(b"tty\n"),
            }),
        ];
        let mut logs = DockerLogs::new(futures_util::stream::iter(items));
        let mut collected = Vec::new();
        let mut buffer = [0_u8; 4];
        loop {
            let read = logs.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            collected.extend_from_slice(&buffer[..read]);
        }
        assert_eq!(String::from_utf8(collected).unwrap(), "out 1\nerr 1\ntty\n");
    }

    #[tokio::test]
    async fn a_broken_stream_is_an_error() {
        let items = vec![Err(bollard::errors::Error::RequestTimeoutError)];
        let mut logs = DockerLogs::new(futures_util::stream::iter(items));
        let mut text = String::new();
        let error = logs.read_to_string(&mut text).await.unwrap_err();
        assert_eq!(error.to_string(), "Timeout error");
    }
}
