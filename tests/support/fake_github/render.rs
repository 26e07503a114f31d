//! JSON builders: one function per object kind, shaped after the component schemas of
//! openapi-subset.json (every required property present), plus GitHub-shaped errors.

use serde_json::{Map, Value, json};

use super::git::Commit;
use super::state::{ACTOR_ID, ACTOR_LOGIN, Comment, Issue, Label, Pull, State};
use super::util::{base64_wrapped, percent_encode, rfc3339};

pub const DOC_URL: &str = "https://docs.github.com/rest";

// ------------------------------------------------------------------ errors

/// An error answer: status, GitHub-shaped JSON body, extra headers.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    /// `{"message": .., "documentation_url": .., "status": ".."}` (basic-error)
    pub fn message(status: u16, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"message": message, "documentation_url": DOC_URL, "status": status.to_string()}),
            headers: vec![],
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::message(404, "Not Found")
    }

    fn validation_errors(errors: Value) -> ApiError {
        ApiError {
            status: 422,
            body: json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOC_URL, "status": "422"}),
            headers: vec![],
        }
    }

    /// 422 Validation Failed with one `{resource, code, field}` error.
    pub fn validation(resource: &str, code: &str, field: &str) -> ApiError {
        ApiError::validation_errors(json!([{"resource": resource, "code": code, "field": field}]))
    }

    /// 422 Validation Failed with one `code: custom` error carrying a message.
    pub fn validation_custom(resource: &str, field: &str, message: &str) -> ApiError {
        ApiError::validation_errors(
            json!([{"resource": resource, "code": "custom", "field": field, "message": message}]),
        )
    }

    /// 422 with a bare message, as the git data endpoints answer.
    pub fn unprocessable(message: &str) -> ApiError {
        ApiError::message(422, message)
    }
}

// ------------------------------------------------------------------ urls

pub struct Urls {
    pub api: String,
    pub repo: String,
    pub html_repo: String,
    pub html_base: String,
}

pub fn urls(st: &State) -> Urls {
    let full = format!("{}/{}", st.cfg.owner, st.cfg.name);
    Urls {
        api: st.base_url.clone(),
        repo: format!("{}/repos/{full}", st.base_url),
        html_repo: format!("{}/{full}", st.cfg.html_base),
        html_base: st.cfg.html_base.clone(),
    }
}

// ------------------------------------------------------------------ users

/// simple-user
pub fn user(st: &State, login: &str) -> Value {
    let (id, kind) = if login == ACTOR_LOGIN {
        (ACTOR_ID, "Bot")
    } else if login == st.cfg.owner {
        (st.cfg.owner_id, "User")
    } else {
        (
            1_000_000 + login.bytes().map(u64::from).sum::<u64>(),
            "User",
        )
    };
    let api = &st.base_url;
    let u = format!("{api}/users/{}", percent_encode(login));
    json!({
        "login": login,
        "id": id,
        "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": u,
        "html_url": format!("{}/{login}", st.cfg.html_base),
        "followers_url": format!("{u}/followers"),
        "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"),
        "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"),
        "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false
    })
}

// ------------------------------------------------------------------ repository

