//! A labeled corpus of AI-gateway audit events for the `redact` processor: records with
//! and without personal data and secrets, and hard negatives that look like them (UUIDs,
//! order ids, timestamps, version numbers, 16-digit ids failing Luhn, hex hashes, …).
//!
//! Deterministic: the same seed gives the same corpus. Every planted value carries a label
//! with its detector and its canonical form, built from the parts the value was made of
//! (digits, lowercase address), so tests can compute expected hash tokens independently.

#![allow(dead_code)]

use std::net::Ipv6Addr;

use base64::Engine;
use serde_json::{Map, Value, json};
use vellum::event::Record;

/// SplitMix64: small, seedable, good enough to draw test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }

    pub fn digits(&mut self, n: usize) -> String {
        self.chars(n, DIGITS)
    }
}

const DIGITS: &[u8] = b"0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The detectors the corpus plants values for, `sensitive_key` included.
pub const DETECTORS: &[&str] = &[
    "email",
    "phone",
    "ssn",
    "credit_card",
    "iban",
    "ipv4",
    "ipv6",
    "jwt",
    "bearer_token",
    "aws_access_key",
    "api_key",
    "private_key",
    "url_credentials",
    "sensitive_key",
];

/// One planted value: what should find it, the text as planted, and the canonical form
/// the processor hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub detector: &'static str,
    pub raw: String,
    pub canonical: String,
}

pub struct Sample {
    pub record: Record,
    pub labels: Vec<Label>,
    /// Look-alikes planted in the record that must come out unchanged.
    pub negatives: Vec<String>,
}

/// Builds one record, collecting labels and negatives as values are drawn.
pub struct Composer<'r> {
    pub rng: &'r mut Rng,
    pub labels: Vec<Label>,
    pub negatives: Vec<String>,
}

