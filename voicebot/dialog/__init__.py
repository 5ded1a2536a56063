"""Multi-turn dialog engine: dialog state, NLU on ASR text, YAML flows, banking API and scenario suite."""
