//! Routing and the endpoint handlers. Pure functions of (state, request) -> reply: no I/O,
//! no waiting, so they run under the state lock and are easy to reason about.

use serde_json::{Value, json};

use super::git::{FlatTree, MODE_FILE, Signature};
use super::render::{self, ApiError};
use super::state::{Dispatch, State};
use super::util::{base64_decode, is_hex40, parse_rfc3339, percent_decode, percent_encode};

/// A parsed request as the handlers see it.
pub struct Req<'a> {
    pub method: &'a str,
    /// the raw path, e.g. `/repos/o/r/issues`
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a Value,
}

impl Req<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn s(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

/// What a handler answers: status, JSON body (None for an empty body), extra headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: vec![],
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: vec![],
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply {
            status: e.status,
            body: Some(e.body),
            headers: e.headers,
        }
    }
}

type Res = Result<Reply, ApiError>;

/// Routes one request. Unknown paths and methods answer 404, as GitHub does.
pub fn dispatch(st: &mut State, req: &Req) -> Reply {
    let raw: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let segs: Vec<String> = raw.iter().map(|s| percent_decode(s)).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let result = match segs.as_slice() {
        ["rate_limit"] if req.method == "GET" => {
            Ok(Reply::json(200, render::rate_limit_overview(st)))
        }
        ["search", "issues"] if req.method == "GET" => search_issues(st, req),
        ["repos", owner, repo, rest @ ..]
            if owner.eq_ignore_ascii_case(&st.cfg.owner)
                && repo.eq_ignore_ascii_case(&st.cfg.name) =>
        {
            repo_route(st, req, rest)
        }
        _ => Err(ApiError::not_found()),
    };
    result.unwrap_or_else(Reply::from)
}

