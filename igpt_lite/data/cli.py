"""`igpt-lite data check` and `data download`: the datasets you bring."""
from __future__ import annotations

from . import download
from ..arguments import root_arg
from .registry import DatasetCheck, check_datasets, data_root


def cmd_data_download(args) -> download.DownloadResult:
    return download.download(args.name, args.root, progress=not args.json)


def cmd_data_check(args) -> DatasetCheck:
    return DatasetCheck(data_root(args.root), check_datasets(args.root))


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
