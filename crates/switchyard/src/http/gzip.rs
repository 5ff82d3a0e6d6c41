//! ngx_http_gzip_module as a response filter: which responses are
//! compressed (nginx's header filter and `ngx_http_gzip_ok`), the header
//! changes that go with it, and a body that compresses as it streams.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::config::model::{Gzip, Proxied, Settings};

use super::body::{BoxError, ResponseBody};
use super::exchange::Exchange;

/// nginx's gzip header: deflate, no flags, no time, no extra flags, Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// The byte counts behind `$gzip_ratio`, filled when the body ends.
#[derive(Debug, Default)]
pub struct Counts {
    zin: AtomicU64,
    zout: AtomicU64,
}

impl Counts {
    /// `$gzip_ratio`: uncompressed over compressed bytes with two
    /// decimals, rounded as nginx rounds; none until the body is done.
    pub fn ratio(&self) -> Option<String> {
        let zin = self.zin.load(Ordering::Relaxed);
        let zout = self.zout.load(Ordering::Relaxed);
        if zout == 0 {
            return None;
        }
        let mut int = zin / zout;
        let mut frac = (zin * 100 / zout) % 100;
        if (zin * 1000 / zout) % 10 > 4 {
            frac += 1;
            if frac > 99 {
                int += 1;
                frac = 0;
            }
        }
        Some(format!("{int}.{frac:02}"))
    }
}

/// The filter: compresses `response` when nginx would, with its header
/// changes (Content-Encoding, no Content-Length nor Accept-Ranges, a weak
/// ETag, and `Vary: Accept-Encoding` with `gzip_vary`).
pub fn filter(
    ex: &mut Exchange,
    settings: &Settings,
    response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    let g = &settings.gzip;
    // gunzip's header filter runs before gzip's, as in nginx's filter chain.
    let mut response = super::gunzip::filter(ex, g, response);
    if g.enable && eligible(g, response.headers(), response.status().as_u16()) {
        ex.gzip_vary.store(true, Ordering::Relaxed);
        if gzip_ok(g, ex, response.headers()) {
            response = compress(ex, g, response);
        }
    }
    // nginx's header filter writes one `Vary: Accept-Encoding` for
    // whichever module found that the response depends on it.
    if g.vary && ex.gzip_vary.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    response
}

/// The compressing half of the filter: the header changes and the body.
fn compress(
    ex: &mut Exchange,
    g: &Gzip,
    mut response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    weak_etag(headers);
    let counts = Arc::new(Counts::default());
    ex.gzip = Some(counts.clone());
    response.map(|body| GzipBody::new(body, g.level, counts).boxed_unsync())
}

/// nginx's header filter's first test: gzip may apply to this response.
fn eligible(g: &Gzip, headers: &HeaderMap, status: u16) -> bool {
    if !matches!(status, 200 | 403 | 404) {
        return false;
    }
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.is_empty())
    {
        return false;
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| ::h1::content_length(v.as_bytes()).ok());
    if length.is_some_and(|n| n < g.min_length) {
        return false;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            let v = v.as_bytes();
            let end = v
                .iter()
                .position(|&b| b == b';' || b == b' ')
                .unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).to_ascii_lowercase()
        })
        .unwrap_or_default();
    match &g.types {
        crate::config::model::GzipTypes::Any => true,
        types => !media.is_empty() && types.matches(&media),
    }
}

/// `ngx_http_gzip_ok`: the client takes gzip, and `gzip_disable`,
/// `gzip_http_version` and (for a request with `Via`) `gzip_proxied` let it
/// (`response` is the headers so far, for `gzip_proxied`).
pub(crate) fn gzip_ok(g: &Gzip, ex: &Exchange, response: &HeaderMap) -> bool {
    let Some(ae) = ex.headers.get(header::ACCEPT_ENCODING) else {
        return false;
    };
    let ae = ae.as_bytes();
    if ae.len() < 4 || (!ae.starts_with(b"gzip,") && !accept_encoding_has_gzip(ae)) {
        return false;
    }
    let agent = ex.headers.get(header::USER_AGENT).map(|v| v.as_bytes());
    if g.disable_msie6 && agent.is_some_and(is_msie6) {
        return false;
    }
    if g.http_version_11 && matches!(ex.protocol, "HTTP/1.0" | "HTTP/0.9") {
        return false;
    }
    if ex.headers.contains_key(header::VIA) && !proxied_ok(g.proxied, ex, response) {
        return false;
    }
    if let Some(agent) = agent {
        let agent = String::from_utf8_lossy(agent);
        if g.disable.iter().any(|re| re.is_match(&agent)) {
            return false;
        }
    }
    true
}

