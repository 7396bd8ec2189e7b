"""Going live on an existing bank (SPEC §9): warehouse snapshots, state exports, bootstrap.

`warehouse` reads (and `snapshot` writes) the warehouse snapshot files with DuckDB;
`statefile` reads and writes the lossless state export; both produce the
rules-free `CustomerRecord`s of `tierstream.engine.portable`, which `bootstrap` writes
into a deployment's tables and `simulate --snapshot` loads into an engine.
"""
