//! The host side of the WIT `blob` resource: bytes kept here, outside the
//! component's memory. A blob starts in memory and moves to a file in the
//! station's `blobs/` folder once it outgrows [`SPILL_BYTES`], so a message
//! of hundreds of megabytes costs the page cache, not the process. A
//! document to send is read from its own file where it lies. A kept blob is
//! a file named for the hash of its name, synced before `keep` returns.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sha2::Digest;

use crate::state::StateStore;

/// Beyond this size a blob lives in a file.
pub const SPILL_BYTES: usize = 8 << 20;

/// Bytes held for the component.
pub struct Blob {
    store: Store,
    /// The folder spill files and kept blobs go to.
    dir: PathBuf,
}

enum Store {
    Memory(Vec<u8>),
    /// Another blob, read only: a request body handed to more than one call.
    Shared(Arc<Blob>),
    File {
        file: File,
        len: u64,
        path: PathBuf,
        /// A spill file of this blob alone, removed when it is dropped.
        temporary: bool,
    },
}

impl Blob {
    /// A new, empty blob whose files go to `dir`.
    pub fn new(dir: &Path) -> Self {
        Blob {
            store: Store::Memory(Vec::new()),
            dir: dir.to_path_buf(),
        }
    }

    /// A blob of `bytes`.
    pub fn from_bytes(dir: &Path, bytes: Vec<u8>) -> Self {
        Blob {
            store: Store::Memory(bytes),
            dir: dir.to_path_buf(),
        }
    }

    /// The file at `path`, read where it lies (a document to send).
    pub fn from_file(dir: &Path, path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        Ok(Blob {
            store: Store::File {
                file,
                len,
                path: path.to_path_buf(),
                temporary: false,
            },
            dir: dir.to_path_buf(),
        })
    }

