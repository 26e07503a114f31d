//! An in-memory git object store: blobs, trees and commits with real git object ids
//! (SHA-1 of the git serialisation), so branches hold real file maps and merges can be
//! computed from merge bases.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::util::{hex_to_bytes, sha1_hex};

pub const MODE_FILE: &str = "100644";
pub const MODE_TREE: &str = "040000";

#[derive(Clone, Debug)]
pub struct TreeEntry {
    pub name: String,
    pub mode: String,
    /// "blob", "tree" or "commit"
    pub kind: String,
    pub sha: String,
}

#[derive(Clone, Debug)]
pub struct Signature {
    pub name: String,
    pub email: String,
    pub date: i64,
}

#[derive(Clone, Debug)]
pub struct Commit {
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
    pub author: Signature,
    pub committer: Signature,
}

/// A file in a flattened tree: full path -> (mode, blob sha).
pub type FlatTree = BTreeMap<String, (String, String)>;

#[derive(Default)]
pub struct GitStore {
    pub blobs: HashMap<String, Vec<u8>>,
    pub trees: HashMap<String, Vec<TreeEntry>>,
    pub commits: HashMap<String, Commit>,
}

impl GitStore {
    pub fn put_blob(&mut self, content: &[u8]) -> String {
        let mut raw = format!("blob {}\0", content.len()).into_bytes();
        raw.extend_from_slice(content);
        let sha = sha1_hex(&raw);
        self.blobs
            .entry(sha.clone())
            .or_insert_with(|| content.to_vec());
        sha
    }

    pub fn put_tree(&mut self, mut entries: Vec<TreeEntry>) -> String {
        // git orders entries by name, comparing a tree's name as if it ended in '/'
        let key = |e: &TreeEntry| {
            let mut k = e.name.clone().into_bytes();
            if e.kind == "tree" {
                k.push(b'/');
            }
            k
        };
        entries.sort_by_key(key);
        let mut body = Vec::new();
        for e in &entries {
            let mode = e.mode.trim_start_matches('0');
            body.extend_from_slice(format!("{mode} {}\0", e.name).as_bytes());
            body.extend_from_slice(&hex_to_bytes(&e.sha));
        }
        let mut raw = format!("tree {}\0", body.len()).into_bytes();
        raw.extend_from_slice(&body);
        let sha = sha1_hex(&raw);
        self.trees.entry(sha.clone()).or_insert(entries);
        sha
    }

    pub fn put_commit(&mut self, commit: Commit) -> String {
        let mut text = format!("tree {}\n", commit.tree);
        for p in &commit.parents {
            text.push_str(&format!("parent {p}\n"));
        }
        for (role, s) in [("author", &commit.author), ("committer", &commit.committer)] {
            text.push_str(&format!(
                "{role} {} <{}> {} +0000\n",
                s.name, s.email, s.date
            ));
        }
        text.push('\n');
        text.push_str(&commit.message);
        let raw = format!("commit {}\0{text}", text.len());
        let sha = sha1_hex(raw.as_bytes());
        self.commits.entry(sha.clone()).or_insert(commit);
        sha
    }

    pub fn empty_tree(&mut self) -> String {
        self.put_tree(Vec::new())
    }

    /// Every file under `tree_sha`, by full path.
    pub fn flatten(&self, tree_sha: &str) -> FlatTree {
        let mut out = FlatTree::new();
        self.flatten_into(tree_sha, "", &mut out);
        out
    }

    fn flatten_into(&self, tree_sha: &str, prefix: &str, out: &mut FlatTree) {
        let Some(entries) = self.trees.get(tree_sha) else {
            return;
        };
        for e in entries {
            let path = format!("{prefix}{}", e.name);
            if e.kind == "tree" {
                self.flatten_into(&e.sha, &format!("{path}/"), out);
            } else {
                out.insert(path, (e.mode.clone(), e.sha.clone()));
            }
        }
    }

    /// Every entry (files and sub-trees) under `tree_sha`, in git's listing order, with full paths.
    pub fn walk(&self, tree_sha: &str, recursive: bool) -> Vec<(String, TreeEntry)> {
        let mut out = Vec::new();
        self.walk_into(tree_sha, "", recursive, &mut out);
        out
    }

