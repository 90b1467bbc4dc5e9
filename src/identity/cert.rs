//! The `client_cert` source: the name in a TLS client certificate.
//!
//! Managed laptops often carry a device or user certificate; when the TLS layer asks for one and
//! verifies its chain against the organisation's CA, the certificate is as good an identity as a
//! signed token. This reads the name only; chain verification is the TLS layer's job (so the
//! identity is marked verified on the understanding that only chain-verified certificates are
//! passed in).

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{Extraction, Identity, IdentitySource, check_user};

/// Client certificate identity: the subject's first common name (CN), or else the first SAN
/// e-mail address (rfc822Name). `verified` is true: the TLS layer verified the chain before
/// handing the certificate over. Malformed DER, trailing bytes, or a certificate with neither
/// name give no identity and a problem.
pub fn from_client_cert(der: &[u8]) -> Extraction {
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        Ok(_) => {
            return Extraction::problem("client_cert: trailing bytes after certificate".into());
        }
        Err(_) => return Extraction::problem("client_cert: malformed certificate".into()),
    };
    let cn = cert.subject().iter_common_name().next();
    let raw = match cn.map(|attr| attr.as_str()) {
        Some(Ok(cn)) => cn,
        Some(Err(_)) => {
            return Extraction::problem("client_cert: subject CN is not a string".into());
        }
        None => match first_email(&cert) {
            Ok(Some(email)) => email,
            Ok(None) => {
                return Extraction::problem(
                    "client_cert: no subject CN and no SAN e-mail address".into(),
                );
            }
            Err(why) => return Extraction::problem(format!("client_cert: {why}")),
        },
    };
    match check_user(raw) {
        Ok(user) => Extraction::found(Identity {
            user: user.to_owned(),
            source: IdentitySource::ClientCert,
            verified: true,
        }),
        Err(why) => Extraction::problem(format!("client_cert: {why}")),
    }
}

fn first_email<'a>(cert: &'a X509Certificate<'_>) -> Result<Option<&'a str>, &'static str> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| "malformed subject alternative name")?;
    Ok(san.and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::RFC822Name(email) => Some(*email),
            _ => None,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/identity/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn common_name() {
        let ex = from_client_cert(&fixture("cert-cn.der"));
        assert!(ex.problems.is_empty(), "{:?}", ex.problems);
        let id = ex.identity.expect("identity");
        assert_eq!(id.user, "alice@example.com");
        assert_eq!(id.source, IdentitySource::ClientCert);
        assert!(id.verified);
    }

    #[test]
    fn san_email_when_no_cn() {
        let ex = from_client_cert(&fixture("cert-san.der"));
        assert_eq!(
            ex.identity.map(|i| i.user).as_deref(),
            Some("bob@example.com")
        );
    }

    #[test]
    fn malformed() {
        let good = fixture("cert-cn.der");
        for (der, why) in [
            (Vec::new(), "client_cert: malformed certificate"),
            (
                b"not a certificate".to_vec(),
                "client_cert: malformed certificate",
            ),
            (
                good[..good.len() / 2].to_vec(),
                "client_cert: malformed certificate",
            ),
            (
                [&good[..], b"\0"].concat(),
                "client_cert: trailing bytes after certificate",
            ),
        ] {
            let ex = from_client_cert(&der);
            assert_eq!(ex.identity, None);
            assert_eq!(ex.problems, vec![why.to_string()]);
        }
        // Flip every byte in turn: never a panic, and any identity still passes the name rules.
        for i in 0..good.len() {
            let mut der = good.clone();
            der[i] ^= 0xff;
            if let Some(id) = from_client_cert(&der).identity {
                assert!(check_user(&id.user).is_ok());
            }
        }
    }
}