/// Satisfies both `repository` and `full-repository`.
pub fn repository(st: &State) -> Value {
    let u = urls(st);
    let r = &u.repo;
    let c = &st.cfg;
    let created = rfc3339(st.created_at);
    let pushed = rfc3339(st.clock);
    let open_issues = st.issues.values().filter(|i| i.open).count();
    let mut m = Map::new();
    merge_into(
        &mut m,
        json!({
            "id": c.id,
            "node_id": format!("R_kgDO{}", c.id),
            "name": c.name,
            "full_name": format!("{}/{}", c.owner, c.name),
            "owner": user(st, &c.owner),
            "private": false,
            "html_url": u.html_repo,
            "description": null,
            "fork": false,
            "url": r,
            "archive_url": format!("{r}/{{archive_format}}{{/ref}}"),
            "assignees_url": format!("{r}/assignees{{/user}}"),
            "blobs_url": format!("{r}/git/blobs{{/sha}}"),
            "branches_url": format!("{r}/branches{{/branch}}"),
            "collaborators_url": format!("{r}/collaborators{{/collaborator}}"),
            "comments_url": format!("{r}/comments{{/number}}"),
            "commits_url": format!("{r}/commits{{/sha}}"),
            "compare_url": format!("{r}/compare/{{base}}...{{head}}"),
            "contents_url": format!("{r}/contents/{{+path}}"),
            "contributors_url": format!("{r}/contributors"),
            "deployments_url": format!("{r}/deployments"),
            "downloads_url": format!("{r}/downloads"),
            "events_url": format!("{r}/events"),
            "forks_url": format!("{r}/forks"),
            "git_commits_url": format!("{r}/git/commits{{/sha}}"),
        }),
    );
    merge_into(
        &mut m,
        json!({
            "git_refs_url": format!("{r}/git/refs{{/sha}}"),
            "git_tags_url": format!("{r}/git/tags{{/sha}}"),
            "git_url": format!("git://{}/{}/{}.git", u.html_base.trim_start_matches("https://").trim_start_matches("http://"), c.owner, c.name),
            "issue_comment_url": format!("{r}/issues/comments{{/number}}"),
            "issue_events_url": format!("{r}/issues/events{{/number}}"),
            "issues_url": format!("{r}/issues{{/number}}"),
            "keys_url": format!("{r}/keys{{/key_id}}"),
            "labels_url": format!("{r}/labels{{/name}}"),
            "languages_url": format!("{r}/languages"),
            "merges_url": format!("{r}/merges"),
            "milestones_url": format!("{r}/milestones{{/number}}"),
            "notifications_url": format!("{r}/notifications{{?since,all,participating}}"),
            "pulls_url": format!("{r}/pulls{{/number}}"),
            "releases_url": format!("{r}/releases{{/id}}"),
            "ssh_url": format!("git@github.com:{}/{}.git", c.owner, c.name),
            "stargazers_url": format!("{r}/stargazers"),
            "statuses_url": format!("{r}/statuses/{{sha}}"),
            "subscribers_url": format!("{r}/subscribers"),
            "subscription_url": format!("{r}/subscription"),
            "tags_url": format!("{r}/tags"),
            "teams_url": format!("{r}/teams"),
            "trees_url": format!("{r}/git/trees{{/sha}}"),
            "clone_url": format!("{}.git", u.html_repo),
            "mirror_url": null,
            "hooks_url": format!("{r}/hooks"),
        }),
    );
    merge_into(
        &mut m,
        json!({
            "svn_url": u.html_repo,
            "homepage": null,
            "language": null,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 1,
            "default_branch": c.default_branch,
            "open_issues_count": open_issues,
            "is_template": false,
            "topics": [],
            "has_issues": c.has_issues,
            "has_projects": true,
            "has_wiki": false,
            "has_pages": false,
            "has_downloads": true,
            "has_discussions": false,
            "archived": false,
            "disabled": false,
            "visibility": "public",
            "pushed_at": pushed,
            "created_at": created,
            "updated_at": pushed,
            "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
            "allow_rebase_merge": true,
        }),
    );
    merge_into(
        &mut m,
        json!({
            "allow_squash_merge": true,
            "allow_merge_commit": true,
            "allow_auto_merge": false,
            "delete_branch_on_merge": false,
            "allow_update_branch": false,
            "allow_forking": true,
            "web_commit_signoff_required": false,
            "subscribers_count": 0,
            "network_count": 0,
            "license": null,
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0
        }),
    );
    Value::Object(m)
}

// ------------------------------------------------------------------ labels

/// label
pub fn label(st: &State, l: &Label) -> Value {
    json!({
        "id": l.id,
        "node_id": format!("LA_kwDO{}", l.id),
        "url": format!("{}/labels/{}", urls(st).repo, percent_encode(&l.name)),
        "name": l.name,
        "description": l.description,
        "color": l.color,
        "default": l.default
    })
}

pub fn issue_labels(st: &State, i: &Issue) -> Vec<Value> {
    i.label_ids
        .iter()
        .filter_map(|id| st.label_by_id(*id))
        .map(|l| label(st, l))
        .collect()
}

// ------------------------------------------------------------------ issues

