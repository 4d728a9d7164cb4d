//! Secret generators: what a bootstrap secret's generated value looks like (alphabet, length,
//! format), how it is drawn from the OS's CSPRNG, and whether a value kept from an earlier run
//! still fits the generator the stamp asks for now.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

/// The length a generator makes when the stamp gives none (HostK8s' default too).
pub const DEFAULT_LENGTH: usize = 32;

/// The bounds of `length`: at least 8 (HostK8s documents 8 as the shortest password), at most
/// 4096 (a Secret value, not a file).
const LENGTHS: std::ops::RangeInclusive<usize> = 8..=4096;

/// What kindling generated before generators had types; kept as the default so the values
/// stored for existing envs still fit. Letters and digits without look-alikes (0 O 1 I l).
const UNAMBIGUOUS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/// HostK8s' password alphabet, `string.ascii_letters + string.digits + "!@#$%^&*"` (70).
const PASSWORD: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*";
/// HostK8s' token alphabet, `string.ascii_letters + string.digits` (62).
const TOKEN: &[u8] = PASSWORD.split_at(62).0;
const HEX: &[u8] = b"0123456789abcdef";

/// The kinds of generated value. HostK8s documents `password`, `token`, `hex` and `uuid`
/// (danielscholl-osdu/hostk8s@2add0a5, docs/secret-contracts.md); the rest are kindling's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// Letters and digits without look-alikes (57 symbols): a native stamp's default.
    Unambiguous,
    /// `A-Za-z0-9!@#$%^&*` (70 symbols).
    Password,
    /// `A-Za-z0-9` (62 symbols).
    Token,
    /// Lower-case `0-9a-f`.
    Hex,
    /// A random (version 4) UUID, lower case, `8-4-4-4-12`.
    Uuid,
    /// A Fernet key (Python `cryptography`, Airflow): url-safe base64 of 32 random bytes, with
    /// padding, 44 characters.
    Fernet,
    /// Standard base64 (with padding) of `length` random bytes.
    Base64,
}

impl GeneratorKind {
    pub const ALL: [GeneratorKind; 7] = [
        GeneratorKind::Unambiguous,
        GeneratorKind::Password,
        GeneratorKind::Token,
        GeneratorKind::Hex,
        GeneratorKind::Uuid,
        GeneratorKind::Fernet,
        GeneratorKind::Base64,
    ];

    /// The name a stamp writes.
    pub fn name(self) -> &'static str {
        match self {
            GeneratorKind::Unambiguous => "unambiguous",
            GeneratorKind::Password => "password",
            GeneratorKind::Token => "token",
            GeneratorKind::Hex => "hex",
            GeneratorKind::Uuid => "uuid",
            GeneratorKind::Fernet => "fernet",
            GeneratorKind::Base64 => "base64",
        }
    }

    pub fn from_name(name: &str) -> Option<GeneratorKind> {
        GeneratorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every name, for messages: `unambiguous, password, token, …`.
    pub fn known_names() -> String {
        GeneratorKind::ALL.map(GeneratorKind::name).join(", ")
    }

    /// Whether the value has one format whatever `length` says.
    pub fn is_fixed(self) -> bool {
        matches!(self, GeneratorKind::Uuid | GeneratorKind::Fernet)
    }
}

/// How one generated value is made: its kind and the stamp's `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SecretGenerator {
    #[serde(rename = "type")]
    pub kind: GeneratorKind,
    /// As the stamp wrote it: characters, except for `base64` (random bytes). `None` is
    /// [`DEFAULT_LENGTH`]; fixed formats (`uuid`, `fernet`) take none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

/// The OS gave no random bytes.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the OS: {0}")]
pub struct RandomnessError(getrandom::Error);

/// What is wrong with a generator's `length`, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthProblem {
    pub message: String,
    pub help: String,
}

impl SecretGenerator {
    pub fn new(kind: GeneratorKind, length: Option<usize>) -> SecretGenerator {
        SecretGenerator { kind, length }
    }

    fn length_or_default(&self) -> usize {
        self.length.unwrap_or(DEFAULT_LENGTH)
    }

    /// A new value from the OS's CSPRNG.
    pub fn generate(&self) -> Result<String, RandomnessError> {
        self.generate_from(&mut |bytes: &mut [u8]| getrandom::fill(bytes).map_err(RandomnessError))
    }

