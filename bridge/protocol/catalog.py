"""The message catalog: JSON Schema files, the kinds they define and how frames are checked.

Each ``*.json`` file in a schema folder is either a *kind* file (it carries an
``x-bridge`` annotation) or a file of shared definitions referenced by ``$ref``.
A kind file names its kind through the ``const`` of its ``channel``, ``topic``
and ``subtopic`` properties (a ``channel`` without ``const`` matches any
channel, as the error envelope does), and says in ``x-bridge`` which *shape* it
validates (``request``, ``event`` or ``error``) and which senders may send it
(``app``, ``provider``, ``hub``). That is the whole routing table: adding a
kind is adding a file.

Frames are checked twice over on purpose:

* on the hot path, by validators compiled with ``jsonschema-rs`` (about a
  microsecond per envelope);
* only when that check fails, by the reference ``jsonschema`` implementation,
  whose ``best_match`` gives the clearest JSON path and rule for the error
  message. Schema files themselves are checked against the 2020-12 metaschema
  with ``jsonschema`` at load time.

Refusing a frame must cost little whatever the frame holds (issue 10): the
verdict comes first, from the compiled validator, and the explanation is made
within a budget. The reference validator stops after :data:`KEYWORD_BUDGET`
keyword evaluations and keeps at most :data:`ERRORS_PER_KEYWORD` errors of
each keyword (an object of 4,000 bad items is explained by its first ones);
past the budget, the compiled validator's own first error is described
instead. Messages are cut to :data:`MAX_DETAIL` characters, and a list of
unexpected keys names a few and counts the rest. Frames nested deeper than
:data:`MAX_DEPTH` levels are refused before any validator sees them, so no
validator, ``repr`` or re-serialisation ever meets input deep enough to
exhaust a recursion limit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import jsonschema_rs
import orjson
import referencing
import referencing.jsonschema
from jsonschema._utils import find_additional_properties

from bridge.protocol.envelopes import Role, is_error_kind, kind_of
from bridge.protocol.kind import Kind
from bridge.protocol.retention import RetainRule

Shape = Literal["request", "event", "error"]
Sender = Literal["app", "provider", "hub"]
ANY_CHANNEL: Final = "*"
_SHAPES: Final = ("request", "event", "error")
_SENDERS: Final = ("app", "provider", "hub")

#: Deepest nesting of objects and arrays a frame may have; the envelope itself is level 1.
#: Deeper frames are a ``SCHEMA_VIOLATION`` whose rule is ``maxDepth``.
MAX_DEPTH: Final = 64
#: Keyword evaluations the reference validator may spend explaining one refused frame.
KEYWORD_BUDGET: Final = 100
#: Errors kept from each keyword while explaining (the first ones, lazily).
ERRORS_PER_KEYWORD: Final = 3
#: Errors considered by ``best_match`` for one explanation.
MAX_ERRORS: Final = 10
#: Longest explanation (``errorMessage`` of a ``SCHEMA_VIOLATION``), in characters.
MAX_DETAIL: Final = 300
#: Unexpected keys named in an ``additionalProperties`` message before "and N more".
NAMED_EXTRAS: Final = 3


class CatalogError(Exception):
    """A schema file is unreadable or wrong; the message names the file and the fault."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One shape of one message kind, as declared by one schema file."""

    kind: Kind
    shape: Shape
    senders: frozenset[str]
    path: Path
    schema: dict[str, Any]
    fast: Any  # jsonschema_rs validator: is_valid() on the hot path
    #: For precise error messages; a :func:`bounded_reference` validator, which
    #: behaves as ``Draft202012Validator`` except while :meth:`explain` runs.
    reference: jsonschema.protocols.Validator
    #: ``Amazon/Agent/SetNotReady``: the kind's name, for logs and metrics.
    label: str
    #: Events: how they are kept for late joiners (``x-bridge.retain``), or ``None``.
    retain: RetainRule | None = None
    #: Requests: seconds the provider has to answer (``x-bridge.timeout``); ``None``: the hub's default.
    timeout: float | None = None
    #: Error types the provider may answer this kind with, and the sentence shown
    #: to a person (``x-bridge.errors``); on the error kind, those the hub raises itself.
    errors: tuple[tuple[str, str], ...] = ()
    #: Every schema document of the catalog by ``$id`` (the kinds' files, the shared definitions):
    #: what its ``$ref`` resolve to, for the API descriptions (bridge.protocol.asyncapi, codegen's TypeScript).
    resources: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def explain(self, envelope: Any) -> str:
        """Describe why ``envelope`` breaks this schema: ``$.json.path: what is wrong (rule)``.

        The work is bounded whatever the envelope holds (see the module's
        docstring); this never raises.
        """
        if not within_depth(envelope):  # the fast walk; the path is looked for only when needed
            return depth_error(too_deep(envelope) or [])
        budget = _Budget(KEYWORD_BUDGET)
        token = _BUDGET.set(budget)
        try:
            errors = list(islice(self.reference.iter_errors(envelope), MAX_ERRORS))
            best = jsonschema.exceptions.best_match(errors)
        except _OverBudget:
            best = None
        except RecursionError:  # pragma: no cover - too_deep keeps recursion shallow
            best = None
        finally:
            _BUDGET.reset(token)
        if best is not None:
            return describe_error(best)
        return self._explain_fast(envelope)

    def _explain_fast(self, envelope: Any) -> str:
        """The compiled validator's first error: its cost is Rust's, not Python's."""
        try:
            err = next(iter(self.fast.iter_errors(envelope)), None)
        except Exception:  # pragma: no cover - jsonschema-rs raises only on broken schemas
            err = None
        if err is None:  # pragma: no cover - only reached if the validators disagree
            return "$: rejected by the compiled validator"
        # Like best_match: from an anyOf/oneOf, the deepest error of its branches.
        while (context := getattr(err.kind, "context", None)):
            deepest = max((e for branch in context for e in branch), key=lambda e: len(e.instance_path), default=None)
            if deepest is None or len(deepest.instance_path) <= len(err.instance_path):
                break
            err = deepest
        kind = err.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            message = unexpected_message(list(kind.unexpected))
        else:
            message = err.message
        return format_detail(list(err.instance_path), message, str(kind.name))


