//! ngx_http_gunzip_filter_module: a gzipped response is decompressed for a
//! client that does not take gzip (`gunzip on`), so a backend, or a
//! `gzip_static always` location, may keep only compressed copies.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::config::model::Gzip;
use crate::observe::error_log;

use super::body::{BoxError, ResponseBody};
use super::exchange::Exchange;

/// What one `inflate()` call room is grown by, as nginx's gunzip buffers.
const OUTPUT_STEP: usize = 32 * 1024;

/// The gunzip header filter: with `gunzip on` and a response whose only
/// content coding is gzip, the response varies on Accept-Encoding; for a
/// client that does not take gzip it loses Content-Encoding,
/// Content-Length and Accept-Ranges, its ETag turns weak, and its body is
/// decompressed as it streams.
pub fn filter(
    ex: &mut Exchange,
    g: &Gzip,
    mut response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if !g.gunzip {
        return response;
    }
    // nginx takes exactly "gzip" (any case): a list of codings is left as is.
    let gzipped = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzipped {
        return response;
    }
    ex.gzip_vary.store(true, Ordering::Relaxed);
    if super::gzip::gzip_ok(g, ex, response.headers()) {
        return response;
    }
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_ENCODING);
    clear_length(headers);
    super::gzip::weak_etag(headers);
    // A response without a body (HEAD, 204, 304) has nothing to inflate,
    // and an empty input is not a gzip stream.
    let bodyless = ex.method == Method::HEAD
        || matches!(
            response.status(),
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    if bodyless {
        return response;
    }
    let context = super::proxy::log_context(ex, None);
    let connection = ex.conn.id;
    response.map(|body| GunzipBody::new(body, connection, context).boxed_unsync())
}

/// `ngx_http_clear_content_length` and `ngx_http_clear_accept_ranges`.
fn clear_length(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
}

/// The gzip stream of a response body could not be inflated; the response
/// is cut short, as nginx cuts it.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    /// The input is not gzip (zlib's Z_DATA_ERROR).
    #[error("inflate() failed: {flush}, -3")]
    Corrupt {
        /// zlib's flush mode of the failing call (0 mid-body, 4 at its end).
        flush: u8,
    },
    /// The body ended inside a gzip member (zlib's Z_BUF_ERROR).
    #[error("inflate() returned -5 on response end")]
    Truncated,
}

/// The decompressed body: each piece of the gzipped body is inflated as it
/// comes; one member ending and another starting (`cat a.gz b.gz`) goes on
/// with a fresh decompressor, as nginx's `inflateReset`.
struct GunzipBody {
    inner: ResponseBody,
    z: Decompress,
    /// The current member is complete (so the body may end here).
    member_done: bool,
    done: bool,
    connection: u64,
    /// The error log's `, client: ..., request: ...` tail.
    context: String,
}

impl GunzipBody {
    fn new(inner: ResponseBody, connection: u64, context: String) -> GunzipBody {
        GunzipBody {
            inner,
            z: Decompress::new_gzip(15),
            member_done: false,
            done: false,
            connection,
            context,
        }
    }

    /// Inflates all of `input` onto `out`.
    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), GunzipError> {
        while !input.is_empty() {
            if self.member_done {
                // Another member follows the one that ended.
                self.z = Decompress::new_gzip(15);
                self.member_done = false;
            }
            if out.capacity() - out.len() < OUTPUT_STEP / 4 {
                out.reserve(OUTPUT_STEP);
            }
            let (before, produced) = (self.z.total_in(), out.len());
            let status = self
                .z
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| GunzipError::Corrupt { flush: 0 })?;
            let used = usize::try_from(self.z.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            match status {
                Status::StreamEnd => self.member_done = true,
                // Input left, room to write, and nothing moved: zlib is
                // stuck on this input.
                _ if used == 0 && out.len() == produced => {
                    return Err(GunzipError::Corrupt { flush: 0 })
                }
                Status::Ok | Status::BufError => {}
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: GunzipError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        error_log::error(Some(self.connection), &format!("{e}{}", self.context));
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl Body for GunzipBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        // Trailers pass on as they came.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let mut out = Vec::new();
                    if let Err(e) = this.inflate(&data, &mut out) {
                        return this.fail(e);
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    if !this.member_done {
                        return this.fail(GunzipError::Truncated);
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    async fn inflate_all(input: Vec<u8>) -> Result<Bytes, BoxError> {
        let body = GunzipBody::new(super::super::body::full(input), 0, String::new());
        body.collect().await.map(|c| c.to_bytes())
    }

    #[tokio::test]
    async fn members_one_after_another_inflate_as_one_body() {
        let text = b"X000XXXXXX".repeat(500);
        let mut input = gzip(&text);
        input.extend(gzip(&text));
        let out = inflate_all(input).await.unwrap();
        assert_eq!(out.len(), text.len() * 2);
        assert_eq!(&out[..text.len()], &text[..]);
        assert_eq!(&out[text.len()..], &text[..]);
    }

    #[tokio::test]
    async fn an_empty_member_is_an_empty_body() {
        assert!(inflate_all(gzip(b"")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn garbage_and_a_cut_member_are_errors() {
        let e = inflate_all(b"not compressed at all".to_vec()).await;
        assert_eq!(e.unwrap_err().to_string(), "inflate() failed: 0, -3");
        let mut cut = gzip(&b"abc".repeat(1000));
        cut.truncate(cut.len() - 4);
        let e = inflate_all(cut).await;
        assert_eq!(
            e.unwrap_err().to_string(),
            "inflate() returned -5 on response end"
        );
        assert_eq!(
            inflate_all(Vec::new()).await.unwrap_err().to_string(),
            "inflate() returned -5 on response end"
        );
    }

    #[tokio::test]
    async fn a_large_body_comes_out_whole() {
        // Far more output than one round of output room.
        let text: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(inflate_all(gzip(&text)).await.unwrap(), text);
    }
}
