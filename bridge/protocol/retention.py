"""Retention rules: which events a late joiner is replayed, as a kind's schema declares them.

A kind's ``x-bridge.retain`` is one of:

* absent: its events are delivered live and not kept;
* ``"latest"``: the latest frame of the kind is kept (one *slot* per agent,
  named by the kind, e.g. ``Amazon/Agent/SetAgentState``);
* ``{"key": "/json/pointer", "dropWhen": {"/json/pointer": [values]}}``: one
  frame per value of ``key`` in the frame (slot ``<kind>#<value>``, e.g. one
  per contact id), and the slot is dropped when a frame's value at a
  ``dropWhen`` pointer is one of the listed values (a call at ``Dropped``).
  Both members are optional: ``{"dropWhen": ...}`` alone keeps the latest
  frame of the kind until a frame matches. ``"resetOnProviderJoin": true``
  adds that every slot of the kind is forgotten when a provider joins the
  agent: the provider republishes what is still live (calls), so nothing that
  ended while no provider was connected stays retained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

#: The separator between a kind and a key in a slot name.
SLOT_KEY_SEPARATOR: Final = "#"

_MISSING: Final = object()


class RetainDecision(NamedTuple):
    """What to do with one event: keep it in ``slot``, or drop that slot."""

    slot: str
    keep: bool


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """``"/message/call/id"`` -> ``("message", "call", "id")`` (RFC 6901 escapes undone)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/', not {pointer!r}")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/"))


def resolve(document: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``document``, or a sentinel that equals nothing a frame holds."""
    for part in parts:
        if isinstance(document, dict):
            document = document.get(part, _MISSING)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


@dataclass(frozen=True, slots=True)
class RetainRule:
    """One kind's retention, read from its schema."""

    #: The kind's name (``Amazon/Agent/SetAgentState``): the slot, or its prefix.
    label: str
    #: Pointer to the key within a frame; ``None`` keeps one frame per kind.
    key: tuple[str, ...] | None = None
    #: (pointer, values): a frame whose value at the pointer is listed drops its slot.
    drop_when: tuple[tuple[tuple[str, ...], tuple[Any, ...]], ...] = ()
    #: Whether every slot of the kind is forgotten when a provider joins the agent.
    reset_on_provider_join: bool = False
    _constant: RetainDecision | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_annotation(cls, label: str, value: Any) -> RetainRule:
        """Build a rule from ``x-bridge.retain``; raise ``ValueError`` saying what is wrong."""
        if value == "latest":
            return cls(label)
        if not isinstance(value, dict) or not set(value) <= {"key", "dropWhen", "resetOnProviderJoin"}:
            raise ValueError('retain is "latest" or an object with "key", "dropWhen" and/or "resetOnProviderJoin"')
        reset = value.get("resetOnProviderJoin", False)
        if not isinstance(reset, bool):
            raise ValueError("retain.resetOnProviderJoin is true or false")
        key = value.get("key")
        if key is not None and (not isinstance(key, str) or not key.startswith("/")):
            raise ValueError("retain.key must be a JSON pointer such as /message/call/id")
        drop = value.get("dropWhen", {})
        if not isinstance(drop, dict):
            raise ValueError("retain.dropWhen maps JSON pointers to lists of values")
        rules: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
        for pointer, values in drop.items():
            if not pointer.startswith("/") or not isinstance(values, list) or not values:
                raise ValueError("retain.dropWhen maps JSON pointers to non-empty lists of values")
            if any(isinstance(v, (dict, list)) for v in values):
                raise ValueError("retain.dropWhen values must be strings, numbers, booleans or null")
            rules.append((parse_pointer(pointer), tuple(values)))
        return cls(label, None if key is None else parse_pointer(key), tuple(rules), reset)

    def __post_init__(self) -> None:
        # The common rule ("latest", nothing dropped) decides the same for every frame.
        constant = RetainDecision(self.label, keep=True) if self.key is None and not self.drop_when else None
        object.__setattr__(self, "_constant", constant)

    def decide(self, envelope: Any) -> RetainDecision | None:
        """Where this event goes, or ``None`` when it names no usable key (kept nowhere)."""
        if self._constant is not None:
            return self._constant
        if self.key is None:
            slot = self.label
        else:
            value = resolve(envelope, self.key)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                return None
            slot = f"{self.label}{SLOT_KEY_SEPARATOR}{value}"
        for pointer, values in self.drop_when:
            found = resolve(envelope, pointer)
            if found is not _MISSING and found in values:
                return RetainDecision(slot, keep=False)
        return RetainDecision(slot, keep=True)

    def describe(self) -> str:
        """A line for the generated docs."""
        def pointer(parts: tuple[str, ...]) -> str:
            return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)

        text = "the latest frame" if self.key is None else f"one frame per `{pointer(self.key)}`"
        if self.drop_when:
            conditions = " or ".join(
                f"`{pointer(p)}` is {' or '.join(f'`{v}`' for v in values)}" for p, values in self.drop_when
            )
            text += f", dropped when {conditions}"
        if self.reset_on_provider_join:
            text += "; all forgotten when a provider joins"
        return text
