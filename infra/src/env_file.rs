//! Loads `.kiln/local.env` (written by `deploy/local/up.sh`) into the process
//! environment. Variables already set in the environment win, so an operator can
//! always override one value without editing the file.

use std::path::{Path, PathBuf};

/// Where the env file is: `KILN_ENV_FILE` if set (empty disables it),
/// otherwise `.kiln/local.env` in the current directory (the project root,
/// where the local stack runs everything from). Never a parent directory:
/// a `.kiln/` planted higher up the tree cannot inject settings.
pub fn locate() -> Option<PathBuf> {
    if let Ok(explicit) = std::env::var("KILN_ENV_FILE") {
        return (!explicit.is_empty()).then(|| PathBuf::from(explicit));
    }
    let candidate = std::env::current_dir().ok()?.join(".kiln/local.env");
    candidate.is_file().then_some(candidate)
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
    use std::os::unix::fs::MetadataExt as _;
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading env file {}", path.display()))?;
    // It holds secrets and sets what the process trusts: others must not write it.
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "env file {} is writable by group or others; chmod 600 it",
            path.display()
        );
    }
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
