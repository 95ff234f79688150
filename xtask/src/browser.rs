//! Headless Chromium from Debian's packages: installed when missing, then used to render a page
//! (the DOM after its scripts ran) and to take a screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The Debian packages: the browser, and a font so text renders the same on every machine.
const PACKAGES: [&str; 2] = ["chromium", "fonts-dejavu-core"];

/// How long one browser run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A headless Chromium with a profile directory of its own (so runs never share state).
pub struct Chromium {
    program: PathBuf,
    profile: tempfile::TempDir,
}

impl Chromium {
    /// Finds `chromium`, installing the Debian packages first when it is missing (needs root,
    /// as CI runs; `apt-get update` once, then the install).
    pub fn ensure(sh: &Shell) -> Result<Self> {
        if !installed(sh) {
            println!(
                "chromium not found: installing {} with apt-get",
                PACKAGES.join(" ")
            );
            let lock = "DPkg::Lock::Timeout=300";
            cmd!(sh, "apt-get update -qq")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .run()
                .context("apt-get update")?;
            cmd!(
                sh,
                "apt-get install -y -qq -o {lock} --no-install-recommends {PACKAGES...}"
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("installing chromium with apt-get (needs root)")?;
            if !installed(sh) {
                bail!("chromium was installed but does not run");
            }
        }
        let version = cmd!(sh, "chromium --version").quiet().read()?;
        println!("browser: {version}");
        let profile = tempfile::Builder::new()
            .prefix("accountservice-chromium-")
            .tempdir()
            .context("creating a browser profile directory")?;
        Ok(Self {
            program: PathBuf::from("chromium"),
            profile,
        })
    }

    /// The DOM of `url` after its scripts ran for up to `budget` of virtual time (timers and
    /// fetches run; the page's own polling is cut off at the budget).
    pub fn dump_dom(&self, url: &str, budget: Duration) -> Result<String> {
        let budget = format!("--virtual-time-budget={}", budget.as_millis());
        let output = self.run(&[&budget, "--dump-dom", url])?;
        Ok(String::from_utf8_lossy(&output).into_owned())
    }

    /// A PNG screenshot of `url` at `width`x`height`, after `budget` of virtual time.
    pub fn screenshot(
        &self,
        url: &str,
        path: &Path,
        (width, height): (u32, u32),
        budget: Duration,
    ) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(path);
        let budget = format!("--virtual-time-budget={}", budget.as_millis());
        let size = format!("--window-size={width},{height}");
        let target = format!("--screenshot={}", path.display());
        self.run(&[&budget, &size, "--hide-scrollbars", &target, url])?;
        if !path.is_file() {
            bail!("chromium wrote no screenshot to {}", path.display());
        }
        Ok(())
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let limit = RUN_LIMIT.as_secs().to_string();
        let profile = format!("--user-data-dir={}", self.profile.path().display());
        let output = Command::new("timeout")
            .args(["--kill-after=5", &limit])
            .arg(&self.program)
            .args([
                "--headless",
                // Root (as in CI) cannot use the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                &profile,
            ])
            .args(args)
            .output()
            .context("running chromium")?;
        if !output.status.success() {
            bail!(
                "chromium {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        Ok(output.stdout)
    }
}

fn installed(sh: &Shell) -> bool {
    cmd!(sh, "chromium --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// A rendered page, searched as text: enough to find the elements the status page marks with
/// `id` and `data-*` attributes, without an HTML parser.
pub struct Dom(pub String);

impl Dom {
    /// The inner HTML of the element with this `id`, if present.
    pub fn by_id(&self, id: &str) -> Option<&str> {
        let open = format!("id=\"{id}\"");
        let start = self.0.find(&open)?;
        let start = start + self.0[start..].find('>')? + 1;
        let tag_start = self.0[..start].rfind('<')? + 1;
        let tag: String = self.0[tag_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let end = start + self.0[start..].find(&format!("</{tag}>"))?;
        Some(&self.0[start..end])
    }

    /// The `<tr>` rows of an element's inner HTML.
    pub fn rows(inner: &str) -> Vec<&str> {
        inner
            .match_indices("<tr")
            .map(|(start, _)| {
                let row = &inner[start..];
                row.find("</tr>").map_or(row, |end| &row[..end])
            })
            .collect()
    }

    /// The text of a fragment: tags removed, entities for `&<>"` decoded, spaces collapsed.
    pub fn text(fragment: &str) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        for c in fragment.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    text.push(' ');
                }
                _ if !in_tag => text.push(c),
                _ => {}
            }
        }
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_their_text_are_found_by_id() {
        let dom = Dom(r#"<table><tbody id="replicas"><tr data-status="UP"><td><span class="badge">up</span></td><td>a &amp; b</td></tr><tr data-status="GONE"><td>gone</td></tr></tbody></table>"#.into());
        let inner = dom.by_id("replicas").unwrap();
        let rows = Dom::rows(inner);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].contains(r#"data-status="UP""#));
        assert_eq!(Dom::text(rows[0]), "up a & b");
        assert!(dom.by_id("nothing").is_none());
    }
}
