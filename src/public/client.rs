//! Who sent a request: its key, its address behind trusted proxies, and
//! whether its body is something a page sends.

use std::net::IpAddr;

use axum::http::{HeaderMap, Uri, header};

use super::{KEY_HEADER, reply::Refusal};

/// The key from the header, else from the `key` query parameter. More than
/// one key (the header twice, the parameter twice, or both) is no key: the
/// answer must not depend on which of them is read.
pub fn presented_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let from_headers = headers
        .get_all(KEY_HEADER)
        .iter()
        .map(|value| value.to_str().map(str::to_string).unwrap_or_default());
    let from_query = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "key")
        .map(|(_, value)| value.into_owned());
    let mut keys = from_headers.chain(from_query);
    let key = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    Some(key).filter(|key| !key.is_empty())
}

/// The client's address: the connection's, or with `trusted_hops` proxies
/// in front, the entry of `X-Forwarded-For` the outermost trusted proxy
/// appended. Entries left of it are whatever the client wrote, so they are
/// never read.
pub fn address(peer: IpAddr, headers: &HeaderMap, trusted_hops: usize) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    // The chain as the last proxy saw it: every forwarded hop, then the
    // proxy's own connection to us.
    let hops = forwarded.len();
    let Some(index) = hops.checked_sub(trusted_hops) else {
        return peer;
    };
    forwarded[index]
        .parse()
        .or_else(|_| {
            forwarded[index]
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
        })
        .unwrap_or(peer)
}

/// fetch sends `application/json`; sendBeacon with a string sends
/// `text/plain;charset=UTF-8` (it cannot set a type without a preflight).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/plain" => Ok(()),
        _ => Err(Refusal::ContentType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn a_request_with_more_than_one_key_has_none() {
        let key = |uri: &str, header_values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in header_values {
                headers.append(KEY_HEADER, value.parse().unwrap());
            }
            presented_key(&uri.parse().unwrap(), &headers)
        };
        assert_eq!(key("/v1/consents", &["cdp_a"]), Some("cdp_a".into()));
        assert_eq!(key("/v1/consents?key=cdp_a", &[]), Some("cdp_a".into()));
        assert_eq!(key("/v1/consents", &[]), None);
        assert_eq!(key("/v1/consents", &["cdp_a", "cdp_a"]), None);
        assert_eq!(key("/v1/consents?key=cdp_a&key=cdp_b", &[]), None);
        assert_eq!(key("/v1/consents?key=cdp_b", &["cdp_a"]), None);
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_hops() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |h: &HeaderMap, hops| address(peer, h, hops).to_string();
        let headers = forwarded("6.6.6.6, 203.0.113.7");
        assert_eq!(ip(&headers, 0), "10.0.0.1");
        assert_eq!(ip(&headers, 1), "203.0.113.7");
        assert_eq!(ip(&headers, 2), "6.6.6.6");
        assert_eq!(ip(&headers, 3), "10.0.0.1", "fewer hops than trusted");
        assert_eq!(ip(&HeaderMap::new(), 1), "10.0.0.1");
        assert_eq!(ip(&forwarded("garbage"), 1), "10.0.0.1");
    }
}