fn number(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn repo_route(st: &mut State, req: &Req, rest: &[&str]) -> Res {
    let m = req.method;
    match (m, rest) {
        ("GET", []) => Ok(Reply::json(200, render::repository(st))),
        ("GET", ["branches"]) => list_branches(st, req),
        ("GET", ["contents", path @ ..]) => get_content(st, req, &path.join("/")),
        ("PUT", ["contents", path @ ..]) => put_content(st, req, &path.join("/")),
        ("POST", ["merges"]) => merge(st, req),
        ("GET", ["compare", basehead @ ..]) => compare(st, &basehead.join("/")),
        // issues
        (_, ["issues", ..]) if !st.cfg.has_issues && rest.get(1) != Some(&"comments") => {
            Err(ApiError::message(410, "Issues are disabled for this repo"))
        }
        ("GET", ["issues"]) => list_issues(st, req),
        ("POST", ["issues"]) => create_issue(st, req),
        ("PATCH", ["issues", "comments", id]) => update_comment(st, req, number(id)?),
        ("GET", ["issues", n]) => get_issue(st, number(n)?),
        ("PATCH", ["issues", n]) => update_issue(st, req, number(n)?),
        ("GET", ["issues", n, "comments"]) => list_comments(st, req, number(n)?),
        ("POST", ["issues", n, "comments"]) => create_comment(st, req, number(n)?),
        ("GET", ["issues", n, "labels"]) => list_issue_labels(st, req, number(n)?),
        ("POST", ["issues", n, "labels"]) => add_labels(st, req, number(n)?, false),
        ("PUT", ["issues", n, "labels"]) => add_labels(st, req, number(n)?, true),
        ("DELETE", ["issues", n, "labels", name @ ..]) => {
            remove_label(st, number(n)?, &name.join("/"))
        }
        ("POST", ["issues", n, "assignees"]) => add_assignees(st, req, number(n)?),
        ("GET", ["issues", n, "sub_issues"]) => list_sub_issues(st, req, number(n)?),
        ("POST", ["issues", n, "sub_issues"]) => add_sub_issue(st, req, number(n)?),
        ("DELETE", ["issues", n, "sub_issue"]) => remove_sub_issue(st, req, number(n)?),
        // labels
        ("GET", ["labels"]) => list_labels(st, req),
        ("POST", ["labels"]) => create_label(st, req),
        ("GET", ["labels", name @ ..]) => get_label(st, &name.join("/")),
        ("PATCH", ["labels", name @ ..]) => update_label(st, req, &name.join("/")),
        // git data
        ("GET", ["git", "ref", r @ ..]) => get_ref(st, &r.join("/")),
        ("GET", ["git", "matching-refs", r @ ..]) => matching_refs(st, &r.join("/")),
        ("POST", ["git", "refs"]) => create_ref(st, req),
        ("PATCH", ["git", "refs", r @ ..]) => update_ref(st, req, &r.join("/")),
        ("DELETE", ["git", "refs", r @ ..]) => delete_ref(st, &r.join("/")),
        ("POST", ["git", "blobs"]) => create_blob(st, req),
        ("POST", ["git", "trees"]) => create_tree(st, req),
        ("GET", ["git", "trees", t @ ..]) => get_tree(st, req, &t.join("/")),
        ("POST", ["git", "commits"]) => create_commit(st, req),
        ("GET", ["git", "commits", sha]) => get_commit(st, sha),
        // pulls
        ("GET", ["pulls"]) => list_pulls(st, req),
        ("POST", ["pulls"]) => create_pull(st, req),
        ("GET", ["pulls", n]) => get_pull(st, number(n)?),
        ("PATCH", ["pulls", n]) => update_pull(st, req, number(n)?),
        // actions
        ("POST", ["actions", "workflows", id, "dispatches"]) => workflow_dispatch(st, req, id),
        _ => Err(ApiError::not_found()),
    }
}

// ------------------------------------------------------------------ pagination

/// Slices `items` by `page`/`per_page` and adds GitHub's `Link` header (absolute URLs on the
/// fake's base URL, other query parameters kept).
fn paginate(st: &State, req: &Req, items: Vec<Value>) -> Reply {
    let per_page = req
        .q("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(st.per_page_default)
        .clamp(1, 100);
    let page = req
        .q("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut reply = Reply::json(200, Value::Array(slice));
    let link_to = |p: usize| {
        let mut parts: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        parts.push(format!("page={p}"));
        format!("<{}{}?{}>", st.base_url, req.path, parts.join("&"))
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(format!("{}; rel=\"prev\"", link_to((page - 1).min(last))));
    }
    if page < last {
        rels.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        rels.push(format!("{}; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        rels.push(format!("{}; rel=\"first\"", link_to(1)));
    }
    if !rels.is_empty() {
        reply.headers.push(("link".into(), rels.join(", ")));
    }
    reply
}

fn direction_desc(req: &Req, default_desc: bool) -> Result<bool, ApiError> {
    match req.q("direction") {
        None => Ok(default_desc),
        Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(_) => Err(ApiError::validation("Issue", "invalid", "direction")),
    }
}

// ------------------------------------------------------------------ issues

fn issue_exists(st: &State, n: u64) -> Result<(), ApiError> {
    if st.issues.contains_key(&n) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn list_issues(st: &mut State, req: &Req) -> Res {
    let state = req.q("state").unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return Err(ApiError::validation("Issue", "invalid", "state"));
    }
    let labels: Vec<String> = req
        .q("labels")
        .unwrap_or("")
        .split(',')
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    let since = match req.q("since") {
        Some(s) => Some(
            parse_rfc3339(s).ok_or_else(|| ApiError::validation("Issue", "invalid", "since"))?,
        ),
        None => None,
    };
    let sort = req.q("sort").unwrap_or("created");
    if !matches!(sort, "created" | "updated" | "comments") {
        return Err(ApiError::validation("Issue", "invalid", "sort"));
    }
    let desc = direction_desc(req, true)?;
    let mut hits: Vec<&super::state::Issue> = st
        .issues
        .values()
        .filter(|i| state == "all" || (state == "open") == i.open)
        .filter(|i| since.is_none_or(|s| i.updated_at >= s))
        .filter(|i| {
            let names: Vec<String> = i
                .label_ids
                .iter()
                .filter_map(|id| st.label_by_id(*id))
                .map(|l| l.name.to_lowercase())
                .collect();
            labels.iter().all(|l| names.contains(l))
        })
        .collect();
    hits.sort_by_key(|i| {
        let k = match sort {
            "updated" => i.updated_at,
            "comments" => i64::from(i.comments),
            _ => i.created_at,
        };
        (k, i.number)
    });
    if desc {
        hits.reverse();
    }
    let items = hits.into_iter().map(|i| render::issue(st, i)).collect();
    Ok(paginate(st, req, items))
}

/// Label names from any body form GitHub accepts: `{"labels": [..]}`, a bare array, a bare
/// string; items may be names or `{"name": ..}` objects.
fn label_names(body: &Value) -> Result<Vec<String>, ApiError> {
    let list = match body {
        Value::Object(m) => m.get("labels").cloned().unwrap_or(Value::Array(vec![])),
        other => other.clone(),
    };
    let items = match list {
        Value::Array(a) => a,
        Value::String(s) => vec![Value::String(s)],
        Value::Null => vec![],
        _ => return Err(ApiError::validation("Label", "invalid", "labels")),
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            Value::Object(o) => o
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ApiError::validation("Label", "missing_field", "name")),
            _ => Err(ApiError::validation("Label", "invalid", "labels")),
        })
        .collect()
}

fn create_issue(st: &mut State, req: &Req) -> Res {
    let Some(title) = req.s("title") else {
        return Err(ApiError::validation("Issue", "missing_field", "title"));
    };
    let labels = match req.body.get("labels") {
        Some(l) if !l.is_null() => label_names(l)?,
        _ => vec![],
    };
    let n = st.create_issue(title, req.s("body"), &labels, false)?;
    st.issues.get_mut(&n).unwrap().assignees = string_list(req.body.get("assignees"));
    Ok(Reply::json(201, render::issue(st, &st.issues[&n])))
}

fn get_issue(st: &mut State, n: u64) -> Res {
    let i = st.issues.get(&n).ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(200, render::issue(st, i)))
}

