"""tierstream: real-time customer tiering on Kafka (engine, Faust worker, CLI)."""

__version__ = "0.1.0"

# Before any engine module can be imported: the compiled engine when it is fresh, else pure
# Python (tierstream.enginebuild; TIERSTREAM_ENGINE_BUILD).
from .enginebuild import select as _select_engine_build

_select_engine_build()
