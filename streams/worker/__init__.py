"""The worker: the only package that imports Faust.

`app` builds the Faust app, `run` runs it (`tierstream run`), `wiring.Worker` wires
the pieces: `merge` (the timestamp merge of the input topics, pure), `commit` (the
checkpoint: deliveries, state, markers, acks), `store` (the customers table of a
partition and its marker), `cache` (Redis), `web` (pages and bearer auth),
`metrics` (Prometheus) and `compat` (every reach into Faust's or aiokafka's private
attributes). Importing this package imports none of them, so `merge`, `commit` and
`store` are usable without Faust.
"""
