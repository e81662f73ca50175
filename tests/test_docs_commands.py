"""Every shell and Python block in README.md and docs/*.md runs as written.

Each document's ```sh, ```bash, ```console and ```python blocks run in order,
in a temporary folder, with this virtualenv's ``bin`` first on ``PATH`` (so
``connect-bridge`` and ``python3`` are the checkout's), and with what one
block exports (``export TOKEN=$(...)``) carried to the next blocks of the
same document, as in one terminal.

The hub a block talks to:

* by default, a demo hub like ``connect-bridge demo``'s: open (no tokens),
  virtual agents agent1 ... agent8 (agent1 and agent2 Available, the others
  in the demo's start states), no timers, so nothing moves by itself;
* with ``<!-- run-with: secured hub -->`` right before the block, a hub that
  wants tokens, with ``BRIDGE_SECRET`` exported and agent1 ... agent8 as
  virtual agents logged in with provider tokens;
* none when the block starts its own (a ``connect-bridge serve`` or
  ``connect-bridge demo`` line); with the mark above, ``BRIDGE_SECRET`` is
  exported for it.

Every hub listens on a free port instead of 8765: ``8765`` in a block becomes
that port, ``BRIDGE_URL`` and ``BRIDGE_PORT`` name it, and a ``connect-bridge
demo`` line without ``--port`` gets one. Nothing else in a block is changed.

Shell blocks run one command at a time (a line, with its ``\\``
continuations; comments are shell comments). A command must exit 0, except
one that runs until stopped (``serve``, ``demo``, ``virtual-agent``, a
``listen`` without ``--count`` or ``--duration``): it must show that it
started (the hub's "listening on", the demo's "Ctrl-C stops the demo.", the
virtual agent's and listen's "open" note), keeps running while the block's
next lines run, as in a terminal of its own, and must still be running when
the block ends: then each is stopped with Ctrl-C, the last started first,
and must exit 0 (in a pipeline, ``jq`` may end by the signal instead). A Python block must exit 0, or, when it loops over events,
print something with no traceback; it is then stopped too.

A block that cannot run here is marked, right before it, with
``<!-- not-run: why -->``: that comment is the one place its exclusion is
listed, with its reason (``test_exclusions_say_why`` lists them all). Any
other block that fails fails this test, naming the document, the line, the
command and what it printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.cli.floor import Floor
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.tokens import issue_token
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import free_port, prerequisite_missing
from .redis_helpers import require_redis

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
#: The secret of every secured hub of this test, so that a token one block makes works in the next.
SECRET = "docs-test-secret-0123456789abcdef0123456789"
#: The agents of the hubs the test provides.
AGENTS = 8
#: The port the documents use.
DOC_PORT = "8765"
#: The Redis the documents' scaling examples name: the one the tests need anyway.
LOCAL_REDIS = "redis://127.0.0.1:6379"
#: Programs besides connect-bridge that the documents' commands use, from Debian's packages.
TOOLS = ("jq", "curl")
SHELLS = ("sh", "bash", "console", "shell")
PYTHONS = ("python", "py")
#: Seconds a command may take (a safety net for a hung command, not a timing check).
COMMAND_LIMIT = 60.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_MARK = re.compile(r"<!--\s*(?P<what>not-run|run-with)\s*:\s*(?P<why>(?:(?!-->).)*?)\s*-->\s*\Z", re.S)


@dataclass
class Block:
    """One fenced block of a document."""

    document: Path
    line: int
    lang: str
    body: str
    #: ``not-run`` or ``run-with`` and its text, from the comment right before the block.
    mark: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        return self.mark[1] if self.mark is not None and self.mark[0] == "not-run" else None

    @property
    def secured(self) -> bool:
        return self.mark is not None and self.mark[0] == "run-with" and "secured" in self.mark[1]


def blocks(document: Path) -> list[Block]:
    """The shell and Python blocks of ``document``, with the mark before each."""
    text = document.read_text()
    found = []
    for match in _FENCE.finditer(text):
        lang = match["lang"].lower()
        if lang not in SHELLS + PYTHONS:
            continue
        before = _MARK.search(text[: match.start()])
        mark = (before["what"], before["why"]) if before else None
        found.append(Block(document, text.count("\n", 0, match.start()) + 1, lang,
                           _dedent(match["body"], match["indent"]), mark))
    return found


def _dedent(body: str, indent: str) -> str:
    return "\n".join(line[len(indent):] if line.startswith(indent) else line for line in body.splitlines())


def commands(block: Block) -> Iterator[tuple[int, str]]:
    """The shell commands of a block with their line numbers: one per line, ``\\`` continuations
    joined, blank and comment-only lines left out; in a ``console`` block, the ``$ `` lines."""
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.body.splitlines(), start=block.line + 1):
        line = raw
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            start = offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        yield start, " ".join(part.strip() for part in pending)
        pending = []


# ----- what a command is ----------------------------------------------------------------------


HUB_STARTERS = ("serve", "demo")


def _words(command: str) -> list[str]:
    first = command.split("|", 1)[0]
    try:
        return shlex.split(first, comments=True)
    except ValueError:
        return first.split()


def subcommand(command: str) -> str | None:
    """``listen`` for ``connect-bridge listen ...`` (after ``VAR=value`` words), else ``None``."""
    words = [w for w in _words(command) if not re.fullmatch(r"[A-Za-z_]\w*=.*", w)]
    if len(words) >= 2 and Path(words[0]).name == "connect-bridge":
        return words[1]
    return None


def runs_until_stopped(command: str) -> bool:
    name = subcommand(command)
    if name in (*HUB_STARTERS, "virtual-agent"):
        return True
    words = _words(command)
    return name == "listen" and not {"--count", "--duration"} & {w.split("=", 1)[0] for w in words}


def started_marker(command: str) -> re.Pattern[str] | None:
    """What a command that runs until stopped prints once it is up (stdout or stderr)."""
    name = subcommand(command)
    quiet = {"--quiet", "-q"} & set(_words(command))
    if name == "serve":
        return re.compile(r"listening on ws")
    if name == "demo":
        return re.compile(r"Ctrl-C stops the demo\.")
    if name == "virtual-agent" and not quiet:
        return re.compile(r": open \(")
    if name == "listen" and not quiet:
        return re.compile(r"^# open", re.M)
    return None  # --quiet: its first line of output


def block_starts_a_hub(block: Block) -> bool:
    return block.lang in SHELLS and any(subcommand(c) in HUB_STARTERS for _, c in commands(block))


def with_port(text: str, port: int) -> str:
    """The documents' port replaced by this run's."""
    return text.replace(DOC_PORT, str(port))


def with_demo_port(command: str, port: int) -> str:
    command = with_port(command, port)
    if subcommand(command) == "demo" and "--port" not in _words(command):
        words = command.split("#", 1)
        command = words[0].rstrip() + f" --port {port}" + (f"  #{words[1]}" if len(words) > 1 else "")
    return command


# ----- the hubs the test provides -------------------------------------------------------------


@contextlib.asynccontextmanager
async def demo_hub(port: int) -> AsyncIterator[dict[str, str]]:
    """``connect-bridge demo``'s bus, every timer off: an open hub and the demo's floor."""
    async with HubServer(HubConfig(host="127.0.0.1", port=port, open_mode=True)) as hub:
        floor = Floor(hub.url, AGENTS, floor_every=None, seed=1, call_every=None, call_length=None,
                      ring_timeout=None, acw_timeout=None)
        await floor.start()
        try:
            yield {}
        finally:
            await floor.close()


@contextlib.asynccontextmanager
async def secured_hub(port: int) -> AsyncIterator[dict[str, str]]:
    """A hub that wants tokens, its agents logged in with provider tokens."""
    async with HubServer(HubConfig(host="127.0.0.1", port=port, secret=SECRET)) as hub:
        agents = [VirtualAgent(hub.url, token=issue_token(SECRET, agent=f"agent{n}", role="provider", ttl=3600))
                  for n in range(1, AGENTS + 1)]
        for agent in agents:
            await agent.start()
        try:
            yield {"BRIDGE_SECRET": SECRET}
        finally:
            for agent in agents:
                await agent.close()


@contextlib.asynccontextmanager
async def no_hub(port: int) -> AsyncIterator[dict[str, str]]:
    yield {}


@contextlib.asynccontextmanager
async def secret_only(port: int) -> AsyncIterator[dict[str, str]]:
    """For a block that starts its own secured hub: the secret, as ``serve`` reads it."""
    yield {"BRIDGE_SECRET": SECRET}


# ----- running ---------------------------------------------------------------------------------


@dataclass
class Session:
    """One document's terminal: its folder and the environment its exports build up."""

    folder: Path
    env: dict[str, str]
    failures: list[str] = field(default_factory=list)

    def fail(self, where: str, command: str, why: str, out: str = "", err: str = "") -> None:
        text = [f"{where}: {command}", f"    {why}"]
        for name, stream in (("stdout", out), ("stderr", err)):
            lines = stream.strip().splitlines()[-12:]
            if lines:
                text.append(f"    {name}:")
                text += [f"      {line}" for line in lines]
        self.failures.append("\n".join(text))


