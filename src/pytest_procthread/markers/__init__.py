"""The markers ``isolated``, ``threads`` and ``requires``, and ``--isolated``: how each is
read and checked (``threads``, ``requires``, ``isolated.marker``), and the hooks that act
on them (``plugin``).
"""