fn update_issue(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let b = req.body;
    let title = b.get("title").and_then(Value::as_str);
    let body = b.get("body").and_then(Value::as_str);
    State::check_text("Issue", title, body)?;
    let state = b.get("state").and_then(Value::as_str);
    if state.is_some_and(|s| s != "open" && s != "closed") {
        return Err(ApiError::validation("Issue", "invalid", "state"));
    }
    let reason = b.get("state_reason").and_then(Value::as_str);
    if reason.is_some_and(|r| !matches!(r, "completed" | "not_planned" | "reopened" | "duplicate"))
    {
        return Err(ApiError::validation("Issue", "invalid", "state_reason"));
    }
    if let Some(l) = b.get("labels").filter(|l| !l.is_null()) {
        let names = label_names(l)?;
        st.set_issue_labels(n, &names)?;
    }
    let now = st.tick();
    {
        let i = st.issues.get_mut(&n).unwrap();
        if let Some(t) = title {
            i.title = t.to_string();
        }
        if b.get("body").is_some() {
            i.body = body.map(str::to_string);
        }
        i.updated_at = now;
    }
    if let Some(s) = state {
        st.set_issue_state(n, s, reason);
    } else if let Some(r) = reason {
        st.issues.get_mut(&n).unwrap().state_reason = Some(r.to_string());
    }
    Ok(Reply::json(200, render::issue(st, &st.issues[&n])))
}

fn list_comments(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let since = req.q("since").and_then(parse_rfc3339);
    let items = st
        .comments
        .values()
        .filter(|c| c.issue == n && since.is_none_or(|s| c.updated_at >= s))
        .map(|c| render::comment(st, c))
        .collect();
    Ok(paginate(st, req, items))
}

fn create_comment(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let Some(body) = req.s("body") else {
        return Err(ApiError::validation(
            "IssueComment",
            "missing_field",
            "body",
        ));
    };
    let id = st.add_comment(n, body)?;
    Ok(Reply::json(201, render::comment(st, &st.comments[&id])))
}

fn update_comment(st: &mut State, req: &Req, id: u64) -> Res {
    if !st.comments.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    let Some(body) = req.s("body") else {
        return Err(ApiError::validation(
            "IssueComment",
            "missing_field",
            "body",
        ));
    };
    State::check_text("IssueComment", None, Some(body))?;
    let now = st.tick();
    let c = st.comments.get_mut(&id).unwrap();
    c.body = body.to_string();
    c.updated_at = now;
    Ok(Reply::json(200, render::comment(st, &st.comments[&id])))
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn add_assignees(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let now = st.tick();
    let i = st.issues.get_mut(&n).unwrap();
    for a in string_list(req.body.get("assignees")) {
        if !i.assignees.contains(&a) && i.assignees.len() < 10 {
            i.assignees.push(a);
        }
    }
    i.updated_at = now;
    Ok(Reply::json(201, render::issue(st, &st.issues[&n])))
}

type IssueFilter = Box<dyn Fn(&super::state::Issue, &[String]) -> bool>;

/// Splits a search query into terms, keeping "quoted phrases" (also after `label:`) whole.
fn search_terms(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// GET /search/issues with the common qualifiers: repo:, is:issue|pr|open|closed, type:,
/// state:, label: (a comma means OR), -label:, no:parent-issue is not supported; free words
/// must all occur in the title or body. Other qualifiers are ignored.
fn search_issues(st: &mut State, req: &Req) -> Res {
    let Some(q) = req.q("q") else {
        return Err(ApiError::validation("Search", "missing", "q"));
    };
    let repo = format!("{}/{}", st.cfg.owner, st.cfg.name).to_lowercase();
    let mut matches_repo = true;
    let mut filters: Vec<IssueFilter> = Vec::new();
    for term in search_terms(q) {
        let (neg, t) = match term.strip_prefix('-') {
            Some(rest) if rest.contains(':') => (true, rest.to_string()),
            _ => (false, term.clone()),
        };
        let f: IssueFilter = match t.split_once(':') {
            Some(("repo", r)) => {
                matches_repo &= r.to_lowercase() == repo;
                continue;
            }
            Some(("is" | "type" | "state", v)) => match v {
                "issue" => Box::new(|i, _| !i.is_pull),
                "pr" | "pull-request" => Box::new(|i, _| i.is_pull),
                "open" => Box::new(|i, _| i.open),
                "closed" => Box::new(|i, _| !i.open),
                _ => continue,
            },
            Some(("label", v)) => {
                let any: Vec<String> = v.split(',').map(|x| x.trim().to_lowercase()).collect();
                Box::new(move |_, names| any.iter().any(|a| names.contains(a)))
            }
            Some((_, _)) => continue,
            None => {
                let word = t.to_lowercase();
                Box::new(move |i, _| {
                    i.title.to_lowercase().contains(&word)
                        || i.body
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(&word)
                })
            }
        };
        filters.push(if neg {
            Box::new(move |i, n| !f(i, n))
        } else {
            f
        });
    }
    let mut hits: Vec<&super::state::Issue> = if matches_repo {
        st.issues
            .values()
            .filter(|i| {
                let names: Vec<String> = i
                    .label_ids
                    .iter()
                    .filter_map(|id| st.label_by_id(*id))
                    .map(|l| l.name.to_lowercase())
                    .collect();
                filters.iter().all(|f| f(i, &names))
            })
            .collect()
    } else {
        vec![]
    };
    let sort = req.q("sort");
    hits.sort_by_key(|i| {
        let k = match sort {
            Some("updated") => i.updated_at,
            Some("comments") => i64::from(i.comments),
            _ => i.created_at,
        };
        (k, i.number)
    });
    if req.q("order") != Some("asc") {
        hits.reverse();
    }
    let total = hits.len();
    let items: Vec<Value> = hits
        .into_iter()
        .map(|i| {
            let mut v = render::issue(st, i);
            v["score"] = json!(1.0);
            v
        })
        .collect();
    let page = paginate(st, req, items);
    Ok(Reply {
        status: 200,
        body: Some(json!({
            "total_count": total,
            "incomplete_results": false,
            "search_type": "lexical",
            "items": page.body.unwrap_or(json!([]))
        })),
        headers: page.headers,
    })
}

// ------------------------------------------------------------------ labels

fn issue_labels_reply(st: &State, n: u64) -> Reply {
    Reply::json(200, Value::Array(render::issue_labels(st, &st.issues[&n])))
}

fn list_issue_labels(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let items = render::issue_labels(st, &st.issues[&n]);
    Ok(paginate(st, req, items))
}

fn add_labels(st: &mut State, req: &Req, n: u64, replace: bool) -> Res {
    issue_exists(st, n)?;
    let names = label_names(req.body)?;
    if replace {
        st.set_issue_labels(n, &names)?;
    } else {
        st.add_issue_labels(n, &names)?;
    }
    Ok(issue_labels_reply(st, n))
}

fn remove_label(st: &mut State, n: u64, name: &str) -> Res {
    issue_exists(st, n)?;
    let id = st.label_index(name).map(|i| st.labels[i].id);
    match id {
        Some(id) if st.issues[&n].label_ids.contains(&id) => {
            let now = st.tick();
            let i = st.issues.get_mut(&n).unwrap();
            i.label_ids.retain(|x| *x != id);
            i.updated_at = now;
            Ok(issue_labels_reply(st, n))
        }
        _ => Err(ApiError::message(404, "Label does not exist")),
    }
}

fn list_labels(st: &mut State, req: &Req) -> Res {
    let mut labels = st.labels.clone();
    labels.sort_by_key(|l| l.name.to_lowercase());
    let items = labels.iter().map(|l| render::label(st, l)).collect();
    Ok(paginate(st, req, items))
}

fn create_label(st: &mut State, req: &Req) -> Res {
    let Some(name) = req.s("name") else {
        return Err(ApiError::validation("Label", "missing_field", "name"));
    };
    let id = st.create_label(name, req.s("color"), req.s("description"))?;
    let l = st.label_by_id(id).unwrap();
    Ok(Reply::json(201, render::label(st, l)))
}

fn get_label(st: &mut State, name: &str) -> Res {
    let i = st.label_index(name).ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(200, render::label(st, &st.labels[i])))
}

fn update_label(st: &mut State, req: &Req, name: &str) -> Res {
    let i = st.label_index(name).ok_or_else(ApiError::not_found)?;
    if let Some(new) = req.s("new_name")
        && st.label_index(new).is_some_and(|j| j != i)
    {
        return Err(ApiError::validation("Label", "already_exists", "name"));
    }
    if let Some(c) = req.s("color")
        && (c.len() != 6 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::validation("Label", "invalid", "color"));
    }
    let l = &mut st.labels[i];
    if let Some(new) = req.s("new_name") {
        l.name = new.to_string();
    }
    if let Some(c) = req.s("color") {
        l.color = c.to_lowercase();
    }
    if req.body.get("description").is_some() {
        l.description = req.s("description").map(str::to_string);
    }
    Ok(Reply::json(200, render::label(st, &st.labels[i])))
}