class _OverBudget(Exception):
    """An explanation used up its keyword budget."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


#: The budget of the explanation under way in this context; ``None``: no bound (plain validation).
_BUDGET: ContextVar[_Budget | None] = ContextVar("explain_budget", default=None)

_Keyword = Callable[[Any, Any, Any, Any], Iterator[jsonschema.exceptions.ValidationError]]


def _budgeted(keyword: _Keyword) -> _Keyword:
    """``keyword``, charged to the explanation's budget and cut to its first errors."""

    def bounded(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[
        jsonschema.exceptions.ValidationError
    ]:
        budget = _BUDGET.get()
        if budget is None:
            return keyword(validator, value, instance, schema)
        budget.left -= 1
        if budget.left < 0:
            raise _OverBudget
        return islice(keyword(validator, value, instance, schema), ERRORS_PER_KEYWORD)

    return bounded


def _additional_properties(
    validator: Any, aP: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.exceptions.ValidationError]:
    """``additionalProperties`` as ``jsonschema`` checks it, lazily, naming a few extras only."""
    if not validator.is_type(instance, "object"):
        return
    extras = find_additional_properties(instance, schema)
    if validator.is_type(aP, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], aP, path=extra)
    elif not aP:
        found = list(extras)
        if not found:
            return
        if "patternProperties" in schema:
            verb = "does" if len(found) == 1 else "do"
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield jsonschema.exceptions.ValidationError(
                f"{_some(found)} {verb} not match any of the regexes: {patterns}"
            )
        else:
            yield jsonschema.exceptions.ValidationError(unexpected_message(found))


def _some(names: list[str]) -> str:
    """``'a', 'b', 'c' and 5,997 more``: a few names (shortened) and how many others."""
    named = ", ".join(shorten(repr(name), 40) for name in names[:NAMED_EXTRAS])
    rest = len(names) - NAMED_EXTRAS
    return f"{named} and {rest:,} more" if rest > 0 else named


def unexpected_message(names: list[str]) -> str:
    """``Additional properties are not allowed ('subject' was unexpected)``, bounded."""
    verb = "was" if len(names) == 1 else "were"
    return f"Additional properties are not allowed ({_some(names)} {verb} unexpected)"


def bounded_reference(schema: dict[str, Any], registry: referencing.Registry[Any]) -> jsonschema.protocols.Validator:
    """A ``Draft202012Validator`` whose keywords respect an explanation's budget."""
    validator: jsonschema.protocols.Validator = _BoundedValidator(schema, registry=registry)
    return validator


