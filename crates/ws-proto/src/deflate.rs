//! permessage-deflate (RFC 7692): the configuration, the negotiation for both roles (sections
//! 5 and 7.1) and, with the `deflate` feature, the compression itself (section 7.2, in
//! [`codec`]).
//!
//! The negotiation is plain text work and always compiled: a server reads the offers with
//! [`negotiate_deflate`] and answers with [`DeflateAgreement::response`]; a client sends
//! [`DeflateConfig::offer`] and checks the answer with [`validate_deflate_response`]. Both end
//! with the agreed [`DeflateParams`], which [`Connection::set_deflate`] takes.
//!
//! Window bits: zlib (and zlib-rs) cannot compress raw deflate with a 256-byte window (8
//! bits), so this end never promises to: a server declines an offer that asks for
//! `server_max_window_bits=8` (section 7.1.2.1 lets it) and takes the next offer; a client
//! fails a response that imposes `client_max_window_bits=8` (section 7.1.2.2). Configured
//! values are clamped to 9..=15. Receiving, any window from 8 to 15 is inflated.
//!
//! [`Connection::set_deflate`]: crate::Connection::set_deflate

use alloc::string::String;
use alloc::vec::Vec;

use crate::{ExtensionOffer, HandshakeError};

#[cfg(feature = "deflate")]
pub(crate) mod codec;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The smallest window this end compresses with (zlib refuses 8 for raw deflate).
const MIN_WINDOW_BITS: u8 = 9;

/// What this end wants from permessage-deflate, for either role: start from
/// [`DeflateConfig::default`] (tuned for a server with many sockets) and change what you need.
///
/// For a **server** it is the policy applied to the client's offers: `server_*` is how the
/// server compresses, `client_*` what it asks of the client. For a **client** it is the offer:
/// `server_*` is what it asks of the server, `client_*` how it compresses.
///
/// ```
/// use ws_proto::DeflateConfig;
/// let config = DeflateConfig::default().server_no_context_takeover(false).min_size(256);
/// assert!(config.enabled && !config.server_no_context_takeover);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Negotiate permessage-deflate at all.
    pub enabled: bool,
    /// The server compresses each message on its own (no LZ77 window kept between messages).
    /// On by default: an idle socket then holds no compressor, and one compressed broadcast
    /// frame can be shared by every socket (see `encode_compressed_frame`). A server turns it
    /// on in every answer; a client asks for it in its offer.
    pub server_no_context_takeover: bool,
    /// The client compresses each message on its own. A server asks for it in its answer when
    /// set (it then holds no inflater between messages), and accepts it whenever a client
    /// offers it; a client offers it when set.
    pub client_no_context_takeover: bool,
    /// Largest window (base-2 logarithm, 9..=15) the server compresses with.
    pub server_max_window_bits: u8,
    /// Largest window (9..=15) the client compresses with: a server asks for it when the
    /// client allows it (offers `client_max_window_bits`); a client limits itself to it.
    pub client_max_window_bits: u8,
    /// zlib compression level, 0..=9 (6, zlib's default).
    pub level: u8,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear), where
    /// compressing costs more CPU than the bytes it saves. Read by the sending side.
    pub min_size: usize,
    /// A server's bound on the compression state one connection keeps between messages, in
    /// bytes ([`DeflateParams::idle_memory`]): the compressor when the server keeps its
    /// context, the inflater when the client keeps its own. An offer whose agreement would
    /// keep more is tightened, not declined: the server drops its own context first (the
    /// larger part), then asks the client for `client_no_context_takeover`. `usize::MAX` (the
    /// default): no bound beyond what the other fields allow.
    pub max_idle_memory: usize,
}

impl Default for DeflateConfig {
    /// Enabled; no server context takeover; client context takeover allowed; 15-bit windows;
    /// level 6; messages under 64 bytes sent plain.
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 6,
            min_size: 64,
            max_idle_memory: usize::MAX,
        }
    }
}

