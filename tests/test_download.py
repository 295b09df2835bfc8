"""Checked downloads against a local HTTP server on 127.0.0.1 (never the internet): good, corrupted,
cut off and Range-less servers, resume, atomic placement, unsafe archives, the CLI verb."""
import gzip
import hashlib
import io
import json
import re
import struct
import tarfile
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import fill_disk

from igpt_lite.data import download as dl
from igpt_lite.cli import main

CIFAR = "cifar-10-binary.tar.gz"
CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_gz(entries) -> bytes:
    """entries: (name, bytes) for a file, or (name, TarInfo) for anything else."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, what in entries:
            if isinstance(what, tarfile.TarInfo):
                tar.addfile(what)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    return buf.getvalue()


@pytest.fixture(scope="module")
def cifar():
    """The official layout, two random records per file: random bytes do not compress, so the archive
    is big enough (~170 kB) to be cut in half."""
    rng = np.random.default_rng(0)
    files = {name: rng.integers(0, 256, 2 * 3073 * (2 + i), dtype=np.uint8).tobytes()
             for i, name in enumerate(CIFAR_FILES)}
    archive = tar_gz([("cifar-10-batches-bin", _dir("cifar-10-batches-bin"))]
                     + [(f"cifar-10-batches-bin/{n}", b) for n, b in files.items()])
    return files, archive


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


class Server:
    """Serves `files` by name. Modes: good (Range honoured), corrupt (one byte flipped), cut (announces
    the whole length, sends half, closes), norange (ignores Range, always 200), endless (zeros with no
    length, forever), huge (announces a terabyte, sends zeros). `seen`: (path, Range)."""

    def __init__(self):
        self.files, self.mode, self.seen = {}, "good", []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                state.seen.append((self.path, rng))
                body = state.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                if state.mode == "corrupt":
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                start = int(rng.removeprefix("bytes=").rstrip("-")) if rng and state.mode != "norange" else None
                if start is not None and start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                if state.mode in ("endless", "huge"):  # a body with no end, or an announced size no file has
                    self.send_response(200)
                    if state.mode == "huge":
                        self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(bytes(65536))
                    except OSError:  # the client hung up
                        return
                if start is not None:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if state.mode == "cut" else body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # 127.0.0.1 directly, whatever the machine's proxy
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def fetch(server, root, name="cifar10", checksums=None, **kw):
    return dl.download(name, root, mirrors=[server.base], checksums=checksums, progress=False, **kw)


def leftovers(root):
    """Anything in root but the .downloads folder (with what it holds) and dataset folders."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-"))


