//! Loads `.kiln/local.env` (written by `deploy/local/up.sh`) into the process
//! environment. Variables already set in the environment win, so an operator can
//! always override one value without editing the file.

use std::path::{Path, PathBuf};

/// Where the env file is: `KILN_ENV_FILE` if set (empty disables it), otherwise
/// the first `.kiln/local.env` found walking up from the current directory.
pub fn locate() -> Option<PathBuf> {
    if let Ok(explicit) = std::env::var("KILN_ENV_FILE") {
        return (!explicit.is_empty()).then(|| PathBuf::from(explicit));
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let candidate = dir.join(".kiln/local.env");
        if candidate.is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Parses `KEY=VALUE` lines; `#` comments and blank lines are skipped, and one
/// pair of surrounding single or double quotes is removed from a value.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            Some((key.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

/// Reads the env file (if any) and sets every variable not already set.
/// Call it once at start-up, before any thread is spawned.
pub fn load() -> anyhow::Result<Option<PathBuf>> {
    let Some(path) = locate() else {
        return Ok(None);
    };
    load_from(&path)?;
    Ok(Some(path))
}

fn load_from(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading env file {}", path.display()))?;
    for (key, value) in parse(&text) {
        if std::env::var_os(&key).is_none() {
            // SAFETY-free: `set_var` is safe in edition 2021; called before threads start.
            std::env::set_var(key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_pairs_comments_and_quotes() {
        let parsed = parse("# comment\nA=1\n\nexport B=\"two words\"\nC='x=y'\nnot a pair\n");
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x=y".into()),
            ]
        );
    }
}