// ------------------------------------------------------------------ sub-issues

fn sub_issue_target(st: &State, req: &Req) -> Result<u64, ApiError> {
    let id = req
        .body
        .get("sub_issue_id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::validation("Issue", "missing_field", "sub_issue_id"))?;
    st.issue_by_id(id).ok_or_else(ApiError::not_found)
}

fn add_sub_issue(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let child = sub_issue_target(st, req)?;
    if st.issues[&child].is_pull {
        return Err(ApiError::validation_custom(
            "Issue",
            "sub_issue_id",
            "Sub issue cannot be a pull request",
        ));
    }
    let replace = req
        .body
        .get("replace_parent")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    st.add_sub_issue(n, child, replace)?;
    Ok(Reply::json(201, render::issue(st, &st.issues[&n])))
}

fn list_sub_issues(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let items = st.issues[&n]
        .sub_issues
        .iter()
        .map(|c| render::issue(st, &st.issues[c]))
        .collect();
    Ok(paginate(st, req, items))
}

fn remove_sub_issue(st: &mut State, req: &Req, n: u64) -> Res {
    issue_exists(st, n)?;
    let child = sub_issue_target(st, req)?;
    if st.issues[&child].parent != Some(n) {
        return Err(ApiError::not_found());
    }
    let now = st.tick();
    st.issues.get_mut(&child).unwrap().parent = None;
    let p = st.issues.get_mut(&n).unwrap();
    p.sub_issues.retain(|c| *c != child);
    p.updated_at = now;
    Ok(Reply::json(200, render::issue(st, &st.issues[&n])))
}

// ------------------------------------------------------------------ repos

fn list_branches(st: &mut State, req: &Req) -> Res {
    let items = st
        .refs
        .iter()
        .filter_map(|(r, sha)| {
            r.strip_prefix("refs/heads/")
                .map(|b| render::branch(st, b, sha))
        })
        .collect();
    Ok(paginate(st, req, items))
}

fn get_content(st: &mut State, req: &Req, path: &str) -> Res {
    let git_ref = req
        .q("ref")
        .map(str::to_string)
        .unwrap_or_else(|| st.cfg.default_branch.clone());
    let Some(sha) = st.resolve(&git_ref) else {
        return Err(ApiError::message(
            404,
            &format!("No commit found for the ref {git_ref}"),
        ));
    };
    let path = path.trim_matches('/');
    let tree = st.git.commits[&sha].tree.clone();
    let files = st.git.flatten(&tree);
    if let Some((_, blob)) = files.get(path) {
        let data = st.git.blobs[blob].clone();
        return Ok(Reply::json(
            200,
            render::content_file(st, path, blob, &data, &git_ref),
        ));
    }
    // a directory: list its direct children
    let entries = st.git.walk(&tree, true);
    let dir_prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let is_dir = path.is_empty() || entries.iter().any(|(p, _)| p.starts_with(&dir_prefix));
    if !is_dir {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = entries
        .iter()
        .filter(|(p, _)| {
            p.strip_prefix(&dir_prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        })
        .map(|(p, e)| {
            let kind = if e.kind == "tree" { "dir" } else { "file" };
            let size = if kind == "file" {
                st.git.blobs.get(&e.sha).map(Vec::len).unwrap_or(0)
            } else {
                0
            };
            render::content_dir_item(st, p, kind, &e.sha, size, &git_ref)
        })
        .collect();
    Ok(Reply::json(200, Value::Array(items)))
}

/// PUT /contents/{path}: one-file commit (base64 content; `sha` required to replace a file).
fn put_content(st: &mut State, req: &Req, path: &str) -> Res {
    let path = path.trim_matches('/');
    let (Some(message), Some(content)) = (req.s("message"), req.s("content")) else {
        let field = if req.s("message").is_none() {
            "message"
        } else {
            "content"
        };
        return Err(ApiError::unprocessable(&format!(
            "Invalid request.\n\n\"{field}\" wasn't supplied."
        )));
    };
    let data = base64_decode(content)
        .ok_or_else(|| ApiError::unprocessable("content is not valid Base64"))?;
    let branch = req
        .s("branch")
        .map(str::to_string)
        .unwrap_or_else(|| st.cfg.default_branch.clone());
    let Some(parent) = st.branch_sha(&branch) else {
        return Err(ApiError::message(
            404,
            &format!("Branch {branch} not found"),
        ));
    };
    let mut files = st.git.commit_files(&parent);
    let existing = files.get(path).map(|(_, sha)| sha.clone());
    match (&existing, req.s("sha")) {
        (Some(_), None) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\n\"sha\" wasn't supplied.",
            ));
        }
        (Some(cur), Some(given)) if cur != given => {
            return Err(ApiError::message(
                409,
                &format!("{path} does not match {given}"),
            ));
        }
        _ => {}
    }
    let blob = st.git.put_blob(&data);
    files.insert(path.to_string(), (MODE_FILE.to_string(), blob.clone()));
    let tree = st.git.build_tree(&files);
    let author = parse_signature(req.body.get("author"))
        .or_else(|| parse_signature(req.body.get("committer")));
    let sha = st.new_commit(tree, vec![parent], message.to_string(), author);
    st.set_ref(&format!("refs/heads/{branch}"), &sha);
    let c = st.git.commits[&sha].clone();
    let body = json!({
        "content": render::content_dir_item(st, path, "file", &blob, data.len(), &branch),
        "commit": render::git_commit(st, &sha, &c)
    });
    Ok(Reply::json(
        if existing.is_some() { 200 } else { 201 },
        body,
    ))
}

