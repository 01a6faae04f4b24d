//! Certificate checks that rustls leaves to the peer: the leaf's validity
//! period (notBefore / notAfter), read with a minimal DER walk.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a leaf certificate is not usable now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// Within its validity period.
    Valid,
    /// notAfter is in the past (the date, `YYYY-MM-DDTHH:MM:SSZ`).
    Expired(String),
    /// notBefore is in the future.
    NotYetValid(String),
}

/// Checks the validity period of a DER certificate against `now` (Unix
/// seconds); `None` if the DER is not a certificate this walk understands.
pub fn validity_at(der: &[u8], now: i64) -> Option<Validity> {
    let (not_before, not_after) = validity(der)?;
    Some(if now > not_after.0 {
        Validity::Expired(not_after.1)
    } else if now < not_before.0 {
        Validity::NotYetValid(not_before.1)
    } else {
        Validity::Valid
    })
}

/// [`validity_at`] the current time.
pub fn validity_now(der: &[u8]) -> Option<Validity> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    validity_at(der, now)
}

/// One DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

type Instant = (i64, String);

/// The subject of a DER certificate as `CN=…,O=…` (attributes in
/// certificate order; unknown types as dotted OIDs; bytes outside printable
/// ASCII, `,` and `\\` escaped as `\\XX`), fit for a header value.
pub fn subject(der: &[u8]) -> Option<String> {
    let (_, _, subject) = fields(der)?;
    let mut out = String::new();
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (0x31, mut set, rest) = tlv(rdns)? else { return None };
        rdns = rest;
        while !set.is_empty() {
            let (0x30, attr, rest) = tlv(set)? else { return None };
            set = rest;
            let (0x06, oid, rest) = tlv(attr)? else { return None };
            let (_, value, _) = tlv(rest)?;
            if !out.is_empty() {
                out.push(',');
            }
            let short = match oid {
                [0x55, 0x04, 0x03] => Some("CN"),
                [0x55, 0x04, 0x06] => Some("C"),
                [0x55, 0x04, 0x07] => Some("L"),
                [0x55, 0x04, 0x08] => Some("ST"),
                [0x55, 0x04, 0x0a] => Some("O"),
                [0x55, 0x04, 0x0b] => Some("OU"),
                _ => None,
            };
            match short {
                Some(name) => out.push_str(name),
                None => push_oid(&mut out, oid),
            }
            out.push('=');
            for &b in value {
                if (b == b' ' || b.is_ascii_graphic()) && b != b',' && b != b'\\' {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
        }
    }
    Some(out)
}

fn push_oid(out: &mut String, oid: &[u8]) {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let Some((&first, rest)) = arcs.split_first() else { return };
    let (a, b) = if first < 80 { (first / 40, first % 40) } else { (2, first - 80) };
    out.push_str(&format!("{a}.{b}"));
    for arc in rest {
        out.push_str(&format!(".{arc}"));
    }
}

fn validity(der: &[u8]) -> Option<(Instant, Instant)> {
    let (before, after, _) = fields(der)?;
    Some((before, after))
}

/// notBefore, notAfter and the subject's contents.
fn fields(der: &[u8]) -> Option<(Instant, Instant, &[u8])> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = tlv(der)? else { return None };
    let (SEQUENCE, tbs, _) = tlv(cert)? else { return None };
    let (mut tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        // [0] version, then the serial number.
        (tag, _, rest) = tlv(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let (_, _, rest) = tlv(rest)?; // signature algorithm
    let (_, _, rest) = tlv(rest)?; // issuer
    let (SEQUENCE, validity, rest) = tlv(rest)? else { return None };
    let (SEQUENCE, subject, _) = tlv(rest)? else { return None };
    let (t1, before, rest) = tlv(validity)?;
    let (t2, after, _) = tlv(rest)?;
    Some((time(t1, before)?, time(t2, after)?, subject))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`).
fn time(tag: u8, text: &[u8]) -> Option<Instant> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
    Some((secs, format!("{year:04}-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}Z")))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(before: (i32, u8, u8), after: (i32, u8, u8)) -> Vec<u8> {
        let pair = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(before.0, before.1, before.2);
        params.not_after = rcgen::date_time_ymd(after.0, after.1, after.2);
        params.self_signed(&pair).expect("cert").der().to_vec()
    }

    #[test]
    fn subjects() {
        let pair = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(rcgen::DnType::CommonName, "client\r\none");
        let der = params.self_signed(&pair).expect("cert").der().to_vec();
        assert_eq!(subject(&der).as_deref(), Some("C=DE,O=Acme\\2C Inc.,CN=client\\0D\\0Aone"));
        assert_eq!(subject(b"\x30\x00"), None);
        let mut oid = String::new();
        push_oid(&mut oid, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]);
        assert_eq!(oid, "1.2.840.113549.1.9.1");
    }

    #[test]
    fn validity_periods() {
        let jan_2030 = days_from_civil(2030, 1, 1) * 86_400;
        let cases = [
            ((2020, 1, 1), (2040, 1, 1), Validity::Valid),
            ((2020, 1, 1), (2029, 12, 31), Validity::Expired("2029-12-31T00:00:00Z".into())),
            ((2031, 6, 15), (2040, 1, 1), Validity::NotYetValid("2031-06-15T00:00:00Z".into())),
            // GeneralizedTime from 2050 on.
            ((2020, 1, 1), (2051, 2, 28), Validity::Valid),
            ((1975, 1, 1), (1999, 12, 31), Validity::Expired("1999-12-31T00:00:00Z".into())),
        ];
        for (before, after, want) in cases {
            assert_eq!(validity_at(&cert(before, after), jan_2030), Some(want), "{before:?}..{after:?}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for junk in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", b"\x30\x84\xff\xff\xff\xff"] {
            assert_eq!(validity_at(junk, 0), None, "{junk:?}");
        }
    }
}
