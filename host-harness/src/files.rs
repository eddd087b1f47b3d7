//! Durable file writes: never a partly written file, never an overwrite by accident.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The permission bits (Unix) of a file anyone on the host may read.
pub const READABLE: u32 = 0o644;

/// Writes `bytes` to `path` durably: a temporary file in the same folder,
/// fsynced, renamed into place, then the folder fsynced.
pub fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_durably_with_mode(path, bytes, READABLE)
}

/// [`write_durably`] with the file's permission bits (Unix).
pub fn write_durably_with_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_durably_from(path, mode, |file| Ok(file.write_all(bytes)?))
}

/// [`write_durably`] of what `fill` writes into the file, so that a large
/// content can go in pieces. When `fill` fails, the temporary file goes and
/// `path` is untouched.
pub fn write_durably_from(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // A bare file name lives in the current folder.
    let dir = match path.parent().context("the path has no folder")? {
        dir if dir.as_os_str().is_empty() => Path::new("."),
        dir => dir,
    };
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_path(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = fill(&mut file)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            file.sync_all()
                .with_context(|| format!("syncing {}", tmp.display()))
        });
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))?;
    sync_dir(dir)
}

/// A temporary name beside `path`, unique to this process and this write:
/// two threads writing the same file never share one.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{}-{serial}.tmp", std::process::id()))
}

/// Syncs the folder `dir`, so that a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// A file name safe to create: no folders, no `..`, no control characters,
/// not a reserved device name; `fallback` when nothing usable is left.
pub fn sanitize_file_name(name: &str, fallback: &str) -> String {
    const RESERVED: [&str; 22] = [
        "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
        "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    ];
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .to_string();
    let stem = cleaned
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if cleaned.is_empty() || RESERVED.contains(&stem.as_str()) {
        return fallback.to_string();
    }
    cleaned.chars().take(200).collect()
}

/// Stores `bytes` as `name` in `dir` without overwriting an existing file:
/// a collision gets ` (2)`, ` (3)`, … before the extension. Returns the path.
pub fn store_new_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_path(&dir.join(name));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    let linked = link_as_new(&tmp, dir, name, |_| Ok(()));
    let _ = fs::remove_file(&tmp);
    linked
}

/// Gives the (synced) file `source` a second name `name` in `dir`, never
/// taking an existing name: a collision gets ` (2)`, ` (3)`, … before the
/// extension. `before_link` hears each candidate before it is tried, so a
/// caller can record where the file is about to appear. Returns the path.
pub fn link_as_new(
    source: &Path,
    dir: &Path,
    name: &str,
    mut before_link: impl FnMut(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    for attempt in 1..10_000 {
        let candidate = if attempt == 1 {
            dir.join(name)
        } else {
            dir.join(format!("{stem} ({attempt}){extension}"))
        };
        if candidate.exists() {
            continue;
        }
        before_link(&candidate)?;
        // hard_link fails if the target exists: no overwrite, even under a race.
        match fs::hard_link(source, &candidate) {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("storing {}", candidate.display())),
        }
    }
    anyhow::bail!("too many files named {name:?} in {}", dir.display())
}

/// Whether `a` and `b` are one file under two names.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (fs::read(a), fs::read(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// A new empty folder `<name>-<process id>` in the system's temporary
/// folder, for a test to keep its files in; one left by an earlier run is
/// removed first.
#[cfg(test)]
pub(crate) fn empty_test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    if let Err(e) = fs::create_dir_all(&dir) {
        panic!("creating the test folder {}: {e}", dir.display());
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_file_names_are_made_safe() {
        assert_eq!(sanitize_file_name("../../etc/passwd", "x"), "passwd");
        assert_eq!(sanitize_file_name("..\\..\\boot.ini", "x"), "boot.ini");
        assert_eq!(sanitize_file_name("CON.txt", "x"), "x");
        assert_eq!(sanitize_file_name("..", "x"), "x");
        assert_eq!(sanitize_file_name("po\n4711.edi", "x"), "po_4711.edi");
        assert_eq!(sanitize_file_name("order 1.x12", "x"), "order 1.x12");
    }

    #[test]
    fn collisions_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("as2-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = store_new_file(&dir, "po.x12", b"one").unwrap();
        let second = store_new_file(&dir, "po.x12", b"two").unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read(&first).unwrap(), b"one");
        assert_eq!(fs::read(&second).unwrap(), b"two");
        assert!(second.ends_with("po (2).x12"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_that_fails_midway_leaves_the_old_file_and_no_temporary_one() {
        let dir = std::env::temp_dir().join(format!("as2-files-fail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("po.x12");
        write_durably(&path, b"old").unwrap();
        let error = write_durably_from(&path, READABLE, |file| {
            file.write_all(b"half of the new")?;
            anyhow::bail!("the source ran dry")
        })
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("the source ran dry"),
            "{error:#}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["po.x12"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