fn reactions(url: &str) -> Value {
    json!({"url": format!("{url}/reactions"), "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
           "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0})
}

/// issue (pull requests included, with their `pull_request` key, as the issues API shows them)
pub fn issue(st: &State, i: &Issue) -> Value {
    let u = urls(st);
    let url = format!("{}/issues/{}", u.repo, i.number);
    let html_kind = if i.is_pull { "pull" } else { "issues" };
    let total = i.sub_issues.len();
    let completed = i
        .sub_issues
        .iter()
        .filter(|n| st.issues.get(n).is_some_and(|s| !s.open))
        .count();
    let mut v = json!({
        "id": i.id,
        "node_id": format!("I_kwDO{}", i.id),
        "url": url,
        "repository_url": u.repo,
        "labels_url": format!("{url}/labels{{/name}}"),
        "comments_url": format!("{url}/comments"),
        "events_url": format!("{url}/events"),
        "html_url": format!("{}/{html_kind}/{}", u.html_repo, i.number),
        "number": i.number,
        "state": if i.open { "open" } else { "closed" },
        "state_reason": i.state_reason,
        "title": i.title,
        "body": i.body,
        "user": user(st, &i.user),
        "labels": issue_labels(st, i),
        "assignee": i.assignees.first().map(|a| user(st, a)),
        "assignees": i.assignees.iter().map(|a| user(st, a)).collect::<Vec<_>>(),
        "milestone": null,
        "locked": false,
        "active_lock_reason": null,
        "comments": i.comments,
        "closed_at": i.closed_at.map(rfc3339),
        "created_at": rfc3339(i.created_at),
        "updated_at": rfc3339(i.updated_at),
        "closed_by": i.closed_by.as_deref().map(|l| user(st, l)),
        "author_association": "CONTRIBUTOR",
        "timeline_url": format!("{url}/timeline"),
        "performed_via_github_app": null,
        "reactions": reactions(&url),
        "sub_issues_summary": {
            "total": total,
            "completed": completed,
            "percent_completed": (completed * 100).checked_div(total).unwrap_or(0)
        },
        "parent_issue_url": i.parent.map(|p| format!("{}/issues/{p}", u.repo)),
    });
    if i.is_pull {
        let p = st.pulls.get(&i.number);
        let purl = format!("{}/pulls/{}", u.repo, i.number);
        let html = format!("{}/pull/{}", u.html_repo, i.number);
        v["pull_request"] = json!({
            "url": purl,
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "merged_at": p.and_then(|p| p.merged_at).map(rfc3339),
        });
        v["draft"] = json!(p.is_some_and(|p| p.draft));
    }
    v
}

/// issue-comment
pub fn comment(st: &State, c: &Comment) -> Value {
    let u = urls(st);
    let url = format!("{}/issues/comments/{}", u.repo, c.id);
    json!({
        "id": c.id,
        "node_id": format!("IC_kwDO{}", c.id),
        "url": url,
        "html_url": format!("{}/issues/{}#issuecomment-{}", u.html_repo, c.issue, c.id),
        "body": c.body,
        "user": user(st, &c.user),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "issue_url": format!("{}/issues/{}", u.repo, c.issue),
        "author_association": "CONTRIBUTOR",
        "performed_via_github_app": null,
        "reactions": reactions(&url)
    })
}

// ------------------------------------------------------------------ git data

/// git-ref
pub fn git_ref(st: &State, full_ref: &str, sha: &str) -> Value {
    let u = urls(st);
    json!({
        "ref": full_ref,
        "node_id": format!("REF_kwDO{}", &sha[..12]),
        "url": format!("{}/git/{}", u.repo, full_ref),
        "object": {"type": "commit", "sha": sha, "url": format!("{}/git/commits/{sha}", u.repo)}
    })
}

/// git-tree; `entries` are (path, entry) as listed.
pub fn git_tree(st: &State, sha: &str, entries: &[(String, super::git::TreeEntry)]) -> Value {
    let u = urls(st);
    let tree: Vec<Value> = entries
        .iter()
        .map(|(path, e)| {
            let mut o = json!({"path": path, "mode": e.mode, "type": e.kind, "sha": e.sha});
            match e.kind.as_str() {
                "blob" => {
                    let size = st.git.blobs.get(&e.sha).map(Vec::len).unwrap_or(0);
                    o["size"] = json!(size);
                    o["url"] = json!(format!("{}/git/blobs/{}", u.repo, e.sha));
                }
                "tree" => o["url"] = json!(format!("{}/git/trees/{}", u.repo, e.sha)),
                _ => {}
            }
            o
        })
        .collect();
    json!({"sha": sha, "url": format!("{}/git/trees/{sha}", u.repo), "tree": tree, "truncated": false})
}

fn verification() -> Value {
    json!({"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null})
}

fn signature(s: &super::git::Signature) -> Value {
    json!({"name": s.name, "email": s.email, "date": rfc3339(s.date)})
}

/// git-commit (the git data API's view of a commit)
pub fn git_commit(st: &State, sha: &str, c: &Commit) -> Value {
    let u = urls(st);
    json!({
        "sha": sha,
        "node_id": format!("C_kwDO{}", &sha[..12]),
        "url": format!("{}/git/commits/{sha}", u.repo),
        "html_url": format!("{}/commit/{sha}", u.html_repo),
        "author": signature(&c.author),
        "committer": signature(&c.committer),
        "message": c.message,
        "tree": {"sha": c.tree, "url": format!("{}/git/trees/{}", u.repo, c.tree)},
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{}/git/commits/{p}", u.repo),
            "html_url": format!("{}/commit/{p}", u.html_repo)
        })).collect::<Vec<_>>(),
        "verification": verification()
    })
}

/// commit (the repos API's view of a commit, as POST /merges answers it)
pub fn commit(st: &State, sha: &str, c: &Commit) -> Value {
    let u = urls(st);
    let url = format!("{}/commits/{sha}", u.repo);
    json!({
        "url": url,
        "sha": sha,
        "node_id": format!("C_kwDO{}", &sha[..12]),
        "html_url": format!("{}/commit/{sha}", u.html_repo),
        "comments_url": format!("{url}/comments"),
        "commit": {
            "url": format!("{}/git/commits/{sha}", u.repo),
            "author": signature(&c.author),
            "committer": signature(&c.committer),
            "message": c.message,
            "comment_count": 0,
            "tree": {"sha": c.tree, "url": format!("{}/git/trees/{}", u.repo, c.tree)},
            "verification": verification()
        },
        "author": user(st, ACTOR_LOGIN),
        "committer": user(st, ACTOR_LOGIN),
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{}/commits/{p}", u.repo),
            "html_url": format!("{}/commit/{p}", u.html_repo)
        })).collect::<Vec<_>>()
    })
}

