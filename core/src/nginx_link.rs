//! nginx `secure_link_md5` compatibility (seed 000): the operator configures the
//! same expression they had in nginx, e.g. `"$uri your-secret"` or
//! `"$secure_link_expires$uri$remote_addr secret"`, and the hash is
//! `base64url_nopad(md5(expanded expression))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// One piece of a parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Uri,
    Expires,
    RemoteAddr,
}

/// A parsed `secure_link_md5` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureLinkExpr {
    parts: Vec<Part>,
}

/// The request values an expression may refer to.
pub struct LinkRequest<'a> {
    /// The decoded request path, without the query string (nginx's `$uri`).
    pub uri: &'a str,
    /// The `expires` query argument, if given.
    pub expires: Option<&'a str>,
    pub remote_addr: &'a str,
}

impl SecureLinkExpr {
    /// Parses an expression; variables other than `$uri`, `$secure_link_expires`
    /// and `$remote_addr` are a configuration error. `${name}` is accepted too.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = expr;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            rest = &rest[pos + 1..];
            let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| "unclosed ${ in secure_link_md5 expression".to_owned())?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            let part = match name {
                "uri" => Part::Uri,
                "secure_link_expires" => Part::Expires,
                "remote_addr" => Part::RemoteAddr,
                other => {
                    return Err(format!(
                        "unsupported variable ${other} in secure_link_md5 expression"
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = after;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Literal(_))) {
            return Err("secure_link_md5 expression has no secret text".to_owned());
        }
        Ok(Self { parts })
    }

    /// Whether links must carry `expires=` (the expression uses `$secure_link_expires`).
    pub fn uses_expires(&self) -> bool {
        self.parts.contains(&Part::Expires)
    }

    /// The base64url (no padding) MD5 hash nginx would expect for this request.
    pub fn hash(&self, req: &LinkRequest<'_>) -> String {
        let mut md5 = Md5::new();
        for part in &self.parts {
            let piece = match part {
                Part::Literal(text) => text.as_str(),
                Part::Uri => req.uri,
                Part::Expires => req.expires.unwrap_or(""),
                Part::RemoteAddr => req.remote_addr,
            };
            md5.update(piece.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(md5.finalize())
    }

    pub fn verify(&self, req: &LinkRequest<'_>, given: &str) -> bool {
        let expected = self.hash(req);
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_nginx_documentation_example() {
        // http://nginx.org/en/docs/http/ngx_http_secure_link_module.html
        let expr = SecureLinkExpr::parse("$secure_link_expires$uri$remote_addr secret").unwrap();
        let req = LinkRequest {
            uri: "/s/link",
            expires: Some("2147483647"),
            remote_addr: "127.0.0.1",
        };
        assert_eq!(expr.hash(&req), "_e4Nc3iduzkWRm01TBBNYw");
        assert!(expr.verify(&req, "_e4Nc3iduzkWRm01TBBNYw"));
        assert!(!expr.verify(&req, "_e4Nc3iduzkWRm01TBBNYx"));
        assert!(expr.uses_expires());
    }

    #[test]
    fn seed_expression_signs_the_uri_only() {
        let expr = SecureLinkExpr::parse("$uri your-secret-goes-here").unwrap();
        assert!(!expr.uses_expires());
        let a = LinkRequest {
            uri: "/resize/100x100/polyconf.jpg",
            expires: None,
            remote_addr: "1.2.3.4",
        };
        let b = LinkRequest {
            uri: "/resize/100x100/polyconf.jpg",
            expires: None,
            remote_addr: "5.6.7.8",
        };
        assert_eq!(expr.hash(&a), expr.hash(&b));
        let other = LinkRequest {
            uri: "/resize/100x101/polyconf.jpg",
            expires: None,
            remote_addr: "1.2.3.4",
        };
        assert_ne!(expr.hash(&a), expr.hash(&other));
    }

    #[test]
    fn rejects_unknown_variables_and_secretless_expressions() {
        assert!(SecureLinkExpr::parse("$uri$http_cookie secret").is_err());
        assert!(SecureLinkExpr::parse("$uri").is_err());
        assert!(SecureLinkExpr::parse("${uri}s3cret").is_ok());
    }
}
