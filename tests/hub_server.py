"""A loopback Hugging Face Hub for tests: the part of the Hub's HTTP protocol that huggingface_hub 2.x speaks.

    python tests/hub_server.py --root /tmp/hub --port 0 --token hf_test --port-file /tmp/hub/port

prints the chosen port on stdout (and writes it to --port-file). Point clients at it with
``HF_ENDPOINT=http://127.0.0.1:PORT HF_TOKEN=hf_test HF_HUB_DISABLE_XET=1``.

Model repos live under ROOT/<namespace>/<name>/ (Space repos under ROOT/@spaces/<namespace>/<name>/, served at
/api/spaces/... and /spaces/.../resolve/..., their README must name an ``sdk``): ``repo.json`` (visibility, branch heads) and ``commits/<sha>.json``
(parent, message, date and the full file manifest path -> git blob id), file contents in ROOT/.blobs/<git blob id>.
Every commit id is a sha1; old commits keep their manifests, so any revision ever pushed resolves. Served:
whoami-v2, repo creation, branches, refs, commits, preupload (always "regular": contents arrive base64 inline in
the NDJSON commit; no LFS, no Xet), commit, model info, tree listing, HEAD/GET resolve, and validate-yaml (front
matter must parse, and license, language, tags, base_model and model-index are checked as the Hub does).
Errors carry the Hub's ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound), which is what
huggingface_hub turns into its typed exceptions. One token, given on the command line, may write anything and read
private repos. Standard library only, plus PyYAML (a dependency of huggingface_hub) to read card metadata.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# Subsets of the Hub's lists, enough to catch a typo in a generated card.
LICENSES = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
    "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "gpl-2.0", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "mpl-2.0",
    "openrail", "openrail++", "bigscience-openrail-m", "creativeml-openrail-m", "llama2", "llama3", "gemma",
    "unlicense", "wtfpl", "artistic-2.0", "ecl-2.0", "afl-3.0", "other", "unknown",
}
PIPELINE_TAGS = {
    "text-generation", "text2text-generation", "token-classification", "text-classification", "fill-mask",
    "feature-extraction", "question-answering", "summarization", "translation", "zero-shot-classification",
    "sentence-similarity",
}
LANGUAGE_RE = re.compile(r"^([a-z]{2,3}(-[A-Za-z0-9]{2,8})*|code|multilingual)$")
REPO_ID_RE = re.compile(r"^[\w.\-]+(/[\w.\-]+)?$")
FRONT_MATTER_RE = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
SPACE_SDKS = {"gradio", "streamlit", "docker", "static"}


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def public(key: str) -> tuple[str, str]:
    """A store key -> (the repo's path in URLs, its id): "@spaces/ns/name" -> ("spaces/ns/name", "ns/name")."""
    return (key[1:], key[len("@spaces/"):]) if key.startswith("@spaces/") else (key, key)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------------------------- card validation
def _check_str_list(meta: dict, key: str, errors: list[str], pattern: re.Pattern | None = None) -> None:
    value = meta[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        errors.append(f'"{key}" must be a string or an array of strings')
    elif pattern is not None:
        errors.extend(f'"{key}" value "{v}" is not valid' for v in items if not pattern.match(v))


def _check_model_index(model_index, errors: list[str]) -> None:
    def need(obj, key, where, kind=str):
        if not isinstance(obj, dict) or key not in obj:
            errors.append(f'"{where}.{key}" is required')
            return None
        if not isinstance(obj[key], kind):
            errors.append(f'"{where}.{key}" must be of type {kind.__name__}')
            return None
        return obj[key]

    if not isinstance(model_index, list) or not model_index:
        errors.append('"model-index" must be a non-empty array')
        return
    for i, entry in enumerate(model_index):
        where = f"model-index[{i}]"
        need(entry, "name", where)
        results = need(entry, "results", where, list)
        for j, result in enumerate(results or []):
            rw = f"{where}.results[{j}]"
            need(need(result, "task", rw, dict), "type", rw + ".task")
            dataset = need(result, "dataset", rw, dict)
            if dataset is not None:
                need(dataset, "type", rw + ".dataset")
                need(dataset, "name", rw + ".dataset")
            metrics = need(result, "metrics", rw, list)
            if metrics is not None and not metrics:
                errors.append(f'"{rw}.metrics" must contain at least 1 item')
            for k, metric in enumerate(metrics or []):
                need(metric, "type", f"{rw}.metrics[{k}]")
                if not isinstance(metric, dict) or metric.get("value") is None:
                    errors.append(f'"{rw}.metrics[{k}].value" is required')


def validate_card(content: str, space: bool = False) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the YAML front matter of a model (or Space) card, in the Hub's wording."""
    match = FRONT_MATTER_RE.match(content)
    if match is None:
        return (['"sdk" is required'] if space else []), ["empty or missing yaml metadata in repo card"]
    try:
        meta = yaml.safe_load(match.group(2))
    except yaml.YAMLError as e:
        return [f"Invalid YAML in metadata: {e}"], []
    if meta is None:
        return [], ["empty or missing yaml metadata in repo card"]
    if not isinstance(meta, dict):
        return ["Metadata must be a YAML mapping"], []
    errors: list[str] = []
    if "license" in meta and meta["license"] not in LICENSES:
        errors.append(f'"license" must be one of [{", ".join(sorted(LICENSES))}]')
    if "language" in meta:
        _check_str_list(meta, "language", errors, LANGUAGE_RE)
    for key in ("tags", "datasets", "metrics"):
        if key in meta:
            _check_str_list(meta, key, errors)
    if "base_model" in meta:
        _check_str_list(meta, "base_model", errors, REPO_ID_RE)
    if "library_name" in meta and not isinstance(meta["library_name"], str):
        errors.append('"library_name" must be a string')
    if "pipeline_tag" in meta and meta["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" must be one of [{", ".join(sorted(PIPELINE_TAGS))}]')
    if "model-index" in meta:
        _check_model_index(meta["model-index"], errors)
    if space and meta.get("sdk") not in SPACE_SDKS:
        errors.append(f'"sdk" must be one of [{", ".join(sorted(SPACE_SDKS))}]')
    if "models" in meta:
        _check_str_list(meta, "models", errors, REPO_ID_RE)
    return errors, []


# ----------------------------------------------------------------------------------------------------- storage
class Store:
    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / ".blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # one writer at a time; reads see whole files (written then renamed)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{threading.get_ident()}")
        tmp.write_bytes(data)
        tmp.replace(path)

    def meta(self, repo_id: str) -> dict | None:
        path = self.root / repo_id / "repo.json"
        return json.loads(path.read_text()) if path.exists() else None

    def commit(self, repo_id: str, sha: str) -> dict:
        return json.loads((self.root / repo_id / "commits" / f"{sha}.json").read_text())

    def blob(self, oid: str) -> bytes:
        return (self.blobs / oid).read_bytes()

    def resolve(self, repo_id: str, meta: dict, rev: str) -> str:
        if rev in meta["branches"]:
            return meta["branches"][rev]
        if SHA_RE.match(rev):
            found = [p.stem for p in (self.root / repo_id / "commits").glob(f"{rev}*.json")]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def new_commit(self, repo_id: str, meta: dict, branch: str, parent: str | None, files: dict, title: str,
                   message: str = "") -> str:
        date = now_iso()
        body = json.dumps([repo_id, parent, files, title, message, date, time.monotonic_ns()], sort_keys=True)
        sha = hashlib.sha1(body.encode()).hexdigest()
        record = {"id": sha, "parents": [parent] if parent else [], "title": title, "message": message,
                  "date": date, "files": files}
        self._write(self.root / repo_id / "commits" / f"{sha}.json", json.dumps(record).encode())
        meta["branches"][branch] = sha
        self._write(self.root / repo_id / "repo.json", json.dumps(meta).encode())
        return sha

    def put_blob(self, data: bytes) -> dict:
        oid = git_blob_id(data)
        if not (self.blobs / oid).exists():
            self._write(self.blobs / oid, data)
        return {"oid": oid, "size": len(data)}

    def create_repo(self, repo_id: str, private: bool) -> None:
        meta = {"private": private, "branches": {}, "createdAt": now_iso()}
        files = {".gitattributes": self.put_blob(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")}
        self.new_commit(repo_id, meta, "main", None, files, "initial commit")


# ----------------------------------------------------------------------------------------------------- handler
class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "charlm-test-hub/1"
    store: Store
    token: str
    user: str
    verbose = False

    # -- plumbing
    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("hub_server: " + fmt % args + "\n")

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _dispatch(self) -> None:
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        try:
            self.authed = self._check_token()
            self._route(parts)
        except HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message.replace("\r", " ").replace("\n", " ")  # one header line
            self._json({"error": e.message}, e.status, headers)
        except Exception as e:  # a bug here should show up as a 500 the client reports, not a hung socket
            self._json({"error": f"{type(e).__name__}: {e}"}, 500)

    do_GET = do_HEAD = do_POST = _dispatch

    def _check_token(self) -> bool:
        auth = self.headers.get("Authorization")
        if not auth:
            return False
        if auth != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _require_token(self) -> None:
        if not self.authed:
            raise HubError(401, "You must be authenticated to access this endpoint")

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def _repo(self, ns: str, name: str, kind: str = "models") -> tuple[str, dict]:
        repo_id = f"{ns}/{name}" if kind == "models" else f"@spaces/{ns}/{name}"  # the store's key
        meta = self.store.meta(repo_id) if REPO_ID_RE.match(f"{ns}/{name}") else None
        if meta is None or (meta["private"] and not self.authed):
            raise HubError(401 if not self.authed else 404, "Repository not found", "RepoNotFound")
        return repo_id, meta

    # -- routes
    def _route(self, p: list[str]) -> None:
        m = self.command
        if p[:2] == ["api", "whoami-v2"] and m == "GET":
            self._require_token()
            token_info = {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}
            return self._json({"type": "user", "name": self.user, "fullname": self.user, "orgs": [],
                               "auth": token_info})
        if p[:3] == ["api", "repos", "create"] and m == "POST":
            return self._create_repo()
        if p[:2] == ["api", "validate-yaml"] and m == "POST":
            return self._validate_yaml()
        if len(p) >= 4 and p[0] == "api" and p[1] in ("models", "spaces"):
            repo_id, meta = self._repo(p[2], p[3], p[1])
            action, rest = (p[4] if len(p) > 4 else ""), p[5:]
            if action == "" and m == "GET":
                return self._info(repo_id, meta, "main")
            if action == "revision" and rest and m == "GET":
                return self._info(repo_id, meta, "/".join(rest))
            if action == "tree" and rest and m == "GET":
                return self._tree(repo_id, meta, rest[0], "/".join(rest[1:]))
            if action == "refs" and m == "GET":
                return self._json({"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                                for b, s in sorted(meta["branches"].items())],
                                   "tags": [], "converts": []})
            if action == "commits" and rest and m == "GET":
                return self._commits(repo_id, meta, "/".join(rest))
            if action == "preupload" and rest and m == "POST":
                return self._preupload(repo_id, meta, "/".join(rest))
            if action == "commit" and rest and m == "POST":
                return self._commit(repo_id, meta, "/".join(rest))
            if action == "branch" and rest and m == "POST":
                return self._branch(repo_id, meta, "/".join(rest))
        if len(p) >= 5 and p[2] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve(p[0], p[1], p[3], "/".join(p[4:]))
        if len(p) >= 6 and p[0] == "spaces" and p[3] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve(p[1], p[2], p[4], "/".join(p[5:]), "spaces")
        raise HubError(404, f"Not found: {m} {self.path}")

    def _create_repo(self) -> None:
        self._require_token()
        req = json.loads(self.body or b"{}")
        if req.get("type", "model") not in ("model", "space"):
            raise HubError(400, "This test hub only serves model and Space repos")
        repo_id = f"{req.get('organization') or self.user}/{req['name']}"
        if not REPO_ID_RE.match(repo_id):
            raise HubError(400, f"Invalid repo name: {repo_id}")
        if req.get("type") == "space":
            if req.get("sdk") not in SPACE_SDKS:
                raise HubError(400, f"Invalid sdk: {req.get('sdk')!r}")
            repo_id = f"@spaces/{repo_id}"
        private = req.get("visibility", "public") == "private" or bool(req.get("private"))
        with self.store.lock:
            if self.store.meta(repo_id) is not None:
                return self._json({"error": "You already created this repo",
                                   "url": f"{self._base_url()}/{public(repo_id)[0]}"}, 409)
            self.store.create_repo(repo_id, private)
        self._json({"url": f"{self._base_url()}/{public(repo_id)[0]}", "name": public(repo_id)[1],
                    "id": public(repo_id)[1]})

    def _validate_yaml(self) -> None:
        errors, warnings = validate_card(json.loads(self.body or b"{}").get("content", ""))
        status = 400 if errors else 200
        if "text/plain" in self.headers.get("Accept", ""):
            return self._send(status, "\n".join(errors + warnings).encode(), "text/plain")
        self._json({"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]},
                   status)

    def _info(self, repo_id: str, meta: dict, rev: str) -> None:
        sha = self.store.resolve(repo_id, meta, rev)
        commit = self.store.commit(repo_id, sha)
        card = {}
        if "README.md" in commit["files"]:
            match = FRONT_MATTER_RE.match(self.store.blob(commit["files"]["README.md"]["oid"]).decode())
            try:
                card = (yaml.safe_load(match.group(2)) if match else None) or {}
            except yaml.YAMLError:
                card = {}
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = [{"rfilename": path, **({"size": f["size"], "blobId": f["oid"]} if blobs else {})}
                    for path, f in sorted(commit["files"].items())]
        repo_id = public(repo_id)[1]
        self._json({"_id": repo_id, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0],
                    "sha": sha, "private": meta["private"], "gated": False, "disabled": False, "downloads": 0,
                    "likes": 0, "lastModified": commit["date"], "createdAt": meta["createdAt"],
                    "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"),
                    "tags": card.get("tags", []), "cardData": card or None, "siblings": siblings})

    def _tree(self, repo_id: str, meta: dict, rev: str, path: str) -> None:
        commit = self.store.commit(repo_id, self.store.resolve(repo_id, meta, rev))
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        files, dirs = [], set()
        for fpath, f in sorted(commit["files"].items()):
            if not fpath.startswith(prefix):
                continue
            rel = fpath[len(prefix):].split("/")
            for depth in range(1, len(rel)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(rel[:depth]))
            if recursive or len(rel) == 1:
                files.append({"type": "file", "path": fpath, "size": f["size"], "oid": f["oid"]})
        if prefix and not files and not dirs:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        folders = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
        self._json(folders + files)

    def _commits(self, repo_id: str, meta: dict, rev: str) -> None:
        out, sha = [], self.store.resolve(repo_id, meta, rev)
        while sha:
            c = self.store.commit(repo_id, sha)
            out.append({"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                        "authors": [{"user": self.user}]})
            sha = c["parents"][0] if c["parents"] else None
        self._json(out)

    def _preupload(self, repo_id: str, meta: dict, rev: str) -> None:
        self._require_token()
        files = self.store.commit(repo_id, self.store.resolve(repo_id, meta, rev))["files"]
        req = json.loads(self.body or b"{}")
        self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                               "oid": files.get(f["path"], {}).get("oid")} for f in req.get("files", [])]})

    def _commit(self, repo_id: str, meta: dict, branch: str) -> None:
        self._require_token()
        if self.query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by this test hub")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        with self.store.lock:
            meta = self.store.meta(repo_id)
            if branch not in meta["branches"]:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
            parent = meta["branches"][branch]
            if header.get("parentCommit") and not parent.startswith(header["parentCommit"]):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(self.store.commit(repo_id, parent)["files"])
            for op in lines[1:]:
                key, value = op.get("key"), op.get("value", {})
                path = value.get("path", "")
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise HubError(400, f"Invalid path: {path!r}")
                if key == "file":
                    data = base64.b64decode(value["content"])
                    if path == "README.md":
                        errors, _ = validate_card(data.decode("utf-8", "replace"), repo_id.startswith("@spaces/"))
                        if errors:
                            raise HubError(400, "Invalid metadata in README.md.\n" + "\n".join(errors))
                    files[path] = self.store.put_blob(data)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: f for p, f in files.items() if not p.startswith(path.rstrip("/") + "/")}
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r} (this hub takes regular files only)")
            sha = self.store.new_commit(repo_id, meta, branch, parent, files, header.get("summary", ""),
                                        header.get("description", ""))
        self._json({"success": True, "commitOid": sha, "commitUrl": f"{self._base_url()}/{public(repo_id)[0]}/commit/{sha}",
                    "hookOutput": ""})

    def _branch(self, repo_id: str, meta: dict, branch: str) -> None:
        self._require_token()
        with self.store.lock:
            meta = self.store.meta(repo_id)
            if branch in meta["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = json.loads(self.body or b"{}").get("startingPoint") or "main"
            meta["branches"][branch] = self.store.resolve(repo_id, meta, start)
            self.store._write(self.store.root / repo_id / "repo.json", json.dumps(meta).encode())
        self._json({})

    def _resolve(self, ns: str, name: str, rev: str, path: str, kind: str = "models") -> None:
        repo_id, meta = self._repo(ns, name, kind)
        sha = self.store.resolve(repo_id, meta, rev)
        entry = self.store.commit(repo_id, sha)["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        data = self.store.blob(entry["oid"]) if self.command == "GET" else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(entry["size"]))
        self.send_header("ETag", f'"{entry["oid"]}"')
        self.send_header("X-Repo-Commit", sha)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="directory that holds the repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="also write the chosen port here")
    parser.add_argument("--token", default="hf_test_token", help="the one token that may write and read private repos")
    parser.add_argument("--user", default="tester", help="name returned by whoami-v2 and default namespace")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args(argv)

    handler = type("Handler", (HubHandler,), {"store": Store(Path(args.root)), "token": args.token,
                                              "user": args.user, "verbose": args.verbose})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
