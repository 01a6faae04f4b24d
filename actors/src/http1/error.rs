//! Errors produced while parsing or decoding HTTP/1.x messages, each mapped
//! to the status code a proxy should answer a client with.

/// An HTTP/1.x parsing or framing error.
///
/// For requests, [`Http1Error::status`] is the response to send the client.
/// For upstream responses every variant means "bad gateway" (502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// The head exceeds [`crate::http1::Limits::max_head_bytes`] (431).
    #[error("message head too large")]
    HeadTooLarge,
    /// The head has more header fields than allowed (431).
    #[error("too many header fields")]
    TooManyHeaders,
    /// The head is syntactically invalid (400).
    #[error("malformed message: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// Content-Length / Transfer-Encoding are invalid or ambiguous (400).
    #[error("bad message framing: {reason}")]
    BadFraming {
        /// What was wrong.
        reason: &'static str,
    },
    /// An HTTP/1.1 request has no Host header (400).
    #[error("missing Host header")]
    MissingHost,
    /// A request has more than one Host header (400).
    #[error("duplicate Host header")]
    DuplicateHost,
    /// The authority of an absolute-form target differs from Host (400).
    #[error("request-target authority does not match Host")]
    HostMismatch,
    /// A well-formed HTTP version other than 1.0 / 1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A feature this proxy does not implement (501).
    #[error("not implemented: {reason}")]
    NotImplemented {
        /// What is not supported.
        reason: &'static str,
    },
    /// Invalid chunked transfer coding (400).
    #[error("bad chunk: {reason}")]
    BadChunk {
        /// What was wrong.
        reason: &'static str,
    },
    /// The chunked trailer section exceeds its limit (400).
    #[error("trailer section too large")]
    TrailersTooLarge,
    /// A chunked body grew past the body limit set with
    /// [`crate::http1::ChunkedDecoder::set_max_body`] (413).
    #[error("body too large")]
    BodyTooLarge,
}

impl Http1Error {
    /// The HTTP status code to answer a client with for this error.
    pub fn status(&self) -> u16 {
        match self {
            Http1Error::HeadTooLarge | Http1Error::TooManyHeaders => 431,
            Http1Error::UnsupportedVersion => 505,
            Http1Error::NotImplemented { .. } => 501,
            Http1Error::BodyTooLarge => 413,
            Http1Error::Malformed { .. }
            | Http1Error::BadFraming { .. }
            | Http1Error::MissingHost
            | Http1Error::DuplicateHost
            | Http1Error::HostMismatch
            | Http1Error::BadChunk { .. }
            | Http1Error::TrailersTooLarge => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        const CASES: &[(&str, Http1Error, u16)] = &[
            ("head too large", Http1Error::HeadTooLarge, 431),
            ("too many headers", Http1Error::TooManyHeaders, 431),
            ("malformed", Http1Error::Malformed { reason: "x" }, 400),
            ("bad framing", Http1Error::BadFraming { reason: "x" }, 400),
            ("missing host", Http1Error::MissingHost, 400),
            ("duplicate host", Http1Error::DuplicateHost, 400),
            ("host mismatch", Http1Error::HostMismatch, 400),
            ("version", Http1Error::UnsupportedVersion, 505),
            ("not implemented", Http1Error::NotImplemented { reason: "x" }, 501),
            ("bad chunk", Http1Error::BadChunk { reason: "x" }, 400),
            ("trailers", Http1Error::TrailersTooLarge, 400),
            ("body too large", Http1Error::BodyTooLarge, 413),
        ];
        for (name, err, status) in CASES {
            assert_eq!(err.status(), *status, "{name}");
            assert!(!err.to_string().is_empty(), "{name}: display");
        }
    }
}
