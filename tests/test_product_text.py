"""The product says what is true of the code now: no numbered development notes (a session or an
issue by its number) in README, docs, the library, the app, the notebooks or the tests."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTE = re.compile(r"\b(session|issue)s? [0-9]+\b", re.I)
WHERE = ["README.md", "CHANGELOG.md", "docs", "igpt_lite", "app", "notebooks", "tests", "scripts", "benchmarks"]
SUFFIXES = {".md", ".py", ".ipynb", ".json", ".toml", ".txt", ".yml"}


def test_no_numbered_development_notes_in_the_product():
    found = []
    for place in WHERE:
        path = ROOT / place
        for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES):
            for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                if NOTE.search(line):
                    found.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not found, "say what is true of the code now:\n" + "\n".join(found)
