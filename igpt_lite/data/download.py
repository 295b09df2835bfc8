"""Checked downloads of the published datasets, for users with internet: `download(name, root)`.

Each archive is fetched into `<root>/.downloads/<file>.part` (continued with an HTTP Range request
when a run was cut off), its published MD5 checked before anything is unpacked, then unpacked into
a temporary folder inside root and renamed into place: a dataset folder appears whole or not at all,
and one already there is never touched. Standard library only (urllib, tarfile, hashlib).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .registry import data_root
from .formats import DATASETS

TIMEOUT = 60  # seconds per connect or read: a stalled server ends in an error, not a hang
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    file: str  # its name on the servers and in <root>/.downloads/
    md5: str
    urls: tuple[str, ...]  # mirrors, tried in order
    # about twice the published size: a server sending more is not sending this file (an endless body
    # would otherwise fill the disk)
    max_bytes: int = 64_000_000


@dataclass(frozen=True)
class Source:
    folder: str  # what appears in root: the archive's own top folder, or the folder the files go to
    archives: tuple[Archive, ...]
    expected: tuple[str, ...]  # files the readers need inside `folder`: present means complete
    unpack: bool  # tar.gz archives are unpacked; IDX .gz files are kept as they are (the readers read .gz)


def _idx(folder: str, hosts: tuple[str, ...], md5s: tuple[str, str, str, str]) -> Source:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return Source(folder, tuple(Archive(f"{n}.gz", m, tuple(h + f"{n}.gz" for h in hosts)) for n, m in zip(names, md5s)),
                  names, unpack=False)


# Checksums as published. CIFAR: the dataset authors' page https://www.cs.toronto.edu/~kriz/cifar.html
# (the "binary version" rows of its CIFAR-10 and CIFAR-100 tables). STL-10, MNIST, Fashion-MNIST: as
# torchvision records them (torchvision/datasets/stl10.py `tgz_md5`; mnist.py `MNIST.resources`,
# `FashionMNIST.resources`, the same four files and MD5s Zalando's fashion-mnist README lists).
# Hosts are those pages' own; MNIST from torchvision's https mirror first, then LeCun's page.
SOURCES: dict[str, Source] = {
    "cifar10": Source(
        DATASETS["cifar10"].folder,
        (Archive("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                 ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",), 340_000_000),),
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",), unpack=True),
    "cifar100": Source(
        DATASETS["cifar100"].folder,
        (Archive("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                 ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",), 340_000_000),),
        ("train.bin", "test.bin"), unpack=True),
    "stl10": Source(
        DATASETS["stl10"].folder,
        (Archive("stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb",
                 ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",), 5_300_000_000),),
        ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"), unpack=True),
    "mnist-idx": _idx(DATASETS["mnist-idx"].folder, ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
                      ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                       "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    "fashion-mnist": _idx(DATASETS["fashion-mnist"].folder, ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                          ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                           "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
}


class DownloadError(OSError):
    """A download that did not complete; the message says what happened and what to do."""


@dataclass
class Fetched:
    file: str
    url: str  # the mirror it came from ("" when a verified copy was already in .downloads)
    bytes: int
    md5: str  # verified against the published checksum
    transferred: int  # bytes received in this call
    resumed_from: int  # bytes already in the .part file that the server continued from (0: from the start)


@dataclass
class DownloadResult:
    name: str
    path: Path  # the dataset folder
    already_present: bool  # the folder was there and complete: nothing fetched, nothing changed
    files: list[Fetched] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.files)

    def to_dict(self) -> dict:
        return {"dataset": self.name, "path": str(self.path), "already_present": self.already_present,
                "verified": self.verified, "files": [asdict(f) for f in self.files]}

    def text(self) -> str:
        """What `igpt-lite data download` says: where the dataset is, and each file fetched and checked."""
        if self.already_present:
            return f"dataset: {self.name}\npath: {self.path}\nstatus: already present and complete; nothing fetched"
        return "\n".join([f"dataset: {self.name}", f"path: {self.path}", "status: fetched, checked and unpacked",
                          *(f"{f.file}: {f.bytes} bytes, MD5 {f.md5} as published"
                            + (f" (resumed at byte {f.resumed_from})" if f.resumed_from else "") for f in self.files)])


def download(name: str, root: str | Path | None = None, *, mirrors: list[str] | None = None,
             checksums: dict[str, str] | None = None, progress: bool = True) -> DownloadResult:
    """Fetch, check and put in place dataset `name` (a key of SOURCES) under `root` (default:
    $IGPT_LITE_DATA, else data/datasets/). `mirrors`: base URLs (the file name is appended) tried in
    order instead of the official hosts; `checksums`: {file: MD5} expected instead of the published
    ones (for a mirror serving other bytes, and for tests)."""
    if name not in SOURCES:
        raise ValueError(f"no download for {name!r}; choose one of {', '.join(SOURCES)}")
    if isinstance(mirrors, str):
        raise ValueError(f"mirrors must be a list of base URLs, got the string {mirrors!r}")
    source = SOURCES[name]
    root = data_root(root)
    final = root / source.folder
    if final.exists():
        missing = [f for f in source.expected if not _present(final, f, source.unpack)]
        if missing:
            raise DownloadError(f"{final} exists but lacks {', '.join(missing)}; it is left as it is: move it away "
                                f"and run the same command again to download {name} whole")
        return DownloadResult(name, final, already_present=True)

    downloads = root / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fetched = []
    for archive in source.archives:
        urls = tuple(m.rstrip("/") + "/" + archive.file for m in mirrors) if mirrors else archive.urls
        md5 = (checksums or {}).get(archive.file, archive.md5)
        fetched.append(_fetch_checked(downloads / archive.file, urls, md5, progress, archive.max_bytes))
    stage = root / f".tmp-{source.folder}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        if source.unpack:
            for f in fetched:
                _unpack(downloads / f.file, stage, source.folder)
        else:
            (stage / source.folder).mkdir()
            for f in fetched:
                os.replace(downloads / f.file, stage / source.folder / f.file)
        missing = [f for f in source.expected if not _present(stage / source.folder, f, source.unpack)]
        if missing:
            raise DownloadError(f"the {name} archive holds no {', '.join(missing)} in {source.folder}/; "
                                "it is not the archive the readers expect")
        os.rename(stage / source.folder, final)  # the one step that makes the dataset appear
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for f in fetched:
        (downloads / f.file).unlink(missing_ok=True)
    _remove_if_empty(downloads)
    return DownloadResult(name, final, already_present=False, files=fetched)


def _present(folder: Path, file: str, unpacked: bool) -> bool:
    # IDX files count gzipped or not: a user may have unpacked them by hand
    return (folder / file).is_file() or (not unpacked and (folder / f"{file}.gz").is_file())


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_checked(path: Path, urls: tuple[str, ...], md5: str, progress: bool, max_bytes: int) -> Fetched:
    """`path` whole and with MD5 `md5`, fetched (or continued) from the first of `urls` that answers."""
    if path.exists():  # fetched by an earlier run that stopped before unpacking: check it again
        record = Fetched(path.name, "", path.stat().st_size, "", 0, 0)
    else:
        record = _fetch(path, urls, progress, max_bytes)
    got = _md5(path)
    if got != md5.lower():
        path.unlink()
        raise DownloadError(f"{path.name} from {record.url or path} is damaged: its MD5 is {got}, the published one is "
                            f"{md5}; the file was deleted and nothing was unpacked. Run the same command again to "
                            "fetch it anew; if it fails the same way, the server (or a proxy) serves other bytes")
    record.md5 = got
    return record


def _fetch(path: Path, urls: tuple[str, ...], progress: bool, max_bytes: int) -> Fetched:
    part = path.with_name(path.name + ".part")
    if part.is_symlink() or (part.exists() and not part.is_file()):  # never appended to through a planted link
        raise DownloadError(f"{part} is not a plain file (a link or a folder); remove it and run the same command "
                            "again")
    errors = []
    for url in urls:
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "igpt-lite", **(
            {"Range": f"bytes={have}-"} if have else {})})
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:
                if e.headers.get("Content-Range") == f"bytes */{have}":
                    os.replace(part, path)  # the .part was whole: an earlier run stopped just before renaming it
                    return Fetched(path.name, url, have, "", 0, have)
                part.unlink()  # longer than the file the server has: not a part of it
                errors.append(f"{url}: the part kept from an earlier run did not fit the file; it was deleted")
                continue
            errors.append(f"{url}: HTTP {e.code} {e.reason}")
            continue
        except (urllib.error.URLError, OSError) as e:  # refused, unknown host, timed out: try the next mirror
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        with response:
            if response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range", ""))
                if start != have:
                    raise DownloadError(f"{url} answered the request to resume {path.name} at byte {have} with bytes "
                                        f"from {start}; delete {part} and run the same command again")
            else:  # 200: the server ignores Range; start over
                have = 0
                total = int(response.headers["Content-Length"]) if response.headers.get("Content-Length") else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{url} announces {total:,} bytes for {path.name}, more than the {max_bytes:,} "
                                    "this file can be; it is not the published file: nothing was fetched")
            done = _stream(response, part, have, total, max_bytes, path.name, progress, url)
        if total is not None and done < total:
            raise DownloadError(f"download of {path.name} stopped at {done} of {total} bytes; run the same command "
                                f"again to resume (the part is kept in {part})")
        os.replace(part, path)
        return Fetched(path.name, url, done, "", done - have, have)
    raise DownloadError(f"could not fetch {path.name}: " + "; ".join(errors) + "; check the connection and run the "
                        "same command again" + (f" (it resumes from {part})" if part.exists() else ""))


def _content_range(value: str) -> tuple[int, int | None]:
    """'bytes START-END/TOTAL' -> (START, TOTAL or None when the server gives '*')."""
    try:
        span, total = value.removeprefix("bytes ").split("/")
        return int(span.split("-")[0]), None if total == "*" else int(total)
    except ValueError:
        raise DownloadError(f"a server answered a resumed download with an unreadable Content-Range {value!r}") from None


def _stream(response, part: Path, have: int, total: int | None, max_bytes: int, label: str, progress: bool,
            url: str) -> int:
    """Append the response body to `part` (or write it anew when have == 0), never past the announced
    `total` (else `max_bytes`, the most the file can be); the bytes it then holds. A full disk or
    a body past the limit deletes the part and says so."""
    from tqdm import tqdm

    done, limit = have, max_bytes if total is None else total
    try:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if have else os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(part, flags, 0o644), "wb") as out, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
            while done < limit:
                try:
                    chunk = response.read(min(CHUNK, limit - done + 1))
                except (OSError, http.client.HTTPException):  # reset, timed out, cut short: the caller reports it
                    break
                if not chunk:
                    break
                if done + len(chunk) > limit:
                    raise DownloadError(f"{url} sent more than {limit:,} bytes for {label}, more than the file can be; "
                                        f"the part ({part}) was deleted and nothing was unpacked: it is not the "
                                        "published file")
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except OSError as e:  # a full disk: the part is deleted rather than left to fill it
        part.unlink(missing_ok=True)
        raise DownloadError(f"cannot write {part} while downloading {label} ({e.strerror or e}); the part was "
                            "deleted and nothing was unpacked: free space (or give another --root) and run the same "
                            "command again") from None
    return done


def _refusal(member: tarfile.TarInfo, folder: str) -> str | None:
    """Why a tar entry is not unpacked, or None: the official archives hold only plain files and
    folders under their one top folder."""
    parts = Path(member.name).parts
    if member.name.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in parts:
        return "a path with '..'"
    if member.issym() or member.islnk():
        return f"a link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "a special file"
    if not parts or parts[0] != folder:
        return f"an entry outside {folder}/"
    return None


def _unpack(archive: Path, dest: Path, folder: str) -> None:
    """Unpack a tar archive into `dest`, all of it or (refused) none of it."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                why = _refusal(member, folder)
                if why:
                    raise DownloadError(f"{archive.name} holds {why}: {member.name!r}; refused, nothing unpacked "
                                        "(it is not the official archive)")
            tar.extractall(dest, filter="data")  # the standard library's own guard, as a second line
    except (tarfile.TarError, EOFError) as e:
        raise DownloadError(f"{archive.name} cannot be unpacked ({e}); delete it and run the same command "
                            "again") from e
