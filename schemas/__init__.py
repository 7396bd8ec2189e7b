"""Event models (pydantic v2) of the wire contract, and their exported JSON Schema."""
