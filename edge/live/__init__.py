"""Live scanner video-out: capture, sector detection, the per-frame loop."""