impl<'r> Composer<'r> {
    pub fn new(rng: &'r mut Rng) -> Composer<'r> {
        Composer {
            rng,
            labels: Vec::new(),
            negatives: Vec::new(),
        }
    }

    fn label(&mut self, detector: &'static str, raw: String, canonical: String) -> String {
        self.labels.push(Label {
            detector,
            raw: raw.clone(),
            canonical,
        });
        raw
    }

    fn negative(&mut self, value: String) -> String {
        self.negatives.push(value.clone());
        value
    }

    // ---- personal data and secrets -------------------------------------------------

    pub fn email(&mut self) -> String {
        let first = *self.rng.pick(&[
            "alice", "Bob", "carol", "dmitri", "eve", "fatima", "gus", "hana",
        ]);
        let last = *self.rng.pick(&[
            "smith", "Nguyen", "garcia", "okafor", "li", "muller", "rossi",
        ]);
        let local = match self.rng.below(4) {
            0 => format!("{first}.{last}"),
            1 => format!(
                "{first}+{}",
                self.rng.pick(&["billing", "news", "gw", "test"])
            ),
            2 => format!("{first}_{last}{}", self.rng.below(100)),
            _ => first.to_string(),
        };
        let domain = *self.rng.pick(&[
            "example.com",
            "mail.example.org",
            "corp.example.co.uk",
            "eu.mail.example.net",
            "example.io",
        ]);
        let mut raw = format!("{local}@{domain}");
        if self.rng.chance(10) {
            raw = raw.to_ascii_uppercase();
        }
        let canonical = raw.to_ascii_lowercase();
        self.label("email", raw, canonical)
    }

    pub fn phone(&mut self) -> String {
        if self.rng.chance(30) {
            let (raw, digits) = match self.rng.below(4) {
                0 => {
                    let n = format!("7946{}", self.rng.digits(4));
                    (
                        format!("+44 20 {} {}", &n[..4], &n[4..]),
                        format!("4420{n}"),
                    )
                }
                1 => {
                    let n = format!("{}{}", self.rng.range(2, 9), self.rng.digits(6));
                    (format!("+49 30 {n}"), format!("4930{n}"))
                }
                2 => {
                    let n = self.rng.digits(8);
                    let pairs: Vec<&str> = (0..4).map(|i| &n[i * 2..i * 2 + 2]).collect();
                    (format!("+33 1 {}", pairs.join(" ")), format!("331{n}"))
                }
                _ => {
                    let n = format!("{}{}", self.rng.range(6, 9), self.rng.digits(9));
                    (format!("+91 {} {}", &n[..5], &n[5..]), format!("91{n}"))
                }
            };
            return self.label("phone", raw, format!("+{digits}"));
        }
        let area = format!("{}{}", self.rng.range(2, 9), self.rng.digits(2));
        let exchange = format!("{}{}", self.rng.range(0, 9), self.rng.digits(2));
        let line = self.rng.digits(4);
        let raw = match self.rng.below(9) {
            7 => format!("+1-{area}-{exchange}-{line}"),
            8 => format!("+1.{area}.{exchange}.{line}"),
            0 => format!("+1 ({area}) {exchange}-{line}"),
            1 => format!("+1 {area} {exchange} {line}"),
            2 => format!("+1{area}{exchange}{line}"),
            3 => format!("({area}) {exchange}-{line}"),
            4 => format!("{area}-{exchange}-{line}"),
            5 => format!("{area}.{exchange}.{line}"),
            _ => format!("1-{area}-{exchange}-{line}"),
        };
        self.label("phone", raw, format!("+1{area}{exchange}{line}"))
    }

    fn ssn_digits(&mut self) -> String {
        loop {
            let area = self.rng.range(1, 899);
            let group = self.rng.range(1, 99);
            let serial = self.rng.range(1, 9999);
            let digits = format!("{area:03}{group:02}{serial:04}");
            if area != 666 && digits != "078051120" && digits != "219099999" {
                return digits;
            }
        }
    }

    pub fn ssn(&mut self) -> String {
        let d = self.ssn_digits();
        let separator = if self.rng.chance(30) { " " } else { "-" };
        let raw = [&d[..3], &d[3..5], &d[5..]].join(separator);
        self.label("ssn", raw, d)
    }

    /// `SSN: 123456789`: the label is the digits after the word.
    pub fn ssn_after_label(&mut self) -> String {
        let d = self.ssn_digits();
        format!("SSN: {}", self.label("ssn", d.clone(), d))
    }

    pub fn card_digits(&mut self) -> String {
        let (prefix, len) = match self.rng.below(6) {
            0 | 1 => ("4".to_string(), 16),
            2 => (format!("5{}", self.rng.range(1, 5)), 16),
            3 => (format!("{}", self.rng.range(2221, 2720)), 16),
            4 => (self.rng.pick(&["34", "37"]).to_string(), 15),
            _ => ("6011".to_string(), 16),
        };
        let body = format!("{prefix}{}", self.rng.digits(len - 1 - prefix.len()));
        format!("{body}{}", luhn_check_digit(&body))
    }

    pub fn card(&mut self) -> String {
        let d = self.card_digits();
        let groups: Vec<&str> = if d.len() == 15 {
            vec![&d[..4], &d[4..10], &d[10..]]
        } else {
            (0..4).map(|i| &d[i * 4..i * 4 + 4]).collect()
        };
        let raw = match self.rng.below(3) {
            0 => d.clone(),
            1 => groups.join(" "),
            _ => groups.join("-"),
        };
        self.label("credit_card", raw, d)
    }

    pub fn iban(&mut self) -> String {
        let (country, bban) = match self.rng.below(6) {
            0 => ("DE", self.rng.digits(18)),
            1 => (
                "GB",
                format!(
                    "{}{}",
                    self.rng.pick(&["NWBK", "BARC", "HBUK", "LOYD"]),
                    self.rng.digits(14)
                ),
            ),
            2 => ("FR", self.rng.digits(23)),
            3 => (
                "NL",
                format!(
                    "{}{}",
                    self.rng.pick(&["ABNA", "INGB", "RABO"]),
                    self.rng.digits(10)
                ),
            ),
            4 => ("ES", self.rng.digits(20)),
            _ => ("BE", self.rng.digits(12)),
        };
        let compact = format!("{country}{:02}{bban}", iban_check_digits(country, &bban));
        let raw = if self.rng.chance(50) {
            compact
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            compact.clone()
        };
        self.label("iban", raw, compact)
    }

    pub fn ipv4(&mut self) -> String {
        let first = loop {
            let o = self.rng.range(1, 223);
            if o != 127 {
                break o;
            }
        };
        let raw = format!(
            "{first}.{}.{}.{}",
            self.rng.below(256),
            self.rng.below(256),
            self.rng.range(1, 254)
        );
        self.label("ipv4", raw.clone(), raw)
    }

    pub fn ipv6(&mut self) -> String {
        let r = |rng: &mut Rng| rng.below(0x10000) as u16;
        let addr = match self.rng.below(4) {
            0 => Ipv6Addr::new(
                0x2001,
                0xdb8,
                r(self.rng),
                r(self.rng),
                0,
                0,
                r(self.rng),
                r(self.rng),
            ),
            1 => Ipv6Addr::new(
                0xfe80,
                0,
                0,
                0,
                r(self.rng),
                r(self.rng),
                r(self.rng),
                r(self.rng),
            ),
            2 => Ipv6Addr::new(
                0x2a00,
                r(self.rng),
                r(self.rng),
                r(self.rng),
                r(self.rng),
                r(self.rng),
                r(self.rng),
                r(self.rng),
            ),
            _ => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, r(self.rng).max(1)),
        };
        let canonical = addr.to_string();
        let raw = match self.rng.below(3) {
            0 => canonical.clone(),
            1 => addr
                .segments()
                .iter()
                .map(|s| format!("{s:04x}"))
                .collect::<Vec<_>>()
                .join(":"),
            _ => canonical.to_ascii_uppercase(),
        };
        self.label("ipv6", raw, canonical)
    }