    /// A read-only view of `blob` for one call, so that a request body
    /// read once can be handed to a second call without a copy.
    pub fn shared(blob: Arc<Blob>) -> Self {
        Blob {
            dir: blob.dir.clone(),
            store: Store::Shared(blob),
        }
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        match &self.store {
            Store::Memory(bytes) => bytes.len() as u64,
            Store::Shared(blob) => blob.len(),
            Store::File { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `length` bytes from `offset`, fewer where the blob ends.
    pub fn read(&self, offset: u64, length: u32) -> anyhow::Result<Vec<u8>> {
        let end = offset.saturating_add(u64::from(length)).min(self.len());
        let start = offset.min(end);
        match &self.store {
            Store::Memory(bytes) => Ok(bytes[start as usize..end as usize].to_vec()),
            Store::Shared(blob) => blob.read(offset, length),
            Store::File { file, path, .. } => {
                let mut out = vec![0u8; (end - start) as usize];
                file.read_exact_at(&mut out, start)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(out)
            }
        }
    }

    /// Appends `data`, moving to a file past [`SPILL_BYTES`].
    pub fn append(&mut self, data: &[u8]) -> anyhow::Result<()> {
        if let Store::Memory(bytes) = &mut self.store {
            if bytes.len() + data.len() <= SPILL_BYTES {
                bytes.extend_from_slice(data);
                return Ok(());
            }
            let held = std::mem::take(bytes);
            self.store = self.spill(&held)?;
        }
        match &mut self.store {
            Store::File {
                file,
                len,
                path,
                temporary: true,
            } => {
                file.write_all_at(data, *len)
                    .with_context(|| format!("writing {}", path.display()))?;
                *len += data.len() as u64;
                Ok(())
            }
            Store::File { path, .. } => anyhow::bail!(
                "{} is kept or is a document, and is not appended to",
                path.display()
            ),
            Store::Shared(_) => anyhow::bail!("a received request's body is not appended to"),
            Store::Memory(_) => unreachable!("spilled just above"),
        }
    }

    fn spill(&self, held: &[u8]) -> anyhow::Result<Store> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(format!("spill-{}.tmp", unique()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(held)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Store::File {
            file,
            len: held.len() as u64,
            path,
            temporary: true,
        })
    }

    /// Keeps it durably under `name`; returns once it is on disk. A blob
    /// still in memory goes into the state store, in the same kind of
    /// write as a message record: a file of its own would cost a rename and
    /// a folder sync (a journal commit) for every small message.
    pub fn keep(&mut self, name: &str, state: &StateStore) -> anyhow::Result<()> {
        let target = kept_path(&self.dir, name);
        let key = kept_key(name);
        match &mut self.store {
            Store::Shared(_) => anyhow::bail!("a received request's body is not kept"),
            Store::Memory(bytes) => {
                state
                    .set(&key, bytes)
                    .context("keeping a message in the state store")?;
                return remove_if_present(&target);
            }
            Store::File {
                file,
                path,
                temporary,
                ..
            } if *temporary => {
                file.sync_all()
                    .with_context(|| format!("syncing {}", path.display()))?;
                fs::rename(&*path, &target)
                    .with_context(|| format!("moving {} into place", path.display()))?;
                crate::files::sync_dir(&self.dir)?;
                *path = target;
                *temporary = false;
            }
            Store::File { path, .. } if *path == target => {}
            Store::File { path, .. } => {
                let copy = self.dir.join(format!("copy-{}.tmp", unique()));
                fs::copy(&*path, &copy).with_context(|| format!("copying {}", path.display()))?;
                File::open(&copy)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("syncing {}", copy.display()))?;
                fs::rename(&copy, &target)
                    .with_context(|| format!("moving {} into place", copy.display()))?;
                crate::files::sync_dir(&self.dir)?;
            }
        }
        if state.get(&key)?.is_some() {
            state.delete(&key)?;
        }
        Ok(())
    }

    /// The blob kept under `name`, if any.
    pub fn open_kept(dir: &Path, name: &str, state: &StateStore) -> anyhow::Result<Option<Self>> {
        if let Some(bytes) = state.get(&kept_key(name))? {
            return Ok(Some(Blob::from_bytes(dir, bytes)));
        }
        let path = kept_path(dir, name);
        if !path.exists() {
            return Ok(None);
        }
        Blob::from_file(dir, &path).map(Some)
    }

    /// Forgets the blob kept under `name`.
    pub fn forget(dir: &Path, name: &str, state: &StateStore) -> anyhow::Result<()> {
        let key = kept_key(name);
        if state.get(&key)?.is_some() {
            state.delete(&key)?;
        }
        remove_if_present(&kept_path(dir, name))
    }

    /// All its bytes, for callers that want them in memory.
    pub fn into_bytes(mut self) -> anyhow::Result<Vec<u8>> {
        if let Store::Memory(bytes) = &mut self.store {
            return Ok(std::mem::take(bytes));
        }
        self.to_vec()
    }

    /// Stores its bytes durably as the file `path`: a spill file of this
    /// blob alone is moved there rather than copied.
    pub fn persist(&mut self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("the path has no folder")?;
        match &mut self.store {
            Store::File {
                file,
                path: at,
                temporary,
                ..
            } if *temporary => {
                file.sync_all()
                    .with_context(|| format!("syncing {}", at.display()))?;
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                fs::rename(&*at, path)
                    .with_context(|| format!("moving {} into place", at.display()))?;
                // Whoever owns `path` now decides when it goes.
                *at = path.to_path_buf();
                *temporary = false;
                crate::files::sync_dir(dir)
            }
            Store::Memory(bytes) => crate::files::write_durably(path, bytes),
            // A document's file or a shared body: not ours to move.
            _ => crate::files::write_durably_from(path, crate::files::READABLE, |file| {
                self.write_to(file)
            }),
        }
    }

    /// A copy of all its bytes.
    pub fn to_vec(&self) -> anyhow::Result<Vec<u8>> {
        let len = u32::try_from(self.len()).context("a blob of 4 GiB or more")?;
        self.read(0, len)
    }

    /// Writes all its bytes to `out`, a piece at a time.
    pub fn write_to(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        const PIECE: u32 = 1 << 20;
        let mut offset = 0;
        while offset < self.len() {
            let piece = self.read(offset, PIECE)?;
            out.write_all(&piece)?;
            offset += piece.len() as u64;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = match &self.store {
            Store::Memory(_) => "memory".to_string(),
            Store::Shared(_) => "shared".to_string(),
            Store::File { path, .. } => path.display().to_string(),
        };
        write!(f, "Blob({} bytes in {held})", self.len())
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        if let Store::File {
            path,
            temporary: true,
            ..
        } = &self.store
        {
            let _ = fs::remove_file(path);
        }
    }
}

/// Removes the spill files that processes no longer running left in `dir`
/// (a `send` killed while it built a message). Files of live processes,
/// a `send` running beside `serve`, are left alone.
pub fn remove_stray(dir: &Path) -> anyhow::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("spill-")
            .or_else(|| name.strip_prefix("copy-"))
            .filter(|_| name.ends_with(".tmp"))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive {
            remove_if_present(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The state-store key of a small blob kept under `name`: a prefix the
/// component's own records never use.
fn kept_key(name: &str) -> String {
    format!("blobs/{name}")
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Where the blob kept under `name` lives: any name maps to a safe file name.
fn kept_path(dir: &Path, name: &str) -> PathBuf {
    let hash = sha2::Sha256::digest(name.as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.blob"))
}

/// A name no other spill file of any process has.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{serial}-{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_spills_to_a_file_reads_back_whole_and_is_kept_and_forgotten() {
        let dir = std::env::temp_dir().join(format!("as2-blobs-test-{}", unique()));
        let state = StateStore::open(&dir).unwrap();
        let blobs = dir.join("blobs");
        let mut blob = Blob::new(&blobs);
        let piece: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
        let mut expected = Vec::new();
        for _ in 0..SPILL_BYTES / piece.len() + 2 {
            blob.append(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        assert_eq!(blob.len(), expected.len() as u64);
        assert!(matches!(blob.store, Store::File { .. }));
        let tail = expected.len() - 1_000;
        assert_eq!(blob.read(tail as u64, 5_000).unwrap(), &expected[tail..]);
        blob.keep("outbox/<1@ACME>", &state).unwrap();
        drop(blob);
        let kept = Blob::open_kept(&blobs, "outbox/<1@ACME>", &state)
            .unwrap()
            .unwrap();
        assert!(kept.into_bytes().unwrap() == expected);
        Blob::forget(&blobs, "outbox/<1@ACME>", &state).unwrap();
        assert!(
            Blob::open_kept(&blobs, "outbox/<1@ACME>", &state)
                .unwrap()
                .is_none()
        );
        // No spill file is left behind.
        assert_eq!(fs::read_dir(&blobs).unwrap().count(), 0);

        // A small one lives in the state store.
        let mut small = Blob::from_bytes(&blobs, b"ST*850*0001~".to_vec());
        small.keep("outbox/<2@ACME>", &state).unwrap();
        assert_eq!(fs::read_dir(&blobs).unwrap().count(), 0);
        let kept = Blob::open_kept(&blobs, "outbox/<2@ACME>", &state)
            .unwrap()
            .unwrap();
        assert_eq!(kept.into_bytes().unwrap(), b"ST*850*0001~");
        Blob::forget(&blobs, "outbox/<2@ACME>", &state).unwrap();
        assert!(
            Blob::open_kept(&blobs, "outbox/<2@ACME>", &state)
                .unwrap()
                .is_none()
        );
        // A spilled blob is moved into place, not copied; a shared view
        // reads the same bytes and is never written.
        let mut received = Blob::new(&blobs);
        for piece in expected.chunks(piece.len()) {
            received.append(piece).unwrap();
        }
        let shared = Arc::new(received);
        let mut view = Blob::shared(shared.clone());
        assert!(view.to_vec().unwrap() == expected);
        assert!(view.append(b"more").is_err());
        drop(view);
        let mut received = Arc::try_unwrap(shared).unwrap();
        let stored = dir.join("staging").join("doc");
        received.persist(&stored).unwrap();
        assert!(fs::read(&stored).unwrap() == expected);
        assert!(received.to_vec().unwrap() == expected);
        drop(received);
        assert!(stored.exists(), "the stored file outlives the blob");
        assert_eq!(fs::read_dir(&blobs).unwrap().count(), 0);
        let mut small = Blob::from_bytes(&blobs, b"ISA*00~".to_vec());
        small.persist(&dir.join("staging").join("small")).unwrap();
        assert_eq!(
            fs::read(dir.join("staging").join("small")).unwrap(),
            b"ISA*00~"
        );

        // A dead process's spill file goes; a live one's stays.
        fs::write(blobs.join("spill-999999999-0-0.tmp"), b"x").unwrap();
        let live = format!("spill-{}-0-0.tmp", std::process::id());
        fs::write(blobs.join(&live), b"x").unwrap();
        assert_eq!(remove_stray(&blobs).unwrap(), 1);
        let left: Vec<_> = fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![live]);
        drop(state);
        fs::remove_dir_all(&dir).unwrap();
    }
}
