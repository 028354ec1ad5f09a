"""Call client (capture, motion extraction, WebRTC) and the one-command loopback demo."""