/// `gzip_proxied` for a request that came through a proxy.
fn proxied_ok(p: u16, ex: &Exchange, response: &HeaderMap) -> bool {
    if p & Proxied::OFF != 0 {
        return false;
    }
    if p & Proxied::ANY != 0 {
        return true;
    }
    if p & Proxied::AUTH != 0 && ex.headers.contains_key(header::AUTHORIZATION) {
        return true;
    }
    if let Some(expires) = response.get(header::EXPIRES) {
        if p & Proxied::EXPIRED == 0 {
            return false;
        }
        let time = |v: &HeaderValue| {
            v.to_str()
                .ok()
                .and_then(|t| httpdate::parse_http_date(t).ok())
        };
        let Some(expires) = time(expires) else {
            return false;
        };
        let date = match response.get(header::DATE) {
            Some(d) => match time(d) {
                Some(d) => d,
                None => return false,
            },
            None => std::time::SystemTime::now(),
        };
        return expires < date;
    }
    if response.contains_key(header::CACHE_CONTROL) {
        let has = |token: &str| {
            response.get_all(header::CACHE_CONTROL).iter().any(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .any(|part| {
                        let name = part.split(['=', ';']).next().unwrap_or("").trim();
                        name.eq_ignore_ascii_case(token)
                    })
            })
        };
        return (p & Proxied::NO_CACHE != 0 && has("no-cache"))
            || (p & Proxied::NO_STORE != 0 && has("no-store"))
            || (p & Proxied::PRIVATE != 0 && has("private"));
    }
    if p & Proxied::NO_LAST_MODIFIED != 0 && response.contains_key(header::LAST_MODIFIED) {
        return false;
    }
    if p & Proxied::NO_ETAG != 0 && response.contains_key(header::ETAG) {
        return false;
    }
    true
}

/// `ngx_http_gzip_accept_encoding`: a `gzip` token whose quality, if
/// given, is not zero.
fn accept_encoding_has_gzip(ae: &[u8]) -> bool {
    let lower = ae.to_ascii_lowercase();
    let mut start = 0;
    let mut p = loop {
        let Some(i) = find(&lower[start..], b"gzip").map(|i| i + start) else {
            return false;
        };
        if i == 0 || matches!(lower[i - 1], b',' | b' ') {
            break i + 4;
        }
        start = i + 4;
    };
    let next = |p: &mut usize| {
        let c = lower.get(*p).copied();
        *p += 1;
        c
    };
    loop {
        match next(&mut p) {
            None | Some(b',') => return true,
            Some(b';') => break,
            Some(b' ') => continue,
            Some(_) => return false,
        }
    }
    loop {
        match next(&mut p) {
            None => return true,
            Some(b'q') => break,
            Some(b' ') => continue,
            Some(_) => return false,
        }
    }
    if p + 2 > lower.len() || lower[p] != b'=' {
        return false;
    }
    quantity(&lower[p + 1..]) != 0
}

