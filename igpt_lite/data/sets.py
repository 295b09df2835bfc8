"""The four image sets of a bias test, from one zip (an upload): read in memory, never extracted."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .images import MIN_FOLDER_IMAGES, ImageFolder, PixelBudget, load_image_files, source_name

SET_FOLDERS = ("X", "Y", "A", "B")  # bias.SET_NAMES (data imports nothing above it)
MAX_ZIP_MEMBERS = 5_000  # entries, folders included
MAX_ZIP_BYTES = 200_000_000  # total uncompressed size: a zip bomb claims far more than it holds


@dataclass
class ImageSets:
    """Image sets read from one zip (`read_image_sets_zip`): {set name: ImageFolder}, and the files
    that sat in no set folder (listed so that nothing is left out unseen)."""

    sets: dict[str, ImageFolder]
    ignored: list[str] = field(default_factory=list)


def _zip_set(member: str, names) -> str | None:
    """The set a zip member belongs to: its folder's name (X/, or any/path/X/), case-insensitive."""
    parts = member.split("/")
    folder = parts[-2].upper() if len(parts) >= 2 else None
    return next((n for n in names if n.upper() == folder), None)


def read_image_sets_zip(source, resolution: int, channels: int, names=SET_FOLDERS, crop: str = "center",
                        min_images: int = MIN_FOLDER_IMAGES, budget: PixelBudget | None = None) -> ImageSets:
    """One zip (a path or a binary file object, e.g. an upload) holding a folder per set, e.g. X/,
    Y/, A/, B/ (at the top or under one folder), as model inputs.

    Members are read in memory, never extracted. Refused with a ValueError that says what to do: a
    file that is not a zip, a member with an absolute path or `..` (a zip-slip trick), more than
    MAX_ZIP_MEMBERS entries or MAX_ZIP_BYTES uncompressed (a zip bomb), a missing set folder (named),
    a set of fewer than `min_images` images, and any file in a set folder that `read_image` refuses.
    __MACOSX/ and hidden files (.DS_Store, ._x.png) are skipped; other files outside the set folders
    are listed in `ignored`. budget: a `PixelBudget` for the whole zip (an upload's cap on decoded pixels)."""
    import io
    import re
    import zipfile

    label = source_name(source) if isinstance(source, (str, Path)) or getattr(source, "name", None) else "the zip"
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{label}: not a zip file ({e}); zip the folders {'/, '.join(names)}/ together") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ValueError(f"{label}: {len(infos):,} entries, more than the {MAX_ZIP_MEMBERS:,} accepted; "
                             "a bias test needs tens of images a set, not thousands")
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_BYTES:
            raise ValueError(f"{label}: {total:,} bytes uncompressed, more than the {MAX_ZIP_BYTES:,} accepted "
                             "(a zip bomb, or images far larger than needed: the model sees them at a few dozen pixels)")
        members: dict[str, list] = {n: [] for n in names}
        ignored = []
        for info in infos:
            member = info.filename.replace("\\", "/")
            if member.startswith("/") or re.match(r"^[A-Za-z]:", member) or ".." in member.split("/"):
                raise ValueError(f"{label}: refused: the member {info.filename!r} has an absolute path or '..' "
                                 "(a path trick); zip the folders themselves, with relative paths")
            parts = member.rstrip("/").split("/")
            if info.is_dir() or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                continue
            which = _zip_set(member, names)
            (members[which] if which else ignored).append(info)
        missing = [n for n in names if not members[n]]
        if missing:
            kept = [i for v in members.values() for i in v] + ignored
            found = sorted({i.filename.rsplit("/", 1)[0] + "/" for i in kept if "/" in i.filename})
            raise ValueError(f"{label}: no folder{'s' if len(missing) > 1 else ''} {', '.join(m + '/' for m in missing)} "
                             "with images in the zip"
                             f"{' (found ' + ', '.join(found) + ')' if found else ''}; it needs the folders "
                             f"{', '.join(n + '/' for n in names)}, each holding that set's images")

        def read(info):  # one member at a time, never more than it claims
            try:
                with zf.open(info) as f:
                    blob = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as e:
                raise ValueError(f"{info.filename}: cannot be read from the zip ({e}); re-create the zip") from None
            buf = io.BytesIO(blob)
            buf.name = info.filename
            return buf

        sets = {}
        for n in names:
            folder = members[n][0].filename.rsplit("/", 1)[0]
            sets[n] = load_image_files((read(i) for i in sorted(members[n], key=lambda i: i.filename)), resolution,
                                       channels, crop, name=f"{folder}/", min_images=min_images,
                                       remove_hint="remove it from the zip", budget=budget)
    return ImageSets(sets=sets, ignored=[i.filename for i in ignored])