fn merge(st: &mut State, req: &Req) -> Res {
    let (Some(base), Some(head)) = (req.s("base"), req.s("head")) else {
        return Err(ApiError::validation(
            "Merge",
            "missing_field",
            if req.s("base").is_none() {
                "base"
            } else {
                "head"
            },
        ));
    };
    let record = st.merge(base, head, req.s("commit_message").map(str::to_string))?;
    match record.sha {
        Some(sha) => {
            let c = st.git.commits[&sha].clone();
            Ok(Reply::json(201, render::commit(st, &sha, &c)))
        }
        None => Ok(Reply::empty(204)),
    }
}

fn compare(st: &mut State, basehead: &str) -> Res {
    let Some((base, head)) = basehead.split_once("...") else {
        return Err(ApiError::not_found());
    };
    let (Some(b), Some(h)) = (st.resolve(base), st.resolve(head)) else {
        return Err(ApiError::not_found());
    };
    let mb = st.git.merge_base(&b, &h).ok_or_else(ApiError::not_found)?;
    let ahead = st.git.commits_between(&b, &h);
    let behind = st.git.commits_between(&h, &b);
    let status = match (ahead.is_empty(), behind.is_empty()) {
        (true, true) => "identical",
        (false, true) => "ahead",
        (true, false) => "behind",
        (false, false) => "diverged",
    };
    let render_commit = |sha: &String| render::commit(st, sha, &st.git.commits[sha]);
    let files: Vec<Value> = render::file_changes(st, &mb, &h)
        .into_iter()
        .map(|(path, status, sha, a, d)| {
            render::diff_entry(st, &path, &status, sha.as_deref(), a, d, &h)
        })
        .collect();
    let u = render::urls(st);
    Ok(Reply::json(
        200,
        json!({
            "url": format!("{}/compare/{basehead}", u.repo),
            "html_url": format!("{}/compare/{basehead}", u.html_repo),
            "permalink_url": format!("{}/compare/{}...{}", u.html_repo, &b[..7], &h[..7]),
            "diff_url": format!("{}/compare/{basehead}.diff", u.html_repo),
            "patch_url": format!("{}/compare/{basehead}.patch", u.html_repo),
            "base_commit": render_commit(&b),
            "merge_base_commit": render_commit(&mb),
            "status": status,
            "ahead_by": ahead.len(),
            "behind_by": behind.len(),
            "total_commits": ahead.len(),
            "commits": ahead.iter().map(render_commit).collect::<Vec<_>>(),
            "files": files
        }),
    ))
}

