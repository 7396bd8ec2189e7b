"""The pure core: parsing, rules, ledger, metrics and evaluation.

Nothing in this package imports faust or aiokafka; the worker and `simulate` both
drive it through `tierstream.engine.partition.PartitionEngine`.
"""
