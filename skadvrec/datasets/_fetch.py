"""Data folder, checksummed downloads and "files not found" errors shared by the loaders.

Each loader module holds a registry entry (a ``spec`` dict) per dataset: the ``folder`` name
under the data home, the SHA-256 of every file it reads (``files``), and either the ``url`` of
a zip archive (with optional documentation-only ``extra_files`` extracted next to the data)
or a ``base_url`` the files are downloaded from one by one. :func:`_ensure_files` makes sure
the files are there, downloading and verifying them when allowed. :func:`_urlretrieve` is the
only network access of :mod:`skadvrec.datasets`; tests replace it here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .._warnings import warn

__all__ = ["get_data_home"]

_ENV_VAR = "SKADVREC_DATA"
_DEFAULT_HOME = "~/skadvrec_data"
_DOWNLOAD_TIMEOUT = 60  # seconds without data before urllib gives up


def get_data_home(data_home=None) -> Path:
    """Return the folder where skadvrec looks for (and downloads) datasets.

    The folder is, in order of precedence: the ``data_home`` argument, the ``SKADVREC_DATA``
    environment variable, then ``~/skadvrec_data``. A leading ``~`` is expanded. The folder
    is not created here; the loaders create it only when they download into it.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Explicit data folder. When None, ``$SKADVREC_DATA`` is used if set and non-empty,
        else ``~/skadvrec_data``.

    Returns
    -------
    data_home : pathlib.Path
        The resolved data folder.

    Examples
    --------
    >>> from skadvrec.datasets import get_data_home
    >>> str(get_data_home("/tmp/my_data"))
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(_ENV_VAR) or _DEFAULT_HOME
    try:
        path = Path(os.fspath(data_home))
    except TypeError as exc:
        raise ValueError(
            f"data_home must be a string or path-like object, got {type(data_home).__name__}; "
            "pass a folder path such as '~/skadvrec_data' or leave it as None."
        ) from exc
    return path.expanduser()


def _urlretrieve(url, filename):
    """Download ``url`` to the local file ``filename`` (the module's only network access)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
        with open(filename, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temp_path(folder, name):
    """Create an empty temporary file in ``folder`` (same filesystem as the final file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(tmp)


def _download(url, dest_tmp, what):
    try:
        _urlretrieve(url, dest_tmp)
    except (urllib.error.URLError, OSError) as exc:
        raise OSError(
            f"Could not download {what} from {url}: {exc}. Check your network connection, or "
            "download the files yourself and place them in the data folder (see "
            "skadvrec.datasets.get_data_home)."
        ) from exc


def _check_sha256(path, expected, name):
    got = _sha256(path)
    if got != expected:
        raise OSError(
            f"Checksum mismatch for downloaded file {name!r}: expected SHA-256 {expected}, got "
            f"{got}. The corrupt file was deleted; try again, or place a verified copy in the "
            "data folder yourself."
        )


def _missing_files(folder, names):
    return [name for name in names if not (folder / name).is_file()]


def _not_found_error(folder, missing, dataset, loader):
    return FileNotFoundError(
        f"{dataset} files not found: {', '.join(missing)} missing in {folder}. Point "
        f"{loader}(data_home=...) or the {_ENV_VAR} environment variable at the folder that "
        f"contains '{folder.name}/', or call {loader}(..., download=True) to fetch and verify "
        "them from the official source."
    )


def _fetch_zip(spec, folder, data_home):
    """Download the zip archive of ``spec`` and extract the missing, checksummed files.

    Every needed file is extracted to a temporary file and verified first; only when all
    match are they renamed into place, so a failed download leaves nothing behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = _missing_files(folder, spec["files"])
    tmp_zip = _temp_path(data_home, spec["folder"] + ".zip")
    extracted = {}
    try:
        _download(spec["url"], tmp_zip, f"{spec['folder']}.zip")
        try:
            archive = zipfile.ZipFile(tmp_zip)
        except zipfile.BadZipFile as exc:
            raise OSError(
                f"The file downloaded from {spec['url']} is not a valid zip archive ({exc}). "
                "Try again later or download it yourself and extract it into the data folder."
            ) from exc
        with archive:
            members = {Path(m).name: m for m in archive.namelist() if not m.endswith("/")}
            extra = [n for n in spec.get("extra_files", ()) if not (folder / n).is_file()]
            for name in [*wanted, *extra]:
                if name not in members:
                    if name in extra:
                        continue
                    raise OSError(
                        f"The archive downloaded from {spec['url']} has no file {name!r}; "
                        "download and extract it yourself into the data folder."
                    )
                tmp = _temp_path(folder, name)
                extracted[name] = tmp
                with archive.open(members[name]) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
        for name in wanted:
            _check_sha256(extracted[name], spec["files"][name], f"{spec['folder']}/{name}")
        for name, tmp in extracted.items():
            os.replace(tmp, folder / name)
        extracted.clear()
    finally:
        for tmp in extracted.values():
            tmp.unlink(missing_ok=True)
        tmp_zip.unlink(missing_ok=True)


def _fetch_plain_files(spec, folder):
    """Download each missing file of ``spec`` into ``folder``, verifying its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in _missing_files(folder, spec["files"]):
        tmp = _temp_path(folder, name)
        try:
            _download(spec["base_url"] + name, tmp, f"{spec['folder']}/{name}")
            _check_sha256(tmp, spec["files"][name], f"{spec['folder']}/{name}")
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)


_VERIFIED: dict = {}  # (path, size, mtime) -> bool: each local file is hashed once


def _verify_local(folder, spec):
    """Warn about local files that differ from the official release (truncated, corrupt or
    edited): downloads are verified, but files placed by hand are only compared here, so a
    damaged copy never loads without a word. Returns the names that differ."""
    differ = []
    for name, expected in spec["files"].items():
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            continue
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _VERIFIED:
            _VERIFIED[key] = _sha256(path) == expected
        if not _VERIFIED[key]:
            differ.append(f"{name} ({st.st_size} bytes)")
    if differ:
        warn(f"{folder}: {', '.join(differ)} differ from the official release (SHA-256 "
             "mismatch): the file may be truncated or corrupt. Delete it and load again with "
             "download=True for a verified copy; a file you changed on purpose loads as it is.",
             UserWarning)
    return differ


def _parse_error(exc, folder, dataset, loader):
    """A ValueError naming the folder and the fix for a file the parser could not read."""
    return ValueError(
        f"could not read the {dataset} files in {folder}: {exc}. A file may be truncated or "
        f"corrupt: delete the folder and call {loader}(..., download=True) to fetch a verified "
        "copy.")


def _ensure_files(spec, data_home, download, dataset, loader):
    data_home = get_data_home(data_home)
    folder = data_home / spec["folder"]
    missing = _missing_files(folder, spec["files"])
    if missing:
        if not download:
            raise _not_found_error(folder, missing, dataset, loader)
        data_home.mkdir(parents=True, exist_ok=True)
        created = not folder.exists()
        try:
            if "url" in spec:
                _fetch_zip(spec, folder, data_home)
            else:
                _fetch_plain_files(spec, folder)
        except BaseException:
            if created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # leave no empty dataset folder behind after a failure
            raise
    else:
        _verify_local(folder, spec)
    return folder
