"""Signaling server (FastAPI), one aiortc peer connection per participant, and the render worker."""