    pub fn jwt(&mut self) -> String {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let header = json!({"alg": self.rng.pick(&["HS256", "RS256", "ES256"]), "typ": "JWT"});
        let payload = json!({
            "sub": format!("usr_{}", self.rng.chars(8, ALNUM)),
            "iat": 1_700_000_000 + self.rng.below(50_000_000),
            "scope": "chat:write",
        });
        let raw = format!(
            "{}.{}.{}",
            b64(&header),
            b64(&payload),
            self.rng.chars(43, BASE64URL)
        );
        self.label("jwt", raw.clone(), raw)
    }

    fn token_with_digit(&mut self, len: usize, alphabet: &[u8]) -> String {
        let mut t = self.rng.chars(len, alphabet);
        let at = self.rng.below(len as u64) as usize;
        let digit = self.rng.digits(1);
        t.replace_range(at..at + 1, &digit);
        if !t.bytes().any(|b| b.is_ascii_alphabetic()) {
            t.replace_range(0..1, "k");
        }
        t
    }

    pub fn bearer(&mut self) -> String {
        let len = self.rng.range(24, 40) as usize;
        let t = self.token_with_digit(len, ALNUM);
        self.label("bearer_token", t.clone(), t)
    }

    pub fn aws_key_id(&mut self) -> String {
        let raw = format!(
            "{}{}",
            self.rng.pick(&["AKIA", "ASIA"]),
            self.rng.chars(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        );
        self.label("aws_access_key", raw.clone(), raw)
    }

    pub fn aws_secret(&mut self) -> String {
        let raw = self.rng.chars(40, BASE64);
        self.label("aws_access_key", raw.clone(), raw)
    }

    pub fn api_key(&mut self) -> String {
        let raw = match self.rng.below(8) {
            0 => format!("sk-proj-{}", self.token_with_digit(48, ALNUM)),
            1 => format!("sk-ant-api03-{}", self.token_with_digit(90, BASE64URL)),
            2 => format!("sk_live_{}", self.token_with_digit(24, ALNUM)),
            3 => format!("ghp_{}", self.token_with_digit(36, ALNUM)),
            4 => format!(
                "xoxb-{}-{}-{}",
                self.rng.digits(12),
                self.rng.digits(13),
                self.token_with_digit(24, ALNUM)
            ),
            5 => format!("AIza{}", self.token_with_digit(35, ALNUM)),
            6 => format!("hf_{}", self.token_with_digit(34, ALNUM)),
            _ => format!("glpat-{}", self.token_with_digit(20, ALNUM)),
        };
        self.label("api_key", raw.clone(), raw)
    }

    /// An opaque key as a query parameter value (`?api_key=…`), found by its name.
    pub fn api_key_param(&mut self) -> String {
        let raw = self.rng.chars(32, HEX);
        self.label("api_key", raw.clone(), raw)
    }

    pub fn private_key(&mut self) -> String {
        let kind = *self.rng.pick(&["RSA ", "EC ", "OPENSSH ", ""]);
        let lines: Vec<String> = (0..self.rng.range(2, 4))
            .map(|_| self.rng.chars(64, BASE64))
            .collect();
        let raw = format!(
            "-----BEGIN {kind}PRIVATE KEY-----\n{}\n-----END {kind}PRIVATE KEY-----",
            lines.join("\n")
        );
        self.label("private_key", raw.clone(), raw)
    }

    /// A connection URL; the label is its `user:password`.
    pub fn url_with_credentials(&mut self) -> String {
        let user = *self
            .rng
            .pick(&["admin", "app", "svc_gateway", "postgres", "deploy"]);
        let len = self.rng.range(10, 20) as usize;
        let password = self.token_with_digit(len, ALNUM);
        let userinfo = self.label(
            "url_credentials",
            format!("{user}:{password}"),
            format!("{user}:{password}"),
        );
        let (scheme, host) = *self.rng.pick(&[
            ("postgres", "db.internal:5432/app"),
            ("mysql", "mysql.prod.internal:3306/orders"),
            ("redis", "cache.internal:6379/0"),
            ("https", "registry.example.com/v2/"),
            ("amqp", "mq.internal:5672/"),
        ]);
        format!("{scheme}://{userinfo}@{host}")
    }

    /// A value under a sensitive key: found because of the key, whatever it looks like.
    pub fn secret_value(&mut self) -> String {
        let raw = match self.rng.below(4) {
            0 => format!(
                "{}{}!",
                self.rng.pick(&["hunter", "Summer", "p@ss", "Winter"]),
                self.rng.digits(4)
            ),
            1 => self.rng.chars(20, ALNUM),
            2 => format!("session={}; theme=dark", self.rng.chars(24, HEX)),
            _ => format!(
                "correct horse battery {}",
                self.rng.pick(&["staple", "saddle", "stable"])
            ),
        };
        self.label("sensitive_key", raw.clone(), raw)
    }

    /// A value written after a sensitive name in text (`password=…`): no spaces, `&`, `;`.
    pub fn secret_word(&mut self) -> String {
        let raw = format!(
            "{}{}",
            self.rng
                .pick(&["Tr0ub4dor", "hunter", "letmein", "Passw0rd"]),
            self.rng.digits(3)
        );
        self.label("sensitive_key", raw.clone(), raw)
    }

    // ---- look-alikes ---------------------------------------------------------------

    pub fn uuid(&mut self) -> String {
        let h = self.rng.chars(32, HEX);
        let v = format!(
            "{}-{}-4{}-{}{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            self.rng.pick(&["8", "9", "a", "b"]),
            &h[17..20],
            &h[20..]
        );
        self.negative(v)
    }

    pub fn hard_negative(&mut self) -> String {
        let v = match self.rng.below(25) {
            22 => format!(
                "AssemblyVersion {}.{}.{}.{}",
                self.rng.below(9),
                self.rng.below(9),
                self.rng.below(99),
                self.rng.below(9)
            ),
            23 => format!(
                "firmware: {}.{}.{}.{}",
                self.rng.range(1, 9),
                self.rng.below(20),
                self.rng.below(9),
                self.rng.below(99)
            ),
            24 => "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"".to_string(),
            0 => format!("ORD-{}-{}", self.rng.range(2019, 2026), self.rng.digits(6)),
            1 => format!(
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
                self.rng.range(2019, 2026),
                self.rng.range(1, 12),
                self.rng.range(1, 28),
                self.rng.below(24),
                self.rng.below(60),
                self.rng.below(60),
                self.rng.digits(3)
            ),
            2 => format!("{}", 1_600_000_000_000u64 + self.rng.below(200_000_000_000)),
            3 => format!(
                "v{}.{}.{}",
                self.rng.below(20),
                self.rng.below(40),
                self.rng.below(100)
            ),
            4 => format!(
                "10.0.{}.{}",
                self.rng.range(10000, 22631),
                self.rng.range(1, 9)
            ),
            5 => self.failing_luhn_id(),
            6 => self.rng.chars(64, HEX),
            7 => self.rng.chars(40, HEX),
            8 => self.rng.chars(7, HEX),
            9 => format!(
                "{}.{}.{}-rc.{}+build.{}",
                self.rng.below(5),
                self.rng.below(20),
                self.rng.below(9),
                self.rng.below(5),
                self.rng.below(900)
            ),
            10 => format!(
                "gpt-4o-{}-{:02}-{:02}",
                self.rng.range(2024, 2025),
                self.rng.range(1, 12),
                self.rng.range(1, 28)
            ),
            11 => format!(
                "claude-3-5-sonnet-{}{:02}{:02}",
                self.rng.range(2024, 2025),
                self.rng.range(1, 12),
                self.rng.range(1, 28)
            ),
            12 => format!("{}@2x.png", self.rng.pick(&["logo", "icon", "avatar"])),
            13 => format!("lodash@4.17.{}", self.rng.below(30)),
            14 => format!(
                "{:02}:{:02}:{:02}",
                self.rng.below(24),
                self.rng.below(60),
                self.rng.below(60)
            ),
            15 => format!(
                "${},{:03}.{:02}",
                self.rng.range(1, 999),
                self.rng.below(1000),
                self.rng.below(100)
            ),
            16 => self.luhn_valid_non_card(),
            17 => self.invalid_ssn(),
            18 => self.bad_check_iban(),
            19 => format!(
                "{}.{}.{}.{}",
                self.rng.range(256, 999),
                self.rng.below(256),
                self.rng.below(256),
                self.rng.below(256)
            ),
            20 => format!(
                "978-{}-{}-{}-{}",
                self.rng.range(0, 9),
                self.rng.digits(2),
                self.rng.digits(6),
                self.rng.below(10)
            ),
            _ => format!("INV-{}{}", self.rng.range(2019, 2026), self.rng.digits(8)),
        };
        self.negative(v)
    }

    /// 16 digits with a card's prefix whose last digit breaks Luhn.
    fn failing_luhn_id(&mut self) -> String {
        let prefix = *self.rng.pick(&["4", "51", "37", "6011"]);
        let body = format!("{prefix}{}", self.rng.digits(15 - prefix.len()));
        let wrong = (luhn_check_digit(&body) + 1 + self.rng.below(9) as u32) % 10;
        format!("{body}{wrong}")
    }

    /// Passes Luhn but no scheme issues numbers starting with 1, 7, 8 or 9.
    fn luhn_valid_non_card(&mut self) -> String {
        let body = format!(
            "{}{}",
            self.rng.pick(&["1", "7", "8", "9"]),
            self.rng.digits(14)
        );
        format!("{body}{}", luhn_check_digit(&body))
    }

    fn invalid_ssn(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!(
                "000-{:02}-{:04}",
                self.rng.range(1, 99),
                self.rng.range(1, 9999)
            ),
            1 => format!(
                "666-{:02}-{:04}",
                self.rng.range(1, 99),
                self.rng.range(1, 9999)
            ),
            2 => format!(
                "{}-00-{:04}",
                self.rng.range(100, 665),
                self.rng.range(1, 9999)
            ),
            _ => format!(
                "{}-{:02}-0000",
                self.rng.range(100, 665),
                self.rng.range(1, 99)
            ),
        }
    }

