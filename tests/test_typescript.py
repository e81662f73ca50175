"""The TypeScript declarations of the browser client and of every kind (issue 13), checked by tsc.

``tests/ts/example.ts`` is an app written against them (connect, SetNotReady
with typed data, SetAgentState events): it must type-check. ``tests/ts/wrong.ts``
gets a kind's data wrong three ways: tsc must refuse exactly those lines, which
proves the types bite. ``tsc`` is the npm devDependency ``typescript`` (``npm ci``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .helpers import prerequisite_missing

REPO = Path(__file__).resolve().parents[1]
TSC = REPO / "node_modules" / ".bin" / "tsc"
PROJECT = REPO / "tests" / "ts"


def tsc(config: str) -> subprocess.CompletedProcess[str]:
    if not TSC.is_file():
        prerequisite_missing(f"{TSC.relative_to(REPO)} is missing: run npm ci")
    return subprocess.run([str(TSC), "-p", str(PROJECT / config)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_an_app_written_against_the_declarations_type_checks() -> None:
    result = tsc("tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_data_for_a_kind_fails_the_check() -> None:
    result = tsc("tsconfig.wrong.json")
    assert result.returncode != 0
    wrong = (PROJECT / "wrong.ts").read_text().splitlines()
    marked = {number for number, line in enumerate(wrong, 1) if "// WRONG" in line}
    refused = {int(n) for n in re.findall(r"wrong\.ts\((\d+),\d+\): error TS\d+", result.stdout)}
    assert refused == marked, result.stdout  # each wrong line, and nothing else (no config or import error)
    assert len(marked) == 3


def exported(text: str, declared: bool) -> set[str]:
    prefix = r"export\s+declare\s+" if declared else r"export\s+"
    return set(re.findall(prefix + r"(?:async\s+)?(?:const|function|class)\s+([A-Za-z_$][\w$]*)", text))


def test_every_module_a_user_imports_has_its_declarations_in_step() -> None:
    """Each value a lib module exports is declared beside it, and nothing more: the .d.ts follow the .js."""
    lib = REPO / "static" / "js" / "lib"
    for name in ("client", "kind", "token", "names"):
        js = exported((lib / f"{name}.js").read_text(), declared=False)
        dts = exported((lib / f"{name}.d.ts").read_text(), declared=True)
        assert js and js == dts, f"{name}.d.ts: missing {sorted(js - dts)}, extra {sorted(dts - js)}"


def test_every_public_method_of_the_client_is_declared() -> None:
    """BridgeClient's methods and getters (not the ``_`` internals) are the ones client.d.ts declares."""
    lib = REPO / "static" / "js" / "lib"
    js = set(re.findall(r"^  (?:get )?([a-z]\w*)\(", (lib / "client.js").read_text(), re.M))
    dts = set(re.findall(r"^  (?:get )?([a-z]\w*)(?:<[^(]*>)?\(", (lib / "client.d.ts").read_text(), re.M))
    js.discard("constructor")
    dts.discard("constructor")
    assert js == dts, f"client.d.ts: missing {sorted(js - dts)}, extra {sorted(dts - js)}"
