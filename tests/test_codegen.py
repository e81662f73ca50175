"""Names are spelled once, in schemas/: the generated Python, JavaScript and docs must match them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import protocol
from bridge.protocol import codegen
from bridge.protocol.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]


def test_the_generated_files_match_the_schemas() -> None:
    stale = codegen.drifted(REPO)
    assert not stale, f"out of date (run python -m bridge.protocol.codegen): {stale}"


def test_check_mode_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path, text in codegen.render_all().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert codegen.drifted(tmp_path) == []
    js = tmp_path / codegen.TARGETS["js"]
    js.write_text(js.read_text().replace("SetNotReady", "SetNotReadyy"))
    assert codegen.drifted(tmp_path) == [codegen.TARGETS["js"]]


def test_every_declared_error_type_is_a_python_name() -> None:
    declared = {error_type for spec in Catalog.load() for error_type, _ in spec.errors}
    assert declared == set(protocol.ErrorType.__members__)
    for error_type in protocol.ErrorType:
        assert protocol.HUMAN_MESSAGES[error_type]


def test_one_error_type_with_two_sentences_is_refused(tmp_path: Path) -> None:
    source = Catalog.load()
    for spec in source:
        (tmp_path / spec.path.name).write_bytes(spec.path.read_bytes())
    (tmp_path / "defs.json").write_bytes((spec.path.parent / "defs.json").read_bytes())
    logout = tmp_path / "Amazon.Agent.Logout.request.json"
    logout.write_text(logout.read_text().replace("The agent state could not be changed.", "Another sentence."))
    with pytest.raises(codegen.CodegenError, match="UPDATE_AGENT_STATE_FAILED"):
        codegen.gather(tmp_path)


@pytest.mark.parametrize("subtopic, name", [("SetNotReady", "SET_NOT_READY"), ("GetQuickConnects", "GET_QUICK_CONNECTS"),
                                            ("InboundCallStateChange", "INBOUND_CALL_STATE_CHANGE"), ("SendDTMF", "SEND_DTMF")])
def test_constant_names(subtopic: str, name: str) -> None:
    assert codegen.constant_name(subtopic) == name


def test_the_typescript_of_a_kind_follows_its_schema() -> None:
    """kinds.d.ts: consts are literals, required members are not optional, closed objects stay closed."""
    kinds = codegen.render_all()[codegen.TARGETS["kinds-types"]]
    assert codegen.TARGETS["kinds-types"] == Path("static/js/lib/kinds.d.ts")
    set_not_ready = kinds.split("export interface SetNotReadyRequest {", 1)[1].split("\n}\n", 1)[0]
    assert '  subtopic: "SetNotReady";' in set_not_ready
    assert "    ReasonCodeId: string;" in set_not_ready and "  data: {" in set_not_ready
    assert "[key: string]" not in set_not_ready  # additionalProperties: false
    assert '"Amazon/Agent/SetNotReady": SetNotReadyRequest;' in kinds
    assert '"Amazon/Agent/SetAgentState": SetAgentStateEvent;' in kinds
    assert "export type NoData = Record<string, never>;" in kinds  # {"maxProperties": 0}
    names = codegen.render_all()[codegen.TARGETS["js-types"]]
    assert 'export declare const SET_NOT_READY: "Amazon/Agent/SetNotReady";' in names


def test_typescript_writer_reads_the_schema_keywords() -> None:
    writer = codegen.TypeWriter()
    schema = {"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"enum": [1, "x"]},
                                               "c": {"type": "array", "items": {"const": True}},
                                               "d": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
                                               "e-f": {"minLength": 1}},
              "required": ["a"], "oneOf": [{"required": ["b"]}, {"required": ["c"]}]}
    assert writer.write(schema, "", "") == (
        '{\n  a: string | null;\n  b?: 1 | "x";\n  c?: Array<true>;\n  d?: number | boolean;\n'
        '  "e-f"?: unknown;\n  [key: string]: unknown;\n}'
    )
