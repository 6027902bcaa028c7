"""The conformance pack's claims: the manifest, verdicts, statistics, and
the pack that ships in the distribution (``shipped``)."""

from .manifest import Claim, load_claims

__all__ = ["Claim", "load_claims"]