    /// A new value from the random bytes `random` fills in.
    fn generate_from(
        &self,
        random: &mut dyn FnMut(&mut [u8]) -> Result<(), RandomnessError>,
    ) -> Result<String, RandomnessError> {
        let n = self.length_or_default();
        match self.kind {
            GeneratorKind::Unambiguous => pick(UNAMBIGUOUS, n, random),
            GeneratorKind::Password => pick(PASSWORD, n, random),
            GeneratorKind::Token => pick(TOKEN, n, random),
            GeneratorKind::Hex => pick(HEX, n, random),
            GeneratorKind::Uuid => {
                let mut b = [0u8; 16];
                random(&mut b)?;
                // RFC 4122 §4.4: version 4 in the high nibble of byte 6, variant 10 in the high
                // bits of byte 8 (what Python's uuid.uuid4() sets).
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Ok(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ))
            }
            GeneratorKind::Fernet => {
                // cryptography's Fernet.generate_key(): base64.urlsafe_b64encode(os.urandom(32)).
                let mut b = [0u8; 32];
                random(&mut b)?;
                Ok(URL_SAFE.encode(b))
            }
            GeneratorKind::Base64 => {
                let mut b = vec![0u8; n];
                random(&mut b)?;
                Ok(STANDARD.encode(b))
            }
        }
    }

    /// Whether `value` (kept from an earlier run) is what this generator makes: the length and
    /// the format. A value that fits is kept; one that does not (the stamp changed the
    /// generator) is made again.
    pub fn fits(&self, value: &str) -> bool {
        let n = self.length_or_default();
        let of = |alphabet: &[u8]| value.len() == n && value.bytes().all(|b| alphabet.contains(&b));
        match self.kind {
            GeneratorKind::Unambiguous => of(UNAMBIGUOUS),
            GeneratorKind::Password => of(PASSWORD),
            GeneratorKind::Token => of(TOKEN),
            GeneratorKind::Hex => of(HEX),
            GeneratorKind::Uuid => is_uuid_v4(value),
            GeneratorKind::Fernet => URL_SAFE.decode(value).is_ok_and(|b| b.len() == 32),
            GeneratorKind::Base64 => STANDARD.decode(value).is_ok_and(|b| b.len() == n),
        }
    }

    /// What is wrong with `length`, if anything: out of bounds, or given to a fixed format.
    pub fn length_problem(&self) -> Option<LengthProblem> {
        let name = self.kind.name();
        let length = self.length?;
        if self.kind.is_fixed() {
            let what = match self.kind {
                GeneratorKind::Uuid => "a uuid is always 36 characters",
                _ => "a Fernet key is always 32 random bytes (44 characters)",
            };
            return Some(LengthProblem {
                message: format!("{length} is not allowed for {name}: {what}"),
                help: "remove `length`".to_string(),
            });
        }
        if LENGTHS.contains(&length) {
            return None;
        }
        let unit = match self.kind {
            GeneratorKind::Base64 => "random bytes",
            _ => "characters",
        };
        Some(LengthProblem {
            message: format!("{length} is out of range"),
            help: format!(
                "generate between {} and {} {unit} ({name})",
                LENGTHS.start(),
                LENGTHS.end()
            ),
        })
    }
}