// ------------------------------------------------------------------ git data

fn get_ref(st: &mut State, r: &str) -> Res {
    let full = format!("refs/{r}");
    let sha = st.refs.get(&full).ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(200, render::git_ref(st, &full, sha)))
}

fn matching_refs(st: &mut State, r: &str) -> Res {
    let prefix = format!("refs/{r}");
    let items: Vec<Value> = st
        .refs
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, sha)| render::git_ref(st, k, sha))
        .collect();
    Ok(Reply::json(200, Value::Array(items)))
}

fn valid_ref_name(r: &str) -> bool {
    r.starts_with("refs/")
        && r.matches('/').count() >= 2
        && !r.ends_with('/')
        && !r.contains("..")
        && !r.contains("//")
        && !r.contains(' ')
        && !r.ends_with(".lock")
}

fn create_ref(st: &mut State, req: &Req) -> Res {
    let (Some(r), Some(sha)) = (req.s("ref"), req.s("sha")) else {
        return Err(ApiError::validation(
            "Reference",
            "missing_field",
            if req.s("ref").is_none() { "ref" } else { "sha" },
        ));
    };
    if !valid_ref_name(r) {
        return Err(ApiError::unprocessable(
            "Reference name must start with 'refs/' and have at least two slashes.",
        ));
    }
    if st.refs.contains_key(r) {
        return Err(ApiError::unprocessable("Reference already exists"));
    }
    if !st.git.commits.contains_key(sha) {
        return Err(ApiError::unprocessable("Object does not exist"));
    }
    st.set_ref(r, sha);
    Ok(Reply::json(201, render::git_ref(st, r, sha)))
}

fn update_ref(st: &mut State, req: &Req, r: &str) -> Res {
    let full = format!("refs/{r}");
    let Some(sha) = req.s("sha") else {
        return Err(ApiError::validation("Reference", "missing_field", "sha"));
    };
    let Some(current) = st.refs.get(&full).cloned() else {
        return Err(ApiError::unprocessable("Reference does not exist"));
    };
    if !st.git.commits.contains_key(sha) {
        return Err(ApiError::unprocessable("Object does not exist"));
    }
    let force = req
        .body
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !force && !st.git.is_ancestor(&current, sha) {
        return Err(ApiError::unprocessable("Update is not a fast forward"));
    }
    st.set_ref(&full, sha);
    Ok(Reply::json(200, render::git_ref(st, &full, sha)))
}

fn delete_ref(st: &mut State, r: &str) -> Res {
    let full = format!("refs/{r}");
    if full == format!("refs/heads/{}", st.cfg.default_branch) {
        return Err(ApiError::unprocessable("Cannot delete the default branch"));
    }
    if st.refs.remove(&full).is_none() {
        return Err(ApiError::unprocessable("Reference does not exist"));
    }
    // GitHub closes the open pull requests whose head branch is deleted.
    if let Some(branch) = full.strip_prefix("refs/heads/") {
        let closing: Vec<u64> = st
            .pulls
            .values()
            .filter(|p| p.head_ref == branch && st.issues[&p.number].open)
            .map(|p| p.number)
            .collect();
        for n in closing {
            st.set_issue_state(n, "closed", None);
            st.issues.get_mut(&n).unwrap().state_reason = None;
        }
    }
    Ok(Reply::empty(204))
}

fn create_blob(st: &mut State, req: &Req) -> Res {
    let Some(content) = req.s("content") else {
        return Err(ApiError::validation("Blob", "missing_field", "content"));
    };
    let data = match req.s("encoding").unwrap_or("utf-8") {
        "utf-8" | "utf8" => content.as_bytes().to_vec(),
        "base64" => base64_decode(content)
            .ok_or_else(|| ApiError::validation("Blob", "invalid", "content"))?,
        _ => return Err(ApiError::validation("Blob", "invalid", "encoding")),
    };
    let sha = st.git.put_blob(&data);
    Ok(Reply::json(
        201,
        json!({"url": format!("{}/git/blobs/{sha}", render::urls(st).repo), "sha": sha}),
    ))
}

fn remove_under(files: &mut FlatTree, path: &str) {
    let prefix = format!("{path}/");
    files.retain(|p, _| p != path && !p.starts_with(&prefix));
}

