"""`make bench`: run every benchmark in turn; each writes bench/results/<name>.json.

Benchmarks report numbers; they never pass or fail. A benchmark that cannot run (a
peer that does not install, a service that is down) is reported and the rest go on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order matters only for reading the output; each script is independent.
SCRIPTS = [
    "api.py",
    "chat.py",
    "search.py",
    "ticket_search.py",
    "email_ingest.py",
    "dlp.py",
    "email_parse.py",
    "console.py",
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"== {name}", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.monotonic() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print("benchmarks that did not complete: " + ", ".join(failed))
    subprocess.call([sys.executable, str(HERE / "report.py")], cwd=HERE.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