/// diff-entry
pub fn diff_entry(
    st: &State,
    path: &str,
    status: &str,
    sha: Option<&str>,
    additions: usize,
    deletions: usize,
    git_ref: &str,
) -> Value {
    let u = urls(st);
    json!({
        "sha": sha,
        "filename": path,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": format!("{}/blob/{git_ref}/{path}", u.html_repo),
        "raw_url": format!("{}/raw/{git_ref}/{path}", u.html_repo),
        "contents_url": format!("{}/contents/{path}?ref={git_ref}", u.repo)
    })
}

/// short-branch
pub fn branch(st: &State, name: &str, sha: &str) -> Value {
    json!({
        "name": name,
        "commit": {"sha": sha, "url": format!("{}/commits/{sha}", urls(st).repo)},
        "protected": false
    })
}

fn content_links(
    st: &State,
    path: &str,
    kind: &str,
    sha: &str,
    git_ref: &str,
) -> (String, String, String) {
    let u = urls(st);
    let self_url = format!("{}/contents/{path}?ref={}", u.repo, percent_encode(git_ref));
    let git_url = format!(
        "{}/git/{}/{sha}",
        u.repo,
        if kind == "dir" { "trees" } else { "blobs" }
    );
    let html_url = format!(
        "{}/{}/{git_ref}/{path}",
        u.html_repo,
        if kind == "dir" { "tree" } else { "blob" }
    );
    (self_url, git_url, html_url)
}