fn create_tree(st: &mut State, req: &Req) -> Res {
    let Some(entries) = req.body.get("tree").and_then(Value::as_array) else {
        return Err(ApiError::validation("Tree", "missing_field", "tree"));
    };
    let mut files = match req.s("base_tree") {
        Some(base) => {
            let tree = if st.git.trees.contains_key(base) {
                base.to_string()
            } else if let Some(c) = st.git.commits.get(base) {
                c.tree.clone()
            } else {
                return Err(ApiError::unprocessable("base_tree is not a valid tree oid"));
            };
            st.git.flatten(&tree)
        }
        None => FlatTree::new(),
    };
    for e in entries {
        let path = e
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_matches('/')
            .to_string();
        if path.is_empty() {
            return Err(ApiError::unprocessable("tree.path cannot be blank"));
        }
        let mode = e.get("mode").and_then(Value::as_str).unwrap_or(MODE_FILE);
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("blob");
        if !matches!(mode, "100644" | "100755" | "040000" | "160000" | "120000") {
            return Err(ApiError::unprocessable(&format!(
                "tree.mode {mode} is not a valid mode"
            )));
        }
        let content = e.get("content").and_then(Value::as_str);
        let sha_field = e.get("sha");
        if content.is_some() && sha_field.is_some_and(|s| !s.is_null()) {
            return Err(ApiError::unprocessable(
                "Must supply either tree.sha or tree.content, not both",
            ));
        }
        match (content, sha_field) {
            (Some(text), _) => {
                let blob = st.git.put_blob(text.as_bytes());
                remove_under(&mut files, &path);
                files.insert(path, (mode.to_string(), blob));
            }
            (None, Some(Value::Null)) => remove_under(&mut files, &path),
            (None, Some(Value::String(sha))) => {
                remove_under(&mut files, &path);
                match kind {
                    "tree" => {
                        if !st.git.trees.contains_key(sha) {
                            return Err(ApiError::unprocessable(&format!(
                                "tree.sha {sha} is not a valid tree"
                            )));
                        }
                        for (p, v) in st.git.flatten(sha) {
                            files.insert(format!("{path}/{p}"), v);
                        }
                    }
                    "blob" => {
                        if !st.git.blobs.contains_key(sha) {
                            return Err(ApiError::unprocessable(&format!(
                                "tree.sha {sha} is not a valid blob"
                            )));
                        }
                        files.insert(path, (mode.to_string(), sha.clone()));
                    }
                    _ => return Err(ApiError::unprocessable("tree.type must be blob or tree")),
                }
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "Must supply tree.sha or tree.content",
                ));
            }
        }
    }
    // a file path that is also a directory prefix of another path cannot exist in git
    let paths: Vec<String> = files.keys().cloned().collect();
    for p in &paths {
        if paths.iter().any(|q| q.starts_with(&format!("{p}/"))) {
            return Err(ApiError::unprocessable(&format!(
                "tree.path {p} is both a file and a directory"
            )));
        }
    }
    let sha = st.git.build_tree(&files);
    let listing = st.git.walk(&sha, false);
    Ok(Reply::json(201, render::git_tree(st, &sha, &listing)))
}

fn get_tree(st: &mut State, req: &Req, t: &str) -> Res {
    let tree = if st.git.trees.contains_key(t) {
        t.to_string()
    } else if let Some(c) = st.resolve(t).and_then(|c| st.git.commits.get(&c)) {
        c.tree.clone()
    } else {
        return Err(ApiError::not_found());
    };
    let recursive = req.q("recursive").is_some();
    let listing = st.git.walk(&tree, recursive);
    Ok(Reply::json(200, render::git_tree(st, &tree, &listing)))
}

fn parse_signature(v: Option<&Value>) -> Option<Signature> {
    let v = v?;
    Some(Signature {
        name: v.get("name")?.as_str()?.to_string(),
        email: v.get("email")?.as_str()?.to_string(),
        date: v
            .get("date")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or_else(super::util::now_secs),
    })
}

fn create_commit(st: &mut State, req: &Req) -> Res {
    let (Some(message), Some(tree)) = (req.s("message"), req.s("tree")) else {
        return Err(ApiError::validation(
            "Commit",
            "missing_field",
            if req.s("message").is_none() {
                "message"
            } else {
                "tree"
            },
        ));
    };
    if !st.git.trees.contains_key(tree) {
        return Err(ApiError::unprocessable("Tree SHA does not exist"));
    }
    let mut parents = Vec::new();
    for p in req
        .body
        .get("parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let p = p.as_str().unwrap_or("").to_string();
        if !st.git.commits.contains_key(&p) {
            return Err(ApiError::unprocessable(
                "Parent SHA does not exist or is not a commit object",
            ));
        }
        parents.push(p);
    }
    let author = parse_signature(req.body.get("author"));
    let sha = st.new_commit(tree.to_string(), parents, message.to_string(), author);
    let c = st.git.commits[&sha].clone();
    Ok(Reply::json(201, render::git_commit(st, &sha, &c)))
}

fn get_commit(st: &mut State, sha: &str) -> Res {
    let c = st
        .git
        .commits
        .get(sha)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(200, render::git_commit(st, sha, &c)))
}

// ------------------------------------------------------------------ pulls

/// "owner:branch" or "branch" -> branch, when the owner is this repository's.
fn head_branch<'a>(st: &State, head: &'a str) -> Option<&'a str> {
    match head.split_once(':') {
        Some((owner, b)) if owner.eq_ignore_ascii_case(&st.cfg.owner) => Some(b),
        Some(_) => None,
        None => Some(head),
    }
}

