//! Where `HIVE.BACKUP START DIR` may write, and which ids `STATUS` accepts: only under the
//! backup root or a directory the operator allowed at load time (`hive.backup-dirs-allowed`),
//! symlinks resolved, so no client can make a node write outside them. Pure: unit-tested
//! without Redis.

use std::path::{Component, Path, PathBuf};

/// `requested` if it lies under `root` or one of `allowed`, else why not.
pub fn confine(requested: &Path, root: &Path, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    let refuse = || {
        let mut dirs = vec![root.display().to_string()];
        dirs.extend(allowed.iter().map(|a| a.display().to_string()));
        format!(
            "DIR must be an absolute path under {} (hive.backup-dir, or hive.backup-dirs-allowed in redis.conf)",
            dirs.join(" or ")
        )
    };
    if !requested.is_absolute()
        || requested
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(refuse());
    }
    let real = resolved(requested);
    let inside = std::iter::once(root)
        .chain(allowed.iter().map(PathBuf::as_path))
        .any(|base| real.starts_with(resolved(base)));
    if inside {
        Ok(requested.to_path_buf())
    } else {
        Err(refuse())
    }
}

/// The path with its longest existing ancestor's symlinks resolved.
fn resolved(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(real) = cur.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(real, |acc, part: &PathBuf| acc.join(part));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(PathBuf::from(name));
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Whether `id` is one the module makes (`bk-` and 13 digits): nothing else is looked up.
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("bk-")
        .is_some_and(|d| d.len() == 13 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `hive.backup-dirs-allowed`: directories separated by `:`.
pub fn allowed_dirs(setting: &str) -> Vec<PathBuf> {
    setting
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_dir_is_confined_to_root_and_allowed_dirs() {
        let tmp = std::env::temp_dir().join(format!("hive-confine-{}", std::process::id()));
        let root = tmp.join("root");
        let nas = tmp.join("nas");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&nas).unwrap();
        let allowed = vec![nas.clone()];
        assert!(confine(&root.join("daily"), &root, &allowed).is_ok());
        assert!(confine(&nas.join("x/y"), &root, &allowed).is_ok());
        assert!(confine(Path::new("/etc"), &root, &allowed).is_err());
        assert!(confine(&root.join("../../etc"), &root, &allowed).is_err());
        assert!(confine(Path::new("relative/dir"), &root, &allowed).is_err());
        // A symlink inside the root that points out of it does not lead out.
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let e = confine(&root.join("escape/cron.d"), &root, &allowed).unwrap_err();
        assert!(e.starts_with("DIR must be an absolute path under"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn backup_ids_are_only_the_modules_own() {
        assert!(valid_id("bk-0001795363711"));
        assert!(!valid_id("../../etc"));
        assert!(!valid_id("bk-12"));
        assert!(!valid_id("bk-000179536371a"));
        assert_eq!(
            allowed_dirs("/nas/a::/nas/b"),
            vec![PathBuf::from("/nas/a"), PathBuf::from("/nas/b")]
        );
    }
}
