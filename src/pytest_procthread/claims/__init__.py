"""The conformance pack's machinery: the manifest, expectations, verdicts, statistics, the
pytest wiring (``hooks``), and the pack that ships in the distribution (``shipped``).

Kept empty: ``hooks`` is loaded at every pytest start, and the rest only by a run that
loads a pack.
"""
