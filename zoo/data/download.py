"""Fetch dataset files from their mirrors: checked, retried, written atomically.

A download streams into a temporary file in the destination folder and is
renamed into place only after its MD5 matches, so an interrupted or corrupt
download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from zoo.errors import EnvironmentFault, ZooError
from zoo.io import atomic_file, folders_to_make, remove_made

CHUNK = 1 << 20


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    """Refuse a file whose MD5 is not the published one."""
    actual = md5sum(path)
    if actual != expected:
        raise ZooError(
            f"{path}: MD5 is {actual}, expected {expected}. The file is corrupt or not the "
            "official release; delete it (zoo downloads it again) or replace it with the original."
        )


def download(
    urls: Sequence[str], dest: Path, md5: str, retries: int = 3, backoff: float = 1.0, timeout: float = 30.0
) -> Path:
    """Download ``dest`` from the first mirror that delivers the right bytes.

    Each of ``retries`` rounds tries every mirror in turn; rounds are separated by
    an exponential back-off. Raises ``ZooError`` naming every failure.
    """
    failures: list[str] = []
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        for url in urls:
            try:
                _fetch_once(url, dest, md5, timeout)
                return dest
            except (OSError, ValueError, http.client.HTTPException) as error:
                failures.append(f"{url}: {error}")
    distinct = dict.fromkeys(failures)  # each round usually fails the same way
    raise ZooError(f"could not download {dest.name} after {retries} rounds:\n  " + "\n  ".join(distinct))


def _fetch_once(url: str, dest: Path, md5: str, timeout: float) -> None:
    """One attempt; the file appears only if the whole body arrived with the right MD5."""
    with atomic_file(dest, suffix=".part") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        digest = hashlib.md5()
        received = 0
        announced = response.headers.get("Content-Length")
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            digest.update(block)
            received += len(block)
        if announced is not None and received != int(announced):
            raise ValueError(f"interrupted after {received} of {announced} bytes")
        if digest.hexdigest() != md5:
            raise ValueError(f"MD5 {digest.hexdigest()} does not match the expected {md5}")


def _check_writable(folder: Path) -> list[Path]:
    """Downloads go into ``folder``: say so now if it cannot be created or written; the folders made, deepest first."""
    made = folders_to_make(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ZooError(
            f"cannot write into {folder} ({error.strerror or error}); choose a writable "
            "data folder with --data.data_dir or ZOO_DATA_DIR, or put the files there by hand"
        ) from None
    return made


def ensure_files(
    folder: Path, files: Mapping[str, str], mirrors: Sequence[str], allow_download: bool = True, **options
) -> None:
    """Make sure every ``name -> md5`` in ``files`` is present in ``folder`` and intact.

    Missing files are downloaded (when allowed); present ones are MD5-checked.
    If anything cannot be had, one error lists what is needed and where it goes: a mistake in the
    input where downloads are off, a fault of the environment (no network, no mirror) where they
    failed, which leaves no folder it made behind.
    """
    missing = [name for name in files if not (folder / name).is_file()]
    problem = "downloads are turned off (download: false)" if missing and not allow_download else None
    made = _check_writable(folder) if missing and not problem else []
    for name in missing:
        if problem:  # one failure is enough: offline, every other file would fail the same way
            break
        try:
            download([mirror.rstrip("/") + "/" + name for mirror in mirrors], folder / name, files[name], **options)
        except ZooError as error:
            problem = str(error)
    if problem:
        missing = [name for name in files if not (folder / name).is_file()]
        wanted = "\n  ".join(f"{name}  (md5 {files[name]})" for name in missing)
        remove_made(made)  # only folders this call made, and only while empty
        failure = ZooError if not allow_download else EnvironmentFault
        raise failure(
            f"dataset files are missing and could not be fetched: {problem}\n"
            f"Put these files into {folder.resolve()}:\n  {wanted}\n"
            "or point --data.data_dir (or ZOO_DATA_DIR) at a folder that already holds them."
        )
    for name in files:
        verify_md5(folder / name, files[name])
