//! RS256 JWT signing with the fixture key, and the libtrust `kid` the registry expects.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

/// TEST-ONLY key (see fixtures/README.md).
pub(crate) const KEY_PEM: &str = include_str!("../fixtures/token.key");
/// Self-signed certificate for [`KEY_PEM`], usable as the registry's `rootcertbundle`.
pub(crate) const CERT_PEM: &str = include_str!("../fixtures/token.crt");

pub(crate) struct Signer {
    key: RsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    pub fn from_fixture() -> Signer {
        let der = pem_to_der(KEY_PEM);
        let key = RsaKeyPair::from_pkcs8(&der).expect("fixture key is PKCS#8 RSA");
        let spki = rsa_spki_der(key.public_key().as_ref());
        Signer {
            kid: libtrust_kid(&spki),
            key,
            rng: SystemRandom::new(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `base64url(header).base64url(claims).base64url(RS256 signature)`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, out.as_bytes(), &mut sig)
            .expect("RSA signing");
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        out
    }
}

pub(crate) fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(b64).expect("valid PEM base64")
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Wrap a PKCS#1 `RSAPublicKey` into an X.509 `SubjectPublicKeyInfo` (DER).
pub(crate) fn rsa_spki_der(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut body = ALG.to_vec();
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// libtrust key id: SHA-256 of the DER SPKI, first 30 bytes, base32 (no padding),
/// 12 groups of 4 characters joined by `:`.
pub(crate) fn libtrust_kid(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let b32 = base32_nopad(&digest.as_ref()[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32, upper case, without padding.
pub(crate) fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32_nopad(b""), "");
        assert_eq!(base32_nopad(b"f"), "MY");
        assert_eq!(base32_nopad(b"fo"), "MZXQ");
        assert_eq!(base32_nopad(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn kid_matches_openssl_computation() {
        // openssl x509 -in fixtures/token.crt -pubkey -noout | openssl pkey -pubin -outform DER
        //   | openssl dgst -sha256 -binary | head -c 30 | base32
        let s = Signer::from_fixture();
        assert_eq!(
            s.kid(),
            "Y2JJ:5UUY:3O6W:EBFT:LDND:SXFO:PNGP:2CZY:DSO7:CAIO:6L4H:6CC7"
        );
    }

    #[test]
    fn spki_matches_certificate() {
        let s = Signer::from_fixture();
        let spki = rsa_spki_der(s.key.public_key().as_ref());
        let cert = pem_to_der(CERT_PEM);
        assert!(
            cert.windows(spki.len()).any(|w| w == spki.as_slice()),
            "certificate embeds the same SubjectPublicKeyInfo"
        );
    }
}
