"""The wire protocol: names, error types, close codes, envelopes, the schema catalog and tokens.

This package imports nothing else of connect-bridge: the hub, the clients and
the virtual agent all stand on it. ``bridge.protocol`` itself re-exports the
vocabulary of :mod:`bridge.protocol.envelopes`; the catalog
(:mod:`bridge.protocol.catalog`) and tokens (:mod:`bridge.protocol.tokens`)
are imported by name, since they pull in heavier libraries.
"""

from bridge.protocol.envelopes import *  # noqa: F403
from bridge.protocol.envelopes import __all__ as _envelopes_all

__all__ = list(_envelopes_all)