def base_environment(folder: Path) -> dict[str, str]:
    """This environment without BRIDGE_ settings, the virtualenv's bin first, a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["XDG_DATA_HOME"] = str(folder / ".data")
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def spawn(argv: list[str], session: Session, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, cwd=session.folder, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )


class Output:
    """What a running process printed so far, read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.changed = asyncio.Event()
        assert process.stdout is not None and process.stderr is not None
        self.readers = [asyncio.ensure_future(self._read(process.stdout, self.out)),
                        asyncio.ensure_future(self._read(process.stderr, self.err))]

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while chunk := await stream.read(4096):
            into.append(chunk.decode(errors="replace"))
            self.changed.set()

    @property
    def text(self) -> tuple[str, str]:
        return "".join(self.out), "".join(self.err)

    async def finish(self) -> tuple[str, str]:
        await asyncio.gather(*self.readers)
        return self.text


async def stop(process: asyncio.subprocess.Process) -> int:
    """Ctrl-C to the process and its children, as a terminal sends it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    assert process.returncode is not None
    return process.returncode


async def wait_started(process: asyncio.subprocess.Process, output: Output, marker: re.Pattern[str] | None) -> bool:
    """Until the marker shows (or, with none, any output on stdout), or the process ends, or
    :data:`COMMAND_LIMIT` passes (then it is stopped): whether it started."""
    try:
        async with asyncio.timeout(COMMAND_LIMIT):
            while process.returncode is None:
                out, err = output.text
                if (marker.search(out) or marker.search(err)) if marker is not None else out:
                    return True
                output.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(output.changed.wait(), 0.2)
    except TimeoutError:
        output.err.append(f"\n(nothing showed it started within {COMMAND_LIMIT:g} s: stopped)\n")
        await stop(process)
    return False


async def run_shell_block(block: Block, session: Session, port: int) -> None:
    background: list[tuple[str, str, asyncio.subprocess.Process, Output]] = []
    try:
        for line, written in commands(block):
            where = f"{block.document.relative_to(ROOT)}:{line}"
            command = with_demo_port(written, port)
            if runs_until_stopped(command):
                process = await spawn(["bash", "-c", command], session, session.env)
                output = Output(process)
                if not await wait_started(process, output, started_marker(command)):
                    await process.wait()
                    session.fail(where, written, f"ended before it started (exit status {process.returncode})",
                                 *await output.finish())
                    return
                background.append((where, written, process, output))  # as in a terminal of its own
                continue
            env_file = session.folder / ".env-after"
            script = f"set -eo pipefail\n{command}\nenv -0 > {shlex.quote(str(env_file))}\n"
            process = await spawn(["bash", "-c", script], session, session.env)
            output = Output(process)
            try:
                await asyncio.wait_for(process.wait(), COMMAND_LIMIT)
            except TimeoutError:
                await stop(process)
                session.fail(where, written, f"still running after {COMMAND_LIMIT:g} s", *await output.finish())
                continue
            out, err = await output.finish()
            if process.returncode != 0:
                session.fail(where, written, f"exit status {process.returncode}", out, err)
                continue
            before = session.env
            session.env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
            for name in re.findall(r"^export\s+([A-Za-z_]\w*)=", command):
                if not session.env.get(name) and name not in before:
                    session.fail(where, written, f"{name} is empty: the command that makes it failed", out, err)
    finally:  # Ctrl-C in each terminal, the last one started first (a hub the others use last)
        for where, written, process, output in reversed(background):
            if process.returncode is not None:
                session.fail(where, written, f"stopped by itself (exit status {process.returncode}) "
                             "before the block ended", *await output.finish())
                continue
            status = await stop(process)
            if status not in (0, 130, -signal.SIGINT):
                session.fail(where, written, f"exit status {status} after Ctrl-C", *await output.finish())


async def run_python_block(block: Block, session: Session, port: int) -> None:
    script = session.folder / f"block_{block.line}.py"
    script.write_text(with_port(block.body, port) + "\n")
    process = await spawn([sys.executable, str(script)], session, session.env)
    output = Output(process)
    where = block.where
    if not await wait_started(process, output, None):
        await process.wait()
        out, err = await output.finish()
        if process.returncode != 0:
            session.fail(where, "(python block)", f"exit status {process.returncode}", out, err)
        return
    try:  # it printed: give it a moment to finish, else it is a loop over events
        await asyncio.wait_for(process.wait(), 3)
    except TimeoutError:
        out, err = output.text
        if "Traceback" in err:
            session.fail(where, "(python block)", "raised while running", out, err)
        await stop(process)
        return
    out, err = await output.finish()
    if process.returncode != 0:
        session.fail(where, "(python block)", f"exit status {process.returncode}", out, err)


async def run_block(block: Block, session: Session) -> None:
    port = free_port()
    if block_starts_a_hub(block):
        provide = secret_only if block.secured else no_hub
    else:
        provide = secured_hub if block.secured else demo_hub
    async with provide(port) as extra:
        given = {**extra, "BRIDGE_URL": f"ws://127.0.0.1:{port}/ws", "BRIDGE_PORT": str(port)}
        before = session.env
        session.env = {**before, **given}
        try:
            if block.lang in PYTHONS:
                await run_python_block(block, session, port)
            else:
                await run_shell_block(block, session, port)
        finally:  # the next block keeps this one's exports, not the settings of this block's hub
            for name, value in given.items():
                if session.env.get(name) == value:
                    if name in before:
                        session.env[name] = before[name]
                    else:
                        del session.env[name]


# ----- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
async def test_every_block_runs_as_written(document: Path) -> None:
    runnable = [b for b in blocks(document) if b.not_run is None]
    if not runnable:
        return
    if any(LOCAL_REDIS in b.body for b in runnable):
        require_redis()  # the documents' examples that scale out use the Redis the tests use
    for tool in TOOLS:
        if shutil.which(tool) is None and any(re.search(rf"(^|[|;&(]\s*){tool}\b", b.body, re.M) for b in runnable):
            prerequisite_missing(f"{document.relative_to(ROOT)} runs {tool}, which is not installed "
                                 f"(Debian: apt-get install {tool})")
    with tempfile.TemporaryDirectory(prefix="docs-") as tmp:
        session = Session(Path(tmp), base_environment(Path(tmp)))
        for block in runnable:
            await run_block(block, session)
    if session.failures:
        pytest.fail(
            f"{len(session.failures)} command(s) of {document.relative_to(ROOT)} did not run as written "
            "(fix the document, or mark the block <!-- not-run: why --> with the reason):\n\n"
            + "\n\n".join(session.failures),
            pytrace=False,
        )


def test_exclusions_say_why() -> None:
    """Every excluded block names its reason; this is the list of them."""
    excluded = [(b.where, b.not_run) for d in DOCUMENTS for b in blocks(d) if b.not_run is not None]
    for where, why in excluded:
        print(f"not run: {where}: {why}")
    assert all(len(why or "") >= 10 for _, why in excluded), excluded


def test_the_extraction_sees_the_blocks() -> None:
    """The reader finds fenced blocks, marks and continuations as a person reads them."""
    readme = blocks(ROOT / "README.md")
    assert any(b.lang == "python" for b in readme) and any(b.lang == "sh" for b in readme)
    sample = Block(ROOT / "README.md", 1, "sh", "a \\\n  --b c\n# note\n\nd  # e", None)
    assert list(commands(sample)) == [(2, "a --b c"), (6, "d  # e")]
    console = Block(ROOT / "README.md", 1, "console", "$ connect-bridge listen\n# open\n$ ls", None)
    assert [c for _, c in commands(console)] == ["connect-bridge listen", "ls"]
    assert runs_until_stopped("connect-bridge listen --agent agent1 | jq .")
    assert not runs_until_stopped("connect-bridge listen --agent agent1 --count 1")
    assert with_demo_port("connect-bridge demo   # here", 5) == "connect-bridge demo --port 5  # here"