    fn bad_check_iban(&mut self) -> String {
        let bban = self.rng.digits(18);
        // Check digits run 02..=98; any other value in that range is wrong.
        let good = iban_check_digits("DE", &bban);
        let bad = 2 + (good - 2 + 1 + self.rng.below(96) as u32) % 97;
        format!("DE{bad:02}{bban}")
    }

    // ---- events ----------------------------------------------------------------------

    /// A prompt sentence carrying one planted value of `detector`.
    pub fn sentence_with(&mut self, detector: &str) -> String {
        match detector {
            "email" => {
                let e = self.email();
                match self.rng.below(5) {
                    0 => format!("Please send the invoice to {e} by Friday."),
                    1 => format!("Contact: {e}"),
                    2 => format!("<a href=\"mailto:{e}\">write to us</a>"),
                    3 => format!("Reviewers (cc {e}); approved."),
                    _ => format!("Forward this thread to <{e}> and cc legal."),
                }
            }
            "phone" => {
                let p = self.phone();
                match self.rng.below(4) {
                    0 => format!("Call me back at {p} after lunch."),
                    1 => format!("My number is {p}, text first."),
                    2 => format!("Phone: {p} x204 (desk)"),
                    _ => format!("tel: {p}"),
                }
            }
            "ssn" => {
                if self.rng.chance(25) {
                    format!("Tax form field {} attached.", self.ssn_after_label())
                } else {
                    format!("My social security number is {} for the W-2.", self.ssn())
                }
            }
            "credit_card" => {
                let c = self.card();
                match self.rng.below(3) {
                    0 => format!("Charge card {c} exp 09/27 for the renewal."),
                    1 => format!("pay with {c} 11/28 cvv 123"),
                    _ => format!("Card number: {c}."),
                }
            }
            "iban" => format!("Wire the refund to IBAN {} today.", self.iban()),
            "ipv4" => match self.rng.below(3) {
                0 => format!("Request came from {} via the EU edge.", self.ipv4()),
                1 => format!("X-Forwarded-For: {}, {}", self.ipv4(), self.ipv4()),
                _ => format!(
                    "client_ip={}:{} subnet {}/24",
                    self.ipv4(),
                    self.rng.range(1024, 65535),
                    self.ipv4()
                ),
            },
            "ipv6" => match self.rng.below(2) {
                0 => format!("Peer [{}]:443 reset the connection.", self.ipv6()),
                _ => format!("probe http://[{}]:8080/healthz failed", self.ipv6()),
            },
            "jwt" => match self.rng.below(2) {
                0 => format!(
                    "curl -H 'Authorization: Bearer {}' https://api.example.com/v1/me",
                    self.jwt()
                ),
                _ => format!("GET /callback?id_token={}&state=af0ifjsldkj", self.jwt()),
            },
            "bearer_token" => match self.rng.below(2) {
                0 => format!("Authorization: Bearer {}", self.bearer()),
                _ => format!(
                    "headers: authorization: bearer {}; accept: */*",
                    self.bearer()
                ),
            },
            "aws_access_key" => {
                if self.rng.chance(50) {
                    format!("export AWS_ACCESS_KEY_ID={}", self.aws_key_id())
                } else {
                    format!("aws_secret_access_key = {}", self.aws_secret())
                }
            }
            "api_key" => {
                if self.rng.chance(25) {
                    format!("GET /v1/models?api_key={}&limit=20", self.api_key_param())
                } else {
                    format!("I pasted my key {} by mistake, rotate it.", self.api_key())
                }
            }
            "private_key" => format!(
                "Here is the deploy key:\n{}\nplease install it.",
                self.private_key()
            ),
            "url_credentials" => format!(
                "connecting to {} failed: timeout",
                self.url_with_credentials()
            ),
            _ => match self.rng.below(2) {
                0 => format!(
                    "login attempt user=ops password={} from console",
                    self.secret_word()
                ),
                _ => format!(
                    "payload={{\"user\":\"ops\",\"password\":\"{}\"}} rejected",
                    self.secret_word()
                ),
            },
        }
    }

