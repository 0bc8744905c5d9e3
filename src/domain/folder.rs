//! Folders: names, paths and the rules that keep the tree a tree.
//!
//! Names are stored in Unicode NFC and compared exactly (case-sensitive),
//! as Linux and S3 do: "Photos" and "photos" are two folders, while the
//! same name typed with a precomposed or a decomposed accent is one. A
//! path is the names from the root joined by `/`, with a trailing `/`
//! (`/photos/2024/`; the root is `/`), so every subtree is one contiguous
//! range of paths in byte order: `[/photos/, /photos0)`.

use unicode_normalization::UnicodeNormalization;

use super::{FolderId, truncate_for_message};
use crate::error::{Error, Result};

/// Longest folder name, in bytes of UTF-8 (the common file-system limit).
pub const MAX_FOLDER_NAME_BYTES: usize = 255;
/// Deepest folder below the root; also the deepest tree a request returns.
pub const MAX_FOLDER_DEPTH: u32 = 256;

/// First character of the name and path a subtree takes while it is being
/// deleted. Real paths start with `/` and names cannot hold control
/// characters, so these never clash with a live folder, and the names the
/// subtree held are free at once.
pub const TOMBSTONE: char = '\u{1}';

/// A valid folder name, in NFC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderName(String);

impl FolderName {
    /// Validates and normalizes the name sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let bad = |why: String| Error::invalid(field, why);
        let name: String = s.nfc().collect();
        if name.is_empty() {
            return Err(Error::required(field, "a folder name is required"));
        }
        if name.len() > MAX_FOLDER_NAME_BYTES {
            return Err(bad(format!(
                "the folder name is {} bytes long; the limit is {MAX_FOLDER_NAME_BYTES} bytes of UTF-8",
                name.len()
            )));
        }
        if name.contains('/') {
            return Err(bad(format!(
                "folder names cannot contain \"/\", which separates path levels: {:?}",
                truncate_for_message(&name)
            )));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(bad(format!(
                "the folder name contains the control character U+{:04X}; remove it",
                c as u32
            )));
        }
        if name == "." || name == ".." {
            return Err(bad(format!(
                "{name:?} is reserved for path navigation; choose another folder name"
            )));
        }
        if name.trim() != name {
            return Err(bad(format!(
                "the folder name {:?} starts or ends with a space; remove it",
                truncate_for_message(&name)
            )));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid, canonical folder path: `/`, or `/name/.../name/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPath(String);

impl FolderPath {
    /// The root's path.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// Parses a path sent in `field`; the trailing `/` is optional and each
    /// level must be a valid folder name.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(Error::invalid(
                field,
                format!(
                    "{:?} is not a folder path; paths start at the root with \"/\", e.g. \"/photos/2024/\"",
                    truncate_for_message(s)
                ),
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut path = Self::root();
        if rest.is_empty() && s == "/" {
            return Ok(path);
        }
        for (depth, part) in rest.split('/').enumerate() {
            if depth as u32 >= MAX_FOLDER_DEPTH {
                return Err(Error::invalid(
                    field,
                    format!("the path is more than {MAX_FOLDER_DEPTH} levels deep"),
                ));
            }
            path = path.child(&FolderName::parse(field, part)?);
        }
        Ok(path)
    }

    /// The path a folder's subtree takes while it is being deleted.
    pub fn tombstone(id: FolderId) -> Self {
        Self(format!("{}/", tombstone_name(id)))
    }

    /// Wraps a path read from the database.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The path of a child named `name`.
    pub fn child(&self, name: &FolderName) -> Self {
        Self(format!("{}{}/", self.0, name.as_str()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The paths of this folder and of each folder above it, root first:
    /// `/a/b/` gives `/`, `/a/`, `/a/b/`.
    pub fn lineage(&self) -> Vec<&str> {
        self.0
            .match_indices('/')
            .map(|(i, _)| &self.0[..=i])
            .collect()
    }

    /// Whether `other` is this folder or lies below it.
    pub fn contains(&self, other: &FolderPath) -> bool {
        other.0.starts_with(&self.0)
    }

    /// The half-open byte range `[low, high)` holding exactly the paths of
    /// this folder and everything below it: every such path starts with
    /// this one, which ends in `/`, and `0` is the byte after `/`.
    pub fn subtree_range(&self) -> (String, String) {
        let mut high = self.0.clone();
        high.pop();
        high.push('0');
        (self.0.clone(), high)
    }
}

/// The name a folder takes while it is being deleted.
pub fn tombstone_name(id: FolderId) -> String {
    format!("{TOMBSTONE}{id}")
}

/// A folder as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Id (the tenant's id for its root).
    pub id: FolderId,
    /// Parent; `None` for the root.
    pub parent: Option<FolderId>,
    /// Name ("" for the root).
    pub name: String,
    /// Full path.
    pub path: FolderPath,
    /// Levels below the root.
    pub depth: u32,
    /// Media directly in it.
    pub media_count: u64,
    /// Their total size in bytes.
    pub size_bytes: u64,
    /// Creation time, µs since the epoch.
    pub created_at: i64,
    /// Last rename or move, µs since the epoch.
    pub updated_at: i64,
    /// Who created it ("" for a root).
    pub created_by: String,
    /// Who last renamed or moved it.
    pub updated_by: String,
    /// Its creator's role.
    pub created_role: String,
    /// Every media in it and below it can be read without a key.
    pub public: bool,
}

/// What deleting a folder removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderDeletion {
    /// Folders, the deleted one included.
    pub folders: u64,
    /// Media.
    pub media: u64,
    /// Blobs no other media shared.
    pub blobs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_ancestors_root_first() {
        let path = FolderPath::parse("p", "/a/b/").expect("valid");
        assert_eq!(path.lineage(), ["/", "/a/", "/a/b/"]);
        assert_eq!(FolderPath::root().lineage(), ["/"]);
    }

    #[test]
    fn names_follow_every_rule() {
        for bad in [
            "",
            "a/b",
            ".",
            "..",
            " a",
            "a ",
            "a\u{0}b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(FolderName::parse("name", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "2024", "été", "a.b", "...", "x".repeat(255).as_str()] {
            assert!(FolderName::parse("name", good).is_ok(), "{good:?} refused");
        }
        // Decomposed "é" is stored precomposed.
        let n = FolderName::parse("name", "e\u{301}t\u{e9}").expect("valid");
        assert_eq!(n.as_str(), "\u{e9}t\u{e9}");
    }

    #[test]
    fn paths_parse_canonically_and_ranges_cover_subtrees() {
        let p = FolderPath::parse("path", "/photos/2024").expect("valid");
        assert_eq!(p.as_str(), "/photos/2024/");
        assert_eq!(
            FolderPath::parse("path", "/").expect("root"),
            FolderPath::root()
        );
        for bad in ["", "photos", "//", "/a//b/", "/a/../b"] {
            assert!(FolderPath::parse("path", bad).is_err(), "{bad:?} accepted");
        }
        let (low, high) = FolderPath::parse("p", "/a/")
            .expect("valid")
            .subtree_range();
        for inside in ["/a/", "/a/b/", "/a/~/"] {
            assert!(low.as_str() <= inside && inside < high.as_str(), "{inside}");
        }
        for outside in ["/a b/", "/a-/", "/ab/", "/a0/", "/"] {
            assert!(
                !(low.as_str() <= outside && outside < high.as_str()),
                "{outside}"
            );
        }
    }
}
