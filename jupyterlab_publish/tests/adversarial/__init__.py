"""The standing adversarial suite of the function server (issue 10).

- ``rawhttp``: a raw-socket HTTP/1.1 client that can send anything (malformed framing, huge heads,
  pipelined requests) and reads answers with h11, under a hard deadline per probe.
- ``live``: a real ``jupyter publish serve`` on 127.0.0.1 with the four functions the probes attack,
  and the snapshot that proves nothing was lost.
- ``bundles``: tampered, forged and hostile bundle archives.
- ``probes``: the catalogue, as data (name, category, what is sent, the statuses accepted).
- ``runner``: the one runner that turns a probe into a result.
- ``soak``: the fault soak (calls over keep-alive connections while workers die, versions change).

Used by ``test_adversarial_catalogue.py``, ``test_adversarial_soak.py`` and
``benchmarks/reliability/run.py``, so the tests and the report measure the same thing.
"""