    pub fn sentence_from(&mut self, detectors: &[&str]) -> String {
        let detector = *self.rng.pick(detectors);
        self.sentence_with(detector)
    }

    /// A prompt sentence with look-alikes only.
    pub fn clean_sentence(&mut self) -> String {
        match self.rng.below(10) {
            0 => "Summarize the quarterly report in three bullet points.".to_string(),
            1 => format!(
                "Build {} failed on commit {} at {}.",
                self.hard_negative(),
                self.hard_negative(),
                self.hard_negative()
            ),
            2 => format!(
                "Order {} shipped; tracking {}.",
                self.hard_negative(),
                self.hard_negative()
            ),
            3 => "Explain std::collections::HashMap versus BTreeMap in Rust.".to_string(),
            4 => format!(
                "Request {} took 842 ms and used 1024 tokens: prompt_tokens=812.",
                self.uuid()
            ),
            5 => format!(
                "Compare {} with {} for latency.",
                self.hard_negative(),
                self.hard_negative()
            ),
            6 => format!(
                "The asset {} failed checksum {}.",
                self.hard_negative(),
                self.hard_negative()
            ),
            7 => "Translate 'the meeting moved to 16:9 format' into French.".to_string(),
            8 => format!(
                "Invoice {} totals {} incl. VAT.",
                self.hard_negative(),
                self.hard_negative()
            ),
            _ => format!(
                "Reference {} and {} in the changelog.",
                self.hard_negative(),
                self.hard_negative()
            ),
        }
    }

