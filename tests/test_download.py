"""Corpus downloads against a local HTTP server on 127.0.0.1 (no other network): resume via Range after a
dropped connection, servers without Range support, size and SHA-256 checks, gunzip, errors, and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cs336_basics import download as dl
from cs336_basics.download import DownloadError, RemoteFile, download
from cs336_basics.data import main

CONTENT = bytes(range(256)) * 40  # 10,240 bytes


class Server:
    """A tiny file server. Per path: the bytes to serve; options to drop the first N responses after `cut`
    bytes, to ignore Range headers, and to misreport the total size in Content-Range."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}
        self.cut = 3000
        self.ranges = True
        self.claimed_total: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").removesuffix("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    total = server.claimed_total or len(body)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{total}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.drops.get(self.path, 0) > 0:
                    server.drops[self.path] -= 1
                    payload = payload[: server.cut]
                    self.close_connection = True
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):  # talk to 127.0.0.1 directly
        monkeypatch.delenv(var, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=5)


def use_table(monkeypatch, *files: RemoteFile) -> None:
    monkeypatch.setitem(dl.DATASETS, "tinystories", list(files))


def test_plain_download(server, tmp_path, monkeypatch):
    server.files["/train.txt"] = CONTENT
    server.files["/valid.txt"] = b"valid text"
    use_table(
        monkeypatch,
        RemoteFile(server.url("train.txt"), "train.txt"),
        RemoteFile(server.url("valid.txt"), "valid.txt"),
    )
    paths = download("tinystories", tmp_path / "data", progress=False, timeout=10)
    assert [p.name for p in paths] == ["train.txt", "valid.txt"]
    assert paths[0].read_bytes() == CONTENT and paths[1].read_bytes() == b"valid text"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "train.txt",
        "valid.txt",
    ]  # no .part left


def test_dropped_connection_is_resumed_with_range(server, tmp_path, monkeypatch):
    server.files["/train.txt"] = CONTENT
    server.drops["/train.txt"] = 2  # the first two responses stop after 3000 bytes
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    (path,) = download("tinystories", tmp_path, progress=False, retries=3, timeout=10)
    assert path.read_bytes() == CONTENT
    assert server.requests == [
        ("/train.txt", None),
        ("/train.txt", "bytes=3000-"),
        ("/train.txt", "bytes=6000-"),
    ]


def test_interrupted_download_is_kept_and_resumed_by_a_rerun(server, tmp_path, monkeypatch):
    server.files["/train.txt"] = CONTENT
    server.drops["/train.txt"] = 1
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    with pytest.raises(
        DownloadError, match=r"interrupted .* after 3000 bytes; rerun the same command to resume"
    ):
        download("tinystories", tmp_path, progress=False, retries=0, timeout=10)
    assert (tmp_path / "train.txt.part").read_bytes() == CONTENT[:3000]
    assert not (tmp_path / "train.txt").exists()
    (path,) = download("tinystories", tmp_path, progress=False, retries=0, timeout=10)
    assert path.read_bytes() == CONTENT
    assert server.requests[-1] == ("/train.txt", "bytes=3000-")