impl DeflateConfig {
    /// Sets [`enabled`](DeflateConfig::enabled).
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Sets [`server_no_context_takeover`](DeflateConfig::server_no_context_takeover).
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`client_no_context_takeover`](DeflateConfig::client_no_context_takeover).
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets [`server_max_window_bits`](DeflateConfig::server_max_window_bits), clamped to 9..=15.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(MIN_WINDOW_BITS, 15);
        self
    }

    /// Sets [`client_max_window_bits`](DeflateConfig::client_max_window_bits), clamped to 9..=15.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(MIN_WINDOW_BITS, 15);
        self
    }

    /// Sets [`level`](DeflateConfig::level), at most 9.
    pub fn level(mut self, level: u8) -> Self {
        self.level = level.min(9);
        self
    }

    /// Sets [`min_size`](DeflateConfig::min_size).
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Sets [`max_idle_memory`](DeflateConfig::max_idle_memory).
    pub fn max_idle_memory(mut self, bytes: usize) -> Self {
        self.max_idle_memory = bytes;
        self
    }

    fn server_bits(&self) -> u8 {
        self.server_max_window_bits.clamp(MIN_WINDOW_BITS, 15)
    }

    fn client_bits(&self) -> u8 {
        self.client_max_window_bits.clamp(MIN_WINDOW_BITS, 15)
    }

    /// The client's `Sec-WebSocket-Extensions` value for this configuration (RFC 7692 section
    /// 7.1), or `None` when disabled. It always offers `client_max_window_bits`, so that a
    /// server may limit the client's window.
    ///
    /// ```
    /// use ws_proto::DeflateConfig;
    /// assert_eq!(
    ///     DeflateConfig::default().offer().unwrap(),
    ///     "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    /// );
    /// ```
    pub fn offer(&self) -> Option<String> {
        use core::fmt::Write as _;
        if !self.enabled {
            return None;
        }
        let mut out = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_bits() < 15 {
            let _ = write!(out, "; server_max_window_bits={}", self.server_bits());
        }
        match self.client_bits() {
            15 => out.push_str("; client_max_window_bits"),
            bits => {
                let _ = write!(out, "; client_max_window_bits={bits}");
            }
        }
        Some(out)
    }
}

/// The parameters both ends agreed on: how each direction is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server compresses each message on its own.
    pub server_no_context_takeover: bool,
    /// The client compresses each message on its own.
    pub client_no_context_takeover: bool,
    /// The server's compression window, 8..=15 (15 when unnegotiated).
    pub server_max_window_bits: u8,
    /// The client's compression window, 8..=15 (15 when unnegotiated).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// The parameters of a bare `permessage-deflate` answer: context takeover both ways,
    /// 15-bit windows.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value a server answers with for these parameters.
    pub fn response(&self) -> String {
        use core::fmt::Write as _;
        let mut out = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            let _ = write!(out, "; server_max_window_bits={}", self.server_max_window_bits);
        }
        if self.client_max_window_bits < 15 {
            let _ = write!(out, "; client_max_window_bits={}", self.client_max_window_bits);
        }
        out
    }

    /// May a frame from `encode_compressed_frame` with `window_bits` go to a client that
    /// negotiated these parameters? Any client inflates a message compressed on its own with
    /// a window no larger than `server_max_window_bits` (section 7.1.2.1).
    /// `Connection::check_send_compressed` also drops this server's own context, if it keeps
    /// one, since the client's window then holds bytes that context never saw.
    pub fn accepts_shared(&self, window_bits: u8) -> bool {
        window_bits <= self.server_max_window_bits
    }

    /// About how many bytes a server connection with these parameters keeps between
    /// messages for compression, with this crate's backend (flate2 on zlib-rs): 64 with no
    /// context either way; a kept compressor costs 250 KB plus 4 bytes per byte of window
    /// (380 KB at 15 bits, 252 KB at 9), a kept inflater 48 KB whatever its window.
    /// `tests/deflate_memory.rs` checks the figures against a counting allocator. Messages in
    /// flight use a thread's spare compressor and inflater, not counted here.
    pub fn idle_memory(&self) -> usize {
        const BASE: usize = 64;
        let compressor =
            if self.server_no_context_takeover { 0 } else { compressor_bytes(self.server_max_window_bits) };
        let inflater = if self.client_no_context_takeover { 0 } else { INFLATER_BYTES };
        BASE + compressor + inflater
    }
}

/// What a kept raw-deflate compressor holds with a `bits` window (zlib-rs, level 6).
const fn compressor_bytes(bits: u8) -> usize {
    250_000 + (4 << bits)
}

/// What a kept inflater holds (zlib-rs allocates a 32 KiB window whatever the stream's).
const INFLATER_BYTES: usize = 48_000;

/// A server's answer to the client's permessage-deflate offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateAgreement {
    /// The agreed parameters, for [`Connection::set_deflate`](crate::Connection::set_deflate).
    pub params: DeflateParams,
    /// The exact `Sec-WebSocket-Extensions` value to answer with.
    pub response: String,
}