    pub fn prompt(&mut self, pii: bool) -> String {
        let mut parts = vec![self.clean_sentence()];
        if pii {
            let detector = *self.rng.pick(&DETECTORS[..DETECTORS.len() - 1]);
            parts.push(self.sentence_with(detector));
            if self.rng.chance(30) {
                let detector = *self.rng.pick(DETECTORS);
                parts.push(self.sentence_with(detector));
            }
        }
        if self.rng.chance(50) {
            parts.push(self.clean_sentence());
        }
        parts.join(" ")
    }
}

pub fn luhn_check_digit(body: &str) -> u32 {
    // The check digit makes the Luhn sum of body+digit a multiple of 10: double every
    // second digit counting from the right of the *final* number, i.e. the last body digit.
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// ISO 13616 check digits: 98 − (BBAN ‖ country ‖ "00" as a number mod 97).
pub fn iban_check_digits(country: &str, bban: &str) -> u32 {
    let rearranged = format!("{bban}{country}00");
    let mut remainder: u64 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0) as u64;
        remainder = if v >= 10 {
            (remainder * 100 + v) % 97
        } else {
            (remainder * 10 + v) % 97
        };
    }
    98 - remainder as u32
}

const ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/responses",
];
const MODELS: &[&str] = &[
    "gpt-4o",
    "claude-3-5-sonnet",
    "mistral-large",
    "llama-3.1-70b",
];

