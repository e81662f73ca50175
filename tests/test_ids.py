"""Request ids: what the provider sees as ``id`` and answers as ``replyTo``."""

from __future__ import annotations

import re

from bridge.hub.core import ids


def test_request_ids_are_unique_url_safe_and_of_one_length_across_pool_refills() -> None:
    made = [ids.new_request_id() for _ in range(3 * ids._POOL_IDS + 7)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"h-[A-Za-z0-9_-]{16}", rid) for rid in made)