/// The server's negotiation (RFC 7692 sections 5.1 and 7.1): reads every
/// `Sec-WebSocket-Extensions` header value of the request (`values`, in order), and accepts
/// the first permessage-deflate offer it can honour under `config`.
///
/// An offer with an unknown, repeated or invalid parameter is declined and the next one is
/// tried (section 7.1: "decline"), as is one asking for `server_max_window_bits=8`. A header
/// value that is not valid `Sec-WebSocket-Extensions` syntax (RFC 6455 section 9.1) makes the
/// server decline compression altogether, not fail the handshake. `None`: answer without
/// the extension.
///
/// ```
/// use ws_proto::{DeflateConfig, negotiate_deflate};
/// let offer: &[u8] = b"permessage-deflate; client_max_window_bits, permessage-deflate";
/// let agreed = negotiate_deflate(&DeflateConfig::default(), [offer]).unwrap();
/// assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover");
/// assert!(agreed.params.server_no_context_takeover);
/// ```
pub fn negotiate_deflate<'a>(
    config: &DeflateConfig,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Option<DeflateAgreement> {
    if !config.enabled {
        return None;
    }
    let mut offers = Vec::new();
    for value in values {
        let value = core::str::from_utf8(value).ok()?;
        parse_extension_list(value, &mut offers).ok()?;
    }
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|o| accept_offer(config, o))
        .map(|params| DeflateAgreement { params, response: params.response() })
}

/// The same for `httparse` headers: every `Sec-WebSocket-Extensions` among `headers`.
pub fn negotiate_deflate_headers(
    config: &DeflateConfig,
    headers: &[httparse::Header<'_>],
) -> Option<DeflateAgreement> {
    negotiate_deflate(
        config,
        headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions")).map(|h| h.value),
    )
}

/// One offer's parameters, each at most once.
#[derive(Default)]
struct Offered {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// Reads permessage-deflate's parameters (section 7.1); `None` on an unknown, repeated or
/// invalid one.
fn read_params(params: &[(&str, Option<&str>)]) -> Option<Offered> {
    let mut o = Offered::default();
    let mut seen = [false; 4];
    for &(name, value) in params {
        let i = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|p| p.eq_ignore_ascii_case(name))?;
        if core::mem::replace(&mut seen[i], true) {
            return None;
        }
        match (i, value) {
            (0, None) => o.server_no_context_takeover = true,
            (1, None) => o.client_no_context_takeover = true,
            (2, Some(v)) => o.server_max_window_bits = Some(window_bits(v)?),
            (3, None) => o.client_max_window_bits = Some(None),
            (3, Some(v)) => o.client_max_window_bits = Some(Some(window_bits(v)?)),
            _ => return None,
        }
    }
    Some(o)
}

/// A window-bits value: a decimal 8..=15 without leading zeros, possibly written as a quoted
/// string (with quoted-pairs) as RFC 6455 section 9.1 allows.
fn window_bits(raw: &str) -> Option<u8> {
    let mut digits = [0u8; 2];
    let mut n = 0;
    let mut chars = raw.bytes();
    while let Some(mut c) = chars.next() {
        if c == b'\\' {
            c = chars.next()?;
        }
        if !c.is_ascii_digit() || n == 2 {
            return None;
        }
        digits[n] = c;
        n += 1;
    }
    let value = match &digits[..n] {
        [d] => d - b'0',
        [b'1', d] => 10 + (d - b'0'),
        _ => return None,
    };
    (8..=15).contains(&value).then_some(value)
}

/// The server's side of one offer (section 7.1); `None` declines it.
fn accept_offer(config: &DeflateConfig, offer: &ExtensionOffer<'_>) -> Option<DeflateParams> {
    let o = read_params(&offer.params)?;
    let server_max_window_bits = match o.server_max_window_bits {
        Some(n) if n < MIN_WINDOW_BITS => return None, // cannot compress with a 256-byte window
        Some(n) => n.min(config.server_bits()),
        None => config.server_bits(),
    };
    let client_max_window_bits = match o.client_max_window_bits {
        // The client did not say it can limit its window: it uses up to 15 bits.
        None => 15,
        Some(None) => config.client_bits(),
        Some(Some(n)) => n.min(config.client_bits()),
    };
    let mut params = DeflateParams {
        server_no_context_takeover: o.server_no_context_takeover || config.server_no_context_takeover,
        client_no_context_takeover: o.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    };
    fit_memory(&mut params, config.max_idle_memory);
    Some(params)
}

/// Tightens `params` until a connection keeps at most `bound` bytes between messages (see
/// [`DeflateConfig::max_idle_memory`]): no server context, then no client context. A server
/// may answer either unasked (RFC 7692 sections 7.1.1.1 and 7.1.1.2).
fn fit_memory(params: &mut DeflateParams, bound: usize) {
    if params.idle_memory() > bound {
        params.server_no_context_takeover = true;
    }
    if params.idle_memory() > bound {
        params.client_no_context_takeover = true;
    }
}

/// The client's check of the server's `Sec-WebSocket-Extensions` answer (RFC 7692 section
/// 7.1), given the configuration its offer came from (`None`: it offered nothing).
///
/// `Ok(None)`: no extension agreed. An extension the client did not offer, or several, is
/// [`HandshakeError::Extension`]; a permessage-deflate answer with an unknown, repeated or
/// invalid parameter, a window it did not allow, or one this end cannot compress with, is
/// [`HandshakeError::Deflate`]: the client must fail the connection (section 7.1.2.2 and
/// friends).
///
/// ```
/// use ws_proto::{DeflateConfig, validate_deflate_response};
/// let config = DeflateConfig::default();
/// let answer: &[u8] = b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
/// let params = validate_deflate_response(Some(&config), [answer]).unwrap().unwrap();
/// assert_eq!(params.client_max_window_bits, 10);
/// ```
pub fn validate_deflate_response<'a>(
    offered: Option<&DeflateConfig>,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let mut answers = Vec::new();
    for value in values {
        let value = core::str::from_utf8(value).map_err(|_| HandshakeError::Deflate("malformed header"))?;
        parse_extension_list(value, &mut answers).map_err(|_| HandshakeError::Deflate("malformed header"))?;
    }
    let answer = match (answers.as_slice(), offered.filter(|c| c.enabled)) {
        ([], _) => return Ok(None),
        ([one], Some(config)) if one.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) => (one, config),
        _ => return Err(HandshakeError::Extension),
    };
    let (answer, config) = answer;
    let o = read_params(&answer.params)
        .ok_or(HandshakeError::Deflate("unknown, repeated or invalid parameter"))?;
    let asked_server_bits = (config.server_bits() < 15).then(|| config.server_bits());
    let server_max_window_bits = match (o.server_max_window_bits, asked_server_bits) {
        (Some(n), Some(asked)) if n > asked => {
            return Err(HandshakeError::Deflate("server window larger than offered"));
        }
        (Some(n), _) => n,
        (None, Some(_)) => return Err(HandshakeError::Deflate("server_max_window_bits not answered")),
        (None, None) => 15,
    };
    let client_max_window_bits = match o.client_max_window_bits {
        None => config.client_bits(),
        Some(None) => return Err(HandshakeError::Deflate("client_max_window_bits without a value")),
        Some(Some(n)) if n > config.client_bits() => {
            return Err(HandshakeError::Deflate("client window larger than offered"));
        }
        Some(Some(n)) if n < MIN_WINDOW_BITS => {
            return Err(HandshakeError::Deflate("client window of 8 bits"));
        }
        Some(Some(n)) => n,
    };
    if config.server_no_context_takeover && !o.server_no_context_takeover {
        return Err(HandshakeError::Deflate("server_no_context_takeover not answered"));
    }
    Ok(Some(DeflateParams {
        server_no_context_takeover: o.server_no_context_takeover,
        client_no_context_takeover: o.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }))
}

