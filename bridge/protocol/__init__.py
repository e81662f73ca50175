"""The wire protocol: names, error types, close codes, envelopes, the schema catalog and tokens.

This package imports nothing else of connect-bridge: the hub, the clients and
the virtual agent all stand on it. ``bridge.protocol`` itself re-exports the
generated names (:mod:`bridge.protocol.names`), :class:`Kind` and the
envelope builders (:mod:`bridge.protocol.envelopes`); the catalog
(:mod:`bridge.protocol.catalog`) and tokens (:mod:`bridge.protocol.tokens`)
are imported by name, since they pull in heavier libraries.
"""

from bridge.protocol.envelopes import *  # noqa: F403
from bridge.protocol.envelopes import __all__ as _envelopes_all
from bridge.protocol.kind import Kind
from bridge.protocol.names import *  # noqa: F403
from bridge.protocol.names import __all__ as _names_all

__all__ = ["Kind", *_envelopes_all, *_names_all]
