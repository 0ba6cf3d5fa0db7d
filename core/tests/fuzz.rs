//! Property-based fuzzing of everything Kiln parses from a URL: image
//! options, source keys, signatures, nginx secure links and card parameters.
//! Inputs are the corpus in `fuzz/corpus/` (run as is, then mutated) plus
//! random strings; the properties are "never panics" and what a parse that
//! succeeds must guarantee (a canonical form that is a fixed point, a key
//! that cannot leave its bucket prefix, a signature bound to its payload).
//!
//! `PROPTEST_CASES=100000 cargo test --release -p kiln-core --test fuzz`
//! runs a longer campaign; a failure is shrunk and saved to
//! `core/tests/fuzz.proptest-regressions`, to be committed with its fix (the
//! file is replayed first on every run).

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::{select, Index};

use kiln_core::cards::{CardSpec, Templates};
use kiln_core::dialects::signer::{ImgproxyKey, ImgproxySigning, ThumborSigning};
use kiln_core::dialects::{imgproxy, thumbor, DialectRequest};
use kiln_core::nginx_link::{LinkRequest, SecureLinkExpr};
use kiln_core::options::ImageOptions;
use kiln_core::signing::SigningConfig;
use kiln_core::source_key::SourceKey;

fn corpus(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    text.lines().map(str::to_owned).collect()
}

/// A corpus entry with up to six single-character edits (insert, delete,
/// replace) drawn from `alphabet`.
fn mutated(entries: Vec<String>, alphabet: &'static str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    let edits = prop::collection::vec((any::<Index>(), 0u8..3, select(chars)), 0..6);
    (select(entries), edits).prop_map(|(entry, edits)| {
        let mut text: Vec<char> = entry.chars().collect();
        for (at, op, c) in edits {
            let pos = at.index(text.len() + 1);
            match op {
                0 => text.insert(pos, c),
                1 if pos < text.len() => {
                    text.remove(pos);
                }
                _ if pos < text.len() => text[pos] = c,
                _ => text.push(c),
            }
        }
        text.into_iter().collect()
    })
}

/// Corpus mutations half the time, arbitrary strings otherwise.
fn inputs(file: &str, alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![mutated(corpus(file), alphabet), any::<String>()]
}

const OPTION_CHARS: &str = "0123456789x,:.-fillpadgcnswe_upqrbdtmhvjaokXF%é\u{0}";
const PATH_CHARS: &str = "ab./\\%2eEfF05cC+ -~_é\u{0}\n";
const THUMBOR_CHARS: &str = "0123456789x-/:(),.%fitnlrgbhqsmuadp_éAZ\u{0}";
const IMGPROXY_CHARS: &str = "0123456789:/.@%-_=rsfilwhgcebqdpxtnoYaz\u{0}";
const QUERY_CHARS: &str = "=&%+<>\"'/.a-z03cC2fF\u{0}é";

fn check_options(text: &str) -> Result<(), TestCaseError> {
    if let Ok(options) = ImageOptions::parse(text) {
        let canonical = options.canonical();
        let again = ImageOptions::parse(&canonical);
        prop_assert!(again.is_ok(), "{text:?} → {canonical:?} does not parse");
        let twice = again.map(|o| o.canonical()).unwrap_or_default();
        prop_assert_eq!(&twice, &canonical, "canonical form of {:?} moves", text);
    }
    Ok(())
}

/// A dialect request that parsed: its source is a safe key, its options
/// are within the native grammar (their canonical form parses back to the
/// same rendition, a fixed point).
fn check_dialect(
    parsed: Result<DialectRequest, kiln_core::dialects::DialectError>,
) -> Result<(), TestCaseError> {
    if let Ok(request) = parsed {
        check_source(&request.source.to_url_path())?;
        let canonical = request.options.canonical();
        let again = ImageOptions::parse(&canonical);
        prop_assert!(again.is_ok(), "{canonical:?} does not parse");
        prop_assert_eq!(again.map(|o| o.canonical()).unwrap_or_default(), canonical);
    }
    Ok(())
}

fn thumbor_signing() -> ThumborSigning {
    ThumborSigning {
        keys: vec![b"fuzz".to_vec()],
        allow_unsafe: true,
        ..ThumborSigning::default()
    }
}

fn imgproxy_signing() -> ImgproxySigning {
    ImgproxySigning {
        keys: vec![ImgproxyKey {
            key: b"fuzz".to_vec(),
            salt: b"salt".to_vec(),
        }],
        signature_size: 32,
        allow_insecure: true,
    }
}

fn check_source(raw: &str) -> Result<(), TestCaseError> {
    if let Ok(key) = SourceKey::from_url_path(raw) {
        let key_text = key.as_str();
        prop_assert!(!key_text.is_empty() && !key_text.starts_with('/'));
        prop_assert!(
            key_text
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{raw:?} escaped as {key_text:?}"
        );
        prop_assert!(!key_text.chars().any(|c| c.is_control() || c == '\\'));
        let round = SourceKey::from_url_path(&key.to_url_path());
        prop_assert_eq!(round.as_ref().map(SourceKey::as_str), Ok(key_text));
    }
    Ok(())
}

fn check_card_query(templates: &Templates, id_ext: &str, query: &str) -> Result<(), TestCaseError> {
    let Some(article) = templates.get("article") else {
        return Err(TestCaseError::fail("no article template"));
    };
    if let Ok(spec) = CardSpec::check(article, id_ext, Some(query)) {
        let canonical = spec.canonical();
        let (id_ext2, query2) = canonical.split_once('?').unwrap_or((&canonical, ""));
        let again = CardSpec::check(article, id_ext2, Some(query2));
        prop_assert_eq!(
            again.map(|s| s.canonical()).ok(),
            Some(canonical.clone()),
            "{:?}?{:?} does not re-check",
            id_ext,
            query
        );
        for (name, value) in &spec.params {
            prop_assert!(!value.chars().any(char::is_control));
            if name == "avatar" {
                prop_assert!(SourceKey::new(value.as_str()).is_ok());
            }
        }
    }
    Ok(())
}