/// `ngx_http_gzip_quantity`: a quality value times 1000 (0 when invalid).
fn quantity(text: &[u8]) -> u32 {
    let mut it = text.iter().copied();
    let q = match it.next() {
        Some(c @ (b'0' | b'1')) => u32::from(c - b'0') * 100,
        _ => return 0,
    };
    match it.next() {
        None | Some(b',' | b' ') => return q,
        Some(b'.') => {}
        Some(_) => return 0,
    }
    let (mut q, mut n) = (q, 0);
    for c in it {
        match c {
            b',' | b' ' => break,
            b'0'..=b'9' => {
                q += u32::from(c - b'0');
                n += 1;
            }
            _ => return 0,
        }
    }
    if q > 100 || n > 3 {
        0
    } else {
        q
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// nginx's `msie6` test of User-Agent: MSIE 4.x, 5.x, or 6.x without SV1,
/// and not Opera.
fn is_msie6(agent: &[u8]) -> bool {
    let Some(i) = find(agent, b"MSIE ") else {
        return false;
    };
    if i + 7 >= agent.len() || find(agent, b"Opera").is_some() {
        return false;
    }
    let m = &agent[i..];
    if m[6] != b'.' {
        return false;
    }
    match m[5] {
        b'4' | b'5' => true,
        b'6' => find(&m[8..], b"SV1").is_none(),
        _ => false,
    }
}

/// `ngx_http_weak_etag`: a strong ETag becomes weak; one that is neither
/// is removed.
pub(crate) fn weak_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(header::ETAG) else {
        return;
    };
    let v = etag.as_bytes();
    if v.len() > 2 && v.starts_with(b"W/") {
        return;
    }
    if !v.starts_with(b"\"") {
        headers.remove(header::ETAG);
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(v);
    match HeaderValue::from_bytes(&weak) {
        Ok(w) => {
            headers.insert(header::ETAG, w);
        }
        Err(_) => {
            headers.remove(header::ETAG);
        }
    }
}

/// A deflate stream failed (a bug in the compressor, never the input).
#[derive(Debug, thiserror::Error)]
#[error("deflate() failed: {0}")]
pub struct DeflateError(#[from] flate2::CompressError);

/// The compressed body: each piece of the inner body is compressed as it
/// comes; when the inner body has nothing ready, what was compressed so
/// far is flushed out (so a streamed response keeps streaming).
struct GzipBody {
    inner: ResponseBody,
    z: Compress,
    crc: Crc,
    header_sent: bool,
    /// Input went in since the last output.
    unflushed: bool,
    done: bool,
    counts: Arc<Counts>,
}

impl GzipBody {
    fn new(inner: ResponseBody, level: u32, counts: Arc<Counts>) -> GzipBody {
        GzipBody {
            inner,
            // Raw deflate: the gzip header and trailer are nginx's, written here.
            z: Compress::new(Compression::new(level), false),
            crc: Crc::new(),
            header_sent: false,
            unflushed: false,
            done: false,
            counts,
        }
    }

    fn start(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.header_sent {
            self.header_sent = true;
            out.extend_from_slice(&HEADER);
        }
        out
    }

    /// Runs the compressor over `input` with `flush`, appending to `out`.
    fn deflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        flush: FlushCompress,
    ) -> Result<(), DeflateError> {
        // Each round consumes input or fills the spare room; it ends when
        // the input is gone and the compressor left room unused.
        loop {
            out.reserve(16 * 1024);
            let before = self.z.total_in();
            let status = self.z.compress_vec(input, out, flush)?;
            let used = usize::try_from(self.z.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            let room_left = out.capacity() > out.len();
            match status {
                Status::StreamEnd => return Ok(()),
                Status::BufError if input.is_empty() => return Ok(()),
                _ if input.is_empty() && room_left && flush != FlushCompress::Finish => {
                    return Ok(())
                }
                _ => {}
            }
        }
    }

    fn frame(out: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}

impl Body for GzipBody {
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
                    // Trailers are not passed on a compressed body (nginx
                    // has none to pass).
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    this.crc.update(&data);
                    this.unflushed = true;
                    let mut out = this.start();
                    this.deflate(&data, &mut out, FlushCompress::None)?;
                    if !out.is_empty() {
                        return Self::frame(out);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    let mut out = this.start();
                    this.deflate(&[], &mut out, FlushCompress::Finish)?;
                    out.extend_from_slice(&this.crc.sum().to_le_bytes());
                    out.extend_from_slice(&this.crc.amount().to_le_bytes());
                    this.counts.zin.store(this.z.total_in(), Ordering::Relaxed);
                    this.counts.zout.store(
                        HEADER.len() as u64 + this.z.total_out() + 8,
                        Ordering::Relaxed,
                    );
                    return Self::frame(out);
                }
                Poll::Pending => {
                    if !this.unflushed {
                        return Poll::Pending;
                    }
                    this.unflushed = false;
                    let mut out = this.start();
                    this.deflate(&[], &mut out, FlushCompress::Sync)?;
                    return if out.is_empty() {
                        Poll::Pending
                    } else {
                        Self::frame(out)
                    };
                }
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

    #[test]
    fn accept_encoding_as_nginx_reads_it() {
        for yes in [
            "gzip",
            "deflate, gzip",
            "gzip;q=0.5",
            "x, gzip ; q=1",
            "GZIP",
            "br,gzip;q=0.001",
        ] {
            assert!(accept_encoding_has_gzip(yes.as_bytes()), "{yes}");
        }
        for no in [
            "deflate",
            "xgzip",
            "gzip;q=0",
            "gzip;q=0.000",
            "gzipx",
            "gzip;q=1.5",
            "gzip;q=0.0001",
        ] {
            assert!(!accept_encoding_has_gzip(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn msie6_as_nginx_tells_it() {
        assert!(is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        ));
        assert!(is_msie6(b"Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)"));
        assert!(!is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"
        ));
        assert!(!is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)"
        ));
        assert!(!is_msie6(b"Opera/9 (compatible; MSIE 6.0; X)"));
    }

    #[test]
    fn etags_become_weak_or_go() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        weak_etag(&mut h);
        assert_eq!(h[header::ETAG], "W/\"abc\"");
        weak_etag(&mut h);
        assert_eq!(h[header::ETAG], "W/\"abc\"");
        h.insert(header::ETAG, HeaderValue::from_static("abc"));
        weak_etag(&mut h);
        assert!(h.get(header::ETAG).is_none());
    }

    #[test]
    fn ratio_rounds_as_nginx() {
        let c = Counts::default();
        assert_eq!(c.ratio(), None);
        c.zin.store(2125, Ordering::Relaxed);
        c.zout.store(1000, Ordering::Relaxed);
        assert_eq!(c.ratio().as_deref(), Some("2.13"));
        c.zin.store(1999, Ordering::Relaxed);
        assert_eq!(c.ratio().as_deref(), Some("2.00"));
    }

    #[tokio::test]
    async fn the_body_is_a_gzip_stream_of_the_input() {
        use std::io::Read;
        let text = "hello gzip ".repeat(1000);
        let counts = Arc::new(Counts::default());
        let body = GzipBody::new(super::super::body::full(text.clone()), 6, counts.clone());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..10], &HEADER);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        assert_eq!(counts.zin.load(Ordering::Relaxed), text.len() as u64);
        assert_eq!(counts.zout.load(Ordering::Relaxed), bytes.len() as u64);
    }
}
