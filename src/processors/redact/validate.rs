//! Checks that tell real identifiers from strings that only look like them: Luhn and
//! issuer ranges for payment cards, ISO 13616 mod-97 for IBANs, the SSA's never-issued
//! ranges for SSNs, octet ranges for IPv4. Each takes the candidate's significant
//! characters only (digits, or the compact IBAN) and answers yes or no.

/// Luhn (ISO/IEC 7812-1) over ASCII digits: doubling every second digit from the right.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether a card number's prefix and length fit a scheme that issues cards
/// (Visa, Mastercard, American Express, Discover, Diners Club, JCB, UnionPay, Mir).
pub fn card_issuer_valid(digits: &[u8]) -> bool {
    let len = digits.len();
    let prefix = |n: usize| -> u32 {
        digits[..n.min(len)]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    if !(13..=19).contains(&len) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let visa = digits[0] == b'4' && matches!(len, 13 | 16 | 19);
    let mastercard =
        ((51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4))) && len == 16;
    let amex = matches!(prefix(2), 34 | 37) && len == 15;
    let discover = (prefix(4) == 6011
        || (644..=649).contains(&prefix(3))
        || prefix(2) == 65
        || (622_126..=622_925).contains(&prefix(6)))
        && len >= 16;
    let diners = ((300..=305).contains(&prefix(3))
        || prefix(4) == 3095
        || matches!(prefix(2), 36 | 38 | 39))
        && len >= 14;
    let jcb = (3528..=3589).contains(&prefix(4)) && len >= 16;
    let unionpay = prefix(2) == 62 && len >= 16;
    let mir = (2200..=2204).contains(&prefix(4)) && len >= 16;
    visa || mastercard || amex || discover || diners || jcb || unionpay || mir
}

/// IBAN lengths by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The IBAN length of a country, `None` when the country issues no IBANs.
pub fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_bytes() == country)
        .map(|&(_, len)| len)
}

/// ISO 13616: a compact, uppercase IBAN of its country's length whose check digits make
/// the rearranged number ≡ 1 (mod 97).
pub fn iban_valid(compact: &[u8]) -> bool {
    if compact.len() < 5
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
        || iban_length(&compact[..2]) != Some(compact.len())
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder: u32 = 0;
    for &c in rearranged {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// An SSN's nine digits outside the ranges the SSA never issues: area 000, 666 and
/// 900–999, group 00, serial 0000, and the two numbers it voided after they were printed
/// on sample cards (078-05-1120, 219-09-9999).
pub fn ssn_valid(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |r: std::ops::Range<usize>| {
        digits[r]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (area, group, serial) = (number(0..3), number(3..5), number(5..9));
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && digits != b"078051120"
        && digits != b"219099999"
}

/// Dotted-quad IPv4: four decimal octets 0–255 without leading zeros (`010` is how some
/// tools write octal, and how version strings and ids look, not how addresses are logged).
pub fn ipv4_valid(text: &str) -> bool {
    let mut octets = 0;
    for digits in text.as_bytes().split(|b| *b == b'.') {
        let value = digits.iter().try_fold(0u16, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
        });
        let ok = matches!(digits.len(), 1..=3)
            && (digits.len() == 1 || digits[0] != b'0')
            && value.is_some_and(|v| v <= 255);
        if !ok {
            return false;
        }
        octets += 1;
    }
    octets == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_published_test_numbers_and_rejects_single_digit_changes() {
        // Test numbers published by the card schemes / payment processors.
        for n in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "79927398713", // the Luhn example from ISO/IEC 7812 literature
        ] {
            assert!(luhn_valid(n.as_bytes()), "{n}");
        }
        for n in ["4111111111111112", "79927398710", "5555555555554440", ""] {
            assert!(!luhn_valid(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn issuer_ranges_follow_scheme_prefixes_and_lengths() {
        for n in [
            "4111111111111111",
            "4222222222222",    // Visa, 13 digits
            "5105105105105100", // Mastercard 51
            "2223003122003222", // Mastercard 2-series
            "371449635398431",  // Amex
            "6011000990139424", // Discover
            "30569309025904",   // Diners 14
            "3566002020360505", // JCB
            "6200000000000005", // UnionPay
        ] {
            assert!(card_issuer_valid(n.as_bytes()), "{n}");
        }
        for n in [
            "1234567812345670", // no scheme starts with 1
            "41111111111111",   // Visa prefix, but Visa issues no 14-digit cards
            "3714496353984310", // Amex prefix, 16 digits
            "9111111111111111",
        ] {
            assert!(!card_issuer_valid(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn iban_mod97_accepts_registry_examples_and_rejects_a_changed_digit() {
        // Examples from the SWIFT IBAN registry.
        for iban in [
            "DE89370400440532013000",
            "GB29NWBK60161331926819",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "BE68539007547034",
            "MT84MALT011000012345MTLCAST001S",
        ] {
            assert!(iban_valid(iban.as_bytes()), "{iban}");
        }
        for iban in [
            "DE89370400440532013001", // check digits no longer fit
            "GB29NWBK6016133192681",  // one character short for GB
            "XX89370400440532013000", // no such country
            "de89370400440532013000",
        ] {
            assert!(!iban_valid(iban.as_bytes()), "{iban}");
        }
    }

    #[test]
    fn ssn_rejects_the_never_issued_ranges() {
        assert!(ssn_valid(b"123456789"));
        assert!(ssn_valid(b"665019999"));
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "999123456",
            "123001234",
            "123450000",
            "078051120",
            "219099999",
            "12345678",
        ] {
            assert!(!ssn_valid(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ipv4_needs_four_octets_in_range_without_leading_zeros() {
        for ok in ["0.0.0.0", "10.0.0.1", "192.168.1.254", "255.255.255.255"] {
            assert!(ipv4_valid(ok), "{ok}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.1000",
        ] {
            assert!(!ipv4_valid(bad), "{bad}");
        }
    }
}
