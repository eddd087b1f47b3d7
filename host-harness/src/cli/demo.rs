//! `demo`: two stations on loopback, in a temporary folder or one kept.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

/// `demo [--keep DIR]`: fails unless the MDN says processed, its MIC
/// matches and the document arrived intact.
pub async fn demo(keep: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (dir, temporary) = match keep {
        Some(dir) => (dir.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!("as2-demo-{}", std::process::id())),
            true,
        ),
    };
    refuse_non_empty(&dir)?;
    let mut stdout = std::io::stdout();
    let outcome = as2_harness::demo::run(&dir, &mut stdout).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let outcome = outcome?;
    if !(outcome.disposition == "processed" && outcome.mic_matched && outcome.received_intact) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo makes its stations afresh: it never mixes them into a folder
/// that holds something already.
fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; pick an empty or new folder for --keep",
            dir.display()
        );
    }
    Ok(())
}