/// content-file
pub fn content_file(st: &State, path: &str, sha: &str, data: &[u8], git_ref: &str) -> Value {
    let (self_url, git_url, html_url) = content_links(st, path, "file", sha, git_ref);
    json!({
        "type": "file",
        "encoding": "base64",
        "size": data.len(),
        "name": path.rsplit('/').next().unwrap_or(path),
        "path": path,
        "content": base64_wrapped(data),
        "sha": sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": format!("https://raw.githubusercontent.com/{}/{}/{git_ref}/{path}", st.cfg.owner, st.cfg.name),
        "_links": {"self": self_url, "git": git_url, "html": html_url}
    })
}

/// one item of content-directory
pub fn content_dir_item(
    st: &State,
    path: &str,
    kind: &str,
    sha: &str,
    size: usize,
    git_ref: &str,
) -> Value {
    let (self_url, git_url, html_url) = content_links(st, path, kind, sha, git_ref);
    let download = if kind == "file" {
        json!(format!(
            "https://raw.githubusercontent.com/{}/{}/{git_ref}/{path}",
            st.cfg.owner, st.cfg.name
        ))
    } else {
        Value::Null
    };
    json!({
        "type": kind,
        "size": size,
        "name": path.rsplit('/').next().unwrap_or(path),
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": download,
        "_links": {"self": self_url, "git": git_url, "html": html_url}
    })
}

// ------------------------------------------------------------------ pull requests

/// pull-request (full). `pull_simple` strips it down for lists.
pub fn pull(st: &State, p: &Pull) -> Value {
    let u = urls(st);
    let i = &st.issues[&p.number];
    let url = format!("{}/pulls/{}", u.repo, p.number);
    let html = format!("{}/pull/{}", u.html_repo, p.number);
    let issue_url = format!("{}/issues/{}", u.repo, p.number);
    let head_sha = if i.open {
        st.branch_sha(&p.head_ref).unwrap_or(p.head_sha.clone())
    } else {
        p.head_sha.clone()
    };
    let base_sha = st.branch_sha(&p.base_ref).unwrap_or(p.base_sha.clone());
    let commits = st.git.commits_between(&base_sha, &head_sha).len();
    let (additions, deletions, changed) = diff_stats(st, &base_sha, &head_sha);
    let side = |r: &str, sha: &str| {
        json!({
            "label": format!("{}:{r}", st.cfg.owner),
            "ref": r,
            "sha": sha,
            "user": user(st, &st.cfg.owner),
            "repo": repository(st)
        })
    };
    let link = |h: String| json!({"href": h});
    let mut m = Map::new();
    merge_into(
        &mut m,
        json!({
            "url": url,
            "id": p.id,
            "node_id": format!("PR_kwDO{}", p.id),
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "issue_url": issue_url,
            "commits_url": format!("{url}/commits"),
            "review_comments_url": format!("{url}/comments"),
            "review_comment_url": format!("{}/pulls/comments{{/number}}", u.repo),
            "comments_url": format!("{issue_url}/comments"),
            "statuses_url": format!("{}/statuses/{head_sha}", u.repo),
            "number": p.number,
            "state": if i.open { "open" } else { "closed" },
            "locked": false,
            "title": i.title,
        }),
    );
    merge_into(
        &mut m,
        json!({
            "user": user(st, &i.user),
            "body": i.body,
            "labels": issue_labels(st, i),
            "milestone": null,
            "active_lock_reason": null,
            "created_at": rfc3339(i.created_at),
            "updated_at": rfc3339(i.updated_at),
            "closed_at": i.closed_at.map(rfc3339),
            "merged_at": p.merged_at.map(rfc3339),
            "merge_commit_sha": p.merge_commit_sha,
            "assignee": i.assignees.first().map(|a| user(st, a)),
            "assignees": i.assignees.iter().map(|a| user(st, a)).collect::<Vec<_>>(),
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(&p.head_ref, &head_sha),
            "base": side(&p.base_ref, &base_sha),
        }),
    );
    merge_into(
        &mut m,
        json!({
            "_links": {
                "self": link(url.clone()),
                "html": link(html.clone()),
                "issue": link(issue_url.clone()),
                "comments": link(format!("{issue_url}/comments")),
                "review_comments": link(format!("{url}/comments")),
                "review_comment": link(format!("{}/pulls/comments{{/number}}", u.repo)),
                "commits": link(format!("{url}/commits")),
                "statuses": link(format!("{}/statuses/{head_sha}", u.repo))
            },
            "author_association": "CONTRIBUTOR",
            "auto_merge": null,
            "draft": p.draft,
            "merged": p.merged,
            "mergeable": if p.merged || !i.open { Value::Null } else { json!(true) },
            "rebaseable": null,
            "mergeable_state": if i.open { "clean" } else { "unknown" },
            "merged_by": if p.merged { user(st, ACTOR_LOGIN) } else { Value::Null },
            "comments": i.comments,
            "review_comments": 0,
            "maintainer_can_modify": false,
            "commits": commits,
            "additions": additions,
            "deletions": deletions,
            "changed_files": changed,
        }),
    );
    Value::Object(m)
}

