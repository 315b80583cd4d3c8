"""Local state on disk, shared by bundles, targets and the function server; standard library only.

``paths`` (where things live), ``lock`` (the one exclusive file lock), ``atomic`` (writes a reader
never sees half-done) and ``logs`` (the end of a log).
"""
