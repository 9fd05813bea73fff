//! Where backups live: a local directory (a NAS mount) or an S3 bucket and prefix, both through
//! `object_store`. Layout: `<dest>/<id>/manifest.json` beside the shard files. Files are
//! written as streams (multipart to S3), hashed and optionally zstd-compressed on the way.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::catalog::manifest::{self, Manifest, MANIFEST};
use crate::error::{BackupError, Result};

pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The destination as the user named it, for messages.
    pub location: String,
    /// The directory, for a local destination (object stores have no empty directories to
    /// remove; a filesystem does).
    local: Option<std::path::PathBuf>,
}

impl Store {
    /// `s3://bucket/prefix` (credentials, region and endpoint from the usual `AWS_*`
    /// environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`), or a local directory, created if missing.
    pub fn open(dest: &str) -> Result<Store> {
        let err = |m: String| BackupError::Store {
            location: dest.to_string(),
            message: m,
        };
        if let Some(rest) = dest.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(err("no bucket: use s3://bucket/prefix".into()));
            }
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                b = b.with_region("us-east-1");
            }
            if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL") {
                b = b
                    .with_endpoint(&ep)
                    .with_allow_http(ep.starts_with("http://"));
            }
            let s3 = b.build().map_err(|e| err(e.to_string()))?;
            return Ok(Store {
                inner: Arc::new(s3),
                prefix: Path::from(prefix.trim_matches('/')),
                location: dest.to_string(),
                local: None,
            });
        }
        let dir = std::path::Path::new(dest);
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| err(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(fs),
            prefix: Path::default(),
            location: dest.to_string(),
            local: Some(dir.to_path_buf()),
        })
    }

    fn path(&self, id: &str, name: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in id.split('/').chain(name.split('/')) {
            if !part.is_empty() {
                p = p.child(part);
            }
        }
        p
    }

    fn err(&self, e: impl std::fmt::Display) -> BackupError {
        BackupError::Store {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    pub async fn put_manifest(&self, m: &Manifest) -> Result<()> {
        self.inner
            .put(&self.path(&m.id, MANIFEST), m.to_json().into())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        if !manifest::valid_id(id) {
            return Err(BackupError::backup(id, "not a backup id"));
        }
        let got = self
            .inner
            .get(&self.path(id, MANIFEST))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    BackupError::backup(id, format!("not found at {}", self.location))
                }
                e => self.err(e),
            })?;
        let bytes = got.bytes().await.map_err(|e| self.err(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::backup(id, format!("unreadable {MANIFEST}: {e}")))
    }

    /// Every backup id at the destination, oldest first.
    pub async fn ids(&self) -> Result<Vec<String>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let list = self
            .inner
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.err(e))?;
        let mut ids: Vec<String> = list
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|id| manifest::valid_id(id))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes a backup: every object under its id (and, locally, its directories).
    pub async fn remove(&self, id: &str) -> Result<()> {
        if !manifest::valid_id(id) {
            return Err(BackupError::backup(id, "not a backup id"));
        }
        let prefix = self.path(id, "");
        let mut objects = self.inner.list(Some(&prefix));
        while let Some(o) = objects.next().await {
            let o = o.map_err(|e| self.err(e))?;
            self.inner
                .delete(&o.location)
                .await
                .map_err(|e| self.err(e))?;
        }
        if let Some(dir) = &self.local {
            let d = dir.join(id);
            if d.exists() {
                std::fs::remove_dir_all(&d)
                    .map_err(|e| self.err(format!("{}: {e}", d.display())))?;
            }
        }
        Ok(())
    }

    /// A writer for file `name` of backup `id`.
    pub async fn create(&self, id: &str, name: &str, compress: bool) -> Result<Sink> {
        let upload = self
            .inner
            .put_multipart(&self.path(id, name))
            .await
            .map_err(|e| self.err(e))?;
        let enc = if compress {
            Some(zstd::stream::write::Encoder::new(Vec::new(), 3).map_err(|e| self.err(e))?)
        } else {
            None
        };
        Ok(Sink {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, 8 << 20)),
            enc,
            raw_sha: Sha256::new(),
            stored_sha: Sha256::new(),
            raw_len: 0,
            stored_len: 0,
            head: Vec::new(),
            location: self.location.clone(),
        })
    }

    /// The stored bytes of file `name` of backup `id`, as a stream of chunks.
    pub async fn open_file(
        &self,
        id: &str,
        name: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        let got = self
            .inner
            .get(&self.path(id, name))
            .await
            .map_err(|e| BackupError::backup(id, format!("{name}: {e}")))?;
        Ok(got.into_stream())
    }

    /// Downloads file `name` into `dest` (decompressing a `.zst`), checking the stored bytes'
    /// sha256 against `want`. Returns the size written.
    pub async fn fetch(
        &self,
        id: &str,
        name: &str,
        want_sha256: &str,
        dest: &std::path::Path,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<u64> {
        let mut stream = self.open_file(id, name).await?;
        let file = std::fs::File::create(dest).map_err(|e| BackupError::local(dest, e))?;
        let mut out: Box<dyn Write> = if name.ends_with(".zst") {
            Box::new(
                zstd::stream::write::Decoder::new(std::io::BufWriter::new(file))
                    .map_err(|e| BackupError::local(dest, e))?,
            )
        } else {
            Box::new(std::io::BufWriter::new(file))
        };
        let mut sha = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BackupError::backup(id, format!("{name}: {e}")))?;
            sha.update(&chunk);
            n += chunk.len() as u64;
            on_bytes(chunk.len() as u64);
            out.write_all(&chunk)
                .map_err(|e| BackupError::backup(id, format!("{name}: {e}")))?;
        }
        out.flush()
            .map_err(|e| BackupError::backup(id, format!("{name}: {e}")))?;
        drop(out);
        let got = hex(&sha.finalize());
        if got != want_sha256 {
            return Err(BackupError::backup(
                id,
                format!("{name} is damaged: sha256 {got}, the manifest says {want_sha256}"),
            ));
        }
        Ok(n)
    }
}