/// A realistic gateway audit event; with `pii`, personal data or secrets are planted in
/// its prompt, attributes, headers, embedded request JSON or log line.
pub fn gateway_event(rng: &mut Rng, pii: bool) -> Sample {
    let mut c = Composer::new(rng);
    let mut attributes = Map::new();
    attributes.insert("http.method".into(), json!("POST"));
    attributes.insert("http.route".into(), json!(*c.rng.pick(ROUTES)));
    attributes.insert(
        "http.status_code".into(),
        json!(*c.rng.pick(&[200, 200, 200, 401, 429, 500])),
    );
    attributes.insert("gen_ai.request.model".into(), json!(*c.rng.pick(MODELS)));
    attributes.insert(
        "gen_ai.usage.input_tokens".into(),
        json!(c.rng.range(10, 8000)),
    );
    attributes.insert(
        "gen_ai.usage.output_tokens".into(),
        json!(c.rng.range(1, 2000)),
    );
    let request_id = c.uuid();
    attributes.insert("request_id".into(), json!(request_id));
    attributes.insert("trace".into(), json!(c.rng.chars(32, HEX)));
    attributes.insert(
        "user.id".into(),
        json!(format!("usr_{}", c.rng.chars(10, ALNUM))),
    );
    attributes.insert("latency_ms".into(), json!(c.rng.range(20, 30_000)));
    let negative = c.hard_negative();
    attributes.insert("client.build".into(), json!(negative));

    let mut body = Map::new();
    let prompt = c.prompt(pii);
    body.insert("prompt".into(), json!(prompt));
    body.insert("completion".into(), json!(c.clean_sentence()));

    if pii {
        if c.rng.chance(40) {
            let ip = if c.rng.chance(70) { c.ipv4() } else { c.ipv6() };
            attributes.insert("client.address".into(), json!(ip));
        }
        if c.rng.chance(30) {
            let email = c.email();
            attributes.insert("user.email".into(), json!(email));
        }
        if c.rng.chance(30) {
            let header = *c.rng.pick(&[
                "http.request.header.authorization",
                "http.request.header.x-api-key",
                "http.request.header.cookie",
            ]);
            let value = c.secret_value();
            attributes.insert(header.into(), json!(value));
        }
        if c.rng.chance(40) {
            let content = c.sentence_from(&["email", "phone", "credit_card", "ssn", "api_key"]);
            let mut request = json!({
                "model": *c.rng.pick(MODELS),
                "max_tokens": c.rng.range(64, 4096),
                "temperature": 0.2,
                "messages": [{"role": "user", "content": content}],
            });
            if c.rng.chance(40) {
                let secret = c.secret_value();
                request["password"] = json!(secret);
            }
            body.insert("request".into(), json!(request.to_string()));
        }
        if c.rng.chance(25) {
            let line = c.sentence_from(&["url_credentials", "sensitive_key", "bearer_token"]);
            body.insert("log".into(), json!(line));
        }
    } else if c.rng.chance(40) {
        let request = json!({
            "model": *c.rng.pick(MODELS),
            "max_tokens": c.rng.range(64, 4096),
            "messages": [{"role": "user", "content": c.clean_sentence()}],
        });
        body.insert("request".into(), json!(request.to_string()));
    }

    let mut record = Record::new("otlp");
    record.time_unix_nano = 1_714_567_890_000_000_000 + c.rng.below(1_000_000_000_000);
    record.event_type = Some("llm.request".into());
    record.attributes = attributes;
    record.body = Value::Object(body);
    Sample {
        record,
        labels: c.labels,
        negatives: c.negatives,
    }
}

