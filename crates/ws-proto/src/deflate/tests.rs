//! Negotiation tables (RFC 7692 sections 5 and 7.1), server and client.
use super::*;

fn server(config: &DeflateConfig, values: &[&str]) -> Option<(DeflateParams, String)> {
    negotiate_deflate(config, values.iter().map(|v| v.as_bytes())).map(|a| (a.params, a.response))
}

fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

#[test]
fn server_answers_each_offer() {
    let dflt = DeflateConfig::default();
    let takeover = DeflateConfig::default().server_no_context_takeover(false);
    let narrow = DeflateConfig::default().client_max_window_bits(10).server_max_window_bits(12);
    type Case<'a> = (&'a DeflateConfig, &'a [&'a str], Option<(DeflateParams, &'a str)>);
    let cases: &[Case<'_>] = &[
        (
            &dflt,
            &["permessage-deflate"],
            Some((params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover")),
        ),
        (&takeover, &["permessage-deflate"], Some((params(false, false, 15, 15), "permessage-deflate"))),
        // What browsers send.
        (
            &takeover,
            &["permessage-deflate; client_max_window_bits"],
            Some((params(false, false, 15, 15), "permessage-deflate")),
        ),
        // RFC 7692 section 5.2's example: two offers, the first one can be honoured.
        (
            &dflt,
            &[
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
            ],
            Some((
                params(true, false, 10, 15),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            )),
        ),
        // A server window of 8 cannot be honoured (zlib): the next offer is taken.
        (
            &takeover,
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover"],
            Some((params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover")),
        ),
        // client_no_context_takeover offered: accepted and echoed.
        (
            &dflt,
            &["permessage-deflate; client_no_context_takeover"],
            Some((
                params(true, true, 15, 15),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            )),
        ),
        // The server's own window and the client's, when the client allows a limit.
        (
            &narrow,
            &["permessage-deflate; client_max_window_bits"],
            Some((
                params(true, false, 12, 10),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10",
            )),
        ),
        // The client's limit is below the server's wish: the smaller one.
        (
            &narrow,
            &["permessage-deflate; client_max_window_bits=9; server_max_window_bits=9"],
            Some((
                params(true, false, 9, 9),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
            )),
        ),
        // No client_max_window_bits offered: the client window stays 15, unannounced.
        (
            &narrow,
            &["permessage-deflate"],
            Some((
                params(true, false, 12, 15),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            )),
        ),
        // A client window of 8 is the client's business: inflating with 9 or more covers it.
        (
            &dflt,
            &["permessage-deflate; client_max_window_bits=8"],
            Some((
                params(true, false, 15, 8),
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=8",
            )),
        ),
        // Quoted values (RFC 6455 section 9.1), with a quoted-pair.
        (
            &dflt,
            &[r#"permessage-deflate; client_max_window_bits="10"; server_max_window_bits="1\1""#],
            Some((
                params(true, false, 11, 10),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10",
            )),
        ),
        // Several headers, another extension first, names in any case, blanks around.
        (
            &takeover,
            &["x-webkit-deflate-frame", " , PerMessage-Deflate ;\tSERVER_NO_CONTEXT_TAKEOVER , "],
            Some((params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover")),
        ),
        // Offers declined one by one: duplicate, unknown, invalid values, missing values,
        // values where none belongs.
        (&dflt, &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
        (&dflt, &["permessage-deflate; client_max_window_bits; client_max_window_bits=10"], None),
        (&dflt, &["permessage-deflate; foo"], None),
        (&dflt, &["permessage-deflate; x=1"], None),
        (&dflt, &["permessage-deflate; server_max_window_bits"], None),
        (&dflt, &["permessage-deflate; server_max_window_bits=16"], None),
        (&dflt, &["permessage-deflate; server_max_window_bits=7"], None),
        (&dflt, &["permessage-deflate; server_max_window_bits=08"], None),
        (&dflt, &["permessage-deflate; client_max_window_bits=1a"], None),
        (&dflt, &["permessage-deflate; client_max_window_bits=\"\""], None),
        (&dflt, &["permessage-deflate; server_no_context_takeover=1"], None),
        (&dflt, &["permessage-deflate; client_no_context_takeover=\"x\""], None),
        (&dflt, &["x-foo", "deflate-frame"], None),
        (&dflt, &[], None),
        // ...but a declined offer does not spoil the next one.
        (
            &takeover,
            &["permessage-deflate; foo, permessage-deflate"],
            Some((params(false, false, 15, 15), "permessage-deflate")),
        ),
        // Broken syntax anywhere: no compression at all (the handshake still succeeds).
        (&dflt, &["permessage-deflate; client_max_window_bits=\"10"], None),
        (&dflt, &["permessage-deflate;;"], None),
        (&dflt, &["permessage-deflate; =10"], None),
        (&dflt, &["permessage-deflate x"], None),
        (&dflt, &["permessage-deflate; client_max_window_bits=\"1 0\""], None),
        (&dflt, &["permessage-deflate", "permessage-deflate; a=b=c"], None),
        (&dflt, &["permessage-deflate; client_max_window_bits=10 11"], None),
    ];
    for (config, values, want) in cases {
        let got = server(config, values);
        let want = want.map(|(p, r)| (p, String::from(r)));
        assert_eq!(got, want, "{values:?}");
    }
    assert_eq!(server(&DeflateConfig::default().enabled(false), &["permessage-deflate"]), None);
    let non_utf8: &[u8] = b"permessage-deflate; x=\xff";
    assert_eq!(negotiate_deflate(&dflt, [non_utf8]), None);
}

#[test]
fn a_memory_bound_drops_the_server_context_then_the_client_s() {
    let takeover = DeflateConfig::default().server_no_context_takeover(false);
    let browser = ["permessage-deflate; client_max_window_bits"];
    let both = params(false, false, 15, 15).idle_memory();
    let client_only = params(true, false, 15, 15).idle_memory();
    let none = params(true, true, 15, 15).idle_memory();
    assert!(none < 128 && none < client_only && client_only < both, "{none} {client_only} {both}");
    let cases = [
        (usize::MAX, params(false, false, 15, 15), "permessage-deflate"),
        (both, params(false, false, 15, 15), "permessage-deflate"),
        (both - 1, params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover"),
        (client_only, params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover"),
        (
            client_only - 1,
            params(true, true, 15, 15),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        // Below what even no context costs: compression stays on, with nothing kept.
        (
            0,
            params(true, true, 15, 15),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
    ];
    for (bound, want, response) in cases {
        let config = takeover.clone().max_idle_memory(bound);
        let (got, answer) = server(&config, &browser).unwrap();
        assert_eq!((got, answer.as_str()), (want, response), "bound {bound}");
        assert!(bound < none || got.idle_memory() <= bound, "bound {bound}: {}", got.idle_memory());
    }
    // A smaller window keeps a smaller compressor.
    assert!(params(false, true, 9, 15).idle_memory() < params(false, true, 15, 15).idle_memory());
}

#[test]
fn configured_windows_are_clamped() {
    let c = DeflateConfig::default().server_max_window_bits(8).client_max_window_bits(20).level(12);
    assert_eq!((c.server_max_window_bits, c.client_max_window_bits, c.level), (9, 15, 9));
}

#[test]
fn client_offers_what_it_is_configured_for() {
    let cases = [
        (DeflateConfig::default(), "permessage-deflate; server_no_context_takeover; client_max_window_bits"),
        (
            DeflateConfig::default().server_no_context_takeover(false),
            "permessage-deflate; client_max_window_bits",
        ),
        (
            DeflateConfig::default()
                .client_no_context_takeover(true)
                .server_max_window_bits(10)
                .client_max_window_bits(11),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
        ),
    ];
    for (config, want) in cases {
        assert_eq!(config.offer().as_deref(), Some(want));
        // Our own server accepts our own offer.
        assert!(negotiate_deflate(&DeflateConfig::default(), [config.offer().unwrap().as_bytes()]).is_some());
    }
    assert_eq!(DeflateConfig::default().enabled(false).offer(), None);
}

#[test]
fn client_checks_the_answer() {
    let dflt = DeflateConfig::default();
    let takeover = DeflateConfig::default().server_no_context_takeover(false);
    let narrow = DeflateConfig::default()
        .server_no_context_takeover(false)
        .server_max_window_bits(10)
        .client_max_window_bits(12);
    type Want = Result<Option<DeflateParams>, HandshakeError>;
    let bad = |why| Err(HandshakeError::Deflate(why));
    let cases: &[(Option<&DeflateConfig>, &[&str], Want)] = &[
        (Some(&dflt), &[], Ok(None)),
        (
            Some(&dflt),
            &["permessage-deflate; server_no_context_takeover"],
            Ok(Some(params(true, false, 15, 15))),
        ),
        (Some(&takeover), &["permessage-deflate"], Ok(Some(params(false, false, 15, 15)))),
        // The server may impose more than was asked.
        (
            Some(&takeover),
            &[
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9; server_max_window_bits=8",
            ],
            Ok(Some(params(true, true, 8, 9))),
        ),
        (
            Some(&narrow),
            &["permessage-deflate; server_max_window_bits=9"],
            Ok(Some(params(false, false, 9, 12))),
        ),
        (
            Some(&narrow),
            &["permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"],
            Ok(Some(params(false, false, 10, 11))),
        ),
        // Refusals.
        (None, &["permessage-deflate"], Err(HandshakeError::Extension)),
        (Some(&dflt.clone().enabled(false)), &["permessage-deflate"], Err(HandshakeError::Extension)),
        (Some(&dflt), &["x-foo"], Err(HandshakeError::Extension)),
        (
            Some(&dflt),
            &["permessage-deflate; server_no_context_takeover, permessage-deflate"],
            Err(HandshakeError::Extension),
        ),
        (
            Some(&dflt),
            &["permessage-deflate; server_no_context_takeover", "permessage-deflate"],
            Err(HandshakeError::Extension),
        ),
        (Some(&takeover), &["permessage-deflate; foo"], bad("unknown, repeated or invalid parameter")),
        (
            Some(&dflt),
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            bad("unknown, repeated or invalid parameter"),
        ),
        (
            Some(&takeover),
            &["permessage-deflate; server_max_window_bits=16"],
            bad("unknown, repeated or invalid parameter"),
        ),
        (
            Some(&takeover),
            &["permessage-deflate; server_max_window_bits"],
            bad("unknown, repeated or invalid parameter"),
        ),
        (Some(&dflt), &["permessage-deflate"], bad("server_no_context_takeover not answered")),
        (Some(&narrow), &["permessage-deflate"], bad("server_max_window_bits not answered")),
        (
            Some(&narrow),
            &["permessage-deflate; server_max_window_bits=11"],
            bad("server window larger than offered"),
        ),
        (
            Some(&narrow),
            &["permessage-deflate; server_max_window_bits=10; client_max_window_bits=13"],
            bad("client window larger than offered"),
        ),
        (
            Some(&takeover),
            &["permessage-deflate; client_max_window_bits"],
            bad("client_max_window_bits without a value"),
        ),
        (Some(&takeover), &["permessage-deflate; client_max_window_bits=8"], bad("client window of 8 bits")),
        (Some(&takeover), &["permessage-deflate;"], bad("malformed header")),
    ];
    for (config, values, want) in cases {
        let got = validate_deflate_response(*config, values.iter().map(|v| v.as_bytes()));
        assert_eq!(&got, want, "{values:?}");
    }
}

#[test]
fn both_roles_agree_through_the_handshake_functions() {
    use crate::{
        RequestParams, client_key, validate_request, validate_response_with, write_accept_response,
        write_request,
    };
    let client_config = DeflateConfig::default().client_no_context_takeover(true);
    let offer = client_config.offer().unwrap();
    let key = client_key([3; 16]);
    let extra = [("Sec-WebSocket-Extensions", offer.as_str())];
    let mut request = Vec::new();
    write_request(
        &mut request,
        &RequestParams { host: "h", path: "/", protocols: &[], extra_headers: &extra },
        &key,
    );
    let mut h = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut h);
    assert!(req.parse(&request).unwrap().is_complete());
    let client_request = validate_request(&req).unwrap();
    let agreed = negotiate_deflate_headers(&DeflateConfig::default(), req.headers).unwrap();
    let mut response = Vec::new();
    write_accept_response(
        &mut response,
        client_request.key,
        None,
        &[("Sec-WebSocket-Extensions", &agreed.response)],
    );
    let mut h2 = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut h2);
    assert!(resp.parse(&response).unwrap().is_complete());
    let accepted = validate_response_with(&resp, &key, &[], Some(&client_config)).unwrap();
    assert_eq!(accepted.deflate, Some(agreed.params));
    assert_eq!(agreed.params, params(true, true, 15, 15));
    // A client that offered nothing refuses the same answer.
    assert_eq!(crate::validate_response(&resp, &key, &[]), Err(HandshakeError::Extension));
}
