"""Downloading the assignment's corpora (TinyStories, an OpenWebText sample) into data/.

    uv run python -m cs336_basics.data download tinystories      # or: owt

Downloads resume: bytes arrive in FILE.part, and a rerun (or an automatic retry after a dropped connection)
asks the server for the rest with an HTTP Range request. A finished file is checked before it is renamed into
place: its size against the server's Content-Length always, and its SHA-256 only where the table below
lists one. We could not fetch the files while writing this module, so no digests are listed: the size check
is what guards against truncation, and `RemoteFile(sha256=...)` is where a digest goes once known.
Compressed files are decompressed after the check and the archive removed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

_HUB = "https://huggingface.co/datasets"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str  # name on disk as downloaded (still compressed when gunzip is set)
    sha256: str | None = None
    gunzip: bool = False

    @property
    def final_name(self) -> str:
        return self.filename.removesuffix(".gz") if self.gunzip else self.filename


DATASETS: dict[str, list[RemoteFile]] = {
    "tinystories": [
        RemoteFile(
            f"{_HUB}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
            "TinyStoriesV2-GPT4-train.txt",
        ),
        RemoteFile(
            f"{_HUB}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
            "TinyStoriesV2-GPT4-valid.txt",
        ),
    ],
    "owt": [
        RemoteFile(
            f"{_HUB}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz", "owt_train.txt.gz", gunzip=True
        ),
        RemoteFile(
            f"{_HUB}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz", "owt_valid.txt.gz", gunzip=True
        ),
    ],
}


class DownloadError(ValueError):
    """A download that failed in a way a rerun may fix (dropped connection) or not (bad size or digest)."""


def download(
    name: str,
    dest_dir: str | os.PathLike = "data",
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60,
) -> list[Path]:
    """Download every file of the dataset `name` (a key of DATASETS) into `dest_dir`; return the final paths.

    Files already present are kept; a partial FILE.part is resumed.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(DATASETS)}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest = Path(dest_dir)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"destination {dest} is a file, not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    return [download_file(remote, dest, progress, retries, timeout) for remote in DATASETS[name]]


def download_file(
    remote: RemoteFile, dest: Path, progress: bool = True, retries: int = 3, timeout: float = 60
) -> Path:
    """Fetch one file (resuming, retrying, checking), then decompress it if needed; return its final path."""
    final, archive = dest / remote.final_name, dest / remote.filename
    if final.exists():
        return final
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        for attempt in range(retries + 1):
            try:
                _fetch(remote.url, part, progress, timeout)
                break
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
                if attempt == retries:
                    raise DownloadError(
                        f"download of {remote.url} was interrupted ({type(e).__name__}) after "
                        f"{part.stat().st_size if part.exists() else 0} bytes; "
                        "rerun the same command to resume"
                    ) from e
        if remote.sha256 is not None:
            _check_sha256(part, remote.sha256, remote.url)
        os.replace(part, archive)
    if remote.gunzip:
        _gunzip(archive, final, progress)
    return final


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Append the missing bytes of `url` to `part` (a Range request if part is non-empty); check the size."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our partial file is no prefix the server can continue: start over
            part.unlink()
            return _fetch(url, part, progress, timeout)
        raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"could not reach {url}: {e.reason}") from e
    with response:
        if offset and response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range", ""), url)
            if start != offset:
                raise DownloadError(
                    f"{url}: asked to resume at byte {offset}, the server sent from byte {start}"
                )
        else:  # the server ignored the Range header (or nothing to resume): download from the start
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as e:
                    f.write(e.partial)  # keep what arrived: the retry resumes after it
                    raise
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())  # durable before it is renamed into place
    size = part.stat().st_size
    if total is not None and size < total:  # the connection closed early: resumable
        raise ConnectionError(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise DownloadError(f"{url}: received {size} bytes but the server announced {total} (Content-Length)")


def _parse_content_range(header: str, url: str) -> tuple[int, int]:
    """'bytes 100-999/1000' -> (100, 1000)."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", header.strip())
    if not match:
        raise DownloadError(f"{url}: unusable Content-Range header {header!r} in a partial response")
    return int(match.group(1)), int(match.group(2))


def _check_sha256(path: Path, expected: str, url: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        path.unlink()
        raise DownloadError(f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {expected}")


def _gunzip(archive: Path, final: Path, progress: bool) -> None:
    """Decompress archive -> final via a temp name (so an interruption never leaves a half `final`)."""
    tmp = final.with_name(final.name + ".part")
    with (
        gzip.open(archive, "rb") as src,
        open(tmp, "wb") as dst,
        tqdm(
            total=archive.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"gunzip {archive.name}",
            disable=not progress,
        ) as bar,
    ):
        raw = src.fileobj  # the compressed stream: its position measures progress
        while block := src.read(_CHUNK):
            dst.write(block)
            bar.update(raw.tell() - bar.n)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, final)
    archive.unlink()