def test_good_archive_is_checked_and_unpacked_in_place(server, cifar, tmp_path):
    files, archive = cifar
    server.files[CIFAR] = archive
    result = fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    folder = tmp_path / "cifar-10-batches-bin"
    assert result.path == folder and not result.already_present and result.verified
    assert sorted(p.name for p in folder.iterdir()) == sorted(CIFAR_FILES)
    assert all((folder / n).read_bytes() == b for n, b in files.items())
    f = result.files[0]
    assert (f.file, f.url, f.bytes, f.md5, f.transferred, f.resumed_from) == (
        CIFAR, f"{server.base}/{CIFAR}", len(archive), md5(archive), len(archive), 0)
    assert server.seen == [(f"/{CIFAR}", None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-bin"]  # no archive, part or stage left


def test_a_corrupted_archive_is_deleted_and_nothing_unpacked(server, cifar, tmp_path):
    _, archive = cifar
    server.files[CIFAR], server.mode = archive, "corrupt"
    bad = archive[:100] + bytes([archive[100] ^ 0xFF]) + archive[101:]
    with pytest.raises(dl.DownloadError, match=re.escape(
            f"{CIFAR} from {server.base}/{CIFAR} is damaged: its MD5 is {md5(bad)}, the published one is "
            f"{md5(archive)}; the file was deleted and nothing was unpacked. Run the same command again")):
        fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert not (tmp_path / "cifar-10-batches-bin").exists() and not leftovers(tmp_path)
    assert list((tmp_path / ".downloads").iterdir()) == []
    server.mode = "good"  # the next run fetches anew, from byte 0
    assert fetch(server, tmp_path, checksums={CIFAR: md5(archive)}).files[0].resumed_from == 0
    assert server.seen[-1] == (f"/{CIFAR}", None)


def test_a_cut_off_download_says_so_keeps_the_part_and_resumes_with_range(server, cifar, tmp_path):
    files, archive = cifar
    n, half = len(archive), len(archive) // 2
    server.files[CIFAR], server.mode = archive, "cut"
    with pytest.raises(dl.DownloadError, match=re.escape(
            f"download of {CIFAR} stopped at {half} of {n} bytes; run the same command again to resume")):
        fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    part = tmp_path / ".downloads" / f"{CIFAR}.part"
    assert part.read_bytes() == archive[:half]
    assert not (tmp_path / "cifar-10-batches-bin").exists() and not leftovers(tmp_path)

    server.mode = "good"
    result = fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert server.seen[-1] == (f"/{CIFAR}", f"bytes={half}-")
    f = result.files[0]
    assert (f.resumed_from, f.transferred, f.bytes, f.md5) == (half, n - half, n, md5(archive))
    assert all((result.path / name).read_bytes() == b for name, b in files.items())
    assert not part.exists()


def test_a_server_without_range_support_restarts_from_the_start(server, cifar, tmp_path):
    files, archive = cifar
    server.files[CIFAR], server.mode = archive, "cut"
    with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
        fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    server.mode = "norange"
    result = fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert server.seen[-1] == (f"/{CIFAR}", f"bytes={len(archive) // 2}-")  # asked, answered 200 with all of it
    assert (result.files[0].resumed_from, result.files[0].transferred) == (0, len(archive))
    assert all((result.path / name).read_bytes() == b for name, b in files.items())


def test_a_part_that_is_already_whole_is_checked_not_fetched_again(server, cifar, tmp_path):
    _, archive = cifar
    server.files[CIFAR] = archive
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / f"{CIFAR}.part").write_bytes(archive)  # a run stopped just before renaming it
    result = fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert server.seen == [(f"/{CIFAR}", f"bytes={len(archive)}-")]  # answered 416: nothing left to send
    assert (result.files[0].transferred, result.files[0].md5) == (0, md5(archive))
    assert (result.path / "test_batch.bin").is_file()


def test_a_dataset_already_there_is_left_alone(server, cifar, tmp_path):
    _, archive = cifar
    server.files[CIFAR] = archive
    fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    note = tmp_path / "cifar-10-batches-bin" / "my-notes.txt"
    note.write_text("mine")
    before = {p.name: p.read_bytes() for p in note.parent.iterdir()}
    result = fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert result.already_present and not result.verified and result.files == []
    assert len(server.seen) == 1  # nothing fetched the second time
    assert {p.name: p.read_bytes() for p in note.parent.iterdir()} == before


def test_an_incomplete_dataset_folder_is_refused_and_not_touched(server, cifar, tmp_path):
    _, archive = cifar
    server.files[CIFAR] = archive
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(b"user's own")
    with pytest.raises(dl.DownloadError, match=re.escape(
            f"{folder} exists but lacks data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, "
            "test_batch.bin; it is left as it is: move it away and run the same command again")):
        fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert server.seen == [] and [p.name for p in folder.iterdir()] == ["data_batch_1.bin"]
    assert (folder / "data_batch_1.bin").read_bytes() == b"user's own"


def test_unpacking_that_fails_or_is_interrupted_leaves_no_dataset_folder(server, cifar, tmp_path, monkeypatch):
    _, archive = cifar
    cut = archive[:len(archive) * 2 // 3]  # a damaged archive whose checksum matches (a mirror's own)
    server.files[CIFAR] = cut
    with pytest.raises(dl.DownloadError, match=re.escape(f"{CIFAR} cannot be unpacked (")):
        fetch(server, tmp_path, checksums={CIFAR: md5(cut)})
    assert not (tmp_path / "cifar-10-batches-bin").exists() and not leftovers(tmp_path)

    server.files[CIFAR] = archive
    extractall = tarfile.TarFile.extractall

    def killed_after_unpacking(self, *args, **kw):  # Ctrl-C between the last file written and the rename
        extractall(self, *args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", killed_after_unpacking)
    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path / "b", checksums={CIFAR: md5(archive)})
    assert not (tmp_path / "b" / "cifar-10-batches-bin").exists() and not leftovers(tmp_path / "b")
    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)
    result = fetch(server, tmp_path / "b", checksums={CIFAR: md5(archive)})  # the verified archive is reused
    assert result.files[0].transferred == 0 and (result.path / "test_batch.bin").is_file()


def _link(name, target, hard=False):
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize("entry, why", [
    (("cifar-10-batches-bin/../../evil", b"x"), "a path with '..'"),
    (("ABS/evil", b"x"), "an absolute path"),  # ABS: replaced by a path outside root below
    (("cifar-10-batches-bin/evil", "link"), "a link (to "),
    (("cifar-10-batches-bin/evil", "hardlink"), "a link (to "),
    (("elsewhere/evil", b"x"), "an entry outside cifar-10-batches-bin/"),
])
def test_unsafe_archives_are_refused_and_nothing_is_written(server, cifar, tmp_path, entry, why):
    files, _ = cifar
    root, outside = tmp_path / "root", tmp_path / "outside"
    name, what = entry
    name = name.replace("ABS", str(outside))
    if what == "link":
        what = _link(name, str(outside / "target"))
    elif what == "hardlink":
        what = _link(name, "/etc/passwd", hard=True)
    archive = tar_gz([(f"cifar-10-batches-bin/{n}", b) for n, b in files.items()] + [(name, what)])
    server.files[CIFAR] = archive
    with pytest.raises(dl.DownloadError, match=re.escape(f"{CIFAR} holds {why}") + ".*refused, nothing unpacked"):
        fetch(server, root, checksums={CIFAR: md5(archive)})
    assert not (root / "cifar-10-batches-bin").exists() and not leftovers(root)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name == "evil") == []


