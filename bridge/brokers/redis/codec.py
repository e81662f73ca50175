"""How publications, requests and registry entries are written in Redis.

A message on a channel (and an entry of an agent's history stream) is a
small JSON array header, a newline, then the frame's bytes exactly as the
node handed them over (a frame may contain newlines; the header never does,
so the first one splits them):

* publication: ``[type, reply_to, connection_id, node_id, seq, epoch, offset]``
  + ``\\n`` + frame. ``node_id`` and ``seq`` (the publishing node and its
  count of publications) let that node recognize its own publication when
  Redis carries it after the node delivered it itself (a reply that came
  late). ``epoch`` and ``offset`` are the publication's position: the node
  sends the header without them (:func:`encode_head`, no closing bracket)
  and the publishing Lua script, which assigns the position, appends them
  and closes it. An ``ERROR`` (never positioned) has the five-item header;
  a three-item header (older nodes) is read too;
* request: ``[agent, request_id]`` + ``\\n`` + frame.

A provider entry is ``"{node_id} {connection_id}"`` (a node id has no space).
"""

from __future__ import annotations

import orjson

from bridge.brokers.base import Position, ProviderLocation, Publication, PublicationType


def encode_head(publication: Publication, node_id: str, seq: int) -> bytes:
    """The header without its closing bracket: the script appends ``,"epoch",offset]`` (or the node ``]``)."""
    head = orjson.dumps([publication.type.value, publication.reply_to, publication.connection_id, node_id, seq])
    return head[:-1]


def encode_publication(publication: Publication, node_id: str, seq: int) -> bytes:
    """Header, newline, the frame untouched; the header carries ``publication.position`` when set."""
    head = [publication.type.value, publication.reply_to, publication.connection_id, node_id, seq]
    if publication.position is not None:
        head += [publication.position.epoch, publication.position.offset]
    return orjson.dumps(head) + b"\n" + publication.data


def decode_publication(payload: bytes) -> tuple[Publication, str | None, int]:
    """The publication (with its position, if it has one), and the node that published it with its sequence number.

    ``None, 0`` for the node and number: unknown (an older node's header).
    """
    head, _, data = payload.partition(b"\n")
    fields = orjson.loads(head)
    kind, reply_to, connection_id = fields[:3]
    node_id, seq = (fields[3], fields[4]) if len(fields) >= 5 else (None, 0)
    position = Position(fields[5], fields[6]) if len(fields) >= 7 else None
    return Publication(PublicationType(kind), data, reply_to, connection_id, position), node_id, seq


def encode_request(agent: str, request_id: str, data: bytes) -> bytes:
    return orjson.dumps([agent, request_id]) + b"\n" + data


def decode_request(payload: bytes) -> tuple[str, str, bytes]:
    head, _, data = payload.partition(b"\n")
    agent, request_id = orjson.loads(head)
    return str(agent), str(request_id), data


def encode_holder(node_id: str, connection_id: str) -> str:
    return f"{node_id} {connection_id}"


def decode_holder(holder: bytes | str | None) -> ProviderLocation | None:
    """A provider entry as a location; ``None`` for no entry (or one that is not an entry)."""
    if not holder:
        return None
    text = holder.decode() if isinstance(holder, bytes) else holder
    node_id, _, connection_id = text.partition(" ")
    return ProviderLocation(node_id, connection_id) if connection_id else None