/// `n` symbols of `alphabet`, each equally likely: bytes at or above the largest multiple of
/// the alphabet's size are dropped rather than folded in (no modulo bias).
fn pick(
    alphabet: &[u8],
    n: usize,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), RandomnessError>,
) -> Result<String, RandomnessError> {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(n);
    let mut bytes = [0u8; 64];
    while out.len() < n {
        random(&mut bytes)?;
        for &b in &bytes {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Lower-case `8-4-4-4-12` hex with version 4 and variant 10 (`[89ab]`).
fn is_uuid_v4(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => HEX.contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn generated(kind: GeneratorKind, length: Option<usize>) -> String {
        SecretGenerator::new(kind, length).generate().unwrap()
    }

    /// Every byte value in turn: each alphabet symbol can come up, and the rejection of the
    /// bytes past the last full round of the alphabet is exercised.
    fn counting() -> impl FnMut(&mut [u8]) -> Result<(), RandomnessError> {
        let mut next = 0u8;
        move |bytes: &mut [u8]| {
            for b in bytes {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(())
        }
    }

    fn symbols(value: &str) -> BTreeSet<u8> {
        value.bytes().collect()
    }

    #[test]
    fn secret_generator_alphabets_are_the_documented_ones() {
        assert_eq!(UNAMBIGUOUS.len(), 57);
        assert_eq!(PASSWORD.len(), 70);
        assert_eq!(TOKEN.len(), 62);
        assert!(TOKEN.iter().all(u8::is_ascii_alphanumeric));
        assert_eq!(symbols(std::str::from_utf8(PASSWORD).unwrap()).len(), 70);
        assert!(!UNAMBIGUOUS.iter().any(|b| b"0O1Il".contains(b)));
        assert_eq!(&PASSWORD[62..], b"!@#$%^&*");
    }

    #[test]
    fn secret_generator_default_is_unambiguous_letters_and_digits_of_the_asked_length() {
        let v = generated(GeneratorKind::Unambiguous, Some(2000));
        assert_eq!(v.len(), 2000);
        assert!(v.bytes().all(|b| UNAMBIGUOUS.contains(&b)), "{v}");
        assert!(symbols(&v).len() > 50, "{}", symbols(&v).len());
        assert_eq!(generated(GeneratorKind::Unambiguous, None).len(), 32);
    }

    #[test]
    fn secret_generator_password_uses_all_70_symbols_of_hostk8s() {
        let v = generated(GeneratorKind::Password, Some(3000));
        assert_eq!(v.len(), 3000);
        assert!(v.bytes().all(|b| PASSWORD.contains(&b)), "{v}");
        assert!(symbols(&v).len() > 65, "{}", symbols(&v).len());
        // Every symbol can come up: the first 70 byte values give each one once.
        let every = SecretGenerator::new(GeneratorKind::Password, Some(70))
            .generate_from(&mut counting())
            .unwrap();
        assert_eq!(symbols(&every).len(), 70);
        assert_eq!(generated(GeneratorKind::Password, None).len(), 32);
    }

    #[test]
    fn secret_generator_token_is_alphanumeric_of_the_asked_length() {
        let v = generated(GeneratorKind::Token, Some(3000));
        assert_eq!(v.len(), 3000);
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric()), "{v}");
        assert!(symbols(&v).len() > 57, "{}", symbols(&v).len());
        let every = SecretGenerator::new(GeneratorKind::Token, Some(62))
            .generate_from(&mut counting())
            .unwrap();
        assert_eq!(symbols(&every).len(), 62);
        assert_eq!(generated(GeneratorKind::Token, None).len(), 32);
    }

    #[test]
    fn secret_generator_hex_is_lowercase_hex_of_the_asked_length() {
        for length in [8, 9, 32, 64] {
            let v = generated(GeneratorKind::Hex, Some(length));
            assert_eq!(v.len(), length, "{v}");
            assert!(
                v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{v}"
            );
        }
        let v = generated(GeneratorKind::Hex, Some(1000));
        assert_eq!(symbols(&v).len(), 16);
        assert_eq!(generated(GeneratorKind::Hex, None).len(), 32);
    }

    #[test]
    fn secret_generator_uuid_is_a_lowercase_version_4_uuid() {
        for _ in 0..200 {
            let v = generated(GeneratorKind::Uuid, None);
            assert_eq!(v.len(), 36, "{v}");
            let groups: Vec<usize> = v.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{v}");
            assert!(v.bytes().all(|b| b == b'-' || HEX.contains(&b)), "{v}");
            assert_eq!(&v[14..15], "4", "version nibble: {v}");
            assert!(matches!(&v[19..20], "8" | "9" | "a" | "b"), "variant: {v}");
        }
        // The version and variant bits are set whatever the random bytes are.
        for byte in [0x00, 0xff] {
            let v = SecretGenerator::new(GeneratorKind::Uuid, None)
                .generate_from(&mut |b: &mut [u8]| {
                    b.fill(byte);
                    Ok(())
                })
                .unwrap();
            let expected = if byte == 0 {
                "00000000-0000-4000-8000-000000000000"
            } else {
                "ffffffff-ffff-4fff-bfff-ffffffffffff"
            };
            assert_eq!(v, expected);
        }
    }

    #[test]
    fn secret_generator_fernet_is_url_safe_base64_of_32_bytes_with_padding() {
        for _ in 0..200 {
            let v = generated(GeneratorKind::Fernet, None);
            assert_eq!(v.len(), 44, "{v}");
            assert!(v.ends_with('='), "{v}");
            assert!(
                v[..43]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{v}"
            );
            assert_eq!(URL_SAFE.decode(&v).unwrap().len(), 32);
        }
        // Bytes that standard base64 writes as '+' and '/' come out as '-' and '_'.
        let v = SecretGenerator::new(GeneratorKind::Fernet, None)
            .generate_from(&mut |b: &mut [u8]| {
                b.fill(0xfb);
                Ok(())
            })
            .unwrap();
        assert!(v.contains('-') && v.contains('_'), "{v}");
    }

    #[test]
    fn secret_generator_base64_is_standard_base64_of_length_random_bytes() {
        for (length, chars) in [(None, 44), (Some(16), 24), (Some(33), 44), (Some(64), 88)] {
            let v = generated(GeneratorKind::Base64, length);
            assert_eq!(v.len(), chars, "{v}");
            let bytes = STANDARD.decode(&v).unwrap();
            assert_eq!(bytes.len(), length.unwrap_or(32));
        }
        let v = SecretGenerator::new(GeneratorKind::Base64, Some(9))
            .generate_from(&mut |b: &mut [u8]| {
                b.fill(0xfb);
                Ok(())
            })
            .unwrap();
        assert_eq!(v, "+/v7+/v7+/v7", "the standard alphabet");
    }

    #[test]
    fn secret_generator_values_fit_their_own_generator_and_no_other_format() {
        let all = GeneratorKind::ALL.map(|kind| {
            let g = SecretGenerator::new(kind, (!kind.is_fixed()).then_some(40));
            (g, g.generate().unwrap())
        });
        for (g, v) in &all {
            assert!(g.fits(v), "{g:?} {v}");
        }
        let fits = |kind: GeneratorKind, length: Option<usize>, v: &str| {
            SecretGenerator::new(kind, length).fits(v)
        };
        // A different length does not fit.
        assert!(!fits(GeneratorKind::Token, Some(41), &all[2].1));
        assert!(!fits(GeneratorKind::Base64, Some(41), &all[6].1));
        // Stored values of the old (untyped) generator fit the default, token and password:
        // switching to either keeps them.
        let unambiguous = &all[0].1;
        for kind in [GeneratorKind::Token, GeneratorKind::Password] {
            assert!(fits(kind, Some(40), unambiguous), "{kind:?}");
        }
        // What HostK8s `hex` used to get from kindling (alphanumerics) is made again.
        assert!(!fits(
            GeneratorKind::Hex,
            Some(40),
            "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopq"
        ));
        assert!(!fits(GeneratorKind::Hex, Some(8), "DEADBEEF"));
        assert!(!fits(GeneratorKind::Token, Some(8), "abc!defg"));
        assert!(!fits(
            GeneratorKind::Uuid,
            None,
            "00000000-0000-1000-8000-000000000000"
        ));
        assert!(!fits(
            GeneratorKind::Uuid,
            None,
            "00000000-0000-4000-c000-000000000000"
        ));
        assert!(!fits(
            GeneratorKind::Uuid,
            None,
            "0000000A-0000-4000-8000-000000000000"
        ));
        assert!(!fits(
            GeneratorKind::Uuid,
            None,
            "00000000000040008000000000000000"
        ));
        // A standard-base64 key is no Fernet key; an unpadded one is not either.
        let standard = STANDARD.encode([0xfb; 32]);
        assert!(!fits(GeneratorKind::Fernet, None, &standard));
        assert!(!fits(
            GeneratorKind::Fernet,
            None,
            all[5].1.trim_end_matches('=')
        ));
        assert!(!fits(
            GeneratorKind::Base64,
            Some(32),
            &URL_SAFE.encode([0xfb; 32])
        ));
    }

    #[test]
    fn secret_generator_lengths_are_checked_per_kind() {
        let problem = |kind: GeneratorKind, length: Option<usize>| {
            SecretGenerator::new(kind, length).length_problem()
        };
        for kind in GeneratorKind::ALL {
            assert_eq!(problem(kind, None), None, "{kind:?}: the default fits");
        }
        for kind in [
            GeneratorKind::Unambiguous,
            GeneratorKind::Password,
            GeneratorKind::Token,
            GeneratorKind::Hex,
            GeneratorKind::Base64,
        ] {
            for bad in [0, 1, 7, 4097] {
                let p = problem(kind, Some(bad)).unwrap_or_else(|| panic!("{kind:?} {bad}"));
                assert_eq!(p.message, format!("{bad} is out of range"));
                assert!(p.help.contains("between 8 and 4096"), "{}", p.help);
            }
            for good in [8, 9, 4096] {
                assert_eq!(problem(kind, Some(good)), None, "{kind:?} {good}");
            }
        }
        assert!(
            problem(GeneratorKind::Base64, Some(4))
                .unwrap()
                .help
                .contains("random bytes")
        );
        for kind in [GeneratorKind::Uuid, GeneratorKind::Fernet] {
            let p = problem(kind, Some(36)).unwrap();
            assert!(p.message.contains("is not allowed"), "{}", p.message);
            assert_eq!(p.help, "remove `length`");
        }
    }

    #[test]
    fn secret_generator_names_round_trip() {
        for kind in GeneratorKind::ALL {
            assert_eq!(GeneratorKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(GeneratorKind::from_name("random"), None);
        assert_eq!(GeneratorKind::from_name("HEX"), None);
        assert_eq!(
            GeneratorKind::known_names(),
            "unambiguous, password, token, hex, uuid, fernet, base64"
        );
    }
}
