"""A small, honest Hugging Face Hub server on 127.0.0.1, for tests that drive the real ``huggingface_hub`` client.

It speaks the part of the Hub protocol that ``HfApi``, ``snapshot_download``/``hf_hub_download`` and transformers'
``push_to_hub``/``from_pretrained`` use, and it rejects what the real Hub rejects, with the same status codes and
``X-Error-Code``/``X-Error-Message`` headers (so the client raises its own ``RepositoryNotFoundError``,
``RevisionNotFoundError``, ``RemoteEntryNotFoundError``, ``BadRequestError``...).

Two listeners share one store, like the Hub and its object storage:

- the **Hub** (``server.url``): repos, commits, refs, trees, preupload, commit, LFS batch/verify, resolve;
- the **storage** (``server.storage_url``, another port and so another origin): presigned LFS uploads (``PUT``) and
  downloads (``GET``). As on S3, a request carrying an ``Authorization`` header is refused there, so a client that
  leaked the Hub token to the CDN would fail.

Repos are git-like: commits with 40-hex ids (sha1 over tree, parent, author, time and message), branches (``main``
first, created with an ``initial commit`` holding the Hub's default ``.gitattributes``), tags, ``refs/pr/N``. Regular
files are stored by git blob id, LFS files by sha256, under ``root``.

Not implemented: Xet storage (clients must run with ``HF_HUB_DISABLE_XET=1``), multipart LFS uploads (we never ask
for them), short commit ids, discussions, Spaces runtime, gating, squash/super-squash, repo settings.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: What the Hub writes into ``.gitattributes`` when it creates a repo: these extensions always go to LFS.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
        "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
        "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)
#: Regular (non-LFS) files above this size are refused by the Hub; preupload sends them to LFS instead.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def _card_metadata_errors(meta: dict) -> list[str]:
    """The Hub's schema checks of README metadata that clients can trip: field types and ``model-index`` shape."""
    errors = []
    for key in ("library_name", "pipeline_tag", "license"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "datasets", "metrics", "language"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) or
                                      (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')
    index = meta.get("model-index")
    if index is None:
        return errors
    if not isinstance(index, list):
        return errors + ['"model-index" must be an array']
    for i, model in enumerate(index):
        where = f"model-index[{i}]"
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append(f'"{where}.name" is required')
            continue
        for j, result in enumerate(model.get("results") or [None]):
            at = f"{where}.results[{j}]"
            if not isinstance(result, dict):
                errors.append(f'"{at}" must be an object')
                continue
            if not isinstance((result.get("task") or {}).get("type"), str):
                errors.append(f'"{at}.task.type" is required')
            dataset = result.get("dataset") or {}
            for key in ("type", "name"):
                if not isinstance(dataset.get(key), str):
                    errors.append(f'"{at}.dataset.{key}" is required')
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                errors.append(f'"{at}.metrics" must be a non-empty array')
                continue
            for k, metric in enumerate(metrics):
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                    errors.append(f'"{at}.metrics[{k}].type" is required')
                elif "value" not in metric:
                    errors.append(f'"{at}.metrics[{k}].value" is required')
    return errors


class HubError(Exception):
    """An error answered the way the Hub answers it: status, ``X-Error-Code``, ``X-Error-Message`` and JSON body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def valid_repo_id(repo_id: str) -> bool:
    parts = repo_id.split("/")
    return (
        len(parts) == 2
        and all(_NAME.fullmatch(p) and "--" not in p and ".." not in p for p in parts)
        and not repo_id.endswith(".git")
    )


def valid_branch_name(name: str) -> bool:
    """git check-ref-format, plus the Hub's reserved ``refs/`` namespace and commit-id lookalikes."""
    return not (
        not name
        or name.startswith(("-", "/", "refs/"))
        or name.endswith(("/", ".", ".lock"))
        or ".." in name
        or "//" in name
        or "@{" in name
        or name == "HEAD"
        or _COMMIT_ID.fullmatch(name)
        or any(c in name for c in " ~^:?*[\\\x7f") or any(ord(c) < 32 for c in name)
    )


def valid_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..", ".git") for p in parts)


def _gitattributes_lfs_patterns(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line.split()[1:]]


def _matches(path: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    if "/" not in pattern:  # a bare pattern matches the file name at any depth
        return fnmatch.fnmatchcase(PurePosixPath(path).name, pattern)
    return fnmatch.fnmatchcase(path, pattern.lstrip("/"))


@dataclass
class Entry:
    """One file of a commit: ``blob_id`` is the git id of the content (regular) or of the LFS pointer."""

    size: int
    blob_id: str
    lfs_oid: str | None = None

    def pointer_size(self) -> int:
        return len(lfs_pointer(self.lfs_oid, self.size))


@dataclass
class Commit:
    sha: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> tuple[str, Commit]:
        """A branch, tag, ``refs/heads|tags/...``, ``refs/pr/N`` or full commit id -> (ref kind, commit)."""
        rev = revision
        if rev.startswith("refs/heads/"):
            rev, kinds = rev[len("refs/heads/") :], ("branch",)
        elif rev.startswith("refs/tags/"):
            rev, kinds = rev[len("refs/tags/") :], ("tag",)
        else:
            kinds = ("branch", "tag", "commit")
        if rev.startswith("refs/pr/") and rev[len("refs/pr/") :].isdigit() and int(rev[8:]) in self.pull_requests:
            return "branch", self.commits[self.pull_requests[int(rev[8:])]]
        if "branch" in kinds and rev in self.branches:
            return "branch", self.commits[self.branches[rev]]
        if "tag" in kinds and rev in self.tags:
            return "tag", self.commits[self.tags[rev]]
        if "commit" in kinds and rev in self.commits:
            return "commit", self.commits[rev]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def set_branch(self, revision: str, sha: str) -> None:
        if revision.startswith("refs/pr/"):
            self.pull_requests[int(revision[len("refs/pr/") :])] = sha
        else:
            self.branches[revision.removeprefix("refs/heads/")] = sha


class HubStore:
    """Repos, refs and commits in memory; contents on disk under ``root`` (``blobs/<git id>``, ``lfs/<sha256>``)."""

    def __init__(self, root: Path, tokens: dict[str, str], orgs: dict[str, list[str]]):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        self.tokens, self.orgs = tokens, orgs
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    # ---------------------------------------------------------------- content
    def put_blob(self, data: bytes) -> str:
        blob_id = git_blob_id(data)
        path = self.root / "blobs" / blob_id
        if not path.exists():
            path.write_bytes(data)
        return blob_id

    def lfs_path(self, oid: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, f"invalid LFS oid {oid!r}")
        return self.root / "lfs" / oid

    def read(self, entry: Entry) -> bytes:
        return (self.lfs_path(entry.lfs_oid) if entry.lfs_oid else self.root / "blobs" / entry.blob_id).read_bytes()

    # ---------------------------------------------------------------- access
    def user_of(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (namespace == user or namespace in self.orgs.get(user, []))

    def get_repo(self, repo_type: str, repo_id: str, user: str | None, write: bool = False) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id)) if valid_repo_id(repo_id) else None
        namespace = repo_id.split("/")[0]
        if repo is None or (repo.private and not self.can_write(user, namespace)):
            # the Hub does not tell a private repo from a missing one; anonymous callers get a 401
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        if write and user is None:
            raise HubError(401, "Invalid username or password.")
        if write and not self.can_write(user, namespace):
            raise HubError(403, f"You don't have the rights to write to {repo_type}s/{repo_id}")
        return repo

    # ---------------------------------------------------------------- writes
    def create_repo(self, user: str, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type, repo_id, private)
            self.repos[(repo_type, repo_id)] = repo
            attributes = DEFAULT_GITATTRIBUTES.encode()
            files = {".gitattributes": Entry(len(attributes), self.put_blob(attributes))}
            commit = self._new_commit(repo, [], files, "initial commit", "", user)
            repo.branches["main"] = commit.sha
            return repo

    def _new_commit(self, repo: Repo, parents, files, title, description, user) -> Commit:
        date = _now()
        tree = hashlib.sha1("".join(f"{p}\0{e.blob_id}\n" for p, e in sorted(files.items())).encode()).hexdigest()
        header = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
        header += f"author {user} {date}\n\n{title}\n\n{description}"
        sha = hashlib.sha1(header.encode()).hexdigest()
        message = title + (f"\n\n{description}" if description else "")
        commit = Commit(sha, list(parents), title, message, user, date, dict(files))
        repo.commits[sha] = commit
        return commit

    def commit(self, repo: Repo, revision: str, user: str, lines: list[dict], create_pr: bool, base_url: str) -> dict:
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0].get("value") or {}
        title = str(header.get("summary") or "").strip()
        if not title:
            raise HubError(400, "Commit summary is required")
        with self.lock:
            kind, head = repo.resolve(revision)
            if kind != "branch":
                raise HubError(404, f"Invalid rev id: {revision} is not a branch", "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and not create_pr and parent != head.sha:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.commits[parent].files if create_pr and parent in repo.commits else head.files)
            for line in lines[1:]:
                self._apply(files, line.get("key"), line.get("value") or {})
            commit = self._new_commit(repo, [head.sha], files, title, header.get("description") or "", user)
            answer = {"success": True, "commitOid": commit.sha, "hookOutput": ""}
            if create_pr:
                number = max([0, *repo.pull_requests]) + 1
                repo.pull_requests[number] = commit.sha
                answer["pullRequestUrl"] = f"{base_url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/discussions/{number}"
            else:
                repo.set_branch(revision, commit.sha)
            answer["commitUrl"] = f"{base_url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
            return answer

    def _apply(self, files: dict[str, Entry], key: str, op: dict) -> None:
        path = str(op.get("path", ""))
        if not valid_path(path):
            raise HubError(400, f"Invalid path in commit: {path!r}")
        if key == "file":
            if op.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding {op.get('encoding')!r} for {path}")
            data = base64.b64decode(op.get("content", ""), validate=True)
            if len(data) > LFS_SIZE_THRESHOLD:
                raise HubError(400, f"Your push was rejected because {path} is larger than 10 MiB. Use LFS.")
            if b"\0" in data[:8000]:
                raise HubError(400, f"Your push was rejected because {path} is a binary file. Use LFS.")
            files[path] = Entry(len(data), self.put_blob(data))
        elif key == "lfsFile":
            oid = str(op.get("oid", ""))
            if op.get("algo", "sha256") != "sha256":
                raise HubError(400, f"Unsupported LFS hash algorithm {op.get('algo')!r}")
            stored = self.lfs_path(oid)
            if not stored.exists():
                raise HubError(400, f"Your push was rejected because the LFS object {oid} of {path} was not uploaded")
            size = stored.stat().st_size
            if op.get("size") is not None and int(op["size"]) != size:
                raise HubError(400, f"Size mismatch for the LFS object of {path}: {op['size']} != {size}")
            files[path] = Entry(size, git_blob_id(lfs_pointer(oid, size)), oid)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")

    def upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        attributes = commit.files.get(".gitattributes")
        patterns = _gitattributes_lfs_patterns(self.read(attributes).decode()) if attributes else []
        if size >= LFS_SIZE_THRESHOLD or b"\0" in sample or any(_matches(path, p) for p in patterns):
            return "lfs"
        return "regular"


# -------------------------------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Listener"

    def log_message(self, format, *args):  # the request log lives in HubServer.requests
        pass

    # ---------------------------------------------------------------- plumbing
    def _body(self) -> bytes:
        if self._raw_body is None:  # read once, always (an unread body would poison the kept-alive connection)
            self._raw_body = self._read_body()
        return self._raw_body

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self):
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.server.hub.requests.append((self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self):
        self._raw_body = None
        self._body()
        self.url = urlsplit(self.path)
        self.query = parse_qs(self.url.query)
        self.segments = [unquote(s) for s in self.url.path.split("/")[1:]]
        try:
            self.server.route(self)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json({"error": err.message}, err.status, headers)
        except Exception as err:  # a server bug must surface as a 500, never as a hung client
            self._json({"error": f"internal error: {type(err).__name__}: {err}"}, 500)
            self.server.hub.errors.append(err)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: "HubServer", route, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.hub, self.route = hub, route

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubServer:
    """Start with ``with HubServer(tmp_path) as hub:`` (or ``start()``/``stop()``); point clients at ``hub.url``.

    Args:
        root: folder for the stored blobs and LFS objects.
        tokens: ``{token: user name}`` accepted in ``Authorization: Bearer``.
        orgs: ``{user name: [organisations]}``, namespaces the user may also write to.
        tree_page_size: entries per page of the tree listing (the Hub pages by 1000; smaller exercises ``Link``).
        port: port of the Hub listener (0: a free one); the storage listener always takes a free port.
    """

    def __init__(self, root, tokens: dict[str, str] | None = None, orgs: dict[str, list[str]] | None = None,
                 tree_page_size: int = 1000, port: int = 0):
        self.store = HubStore(Path(root), tokens or {"hf_test_token": "tester"}, orgs or {})
        self.tree_page_size = tree_page_size
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[Exception] = []  # server bugs (answered 500)
        self.unhandled: list[str] = []  # requests for endpoints this server does not implement (answered 404)
        self._secret = secrets.token_bytes(16)
        self._hub = _Listener(self, self._route_hub, port)
        self._storage = _Listener(self, self._route_storage)
        self._threads: list[threading.Thread] = []

    url = property(lambda self: self._hub.url)
    storage_url = property(lambda self: self._storage.url)

    def start(self) -> "HubServer":
        for listener in (self._hub, self._storage):
            thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for listener in (self._hub, self._storage):
            listener.shutdown()
            listener.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """Direct access to a stored repo, for assertions."""
        return self.store.repos[(repo_type, repo_id)]

    # ---------------------------------------------------------------- presigned storage URLs
    def _sign(self, method: str, oid: str, size: int, expires: int) -> str:
        return hmac.new(self._secret, f"{method}:{oid}:{size}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _presigned(self, method: str, oid: str, size: int, filename: str | None = None) -> str:
        expires = int(time.time()) + 3600
        kind = "upload" if method == "PUT" else "objects"
        signature = self._sign(method, oid, size, expires)
        url = f"{self.storage_url}/{kind}/{oid}?size={size}&expires={expires}&sig={signature}"
        return url + (f"&filename={quote(filename)}" if filename else "")

    def _route_storage(self, h: _Handler) -> None:
        if h.headers.get("Authorization"):
            raise HubError(400, "InvalidArgument: Only one auth mechanism allowed")
        routes = {("PUT", "upload"), ("GET", "objects"), ("HEAD", "objects")}
        if len(h.segments) != 2 or (h.command, h.segments[0]) not in routes:
            raise HubError(404, "NoSuchKey")
        oid, q = h.segments[1], {k: v[0] for k, v in h.query.items()}
        try:
            size, expires = int(q["size"]), int(q["expires"])
        except (KeyError, ValueError):
            raise HubError(403, "AccessDenied: missing signature") from None
        method = "PUT" if h.command == "PUT" else "GET"
        if expires < time.time() or not hmac.compare_digest(q.get("sig", ""), self._sign(method, oid, size, expires)):
            raise HubError(403, "SignatureDoesNotMatch")
        path = self.store.lfs_path(oid)
        if h.command == "PUT":
            data = h._body()
            if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
                raise HubError(400, f"BadDigest: the uploaded content does not match sha256 {oid} / size {size}")
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
            return h._send(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        if not path.exists():
            raise HubError(404, "NoSuchKey")
        headers = {"ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
        if q.get("filename"):
            headers["Content-Disposition"] = f'attachment; filename="{q["filename"]}"'
        self._send_content(h, path.read_bytes(), headers, "application/octet-stream")

    @staticmethod
    def _send_content(h: _Handler, data: bytes, headers: dict, content_type: str) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range", ""))
        if match and h.command == "GET":
            start, end = int(match[1]), int(match[2]) if match[2] else len(data) - 1
            if start >= len(data):
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return h._send(206, data[start : end + 1], headers, content_type)
        h._send(200, data, headers, content_type)

    # ---------------------------------------------------------------- Hub routes
    def _route_hub(self, h: _Handler) -> None:
        user = self.store.user_of(h.headers.get("Authorization"))
        seg = h.segments
        if seg[:1] == ["api"]:
            if seg[1:] == ["whoami-v2"] and h.command == "GET":
                return self._whoami(h, user)
            if seg[1:] == ["repos", "create"] and h.command == "POST":
                return self._create_repo(h, user)
            if seg[1:] == ["repos", "delete"] and h.command == "DELETE":
                return self._delete_repo(h, user)
            if seg[1:] == ["validate-yaml"] and h.command == "POST":
                return self._validate_yaml(h)
            if len(seg) >= 4 and seg[1] in REPO_TYPES:
                return self._repo_api(h, user, REPO_TYPES[seg[1]], f"{seg[2]}/{seg[3]}", seg[4:])
        else:
            repo_type = "model"
            if seg[:1] in (["datasets"], ["spaces"]):
                repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
            lfs_route = len(seg) == 6 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"]
            if lfs_route and h.command == "POST":
                repo_id = f"{seg[0]}/{seg[1][:-4]}"
                return self._lfs(h, user, repo_type, repo_id, seg[5])
            if len(seg) >= 5 and seg[2] == "resolve" and h.command in ("GET", "HEAD"):
                return self._resolve(h, user, repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        self.unhandled.append(f"{h.command} {h.url.path}")
        raise HubError(404, f"Sorry, we can't find the page you are looking for ({h.command} {h.url.path})")

    def _whoami(self, h, user):
        if user is None:
            raise HubError(401, "Invalid username or password.")
        orgs = [{"name": org, "type": "org"} for org in self.store.orgs.get(user, [])]
        h._json({"type": "user", "name": user, "fullname": user, "orgs": orgs,
                 "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def _repo_from_payload(self, h, user) -> tuple[str, str, dict]:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        payload = h._json_body()
        name, namespace = payload.get("name"), payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{namespace}/{name}"
        if not isinstance(name, str) or not valid_repo_id(repo_id):
            raise HubError(400, f"Invalid repo name {repo_id!r}: use letters, digits, '-', '_' or '.' (96 at most), "
                                "no '--' or '..', not starting or ending with '-' or '.'")
        if not self.store.can_write(user, namespace):
            raise HubError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
        return repo_type, repo_id, payload

    def _create_repo(self, h, user):
        repo_type, repo_id, payload = self._repo_from_payload(h, user)
        private = payload.get("visibility") == "private" or payload.get("private") is True
        url = f"{self.url}/{URL_PREFIX[repo_type]}{repo_id}"
        try:
            self.store.create_repo(user, repo_type, repo_id, private)
        except HubError as err:  # the Hub answers a 409 with the existing repo's url, which the client reads
            return h._json({"error": err.message, "url": url}, err.status, {"X-Error-Message": err.message})
        h._json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, h, user):
        repo_type, repo_id, _ = self._repo_from_payload(h, user)
        with self.store.lock:
            if self.store.repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
        h._send(200, b"")

    def _validate_yaml(self, h):
        import yaml

        content = str(h._json_body().get("content", ""))
        errors = []
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match:
            try:
                meta = yaml.safe_load(match[1])
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "the metadata block must be a YAML mapping"})
                elif meta:
                    errors += [{"message": m} for m in _card_metadata_errors(meta)]
            except yaml.YAMLError as err:
                errors.append({"message": f"invalid YAML in the metadata block: {err}"})
        h._json({"errors": errors, "warnings": []}, 400 if errors else 200)

    def _repo_api(self, h, user, repo_type, repo_id, rest):
        action, args = (rest[0], rest[1:]) if rest else (None, [])
        write = (h.command, action) in {("POST", "preupload"), ("POST", "commit"), ("POST", "branch"),
                                        ("DELETE", "branch"), ("POST", "tag"), ("DELETE", "tag")}
        repo = self.store.get_repo(repo_type, repo_id, user, write=write)
        routes = {
            ("GET", None): self._info, ("GET", "revision"): self._info, ("GET", "tree"): self._tree,
            ("POST", "paths-info"): self._paths_info, ("GET", "refs"): self._refs, ("GET", "commits"): self._commits,
            ("POST", "preupload"): self._preupload, ("POST", "commit"): self._commit,
            ("POST", "branch"): self._create_branch, ("DELETE", "branch"): self._delete_branch,
            ("POST", "tag"): self._create_tag, ("DELETE", "tag"): self._delete_tag,
        }
        handler = routes.get((h.command, action))
        if handler is None or (action not in (None, "refs") and not args):
            self.unhandled.append(f"{h.command} {h.url.path}")
            raise HubError(404, f"Sorry, we can't find the page you are looking for ({h.command} {h.url.path})")
        with self.store.lock:
            return handler(h, user, repo, args)

    def _info(self, h, user, repo, args):
        _, commit = repo.resolve(args[0] if args else "main")
        blobs = h.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs_oid:
                    sibling["lfs"] = {"sha256": entry.lfs_oid, "size": entry.size, "pointerSize": entry.pointer_size()}
            siblings.append(sibling)
        h._json({
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": commit.sha, "lastModified": commit.date,
            "createdAt": repo.created_at, "private": repo.private, "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        })

    @staticmethod
    def _file_info(path: str, entry: Entry) -> dict:
        info = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
        if entry.lfs_oid:
            info["lfs"] = {"oid": entry.lfs_oid, "size": entry.size, "pointerSize": entry.pointer_size()}
        return info

    @staticmethod
    def _folders(commit: Commit) -> dict[str, dict]:
        folders: dict[str, list[str]] = {}
        for path, entry in commit.files.items():
            for parent in list(PurePosixPath(path).parents)[:-1]:
                folders.setdefault(str(parent), []).append(f"{path}\0{entry.blob_id}")
        return {p: {"type": "directory", "oid": hashlib.sha1("\n".join(sorted(c)).encode()).hexdigest(), "size": 0,
                    "path": p} for p, c in folders.items()}

    def _tree(self, h, user, repo, args):
        _, commit = repo.resolve(args[0])
        base = "/".join(args[1:]).strip("/")
        folders = self._folders(commit)
        if base and base not in folders:
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        recursive = h.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{base}/" if base else ""
        items = [self._file_info(p, e) for p, e in commit.files.items() if p.startswith(prefix)]
        items += [info for p, info in folders.items() if p.startswith(prefix)]
        if not recursive:
            items = [i for i in items if "/" not in i["path"][len(prefix):]]
        items.sort(key=lambda i: (i["type"] != "directory", i["path"]))
        cursor = int(h.query.get("cursor", ["0"])[0])
        page, headers = items[cursor : cursor + self.tree_page_size], {}
        if cursor + self.tree_page_size < len(items):
            query = f"recursive={str(recursive).lower()}&cursor={cursor + self.tree_page_size}"
            headers["Link"] = f'<{self.url}{h.url.path}?{query}>; rel="next"'
        h._json(page, headers=headers)

    def _paths_info(self, h, user, repo, args):
        _, commit = repo.resolve(args[0])
        body = h._body().decode()
        form = json.loads(body) if h.headers.get("Content-Type", "").startswith("application/json") else parse_qs(body)
        folders = self._folders(commit)
        found = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                found.append(self._file_info(path, commit.files[path]))
            elif path in folders:
                found.append(folders[path])
        h._json(found)

    def _refs(self, h, user, repo, args):
        def refs(prefix, mapping):
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": sha} for n, sha in sorted(mapping.items())]

        answer = {"branches": refs("refs/heads/", repo.branches), "converts": [], "tags": refs("refs/tags/", repo.tags)}
        if h.query.get("include_prs", ["0"])[0] in ("1", "true"):
            answer["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": sha}
                                      for n, sha in sorted(repo.pull_requests.items())]
        h._json(answer)

    def _commits(self, h, user, repo, args):
        _, commit = repo.resolve(args[0])
        history = []
        while commit is not None:
            history.append({"id": commit.sha, "title": commit.title, "message": commit.message, "date": commit.date,
                            "authors": [{"user": commit.author}]})
            commit = repo.commits[commit.parents[0]] if commit.parents else None
        h._json(history)

    def _preupload(self, h, user, repo, args):
        _, commit = repo.resolve(args[0])
        payload = h._json_body()
        ignore = [p.strip() for p in (payload.get("gitIgnore") or "").splitlines() if p.strip() and p[0] != "#"]
        files = []
        for item in payload.get("files", []):
            path, size = str(item.get("path", "")), int(item.get("size", 0))
            if not valid_path(path):
                raise HubError(400, f"Invalid path {path!r}")
            mode = self.store.upload_mode(commit, path, size, base64.b64decode(item.get("sample", "")))
            existing = commit.files.get(path)
            oid = None if existing is None else existing.lfs_oid or existing.blob_id
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": any(_matches(path, p) for p in ignore),
                          "oid": oid})
        h._json({"files": files, "commitOid": commit.sha})

    def _commit(self, h, user, repo, args):
        try:
            lines = [json.loads(line) for line in h._body().splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err}") from err
        create_pr = h.query.get("create_pr", ["0"])[0] in ("1", "true")
        h._json(self.store.commit(repo, args[0], user, lines, create_pr, self.url))

    def _create_branch(self, h, user, repo, args):
        branch = args[0]
        if not valid_branch_name(branch):
            raise HubError(400, f"Invalid branch name {branch!r}")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        _, commit = repo.resolve(h._json_body().get("startingPoint") or "main")
        repo.branches[branch] = commit.sha
        h._json({})

    def _delete_branch(self, h, user, repo, args):
        if args[0] == "main":
            raise HubError(403, "Cannot delete the default branch")
        if repo.branches.pop(args[0], None) is None:
            raise HubError(404, f"Invalid rev id: {args[0]}", "RevisionNotFound")
        h._json({})

    def _create_tag(self, h, user, repo, args):
        _, commit = repo.resolve(args[0])
        tag = str(h._json_body().get("tag", ""))
        if not valid_branch_name(tag):
            raise HubError(400, f"Invalid tag name {tag!r}")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.sha
        h._json({})

    def _delete_tag(self, h, user, repo, args):
        if repo.tags.pop(args[0], None) is None:
            raise HubError(404, f"Invalid rev id: {args[0]}", "RevisionNotFound")
        h._json({})

    def _lfs(self, h, user, repo_type, repo_id, action):
        repo = self.store.get_repo(repo_type, repo_id, user, write=action == "batch")
        payload = h._json_body()
        lfs_type = "application/vnd.git-lfs+json"
        if action == "verify":
            path = self.store.lfs_path(str(payload.get("oid", "")))
            if not path.exists() or path.stat().st_size != payload.get("size"):
                raise HubError(404, f"LFS object {payload.get('oid')} was not uploaded (or has another size)")
            return h._send(200, b"{}", content_type=lfs_type)
        if action != "batch" or payload.get("operation") != "upload":
            raise HubError(400, f"Unsupported LFS request: {action} {payload.get('operation')!r}")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "Only the 'basic' LFS transfer is supported")
        ref = (payload.get("ref") or {}).get("name")
        if ref:
            repo.resolve(ref)
        objects = []
        auth = {"Authorization": h.headers.get("Authorization", "")}
        verify = f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}.git/info/lfs/objects/verify"
        for obj in payload.get("objects", []):
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            item = {"oid": oid, "size": size, "authenticated": True}
            stored = self.store.lfs_path(oid)
            if not (stored.exists() and stored.stat().st_size == size):
                item["actions"] = {"upload": {"href": self._presigned("PUT", oid, size), "expires_in": 3600},
                                   "verify": {"href": verify, "header": auth}}
            objects.append(item)
        h._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), content_type=lfs_type)

    def _resolve(self, h, user, repo_type, repo_id, revision, path):
        repo = self.store.get_repo(repo_type, repo_id, user)
        with self.store.lock:
            _, commit = repo.resolve(revision)
        entry = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        name = PurePosixPath(path).name
        if entry.lfs_oid:  # LFS: the Hub redirects to signed storage and describes the file in X-Linked-*
            headers.update({"ETag": f'"{entry.lfs_oid}"', "X-Linked-Etag": f'"{entry.lfs_oid}"',
                            "X-Linked-Size": entry.size,
                            "Location": self._presigned("GET", entry.lfs_oid, entry.size, filename=name)})
            return h._send(302, b"", headers, "text/plain")
        headers.update({"ETag": f'"{entry.blob_id}"', "Content-Disposition": f'inline; filename="{name}"'})
        self._send_content(h, self.store.read(entry), headers, "application/octet-stream")


def main(argv: list[str] | None = None) -> None:
    """``python tests/hub_server.py --port 8765``: serve until interrupted (for trying the CLI by hand)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="storage folder (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="hf_test_token")
    parser.add_argument("--user", default="tester")
    args = parser.parse_args(argv)
    root = args.root or tempfile.mkdtemp(prefix="hub_server-")
    server = HubServer(root, tokens={args.token: args.user}, port=args.port).start()
    print(f"Hub at {server.url} (storage {server.storage_url}, files in {root}); user {args.user!r}\n"
          f"export HF_ENDPOINT={server.url} HF_TOKEN={args.token} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


__all__ = ["DEFAULT_GITATTRIBUTES", "HubError", "HubServer", "git_blob_id", "lfs_pointer"]

if __name__ == "__main__":
    main()
