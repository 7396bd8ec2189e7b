"""Shared fixtures, registered as plugins (tests import no helpers from conftest or from
each other: helpers live in `tierstream.testing`)."""

pytest_plugins = ["tierstream.testing.fixtures"]