fn list_pulls(st: &mut State, req: &Req) -> Res {
    let state = req.q("state").unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return Err(ApiError::validation("PullRequest", "invalid", "state"));
    }
    let head = req
        .q("head")
        .map(|h| head_branch(st, h).map(str::to_string));
    let base = req.q("base");
    let sort = req.q("sort").unwrap_or("created");
    let desc = direction_desc(req, sort == "created")?;
    let mut hits: Vec<(i64, u64)> = st
        .pulls
        .values()
        .filter(|p| {
            let i = &st.issues[&p.number];
            (state == "all" || (state == "open") == i.open)
                && head
                    .as_ref()
                    .is_none_or(|h| h.as_deref() == Some(p.head_ref.as_str()))
                && base.is_none_or(|b| b == p.base_ref)
        })
        .map(|p| {
            let i = &st.issues[&p.number];
            (
                if sort == "updated" {
                    i.updated_at
                } else {
                    i.created_at
                },
                p.number,
            )
        })
        .collect();
    hits.sort();
    if desc {
        hits.reverse();
    }
    let items = hits
        .iter()
        .map(|(_, n)| render::pull_simple(st, &st.pulls[n]))
        .collect();
    Ok(paginate(st, req, items))
}

fn create_pull(st: &mut State, req: &Req) -> Res {
    let (Some(head), Some(base)) = (req.s("head"), req.s("base")) else {
        return Err(ApiError::validation(
            "PullRequest",
            "missing_field",
            if req.s("head").is_none() {
                "head"
            } else {
                "base"
            },
        ));
    };
    let Some(title) = req.s("title") else {
        return Err(ApiError::validation(
            "PullRequest",
            "missing_field",
            "title",
        ));
    };
    let head_ref = head_branch(st, head).map(str::to_string);
    let head_sha = head_ref.as_deref().and_then(|h| st.branch_sha(h));
    let (Some(head_ref), Some(head_sha)) = (head_ref, head_sha) else {
        return Err(ApiError::validation("PullRequest", "invalid", "head"));
    };
    let Some(base_sha) = st.branch_sha(base) else {
        return Err(ApiError::validation("PullRequest", "invalid", "base"));
    };
    let duplicate = st
        .pulls
        .values()
        .any(|p| p.head_ref == head_ref && p.base_ref == base && st.issues[&p.number].open);
    if duplicate {
        return Err(ApiError::validation_custom(
            "PullRequest",
            "head",
            &format!(
                "A pull request already exists for {}:{head_ref}.",
                st.cfg.owner
            ),
        ));
    }
    if st.git.is_ancestor(&head_sha, &base_sha) {
        return Err(ApiError::validation_custom(
            "PullRequest",
            "head",
            &format!("No commits between {base} and {head_ref}"),
        ));
    }
    let n = st.create_issue(title, req.s("body"), &[], true)?;
    let draft = req
        .body
        .get("draft")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    st.pulls.insert(
        n,
        super::state::Pull {
            number: n,
            id: 1_500_000_000 + n * 7,
            head_ref,
            head_sha,
            base_ref: base.to_string(),
            base_sha,
            draft,
            merged: false,
            merged_at: None,
            merge_commit_sha: None,
        },
    );
    Ok(Reply::json(201, render::pull(st, &st.pulls[&n])))
}

fn get_pull(st: &mut State, n: u64) -> Res {
    let p = st.pulls.get(&n).ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(200, render::pull(st, p)))
}

fn update_pull(st: &mut State, req: &Req, n: u64) -> Res {
    if !st.pulls.contains_key(&n) {
        return Err(ApiError::not_found());
    }
    let title = req.s("title");
    let body = req.s("body");
    State::check_text("PullRequest", title, body)?;
    let state = req.s("state");
    if state.is_some_and(|s| s != "open" && s != "closed") {
        return Err(ApiError::validation("PullRequest", "invalid", "state"));
    }
    if state == Some("open") && st.pulls[&n].merged {
        return Err(ApiError::validation_custom(
            "PullRequest",
            "state",
            "Cannot reopen a merged pull request",
        ));
    }
    if let Some(b) = req.s("base") {
        let sha = st
            .branch_sha(b)
            .ok_or_else(|| ApiError::validation("PullRequest", "invalid", "base"))?;
        let p = st.pulls.get_mut(&n).unwrap();
        p.base_ref = b.to_string();
        p.base_sha = sha;
    }
    let now = st.tick();
    {
        let i = st.issues.get_mut(&n).unwrap();
        if let Some(t) = title {
            i.title = t.to_string();
        }
        if req.body.get("body").is_some() {
            i.body = body.map(str::to_string);
        }
        i.updated_at = now;
    }
    if let Some(s) = state {
        st.set_issue_state(n, s, None);
        if s == "closed" {
            st.issues.get_mut(&n).unwrap().state_reason = None;
        }
    }
    Ok(Reply::json(200, render::pull(st, &st.pulls[&n])))
}

// ------------------------------------------------------------------ actions

fn workflow_dispatch(st: &mut State, req: &Req, workflow: &str) -> Res {
    let Some(git_ref) = req.s("ref") else {
        return Err(ApiError::validation(
            "WorkflowDispatch",
            "missing_field",
            "ref",
        ));
    };
    if st.resolve(git_ref).is_none() || is_hex40(git_ref) {
        return Err(ApiError::unprocessable(&format!(
            "No ref found for: {git_ref}"
        )));
    }
    let inputs = req.body.get("inputs").cloned().unwrap_or(json!({}));
    if inputs.as_object().is_some_and(|o| o.len() > 25) {
        return Err(ApiError::unprocessable(
            "you may only define up to 25 `inputs` for a `workflow_dispatch` event",
        ));
    }
    st.dispatches.push(Dispatch {
        workflow: workflow.to_string(),
        git_ref: git_ref.to_string(),
        inputs,
    });
    Ok(Reply::empty(204))
}
