"""The dev harness: the local broker and Redis, `make demo`, the dev stack, a worker
process, a Prometheus text parser. Imported by tests, bench and the make targets only."""
