//! JSON bodies for the answers hyper writes by itself.
//!
//! When a request cannot even be parsed (a bad method or header, a URI over hyper's
//! 65,534 bytes, a head over its buffer), hyper answers 400, 414 or 431 on its own, with
//! an empty body, and closes the connection; the node's handlers never see the request.
//! Every other error of the node is `{"error", "message"}` JSON, and a client should not
//! need a second parser for these three. [`JsonParseErrors`] wraps a connection and
//! replaces exactly those bodiless answers, as they are written, by the same answer with
//! a JSON body. Answers the node's handlers write always have a body, so they are never
//! touched.
//!
//! A client that opens with HTTP/2's preface (`PRI * HTTP/2.0`) gets nothing at all from
//! hyper, which only closes the connection; here it gets `505` with a JSON body saying
//! the port speaks HTTP/1.1, and hyper never sees the preface.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose automatic parse-error answers get JSON bodies.
pub struct JsonParseErrors<IO> {
    inner: IO,
    /// Our answer being written in place of hyper's: the bytes, how many are out, and
    /// how long hyper's was (what it is told was written once ours is out).
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// Where the connection's first bytes stand: not read yet, read (an HTTP/1.1
    /// client), or an HTTP/2 preface being answered (our answer, how much is out).
    opening: Opening,
}

enum Opening {
    Unread,
    Http1,
    Http2(Vec<u8>, usize),
}

/// HTTP/2's connection preface starts with this.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl<IO> JsonParseErrors<IO> {
    pub fn new(inner: IO) -> Self {
        JsonParseErrors {
            inner,
            replacing: None,
            opening: Opening::Unread,
        }
    }
}

/// Whether a connection's first bytes are (the start of) HTTP/2's preface.
fn is_h2_preface(first: &[u8]) -> bool {
    first.len() >= 3 && H2_PREFACE.starts_with(&first[..first.len().min(H2_PREFACE.len())])
}

fn h2_answer() -> Vec<u8> {
    let body = "{\"error\":\"http_version_not_supported\",\"message\":\"this port speaks \
                HTTP/1.1 only (HTTP/2 was asked for)\"}\n";
    format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Our answer for `buf` when it is exactly one bodiless automatic answer of hyper's.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    if !head.ends_with("\r\n\r\n") || head.matches("\r\n\r\n").count() != 1 {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (status, code, message) = match rest.get(..4)? {
        "400 " => (
            "400 Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1 (method, URI, version or a header)",
        ),
        "414 " => (
            "414 URI Too Long",
            "uri_too_long",
            "the request's URI is longer than the server accepts (65,534 bytes)",
        ),
        "431 " => (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request's head (request line and headers) is larger than the server accepts",
        ),
        _ => return None,
    };
    let body = format!("{{\"error\":\"{code}\",\"message\":\"{message}\"}}\n");
    let date = head
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n{date}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for JsonParseErrors<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Opening::Unread = this.opening {
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            if !is_h2_preface(&buf.filled()[start..]) {
                this.opening = Opening::Http1;
                return Poll::Ready(Ok(()));
            }
            // Hyper must not see the preface: it would close without a word.
            buf.set_filled(start);
            this.opening = Opening::Http2(h2_answer(), 0);
        }
        let Opening::Http2(answer, done) = &mut this.opening else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        while *done < answer.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // The end of the stream, as far as hyper knows: it closes the connection.
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match replacement(buf) {
                Some(ours) => this.replacing = Some((ours, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let (ours, done, theirs) = this.replacing.as_mut().expect("set above");
        while *done < ours.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &ours[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        let theirs = *theirs;
        this.replacing = None;
        Poll::Ready(Ok(theirs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each answer's head as one flat buffer, which is
    // what `replacement` recognises.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http2_preface_is_recognised_from_its_first_bytes() {
        assert!(is_h2_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(is_h2_preface(b"PRI * HT"));
        assert!(!is_h2_preface(b"PR"));
        assert!(!is_h2_preface(b"POST /kv/a HTTP/1.1\r\n"));
        assert!(!is_h2_preface(b"PRI /x HTTP/1.1\r\n"));
        let a = String::from_utf8(h2_answer()).unwrap();
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 505 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "http_version_not_supported");
    }

    #[test]
    fn only_bodiless_parse_error_answers_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sat, 28 Nov 2026 07:00:00 GMT\r\n\r\n";
        let ours = String::from_utf8(replacement(hyper_431).unwrap()).unwrap();
        let (head, body) = ours.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("date: Sat, 28 Nov 2026 07:00:00 GMT"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "headers_too_large");

        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(replacement(hyper_414).unwrap())
            .unwrap()
            .contains("\"uri_too_long\""));

        // The node's own answers carry a body, and other statuses are never touched.
        let own_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":1}\n";
        assert!(replacement(own_400).is_none());
        let own_head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n";
        assert!(replacement(own_head).is_none());
        assert!(replacement(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"{\"HTTP/1.1 431 \"}").is_none());
    }
}