_BoundedValidator: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    validators={
        name: _budgeted(_additional_properties if name == "additionalProperties" else keyword)
        for name, keyword in jsonschema.Draft202012Validator.VALIDATORS.items()
    },
)


def too_deep(value: Any, room: int = MAX_DEPTH) -> list[str | int] | None:
    """The path to the first object or array nested more than ``room`` levels deep, or ``None``.

    ``value`` is level 1. Recursion is at most ``room`` calls deep, and a frame
    within the limit is walked once (objects and arrays only).
    """
    if isinstance(value, dict):
        items: Iterable[tuple[str | int, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    if room <= 0:
        return []
    for key, item in items:
        if isinstance(item, (dict, list)):
            found = too_deep(item, room - 1)
            if found is not None:
                found.insert(0, key)
                return found
    return None


def within_depth(value: Any, room: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``room`` levels: :func:`too_deep` without the path, cheaper."""
    if room <= 0:
        return False
    for item in value.values() if type(value) is dict else value:
        if (type(item) is dict or type(item) is list) and not within_depth(item, room - 1):
            return False
    return True


def depth_error(path: list[str | int]) -> str:
    """``$.data.a.a…: nested deeper than 64 levels (maxDepth)``."""
    return format_detail(path, f"nested deeper than {MAX_DEPTH} levels", "maxDepth")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_detail(path: Iterable[str | int], message: str, rule: str) -> str:
    """``$.json.path: what is wrong (rule)``, at most :data:`MAX_DETAIL` characters."""
    where = shorten("$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path), 120)
    rule = shorten(rule, 40)
    return f"{where}: {shorten(message, MAX_DETAIL - len(where) - len(rule) - 5)} ({rule})"


def describe_error(err: jsonschema.exceptions._Error) -> str:
    """``$.data.ReasonCodeId: 5 is not of type 'string' (type)``."""
    return format_detail(err.absolute_path, err.message, str(err.validator))


def envelope_shape(envelope: dict[str, Any], kind: Kind) -> Shape:
    """Which shape a frame claims to be: errors by name, events by their ``message``."""
    if is_error_kind(kind):
        return "error"
    if "message" in envelope:
        return "event"
    return "request"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one envelope from one sender."""

    spec: KindSpec | None
    #: ``None`` when the envelope may be routed; otherwise what is wrong.
    problem: Literal["unknown", "forbidden", "schema"] | None = None
    detail: str = ""


class Catalog:
    """All known kinds, loaded from schema folders."""

    def __init__(self, specs: Iterable[KindSpec]) -> None:
        self._by_name: dict[Kind, list[KindSpec]] = {}
        #: Decisions by (kind, whether the frame has a ``message``, sender): the shape a frame
        #: claims follows from the first two (:func:`envelope_shape`), so it is worked out on a miss only.
        self._decided: dict[tuple[Kind, bool, str], Verdict] = {}
        for spec in specs:
            self._by_name.setdefault(spec.kind, []).append(spec)

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> Catalog:
        """Load the built-in schemas plus a deployment's own folders."""
        return cls(load_specs([builtin_schema_dir(), *extra_dirs]))

    def __iter__(self) -> Iterator[KindSpec]:
        for specs in self._by_name.values():
            yield from specs

    def specs_for(self, kind: Kind) -> list[KindSpec]:
        """Every shape declared for ``kind`` (empty when the kind is unknown)."""
        specs = self._by_name.get(kind)
        if specs is None:
            specs = self._by_name.get(Kind(ANY_CHANNEL, kind.topic, kind.subtopic), [])
        return specs

    def spec(self, kind: Kind, shape: Shape) -> KindSpec | None:
        for spec in self.specs_for(kind):
            if spec.shape == shape:
                return spec
        return None

    def check(self, envelope: dict[str, Any], kind: Kind, sender: Role | str) -> Verdict:
        """Decide whether ``sender`` may send ``envelope`` and whether it is valid.

        This is on the hot path: the decision for a (kind, shape, sender) is
        made once and cached, so a routed frame costs a dict lookup plus the
        compiled validator. Only a frame the validator refuses is measured
        for depth (:data:`MAX_DEPTH`) before it is explained: explaining a
        deep frame is what costs, and a valid frame's depth is its schema's
        business (the built-in schemas admit no free nesting at all).
        """
        key = (kind, "message" in envelope, sender)
        decided = self._decided.get(key)
        if decided is None:
            decided = self._decide(kind, envelope_shape(envelope, kind), sender)
            # Cache only names a schema spells: an unknown name, or any channel
            # of a wildcard kind (``<channel>/Error/ApiError``), is one a client
            # made up, and a cache keyed by those would grow without bound.
            if kind in self._by_name:
                self._decided[key] = decided
        if decided.spec is None:
            return decided
        spec = decided.spec
        if spec.fast.is_valid(envelope):
            return decided
        return Verdict(spec, "schema", spec.explain(envelope))  # explain bounds depth first

    def _decide(self, kind: Kind, shape: Shape, sender: str) -> Verdict:
        """Which schema applies, before looking at the envelope's content.

        Order matters for the error a client sees: a name nobody declared is
        ``unknown``; a declared name that this sender's role may not send in
        any shape, or an event from an app, or a request from a provider, is
        ``forbidden``; otherwise the schema of the shape the frame claims (or,
        when the role has no such shape, the one it may send, whose error then
        says what is missing).
        """
        specs = self.specs_for(kind)
        if not specs:
            return Verdict(None, "unknown", f"no message kind {kind}")
        allowed = [spec for spec in specs if sender in spec.senders]
        if not allowed:
            who = " and ".join(sorted({s for spec in specs for s in spec.senders}))
            return Verdict(None, "forbidden", f"{kind} is sent by: {who}; not by: {sender}")
        chosen = next((spec for spec in allowed if spec.shape == shape), None)
        if chosen is None:
            if shape != "request" and sender == Role.APP:
                return Verdict(None, "forbidden", f"apps may not send {shape}s ({kind})")
            if shape == "request" and sender == Role.PROVIDER:
                return Verdict(None, "forbidden", f"providers may not send requests ({kind})")
            chosen = allowed[0]
        return Verdict(chosen)

    def validate(self, envelope: Any) -> str | None:
        """Check an envelope from any sender (used by ``connect-bridge validate``).

        Returns ``None`` when valid, else the reason.
        """
        if not isinstance(envelope, dict):
            return "$: an envelope is a JSON object"
        name = kind_of(envelope)
        if name is None:
            return "$: channel, topic and subtopic must be strings"
        spec = self.spec(name, envelope_shape(envelope, name))
        if spec is None:
            shapes = sorted(s.shape for s in self.specs_for(name))
            if not shapes:
                return f"$: no message kind {name}"
            return f"$: {name} is a {' or '.join(shapes)}, not a {envelope_shape(envelope, name)}"
        if spec.fast.is_valid(envelope):
            return None
        return spec.explain(envelope)


def builtin_schema_dir() -> Path:
    """The schemas shipped with the package (the wheel) or beside it (a checkout)."""
    packaged = Path(str(resources.files("bridge"))) / "_data" / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def load_specs(dirs: Iterable[Path]) -> list[KindSpec]:
    """Read, check and compile every schema file in ``dirs``.

    Raises :class:`CatalogError` naming the first bad file.
    """
    documents: list[tuple[Path, dict[str, Any]]] = []
    for folder in dirs:
        if not folder.is_dir():
            raise CatalogError(f"{folder}: not a folder of schema files")
        for path in sorted(folder.glob("*.json")):
            documents.append((path, _read_schema(path)))

    resources_by_id: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, schema in documents:
        schema_id = schema.get("$id")
        if not isinstance(schema_id, str):
            raise CatalogError(f"{path}: needs a string $id")
        if schema_id in resources_by_id:
            raise CatalogError(f"{path}: $id {schema_id} is also used by {resources_by_id[schema_id][0]}")
        resources_by_id[schema_id] = (path, schema)

    try:
        fast_registry = jsonschema_rs.Registry([(uri, s) for uri, (_, s) in resources_by_id.items()])
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        # The error names the missing resource, not the file: find who refers to it.
        culprits = [
            str(path) for path, text in ((p, orjson.dumps(s).decode()) for p, s in documents)
            if any(part in text for part in re.findall(r"'([^']+)'", str(exc)))
        ]
        raise CatalogError(f"{', '.join(culprits) or 'schemas'}: cannot compile: {exc}") from exc
    reference_registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (uri, referencing.jsonschema.DRAFT202012.create_resource(s))
        for uri, (_, s) in resources_by_id.items()
    )

    shared = {uri: s for uri, (_, s) in resources_by_id.items()}
    specs: list[KindSpec] = []
    seen: dict[tuple[tuple[str, str, str], str], Path] = {}
    for path, schema in documents:
        annotation = schema.get("x-bridge")
        if annotation is None:
            continue  # shared definitions
        kind, shape, senders = _read_annotation(path, schema, annotation)
        retain, timeout, errors = _read_behaviour(path, kind, shape, annotation)
        key = (tuple(kind), shape)
        if key in seen:
            raise CatalogError(f"{path}: {kind} ({shape}) is already defined by {seen[key]}")
        seen[key] = path  # type: ignore[index]
        try:
            fast = jsonschema_rs.Draft202012Validator(schema, registry=fast_registry)
        except Exception as exc:  # jsonschema-rs raises ValueError/ReferencingError
            raise CatalogError(f"{path}: cannot compile: {exc}") from exc
        reference = bounded_reference(schema, reference_registry)
        specs.append(
            KindSpec(kind, shape, senders, path, schema, fast, reference, str(kind), retain, timeout, errors, shared)
        )
    return specs


def _read_schema(path: Path) -> dict[str, Any]:
    try:
        schema = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON: {exc}") from exc
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(schema, dict):
        raise CatalogError(f"{path}: a schema file holds one JSON object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise CatalogError(f"{path}: not a valid JSON Schema (2020-12): {describe_error(exc)}") from exc
    return schema


_ANNOTATION_KEYS: Final = frozenset({"shape", "senders", "retain", "timeout", "errors"})
_ERROR_TYPE: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Longest request deadline a schema may declare, in seconds.
MAX_TIMEOUT: Final = 3600.0


def _read_behaviour(
    path: Path, kind: Kind, shape: Shape, annotation: dict[str, Any]
) -> tuple[RetainRule | None, float | None, tuple[tuple[str, str], ...]]:
    """The behaviour a kind declares: ``retain`` (events), ``timeout`` (requests), ``errors``."""
    unknown = set(annotation) - _ANNOTATION_KEYS
    if unknown:
        raise CatalogError(f"{path}: x-bridge has unknown keys: {', '.join(sorted(unknown))}")
    retain = None
    if "retain" in annotation:
        if shape != "event":
            raise CatalogError(f"{path}: x-bridge.retain is for events only")
        try:
            retain = RetainRule.from_annotation(str(kind), annotation["retain"])
        except ValueError as exc:
            raise CatalogError(f"{path}: x-bridge.{exc}") from None
    timeout = annotation.get("timeout")
    if timeout is not None:
        if shape != "request":
            raise CatalogError(f"{path}: x-bridge.timeout is for requests only")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
            raise CatalogError(f"{path}: x-bridge.timeout must be seconds, more than 0 and at most {MAX_TIMEOUT:g}")
        timeout = float(timeout)
    errors = annotation.get("errors", {})
    if not isinstance(errors, dict) or not all(
        isinstance(k, str) and _ERROR_TYPE.match(k) and isinstance(v, str) and v for k, v in errors.items()
    ):
        raise CatalogError(f"{path}: x-bridge.errors maps UPPER_SNAKE error types to the sentence shown to a person")
    if errors and shape == "event":
        raise CatalogError(f"{path}: x-bridge.errors is for requests (and the error kind) only")
    return retain, timeout, tuple(errors.items())


def _read_annotation(
    path: Path, schema: dict[str, Any], annotation: Any
) -> tuple[Kind, Shape, frozenset[str]]:
    if not isinstance(annotation, dict):
        raise CatalogError(f"{path}: x-bridge must be an object")
    shape = annotation.get("shape")
    if shape not in _SHAPES:
        raise CatalogError(f"{path}: x-bridge.shape must be one of {', '.join(_SHAPES)}")
    senders = annotation.get("senders")
    if (
        not isinstance(senders, list)
        or not senders
        or not all(isinstance(s, str) and s in _SENDERS for s in senders)
    ):
        raise CatalogError(f"{path}: x-bridge.senders must list some of {', '.join(_SENDERS)}")
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        raise CatalogError(f"{path}: a kind schema needs properties channel, topic and subtopic")
    names: list[str] = []
    for field in ("channel", "topic", "subtopic"):
        const = properties.get(field, {}).get("const") if isinstance(properties.get(field), dict) else None
        if const is None and field == "channel":
            names.append(ANY_CHANNEL)
        elif isinstance(const, str) and const:
            names.append(const)
        else:
            raise CatalogError(f"{path}: properties.{field} needs a string const naming the kind")
    return Kind(*names), shape, frozenset(senders)