def test_server_without_range_support_restarts_from_zero(server, tmp_path, monkeypatch):
    server.files["/train.txt"] = CONTENT
    server.ranges = False
    (tmp_path / "train.txt.part").write_bytes(b"stale bytes of some other version")
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    (path,) = download("tinystories", tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == CONTENT


def test_oversized_partial_file_starts_over(server, tmp_path, monkeypatch):
    """A .part longer than the file (the file changed on the server) gets 416 and is downloaded afresh."""
    server.files["/train.txt"] = b"short"
    (tmp_path / "train.txt.part").write_bytes(b"a much longer stale partial download")
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    (path,) = download("tinystories", tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == b"short"


def test_size_mismatch_is_an_error(server, tmp_path, monkeypatch):
    """A resumed response announcing a smaller total than the bytes received: the file is rejected."""
    server.files["/train.txt"] = CONTENT
    server.claimed_total = 5000
    (tmp_path / "train.txt.part").write_bytes(CONTENT[:1000])
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    with pytest.raises(DownloadError, match=r"received 10240 bytes but the server announced 5000"):
        download("tinystories", tmp_path, progress=False, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_sha256_checked_when_configured(server, tmp_path, monkeypatch):
    server.files["/train.txt"] = CONTENT
    good = hashlib.sha256(CONTENT).hexdigest()
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt", sha256=good))
    assert download("tinystories", tmp_path / "ok", progress=False, timeout=10)[0].read_bytes() == CONTENT
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt", sha256="0" * 64))
    with pytest.raises(DownloadError, match="SHA-256 .* does not match"):
        download("tinystories", tmp_path / "bad", progress=False, timeout=10)
    assert list((tmp_path / "bad").iterdir()) == []


def test_gzipped_file_is_decompressed(server, tmp_path, monkeypatch):
    text = ("Once upon a time there was a tiny server.\n" * 500).encode()
    server.files["/owt_valid.txt.gz"] = gzip.compress(text)
    use_table(monkeypatch, RemoteFile(server.url("owt_valid.txt.gz"), "owt_valid.txt.gz", gunzip=True))
    (path,) = download("tinystories", tmp_path, progress=False, timeout=10)
    assert path.name == "owt_valid.txt" and path.read_bytes() == text
    assert [p.name for p in tmp_path.iterdir()] == ["owt_valid.txt"]  # archive removed


def test_existing_file_is_not_downloaded_again(server, tmp_path, monkeypatch):
    (tmp_path / "train.txt").write_bytes(b"already here")
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    assert download("tinystories", tmp_path, progress=False, timeout=10)[0].read_bytes() == b"already here"
    assert server.requests == []


def test_http_error_and_unknown_dataset(server, tmp_path, monkeypatch):
    use_table(monkeypatch, RemoteFile(server.url("missing.txt"), "missing.txt"))
    with pytest.raises(DownloadError, match=r"missing\.txt: HTTP 404"):
        download("tinystories", tmp_path, progress=False, timeout=10)
    with pytest.raises(ValueError, match="unknown dataset 'wiki'"):
        download("wiki", tmp_path)


def test_builtin_table_points_at_the_assignment_files():
    names = {name: [f.final_name for f in files] for name, files in dl.DATASETS.items()}
    assert names == {
        "tinystories": ["TinyStoriesV2-GPT4-train.txt", "TinyStoriesV2-GPT4-valid.txt"],
        "owt": ["owt_train.txt", "owt_valid.txt"],
    }
    assert all(f.url.endswith("/" + f.filename) for files in dl.DATASETS.values() for f in files)


def test_cli_downloads_and_reports_errors(server, tmp_path, monkeypatch, capsys):
    server.files["/train.txt"] = CONTENT
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))
    main(["download", "tinystories", "--dest", str(tmp_path), "--no-progress"])
    assert "train.txt" in capsys.readouterr().out and (tmp_path / "train.txt").read_bytes() == CONTENT
    use_table(monkeypatch, RemoteFile(server.url("gone.txt"), "gone.txt"))
    with pytest.raises(SystemExit, match="error: could not download .*HTTP 404"):
        main(["download", "tinystories", "--dest", str(tmp_path), "--no-progress"])


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["download", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{owt,tinystories}" in out and "--dest" in out


def test_cli_interrupt_keeps_partial_download(server, tmp_path, monkeypatch, capsys):
    """Ctrl-C mid-download: exit 130 with a note that rerunning resumes; the bytes so far stay in .part."""
    server.files["/train.txt"] = CONTENT
    use_table(monkeypatch, RemoteFile(server.url("train.txt"), "train.txt"))

    class InterruptedBar:  # the progress bar is updated right after each chunk is written: Ctrl-C lands there
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_CHUNK", 100)
    monkeypatch.setattr(dl, "tqdm", InterruptedBar)
    with pytest.raises(SystemExit) as exit_info:
        main(["download", "tinystories", "--dest", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert (tmp_path / "train.txt.part").read_bytes() == CONTENT[:100]
