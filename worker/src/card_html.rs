//! A card's HTML: the template's `card.html` rendered by minijinja with HTML
//! auto-escaping (the template is named `*.html`), so a parameter can never
//! add markup. Variables: `id`, `idparts` (the id pattern's named groups) and
//! `params` (declared parameters; `original`-kind ones as same-origin URLs).
//!
//! An original's URL carries its ETag (`?v=`): pages are reused for many
//! cards and the browser keeps what it loaded, so a replaced avatar gets a
//! new URL and can never be drawn from the old bytes.

use std::collections::BTreeMap;

use kiln_core::cards::{CardTemplate, ParamKind};
use minijinja::Environment;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

use crate::chromium::intercept::ORIGINALS_PATH;

/// Characters escaped in an originals URL path ('/' kept as the separator).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\'')
    .add(b'\\');

/// `versions`: the ETag of each original the card embeds, by key.
pub fn render(
    template: &CardTemplate,
    id: &str,
    params: &BTreeMap<String, String>,
    versions: &BTreeMap<String, String>,
) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("card.html", &template.html)?;
    let manifest = &template.manifest;
    let idparts: BTreeMap<&str, &str> = manifest
        .id
        .captures(id)
        .map(|caps| {
            manifest
                .id
                .capture_names()
                .flatten()
                .filter_map(|name| caps.name(name).map(|m| (name, m.as_str())))
                .collect()
        })
        .unwrap_or_default();
    let values: BTreeMap<&str, String> = params
        .iter()
        .filter_map(|(name, value)| {
            let spec = manifest.params.get(name)?;
            Some(match spec.kind {
                ParamKind::Text => (name.as_str(), value.clone()),
                ParamKind::Original => (
                    name.as_str(),
                    format!(
                        "/{ORIGINALS_PATH}{}?v={}",
                        utf8_percent_encode(value, PATH),
                        utf8_percent_encode(
                            versions.get(value).map_or("", String::as_str),
                            NON_ALPHANUMERIC
                        )
                    ),
                ),
            })
        })
        .collect();
    env.get_template("card.html")?.render(minijinja::context! {
        id => id,
        idparts => idparts,
        params => values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::cards::Templates;

    fn templates() -> Templates {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        Templates::load(&root).expect("repository templates load")
    }

    #[test]
    fn parameters_are_escaped_never_markup() {
        let t = templates();
        let article = t.get("article").expect("article template");
        let mut params = BTreeMap::new();
        params.insert(
            "title".to_owned(),
            "<script>alert(1)</script><img src=x onerror=alert(2)>".to_owned(),
        );
        params.insert("author".to_owned(), "\"Ada\" & <b>Co</b>".to_owned());
        let html = render(article, "hello-world", &params, &BTreeMap::new()).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&quot;Ada&quot; &amp; &lt;b&gt;Co&lt;&#x2f;b&gt;"),
            "{html}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Whatever the (non-empty) parameters hold, the page has the same
        /// tags as with plain ones: no value adds or closes an element or an
        /// attribute. (Empty values may drop optional parts of a template.)
        #[test]
        fn no_parameter_changes_the_markup(
            title in "\\PC{1,140}",
            author in "\\PC{1,60}",
            tag in "[<>\"'&/=a-z ]{1,24}",
            avatar in "[a-z<>\"' ]{1,20}(/[a-z<>\"'% ]{1,20}){0,2}",
        ) {
            let t = templates();
            let article = t.get("article").expect("article template");
            let plain: BTreeMap<String, String> = ["title", "author", "tag", "avatar"]
                .iter()
                .map(|k| (k.to_string(), "x".to_owned()))
                .collect();
            let mut params = plain.clone();
            params.insert("title".into(), title);
            params.insert("author".into(), author);
            params.insert("tag".into(), tag);
            params.insert("avatar".into(), avatar);
            let baseline = render(article, "x", &plain, &BTreeMap::new()).unwrap();
            let html = render(article, "x", &params, &BTreeMap::new()).unwrap();
            for c in ['<', '>', '"', '\''] {
                proptest::prop_assert_eq!(html.matches(c).count(), baseline.matches(c).count(), "{:?}", c);
            }
        }
    }

    #[test]
    fn id_groups_and_originals_reach_the_template() {
        let t = templates();
        let stats = t.get("stats").expect("stats template");
        let html = render(stats, "12-34-10", &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert!(
            html.contains(">12<") && html.contains(">34<") && html.contains(">10<"),
            "{html}"
        );

        let article = t.get("article").expect("article template");
        let mut params = BTreeMap::new();
        params.insert("title".to_owned(), "T".to_owned());
        params.insert("avatar".to_owned(), "people/ada lovelace.png".to_owned());
        let mut versions = BTreeMap::new();
        versions.insert("people/ada lovelace.png".to_owned(), "\"e1\"".to_owned());
        let html = render(article, "x", &params, &versions).unwrap();
        // Attribute values are entity-escaped too; the browser reads `/` back.
        assert!(
            html.contains(
                "src=\"&#x2f;_originals&#x2f;people&#x2f;ada%20lovelace.png?v=%22e1%22\""
            ),
            "{html}"
        );
        // A replaced original is another URL.
        versions.insert("people/ada lovelace.png".to_owned(), "\"e2\"".to_owned());
        assert!(render(article, "x", &params, &versions)
            .unwrap()
            .contains("ada%20lovelace.png?v=%22e2%22"));
    }
}
