//! A repository in a local directory.
//!
//! Archives are written under a temporary name beside their final one,
//! fsynced, renamed into place, and the directory fsynced: after a crash the
//! key either holds the whole object or does not exist.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::storage::{ObjectMeta, ObjectWriter, Storage, TEMP_MARKER};
use crate::error::{Error, Result};

pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(Error::Repo(format!("invalid object key `{key}`")));
        }
        Ok(self.root.join(key))
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        "{TEMP_MARKER}{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_name(path);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn meta_of(key: String, m: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        modified: m.modified().ok().map(DateTime::<Utc>::from),
        ..Default::default()
    }
}

struct LocalWriter {
    key: String,
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .expect("writer used after finish")
            .write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("writer used after finish")
            .flush()
    }
}

impl ObjectWriter for LocalWriter {
    /// A local file has no user metadata: `metadata` is not stored (the
    /// manifest beside the archive holds the same facts).
    fn finish(mut self: Box<Self>, _metadata: &BTreeMap<String, String>) -> Result<ObjectMeta> {
        let file = self.file.take().expect("finish called twice");
        let res = (|| {
            file.sync_all()?;
            let meta = file.metadata()?;
            drop(file);
            fs::rename(&self.tmp, &self.dest)?;
            if let Some(dir) = self.dest.parent() {
                sync_dir(dir)?;
            }
            Ok(meta)
        })();
        match res {
            Ok(m) => Ok(meta_of(self.key.clone(), &m)),
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                Err(Error::io_path("finishing", &self.dest, e))
            }
        }
    }

    fn abort(mut self: Box<Self>) {
        self.file.take();
        let _ = fs::remove_file(&self.tmp);
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Dropped without finish (a panic or an early return): leave nothing.
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if ft.is_file() {
            // A concurrent run's temporary file or claim can be renamed or
            // removed between the directory read and this: it is not there.
            match entry.metadata() {
                Ok(m) => out.push(meta_of(key, &m)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn read_range(path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if range.end > len || range.start > range.end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "range {}..{} outside object of {len} bytes",
                range.start, range.end
            ),
        ));
    }
    f.seek(SeekFrom::Start(range.start))?;
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("storage task", io::Error::other(e.to_string())))?
}

#[async_trait]
impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        blocking(move || {
            write_atomic(&path, &data).map_err(|e| Error::io_path("writing", &path, e))
        })
        .await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool> {
        let path = self.path(key)?;
        blocking(move || {
            (|| -> io::Result<bool> {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir)?;
                }
                let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(e),
                };
                f.write_all(&data)?;
                f.sync_all()?;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(true)
            })()
            .map_err(|e| Error::io_path("writing", &path, e))
        })
        .await
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let dest = self.path(key)?;
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io_path("creating", dir, e))?;
        }
        let tmp = temp_name(&dest);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io_path("creating", &tmp, e))?;
        Ok(Box::new(LocalWriter {
            key: key.to_string(),
            file: Some(file),
            tmp,
            dest,
        }))
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        blocking(move || {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| Error::io_path("reading", &path, e))
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        blocking(move || {
            read_range(&path, range)
                .map(Bytes::from)
                .map_err(|e| Error::io_path("reading", &path, e))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(meta_of(key, &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io_path("reading", &path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk from the deepest directory the prefix names.
            let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut out = Vec::new();
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            walk(&start, dir_part, &mut out).map_err(|e| Error::io_path("listing", &start, e))?;
            out.retain(|m| m.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    /// A failed run's writer removes its temporary file when it is dropped;
    /// the directories made for the run go too, as far up as they are empty
    /// (never the repository's top-level folders), so nothing of the run is
    /// left. Returns 0: local writes leave no pending uploads to count.
    async fn abort_unfinished(&self, key: &str) -> Result<usize> {
        let path = self.path(key)?;
        let root = self.root.clone();
        blocking(move || {
            let mut dir = path.parent();
            while let Some(d) = dir {
                if !d
                    .parent()
                    .is_some_and(|p| p.starts_with(&root) && p != root)
                {
                    break;
                }
                if fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(0)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io_path("deleting", &path, e)),
        })
        .await
    }
}