/// Parses one `Sec-WebSocket-Extensions` value strictly (RFC 6455 section 9.1, list syntax of
/// RFC 7230 section 7: empty elements allowed), appending its extensions to `out`. Quoted
/// values are kept without their quotes (quoted-pairs still escaped) and must unescape to a
/// token. `Err` on any syntax error.
pub(crate) fn parse_extension_list<'a>(value: &'a str, out: &mut Vec<ExtensionOffer<'a>>) -> Result<(), ()> {
    let b = value.as_bytes();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> Result<&'a str, ()> {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        if *i == start { Err(()) } else { Ok(&value[start..*i]) }
    };
    loop {
        skip_ows(&mut i);
        if i == b.len() {
            return Ok(());
        }
        if b[i] == b',' {
            i += 1; // an empty list element
            continue;
        }
        let name = token(&mut i)?;
        let mut params = Vec::new();
        skip_ows(&mut i);
        while i < b.len() && b[i] == b';' {
            i += 1;
            skip_ows(&mut i);
            let param = token(&mut i)?;
            skip_ows(&mut i);
            let mut val = None;
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip_ows(&mut i);
                val = Some(if i < b.len() && b[i] == b'"' { quoted(value, &mut i)? } else { token(&mut i)? });
                skip_ows(&mut i);
            }
            params.push((param, val));
        }
        out.push(ExtensionOffer { name, params });
        if i < b.len() {
            if b[i] != b',' {
                return Err(());
            }
            i += 1;
        }
    }
}

/// A quoted-string starting at `value[*i]` (the opening quote): its inside, which must
/// unescape to a token.
fn quoted<'a>(value: &'a str, i: &mut usize) -> Result<&'a str, ()> {
    let b = value.as_bytes();
    let start = *i + 1;
    let mut j = start;
    let mut empty = true;
    while j < b.len() {
        match b[j] {
            b'"' => {
                *i = j + 1;
                return if empty { Err(()) } else { Ok(&value[start..j]) };
            }
            b'\\' if j + 1 < b.len() && is_tchar(b[j + 1]) => j += 2,
            c if is_tchar(c) => j += 1,
            _ => return Err(()),
        }
        empty = false;
    }
    Err(())
}

/// RFC 7230 section 3.2.6 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests;
