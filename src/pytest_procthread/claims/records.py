"""The keys under which a check's claim and verdict travel in a test report's
``user_properties`` (and so across pytest-xdist), read by ``hooks`` to build the table."""

RECORD_KEY = "procthread_verdict"  # the verdict record that ClaimCheck writes
CLAIM_KEY = "procthread_claim"  # the claim's id, so that a check that errors keeps its row
