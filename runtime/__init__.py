"""The lotus daemon: board backends, the inference pipeline, the HTTP API. No torch here."""