/// pull-request-simple, as pulls/list answers.
pub fn pull_simple(st: &State, p: &Pull) -> Value {
    let mut v = pull(st, p);
    if let Value::Object(m) = &mut v {
        for k in [
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        ] {
            m.remove(k);
        }
    }
    v
}

/// (additions, deletions, changed files) between two commits, counting lines.
pub fn diff_stats(st: &State, base: &str, head: &str) -> (usize, usize, usize) {
    let mut totals = (0, 0, 0);
    for (_, _, _, a, d) in file_changes(st, base, head) {
        totals.0 += a;
        totals.1 += d;
        totals.2 += 1;
    }
    totals
}

/// (path, status, new blob sha, additions, deletions) for every file that differs.
pub fn file_changes(
    st: &State,
    base: &str,
    head: &str,
) -> Vec<(String, String, Option<String>, usize, usize)> {
    let old = st.git.commit_files(base);
    let new = st.git.commit_files(head);
    let text = |sha: &str| {
        String::from_utf8_lossy(st.git.blobs.get(sha).map(Vec::as_slice).unwrap_or(&[]))
            .into_owned()
    };
    let mut out = Vec::new();
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        match (old.get(p), new.get(p)) {
            (Some(a), Some(b)) if a == b => {}
            (None, Some((_, b))) => out.push((
                p.clone(),
                "added".into(),
                Some(b.clone()),
                text(b).lines().count(),
                0,
            )),
            (Some((_, a)), None) => out.push((
                p.clone(),
                "removed".into(),
                None,
                0,
                text(a).lines().count(),
            )),
            (Some((_, a)), Some((_, b))) => {
                let (ta, tb) = (text(a), text(b));
                let mut pool: Vec<&str> = ta.lines().collect();
                let mut adds = 0;
                for l in tb.lines() {
                    match pool.iter().position(|x| *x == l) {
                        Some(i) => {
                            pool.remove(i);
                        }
                        None => adds += 1,
                    }
                }
                out.push((
                    p.clone(),
                    "modified".into(),
                    Some(b.clone()),
                    adds,
                    pool.len(),
                ));
            }
            (None, None) => {}
        }
    }
    out
}

// ------------------------------------------------------------------ rate limit

pub fn rate_limit_overview(st: &State) -> Value {
    let core = json!({
        "limit": st.rate.limit,
        "remaining": st.rate.limit.saturating_sub(st.rate.used),
        "reset": st.rate.reset,
        "used": st.rate.used,
        "resource": "core"
    });
    let other = |limit: u64, resource: &str| json!({"limit": limit, "remaining": limit, "reset": st.rate.reset, "used": 0, "resource": resource});
    json!({
        "resources": {
            "core": core,
            "search": other(30, "search"),
            "graphql": other(5000, "graphql"),
            "integration_manifest": other(5000, "integration_manifest"),
            "code_search": other(10, "code_search")
        },
        "rate": core
    })
}

fn merge_into(m: &mut Map<String, Value>, v: Value) {
    if let Value::Object(o) = v {
        m.extend(o);
    }
}

/// An object with only the keys given, in order (for small ad-hoc bodies).
pub fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}