/// 2 000 cases per property in the test suite; `PROPTEST_CASES` for a campaign.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// The repository's templates, loaded once.
fn templates() -> &'static Templates {
    static TEMPLATES: std::sync::OnceLock<Templates> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(|| {
        Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
            .unwrap_or_else(|e| panic!("loading templates: {e:#}"))
    })
}

fn signing() -> SigningConfig {
    SigningConfig {
        keys: vec![b"fuzz-key-one".to_vec(), b"fuzz-key-two".to_vec()],
        signature_len: kiln_core::signing::FULL_SIGNATURE_LEN,
        allow_unsafe: false,
    }
}

#[test]
fn the_corpus_as_is() {
    for text in corpus("options.txt") {
        check_options(&text).unwrap_or_else(|e| panic!("{e}"));
    }
    for raw in corpus("paths.txt") {
        check_source(&raw).unwrap_or_else(|e| panic!("{e}"));
    }
    for path in corpus("thumbor.txt") {
        check_dialect(thumbor::parse(
            &format!("unsafe/{path}"),
            &thumbor_signing(),
            "originals",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for path in corpus("imgproxy.txt") {
        check_dialect(imgproxy::parse(
            &format!("insecure/{path}"),
            &imgproxy_signing(),
            "originals",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for query in corpus("card_queries.txt") {
        check_card_query(templates(), "hello-world.png", &query).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_corpus_keeps_its_escapes_out() {
    // The traversal entries of the corpus must all be refused.
    for raw in corpus("paths.txt") {
        let decoded = raw.to_ascii_lowercase();
        let escapes = decoded.starts_with("..")
            || decoded.starts_with("%2e%2e")
            || decoded.contains("/../")
            || decoded.contains("%2f")
            || decoded.contains('\\');
        if escapes {
            assert!(SourceKey::from_url_path(&raw).is_err(), "{raw:?} accepted");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn options_parse_or_refuse_and_canonical_forms_are_fixed_points(text in inputs("options.txt", OPTION_CHARS)) {
        check_options(&text)?;
    }

    #[test]
    fn thumbor_paths_parse_or_refuse_into_native_options(
        path in inputs("thumbor.txt", THUMBOR_CHARS),
        signed in any::<bool>(),
    ) {
        let signing = thumbor_signing();
        let path = if signed {
            format!("{}/{path}", signing.sign(&path).unwrap_or_default())
        } else {
            format!("unsafe/{path}")
        };
        check_dialect(thumbor::parse(&path, &signing, "originals"))?;
    }

    #[test]
    fn imgproxy_paths_parse_or_refuse_into_native_options(
        path in inputs("imgproxy.txt", IMGPROXY_CHARS),
        signed in any::<bool>(),
    ) {
        let signing = imgproxy_signing();
        let path = if signed {
            format!("{}/{path}", signing.sign(&format!("/{path}")).unwrap_or_default())
        } else {
            format!("insecure/{path}")
        };
        check_dialect(imgproxy::parse(&path, &signing, "originals"))?;
    }

    #[test]
    fn source_keys_never_escape_their_prefix(raw in inputs("paths.txt", PATH_CHARS)) {
        check_source(&raw)?;
    }

    #[test]
    fn a_signature_verifies_its_payload_and_nothing_else(
        payload in inputs("options.txt", OPTION_CHARS),
        other in any::<String>(),
        forged in any::<String>(),
        flip in any::<Index>(),
    ) {
        let signing = signing();
        let signature = signing.sign(&payload).unwrap_or_default();
        prop_assert_eq!(signing.verify(&signature, &payload), kiln_core::signing::Verdict::Valid);
        if other != payload {
            prop_assert_eq!(signing.verify(&signature, &other), kiln_core::signing::Verdict::Invalid);
        }
        if forged != signature {
            prop_assert_eq!(signing.verify(&forged, &payload), kiln_core::signing::Verdict::Invalid);
        }
        // One character changed.
        let mut bytes = signature.clone().into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap_or_default();
        prop_assert_eq!(signing.verify(&altered, &payload), kiln_core::signing::Verdict::Invalid);
    }

    #[test]
    fn nginx_links_parse_hash_and_verify_anything(
        expr in any::<String>(),
        uri in inputs("paths.txt", PATH_CHARS),
        expires in proptest::option::of(any::<String>()),
        given in any::<String>(),
    ) {
        let secret = SecureLinkExpr::parse("$secure_link_expires$uri secret")
            .map_err(TestCaseError::fail)?;
        let _ = SecureLinkExpr::parse(&expr);
        let request = LinkRequest { uri: &uri, expires: expires.as_deref(), remote_addr: "127.0.0.1" };
        let hash = secret.hash(&request);
        prop_assert!(secret.verify(&request, &hash));
        if given != hash {
            prop_assert!(!secret.verify(&request, &given));
        }
    }

    #[test]
    fn card_parameters_are_checked_and_canonical(
        id in inputs("paths.txt", PATH_CHARS),
        ext in select(vec!["jpg", "png", "webp", "gif", ""]),
        query in inputs("card_queries.txt", QUERY_CHARS),
    ) {
        check_card_query(templates(), &format!("{id}.{ext}"), &query)?;
    }
}
