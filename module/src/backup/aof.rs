//! The AOF side of `HIVE.BACKUP START … AOF`: Redis 7's multi-part AOF directory captured at
//! the instant of START. On the main thread (so no write lands in between) the manifest is
//! read, each base and incremental file hard-linked into a staging directory and its size
//! noted; the background thread then copies each file up to that size (the incremental file
//! keeps growing) and removes the links. History files (`type h`) are left out, as Redis
//! loads none of them. Pure std: unit-tested without Redis.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One file of the AOF set as captured: its name and its size at START.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub size: u64,
}

/// What START captured; finished on the background thread by `copy_out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The manifest's text, without history lines.
    pub manifest_name: String,
    pub manifest: String,
    pub staging: PathBuf,
    pub parts: Vec<Part>,
}

/// The base and incremental file names a multi-part AOF manifest lists (lines like
/// `file appendonly.aof.1.base.rdb seq 1 type b`), and the manifest without history lines.
pub fn parse_manifest(text: &str) -> (Vec<String>, String) {
    let mut files = Vec::new();
    let mut kept = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |k: &str| {
            words
                .chunks(2)
                .find(|c| c.len() == 2 && c[0] == k)
                .map(|c| c[1])
        };
        if field("type") == Some("h") {
            continue;
        }
        if let Some(name) = field("file") {
            files.push(name.to_string());
        }
        kept.push_str(line);
        kept.push('\n');
    }
    (files, kept)
}

/// Links the AOF set of `aof_dir` (manifest `manifest_name`) into `staging`, noting sizes.
pub fn stage(aof_dir: &Path, manifest_name: &str, staging: &Path) -> Result<Staged, String> {
    let text = fs::read_to_string(aof_dir.join(manifest_name)).map_err(|e| {
        format!(
            "cannot read the AOF manifest {}: {e}",
            aof_dir.join(manifest_name).display()
        )
    })?;
    let (files, manifest) = parse_manifest(&text);
    if files.is_empty() {
        return Err(format!("the AOF manifest {manifest_name} lists no file"));
    }
    fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let mut parts = Vec::new();
    for name in files {
        if name.contains('/') {
            return Err(format!(
                "the AOF manifest names {name:?}, not a file of its directory"
            ));
        }
        let src = aof_dir.join(&name);
        let size = fs::metadata(&src)
            .map_err(|e| format!("{}: {e}", src.display()))?
            .len();
        let link = staging.join(&name);
        let _ = fs::remove_file(&link);
        if fs::hard_link(&src, &link).is_err() {
            // Another filesystem: copy now (the main thread waits for it, as it must for the
            // copy to be exact).
            copy_prefix(&src, &link, size).map_err(|e| format!("{}: {e}", src.display()))?;
        }
        parts.push(Part { name, size });
    }
    Ok(Staged {
        manifest_name: manifest_name.to_string(),
        manifest,
        staging: staging.to_path_buf(),
        parts,
    })
}

/// Writes the captured set into `dest` (manifest first in the returned names) and removes
/// the staging directory.
pub fn copy_out(staged: &Staged, dest: &Path) -> std::io::Result<Vec<String>> {
    fs::create_dir_all(dest)?;
    let mut names = vec![staged.manifest_name.clone()];
    fs::write(dest.join(&staged.manifest_name), &staged.manifest)?;
    for p in &staged.parts {
        copy_prefix(&staged.staging.join(&p.name), &dest.join(&p.name), p.size)?;
        names.push(p.name.clone());
    }
    let _ = fs::remove_dir_all(&staged.staging);
    Ok(names)
}

/// Copies the first `size` bytes of `src` to `dest`.
fn copy_prefix(src: &Path, dest: &Path, size: u64) -> std::io::Result<()> {
    let mut from = fs::File::open(src)?.take(size);
    let tmp = dest.with_extension("part");
    let mut to = fs::File::create(&tmp)?;
    let n = std::io::copy(&mut from, &mut to)?;
    if n != size {
        return Err(std::io::Error::other(format!(
            "{} has {n} bytes, {size} expected",
            src.display()
        )));
    }
    to.flush()?;
    fs::rename(tmp, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aof_manifest_keeps_base_and_incr_only() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\n\
file appendonly.aof.1.incr.aof seq 1 type h\n\
file appendonly.aof.2.incr.aof seq 2 type i\n";
        let (files, kept) = parse_manifest(text);
        assert_eq!(
            files,
            ["appendonly.aof.1.base.rdb", "appendonly.aof.2.incr.aof"]
        );
        assert!(!kept.contains("type h"));
        assert_eq!(kept.lines().count(), 2);
    }

    #[test]
    fn aof_capture_keeps_the_size_at_start() {
        let root = std::env::temp_dir().join(format!("hive-aof-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let aof = root.join("appendonlydir");
        fs::create_dir_all(&aof).unwrap();
        fs::write(
            aof.join("a.aof.manifest"),
            "file a.1.base.rdb seq 1 type b\nfile a.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        fs::write(aof.join("a.1.base.rdb"), b"BASE").unwrap();
        fs::write(aof.join("a.1.incr.aof"), b"*1\r\n$4\r\nPING\r\n").unwrap();
        let staged = stage(&aof, "a.aof.manifest", &root.join("staging")).unwrap();
        // Redis appends after START: not part of the backup.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(aof.join("a.1.incr.aof"))
            .unwrap();
        f.write_all(b"*1\r\n$4\r\nLATE\r\n").unwrap();
        let names = copy_out(&staged, &root.join("out")).unwrap();
        assert_eq!(names, ["a.aof.manifest", "a.1.base.rdb", "a.1.incr.aof"]);
        assert_eq!(
            fs::read(root.join("out/a.1.incr.aof")).unwrap(),
            b"*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(fs::read(aof.join("a.1.incr.aof")).unwrap().len(), 28);
        assert!(!root.join("staging").exists());
        assert!(stage(&aof, "missing.manifest", &root.join("s2")).is_err());
    }
}
