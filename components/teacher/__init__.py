"""Teacher stage: bulk annotation with Gemini, a local checkpoint, or the embedded zero-shot MiniLM default."""
