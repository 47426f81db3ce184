//! Man pages and shell completions, generated from the command line itself so they can never
//! disagree with it. The Debian package runs `hookd generate …` on the binary it packages
//! (packaging/build-deb.sh) rather than generating at compile time: a build script would have
//! to compile the whole `hookd` library a second time to see `RawSettings`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

/// Writes `hookd.1` and one page per visible sub-command (`hookd-serve.1`,
/// `hookd-token-create.1`, …) into `dir`; returns the pages there.
pub fn man_pages(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

/// Writes the bash, zsh and fish completions into `dir`; returns the files written.
pub fn completions(mut command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut command, "hookd", dir)
                .with_context(|| format!("cannot write the {shell} completions"))
        })
        .collect()
}
