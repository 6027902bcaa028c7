"""The conformance pack's claims: the manifest, and (later) verdicts and statistics."""

from .manifest import Claim, load_claims

__all__ = ["Claim", "load_claims"]
