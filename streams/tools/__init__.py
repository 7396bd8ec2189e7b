"""What a person runs against event files and topics: simulate, explain, whatif, generate,
replay and capture (kafkaio), dlq replay, redis rebuild. No Faust; never the worker."""