/// What a throughput-measurement event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Ordinary prompts: prose, ids and counters, nothing sensitive.
    Clean,
    /// Nothing sensitive, but look-alikes (versions, order ids, hashes, 16-digit ids) in
    /// every prompt, so that most strings reach the detectors' validation.
    LookAlikes,
    /// Three or four findings: a client address and two in the prompt.
    Pii,
}

const PROSE: &[&str] = &[
    "Summarize the attached quarterly report in three bullet points for the board.",
    "Translate the following paragraph into French, keeping the formal register.",
    "Write a short, friendly reply declining the meeting and proposing next week.",
    "What are the main differences between a mutex and a read-write lock?",
    "Draft release notes for the new search feature; keep it under 120 words.",
    "Classify the sentiment of this review as positive, neutral or negative.",
    "Explain the error in this SQL query and suggest a corrected version.",
    "Generate five subject lines for a newsletter about spring gardening.",
];

/// A compact event of about 500 bytes of JSON, for throughput measurements.
pub fn compact_event(rng: &mut Rng, content: Content) -> Record {
    let mut c = Composer::new(rng);
    let mut attributes = Map::new();
    attributes.insert("http.method".into(), json!("POST"));
    attributes.insert("http.route".into(), json!(*c.rng.pick(ROUTES)));
    attributes.insert("http.status_code".into(), json!(200));
    attributes.insert("gen_ai.request.model".into(), json!(*c.rng.pick(MODELS)));
    attributes.insert(
        "gen_ai.usage.input_tokens".into(),
        json!(c.rng.range(10, 8000)),
    );
    let request_id = c.uuid();
    attributes.insert("request_id".into(), json!(request_id));
    attributes.insert(
        "user.id".into(),
        json!(format!("usr_{}", c.rng.chars(10, ALNUM))),
    );
    attributes.insert("latency_ms".into(), json!(c.rng.range(20, 30_000)));
    let completion = *c.rng.pick(&[
        "Done.",
        "Here is the summary you asked for.",
        "Sure, see below.",
    ]);
    let prompt = match content {
        Content::Clean => c.rng.pick(PROSE).to_string(),
        Content::LookAlikes => c.clean_sentence(),
        Content::Pii => {
            let ip = c.ipv4();
            attributes.insert("client.address".into(), json!(ip));
            let a = c.sentence_from(&["email", "phone", "credit_card", "ssn"]);
            let b = c.sentence_from(&["api_key", "jwt", "iban", "email", "ipv4"]);
            format!("{a} {b}")
        }
    };
    let mut body = Map::new();
    body.insert("prompt".into(), json!(prompt));
    body.insert("completion".into(), json!(completion));
    let mut record = Record::new("otlp");
    record.time_unix_nano = 1_714_567_890_000_000_000 + c.rng.below(1_000_000_000_000);
    record.attributes = attributes;
    record.body = Value::Object(body);
    record
}