def idx_gz(magic_dims, payload) -> bytes:
    return gzip.compress(struct.pack(">I", magic_dims[0]) + b"".join(struct.pack(">I", d) for d in magic_dims[1])
                         + payload)


def test_idx_files_stay_gzipped_in_their_folder_and_mirrors_are_tried_in_order(server, tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8).tobytes()
    labels = bytes([7, 0, 3])
    served = {"train-images-idx3-ubyte.gz": idx_gz((0x803, (3, 28, 28)), images),
              "train-labels-idx1-ubyte.gz": idx_gz((0x801, (3,)), labels),
              "t10k-images-idx3-ubyte.gz": idx_gz((0x803, (3, 28, 28)), images[::-1]),
              "t10k-labels-idx1-ubyte.gz": idx_gz((0x801, (3,)), labels[::-1])}
    server.files.update(served)
    result = dl.download("fashion-mnist", tmp_path, mirrors=[server.base + "/gone", server.base],
                         checksums={k: md5(v) for k, v in served.items()}, progress=False)
    assert result.path == tmp_path / "fashion-mnist"
    assert {p.name: p.read_bytes() for p in result.path.iterdir()} == served
    assert gzip.decompress((result.path / "train-labels-idx1-ubyte.gz").read_bytes())[8:] == labels
    assert [f.url for f in result.files] == [f"{server.base}/{k}" for k in served]  # the second mirror each time
    assert [p for p, _ in server.seen] == [x for k in served for x in (f"/gone/{k}", f"/{k}")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion-mnist"]
    assert dl.download("fashion-mnist", tmp_path, mirrors=[server.base], progress=False).already_present


def test_when_no_mirror_answers_the_error_names_each(server, tmp_path):
    with pytest.raises(dl.DownloadError, match=re.escape(
            f"could not fetch {CIFAR}: {server.base}/a/{CIFAR}: HTTP 404 Not Found; {server.base}/b/{CIFAR}: "
            "HTTP 404 Not Found; check the connection and run the same command again")):
        dl.download("cifar10", tmp_path, mirrors=[server.base + "/a", server.base + "/b"], progress=False)
    assert not (tmp_path / "cifar-10-batches-bin").exists()


def test_unknown_names_and_the_default_root(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no download for 'cifar'; choose one of cifar10, cifar100, stl10"):
        dl.download("cifar", tmp_path)
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for f in ("train.bin", "test.bin"):
        (folder / f).write_bytes(b"")
    monkeypatch.setenv("IGPT_LITE_DATA", str(tmp_path))
    result = dl.download("cifar100", progress=False)  # already there: nothing is fetched, no network
    assert result.already_present and result.path == folder
    idx = tmp_path / "mnist"  # IDX files count gunzipped too: the readers read both
    idx.mkdir()
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (idx / f).write_bytes(b"")
    (idx / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert dl.download("mnist-idx", progress=False).already_present


def test_the_published_table_is_well_formed():
    folders = {"cifar10": "cifar-10-batches-bin", "cifar100": "cifar-100-binary", "stl10": "stl10_binary",
               "mnist-idx": "mnist", "fashion-mnist": "fashion-mnist"}
    assert {k: s.folder for k, s in dl.SOURCES.items()} == folders
    for name, source in dl.SOURCES.items():
        for a in source.archives:
            assert re.fullmatch(r"[0-9a-f]{32}", a.md5), (name, a.md5)
            assert a.urls and all(re.fullmatch(r"https?://[\w.-]+/[\w~./-]*", u) and u.endswith("/" + a.file)
                                  for u in a.urls), a.urls
    assert [a.file for a in dl.SOURCES["mnist-idx"].archives] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz"]
    md5s = [a.md5 for s in dl.SOURCES.values() for a in s.archives]
    assert len(set(md5s)) == len(md5s) == 3 + 8


def test_cli_data_download(server, cifar, tmp_path, capsys, monkeypatch):
    _, archive = cifar
    server.files[CIFAR] = archive
    official = dl.SOURCES["cifar10"]
    monkeypatch.setitem(dl.SOURCES, "cifar10", replace(official, archives=(
        dl.Archive(CIFAR, md5(archive), (f"{server.base}/{CIFAR}",)),)))
    assert main(["data", "download", "cifar10", "--root", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "cifar10" and out["path"] == str(tmp_path / "cifar-10-batches-bin")
    assert not out["already_present"] and out["verified"]
    assert out["files"][0] == {"file": CIFAR, "url": f"{server.base}/{CIFAR}", "bytes": len(archive),
                               "md5": md5(archive), "transferred": len(archive), "resumed_from": 0}
    assert main(["data", "download", "cifar10", "--root", str(tmp_path)]) == 0
    assert "status: already present and complete; nothing fetched" in capsys.readouterr().out

    server.mode = "corrupt"
    assert main(["data", "download", "cifar10", "--root", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith(f"igpt-lite data download: error: {CIFAR} from {server.base}/{CIFAR} is damaged")
    server.mode = "good"
    assert main(["data", "download", "cifar10", "--root", str(tmp_path / "other")]) == 0
    text = capsys.readouterr().out
    assert f"{CIFAR}: {len(archive)} bytes, MD5 {md5(archive)} as published" in text


def test_download_result_text_says_where_and_what_was_fetched(tmp_path):
    fetched = dl.Fetched(CIFAR, "https://example.org/x", 10, "abc", 6, 4)
    done = dl.DownloadResult("cifar10", tmp_path / "cifar", already_present=False, files=[fetched])
    assert done.text().splitlines() == ["dataset: cifar10", f"path: {tmp_path / 'cifar'}",
                                        "status: fetched, checked and unpacked",
                                        f"{CIFAR}: 10 bytes, MD5 abc as published (resumed at byte 4)"]
    there = dl.DownloadResult("cifar10", tmp_path / "cifar", already_present=True)
    assert there.text().splitlines()[2] == "status: already present and complete; nothing fetched"



@pytest.mark.parametrize("mode,fragment", [
    ("endless", "{url} sent more than 300,000 bytes for {file}, more than the file can be; the part ({part}) was "
                "deleted and nothing was unpacked: it is not the published file"),
    ("huge", "{url} announces 1,000,000,000,000 bytes for {file}, more than the 300,000 this file can be; it is not "
             "the published file: nothing was fetched"),
])
def test_a_body_longer_than_the_file_can_be_is_cut_off_and_deleted(server, cifar, tmp_path, monkeypatch, mode, fragment):
    """Was: an endless body filled the disk, and the next run resumed the garbage."""
    _, archive = cifar
    source = dl.SOURCES["cifar10"]
    monkeypatch.setitem(dl.SOURCES, "cifar10", replace(source, archives=(replace(source.archives[0], max_bytes=300_000),)))
    server.files[CIFAR], server.mode = archive, mode
    part = tmp_path / ".downloads" / f"{CIFAR}.part"
    with pytest.raises(dl.DownloadError) as info:
        fetch(server, tmp_path, checksums={CIFAR: md5(archive)})
    assert str(info.value) == fragment.format(url=f"{server.base}/{CIFAR}", file=CIFAR, part=part)
    assert not part.exists() and not leftovers(tmp_path) and not (tmp_path / "cifar-10-batches-bin").exists()
    server.mode = "good"  # the next run starts from byte 0, not from garbage
    assert fetch(server, tmp_path, checksums={CIFAR: md5(archive)}).files[0].resumed_from == 0


def test_a_full_disk_while_downloading_names_the_part_and_deletes_it(server, cifar, small_disk):
    root = small_disk("1m")
    (root / ".downloads").mkdir()
    fill_disk(root, leave=64 * 1024)  # less than the ~170 kB archive
    _, archive = cifar
    server.files[CIFAR] = archive
    part = root / ".downloads" / f"{CIFAR}.part"
    with pytest.raises(dl.DownloadError) as info:
        fetch(server, root, checksums={CIFAR: md5(archive)})
    assert str(info.value) == (f"cannot write {part} while downloading {CIFAR} (No space left on device); the part was "
                               "deleted and nothing was unpacked: free space (or give another --root) and run the same "
                               "command again")
    assert sorted(p.name for p in root.rglob("*")) == [".downloads", "filler"]


def test_a_part_planted_as_a_link_is_refused_and_its_target_left_alone(server, cifar, tmp_path):
    _, archive = cifar
    server.files[CIFAR] = archive
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    (tmp_path / "root" / ".downloads").mkdir(parents=True)
    part = tmp_path / "root" / ".downloads" / f"{CIFAR}.part"
    part.symlink_to(notes)  # was appended to: the download resumed "from" the notes' length
    with pytest.raises(dl.DownloadError, match=re.escape(
            f"{part} is not a plain file (a link or a folder); remove it and run the same command again")):
        fetch(server, tmp_path / "root", checksums={CIFAR: md5(archive)})
    assert notes.read_text() == "my notes" and server.seen == []
