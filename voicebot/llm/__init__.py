"""LLM layer: embedded model, local llama.cpp server, streaming client, grounding guard and responder."""
