"""py-spy helpers: sample a running server, then summarize where its time goes.

``start(pid, seconds, out)`` runs ``py-spy record --format raw`` (collapsed
stacks; a flame graph SVG instead when ``out`` ends in ``.svg``) against the server for ``seconds`` without pausing it
(py-spy briefly stops the process for each sample: profiled runs are not measured runs); ``summary(out)`` prints self time by function, inclusive
time of the hub's own functions, and time by package. Install py-spy with
``.venv/bin/pip install py-spy`` (root, or ptrace rights, is needed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Recording:
    def __init__(self, proc: subprocess.Popen[bytes] | None, out: Path) -> None:
        self.proc, self.out = proc, out

    def wait(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(pid: int, seconds: float, out: Path, rate: int = 250) -> Recording:
    exe = py_spy()
    if exe is None:
        out.write_text("py-spy is not installed: .venv/bin/pip install py-spy\n")
        return Recording(None, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    svg = out.suffix == ".svg"
    target = out if svg else out.with_suffix(".collapsed")
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
         "--format", "flamegraph" if svg else "raw", "--output", str(target)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Recording(proc, out)


def _package(file: str) -> str:
    top = file.lstrip("/").split("/")[0] if "/" in file else file
    if top in ("bridge", "websockets", "asyncio", "prometheus_client", "selectors.py"):
        return top
    return top or "other"


def summary(out: Path, top: int = 18) -> str:
    raw = out.with_suffix(".collapsed")
    if not raw.exists():
        return out.read_text() if out.exists() else f"(no profile at {raw})"
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        names = []
        for frame in frames:
            m = _FRAME.match(frame)
            func, file = (m["func"], m["file"]) if m else (frame, "")
            names.append((f"{func} ({file})" if file else func, file))
        if not names:
            continue
        leaf, leaf_file = names[-1]
        self_time[leaf] += count
        packages[_package(leaf_file)] += count
        for name in {n for n, f in names if f.startswith(("bridge/", "websockets/"))}:
            inclusive[name] += count
    if not total:
        return "(empty profile)"
    lines = [f"samples: {total}", "self time (leaf frames):"]
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in self_time.most_common(top)]
    lines.append("inclusive time, hub and websockets functions:")
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in inclusive.most_common(top)]
    lines.append("self time by package (leaf frames; time in C and syscalls counts for the Python caller):")
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in packages.most_common(8)]
    text = "\n".join(lines)
    out.write_text(text + "\n")
    return text