/// One file being written: raw bytes in, hashed, compressed, uploaded in parts.
pub struct Sink {
    upload: Option<WriteMultipart>,
    enc: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    raw_sha: Sha256,
    stored_sha: Sha256,
    pub raw_len: u64,
    pub stored_len: u64,
    /// The first 64 KiB of the raw bytes (an RDB's header).
    pub head: Vec<u8>,
    location: String,
}

/// What a finished file is.
#[derive(Debug, Clone)]
pub struct Written {
    pub raw_len: u64,
    pub stored_len: u64,
    pub sha256: String,
    pub raw_sha256: String,
    pub head: Vec<u8>,
}

const HEAD: usize = 64 << 10;

impl Sink {
    fn err(&self, e: impl std::fmt::Display) -> BackupError {
        BackupError::Store {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.raw_sha.update(chunk);
        self.raw_len += chunk.len() as u64;
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let stored = match self.enc.as_mut() {
            Some(enc) => {
                enc.write_all(chunk).map_err(|e| BackupError::Store {
                    location: self.location.clone(),
                    message: e.to_string(),
                })?;
                std::mem::take(enc.get_mut())
            }
            None => chunk.to_vec(),
        };
        self.put(stored).await
    }

    async fn put(&mut self, stored: Vec<u8>) -> Result<()> {
        if stored.is_empty() {
            return Ok(());
        }
        self.stored_sha.update(&stored);
        self.stored_len += stored.len() as u64;
        let up = self
            .upload
            .as_mut()
            .expect("a sink is written before it is finished");
        up.put(Bytes::from(stored));
        let r = up.wait_for_capacity(4).await;
        r.map_err(|e| self.err(e))
    }

    pub async fn finish(mut self) -> Result<Written> {
        if let Some(enc) = self.enc.take() {
            let rest = enc.finish().map_err(|e| self.err(e))?;
            self.put(rest).await?;
        }
        let up = self.upload.take().expect("finished once");
        up.finish().await.map_err(|e| self.err(e))?;
        Ok(Written {
            raw_len: self.raw_len,
            stored_len: self.stored_len,
            sha256: hex(&self.stored_sha.clone().finalize()),
            raw_sha256: hex(&self.raw_sha.clone().finalize()),
            head: std::mem::take(&mut self.head),
        })
    }

    /// Gives up on the file (nothing is left at the destination).
    pub async fn abort(mut self) {
        if let Some(up) = self.upload.take() {
            let _ = up.abort().await;
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
