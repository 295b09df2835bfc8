"""`igpt-lite data check` and `data download`: the datasets you bring."""
from __future__ import annotations

from . import download
from ..arguments import root_arg
from .datasets import check_datasets, data_root


def cmd_data_download(args) -> dict:
    result = download.download(args.name, args.root, progress=not args.json)
    if args.json:
        return result.to_dict()
    if result.already_present:
        return {"dataset": args.name, "path": str(result.path), "status": "already present and complete; nothing fetched"}
    return {"dataset": args.name, "path": str(result.path), "status": "fetched, checked and unpacked",
            **{f.file: f"{f.bytes} bytes, MD5 {f.md5} as published"
               + (f" (resumed at byte {f.resumed_from})" if f.resumed_from else "") for f in result.files}}


def cmd_data_check(args) -> dict:
    statuses = check_datasets(args.root)
    return {"root": str(data_root(args.root)), "datasets": [s.to_dict() for s in statuses]}


def check_text(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        counts = ", ".join(f"{k} {v:,}" for k, v in r["counts"].items())
        lines.append(f"{r['name']:<16} {r['status']:<8} {counts or r['folder']}")
        lines += [f"    {text}" for text in ([r["problem"]] if r["status"] == "broken" else []) + r["notes"]]
    return "\n".join(lines)


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("data", help="the datasets you bring: check them, download them")
    data_verbs = p.add_subparsers(dest="data_verb", required=True)
    p = data_verbs.add_parser("check", help="which datasets are under the data root and whole, with counts per split",
                              description="Checks every file of cifar10, cifar100, stl10, mnist-idx and "
                              "fashion-mnist under the data root as loading them does (sizes, headers, labels) and "
                              "prints each one's status (ok, missing, broken: what is wrong) and images per split. "
                              "Where each file goes: data/README.md.")
    root_arg(p)
    p.set_defaults(func=cmd_data_check)

    q = data_verbs.add_parser("download", help="fetch a published dataset, check its checksum, unpack it (resumable)",
                              description="Fetch the official archive, check its published MD5 before unpacking, "
                              "and put the dataset folder in place whole; an interrupted download resumes when the "
                              "same command runs again, and a dataset already there is left alone.")
    q.add_argument("name", choices=list(download.SOURCES))
    root_arg(q)
    q.set_defaults(func=cmd_data_download)
    return [*data_verbs.choices.values()]