    fn walk_into(
        &self,
        tree_sha: &str,
        prefix: &str,
        recursive: bool,
        out: &mut Vec<(String, TreeEntry)>,
    ) {
        let Some(entries) = self.trees.get(tree_sha) else {
            return;
        };
        for e in entries {
            let path = format!("{prefix}{}", e.name);
            out.push((path.clone(), e.clone()));
            if recursive && e.kind == "tree" {
                self.walk_into(&e.sha, &format!("{path}/"), recursive, out);
            }
        }
    }

    /// Builds (and stores) the nested trees for a flat file map; returns the root tree sha.
    pub fn build_tree(&mut self, files: &FlatTree) -> String {
        let mut here: Vec<TreeEntry> = Vec::new();
        let mut dirs: BTreeMap<String, FlatTree> = BTreeMap::new();
        for (path, (mode, sha)) in files {
            match path.split_once('/') {
                Some((dir, rest)) => {
                    dirs.entry(dir.to_string())
                        .or_default()
                        .insert(rest.to_string(), (mode.clone(), sha.clone()));
                }
                None => here.push(TreeEntry {
                    name: path.clone(),
                    mode: mode.clone(),
                    kind: if mode == "160000" { "commit" } else { "blob" }.to_string(),
                    sha: sha.clone(),
                }),
            }
        }
        for (dir, sub) in dirs {
            let sha = self.build_tree(&sub);
            here.push(TreeEntry {
                name: dir,
                mode: MODE_TREE.to_string(),
                kind: "tree".into(),
                sha,
            });
        }
        self.put_tree(here)
    }

    pub fn commit_files(&self, commit_sha: &str) -> FlatTree {
        match self.commits.get(commit_sha) {
            Some(c) => self.flatten(&c.tree),
            None => FlatTree::new(),
        }
    }

    /// All commits reachable from `sha` (itself included), breadth first.
    pub fn ancestors(&self, sha: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([sha.to_string()]);
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = self.commits.get(&s) {
                queue.extend(c.parents.iter().cloned());
            }
            order.push(s);
        }
        order
    }

    /// Is `ancestor` reachable from `descendant` (or equal to it)?
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        self.ancestors(descendant).iter().any(|s| s == ancestor)
    }

    /// A best common ancestor: the first common commit found walking back from `b`.
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let from_a: HashSet<String> = self.ancestors(a).into_iter().collect();
        self.ancestors(b).into_iter().find(|s| from_a.contains(s))
    }

    /// Commits reachable from `head` but not from `base`, oldest first.
    pub fn commits_between(&self, base: &str, head: &str) -> Vec<String> {
        let in_base: HashSet<String> = self.ancestors(base).into_iter().collect();
        let mut out: Vec<String> = self
            .ancestors(head)
            .into_iter()
            .filter(|s| !in_base.contains(s))
            .collect();
        out.reverse();
        out
    }

    /// Three-way merge of file maps. `Err(paths)` lists the conflicting paths: those that both
    /// sides changed differently since the merge base (a deletion counts as a change).
    pub fn merge_trees(
        base: &FlatTree,
        ours: &FlatTree,
        theirs: &FlatTree,
    ) -> Result<FlatTree, Vec<String>> {
        let mut paths: Vec<&String> = base
            .keys()
            .chain(ours.keys())
            .chain(theirs.keys())
            .collect();
        paths.sort();
        paths.dedup();
        let mut out = FlatTree::new();
        let mut conflicts = Vec::new();
        for p in paths {
            let (b, o, t) = (base.get(p), ours.get(p), theirs.get(p));
            let pick = if o == t || t == b {
                o
            } else if o == b {
                t
            } else {
                conflicts.push(p.clone());
                continue;
            };
            if let Some(v) = pick {
                out.insert(p.clone(), v.clone());
            }
        }
        if conflicts.is_empty() {
            Ok(out)
        } else {
            Err(conflicts)
        }
    }
}
